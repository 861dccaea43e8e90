"""HL7 v2 messages (already accepted into bronze) to silver clinical records.

The message is split with python-hl7 (fast, honours the message's own separators and
escape sequences); hl7apy has already validated it on the way into bronze. Mapped segments:
PID (identities and demographics), MRG (A40 merge), PV1 (encounters), DG1 (conditions),
OBR/OBX (observations, one per OBX). Other segments, Z-segments included, stay in bronze.
"""

from __future__ import annotations

from datetime import date

import hl7

from connectors.clinical_records import (
    Source,
    abnormal_flag,
    demographics,
    reference_range,
    system_name,
    to_float,
)
from connectors.hl7 import hl7_timestamp
from connectors.ucum import to_ucum

PATIENT_CLASS = {"I": "IMP", "O": "AMB", "E": "EMER", "P": "PRENC", "R": "AMB", "B": "IMP"}
EVENT_STATUS = {"A01": "in-progress", "A02": "in-progress", "A03": "finished", "A04": "arrived",
                "A11": "cancelled", "A13": "in-progress"}
CODED = {"CE", "CWE", "CNE", "CF"}


class Reader:
    """Positional access (1-based field, repetition, component, subcomponent), unescaped."""

    def __init__(self, text: str):
        self.msg = hl7.parse(text)

    def segments(self, name: str) -> list:
        return [s for s in self.msg if str(s[0]) == name]

    def first(self, name: str):
        found = self.segments(name)
        return found[0] if found else None

    def get(self, seg, field: int, rep: int = 1, comp: int = 1, sub: int = 1) -> str | None:
        if seg is None:
            return None
        try:
            x = seg[field]
        except IndexError:
            return None
        for idx in (rep, comp, sub):
            if isinstance(x, str):
                if idx != 1:
                    return None
                continue
            if len(x) < idx:
                return None
            x = x[idx - 1]
        value = self.msg.unescape(str(x)) if isinstance(x, str) else None
        return value if value not in (None, "", '""') else None

    def reps(self, seg, field: int) -> int:
        if seg is None:
            return 0
        try:
            x = seg[field]
        except IndexError:
            return 0
        return 1 if isinstance(x, str) else len(x)


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
    demo = demographics(src.key, r.get(pid, 8), _date(r.get(pid, 7)), r.get(pid, 5, 1, 1),
                        r.get(pid, 5, 1, 2), r.get(pid, 11, 1, 5))
    out["patient_identities"] = [
        src.row(f"{control_id} PID", identity_id=src.record_id("identity", p_auth, p_value, auth, value),
                person_id=person, assigning_authority=auth, identifier_type=itype,
                identifier_key=src.record_id("identifier", auth, value),
                is_primary=(auth, value) == (p_auth, p_value),
                merged_into_person_id=None, **demo)
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
                merged_into_person_id=person, **demographics(src.key, None, None, None, None, None)))
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
    order, order_time = control_id, None
    for n, seg in enumerate(r.msg, 1):
        name = str(seg[0])
        if name == "OBR":
            order = r.get(seg, 3) or r.get(seg, 2) or f"{control_id}#{n}"
            order_time = hl7_timestamp(r.get(seg, 7))
            continue
        if name != "OBX":
            continue
        code = r.get(seg, 3, 1, 1)
        if not code:
            continue
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
        out.setdefault("observations", []).append(src.row(
            f"{control_id} OBX {set_id}",
            observation_id=src.record_id("observation", order, set_id, code, r.get(seg, 4)),
            person_id=person, encounter_id=encounter_id, order_id=src.record_id("order", order),
            code=code, code_system=system, loinc_code=code if system == "LOINC" else None,
            display=r.get(seg, 3, 1, 2), category=None, value_type=vtype or None, value_num=value_num,
            value_text=value_text, value_code=value_code, unit=to_ucum(unit_code, unit_system),
            source_unit=unit_code, reference_low=low, reference_high=high, reference_text=ref_text,
            abnormal_flag=flag, abnormal_flag_derived=derived, status=r.get(seg, 11),
            effective_time=hl7_timestamp(r.get(seg, 14)) or order_time or src.event_time,
            components_json=None))
