"""DICOM: header ingest, PS3.15 basic-profile de-identification, silver hierarchy, thumbnails."""

from __future__ import annotations

import copy
import io
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from connectors.dicom import DicomError, read_dataset
from connectors.dicom_deid import ACTIONS, DeidConfig, action_for, deidentify, new_uid

KEY = b"dicom-test-key-" + b"0" * 32
SAMPLES = ("CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm", "examples_ybr_color.dcm", "rtplan.dcm")
TEXT_VRS = {"PN", "LO", "SH", "ST", "LT", "UT", "DA", "DT", "AE", "UC"}


def _identifiers(ds: pydicom.Dataset) -> set[str]:
    """Values of every attribute the basic profile removes, empties or replaces (text VRs)."""
    found = set()
    for elem in ds.iterall():
        if action_for(elem.tag) and elem.VR in TEXT_VRS and elem.value not in (None, ""):
            for v in elem.value if elem.VM > 1 else [elem.value]:
                if len(str(v)) >= 4:
                    found.add(str(v))
    return found


def test_profile_table_comes_from_the_standard():
    assert len(ACTIONS) > 600
    assert ACTIONS[pydicom.tag.Tag(0x0010, 0x0010)] == "Z" and ACTIONS[pydicom.tag.Tag(0x0020, 0x000D)] == "U"
    assert action_for(pydicom.tag.Tag(0x6002, 0x3000)) == "X"  # overlay data, repeating group


@pytest.mark.parametrize("name", SAMPLES)
def test_deidentified_file_keeps_no_direct_identifier(name):
    raw = Path(get_testdata_file(name)).read_bytes()
    original = pydicom.dcmread(io.BytesIO(raw))
    secrets = _identifiers(original) | {str(original.PatientID)}
    # a removed value that a kept attribute also holds (TOSHIBA in Manufacturer) is not an identifier
    kept = " ".join(str(e.value) for e in original.iterall() if not action_for(e.tag) and e.VR != "SQ")
    secrets = {v for v in secrets - {"19000101", "ANONYMIZED"} if v not in kept}
    result = deidentify(pydicom.dcmread(io.BytesIO(raw)), DeidConfig(KEY), "Ptest")
    out = io.BytesIO()
    result.dataset.save_as(out, enforce_file_format=False)
    data = out.getvalue()
    back = pydicom.dcmread(io.BytesIO(data))
    dumped = data.decode("latin-1")
    for s in secrets:
        if sum(c.isalnum() for c in s) >= 4 and (not s.isdigit() or len(s) >= 6):
            assert s not in dumped, (name, s)
    assert back.PatientID == "Ptest" and back.PatientIdentityRemoved == "YES"
    assert back.LongitudinalTemporalInformationModified == "MODIFIED"
    assert [c.CodeValue for c in back.DeidentificationMethodCodeSequence] == ["113100", "113107"]
    assert not [e for e in back if e.tag.is_private]
    assert back.StudyInstanceUID == new_uid(KEY, original.StudyInstanceUID) != original.StudyInstanceUID
    assert back.file_meta.MediaStorageSOPInstanceUID == back.SOPInstanceUID
    if "PixelData" in original:
        assert back.PixelData == original.PixelData


def test_dates_shift_by_one_offset_per_person_or_are_kept():
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    a = deidentify(copy.deepcopy(ds), DeidConfig(KEY), "Pone")
    b = deidentify(copy.deepcopy(ds), DeidConfig(KEY), "Pone")
    assert a.date_shift_days == b.date_shift_days > 0
    from datetime import datetime

    def gap(d):
        return (datetime.strptime(d.StudyDate, "%Y%m%d") - datetime.strptime(d.SeriesDate, "%Y%m%d")).days

    assert gap(a.dataset) == gap(ds) and a.dataset.StudyDate != ds.StudyDate
    kept = deidentify(copy.deepcopy(ds), DeidConfig(KEY, shift_dates=False), "Pone")
    assert (
        kept.dataset.StudyDate == ds.StudyDate
        and kept.dataset.LongitudinalTemporalInformationModified == ("UNMODIFIED")
    )


def test_bad_files_are_named():
    raw = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    with pytest.raises(DicomError, match="not a DICOM file"):
        read_dataset(b"PK not dicom at all" * 20)
    with pytest.raises(DicomError, match="truncated"):
        read_dataset(raw[: len(raw) - 5000])


def _series(folder: Path, n: int) -> list[Path]:
    """``n`` instances of one new CT series, each with its own SOP Instance UID."""
    series, study = generate_uid(), generate_uid()
    out = []
    for i in range(1, n + 1):
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.InstanceNumber = i
        ds.PatientName, ds.PatientID = "SERIES^PATIENT", "SER-0001"
        ds.add_new(0x00090010, "LO", "ACME PRIVATE")
        path = folder / f"ct{i}.dcm"
        ds.save_as(path, enforce_file_format=True)
        out.append(path)
    return out


@pytest.fixture
def dicom_batch(tmp_path: Path) -> Path:
    batch = tmp_path / "batch"
    batch.mkdir()
    generated = _series(tmp_path, 3)
    with zipfile.ZipFile(batch / "series.zip", "w") as zf:
        for p in generated:
            zf.write(p, f"study/{p.name}")
    for name in ("MR_small.dcm", "JPEG2000.dcm", "examples_ybr_color.dcm", "rtplan.dcm"):
        (batch / name).write_bytes(Path(get_testdata_file(name)).read_bytes())
    (batch / "notes.txt").write_text("this is not DICOM\n")
    raw = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    (batch / "cut.dcm").write_bytes(raw[: len(raw) // 2])
    return batch


def test_ingest_dicom_end_to_end(fresh_lake, dicom_batch):
    from jobs import ingest_dicom

    spark, s = fresh_lake
    r = ingest_dicom.run(spark, s, [str(dicom_batch)], "CTY-S1")
    assert (r.rows_read, r.rows_accepted, r.rows_quarantined, r.rows_written) == (9, 7, 2, 7)
    q = {x.location: x.reason for x in spark.table("quarantine.dicom").collect()}
    assert "not a DICOM file" in q["notes.txt"] and "truncated" in q["cut.dcm"]
    b = spark.sql(
        "SELECT file_uri, modality, number_of_frames, has_pixel_data, transfer_syntax "
        "FROM bronze.dicom_instances"
    ).collect()
    by = {Path(x.file_uri).name: x for x in b}
    assert by["examples_ybr_color.dcm"].number_of_frames == 30
    assert by["rtplan.dcm"].has_pixel_data is False
    assert by["JPEG2000.dcm"].transfer_syntax == "1.2.840.10008.1.2.4.91"
    assert sum(".zip!/study/" in x.file_uri for x in b) == 3

    series = spark.sql("SELECT * FROM silver.imaging_series").collect()
    (ct,) = [x for x in series if x.instance_count == 3]
    assert ct.modality == "CT" and ct.frame_count == 3
    png = Image.open(ct.thumbnail_uri)
    assert max(png.size) <= 128 and np.asarray(png).std() > 5
    us = [x for x in series if x.modality == "US"][0]
    assert us.burned_in_risk is True
    studies = spark.sql("SELECT * FROM silver.imaging_studies").collect()
    assert sum(x.instance_count for x in studies) == 7 and len(studies) == 5

    inst = spark.table("silver.imaging_instances").collect()
    for x in inst:
        copy = pydicom.dcmread(x.deid_uri)
        assert copy.SOPInstanceUID == x.sop_instance_uid and copy.PatientID == x.person_id
    dump = " ".join(
        str(row.asDict())
        for t in ("imaging_instances", "imaging_series", "imaging_studies")
        for row in spark.table(f"silver.{t}").collect()
    )
    dump += b"".join(Path(x.deid_uri).read_bytes() for x in inst).decode("latin-1")
    for secret in ("SERIES^PATIENT", "SER-0001", "CompressedSamples", "ACME PRIVATE", "JFK IMAGING"):
        assert secret not in dump, secret

    again = ingest_dicom.run(spark, s, [str(dicom_batch)], "CTY-S1")
    assert again.rows_written == 0
    counts = {
        t: spark.table(t).count()
        for t in (
            "bronze.dicom_instances",
            "silver.imaging_instances",
            "silver.imaging_series",
            "quarantine.dicom",
        )
    }
    assert counts == {
        "bronze.dicom_instances": 7,
        "silver.imaging_instances": 7,
        "silver.imaging_series": 5,
        "quarantine.dicom": 2,
    }


def test_dicom_scp_lands_before_success_and_rejects_unknown_callers(fresh_lake, tmp_path):
    """A real `omicslake dicom-scp` process and a pynetdicom SCU over loopback."""
    import os
    import signal
    import subprocess
    import sys

    from pynetdicom import AE
    from pynetdicom.sop_class import CTImageStorage, MRImageStorage

    from jobs import ingest_dicom
    from omicslake.net import free_port, wait_for_port

    spark, s = fresh_lake
    port = free_port()
    env = {**os.environ, "OMICSLAKE_HOME": str(s.home)}
    proc = subprocess.Popen([sys.executable, "-m", "omicslake.cli", "dicom-scp", "--port", str(port),
                             "--ae-title", "OMICSLAKE", "--center", "CTY-S1", "--calling-ae", "CTY-S1-CT"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port(port)
        scu = AE(ae_title="CTY-S1-CT")
        scu.add_requested_context(CTImageStorage)
        scu.add_requested_context(MRImageStorage)
        assoc = scu.associate("127.0.0.1", port, ae_title="OMICSLAKE")
        assert assoc.is_established
        statuses = [assoc.send_c_store(pydicom.dcmread(get_testdata_file(n))).Status
                    for n in ("CT_small.dcm", "MR_small.dcm")]
        assoc.release()
        assert statuses == [0x0000, 0x0000]
        stranger = AE(ae_title="UNKNOWN-AE")
        stranger.add_requested_context(CTImageStorage)
        rejected = stranger.associate("127.0.0.1", port, ae_title="OMICSLAKE")
        assert rejected.is_rejected and not rejected.is_established
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert "2 stored" in err
    folder = s.landing_dir / "dicom" / "CTY-S1"
    landed = sorted(folder.glob("*.dcm"))
    assert len(landed) == 2 and not list(folder.glob(".*.tmp"))
    uids = {str(pydicom.dcmread(p).SOPInstanceUID) for p in landed}
    sent = ("CT_small.dcm", "MR_small.dcm")
    assert uids == {str(pydicom.dcmread(get_testdata_file(n)).SOPInstanceUID) for n in sent}
    r = ingest_dicom.run(spark, s, [str(folder)], "CTY-S1")
    assert (r.rows_accepted, r.rows_quarantined) == (2, 0)
