"""The demo population's clinical feeds: HL7 v2 from the county and city hospitals, FHIR R4
Bundles from the provincial hospital.

Registrations come from ``person_population`` (ADT with PID as each desk writes it). Each
clinical ``Event`` of ``demo_population`` is sent the way its center would: at the county and
the city an ADT^A08 with a DG1 for a diagnosis and an ORU^R01 with one OBX for an HbA1c result;
at the province a Condition, Observation or MedicationRequest (metformin, and clopidogrel or
capecitabine for the persons ``demo_population`` genotyped for them) with its Encounter in the
patient's Bundle. The codes are those the connectors map: ICD-10 (HL7 ``I10``, FHIR
``http://hl7.org/fhir/sid/icd-10``), LOINC, UCUM ``%`` and ATC.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date
from pathlib import Path

from omicslake import person_population as pp
from omicslake.demo_population import (
    CAPECITABINE,
    CLOPIDOGREL,
    HBA1C,
    ICD10,
    METFORMIN,
    DemoPopulation,
    Event,
)

REGISTERED = "20240102080000"  # when the centers sent the registrations (ADT)
FHIR_BASE = "http://prv-n.example.cn/fhir"
UCUM = "http://unitsofmeasure.org"
TERMINOLOGY = "http://terminology.hl7.org/CodeSystem"
WARDS = {"I63": ("I", "NEURO"), "C34": ("I", "THORACIC"), "C50": ("O", "BREAST"), "C56": ("O", "GYN-ONC"),
         "E10": ("O", "ENDO"), "E11": ("O", "ENDO")}


def _ts(day: date, hour: int = 9) -> str:
    return f"{day:%Y%m%d}{hour:02d}0000"


# --- HL7 v2 ------------------------------------------------------------------------------------


def pid_segment(r: pp.Record) -> str:
    """The PID segment this registration's HIS sends (names, ids, phone as the desk wrote them)."""
    return next(s for s in pp.hl7_message(r, 0, REGISTERED).split("\r") if s.startswith("PID|"))


def _msh(center: str, app: str, when: str, message_type: str, control_id: str) -> str:
    return (f"MSH|^~\\&|{app}|{center}|OMICSLAKE|NAT|{when}||{message_type}|{control_id}|P|2.5.1"
            "|||||CHN|UNICODE UTF-8")


def _pv1(r: pp.Record, visit: str, when: str, patient_class: str, ward: str) -> str:
    """A visit of its own per event (PV1-19 visit number, PV1-44 admit time): one encounter each."""
    pv1 = ["PV1", "1", patient_class, f"{ward}^^^{r.center_id}"] + [""] * 41
    pv1[19], pv1[44] = f"{visit}^^^{r.center_id}^VN", when
    return "|".join(pv1)


def diagnosis_message(r: pp.Record, e: Event, n: int) -> str:
    """ADT^A08 with one DG1 (DG1-3 ICD-10 coded ``I10``, DG1-5 the diagnosis date)."""
    when = _ts(e.day)
    patient_class, ward = WARDS[e.code[:3]]
    return "\r".join([
        _msh(r.center_id, "HIS", when, "ADT^A08^ADT_A01", f"{r.center_id}-DX-{n:06d}"), f"EVN|A08|{when}",
        pid_segment(r), _pv1(r, f"V{r.identifier}-{e.day:%Y%m%d}", when, patient_class, ward),
        f"DG1|1||{e.code}^{ICD10[e.code]}^I10||{when}|F"])


def hba1c_message(r: pp.Record, e: Event, n: int) -> str:
    """ORU^R01 from the lab: one OBR and one numeric OBX (LOINC 4548-4, unit % in UCUM)."""
    when, order = _ts(e.day, 8), f"HBA1C-{r.identifier}-{e.day:%Y%m%d}"
    obr = ["OBR", "1", order, order, f"{HBA1C[0]}^{HBA1C[1]}^LN"] + [""] * 21
    obr[7], obr[22], obr[24], obr[25] = when, when, "LAB", "F"
    flag = "H" if e.value > 5.6 else "N"
    return "\r".join([
        _msh(r.center_id, "LIS", when, "ORU^R01^ORU_R01", f"{r.center_id}-LAB-{n:06d}"), pid_segment(r),
        _pv1(r, f"L{r.identifier}-{e.day:%Y%m%d}", when, "O", "LAB"), "|".join(obr),
        f"OBX|1|NM|{HBA1C[0]}^{HBA1C[1]}^LN||{e.value:.1f}|%^percent^UCUM|4.0-5.6|{flag}|||F|||{when}"])


def hl7_messages(demo: DemoPopulation, center: str) -> dict[str, list[str]]:
    """A center's messages by kind: ``adt`` registrations, ``dx`` diagnoses, ``lab`` results."""
    adt = [pp.hl7_message(r, n, REGISTERED) for n, r in enumerate(demo.pop.records)
           if r.fmt == "HL7v2" and r.center_id == center]
    mine = [(n, e, demo.homes[(e.person, center)]) for n, e in enumerate(demo.events)
            if e.center_id == center]
    dx = [diagnosis_message(home, e, n) for n, e, home in mine if e.kind == "diagnosis"]
    lab = [hba1c_message(home, e, n) for n, e, home in mine if e.kind == "hba1c"]
    return {"adt": adt, "dx": dx, "lab": lab}


def write_hl7(path: Path, messages: Iterable[str]) -> Path:
    """An HL7 file: segments ended by CR, messages one after the other (written once)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(m + "\r\n" for m in messages), encoding="utf-8")
    return path


# --- FHIR R4 -----------------------------------------------------------------------------------


def _concept(system: str, code: str, display: str | None = None) -> dict:
    coding = {"system": system, "code": code, **({"display": display} if display else {})}
    return {"coding": [coding]}


def _quantity(value: float, unit: str) -> dict:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def encounter(patient: str, eid: str, day: date, cls: str = "AMB") -> dict:
    return {"resourceType": "Encounter", "id": eid, "status": "finished",
            "class": {"system": f"{TERMINOLOGY}/v3-ActCode", "code": cls},
            "subject": {"reference": f"Patient/{patient}"},
            "period": {"start": f"{day}T09:00:00+08:00", "end": f"{day}T11:00:00+08:00"}}


def condition(patient: str, eid: str, e: Event, rid: str) -> dict:
    return {"resourceType": "Condition", "id": rid,
            "clinicalStatus": _concept(f"{TERMINOLOGY}/condition-clinical", "active"),
            "verificationStatus": _concept(f"{TERMINOLOGY}/condition-ver-status", "confirmed"),
            "category": [_concept(f"{TERMINOLOGY}/condition-category", "encounter-diagnosis")],
            "code": _concept("http://hl7.org/fhir/sid/icd-10", e.code, ICD10[e.code]),
            "subject": {"reference": f"Patient/{patient}"}, "encounter": {"reference": f"Encounter/{eid}"},
            "onsetDateTime": e.day.isoformat(), "recordedDate": e.day.isoformat()}


def hba1c(patient: str, eid: str, e: Event, rid: str) -> dict:
    flag = "H" if e.value > 5.6 else "N"
    return {"resourceType": "Observation", "id": rid, "status": "final",
            "category": [_concept(f"{TERMINOLOGY}/observation-category", "laboratory")],
            "code": _concept("http://loinc.org", HBA1C[0], HBA1C[1]),
            "subject": {"reference": f"Patient/{patient}"}, "encounter": {"reference": f"Encounter/{eid}"},
            "effectiveDateTime": f"{e.day}T08:00:00+08:00", "valueQuantity": _quantity(e.value, "%"),
            "referenceRange": [{"low": _quantity(4.0, "%"), "high": _quantity(5.6, "%")}],
            "interpretation": [_concept(f"{TERMINOLOGY}/v3-ObservationInterpretation", flag)]}


# ATC code -> (name, dosage text, dose in mg, product text) of each drug the demo prescribes.
DRUGS = {
    METFORMIN[0]: (METFORMIN[1], "500 mg twice daily with meals", 500, "metformin 500 mg tablet"),
    CLOPIDOGREL[0]: (CLOPIDOGREL[1], "75 mg once daily", 75, "clopidogrel 75 mg tablet"),
    CAPECITABINE[0]: (CAPECITABINE[1], "1000 mg/m2 twice daily on days 1-14 of a 21-day cycle", 1500,
                      "capecitabine 500 mg tablet"),
}


def medication_request(patient: str, eid: str, e: Event, rid: str) -> dict:
    """Coded in ATC only: the FHIR mapper prefers an RxNorm coding when there is one, and the
    medication alerts match prescriptions by ATC code as well as by RxNorm ingredient."""
    name, text, mg, product = DRUGS[e.code]
    dose = {"text": text, "route": _concept("http://snomed.info/sct", "26643006", "Oral route"),
            "doseAndRate": [{"doseQuantity": _quantity(mg, "mg")}]}
    drug = {**_concept("http://www.whocc.no/atc", e.code, name), "text": product}
    return {"resourceType": "MedicationRequest", "id": rid, "status": "active", "intent": "order",
            "medicationCodeableConcept": drug,
            "subject": {"reference": f"Patient/{patient}"}, "encounter": {"reference": f"Encounter/{eid}"},
            "authoredOn": e.day.isoformat(), "dosageInstruction": [dose]}


BUILDERS = {"diagnosis": condition, "hba1c": hba1c,
            **{name: medication_request for name, *_ in DRUGS.values()}}  # the Event kind of a drug


def patient_bundle(r: pp.Record, events: list[Event]) -> dict:
    """A collection Bundle: the Patient, its registration visit, and each event with its visit."""
    pid = r.identifier
    resources = [pp.fhir_patient(r), encounter(pid, f"{pid}-reg", date(2024, 1, 2))]
    for k, e in enumerate(events):
        eid = f"{pid}-enc{k}"
        resources += [encounter(pid, eid, e.day, "IMP" if e.code.startswith(("I63", "C34")) else "AMB"),
                      BUILDERS[e.kind](pid, eid, e, f"{pid}-{e.kind}{k}")]
    return {"resourceType": "Bundle", "id": f"bundle-{pid}", "type": "collection",
            "entry": [{"fullUrl": f"{FHIR_BASE}/{x['resourceType']}/{x['id']}", "resource": x}
                      for x in resources]}


def write_fhir(demo: DemoPopulation, folder: Path) -> list[Path]:
    """One Bundle file per provincial Patient (written once), events filed under the person's
    first registration there."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for r in (r for r in demo.pop.records if r.fmt == "FHIR"):
        path = folder / f"{r.identifier}.json"
        if not path.exists():
            mine = demo.homes.get((r.person, pp.PROVINCE)) is r
            events = [e for e in demo.events if mine and e.person == r.person and e.center_id == pp.PROVINCE]
            path.write_text(json.dumps(patient_bundle(r, events), ensure_ascii=False, indent=1) + "\n",
                            encoding="utf-8")
        out.append(path)
    return out
