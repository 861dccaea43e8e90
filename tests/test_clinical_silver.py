"""The silver clinical model from HL7 v2 and FHIR: mappings, MERGE semantics, A40, no identifiers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from connectors.clinical_records import Source, abnormal_flag, reference_range
from connectors.hl7 import read_header, split_messages
from connectors.ucum import to_ucum
from jobs import build_clinical, ingest_fhir, ingest_hl7
from omicslake.pseudonym import person_id

DATA = Path(__file__).parent / "data"

KEY = b"unit-test-key-" + b"0" * 32


def _src(center="PRV-N", fmt="HL7v2") -> Source:
    return Source(KEY, center, fmt, "LIS@LAB", None, "c" * 64, "run-1")


def _hl7(text: str, center="PRV-N"):
    from connectors.hl7_clinical import records

    h = read_header(text)
    return records(text, _src(center), h.control_id, h.trigger_event)


def test_units_ranges_and_flags():
    assert to_ucum("mg/dl") == "mg/dL" and to_ucum("K/uL") == "10*3/uL" and to_ucum("mmHg") == "mm[Hg]"
    assert to_ucum("x10^9/L") == "10*9/L" and to_ucum("degC") == "Cel"
    assert to_ucum("mmol/L", "UCUM") == "mmol/L" and to_ucum("furlongs") is None and to_ucum("") is None
    assert reference_range("4.0-6.0") == (4.0, 6.0) and reference_range("<5") == (None, 5.0)
    assert reference_range(">= 1.2") == (1.2, None) and reference_range("negative") == (None, None)
    assert abnormal_flag("h", 7.0, 4.0, 6.0) == ("H", False)
    assert abnormal_flag(None, 3.0, 4.0, 6.0) == ("L", True)
    assert abnormal_flag(None, 5.0, 4.0, 6.0) == ("N", True)
    assert abnormal_flag(None, None, 4.0, 6.0) == (None, False)


def test_hl7_adt_maps_identities_encounter_and_icd10():
    msgs = split_messages((DATA / "hl7" / "mixed_batch.hl7").read_bytes())
    out = _hl7(msgs[0].text)
    ids = out["patient_identities"]
    assert [(i["assigning_authority"], i["identifier_type"], i["is_primary"]) for i in ids] == [
        ("PRV-N", "MR", True), ("CN-NIC", "NI", False)]
    person = person_id(KEY, "PRV-N", "MRN0001")
    assert {i["person_id"] for i in ids} == {person}
    assert ids[0]["sex"] == "M" and ids[0]["birth_year"] == 1980 and ids[0]["postal_prefix"] == "310"
    flat = json.dumps(out, default=str)
    for direct in ("MRN0001", "ID3301", "ZHANG", "WEI", "19800512", "1980-05-12", "Main St", "13800000000"):
        assert direct not in flat, direct
    (enc,) = out["encounters"]
    assert enc["class_code"] == "IMP" and enc["status"] == "in-progress" and enc["location"] == "WARD3/301/1"
    assert str(enc["start_time"]) == "2026-03-01 08:30:00" and enc["end_time"] is None
    (cond,) = out["conditions"]
    assert (cond["code"], cond["code_system"], cond["icd10_code"]) == ("E11.9", "ICD-10", "E11.9")
    assert cond["encounter_id"] == enc["encounter_id"] and cond["person_id"] == person


def test_hl7_oru_obx_rows_with_repeats_escapes_and_sn():
    text = "\r".join([
        "MSH|^~\\&|LIS|LAB|OMICSLAKE|NAT|20260302101500||ORU^R01|M9|P|2.5.1",
        "PID|1||A7^^^^PI~MRN9^^^HOSP^MR||DOE^JANE||19900101|F",
        "OBR|1|P9|F9|24323-8^Metabolic panel^LN|||20260302080000",
        "OBX|1|NM|2345-7^Glucose^LN||110|mg/dl^^L|70-99||||F",
        "OBX|2|SN|2160-0^Creatinine^LN||<^0.5|mg/dL|0.6-1.2|L|||C",
        "OBX|3|CWE|LA6576-8^Positive^LN||LA6576-8^Positive^LN||||||F",
        "OBX|4|TX|8251-1^Comment^LN||line one \\F\\ pipe~line two||||||F",
        "ZZZ|site|specific",
    ]) + "\r"
    out = _hl7(text)
    obs = {o["source_record"]: o for o in out["observations"]}
    assert set(obs) == {"M9 OBX 1", "M9 OBX 2", "M9 OBX 3", "M9 OBX 4"}
    glu = obs["M9 OBX 1"]
    got = [glu[k] for k in ("value_num", "unit", "source_unit", "loinc_code")]
    assert got == [110.0, "mg/dL", "mg/dl", "2345-7"]
    got = [glu[k] for k in ("reference_low", "reference_high", "abnormal_flag", "abnormal_flag_derived")]
    assert got == [70.0, 99.0, "H", True]
    assert str(glu["effective_time"]) == "2026-03-02 08:00:00"
    cre = obs["M9 OBX 2"]
    assert cre["value_num"] is None and cre["value_text"] == "<0.5" and cre["status"] == "C"
    assert cre["abnormal_flag"] == "L" and cre["abnormal_flag_derived"] is False
    assert (obs["M9 OBX 3"]["value_code"], obs["M9 OBX 3"]["value_text"]) == ("LA6576-8", "Positive")
    assert obs["M9 OBX 4"]["value_text"] == "line one | pipe\nline two"
    assert {o["person_id"] for o in obs.values()} == {person_id(KEY, "HOSP", "MRN9")}  # MR preferred over PI
    assert "encounters" not in out  # no PV1


def test_fhir_resources_map_to_the_same_tables():
    from connectors.fhir_clinical import records

    bundle = json.loads((DATA / "fhir" / "bundle.json").read_text())
    out: dict[str, list] = {}
    for e in bundle["entry"]:
        for t, rows in records(e["resource"], _src("CTY-S1", "FHIR")).items():
            out.setdefault(t, []).extend(rows)
    person = person_id(KEY, "FHIR:CTY-S1", "pat-1")
    assert {r["person_id"] for rows in out.values() for r in rows} == {person}
    ids = out["patient_identities"]
    assert [(i["assigning_authority"], i["is_primary"]) for i in ids] == [
        ("FHIR:CTY-S1", True), ("urn:oid:2.16.156.10011.1.1", False)]
    assert out["encounters"][0]["class_code"] == "AMB" and out["conditions"][0]["icd10_code"] == "E11.9"
    obs = {o["source_record"]: o for o in out["observations"]}
    assert "Observation/obs-bad" not in obs  # no code: nothing to map
    assert obs["Observation/obs-1"]["unit"] == "%" and obs["Observation/obs-1"]["value_num"] == 7.1
    variant = obs["Observation/var-1"]
    assert variant["loinc_code"] == "69548-6" and variant["value_code"] == "LA9633-4"
    assert json.loads(variant["components_json"])[0]["code"] == "81252-9"
    assert "Wang" not in json.dumps(out, default=str) and "MRN0777" not in json.dumps(out, default=str)


def _adt(cid: str, trigger: str, when: str, pv1_extra: dict[int, str], mrn="MRN5",
         mrg: str | None = None) -> str:
    pv1 = [""] * 46
    pv1[0], pv1[1], pv1[2], pv1[19] = "PV1", "1", "I", "V5^^^HOSP^VN"
    for i, v in pv1_extra.items():
        pv1[i] = v
    segs = [f"MSH|^~\\&|HIS|HOSP|OMICSLAKE|NAT|{when}||ADT^{trigger}|{cid}|P|2.5",
            f"EVN|{trigger}|{when}", f"PID|1||{mrn}^^^HOSP^MR||DOE^JOHN||19700101|M", "|".join(pv1)]
    if mrg:
        segs = segs[:3] + [f"MRG|{mrg}^^^HOSP^MR"]
    return "\r".join(segs) + "\r"


@pytest.fixture
def clinical_files(tmp_path: Path) -> dict[str, Path]:
    a = tmp_path / "adt.hl7"
    a.write_text("".join([
        _adt("E1", "A01", "20260401080000", {3: "WARD1^1^1", 44: "20260401080000"}),
        _adt("E2", "A02", "20260402090000", {3: "ICU^2^1"}),
        _adt("E3", "A03", "20260405100000", {45: "20260405100000"}),
        _adt("E4", "A08", "20260406100000", {10: "CAR"}),
    ]))
    oru = tmp_path / "oru.hl7"
    oru.write_text("\r".join([
        "MSH|^~\\&|LIS|HOSP|OMICSLAKE|NAT|20260402101500||ORU^R01|L1|P|2.5",
        "PID|1||MRN4^^^HOSP^MR||ROE^RICHARD||19650303|M",
        "OBR|1|P1|F1|4548-4^HbA1c^LN|||20260402090000",
        "OBX|1|NM|4548-4^HbA1c^LN||8.4|%|4.0-6.0|H|||F",
    ]) + "\r")
    merge = tmp_path / "a40.hl7"
    merge.write_text(_adt("E9", "A40", "20260410000000", {}, mrn="MRN5", mrg="MRN4"))
    return {"adt": a, "oru": oru, "merge": merge}


def test_build_clinical_merges_events_applies_a40_and_is_idempotent(fresh_lake, clinical_files):
    spark, s = fresh_lake
    r1 = ingest_hl7.run(spark, s, [str(clinical_files["adt"]), str(clinical_files["oru"])], "CTY-S1")
    b1 = build_clinical.run(spark, s, run_ids=[r1.run_id])
    assert (b1.rows_read, b1.rows_quarantined) == (5, 0)
    (enc,) = spark.sql("SELECT * FROM silver.encounters").collect()
    assert (enc.status, enc.location, enc.service, enc.last_event) == ("finished", "ICU/2/1", "CAR", "A08")
    assert (str(enc.start_time), str(enc.end_time)) == ("2026-04-01 08:00:00", "2026-04-05 10:00:00")
    (obs,) = spark.sql("SELECT * FROM silver.observations").collect()
    assert (obs.loinc_code, obs.value_num, obs.unit, obs.abnormal_flag) == ("4548-4", 8.4, "%", "H")
    survivor, prior = person_id(s_key(s), "HOSP", "MRN5"), person_id(s_key(s), "HOSP", "MRN4")
    assert obs.person_id == prior and enc.person_id == survivor

    r2 = ingest_hl7.run(spark, s, [str(clinical_files["merge"])], "CTY-S1")
    b2 = build_clinical.run(spark, s, run_ids=[r2.run_id])
    assert b2.details["person_merges"] == 1
    assert spark.sql("SELECT person_id FROM silver.observations").collect()[0].person_id == survivor
    ident = spark.sql("SELECT merged_into_person_id FROM silver.patient_identities "
                      f"WHERE person_id = '{prior}'").collect()
    assert [i.merged_into_person_id for i in ident] == [survivor]

    before = {t: spark.table(f"silver.{t}").count() for t in build_clinical.TABLES}
    again = build_clinical.run(spark, s, rebuild=True)
    assert again.rows_read == 6
    assert {t: spark.table(f"silver.{t}").count() for t in build_clinical.TABLES} == before
    assert spark.sql("SELECT person_id FROM silver.observations").collect()[0].person_id == survivor


def s_key(settings) -> bytes:
    from omicslake.pseudonym import load_key

    return load_key(settings)


def test_both_formats_land_in_one_model_without_identifiers(fresh_lake):
    spark, s = fresh_lake
    h = ingest_hl7.run(spark, s, [str(DATA / "hl7" / n) for n in ("mixed_batch.hl7", "oru_r01.hl7")], "PRV-N")
    fhir = [str(DATA / "fhir" / n) for n in ("bundle.json", "export.ndjson")]
    f = ingest_fhir.run(spark, s, fhir, "CTY-S1")
    b = build_clinical.run(spark, s, run_ids=[h.run_id, f.run_id])
    assert b.rows_quarantined == 0
    formats = {t: {r.source_format for r in spark.table(f"silver.{t}").select("source_format").collect()}
               for t in ("conditions", "observations", "patient_identities")}
    assert all(v == {"HL7v2", "FHIR"} for v in formats.values()), formats
    assert spark.table("silver.observations").where("source_format = 'HL7v2'").count() == 3
    assert spark.table("silver.medications").count() == 1
    assert spark.table("silver.allergies").count() == 1
    assert spark.table("silver.diagnostic_reports").count() == 1
    tables = [spark.table(f"silver.{t}") for t in build_clinical.TABLES]
    dump = " ".join(str(r.asDict()) for t in tables for r in t.collect())
    for direct in ("MRN0001", "MRN0777", "ID3301", "ZHANG", "Wang", "19800512", "1975-11-02", "13800000000"):
        assert direct not in dump, direct


def test_hl7_al1_and_vxu_rxa_map_to_allergies_and_immunizations():
    [adt] = split_messages((DATA / "hl7" / "adt_a01_allergies.hl7").read_bytes())
    out = _hl7(adt.text)
    person = person_id(KEY, "GENHOSP", "MRN8812")
    got = {a["substance_display"]: a for a in out["allergies"]}
    pcn = got["Penicillin G"]
    assert (pcn["substance_code"], pcn["substance_system"], pcn["category"]) == (
        "7980", "RxNorm", "medication")
    assert (pcn["criticality"], pcn["severity"], pcn["reaction"]) == (
        "high", "severe", "Anaphylaxis; Urticaria")
    assert str(pcn["onset_time"]) == "2015-04-10 00:00:00" and pcn["clinical_status"] == "active"
    assert pcn["encounter_id"] == out["encounters"][0]["encounter_id"] and pcn["person_id"] == person
    cashew = got["Cashew nuts"]
    assert (cashew["substance_system"], cashew["category"], cashew["severity"]) == (
        "SNOMED CT", "food", "moderate")
    assert (cashew["reaction"], cashew["reaction_code"], cashew["criticality"]) == (
        "Angioedema", "41291007", None)
    assert (got["Grass pollen"]["category"], got["Grass pollen"]["criticality"]) == ("environment", "low")
    assert got["Latex"]["substance_code"] is None and got["Latex"]["category"] is None  # MA, text only

    [vxu] = split_messages((DATA / "hl7" / "vxu_v04.hl7").read_bytes())
    imm = {i["vaccine_code"]: i for i in _hl7(vxu.text)["immunizations"]}
    assert set(imm) == {"140", "08", "03"}
    flu = imm["140"]
    assert (flu["vaccine_system"], flu["status"], flu["lot_number"], flu["manufacturer"]) == (
        "CVX", "completed", "315841", "Sanofi Pasteur")
    assert (flu["dose_value"], flu["dose_unit"], flu["route"], flu["site"]) == (0.5, "mL", "Intramuscular",
                                                                              "Left Deltoid")
    assert str(flu["occurrence_time"]) == "2026-01-15 15:00:00" and flu["primary_source"] is True
    assert (imm["08"]["primary_source"], imm["08"]["dose_value"], imm["08"]["route"]) == (False, None, None)
    assert imm["03"]["status"] == "not-done"  # RXA-20 RE: refused
    assert {i["person_id"] for i in imm.values()} == {person_id(KEY, "MYEHR", "PAT7001")}


def test_obr_becomes_a_report_listing_its_obx_and_truncation_escape_is_read():
    lri = split_messages((DATA / "hl7" / "versions.hl7").read_bytes())[0]
    out = _hl7(lri.text)
    (rep,) = out["diagnostic_reports"]
    obs = {o["source_record"]: o for o in out["observations"]}
    assert rep["result_observation_ids"] == [obs[f"LRI0001 OBX {i}"]["observation_id"] for i in (1, 2, 3)]
    assert (rep["loinc_code"], rep["category"], rep["status"]) == ("58410-2", "HM", "F")
    assert (str(rep["effective_time"]), str(rep["issued_time"])) == (
        "2026-03-21 00:00:00", "2026-03-21 02:25:00")
    # sent as \P\2: the escaped truncation character of a ^~\&# message
    assert obs["LRI0001 OBX 3"]["value_text"] == "Specimen #2 of 2, slight hemolysis"


def test_fhir_allergy_immunization_and_report_map_with_result_ids():
    from connectors.fhir_clinical import records

    bundle = json.loads((DATA / "fhir" / "clinical_bundle.json").read_text())
    out: dict[str, list] = {}
    for e in bundle["entry"]:
        for t, rows in records(e["resource"], _src("CTY-S1", "FHIR")).items():
            out.setdefault(t, []).extend(rows)
    (alg,) = out["allergies"]
    assert (alg["substance_code"], alg["substance_system"], alg["verification_status"]) == (
        "7980", "RxNorm", "confirmed")
    assert (alg["reaction"], alg["reaction_code"], alg["severity"]) == (
        "Anaphylaxis; Urticaria", "39579001", "severe")
    (imm,) = out["immunizations"]  # imm-bad has no vaccineCode: validation rejects it before silver
    assert (imm["vaccine_code"], imm["vaccine_system"], imm["site"]) == ("140", "CVX", "left arm")
    (rep,) = out["diagnostic_reports"]
    ids = {o["source_record"]: o["observation_id"] for o in out["observations"]}
    assert rep["result_observation_ids"] == [ids["Observation/hgb-7"], ids["Observation/wbc-7"]]
    assert rep["conclusion"] == "Mild normocytic anaemia." and rep["category"] == "HM"


def _a40(cid: str, authority: str, survivor: str, prior: str) -> str:
    return "\r".join([f"MSH|^~\\&|HIS|{authority}|OMICSLAKE|NAT|20260401000000||ADT^A40^ADT_A39|{cid}|P|2.5",
                      "EVN|A40|20260401000000", f"PID|1||{survivor}^^^{authority}^MR||DOE^JANE",
                      f"MRG|{prior}^^^{authority}^MR"]) + "\r"


def _rows(spark, table: str, fmt: str) -> list:
    return spark.table(f"silver.{table}").where(F.col("source_format") == fmt).collect()


def test_new_clinical_tables_through_the_ingest_jobs(fresh_lake, tmp_path):
    spark, s = fresh_lake
    key = s_key(s)
    hl7_files = [str(DATA / "hl7" / n) for n in ("adt_a01_allergies.hl7", "vxu_v04.hl7", "versions.hl7")]
    h = ingest_hl7.run(spark, s, hl7_files, "CTY-S1")
    f = ingest_fhir.run(spark, s, [str(DATA / "fhir" / "clinical_bundle.json")], "CTY-S1")
    assert (h.rows_accepted, h.rows_quarantined, f.rows_accepted, f.rows_quarantined) == (5, 0, 7, 1)
    [bad] = spark.table("quarantine.fhir").collect()
    assert bad.location == "entry 8" and "vaccineCode" in bad.reason
    b = build_clinical.run(spark, s, run_ids=[h.run_id, f.run_id])
    assert b.rows_quarantined == 0
    patient = person_id(key, "GENHOSP", "MRN8812")
    alg = {r.substance_display: r for r in _rows(spark, "allergies", "HL7v2")}
    assert set(alg) == {"Penicillin G", "Cashew nuts", "Grass pollen", "Latex", "PENICILLIN"}
    pcn = alg["Penicillin G"]
    assert (pcn.substance_code, pcn.criticality, pcn.person_id) == ("7980", "high", patient)
    assert alg["PENICILLIN"].person_id == person_id(key, "OLDHOSP", "V21PAT")  # the v2.1 message
    [falg] = _rows(spark, "allergies", "FHIR")
    assert (falg.reaction_code, str(falg.recorded_time)) == ("39579001", "2026-03-21 01:20:00")
    assert falg.person_id == person_id(key, "FHIR:CTY-S1", "pat-7")

    imm = {r.vaccine_code: r for r in _rows(spark, "immunizations", "HL7v2")}
    assert (str(imm["140"].occurrence_time), imm["140"].lot_number, imm["03"].status) == (
        "2026-01-15 15:00:00", "315841", "not-done")
    [fimm] = _rows(spark, "immunizations", "FHIR")
    assert (fimm.vaccine_code, str(fimm.occurrence_time), fimm.dose_value) == (
        "140", "2026-03-21 01:40:00", 0.5)

    obs = {r.source_record: r.observation_id for r in spark.table("silver.observations").collect()}
    [hrep] = _rows(spark, "diagnostic_reports", "HL7v2")
    assert hrep.result_observation_ids == [obs[f"LRI0001 OBX {i}"] for i in (1, 2, 3)]
    assert (hrep.loinc_code, str(hrep.issued_time), hrep.person_id) == (
        "58410-2", "2026-03-21 02:25:00", patient)
    [frep] = _rows(spark, "diagnostic_reports", "FHIR")
    assert frep.result_observation_ids == [obs["Observation/hgb-7"], obs["Observation/wbc-7"]]
    assert frep.encounter_id == spark.table("silver.encounters").where(
        F.col("source_record") == "Encounter/enc-7").collect()[0].encounter_id

    merge = tmp_path / "a40.hl7"
    merge.write_text(_a40("M1", "GENHOSP", "MRN9000", "MRN8812") + _a40("M2", "MYEHR", "PAT7999", "PAT7001"))
    m = ingest_hl7.run(spark, s, [str(merge)], "CTY-S1")
    assert build_clinical.run(spark, s, run_ids=[m.run_id]).details["person_merges"] == 2
    moved = {t: {r.person_id for r in _rows(spark, t, "HL7v2")}
             for t in ("allergies", "immunizations", "diagnostic_reports")}
    assert moved == {"allergies": {person_id(key, "GENHOSP", "MRN9000"), person_id(key, "OLDHOSP", "V21PAT")},
                     "immunizations": {person_id(key, "MYEHR", "PAT7999")},
                     "diagnostic_reports": {person_id(key, "GENHOSP", "MRN9000")}}

    before = {t: spark.table(f"silver.{t}").count() for t in build_clinical.TABLES}
    assert (before["allergies"], before["immunizations"], before["diagnostic_reports"]) == (6, 4, 2)
    assert ingest_hl7.run(spark, s, hl7_files, "CTY-S1").status == "skipped"
    build_clinical.run(spark, s, rebuild=True)
    assert {t: spark.table(f"silver.{t}").count() for t in build_clinical.TABLES} == before
    survivor = person_id(key, "MYEHR", "PAT7999")
    assert {r.person_id for r in _rows(spark, "immunizations", "HL7v2")} == {survivor}

    rows = [r for t in build_clinical.TABLES for r in spark.table(f"silver.{t}").collect()]
    dump = " ".join(str(r.asDict()) for r in rows)
    for direct in ("MRN8812", "CHEN", "LIHUA", "13900001111", "Lake Rd", "19620809", "1962-08-09", "PAT7001",
                   "KOVAC", "NOVAK", "PETRA", "5550142", "ELM ST", "2015-06-15", "555444", "V21PAT", "SMITH",
                   "MRN5521", "Okafor", "Chidinma", "555-0199", "Harbor View", "1988-07-14"):
        assert direct not in dump, direct
