"""Source identities of a DICOM instance, from its identified header (DICOM JSON, PS3.18 F.2).

PatientID with IssuerOfPatientID (the center when absent) is the primary identity, the same
pseudonym ``ingest_dicom`` gives the instance; Other Patient IDs Sequence items are further
identities. The identifier type comes from Issuer of Patient ID Qualifiers > Identifier Type
Code (HL7 table 0203, so ``NNCHN`` marks a resident ID). Names, birth date, sex, address and
phone become the same keyed features HL7 and FHIR identities carry.
"""

from __future__ import annotations

from datetime import date, datetime

from connectors.clinical_records import Source
from connectors.person_features import identifier_keys, identity_features, is_national_id

PATIENT_ID, ISSUER, QUALIFIERS, TYPE_CODE = "00100020", "00100021", "00100024", "00400035"
NAME, BIRTH_DATE, SEX, OTHER_IDS = "00100010", "00100030", "00100040", "00101002"
ADDRESS, PHONES = "00101040", "00102154"


def _values(ds: dict, tag: str) -> list:
    return (ds.get(tag) or {}).get("Value") or []


def _text(ds: dict, tag: str) -> str | None:
    values = _values(ds, tag)
    value = str(values[0]).replace("\x00", "").strip() if values else ""
    return value or None


def _names(ds: dict) -> list[tuple[str | None, str | None]]:
    """(family, given) of each PN representation: ideographic first, then alphabetic, phonetic."""
    out = []
    for pn in _values(ds, NAME):
        for group in ("Ideographic", "Alphabetic", "Phonetic"):
            parts = (pn.get(group) or "").split("^") if isinstance(pn, dict) else []
            if any(p.strip() for p in parts[:2]):
                out.append((parts[0].strip() or None, (parts[1].strip() if len(parts) > 1 else "") or None))
    return out


def _birth(ds: dict) -> date | None:
    value = _text(ds, BIRTH_DATE) or ""
    try:
        return datetime.strptime(value[:8], "%Y%m%d").date()
    except ValueError:
        return None


def _ids(ds: dict, center_id: str) -> list[tuple[str, str, str | None]]:
    """(authority, identifier, type) of PatientID and of each Other Patient IDs item."""
    out = []
    for item in [ds, *(_values(ds, OTHER_IDS))]:
        value = _text(item, PATIENT_ID)
        if value:
            qualifiers = _values(item, QUALIFIERS)
            itype = _text(qualifiers[0], TYPE_CODE) if qualifiers else None
            out.append((_text(item, ISSUER) or center_id, value, itype))
    return out


def identity_rows(header: dict, src: Source, study_record: str) -> list[dict]:
    """``silver.patient_identities`` rows of one instance (empty without a PatientID)."""
    ids = _ids(header, src.center_id)
    if not ids:
        return []
    p_auth, p_value, _ = ids[0]
    person = src.person(p_auth, p_value)
    phones = [str(v) for v in _values(header, PHONES)]
    demo = identity_features(src.key, _names(header), _birth(header), _text(header, SEX), phones,
                             [_text(header, ADDRESS)], None,
                             [v for a, v, t in ids if is_national_id(a, t)])
    return [src.row(study_record, identity_id=src.record_id("identity", p_auth, p_value, auth, value),
                    person_id=person, assigning_authority=auth, identifier_type=itype,
                    identifier_key=src.record_id("identifier", auth, value), is_primary=i == 0,
                    merged_into_person_id=None, **demo, **identifier_keys(src.key, auth, itype, value))
            for i, (auth, value, itype) in enumerate(ids)]

