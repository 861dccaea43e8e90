"""Every feed with the lake on an S3 API: a real moto server on loopback, the real jobs run by
the CLI in their own processes, as an operator runs them.

VCF, BAM QC, HL7 v2 (over MLLP to the listener's landing zone, then build_clinical), FHIR and
DICOM (C-STORE to the Storage SCP's landing zone) land in ``s3://omics/feeds/lake``; each feed
has one bad input, which lands in its quarantine table. The landing zones are local state
(``OMICSLAKE_STATE_DIR``), everything else is on S3: tables, staging (cleared after each run),
the de-identified DICOM copies and the series thumbnails. A re-run of every ingest adds no row,
and ``omicslake tables`` / ``history`` read the S3 lake afterwards.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from lakes import run_cli, s3_lake

from omicslake.net import free_port, wait_for_port

pytestmark = pytest.mark.slow
DATA = Path(__file__).parent / "data"
BUCKET, PREFIX = "omics", "feeds"
BAD_HL7 = "MSH|^~\\&|LIS|CTY-S1|LAKE|NAT|20250101||ORU^R01|BADBODY01|P|2.5.1\rPID|1||123\rABC|x\r"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """(env for the CLI, local state folder, boto3 client) with a fresh bucket on loopback."""
    state = tmp_path_factory.mktemp("s3feeds")
    with s3_lake(state, BUCKET, PREFIX) as (env, client):
        yield env, state, client


def tables(env: dict) -> dict[str, dict]:
    return {d["name"]: d for d in map(json.loads, run_cli(env, "tables", "--json").splitlines())}


def keys(client, under: str) -> list[str]:
    """Object keys under ``{PREFIX}/{under}`` in the bucket."""
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{PREFIX}/{under}")
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def listener(env: dict, *args: str) -> subprocess.Popen:
    """An ``omicslake`` network listener on a free port; the caller sends, then stops it."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "omicslake.cli", *args, "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_port(port, 60)
    proc.port = port  # type: ignore[attr-defined]
    return proc


def stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    return err


def send_hl7(env: dict) -> None:
    """The shipped ORU^R01 and ADT messages, and one whose body hl7apy refuses, over MLLP."""
    from test_hl7 import _send

    from connectors.hl7 import split_messages

    texts = [m.text for name in ("oru_r01.hl7", "adt_a01_allergies.hl7")
             for m in split_messages((DATA / "hl7" / name).read_bytes())]
    proc = listener(env, "mllp", "--center", "CTY-S1")
    try:
        acks = _send(proc.port, [*texts, BAD_HL7])
    finally:
        stop(proc)
    assert all("|AA|" in a for a in acks), acks


def send_dicom(env: dict) -> None:
    """Two pydicom test instances by C-STORE to the Storage SCP."""
    import pydicom
    from pydicom.data import get_testdata_file
    from pynetdicom import AE
    from pynetdicom.sop_class import CTImageStorage, MRImageStorage

    proc = listener(env, "dicom-scp", "--ae-title", "OMICSLAKE", "--center", "CTY-S1",
                    "--calling-ae", "CTY-S1-CT")
    try:
        scu = AE(ae_title="CTY-S1-CT")
        scu.add_requested_context(CTImageStorage)
        scu.add_requested_context(MRImageStorage)
        assoc = scu.associate("127.0.0.1", proc.port, ae_title="OMICSLAKE")
        assert assoc.is_established
        statuses = [assoc.send_c_store(pydicom.dcmread(get_testdata_file(n))).Status
                    for n in ("CT_small.dcm", "MR_small.dcm")]
        assoc.release()
    finally:
        err = stop(proc)
    assert statuses == [0, 0], err


def make_inputs(env: dict, state: Path) -> dict[str, list[str]]:
    """Every feed's inputs, each with one bad input; the CLI arguments of each ingest."""
    from test_alignment_qc import _corrupt

    from omicslake.demo_bam import make_bam
    from omicslake.demo_data import make_demo_inputs

    inputs = state / "inputs"
    vcf = make_demo_inputs(inputs / "vcf", samples_per_center=4, sites=60)[0]  # one malformed line
    bam_dir = inputs / "bam"
    bam_dir.mkdir(parents=True)
    bam, _ = make_bam(bam_dir, "NA001", n_pairs=300)
    _corrupt(bam, bam_dir / "broken.bam")
    (bam_dir / "manifest.csv").write_text("sample_id,patient_id\nNA001,MRN-NA001\n")
    fhir = state / "landing" / "fhir" / "PRV-N"
    fhir.mkdir(parents=True)
    shutil.copy(DATA / "fhir" / "bundle.json", fhir / "bundle.json")
    (fhir / "bad.ndjson").write_text('{"resourceType": "Observation", "id": "no-code", "status": "final"}\n')
    send_hl7(env)
    send_dicom(env)
    extra = inputs / "dicom"
    extra.mkdir()
    (extra / "notes.txt").write_text("this is not DICOM\n")
    return {
        "vcf": ["vcf", str(vcf.vcf), "--center", vcf.center_id, "--manifest", str(vcf.manifest)],
        "bam": ["bam", str(bam), str(bam_dir / "broken.bam"), "--center", "PRV-N",
                "--manifest", str(bam_dir / "manifest.csv")],
        "hl7": ["hl7", str(state / "landing" / "hl7" / "CTY-S1"), "--center", "CTY-S1"],
        "fhir": ["fhir", str(fhir), "--center", "PRV-N"],
        "dicom": ["dicom", str(state / "landing" / "dicom" / "CTY-S1"), str(extra), "--center", "CTY-S1"],
    }


LANDED = {
    "vcf": ("bronze.vcf_variants", "silver.variants", "silver.genotypes", "silver.samples", "quarantine.vcf"),
    "bam": ("silver.alignment_qc", "quarantine.bam"),
    "hl7": ("bronze.hl7_messages", "silver.observations", "quarantine.hl7"),
    "fhir": ("bronze.fhir_resources", "quarantine.fhir"),
    "dicom": ("bronze.dicom_instances", "silver.imaging_instances", "silver.imaging_series",
              "silver.imaging_studies", "quarantine.dicom"),
}


def test_every_feed_lands_on_s3_and_a_rerun_adds_nothing(s3):
    env, state, client = s3
    commands = make_inputs(env, state)
    for args in commands.values():
        run_cli(env, "ingest", *args)
    first = tables(env)
    for feed, names in LANDED.items():
        for name in names:
            assert first[name]["rows"] > 0, (feed, name, first[name])
            assert first[name]["location"].startswith(f"s3://{BUCKET}/{PREFIX}/lake/"), first[name]
    assert first["quarantine.dicom"]["rows"] == 1 and first["bronze.dicom_instances"]["rows"] == 2

    curated = keys(client, "lake/curated/dicom/")
    assert len([k for k in curated if k.endswith(".dcm")]) == 2
    assert len([k for k in curated if k.endswith("/thumbnail.png")]) == 2
    rows = [json.loads(x) for x in run_cli(env, "sql", "--json", "SELECT deid_uri, thumbnail_uri FROM "
                                       "silver.imaging_instances JOIN silver.imaging_series "
                                       "USING (series_instance_uid)").splitlines()]
    assert {r["deid_uri"] for r in rows} == {f"s3://{BUCKET}/{k}" for k in curated if k.endswith(".dcm")}
    assert all(r["thumbnail_uri"].startswith(f"s3://{BUCKET}/{PREFIX}/lake/curated/") for r in rows)
    assert not [k for k in keys(client, "lake/_staging/") if k.endswith(".parquet")]
    assert not (state / "lake").exists()  # only local state (landing, logs) is on this disk

    for args in commands.values():
        run_cli(env, "ingest", *args)
    again = tables(env)
    data = [n for n in first if not n.startswith("ops.")]  # runs and audit events are recorded
    assert {n: again[n]["rows"] for n in data} == {n: first[n]["rows"] for n in data}
    assert again["ops.ingest_runs"]["rows"] > first["ops.ingest_runs"]["rows"]

    history = run_cli(env, "history", "silver.imaging_instances", "--json").splitlines()
    history = [json.loads(x) for x in history]
    assert history and {"version", "operation"} <= set(history[0])
