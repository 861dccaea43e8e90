"""FHIR R4 resources (already validated into bronze) to silver clinical records.

A FHIR person is filed under the Patient's logical id at the sending center (the reference
every other resource uses); the Patient's business identifiers go to ``patient_identities``
beside it, which is what person linkage joins on. MedicationRequest, MedicationStatement and
MedicationAdministration all land in ``medications`` (``kind`` request, statement or
administration), beside the HL7 RXE/RXO orders and RAS RXA administrations. A
QuestionnaireResponse goes to ``followup_answers`` (``connectors/fhir_followup.py``); a
Questionnaire stays in bronze, where responses are checked against it. Contained resources and
extensions stay in bronze's raw JSON.
"""

from __future__ import annotations

import json
from datetime import date

import pypinyin.contrib.tone_convert  # noqa: F401  (loaded before use: see below)
import pypinyin.pinyin_dict  # noqa: F401
from pypinyin import lazy_pinyin

from connectors import fhir_followup
from connectors.clinical_records import (
    ICD10_SYSTEMS,
    Source,
    abnormal_flag,
    fhir_coding,
    fhir_time,
    fhir_value,
)
from connectors.person_features import identifier_keys, identity_features, is_national_id, split_cjk_name
from connectors.ucum import to_ucum

# person_features imports pypinyin when it first needs it; two threads of one worker needing it at
# once trip over pypinyin's circular imports (ImportError or _DeadlockError, and the import stays
# broken in that process: the messages go to quarantine). Loaded here, under this module's own
# import lock, before any mapping runs, it never is.
lazy_pinyin("王")

MEDICATION_KINDS = {"MedicationRequest": "request", "MedicationStatement": "statement",
                    "MedicationAdministration": "administration"}
MAPPED = ("Patient", "Encounter", "Condition", "Observation", *MEDICATION_KINDS, "Procedure",
          "AllergyIntolerance", "Immunization", "DiagnosticReport", "QuestionnaireResponse")
SEVERITY_RANK = {"mild": 1, "moderate": 2, "severe": 3}


def fhir_authority(center_id: str) -> str:
    return f"FHIR:{center_id}"


def _ref_id(ref: dict | None, rtype: str) -> str | None:
    value = (ref or {}).get("reference") or ""
    marker = f"{rtype}/"
    return value.rsplit(marker, 1)[1].split("/")[0] if marker in value else None


def records(resource: dict, src: Source, questionnaire: dict | None = None) -> dict[str, list[dict]]:
    """Silver rows by table for one resource; empty for types silver does not model.
    ``questionnaire`` is the Questionnaire a QuestionnaireResponse names, found by the caller."""
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
    if rtype == "QuestionnaireResponse":
        return fhir_followup.records(resource, src, record, person, encounter_id, questionnaire)
    if rtype in _MAPPERS:
        row = _MAPPERS[rtype][1](resource, src, record, person, encounter_id)
        return {_MAPPERS[rtype][0]: [row]} if row else {}
    if rtype == "Encounter":
        cls = resource.get("class") or {}
        period = resource.get("period") or {}
        loc = ((resource.get("location") or [{}])[0].get("location") or {}).get("display")
        service = fhir_coding(resource.get("serviceType"))
        return {"encounters": [src.row(
            record, encounter_id=src.record_id("encounter", record), person_id=person,
            class_code=cls.get("code"), status=resource.get("status"),
            start_time=fhir_time(period.get("start")),
            end_time=fhir_time(period.get("end")), location=loc, service=service[0] or service[2],
            last_event="FHIR")]}
    if rtype == "Condition":
        code, system, display = fhir_coding(resource.get("code"), set(ICD10_SYSTEMS))
        if not code:
            return {}
        onset = resource.get("onsetDateTime") or (resource.get("onsetPeriod") or {}).get("start") \
            or resource.get("recordedDate")
        return {"conditions": [src.row(
            record, condition_id=src.record_id("condition", record), person_id=person,
            encounter_id=encounter_id, code=code, code_system=system or "unknown",
            icd10_code=code if (system or "").startswith("ICD-10") and system != "ICD-10-PCS" else None,
            display=display, onset_time=fhir_time(onset),
            clinical_status=fhir_coding(resource.get("clinicalStatus"))[0])]}
    if rtype == "Observation":
        if not fhir_coding(resource.get("code"))[0]:
            return {}
        return {"observations": [_observation(resource, src, record, person, encounter_id)]}
    if rtype in MEDICATION_KINDS:
        return {"medications": [_medication(resource, src, record, person, encounter_id)]}
    code, system, display = fhir_coding(resource.get("code"))
    performed = resource.get("performedDateTime") or (resource.get("performedPeriod") or {}).get("start")
    return {"procedures": [src.row(
        record, procedure_id=src.record_id("procedure", record), person_id=person,
        encounter_id=encounter_id, code=code, code_system=system, display=display,
        status=resource.get("status"), performed_time=fhir_time(performed))]}


def _patient(resource: dict, src: Source, record: str) -> list[dict]:
    """One identity per identifier; Patient.link replaced-by/replaces become merges (as A40),
    refer/seealso an identifier that links the two Patients deterministically."""
    rid = resource["id"]
    auth = fhir_authority(src.center_id)
    person = src.person(auth, rid)
    links = [(lk.get("type"), other) for lk in resource.get("link") or []
             if (other := _ref_id(lk.get("other"), "Patient")) and other != rid]
    ids = [(auth, rid, "FHIR-ID", True)] + [
        (i.get("system") or src.center_id, i["value"], fhir_coding(i.get("type"))[0], False)
        for i in resource.get("identifier") or [] if i.get("value")] + [
        (auth, other, "FHIR-LINK", False) for kind, other in links if kind in ("refer", "seealso")]
    demo = _patient_features(resource, src, ids)
    merged = next((src.person(auth, other) for kind, other in links if kind == "replaced-by"), None)
    shown = f"Patient/{src.record_id('patient', rid)}"  # a Patient's logical id identifies the person
    rows = [src.row(shown, identity_id=src.record_id("identity", record, a, v), person_id=person,
                    assigning_authority=a, identifier_type=t,
                    identifier_key=src.record_id("identifier", a, v),
                    is_primary=primary, merged_into_person_id=merged, **demo,
                    **identifier_keys(src.key, a, t, v))
            for a, v, t, primary in ids]
    return rows + [_replaced(src, shown, auth, other, person) for kind, other in links if kind == "replaces"]


def _replaced(src: Source, shown: str, auth: str, other: str, survivor: str) -> dict:
    """The identity of a Patient this one replaces, merged into it (like an A40's MRG)."""
    return src.row(
        f"{shown} replaces", identity_id=src.record_id("identity", f"Patient/{other}", auth, other),
        person_id=src.person(auth, other), assigning_authority=auth, identifier_type="FHIR-ID",
        identifier_key=src.record_id("identifier", auth, other), is_primary=True,
        merged_into_person_id=survivor, **identifier_keys(src.key, auth, "FHIR-ID", other))


def _patient_features(resource: dict, src: Source, ids: list) -> dict:
    """Keyed linkage features of every name, telecom phone and address (the official name first)."""
    names = sorted(resource.get("name") or [], key=lambda n: n.get("use") != "official")
    pairs = [(n.get("family"), " ".join(n.get("given") or []) or None)
             if (n.get("family") or n.get("given")) else split_cjk_name(n.get("text")) for n in names]
    phones = [t.get("value") for t in resource.get("telecom") or []
              if t.get("system") in (None, "phone", "sms")]
    addresses = resource.get("address") or []
    texts = [a.get("text") or " ".join(p for p in (a.get("state"), a.get("city"), a.get("district"),
                                                    *(a.get("line") or [])) if p) for a in addresses]
    birth = fhir_time(resource.get("birthDate"))
    born = date(birth.year, birth.month, birth.day) if birth else None
    national = [v for a, v, t, _ in ids if is_national_id(a, t)]
    return identity_features(src.key, pairs, born, resource.get("gender"), phones, texts,
                             (addresses[0] if addresses else {}).get("postalCode"), national)


def _observation(resource: dict, src: Source, record: str, person: str, encounter_id: str | None) -> dict:
    code, system, display = fhir_coding(resource.get("code"), {"http://loinc.org"})
    value = fhir_value(resource)
    rr = (resource.get("referenceRange") or [{}])[0]
    low, high = (rr.get("low") or {}).get("value"), (rr.get("high") or {}).get("value")
    interp = fhir_coding((resource.get("interpretation") or [None])[0])[0]
    flag, derived = abnormal_flag(interp, value["value_num"], low, high)
    effective = resource.get("effectiveDateTime") or resource.get("effectiveInstant") \
        or (resource.get("effectivePeriod") or {}).get("start") or resource.get("issued")
    components = [{"code": fhir_coding(c.get("code"))[0], "system": fhir_coding(c.get("code"))[1],
                   **{k: v for k, v in fhir_value(c).items() if v is not None}}
                  for c in resource.get("component") or []]
    return src.row(
        record, observation_id=src.record_id("observation", record), person_id=person,
        encounter_id=encounter_id, order_id=None, code=code, code_system=system or "unknown",
        loinc_code=code if system == "LOINC" else None, display=display,
        category=fhir_coding((resource.get("category") or [None])[0])[0], **value,
        reference_low=low, reference_high=high, reference_text=rr.get("text"), abnormal_flag=flag,
        abnormal_flag_derived=derived, status=resource.get("status"), effective_time=fhir_time(effective),
        components_json=json.dumps(components, separators=(",", ":")) if components else None)


def _medication(resource: dict, src: Source, record: str, person: str, encounter_id: str | None) -> dict:
    """A request (dosageInstruction, authoredOn), statement or administration (dosage, effective[x])."""
    concept = resource.get("medicationCodeableConcept")
    code, system, display = fhir_coding(concept, {"http://www.nlm.nih.gov/research/umls/rxnorm"})
    if concept is None:
        display = (resource.get("medicationReference") or {}).get("display")
    kind = MEDICATION_KINDS[resource["resourceType"]]
    if kind == "request":
        dosage = (resource.get("dosageInstruction") or [{}])[0]
        start = resource.get("authoredOn")
        end = ((resource.get("dispenseRequest") or {}).get("validityPeriod") or {}).get("end")
    else:
        dosage = (resource.get("dosage") or [{}])[0] if kind == "statement" else resource.get("dosage") or {}
        period = resource.get("effectivePeriod") or {}
        start, end = resource.get("effectiveDateTime") or period.get("start"), period.get("end")
    dose = dosage.get("dose") or ((dosage.get("doseAndRate") or [{}])[0]).get("doseQuantity") or {}
    route = fhir_coding(dosage.get("route"))
    return src.row(
        record, medication_id=src.record_id("medication", record), person_id=person,
        encounter_id=encounter_id, kind=kind, code=code, code_system=system,
        display=display, status=resource.get("status"), intent=resource.get("intent"),
        dose_value=dose.get("value"),
        dose_unit=to_ucum(dose.get("code"), dose.get("system")) or dose.get("unit"),
        route=route[2] or route[0], start_time=fhir_time(start), end_time=fhir_time(end))


def _allergy(resource: dict, src: Source, record: str, person: str, encounter_id: str | None) -> dict | None:
    code, system, display = fhir_coding(resource.get("code"))
    if not (code or display):
        return None
    reactions = resource.get("reaction") or []
    shown = [fhir_coding(m) for rx in reactions for m in rx.get("manifestation") or []]
    severities = [rx["severity"] for rx in reactions if rx.get("severity") in SEVERITY_RANK]
    onset = resource.get("onsetDateTime") or (resource.get("onsetPeriod") or {}).get("start")
    return src.row(
        record, allergy_id=src.record_id("allergy", record), person_id=person, encounter_id=encounter_id,
        substance_code=code, substance_system=system, substance_display=display,
        category=",".join(resource.get("category") or []) or None, allergy_type=resource.get("type"),
        criticality=resource.get("criticality"),
        reaction="; ".join(d or c for c, _, d in shown if d or c) or None,
        reaction_code=next((c for c, _, _ in shown if c), None),
        severity=max(severities, key=SEVERITY_RANK.__getitem__) if severities else None,
        clinical_status=fhir_coding(resource.get("clinicalStatus"))[0],
        verification_status=fhir_coding(resource.get("verificationStatus"))[0],
        onset_time=fhir_time(onset), recorded_time=fhir_time(resource.get("recordedDate")))


def _immunization(resource: dict, src: Source, record: str, person: str,
                  encounter_id: str | None) -> dict | None:
    code, system, display = fhir_coding(resource.get("vaccineCode"), {"http://hl7.org/fhir/sid/cvx"})
    if not code:
        return None
    dose = resource.get("doseQuantity") or {}
    route, site = fhir_coding(resource.get("route")), fhir_coding(resource.get("site"))
    return src.row(
        record, immunization_id=src.record_id("immunization", record), person_id=person,
        encounter_id=encounter_id, vaccine_code=code, vaccine_system=system or "unknown",
        vaccine_display=display, status=resource.get("status"),
        occurrence_time=fhir_time(resource.get("occurrenceDateTime")),
        primary_source=resource.get("primarySource"), lot_number=resource.get("lotNumber"),
        manufacturer=(resource.get("manufacturer") or {}).get("display"), dose_value=dose.get("value"),
        dose_unit=to_ucum(dose.get("code"), dose.get("system")) or dose.get("unit"),
        route=route[2] or route[0], site=site[2] or site[0])


def _report(resource: dict, src: Source, record: str, person: str, encounter_id: str | None) -> dict | None:
    """Results become the observation_id silver.observations gives the referenced Observation."""
    code, system, display = fhir_coding(resource.get("code"), {"http://loinc.org"})
    if not code:
        return None
    effective = resource.get("effectiveDateTime") or (resource.get("effectivePeriod") or {}).get("start")
    results = [src.record_id("observation", f"Observation/{oid}")
               for ref in resource.get("result") or [] if (oid := _ref_id(ref, "Observation"))]
    return src.row(
        record, report_id=src.record_id("report", record), person_id=person, encounter_id=encounter_id,
        code=code, code_system=system or "unknown", loinc_code=code if system == "LOINC" else None,
        display=display, category=fhir_coding((resource.get("category") or [None])[0])[0],
        status=resource.get("status"), effective_time=fhir_time(effective),
        issued_time=fhir_time(resource.get("issued")), result_observation_ids=results,
        conclusion=resource.get("conclusion"))


_MAPPERS = {"AllergyIntolerance": ("allergies", _allergy), "Immunization": ("immunizations", _immunization),
            "DiagnosticReport": ("diagnostic_reports", _report)}
