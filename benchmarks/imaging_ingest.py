"""DICOM throughput: de-identification alone, and the whole `omicslake ingest dicom`.

    python benchmarks/imaging_ingest.py [--instances 1000]

Generates a series of CT instances (pydicom's CT_small.dcm, 128x128, each with its own UIDs and
identifiers), times PS3.15 de-identification in one process, then runs the CLI into a fresh
lake: header extraction, de-identified copies, bronze + silver MERGE and thumbnails.
Prints instances per second and the peak RSS of the CLI process.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def make_instances(folder: Path, n: int) -> None:
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    base = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    study = generate_uid()
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        if i % 100 == 0:
            series = generate_uid()
        base.StudyInstanceUID, base.SeriesInstanceUID = study, series
        base.SOPInstanceUID = base.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        base.InstanceNumber, base.PatientID = i % 100 + 1, f"BENCH{i // 500:04d}"
        base.save_as(folder / f"i{i:06d}.dcm", enforce_file_format=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--instances", type=int, default=1000)
    args = ap.parse_args()
    import pydicom

    from connectors.dicom_deid import DeidConfig, deidentify

    work = Path(tempfile.mkdtemp(prefix="omicslake-imaging-bench-"))
    make_instances(work / "in", args.instances)
    files = sorted((work / "in").glob("*.dcm"))
    cfg = DeidConfig(b"bench-key-" + b"0" * 32)
    t = time.perf_counter()
    for f in files:
        ds = pydicom.dcmread(f)
        deidentify(ds, cfg, "Pbench").dataset.save_as(io.BytesIO(), enforce_file_format=False)
    deid_s = time.perf_counter() - t
    env = {**os.environ, "OMICSLAKE_HOME": str(work / "home"), "RUST_LOG": "error"}
    cli = [sys.executable, "-m", "omicslake.cli"]
    subprocess.run([*cli, "tables"], env=env, check=True, capture_output=True)
    t = time.perf_counter()
    p = subprocess.run([*cli, "ingest", "dicom", str(work / "in"), "--center", "BENCH"], env=env,
                       capture_output=True, text=True)
    ingest_s = time.perf_counter() - t
    if p.returncode:
        raise SystemExit(p.stderr[-3000:])
    print(json.dumps({
        "instances": args.instances, "bytes_per_instance": files[0].stat().st_size,
        "deid_s": round(deid_s, 2), "deid_instances_per_s": round(args.instances / deid_s),
        "ingest_cli_s": round(ingest_s, 2), "ingest_instances_per_s": round(args.instances / ingest_s),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
    }))


if __name__ == "__main__":
    main()
