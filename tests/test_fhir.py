"""FHIR R4 Bundles and NDJSON: validation, quarantine with location, and upsert by lastUpdated."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from connectors.fhir import iter_resources, validate
from jobs import ingest_fhir

DATA = Path(__file__).parent / "data" / "fhir"


def test_bundle_and_ndjson_are_read_with_locations():
    found = list(iter_resources("bundle.json", (DATA / "bundle.json").read_bytes()))
    assert [f.location for f in found] == [f"entry {i}" for i in range(1, 7)]
    nd = list(iter_resources("export.ndjson", (DATA / "export.ndjson").read_bytes()))
    assert [(f.location, f.error is None) for f in nd] == [
        ("line 1", True), ("line 2", True), ("line 3", False), ("line 4", True)]
    assert "invalid JSON" in nd[2].error


def test_validation_keeps_extensions_and_contained_and_rejects_missing_code():
    found = {f.resource["id"]: f.resource for f in iter_resources("b", (DATA / "bundle.json").read_bytes())}
    assert validate(found["pat-1"])[:3] == ("Patient", "pat-1", datetime(2026, 3, 1))
    assert validate(found["obs-1"])[0] == "Observation"  # contained Specimen
    try:
        validate(found["obs-bad"])
        raise AssertionError("an Observation without code must fail")
    except ValueError as exc:
        assert "invalid Observation: code" in str(exc)


def test_ingest_upserts_newest_and_quarantines(fresh_lake):
    spark, s = fresh_lake
    r = ingest_fhir.run(spark, s, [str(DATA / "bundle.json")], "CTY-S1")
    assert (r.rows_read, r.rows_accepted, r.rows_quarantined) == (6, 5, 1)
    q = spark.sql("SELECT location, reason FROM quarantine.fhir").collect()
    assert q[0].location == "entry 6" and "code" in q[0].reason
    r2 = ingest_fhir.run(spark, s, [str(DATA / "export.ndjson")], "CTY-S1")
    assert (r2.rows_accepted, r2.rows_quarantined) == (3, 1)
    pat = spark.sql("SELECT raw_json, last_updated FROM bronze.fhir_resources "
                    "WHERE resource_type = 'Patient' AND resource_id = 'pat-1'").collect()
    assert len(pat) == 1 and json.loads(pat[0].raw_json)["name"][0]["given"] == ["Fang", "Li"]
    assert str(pat[0].last_updated).startswith("2026-04-01")
    types = {r.resource_type: r.n for r in spark.sql(
        "SELECT resource_type, count(*) n FROM bronze.fhir_resources GROUP BY 1").collect()}
    assert types == {"Patient": 1, "Encounter": 1, "Condition": 1, "Observation": 2, "MedicationRequest": 1}
    again = ingest_fhir.run(spark, s, [str(DATA / "bundle.json"), str(DATA / "export.ndjson")], "CTY-S1")
    assert again.status == "skipped"
    assert spark.table("bronze.fhir_resources").count() == 6 and spark.table("quarantine.fhir").count() == 2


def test_an_older_version_never_overwrites(fresh_lake, tmp_path):
    spark, s = fresh_lake
    newer = json.loads((DATA / "export.ndjson").read_text().splitlines()[0])
    older = json.loads((DATA / "export.ndjson").read_text().splitlines()[3])
    (tmp_path / "new.ndjson").write_text(json.dumps(newer) + "\n")
    (tmp_path / "old.ndjson").write_text(json.dumps(older) + "\n")
    ingest_fhir.run(spark, s, [str(tmp_path / "new.ndjson")], "CTY-S1")
    ingest_fhir.run(spark, s, [str(tmp_path / "old.ndjson")], "CTY-S1")
    [row] = spark.sql("SELECT raw_json FROM bronze.fhir_resources").collect()
    assert json.loads(row.raw_json)["name"][0]["family"] == "Wang"
