"""What the HL7 v2 and FHIR mappers share: record context, keyed ids, ranges and flags.

Every silver clinical row carries its source (format, system, record, checksum, run) and a
record id that is a keyed pseudonym of the source's own id, so re-sent or corrected records
update the same row, and no source identifier reaches silver in clear.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

from connectors.ucum import to_ucum
from omicslake.pseudonym import person_id, pseudonym

TABLES = ("encounters", "conditions", "observations", "medications", "procedures", "allergies",
          "immunizations", "diagnostic_reports", "followup_answers", "patient_identities")
ICD10_SYSTEMS = {
    "I10": "ICD-10", "ICD10": "ICD-10", "ICD-10": "ICD-10", "ICD10CN": "ICD-10",
    "I10C": "ICD-10-CM", "ICD10CM": "ICD-10-CM", "ICD-10-CM": "ICD-10-CM",
    "http://hl7.org/fhir/sid/icd-10": "ICD-10", "http://hl7.org/fhir/sid/icd-10-cm": "ICD-10-CM",
}
SYSTEM_NAMES = {
    **ICD10_SYSTEMS, "LN": "LOINC", "LOINC": "LOINC", "http://loinc.org": "LOINC",
    "SCT": "SNOMED CT", "SNM": "SNOMED CT", "SNOMED": "SNOMED CT", "http://snomed.info/sct": "SNOMED CT",
    "RXNORM": "RxNorm", "http://www.nlm.nih.gov/research/umls/rxnorm": "RxNorm",
    # HL7 table 0396 names WHO ATC "WC" ("ATC" there is the American Type Culture Collection,
    # which no drug field carries, so senders that write ATC mean the WHO classification too)
    "ATC": "ATC", "WC": "ATC", "http://www.whocc.no/atc": "ATC", "C4": "CPT", "C5": "CPT", "CPT": "CPT",
    "http://www.ama-assn.org/go/cpt": "CPT", "I10P": "ICD-10-PCS", "ICD10PCS": "ICD-10-PCS",
    "http://www.cms.gov/Medicare/Coding/ICD10": "ICD-10-PCS",
    "I9C": "ICD-9-CM", "I9CP": "ICD-9-CM", "I9CDX": "ICD-9-CM", "ICD9CM": "ICD-9-CM",
    "http://hl7.org/fhir/sid/icd-9-cm": "ICD-9-CM", "HCPCS": "HCPCS", "HPC": "HCPCS",
    "CVX": "CVX", "http://hl7.org/fhir/sid/cvx": "CVX", "NDC": "NDC", "http://hl7.org/fhir/sid/ndc": "NDC",
    "UNII": "UNII", "http://fdasis.nlm.nih.gov": "UNII",
}
_RANGE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(?:-|–|\.\.|~|to)\s*(-?\d+(?:\.\d+)?)\s*$")
_BOUND = re.compile(r"^\s*(<=|>=|<|>|≤|≥)\s*(-?\d+(?:\.\d+)?)\s*$")


class Unmappable(ValueError):
    """A record that breaks a rule of its own format (an RXE without its required give code, an
    answer that does not fit its Questionnaire item): the whole record is quarantined with this
    reason rather than landing in part."""


@dataclass(frozen=True)
class Source:
    """Where a record came from; ``key`` is the pseudonym key (never stored)."""

    key: bytes
    center_id: str
    source_format: str
    source_system: str
    event_time: datetime | None
    source_checksum: str
    ingest_run_id: str

    def record_id(self, kind: str, *parts: str | None) -> str:
        """Keyed id of a source record, stable across re-sends of the same record."""
        raw = "|".join([self.center_id, self.source_format, *(p or "" for p in parts)])
        return pseudonym(self.key, raw, kind)

    def person(self, authority: str | None, identifier: str) -> str:
        return person_id(self.key, authority or self.center_id, identifier)

    def row(self, source_record: str, **fields) -> dict:
        return {**fields, "center_id": self.center_id, "source_format": self.source_format,
                "source_system": self.source_system, "source_record": source_record,
                "event_time": self.event_time, "source_checksum": self.source_checksum,
                "ingest_run_id": self.ingest_run_id, "updated_at": datetime.now(UTC),
                "source_person_id": fields.get("person_id")}


def system_name(system: str | None) -> str | None:
    """A code system by its common name (LOINC, ICD-10, SNOMED CT, RxNorm ...), else as sent."""
    if not system:
        return None
    return SYSTEM_NAMES.get(system) or SYSTEM_NAMES.get(system.upper()) or system


def fhir_coding(concept: dict | None,
                prefer: set[str] | None = None) -> tuple[str | None, str | None, str | None]:
    """(code, system name, display) of a CodeableConcept, preferring systems in ``prefer``."""
    codings = (concept or {}).get("coding") or []
    chosen = next((c for c in codings if prefer and c.get("system") in prefer), codings[0] if codings else {})
    display = chosen.get("display") or (concept or {}).get("text")
    return chosen.get("code"), system_name(chosen.get("system")), display


def fhir_value(obj: dict) -> dict:
    """value[x] of an Observation, a component or a QuestionnaireResponse answer as the typed
    columns of silver.observations."""
    out = {"value_type": None, "value_num": None, "value_text": None, "value_code": None,
           "unit": None, "source_unit": None}
    for key in obj:
        if key.startswith("value") and key != "value":
            out["value_type"] = key[5:]
            v = obj[key]
            if key == "valueQuantity":
                out["value_num"] = v.get("value")
                out["source_unit"] = v.get("code") or v.get("unit")
                out["unit"] = to_ucum(v.get("code"), v.get("system")) or to_ucum(v.get("unit"))
            elif key == "valueCodeableConcept":
                out["value_code"], _, out["value_text"] = fhir_coding(v)
            elif key == "valueCoding":
                out["value_code"], _, out["value_text"] = fhir_coding({"coding": [v]})
            elif key in ("valueInteger", "valueDecimal"):
                out["value_num"] = float(v)
            elif key == "valueBoolean":
                out["value_text"] = str(v).lower()
            elif key == "valueRange":
                out["value_text"] = json.dumps(v, separators=(",", ":"))
            else:
                out["value_text"] = v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))
    return out


def reference_range(text: str | None) -> tuple[float | None, float | None]:
    """``4.0-6.0``, ``<5``, ``>=1.2`` -> (low, high); anything else -> (None, None)."""
    if not text:
        return None, None
    m = _RANGE.match(text)
    if m:
        return float(m.group(1)), float(m.group(2))
    m = _BOUND.match(text)
    if m:
        v = float(m.group(2))
        return (None, v) if m.group(1) in ("<", "<=", "≤") else (v, None)
    return None, None


def abnormal_flag(flag: str | None, value: float | None, low: float | None,
                  high: float | None) -> tuple[str | None, bool]:
    """(flag, derived): the flag as sent, else L/H/N from a numeric value and its range."""
    if flag:
        return flag.strip().upper(), False
    if value is None or (low is None and high is None):
        return None, False
    if low is not None and value < low:
        return "L", True
    if high is not None and value > high:
        return "H", True
    return "N", True


def to_float(text) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except (TypeError, ValueError):
        return None


def fhir_time(value: str | None) -> datetime | None:
    """FHIR date/dateTime/instant to UTC (a date or partial date is taken at 00:00 UTC)."""
    if not value:
        return None
    try:
        if len(value) <= 10:
            parts = [int(p) for p in value.split("-")] + [1, 1]
            return datetime(parts[0], parts[1], parts[2], tzinfo=UTC)
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt.astimezone(UTC) if dt.tzinfo else dt.replace(tzinfo=UTC)


def demographics(key: bytes, sex: str | None, birth: date | None, family: str | None,
                 given: str | None, postal: str | None) -> dict:
    """Linkage features with the direct identifiers replaced by keyed pseudonyms."""
    def norm(s: str | None) -> str | None:
        s = " ".join((s or "").upper().split())
        return s or None

    family, given = norm(family), norm(given)
    return {
        "sex": {"M": "M", "MALE": "M", "F": "F", "FEMALE": "F", "O": "O", "OTHER": "O"}.get(
            (sex or "").strip().upper(), "U" if sex else None),
        "birth_year": birth.year if birth else None,
        "birth_date_key": pseudonym(key, birth.isoformat(), "birthdate") if birth else None,
        "family_name_key": pseudonym(key, family, "name") if family else None,
        "given_name_key": pseudonym(key, given, "name") if given else None,
        "postal_prefix": (postal or "").strip()[:3] or None,
    }
