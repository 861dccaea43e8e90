"""One bad file never sinks a batch: DICOM, HL7 and FHIR batches with inputs that used to raise
inside a Spark task (and fail the whole run) land their good inputs and quarantine the rest.
BAM is covered in ``test_alignment_qc.py``."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pydicom
import pytest
from inputs import (
    ct_bytes,
    fhir_observation,
    fhir_patient,
    hl7_message,
    ndjson,
    with_private_unknown_vr,
)

from jobs import ingest_dicom, ingest_fhir, ingest_hl7


def _counts(spark, *tables: str) -> dict[str, int]:
    return {t: spark.table(t).count() for t in tables}


@pytest.fixture
def dicom_batch(tmp_path: Path) -> Path:
    """Four instances that should land, three inputs that cannot be read (one in a zip)."""
    batch = tmp_path / "dicom"
    batch.mkdir()
    (batch / "good.dcm").write_bytes(ct_bytes("PAT-GOOD"))
    (batch / "frames_1a.dcm").write_bytes(ct_bytes("PAT-FRAMES", frames="1A"))
    (batch / "private_fs.dcm").write_bytes(with_private_unknown_vr(ct_bytes("PAT-PRIV")))
    whole = ct_bytes("PAT-CUT")
    (batch / "cut.dcm").write_bytes(whole[: len(whole) // 2])
    (batch / "notes.txt").write_text("not DICOM\n")
    with zipfile.ZipFile(batch / "series.zip", "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("a/ok.dcm", ct_bytes("PAT-ZIP"))
        zf.writestr("a/bad.dcm", ct_bytes("PAT-ZIPBAD"))
    raw = bytearray((batch / "series.zip").read_bytes())
    second = raw.index(b"a/bad.dcm") + len("a/bad.dcm") + 2000  # inside the stored member's data
    raw[second] ^= 0xFF
    (batch / "series.zip").write_bytes(bytes(raw))
    return batch


def test_dicom_batch_with_bad_files_lands_the_readable_ones(fresh_lake, dicom_batch):
    spark, s = fresh_lake
    r = ingest_dicom.run(spark, s, [str(dicom_batch)], "CTY-S1")
    assert r.status == "succeeded"
    assert (r.rows_read, r.rows_accepted, r.rows_quarantined, r.rows_written) == (7, 4, 3, 4)
    q = {x.location: x.reason for x in spark.table("quarantine.dicom").collect()}
    assert set(q) == {"cut.dcm", "notes.txt", "bad.dcm"}
    assert "truncated" in q["cut.dcm"] and "not a DICOM file" in q["notes.txt"]
    assert "cannot extract zip member" in q["bad.dcm"] and "CRC" in q["bad.dcm"]
    assert len(r.details["rejected"]) == 3

    rows = {Path(x.file_uri).name: x for x in spark.table("bronze.dicom_instances").collect()}
    assert set(rows) == {"good.dcm", "frames_1a.dcm", "private_fs.dcm", "ok.dcm"}
    frames = rows["frames_1a.dcm"]
    assert frames.number_of_frames is None and frames.rows == 128 and frames.modality == "CT"
    assert json.loads(frames.header_json)["00280008"] == {"vr": "IS"}  # present, no value
    assert json.loads(rows["private_fs.dcm"].header_json)["00091001"] == {"vr": "UN"}

    silver = {x.source_checksum: x for x in spark.table("silver.imaging_instances").collect()}
    copy = pydicom.dcmread(silver[frames.source_checksum].deid_uri)
    assert copy.NumberOfFrames == "1A"  # kept as sent, as pydicom reads it
    private = pydicom.dcmread(silver[rows["private_fs.dcm"].source_checksum].deid_uri)
    assert not [e for e in private if e.tag.is_private]
    assert b"SECRETVALUE" not in Path(silver[rows["private_fs.dcm"].source_checksum].deid_uri).read_bytes()

    tables = ("bronze.dicom_instances", "silver.imaging_instances", "quarantine.dicom")
    before = _counts(spark, *tables)
    again = ingest_dicom.run(spark, s, [str(dicom_batch)], "CTY-S1")
    assert (again.rows_read, again.rows_written) == (7, 0)
    assert _counts(spark, *tables) == before == dict(zip(tables, (4, 4, 3), strict=True))


def test_cli_names_bad_dicom_inputs_without_a_traceback(dicom_batch, tmp_path):
    env = {**os.environ, "OMICSLAKE_HOME": str(tmp_path / "home")}
    proc = subprocess.run([sys.executable, "-m", "omicslake.cli", "ingest", "dicom", str(dicom_batch),
                           "--center", "CTY-S1"], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [x for x in proc.stderr.splitlines() if x.startswith("quarantined: ")]
    assert len(lines) == 3
    assert any("cut.dcm" in x and "truncated" in x for x in lines)
    assert "accepted=4 quarantined=3" in proc.stdout


def test_hl7_batch_quarantines_a_message_whose_mapping_raises(fresh_lake, tmp_path):
    """MSH-7 0001-01-01 00:00 +01:00 is before year 1 in UTC: the timestamp conversion raises
    OverflowError, which used to fail the task and the run."""
    spark, s = fresh_lake
    mixed = tmp_path / "mixed.hl7"
    mixed.write_bytes(hl7_message("GOOD-1") + hl7_message("BAD-TIME", msh7="00010101000000+0100")
                      + hl7_message("GOOD-2", obx5=b"\xff\xfe not UTF-8 \xc3\x28"))
    good = tmp_path / "good.hl7"
    good.write_bytes(hl7_message("GOOD-3"))
    junk = tmp_path / "junk.hl7"
    junk.write_bytes(bytes(range(256)) * 4)
    r = ingest_hl7.run(spark, s, [str(mixed), str(good), str(junk)], "PRV-N")
    assert r.status == "succeeded" and r.rows_accepted == 3
    assert r.rows_read == r.rows_accepted + r.rows_quarantined and r.rows_quarantined >= 2
    ids = {x.message_control_id for x in spark.table("bronze.hl7_messages").collect()}
    assert ids == {"GOOD-1", "GOOD-2", "GOOD-3"}
    q = spark.table("quarantine.hl7").collect()
    (bad,) = [x for x in q if x.source_uri == str(mixed)]
    assert bad.location.endswith("control id BAD-TIME") and "OverflowError" in bad.reason
    assert all(x.source_uri == str(junk) for x in q if x is not bad)
    garbled = spark.sql("SELECT raw FROM bronze.hl7_messages WHERE message_control_id = 'GOOD-2'")
    assert "\ufffd" in garbled.collect()[0].raw  # undecodable bytes replaced, message kept
    again = ingest_hl7.run(spark, s, [str(mixed), str(good), str(junk)], "PRV-N")
    assert again.status == "skipped"
    assert _counts(spark, "bronze.hl7_messages", "quarantine.hl7") == {
        "bronze.hl7_messages": 3, "quarantine.hl7": len(q)}


def test_fhir_batch_with_resources_that_used_to_raise(fresh_lake, tmp_path):
    """Each odd line below raised something other than a validation error (TypeError,
    RecursionError, a ValueError from int(), OverflowError) and failed the run."""
    spark, s = fresh_lake
    deep = '{"resourceType":"Patient","id":"deep","extension":' + "[" * 50_000 + "]" * 50_000 + "}"
    lines = [
        json.dumps(fhir_patient("p-good")),
        json.dumps({"resourceType": "Bundle", "type": "collection", "entry": 5}),
        json.dumps({"resourceType": ["Patient"], "id": "x"}),
        json.dumps(fhir_patient("p-contained", contained=[{"resourceType": {}}])),
        deep,
        '{"resourceType":"Observation","id":"big","valueInteger":' + "9" * 5000 + "}",
        "[1, 2, 3]",
        json.dumps(fhir_patient("p-year1", meta={"lastUpdated": "0001-01-01T00:00:00+01:00"})),
    ]
    odd = tmp_path / "odd.ndjson"
    odd.write_bytes("\n".join(lines).encode() + b"\n" + b'{"resourceType":"Patient","id":"p-utf8",'
                    b'"name":[{"family":"\xff\xfe"}]}\n')
    good = tmp_path / "good.ndjson"
    good.write_bytes(ndjson([fhir_observation("o-1"), fhir_patient("p-2")]))
    r = ingest_fhir.run(spark, s, [str(odd), str(good)], "CTY-S1")
    assert r.status == "succeeded"
    assert (r.rows_read, r.rows_accepted, r.rows_quarantined) == (11, 5, 6)
    ids = {x.resource_id: x for x in spark.table("bronze.fhir_resources").collect()}
    assert set(ids) == {"p-good", "p-year1", "p-utf8", "o-1", "p-2"}
    assert ids["p-year1"].last_updated is None  # no UTC timestamp before year 1; raw JSON keeps it
    q = {x.location: x.reason for x in spark.table("quarantine.fhir").collect()}
    assert set(q) == {f"line {n}" for n in (2, 3, 4, 5, 6, 7)}
    assert "Bundle.entry is not an array" in q["line 2"] and "not a string" in q["line 3"]
    assert "fhir.resources cannot validate it" in q["line 4"] and "nested too deeply" in q["line 5"]
    assert "digits" in q["line 6"] and q["line 7"] == "not a JSON object"
    again = ingest_fhir.run(spark, s, [str(odd), str(good)], "CTY-S1")
    assert again.status == "skipped"
    assert _counts(spark, "bronze.fhir_resources", "quarantine.fhir") == {
        "bronze.fhir_resources": 5, "quarantine.fhir": 6}


def test_dicom_reader_keeps_what_pydicom_reads():
    """An invalid IS is read as pydicom reads it (kept as sent), not rejected."""
    from connectors.dicom import header_json, key_tags, read_dataset

    ds = read_dataset(ct_bytes(frames="1A"))
    assert ds.NumberOfFrames == "1A" and key_tags(ds)["number_of_frames"] is None
    assert json.loads(header_json(ds))["00280008"] == {"vr": "IS"}
    assert pydicom.dcmread(io.BytesIO(ct_bytes(frames="1A"))).NumberOfFrames == "1A"
