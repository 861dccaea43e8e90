"""FHIR QuestionnaireResponses (mobile follow-up apps) to ``silver.followup_answers``.

A response is read against the Questionnaire it names (``questionnaire``: canonical
``url|version``; without a version, the newest one of that url), which the build job looks up
in all of bronze, so one sent in an earlier batch counts. Every linkId must be an item of the
questionnaire at that place; each answer must carry the value[x] its item's type takes (a
``choice`` also any answerOption's type); a ``repeats=false`` item has one answer and appears
once; a ``choice`` answer must be one of the item's answerOptions when it lists them. A response
that breaks any of this, or names a questionnaire the lake does not know, raises
``Unmappable`` naming the response and the linkId path, and is quarantined whole
(``quarantine.fhir``). ``required`` and ``enableWhen`` are not checked: an app sends partial
(in-progress) responses too, and conditions need the other answers' history.

Each answer is one row, with items nested to any depth (inside items and inside answers, as R4
allows). An answer whose item carries a ``code`` (LOINC) is also extracted as a
``silver.observations`` row (SDC observation-based extraction: code from the item, value from
the answer, subject and authored time from the response), keyed on the response, item and
answer so a re-run adds nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from connectors.clinical_records import Source, Unmappable, fhir_coding, fhir_time, fhir_value, system_name
from connectors.ucum import to_ucum

# Questionnaire item type -> the answer value[x] it takes (R4); group and display take none
ANSWER_TYPES: dict[str, set[str]] = {
    "boolean": {"valueBoolean"}, "decimal": {"valueDecimal"}, "integer": {"valueInteger"},
    "date": {"valueDate"}, "dateTime": {"valueDateTime"}, "time": {"valueTime"},
    "string": {"valueString"}, "text": {"valueString"}, "url": {"valueUri"},
    "choice": {"valueCoding"}, "open-choice": {"valueCoding", "valueString"},
    "attachment": {"valueAttachment"}, "reference": {"valueReference"}, "quantity": {"valueQuantity"},
    "group": set(), "display": set(),
}
OBSERVATION_STATUS = {"completed": "final", "amended": "amended", "entered-in-error": "entered-in-error"}
TYPED = ("value_num", "value_text", "value_code", "value_system", "value_bool", "value_date",
         "value_datetime", "value_time", "value_unit")


@dataclass(frozen=True)
class Answer:
    """One answer with its Questionnaire item and where it sits in the response."""

    item: dict  # the Questionnaire's item
    text: str | None  # the item's text as the response shows it, else the questionnaire's
    path: str  # linkIds from the top, '/'-joined
    position: str  # sibling index per level, '/'-joined; "i.k" when the next level is under answer k
    index: int  # among the item's answers
    key: str | None  # value[x] name, None for an answer that only holds nested items
    answer: dict


def canonical_parts(canonical: str | None) -> tuple[str | None, str | None]:
    """``url|version`` -> (url, version); the build job's lookup splits the same way."""
    if not canonical:
        return None, None
    url, _, version = canonical.partition("|")
    return url, version or None


def records(resource: dict, src: Source, record: str, person: str, encounter_id: str | None,
            questionnaire: dict | None) -> dict[str, list[dict]]:
    """followup_answers rows (and extracted observations) of one response, checked against its
    Questionnaire; ``Unmappable`` when it names none the lake knows or does not fit it."""
    canonical = resource.get("questionnaire")
    if not canonical:
        raise Unmappable(f"{record}: names no questionnaire (QuestionnaireResponse.questionnaire is empty)")
    if questionnaire is None:
        raise Unmappable(f"{record}: questionnaire {canonical} is not known to the lake "
                         "(no Questionnaire with that url and version in bronze)")
    answers = list(walk(record, resource.get("item"), questionnaire.get("item"), "", ""))
    url, version = canonical_parts(canonical)
    authored = fhir_time(resource.get("authored"))
    status = OBSERVATION_STATUS.get(resource.get("status") or "", "preliminary")
    base = {"person_id": person, "encounter_id": encounter_id, "questionnaire_url": url,
            "questionnaire_version": version or questionnaire.get("version"),
            "response_id": src.record_id("followup-response", record),
            "response_status": resource.get("status"), "authored_time": authored}
    out: dict[str, list[dict]] = {}
    for a in answers:
        if a.key is None:
            continue
        where = (record, a.path, a.position, str(a.index))
        obs = _observation(a, src, where, base, status) if a.item.get("code") else None
        if obs is not None:
            out.setdefault("observations", []).append(obs)
        out.setdefault("followup_answers", []).append(src.row(
            f"{record} {a.path}", answer_id=src.record_id("followup-answer", *where), **base,
            link_path=a.path, link_id=a.item.get("linkId"), item_text=a.text, item_type=a.item.get("type"),
            item_position=a.position, answer_index=a.index, **typed(a.key, a.answer[a.key]),
            observation_id=obs["observation_id"] if obs else None))
    return out


def walk(record: str, items: list | None, defs: list | None, path: str, position: str) -> Iterator[Answer]:
    """Every answer under ``items`` (response) checked against ``defs`` (questionnaire items at the
    same place), depth first, through nested items and items nested in answers."""
    by_link = {d.get("linkId"): d for d in defs or []}
    seen: Counter = Counter()
    for i, item in enumerate(items or []):
        link = item.get("linkId")
        here = f"{path}/{link}" if path else str(link)
        where = f"{record}: linkId {here}"
        d = by_link.get(link)
        if d is None:
            under = f" under {path}" if path else ""
            raise Unmappable(f"{where} is not an item of the questionnaire{under}")
        seen[link] += 1
        answers = item.get("answer") or []
        if not d.get("repeats") and (seen[link] > 1 or len(answers) > 1):
            many = f"{len(answers)} answers" if len(answers) > 1 else f"{seen[link]} occurrences"
            raise Unmappable(f"{where}: {many}, but the item has repeats=false")
        spot = f"{position}/{i}" if position else str(i)
        text = item.get("text") or d.get("text")
        for k, answer in enumerate(answers):
            yield Answer(d, text, here, spot, k, check(where, d, answer), answer)
            yield from walk(record, answer.get("item"), d.get("item"), here, f"{spot}.{k}")
        yield from walk(record, item.get("item"), d.get("item"), here, spot)


def check(where: str, item: dict, answer: dict) -> str | None:
    """The answer's value[x] name once it fits the item's type and answerOptions."""
    key = next((k for k in answer if k.startswith("value")), None)
    kind = item.get("type")
    if key is None or kind not in ANSWER_TYPES:
        return key
    options = item.get("answerOption") or []
    allowed = ANSWER_TYPES[kind]
    if kind in ("choice", "open-choice"):
        allowed = allowed | {k for o in options for k in o if k.startswith("value")}
    if key not in allowed:
        raise Unmappable(f"{where}: a {key} answer to an item of type {kind}")
    if kind == "choice" and options and not any(_same(o.get(key), answer[key]) for o in options):
        raise Unmappable(f"{where}: {_shown(answer[key])} is not one of the item's answerOptions")
    return key


def _same(option, value) -> bool:
    """An answerOption equals the answer: a Coding by code (and system when both name one)."""
    if isinstance(option, dict) and isinstance(value, dict) and "code" in option:
        systems = (option.get("system"), value.get("system"))
        return option["code"] == value.get("code") and (None in systems or systems[0] == systems[1])
    return option is not None and option == value


def _shown(value) -> str:
    if isinstance(value, dict) and "code" in value:
        return f"code {value['code']}" + (f" ({value['system']})" if value.get("system") else "")
    return repr(value)


def typed(key: str, value) -> dict:
    """The answer's value as the typed columns of followup_answers."""
    out: dict = {"value_type": key[5:], **dict.fromkeys(TYPED)}
    if key in ("valueInteger", "valueDecimal"):
        out["value_num"] = float(value)
    elif key == "valueBoolean":
        out["value_bool"] = value
    elif key == "valueDate":
        day = fhir_time(value)
        out["value_date"] = day.date() if day else None
    elif key == "valueDateTime":
        out["value_datetime"] = fhir_time(value)
    elif key == "valueTime":
        out["value_time"] = value
    elif key == "valueCoding":
        out.update(value_code=value.get("code"), value_system=system_name(value.get("system")),
                   value_text=value.get("display"))
    elif key == "valueQuantity":
        code = value.get("code")
        out.update(value_num=value.get("value"),
                   value_unit=to_ucum(code, value.get("system")) or value.get("unit") or code)
    elif key == "valueAttachment":
        out["value_text"] = value.get("url") or value.get("title")
    elif key == "valueReference":
        out["value_text"] = value.get("reference") or value.get("display")
    else:  # valueString, valueUri
        out["value_text"] = value
    return out


def _observation(a: Answer, src: Source, where: tuple, base: dict, status: str) -> dict | None:
    """The Observation SDC extraction makes of an answer to a coded item (LOINC preferred)."""
    code, system, display = fhir_coding({"coding": a.item["code"]}, {"http://loinc.org"})
    if not code:
        return None
    return src.row(
        f"{where[0]} {a.path}", observation_id=src.record_id("observation", *where),
        person_id=base["person_id"], encounter_id=base["encounter_id"], order_id=None, code=code,
        code_system=system or "unknown", loinc_code=code if system == "LOINC" else None,
        display=display or a.text, category="survey", **fhir_value({a.key: a.answer[a.key]}),
        reference_low=None, reference_high=None, reference_text=None, abnormal_flag=None,
        abnormal_flag_derived=False, status=status, effective_time=base["authored_time"],
        components_json=None)
