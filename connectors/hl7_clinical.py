"""HL7 v2 messages (already accepted into bronze) to silver clinical records.

hl7apy has already validated the message on the way into bronze, so it is not parsed again
here: ``Reader`` splits it on the message's own separators, only as far as each lookup needs,
the way python-hl7 nests it (field, repetition, component, subcomponent; MSH-1 and MSH-2 whole),
and unescapes values with python-hl7. Mapped segments:
PID (identities and demographics), MRG (A40 merge), PV1 (encounters), DG1 (conditions),
AL1 (allergies), OBR (diagnostic reports), OBX (observations, one per OBX), RXA/RXR
(immunizations in VXU; medication administrations in RAS^O17), ORC + RXE/RXO + TQ1/RXR
(medication orders: OMP^O09, RDE^O11/O25, RDS^O13 ...) and PR1 (procedures, ADT and BAR).
Other segments, Z-segments included, stay in bronze. Coded values follow the HL7 v2-to-FHIR
mappings where one exists, so both formats fill silver with one vocabulary. A message that
breaks a rule the mapping relies on (an RXE without its required give code) raises
``Unmappable`` naming the message and segment, and is quarantined whole.
"""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace

import hl7
import pypinyin.contrib.tone_convert  # noqa: F401  (loaded before use: see below)
import pypinyin.pinyin_dict  # noqa: F401
from hl7.util import unescape
from pypinyin import lazy_pinyin

from connectors.clinical_records import (
    Source,
    Unmappable,
    abnormal_flag,
    reference_range,
    system_name,
    to_float,
)
from connectors.hl7 import hl7_timestamp
from connectors.person_features import identifier_keys, identity_features, is_national_id
from connectors.ucum import to_ucum

# person_features imports pypinyin when it first needs it; two threads of one worker needing it at
# once trip over pypinyin's circular imports (ImportError or _DeadlockError, and the import stays
# broken in that process: the messages go to quarantine). Loaded here, under this module's own
# import lock, before any mapping runs, it never is.
lazy_pinyin("王")

PATIENT_CLASS = {"I": "IMP", "O": "AMB", "E": "EMER", "P": "PRENC", "R": "AMB", "B": "IMP"}
EVENT_STATUS = {"A01": "in-progress", "A02": "in-progress", "A03": "finished", "A04": "arrived",
                "A11": "cancelled", "A13": "in-progress"}
CODED = {"CE", "CWE", "CNE", "CF"}
# v2 table 0127 (allergen type) -> FHIR AllergyIntolerance.category; 0128 (severity) -> criticality
# (v2-to-FHIR ConceptMaps) and -> reaction severity.
ALLERGY_CATEGORY = {"DA": "medication", "FA": "food", "EA": "environment", "AA": "environment",
                    "PA": "environment", "LA": "environment"}
ALLERGY_CRITICALITY = {"SV": "high", "MI": "low"}
ALLERGY_SEVERITY = {"SV": "severe", "MO": "moderate", "MI": "mild"}
NOT_ADMINISTERED = {"RE", "NA"}  # RXA-20 refused / not administered
UNKNOWN_AMOUNT = 999.0  # RXA-6 placeholder in the CDC immunization guide
# v2 table 0038 (ORC-5) -> MedicationRequest.status. v2-to-FHIR maps 0038 to request-status,
# whose "revoked" MedicationRequest splits into cancelled (CA) and stopped (DC, RP replaced).
ORDER_STATUS = {"CA": "cancelled", "CM": "completed", "DC": "stopped", "ER": "entered-in-error",
                "HD": "on-hold", "IP": "active", "RP": "stopped", "SC": "active"}
# v2 table 0119 (ORC-1), used only when ORC-5 is empty (v2-to-FHIR OrderControlCode map, revoked
# split as above)
ORDER_CONTROL_STATUS = {
    **dict.fromkeys(("NW", "OK", "AF", "CA", "HD", "PR", "PY", "RL", "RO", "RQ"), "active"),
    **dict.fromkeys(("OC", "CR", "DF"), "cancelled"), **dict.fromkeys(("DC", "DR", "OD"), "stopped"),
    "HR": "on-hold", "OH": "on-hold", "FU": "completed"}
# (give code, amount minimum, amount maximum, units) of the pharmacy's RXE and the placer's RXO
GIVE_FIELDS = {"RXE": (2, 3, 4, 5), "RXO": (1, 2, 3, 4)}
PHARMACY_ADMINISTRATION = {"RAS"}  # an RXA there is a medication given; in VXU (and elsewhere) a vaccination


class Segment(list):
    """One segment's fields as python-hl7 indexes them: ``seg[0]`` the name, ``seg[n]`` field n
    as sent (for MSH, ``seg[1]`` the field separator and ``seg[2]`` the encoding characters).
    ``kept`` is the field python-hl7 does not split further: MSH-2 (it holds the separators), or
    the whole text of a segment without any separator."""

    __slots__ = ("text", "kept")

    def __init__(self, text: str, fs: str, separators: str):
        self.text = text
        if not any(c in text for c in separators):
            super().__init__([text])
            self.kept = 0
        elif text[:3] in ("MSH", "BHS", "FHS"):
            end = text.find(text[3], 4)
            rest = text[end + 1:]
            super().__init__([text[:3], text[3], text[4:end]] + (rest.split(fs) if rest else []))
            self.kept = 2
        else:
            super().__init__(text.split(fs))
            self.kept = None


class Reader:
    """Positional access (1-based field, repetition, component, subcomponent), unescaped."""

    def __init__(self, text: str):
        msg = text.strip()
        if msg[:3] not in ("MSH", "FHS", "BHS"):
            raise hl7.ParseException(f"First segment is {msg[:3]}, must be one of MHS, FHS or BHS")
        seps = msg[3:msg.find(msg[3], 4)]  # as python-hl7's create_parse_plan reads them
        fs = seps[0]
        self.comp, self.rep = seps[1:2] or "^", seps[2:3] or "~"
        self.sub, esc = seps[4:5] or "&", seps[3:4] or "\\"
        splits = fs + self.rep + self.comp + self.sub
        self.msg = [Segment(s, fs, splits) for s in msg.split("\r")]
        self._escapes = SimpleNamespace(esc=esc, separators="\r" + splits)
        self.separators = splits + esc + seps[5:6]  # all that decides what a segment's text reads as
        encoding = next((s for s in self.msg if s[0] == "MSH"), None)
        if encoding is None:
            raise KeyError("MSH")
        encoding = encoding[2]
        # python-hl7 knows no \P\ (v2.7 escaped truncation character); it drops unknown escapes.
        self._app_map = {"P": encoding[4]} if len(encoding) > 4 else None

    def segments(self, name: str) -> list:
        return [s for s in self.msg if s[0] == name]

    def first(self, name: str):
        for s in self.msg:
            if s[0] == name:
                return s
        return None

    def get(self, seg, field: int, rep: int = 1, comp: int = 1, sub: int = 1) -> str | None:
        if seg is None:
            return None
        try:
            value = seg[field]
        except IndexError:
            return None
        if field == seg.kept:
            if rep != 1 or comp != 1 or sub != 1:
                return None
        else:
            # a value without the separator is its own single part, which only index 1 reaches
            for sep, idx in ((self.rep, rep), (self.comp, comp), (self.sub, sub)):
                if idx != 1 or sep in value:
                    parts = value.split(sep)
                    if len(parts) < idx:
                        return None
                    value = parts[idx - 1]
        if self._escapes.esc in value:
            value = unescape(self._escapes, value, self._app_map)
        return value if value not in ("", '""') else None

    def reps(self, seg, field: int) -> int:
        if seg is None:
            return 0
        try:
            value = seg[field]
        except IndexError:
            return 0
        return 1 if field == seg.kept else value.count(self.rep) + 1


def _date(value: str | None) -> date | None:
    dt = hl7_timestamp(value)
    return dt.date() if dt else None


def _identities(r: Reader, seg, src: Source) -> list[tuple[str, str, str | None]]:
    """(authority, identifier, type) for each repetition of a CX field (PID-3, MRG-1)."""
    out = []
    field = 3 if str(seg[0]) == "PID" else 1
    for i in range(1, r.reps(seg, field) + 1):
        value = r.get(seg, field, i, 1)
        if value:
            auth = r.get(seg, field, i, 4, 1) or r.get(seg, field, i, 4, 2) or src.center_id
            out.append((auth, value, r.get(seg, field, i, 5)))
    return out


def _primary(ids: list[tuple[str, str, str | None]]) -> tuple[str, str, str | None]:
    return next((i for i in ids if (i[2] or "").upper() == "MR"), ids[0])


def _xtn(r: Reader, seg, field: int, i: int) -> str | None:
    """A phone number: XTN-12 unformatted, else XTN-1, else country + area + local (XTN-5/6/7)."""
    parts = "".join(p for p in (r.get(seg, field, i, c) for c in (5, 6, 7)) if p)
    return r.get(seg, field, i, 12) or r.get(seg, field, i, 1) or parts or None


# PID segment as sent (with the message's separators, center and key) -> its linkage features: a
# patient's PID comes back in each of their messages, and the features (pinyin, Bloom filters,
# keyed hashes) cost more than the rest of the mapping. Bounded, so memory stays flat.
_PID_FEATURES: dict[tuple, dict] = {}
_PID_FEATURES_LIMIT = 20_000


def _pid_features(r: Reader, pid, src: Source, ids: list[tuple[str, str, str | None]]) -> dict:
    """Keyed linkage features of every PID-5 name, PID-7/8, every PID-11 address, PID-13/14
    phones and a resident ID among the PID-3 repetitions; the clear values stay here."""
    key = (src.key, src.center_id, r.separators, pid.text)
    found = _PID_FEATURES.get(key)
    if found is None:
        if len(_PID_FEATURES) >= _PID_FEATURES_LIMIT:
            _PID_FEATURES.clear()
        found = _PID_FEATURES[key] = _pid_features_of(r, pid, src, ids)
    return found


def _pid_features_of(r: Reader, pid, src: Source, ids: list[tuple[str, str, str | None]]) -> dict:
    names = [(r.get(pid, 5, i, 1), r.get(pid, 5, i, 2)) for i in range(1, r.reps(pid, 5) + 1)]
    addresses = [" ".join(p for p in (r.get(pid, 11, i, c) for c in (4, 3, 9, 1, 2)) if p)
                 for i in range(1, r.reps(pid, 11) + 1)]
    phones = [_xtn(r, pid, f, i) for f in (13, 14) for i in range(1, r.reps(pid, f) + 1)]
    national = [value for auth, value, itype in ids if is_national_id(auth, itype)]
    return identity_features(src.key, names, _date(r.get(pid, 7)), r.get(pid, 8), phones, addresses,
                             r.get(pid, 11, 1, 5), national)


def records(text: str, src: Source, control_id: str, trigger: str | None) -> dict[str, list[dict]]:
    """Silver rows by table for one message; empty when it names no patient."""
    r = Reader(text)
    pid = r.first("PID")
    ids = _identities(r, pid, src) if pid is not None else []
    if not ids:
        return {}
    out: dict[str, list[dict]] = {}
    p_auth, p_value, _ = _primary(ids)
    person = src.person(p_auth, p_value)
    demo = _pid_features(r, pid, src, ids)
    out["patient_identities"] = [
        src.row(f"{control_id} PID", identity_id=src.record_id("identity", p_auth, p_value, auth, value),
                person_id=person, assigning_authority=auth, identifier_type=itype,
                identifier_key=src.record_id("identifier", auth, value),
                is_primary=(auth, value) == (p_auth, p_value),
                merged_into_person_id=None, **demo, **identifier_keys(src.key, auth, itype, value))
        for auth, value, itype in ids
    ]
    mrg = r.first("MRG")
    if trigger == "A40" and mrg is not None:
        for auth, value, itype in _identities(r, mrg, src):
            prior = src.person(auth, value)
            out["patient_identities"].append(src.row(
                f"{control_id} MRG", identity_id=src.record_id("identity", auth, value, auth, value),
                person_id=prior, assigning_authority=auth, identifier_type=itype,
                identifier_key=src.record_id("identifier", auth, value), is_primary=True,
                merged_into_person_id=person, **identifier_keys(src.key, auth, itype, value)))
    encounter_id = _encounter(r, src, person, control_id, trigger, out)
    for i, dg1 in enumerate(r.segments("DG1"), 1):
        code = r.get(dg1, 3, 1, 1)
        if not code:
            continue
        system = system_name(r.get(dg1, 3, 1, 3) or r.get(dg1, 2)) or "unknown"
        out.setdefault("conditions", []).append(src.row(
            f"{control_id} DG1 {r.get(dg1, 1) or i}",
            condition_id=src.record_id("condition", person, encounter_id, system, code),
            person_id=person, encounter_id=encounter_id, code=code, code_system=system,
            icd10_code=code if system.startswith("ICD-10") and system != "ICD-10-PCS" else None,
            display=r.get(dg1, 3, 1, 2) or r.get(dg1, 4), onset_time=hl7_timestamp(r.get(dg1, 5)),
            clinical_status=r.get(dg1, 6)))
    _allergies(r, src, person, encounter_id, control_id, out)
    if r.get(r.first("MSH"), 9, 1, 1) in PHARMACY_ADMINISTRATION:
        _administrations(r, src, person, encounter_id, control_id, out)
    else:
        _immunizations(r, src, person, encounter_id, control_id, out)
    _medication_orders(r, src, person, encounter_id, control_id, out)
    _procedures(r, src, person, encounter_id, control_id, out)
    _observations(r, src, person, encounter_id, control_id, out)
    return out


def _encounter(r: Reader, src: Source, person: str, control_id: str, trigger: str | None,
               out: dict) -> str | None:
    pv1 = r.first("PV1")
    if pv1 is None:
        return None
    visit = r.get(pv1, 19)
    admit = hl7_timestamp(r.get(pv1, 44))
    if visit:
        encounter_id = src.record_id("encounter", r.get(pv1, 19, 1, 4), visit)
    elif admit:
        encounter_id = src.record_id("encounter", person, admit.isoformat())
    else:
        return None
    evn = r.first("EVN")
    event = hl7_timestamp(r.get(evn, 6) or r.get(evn, 2)) or src.event_time
    discharge = hl7_timestamp(r.get(pv1, 45))
    location = "/".join(p for p in (r.get(pv1, 3, 1, c) for c in (1, 2, 3)) if p) or None
    out.setdefault("encounters", []).append(src.row(
        f"{control_id} PV1", encounter_id=encounter_id, person_id=person,
        class_code=PATIENT_CLASS.get(r.get(pv1, 2) or "", r.get(pv1, 2)),
        status=EVENT_STATUS.get(trigger or ""),
        start_time=admit or (event if trigger in ("A01", "A04") else None),
        end_time=discharge or (event if trigger == "A03" else None),
        location=location, service=r.get(pv1, 10), last_event=trigger))
    return encounter_id


def _observations(r: Reader, src: Source, person: str, encounter_id: str | None, control_id: str,
                  out: dict) -> None:
    """One observation per OBX; each OBR opens a diagnostic report that lists the OBX after it."""
    order, order_time, report = control_id, None, None
    for n, seg in enumerate(r.msg, 1):
        name = str(seg[0])
        if name == "OBR":
            order = r.get(seg, 3) or r.get(seg, 2) or f"{control_id}#{n}"
            order_time = hl7_timestamp(r.get(seg, 7))
            report = _report(r, seg, src, person, encounter_id, control_id, order, n)
            if report is not None:
                out.setdefault("diagnostic_reports", []).append(report)
        elif name == "OBX":
            row = _obx(r, seg, src, person, encounter_id, control_id, order, order_time, n)
            if row is not None:
                out.setdefault("observations", []).append(row)
                if report is not None:
                    report["result_observation_ids"].append(row["observation_id"])


def _report(r: Reader, obr, src: Source, person: str, encounter_id: str | None, control_id: str,
            order: str, n: int) -> dict | None:
    code = r.get(obr, 4, 1, 1)
    if not code:
        return None
    system = system_name(r.get(obr, 4, 1, 3)) or "local"
    return src.row(
        f"{control_id} OBR {r.get(obr, 1) or n}", report_id=src.record_id("report", order),
        person_id=person, encounter_id=encounter_id, code=code, code_system=system,
        loinc_code=code if system == "LOINC" else None, display=r.get(obr, 4, 1, 2),
        category=r.get(obr, 24), status=r.get(obr, 25), effective_time=hl7_timestamp(r.get(obr, 7)),
        issued_time=hl7_timestamp(r.get(obr, 22)), result_observation_ids=[], conclusion=None)


def _obx(r: Reader, seg, src: Source, person: str, encounter_id: str | None, control_id: str,
         order: str, order_time, n: int) -> dict | None:
    code = r.get(seg, 3, 1, 1)
    if not code:
        return None
    set_id, vtype = r.get(seg, 1) or str(n), (r.get(seg, 2) or "").upper()
    system = system_name(r.get(seg, 3, 1, 3)) or "local"
    value_num = value_text = value_code = None
    if vtype == "NM":
        value_num = to_float(r.get(seg, 5))
        value_text = None if value_num is not None else r.get(seg, 5)
    elif vtype == "SN":
        comparator, num = r.get(seg, 5, 1, 1), r.get(seg, 5, 1, 2)
        value_num = to_float(num) if not comparator and not r.get(seg, 5, 1, 3) else None
        value_text = "".join(p for p in (r.get(seg, 5, 1, c) for c in (1, 2, 3, 4)) if p) or None
    elif vtype in CODED:
        value_code, value_text = r.get(seg, 5, 1, 1), r.get(seg, 5, 1, 2)
    else:
        parts = [r.get(seg, 5, i) for i in range(1, r.reps(seg, 5) + 1)]
        value_text = "\n".join(p for p in parts if p) or None
    ref_text = r.get(seg, 7)
    low, high = reference_range(ref_text)
    flag, derived = abnormal_flag(r.get(seg, 8), value_num, low, high)
    unit_code, unit_system = r.get(seg, 6, 1, 1), r.get(seg, 6, 1, 3)
    return src.row(
        f"{control_id} OBX {set_id}",
        observation_id=src.record_id("observation", order, set_id, code, r.get(seg, 4)),
        person_id=person, encounter_id=encounter_id, order_id=src.record_id("order", order),
        code=code, code_system=system, loinc_code=code if system == "LOINC" else None,
        display=r.get(seg, 3, 1, 2), category=None, value_type=vtype or None, value_num=value_num,
        value_text=value_text, value_code=value_code, unit=to_ucum(unit_code, unit_system),
        source_unit=unit_code, reference_low=low, reference_high=high, reference_text=ref_text,
        abnormal_flag=flag, abnormal_flag_derived=derived, status=r.get(seg, 11),
        effective_time=hl7_timestamp(r.get(seg, 14)) or order_time or src.event_time,
        components_json=None)


def _allergies(r: Reader, src: Source, person: str, encounter_id: str | None, control_id: str,
               out: dict) -> None:
    """AL1 as v2-to-FHIR maps it (AL1 lists current allergies, so they are active); keyed on the
    person and substance, so a re-sent list updates rather than adds."""
    for i, al1 in enumerate(r.segments("AL1"), 1):
        code, display = r.get(al1, 3, 1, 1), r.get(al1, 3, 1, 2)
        if not (code or display):
            continue
        system = system_name(r.get(al1, 3, 1, 3))
        kind, severity = (r.get(al1, 2) or "").upper(), (r.get(al1, 4) or "").upper()
        reactions = [(r.get(al1, 5, k, 1), r.get(al1, 5, k, 2), r.get(al1, 5, k, 3))
                     for k in range(1, r.reps(al1, 5) + 1)]
        out.setdefault("allergies", []).append(src.row(
            f"{control_id} AL1 {r.get(al1, 1) or i}",
            allergy_id=src.record_id("allergy", person, system, code or display.upper()),
            person_id=person, encounter_id=encounter_id, substance_code=code, substance_system=system,
            substance_display=display, category=ALLERGY_CATEGORY.get(kind),
            allergy_type=None if kind in ("", "MC") else "allergy",
            criticality=ALLERGY_CRITICALITY.get(severity),
            reaction="; ".join(t or c for c, t, _ in reactions if t or c) or None,
            reaction_code=next((c for c, t, s in reactions if c and (t or s)), None),
            severity=ALLERGY_SEVERITY.get(severity), clinical_status="active", verification_status=None,
            onset_time=hl7_timestamp(r.get(al1, 6)), recorded_time=None))


def _immunizations(r: Reader, src: Source, person: str, encounter_id: str | None, control_id: str,
                   out: dict) -> None:
    """One row per RXA (VXU); the RXR after it gives route and site."""
    current, k = None, 0
    for seg in r.msg:
        name = str(seg[0])
        if name == "RXA":
            k += 1
            current = _rxa(r, seg, src, person, encounter_id, f"{control_id} RXA {k}")
            if current is not None:
                out.setdefault("immunizations", []).append(current)
        elif name == "RXR" and current is not None:
            current["route"] = r.get(seg, 1, 1, 2) or r.get(seg, 1, 1, 1)
            current["site"] = r.get(seg, 2, 1, 2) or r.get(seg, 2, 1, 1)


def _rxa(r: Reader, rxa, src: Source, person: str, encounter_id: str | None, record: str) -> dict | None:
    reps = range(1, r.reps(rxa, 5) + 1)
    rep = next((k for k in reps if system_name(r.get(rxa, 5, k, 3)) == "CVX"), 1)
    code = r.get(rxa, 5, rep, 1)
    if not code:
        return None
    system = system_name(r.get(rxa, 5, rep, 3)) or "local"
    given = r.get(rxa, 3)
    dose = to_float(r.get(rxa, 6))
    unit_code, unit_system = r.get(rxa, 7, 1, 1), r.get(rxa, 7, 1, 3)
    note = r.get(rxa, 9, 1, 1)
    return src.row(
        record, immunization_id=src.record_id("immunization", person, system, code, given),
        person_id=person, encounter_id=encounter_id, vaccine_code=code, vaccine_system=system,
        vaccine_display=r.get(rxa, 5, rep, 2), status=_rxa_status(r, rxa),
        occurrence_time=hl7_timestamp(given),
        primary_source=None if note is None else note == "00", lot_number=r.get(rxa, 15),
        manufacturer=r.get(rxa, 17, 1, 2) or r.get(rxa, 17, 1, 1),
        dose_value=None if dose == UNKNOWN_AMOUNT else dose,
        dose_unit=to_ucum(unit_code, unit_system) or unit_code, route=None, site=None)


def _rxa_status(r: Reader, rxa) -> str:
    """RXA-21 D -> entered-in-error, RXA-20 RE/NA -> not-done, else completed (v2-to-FHIR 0322)."""
    if (r.get(rxa, 21) or "").upper() == "D":
        return "entered-in-error"
    return "not-done" if (r.get(rxa, 20) or "").upper() in NOT_ADMINISTERED else "completed"


def _order_groups(r: Reader) -> list[tuple[object, list]]:
    """(ORC, the segments after it up to the next ORC) for each order of the message."""
    groups: list[tuple[object, list]] = []
    for seg in r.msg:
        if str(seg[0]) == "ORC":
            groups.append((seg, []))
        elif groups:
            groups[-1][1].append(seg)
    return groups


def _order_number(r: Reader, orc) -> str | None:
    """ORC-2 placer order number with its namespace, else ORC-3 filler's: what stays the same when
    the placer, the pharmacy and the ward each send the order, so they update one row."""
    for field in (2, 3):
        number = r.get(orc, field, 1, 1)
        if number:
            return f"{number}^{r.get(orc, field, 1, 2) or ''}"
    return None


def _route_after(r: Reader, segs: list, i: int) -> str | None:
    """RXR-1 (display, else code) of the RXR that follows ``segs[i]``, before the next give segment."""
    for seg in segs[i + 1:]:
        name = str(seg[0])
        if name == "RXR":
            return r.get(seg, 1, 1, 2) or r.get(seg, 1, 1, 1)
        if name in ("RXO", "RXE", "RXA", "RXD", "RXG"):
            break
    return None


def _medication_orders(r: Reader, src: Source, person: str, encounter_id: str | None, control_id: str,
                       out: dict) -> None:
    """One request per order (ORC) that carries an RXE or RXO: the pharmacy's RXE wins over the
    placer's RXO it encodes, and the RXR after the segment used gives the route."""
    seen = {"RXE": 0, "RXO": 0}
    for orc, segs in _order_groups(r):
        found: dict[str, tuple] = {}
        for i, seg in enumerate(segs):
            name = str(seg[0])
            if name in seen:
                seen[name] += 1
                found.setdefault(name, (name, seg, seen[name], _route_after(r, segs, i)))
        chosen = found.get("RXE") or found.get("RXO")
        row = _order(r, orc, segs, chosen, src, person, encounter_id, control_id) if chosen else None
        if row is not None:
            out.setdefault("medications", []).append(row)


def _order(r: Reader, orc, segs: list, chosen: tuple, src: Source, person: str, encounter_id: str | None,
           control_id: str) -> dict | None:
    """A MedicationRequest-like row (intent order) from ORC + RXE/RXO, keyed on the order number."""
    name, give, k, route = chosen
    code_f, min_f, max_f, unit_f = GIVE_FIELDS[name]
    where = f"message {control_id}, {name} {k}"
    code, display = r.get(give, code_f, 1, 1), r.get(give, code_f, 1, 2)
    if not (code or display):
        if name == "RXO":  # RXO-1 is conditional: a compound order lists its RXC components instead
            return None
        raise Unmappable(f"{where}: RXE-2 (give code) is empty")
    low, high = (_amount(r, give, f, f"{where}: {name}-{f}") for f in (min_f, max_f))
    unit_code, unit_system = r.get(give, unit_f, 1, 1), r.get(give, unit_f, 1, 3)
    tq1 = next((s for s in segs if str(s[0]) == "TQ1"), None)
    timing = (give, 1) if name == "RXE" else (orc, 7)  # TQ: .4 start, .5 end (before TQ1, v2.5)
    start = r.get(*timing, 1, 4) or r.get(tq1, 7) or r.get(orc, 15) or r.get(orc, 9)
    placed = (r.get(orc, 5) or "").upper()
    status = ORDER_STATUS.get(placed, "unknown") if placed else ORDER_CONTROL_STATUS.get(
        (r.get(orc, 1) or "").upper(), "unknown")
    order = _order_number(r, orc) or f"{control_id} {name} {k}"
    return src.row(
        f"{control_id} {name} {k}", medication_id=src.record_id("medication", "order", order),
        person_id=person, encounter_id=encounter_id, kind="request", code=code,
        code_system=system_name(r.get(give, code_f, 1, 3)) or ("local" if code else None), display=display,
        status=status, intent="order", dose_value=low if low is not None else high,
        dose_unit=to_ucum(unit_code, unit_system) or unit_code, route=route,
        start_time=hl7_timestamp(start), end_time=hl7_timestamp(r.get(*timing, 1, 5) or r.get(tq1, 8)))


def _amount(r: Reader, seg, field: int, where: str) -> float | None:
    """An NM amount; text that is not a number is the segment's error, not a missing value."""
    text = r.get(seg, field)
    value = to_float(text)
    if text is not None and value is None:
        raise Unmappable(f"{where} ({text!r}) is not a number")
    return value


def _administrations(r: Reader, src: Source, person: str, encounter_id: str | None, control_id: str,
                     out: dict) -> None:
    """One administration per RXA of a pharmacy administration message (RAS), keyed on its order
    number and RXA-1/RXA-2 sub-ids; the RXR after it gives the route."""
    k = 0
    for orc, segs in _order_groups(r):
        order = _order_number(r, orc)
        for i, rxa in enumerate(segs):
            if str(rxa[0]) != "RXA":
                continue
            k += 1
            code, display = r.get(rxa, 5, 1, 1), r.get(rxa, 5, 1, 2)
            if not (code or display):
                raise Unmappable(f"message {control_id}, RXA {k}: RXA-5 (administered code) is empty")
            given = r.get(rxa, 3)
            key = (order, r.get(rxa, 1), r.get(rxa, 2)) if order else (person, code, given)
            unit_code, unit_system = r.get(rxa, 7, 1, 1), r.get(rxa, 7, 1, 3)
            out.setdefault("medications", []).append(src.row(
                f"{control_id} RXA {k}", medication_id=src.record_id("medication", "administration", *key),
                person_id=person, encounter_id=encounter_id, kind="administration", code=code,
                code_system=system_name(r.get(rxa, 5, 1, 3)) or ("local" if code else None),
                display=display, status=_rxa_status(r, rxa), intent=None,
                dose_value=_amount(r, rxa, 6, f"message {control_id}, RXA {k}: RXA-6"),
                dose_unit=to_ucum(unit_code, unit_system) or unit_code, route=_route_after(r, segs, i),
                start_time=hl7_timestamp(given), end_time=hl7_timestamp(r.get(rxa, 4))))


def _procedures(r: Reader, src: Source, person: str, encounter_id: str | None, control_id: str,
                out: dict) -> None:
    """PR1 as v2-to-FHIR maps it: a performed procedure (completed; PR1-20 D deletes it), keyed on
    PR1-19 when sent, else on the person, visit, code and time, so a re-sent ADT/BAR updates it."""
    for i, pr1 in enumerate(r.segments("PR1"), 1):
        code = r.get(pr1, 3, 1, 1)
        if not code:
            continue
        system = system_name(r.get(pr1, 3, 1, 3) or r.get(pr1, 2))
        when, ident = r.get(pr1, 5), r.get(pr1, 19, 1, 1)
        key = ("PR1-19", ident, r.get(pr1, 19, 1, 2)) if ident else (person, encounter_id, system, code, when)
        out.setdefault("procedures", []).append(src.row(
            f"{control_id} PR1 {r.get(pr1, 1) or i}", procedure_id=src.record_id("procedure", *key),
            person_id=person, encounter_id=encounter_id, code=code, code_system=system,
            display=r.get(pr1, 3, 1, 2) or r.get(pr1, 4),
            status="entered-in-error" if (r.get(pr1, 20) or "").upper() == "D" else "completed",
            performed_time=hl7_timestamp(when)))
