"""HL7 v2 pharmacy orders (RXE/RXO), administrations (RAS RXA) and procedures (PR1) in silver."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import functions as F

from connectors.clinical_records import Source, Unmappable
from connectors.hl7 import read_header, split_messages
from jobs import build_clinical, ingest_hl7
from omicslake.pseudonym import load_key, person_id

HL7 = Path(__file__).parent / "data" / "hl7"
KEY = b"unit-test-key-" + b"1" * 32
FILES = ("rde_o11.hl7", "omp_o09.hl7", "ras_o17.hl7", "adt_a08_procedures.hl7",
         "rde_o11_missing_give_code.hl7", "vxu_v04.hl7")


def _map(text: str) -> dict[str, list[dict]]:
    from connectors.hl7_clinical import records

    h = read_header(text)
    return records(text, Source(KEY, "CTY-S1", "HL7v2", "PHARMSYS@GENHOSP", None, "c" * 64, "run-1"),
                   h.control_id, h.trigger_event)


def _file(name: str) -> list[dict[str, list[dict]]]:
    return [_map(m.text) for m in split_messages((HL7 / name).read_bytes())]


def test_rde_orders_map_with_codes_doses_routes_times_and_status():
    first, dc = _file("rde_o11.hl7")
    amlo, amox = first["medications"]
    assert (amlo["kind"], amlo["intent"], amlo["code"], amlo["code_system"], amlo["display"]) == (
        "request", "order", "197361", "RxNorm", "Amlodipine 5 MG Oral Tablet")
    assert (amlo["dose_value"], amlo["dose_unit"], amlo["route"], amlo["status"]) == (
        5.0, "mg", "Oral", "active")
    assert (str(amlo["start_time"]), str(amlo["end_time"])) == ("2026-03-20 02:00:00", "2026-03-27 02:00:00")
    assert amlo["source_record"] == "RDE0001 RXE 1"
    assert amlo["encounter_id"] == first["encounters"][0]["encounter_id"]
    # WHO ATC as HL7 table 0396 names it (WC); a 1-2 g range keeps its minimum; ORC-5 SC is active
    assert (amox["code"], amox["code_system"], amox["dose_value"], amox["dose_unit"]) == (
        "J01CR02", "ATC", 1.0, "g")
    assert (amox["route"], amox["status"], amox["end_time"]) == ("Intravenous", "active", None)
    # the pharmacy discontinues ORD1001 (ORC-1 OD, ORC-5 DC): same order number, same row
    (stopped,) = dc["medications"]
    assert stopped["medication_id"] == amlo["medication_id"] and stopped["status"] == "stopped"
    assert str(stopped["end_time"]) == "2026-03-22 00:00:00"
    assert {r["person_id"] for r in (amlo, amox, stopped)} == {person_id(KEY, "GENHOSP", "MRN7734")}


def test_omp_rxo_ras_rxa_and_pr1():
    [omp] = _file("omp_o09.hl7")
    (met,) = omp["medications"]  # only the placer's RXO: ORC-5 empty, so ORC-1 NW gives the status
    assert (met["code"], met["dose_value"], met["route"], met["status"], met["source_record"]) == (
        "860975", 500.0, "Oral", "active", "OMP0001 RXO 1")
    assert str(met["start_time"]) == "2026-03-26 00:00:00"  # TQ1-7

    [ras] = _file("ras_o17.hl7")
    assert "immunizations" not in ras  # RXA in RAS is a medication given, not a vaccination
    given, refused = ras["medications"]
    assert (given["kind"], given["intent"], given["status"], given["dose_value"], given["route"]) == (
        "administration", None, "completed", 5.0, "Oral")
    assert (str(given["start_time"]), str(given["end_time"])) == (
        "2026-03-20 14:05:00", "2026-03-20 14:05:00")
    assert (refused["code_system"], refused["status"], refused["dose_value"], refused["route"]) == (
        "ATC", "not-done", 1.2, "Intravenous")
    [rde, _] = _file("rde_o11.hl7")
    assert given["medication_id"] not in {m["medication_id"] for m in rde["medications"]}

    [adt] = _file("adt_a08_procedures.hl7")
    procs = {p["code"]: p for p in adt["procedures"]}
    assert {c: p["code_system"] for c, p in procs.items()} == {
        "02703DZ": "ICD-10-PCS", "93458": "CPT", "36.06": "ICD-9-CM", "232717009": "SNOMED CT"}
    pci = procs["02703DZ"]
    assert (pci["status"], str(pci["performed_time"]), pci["source_record"]) == (
        "completed", "2026-03-21 02:30:00", "PRC0001 PR1 1")
    assert pci["display"].startswith("Dilation of Coronary Artery")
    assert {p["encounter_id"] for p in procs.values()} == {adt["encounters"][0]["encounter_id"]}


def _order(orc: str, rxe: str = "RXE||197361^Amlodipine^RXNORM|5||mg") -> str:
    return "\r".join(["MSH|^~\\&|P|H|O|N|20260301||RDE^O11^RDE_O11|X1|P|2.5.1", "PID|1||M1^^^H^MR",
                      orc, rxe]) + "\r"


@pytest.mark.parametrize("orc, status", [
    ("ORC|NW|P1||||", "active"), ("ORC|NW|P1|||CA", "cancelled"), ("ORC|XX|P1|||HD", "on-hold"),
    ("ORC|OC|P1", "cancelled"), ("ORC|DR|P1", "stopped"), ("ORC|SC|P1", "unknown"),
    ("ORC|SC|P1|||CM", "completed"), ("ORC|NW|P1|||ER", "entered-in-error")])
def test_order_status_from_orc5_else_orc1(orc, status):
    assert _map(_order(orc))["medications"][0]["status"] == status


def test_malformed_give_segments_and_pr1_identifier():
    with pytest.raises(Unmappable, match=r"message X1, RXE 1: RXE-2 \(give code\) is empty"):
        _map(_order("ORC|NW|P1", "RXE||^|5||mg"))
    with pytest.raises(Unmappable, match=r"message X1, RXE 1: RXE-3 \('five'\) is not a number"):
        _map(_order("ORC|NW|P1", "RXE||197361^Amlodipine^RXNORM|five||mg"))
    assert "medications" not in _map(_order("ORC|NW|P1", "RXO|^|5||mg"))  # compound RXO: nothing to map

    def bar(cid: str, when: str, action: str = "") -> str:
        return "\r".join([f"MSH|^~\\&|B|H|O|N|{when}||BAR^P01^BAR_P01|{cid}|P|2.6", "EVN|P01|" + when,
                          "PID|1||M1^^^H^MR", "PV1|1|I|||||||||||||||||V1^^^H^VN",
                          f"PR1|1||0DTJ4ZZ^Resection of Appendix^I10P||{when}||||||||||||||PX77^H|{action}",
                          ]) + "\r"

    (a,) = _map(bar("B1", "20260301"))["procedures"]
    (b,) = _map(bar("B2", "20260302", "D"))["procedures"]  # keyed on PR1-19: the time moved, same row
    assert a["procedure_id"] == b["procedure_id"]
    assert (a["status"], b["status"]) == ("completed", "entered-in-error")


def test_fhir_medication_administration_lands_as_administration():
    from connectors.fhir import validate
    from connectors.fhir_clinical import records

    rxnorm = "http://www.nlm.nih.gov/research/umls/rxnorm"
    ma = {"resourceType": "MedicationAdministration", "id": "ma-1", "status": "completed",
          "medicationCodeableConcept": {"coding": [{"system": rxnorm, "code": "197361",
                                                    "display": "Amlodipine 5 MG Oral Tablet"}]},
          "subject": {"reference": "Patient/pat-9"}, "context": {"reference": "Encounter/enc-9"},
          "effectiveDateTime": "2026-03-20T22:05:00+08:00",
          "dosage": {"route": {"coding": [{"code": "26643006", "display": "Oral route"}]},
                     "dose": {"value": 5, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}}}
    assert validate(ma)[:2] == ("MedicationAdministration", "ma-1")
    (row,) = records(ma, Source(KEY, "CTY-S1", "FHIR", "FHIR@CTY-S1", None, "c" * 64, "run-1"))["medications"]
    assert (row["kind"], row["code"], row["status"], row["dose_value"], row["dose_unit"], row["route"]) == (
        "administration", "197361", "completed", 5, "mg", "Oral route")
    assert str(row["start_time"]) == "2026-03-20 14:05:00+00:00" and row["encounter_id"] is not None


def test_pharmacy_and_procedure_messages_through_ingest_and_build(fresh_lake):
    spark, s = fresh_lake
    h = ingest_hl7.run(spark, s, [str(HL7 / n) for n in FILES], "CTY-S1")
    assert (h.rows_accepted, h.rows_quarantined) == (8, 0)  # every message type is accepted into bronze
    b = build_clinical.run(spark, s, run_ids=[h.run_id])
    assert (b.rows_read, b.rows_quarantined) == (8, 1)
    [bad] = spark.table("quarantine.hl7").collect()
    assert bad.location == "RDE0003" and "RDE0003, RXE 1: RXE-2 (give code) is empty" in bad.reason

    key = load_key(s)
    meds = {r.source_record: r for r in spark.table("silver.medications").collect()}
    assert set(meds) == {"RDE0002 RXE 1", "RDE0001 RXE 2", "OMP0001 RXO 1", "RAS0001 RXA 1", "RAS0001 RXA 2",
                         "RDE0004 RXE 1"}  # ORD1001 is one row: the later RDE0002 (discontinued) won
    amlo = meds["RDE0002 RXE 1"]
    assert (amlo.status, amlo.code, amlo.route, str(amlo.end_time)) == ("stopped", "197361", "Oral",
                                                                        "2026-03-22 00:00:00")
    assert amlo.person_id == person_id(key, "GENHOSP", "MRN7734") and amlo.source_format == "HL7v2"
    assert meds["RDE0004 RXE 1"].person_id == person_id(key, "GENHOSP", "MRN7790")  # beside the bad one
    assert [meds[f"RAS0001 RXA {i}"].status for i in (1, 2)] == ["completed", "not-done"]
    procs = {p.code: p for p in spark.table("silver.procedures").collect()}
    assert {c: (p.code_system, p.status, str(p.performed_time)) for c, p in procs.items()} == {
        "02703DZ": ("ICD-10-PCS", "completed", "2026-03-21 02:30:00"),
        "93458": ("CPT", "completed", "2026-03-21 02:00:00"),
        "36.06": ("ICD-9-CM", "completed", "2026-03-21 02:30:00"),
        "232717009": ("SNOMED CT", "completed", "2026-03-24 01:00:00")}
    assert spark.table("silver.immunizations").count() == 3  # VXU RXA stays a vaccination

    before = {t: spark.table(f"silver.{t}").count() for t in build_clinical.TABLES}
    assert ingest_hl7.run(spark, s, [str(HL7 / n) for n in FILES], "CTY-S1").status == "skipped"
    build_clinical.run(spark, s, rebuild=True)
    assert {t: spark.table(f"silver.{t}").count() for t in build_clinical.TABLES} == before
    assert spark.table("silver.medications").where(F.col("source_record") == "RDE0002 RXE 1").count() == 1
    dump = " ".join(str(r.asDict()) for t in ("medications", "procedures", "encounters", "patient_identities")
                    for r in spark.table(f"silver.{t}").collect())
    for direct in ("MRN7734", "MRN7790", "LIN", "MEI", "19710203", "River Rd", "HE^PING"):
        assert direct not in dump, direct
