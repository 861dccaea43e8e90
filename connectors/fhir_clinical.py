"""FHIR R4 resources (already validated into bronze) to silver clinical records.

A FHIR person is filed under the Patient's logical id at the sending center (the reference
every other resource uses); the Patient's business identifiers go to ``patient_identities``
beside it, which is what person linkage joins on. Contained resources and extensions stay in
bronze's raw JSON.
"""

from __future__ import annotations

import json
from datetime import date

from connectors.clinical_records import (
    ICD10_SYSTEMS,
    Source,
    abnormal_flag,
    demographics,
    fhir_time,
    system_name,
)
from connectors.ucum import to_ucum

MAPPED = ("Patient", "Encounter", "Condition", "Observation", "MedicationRequest", "MedicationStatement",
          "Procedure")


def fhir_authority(center_id: str) -> str:
    return f"FHIR:{center_id}"


def _ref_id(ref: dict | None, rtype: str) -> str | None:
    value = (ref or {}).get("reference") or ""
    marker = f"{rtype}/"
    return value.rsplit(marker, 1)[1].split("/")[0] if marker in value else None


def _coding(concept: dict | None,
            prefer: set[str] | None = None) -> tuple[str | None, str | None, str | None]:
    """(code, system name, display) of a CodeableConcept, preferring systems in ``prefer``."""
    codings = (concept or {}).get("coding") or []
    chosen = next((c for c in codings if prefer and c.get("system") in prefer), codings[0] if codings else {})
    display = chosen.get("display") or (concept or {}).get("text")
    return chosen.get("code"), system_name(chosen.get("system")), display


def _value(obj: dict) -> dict:
    """value[x] of an Observation or component as typed columns."""
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
                out["value_code"], _, out["value_text"] = _coding(v)
            elif key in ("valueInteger", "valueDecimal"):
                out["value_num"] = float(v)
            elif key == "valueBoolean":
                out["value_text"] = str(v).lower()
            elif key == "valueRange":
                out["value_text"] = json.dumps(v, separators=(",", ":"))
            else:
                out["value_text"] = v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))
    return out


def records(resource: dict, src: Source) -> dict[str, list[dict]]:
    """Silver rows by table for one resource; empty for types silver does not model."""
    rtype, rid = resource.get("resourceType"), resource.get("id")
    if rtype not in MAPPED or not rid:
        return {}
    record = f"{rtype}/{rid}"
    if rtype == "Patient":
        return {"patient_identities": _patient(resource, src, record)}
    pat = _ref_id(resource.get("subject") or resource.get("patient"), "Patient")
    if not pat:
        return {}
    person = src.person(fhir_authority(src.center_id), pat)
    enc_ref = _ref_id(resource.get("encounter") or resource.get("context"), "Encounter")
    encounter_id = src.record_id("encounter", f"Encounter/{enc_ref}") if enc_ref else None
    if rtype == "Encounter":
        cls = resource.get("class") or {}
        period = resource.get("period") or {}
        loc = ((resource.get("location") or [{}])[0].get("location") or {}).get("display")
        service = _coding(resource.get("serviceType"))
        return {"encounters": [src.row(
            record, encounter_id=src.record_id("encounter", record), person_id=person,
            class_code=cls.get("code"), status=resource.get("status"),
            start_time=fhir_time(period.get("start")),
            end_time=fhir_time(period.get("end")), location=loc, service=service[0] or service[2],
            last_event="FHIR")]}
    if rtype == "Condition":
        code, system, display = _coding(resource.get("code"), set(ICD10_SYSTEMS))
        if not code:
            return {}
        onset = resource.get("onsetDateTime") or (resource.get("onsetPeriod") or {}).get("start") \
            or resource.get("recordedDate")
        return {"conditions": [src.row(
            record, condition_id=src.record_id("condition", record), person_id=person,
            encounter_id=encounter_id, code=code, code_system=system or "unknown",
            icd10_code=code if (system or "").startswith("ICD-10") and system != "ICD-10-PCS" else None,
            display=display, onset_time=fhir_time(onset),
            clinical_status=_coding(resource.get("clinicalStatus"))[0])]}
    if rtype == "Observation":
        if not _coding(resource.get("code"))[0]:
            return {}
        return {"observations": [_observation(resource, src, record, person, encounter_id)]}
    if rtype in ("MedicationRequest", "MedicationStatement"):
        return {"medications": [_medication(resource, src, record, person, encounter_id)]}
    code, system, display = _coding(resource.get("code"))
    performed = resource.get("performedDateTime") or (resource.get("performedPeriod") or {}).get("start")
    return {"procedures": [src.row(
        record, procedure_id=src.record_id("procedure", record), person_id=person,
        encounter_id=encounter_id, code=code, code_system=system, display=display,
        status=resource.get("status"), performed_time=fhir_time(performed))]}


def _patient(resource: dict, src: Source, record: str) -> list[dict]:
    rid = resource["id"]
    auth = fhir_authority(src.center_id)
    person = src.person(auth, rid)
    names = resource.get("name") or [{}]
    name = next((n for n in names if n.get("use") == "official"), names[0])
    birth = fhir_time(resource.get("birthDate"))
    postal = ((resource.get("address") or [{}])[0]).get("postalCode")
    born = date(birth.year, birth.month, birth.day) if birth else None
    demo = demographics(src.key, resource.get("gender"), born, name.get("family"),
                        (name.get("given") or [None])[0], postal)
    ids = [(auth, rid, "FHIR-ID", True)] + [
        (i.get("system") or src.center_id, i["value"], _coding(i.get("type"))[0], False)
        for i in resource.get("identifier") or [] if i.get("value")]
    return [src.row(record, identity_id=src.record_id("identity", record, a, v), person_id=person,
                    assigning_authority=a, identifier_type=t,
                    identifier_key=src.record_id("identifier", a, v),
                    is_primary=primary, merged_into_person_id=None, **demo)
            for a, v, t, primary in ids]


def _observation(resource: dict, src: Source, record: str, person: str, encounter_id: str | None) -> dict:
    code, system, display = _coding(resource.get("code"), {"http://loinc.org"})
    value = _value(resource)
    rr = (resource.get("referenceRange") or [{}])[0]
    low, high = (rr.get("low") or {}).get("value"), (rr.get("high") or {}).get("value")
    interp = _coding((resource.get("interpretation") or [None])[0])[0]
    flag, derived = abnormal_flag(interp, value["value_num"], low, high)
    effective = resource.get("effectiveDateTime") or resource.get("effectiveInstant") \
        or (resource.get("effectivePeriod") or {}).get("start") or resource.get("issued")
    components = [{"code": _coding(c.get("code"))[0], "system": _coding(c.get("code"))[1],
                   **{k: v for k, v in _value(c).items() if v is not None}}
                  for c in resource.get("component") or []]
    return src.row(
        record, observation_id=src.record_id("observation", record), person_id=person,
        encounter_id=encounter_id, order_id=None, code=code, code_system=system or "unknown",
        loinc_code=code if system == "LOINC" else None, display=display,
        category=_coding((resource.get("category") or [None])[0])[0], **value,
        reference_low=low, reference_high=high, reference_text=rr.get("text"), abnormal_flag=flag,
        abnormal_flag_derived=derived, status=resource.get("status"), effective_time=fhir_time(effective),
        components_json=json.dumps(components, separators=(",", ":")) if components else None)


def _medication(resource: dict, src: Source, record: str, person: str, encounter_id: str | None) -> dict:
    concept = resource.get("medicationCodeableConcept")
    code, system, display = _coding(concept, {"http://www.nlm.nih.gov/research/umls/rxnorm"})
    if concept is None:
        display = (resource.get("medicationReference") or {}).get("display")
    request = resource["resourceType"] == "MedicationRequest"
    dosage = ((resource.get("dosageInstruction") if request else resource.get("dosage")) or [{}])[0]
    dose = ((dosage.get("doseAndRate") or [{}])[0]).get("doseQuantity") or {}
    route = _coding(dosage.get("route"))
    if request:
        start = resource.get("authoredOn")
        end = ((resource.get("dispenseRequest") or {}).get("validityPeriod") or {}).get("end")
    else:
        period = resource.get("effectivePeriod") or {}
        start, end = resource.get("effectiveDateTime") or period.get("start"), period.get("end")
    return src.row(
        record, medication_id=src.record_id("medication", record), person_id=person,
        encounter_id=encounter_id, kind="request" if request else "statement", code=code, code_system=system,
        display=display, status=resource.get("status"), intent=resource.get("intent"),
        dose_value=dose.get("value"),
        dose_unit=to_ucum(dose.get("code"), dose.get("system")) or dose.get("unit"),
        route=route[2] or route[0], start_time=fhir_time(start), end_time=fhir_time(end))
