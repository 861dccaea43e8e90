"""DICOM throughput: de-identification alone, and the whole `omicslake ingest dicom`, at two sizes.

    python benchmarks/imaging_ingest.py [--instances 1000 --instances 2000] [--workers 2]

Generates CT- and MR-like series (pydicom's CT_small.dcm, 128x128 with 180 private elements,
and MR_small.dcm, 64x64; each instance with its own UIDs, 100 instances a series, a patient
every 500), then, for each size:

- de-identification alone, bytes in and the de-identified file's bytes out (dcmread,
  de-identify, write), in one process and in ``--workers`` processes: the per-element walk the
  job used before (kept here, as it was, to compare) written with pydicom's save_as, the one
  pass (connectors/dicom_deid.py) written with connectors.dicom.encode, and pydicom's dcmread +
  save_as of the untouched file as the library's ceiling;
- the whole ``omicslake ingest dicom`` CLI into a fresh lake (headers, de-identified copies,
  bronze + silver MERGEs, series/study rows, thumbnails): the command's wall time (process and
  engine start included) and the job's own time as it reports it, and the peak RSS of the CLI
  process alone and of its whole process tree (its worker processes included), sampled.

Prints one table and one JSON line per size. Inputs go to a temporary folder, removed at the end.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CENTER = "CTY-S1"
KEY = b"bench-key-" + b"0" * 32


def make_instances(folder: Path, n: int) -> None:
    """``n`` instances, series of 100 alternating CT-like and MR-like, a patient every 500."""
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    bases = [pydicom.dcmread(get_testdata_file(name)) for name in ("CT_small.dcm", "MR_small.dcm")]
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        if i % 100 == 0:
            base = bases[(i // 100) % 2]
            series = generate_uid()
        if i % 500 == 0:
            study = generate_uid()
        base.StudyInstanceUID, base.SeriesInstanceUID = study, series
        base.SOPInstanceUID = base.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        base.InstanceNumber, base.PatientID = i % 100 + 1, f"BENCH{i // 500:04d}"
        base.save_as(folder / f"i{i:06d}.dcm", enforce_file_format=True)


# --- the per-element walk the job used before (as it was), to compare ------------------------


def legacy_deidentify(ds, cfg, person: str):
    """De-identification as the job did it before the one pass: every element decoded, the
    private ones removed in a first walk, then a walk per element, each looking its action up
    with a loop over the repeating groups."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    from connectors import dicom_deid as d

    burned = str(ds.get("BurnedInAnnotation", "")).upper() == "YES"
    risk = burned or str(ds.get("Modality", "")).upper() in d.MODALITIES_WITH_BURNED_IN_TEXT
    days = d.date_shift(cfg.key, person, cfg.max_shift_days) if cfg.shift_dates else 0
    _legacy_remove_private(ds)
    _legacy_apply(ds, cfg, person, days)
    if getattr(ds, "file_meta", None) is not None:
        ds.file_meta = d._new_file_meta(ds)
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "PS3.15 E.1 basic; dates " + ("shifted" if cfg.shift_dates else "kept")
    codes = [("113100", "Basic Application Confidentiality Profile"),
             ("113107", "Retain Longitudinal Temporal Information Modified Dates Option")
             if cfg.shift_dates else ("113106", "Retain Longitudinal Temporal Information Full Dates Option")]
    seq = []
    for value, meaning in codes:
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
        seq.append(item)
    ds.DeidentificationMethodCodeSequence = Sequence(seq)
    ds.LongitudinalTemporalInformationModified = "MODIFIED" if cfg.shift_dates else "UNMODIFIED"
    return d.DeidResult(ds, person, days, burned, risk)


def _legacy_action_for(tag):
    from connectors.dicom_deid import ACTIONS, MASKED

    found = ACTIONS.get(tag)
    if found is None:
        for group, elem, gmask, emask, action in MASKED:
            if tag.group & gmask == group and tag.element & emask == elem:
                return action
    return found


def _legacy_apply(ds, cfg, person: str, days: int) -> None:
    from pydicom.datadict import dictionary_VR
    from pydicom.sequence import Sequence

    from connectors.dicom_deid import BINARY_NUMBER_VRS, DUMMY, _shift, new_uid

    for elem in list(ds):
        action = _legacy_action_for(elem.tag)
        if elem.VR == "SQ" and action is None:
            for item in elem.value or []:
                _legacy_apply(item, cfg, person, days)
            continue
        if elem.tag in (0x00100020, 0x00100010):
            ds.add_new(elem.tag, dictionary_VR(elem.tag), person)
        elif action is None:
            continue
        elif elem.VR in ("DA", "DT", "TM"):
            if cfg.shift_dates and elem.VR != "TM":
                elem.value = _shift(str(elem.value or ""), elem.VR, days)
        elif action in ("U", "XU") and elem.VR == "UI":
            if elem.VM > 1:
                elem.value = [new_uid(cfg.key, str(v)) for v in elem.value]
            elif elem.value:
                elem.value = new_uid(cfg.key, str(elem.value))
        elif action in ("X", "XU"):
            del ds[elem.tag]
        elif action == "Z":
            elem.value = Sequence() if elem.VR == "SQ" else (None if elem.VR in BINARY_NUMBER_VRS else "")
        elif action == "D":
            if elem.VR == "SQ":
                elem.value = Sequence()
            elif elem.VR in DUMMY:
                elem.value = DUMMY[elem.VR]
            else:
                del ds[elem.tag]


def _legacy_remove_private(ds) -> None:
    for tag in list(ds.keys()):
        if tag.is_private or tag.group in (0x0000, 0x0002):
            del ds[tag]
        elif ds[tag].VR == "SQ":
            for item in ds[tag].value or []:
                _legacy_remove_private(item)


# --- de-identification alone ------------------------------------------------------------------


def deid_files(way: str, paths: list[str]) -> int:
    """Read, de-identify and write each file (to memory) the ``way`` named; how many."""
    import pydicom

    from connectors.dicom import encode
    from connectors.dicom_deid import DeidConfig, deidentify

    cfg = DeidConfig(KEY)
    for path in paths:
        ds = pydicom.dcmread(io.BytesIO(Path(path).read_bytes()))
        if way == "per-element walk (before)":
            legacy_deidentify(ds, cfg, "Pbench").dataset.save_as(io.BytesIO(), enforce_file_format=False)
        elif way == "one pass (now)":
            encode(deidentify(ds, cfg, "Pbench").dataset)
        else:  # pydicom alone, nothing de-identified: dcmread + save_as
            ds.save_as(io.BytesIO(), enforce_file_format=False)
    return len(paths)


WAYS = ("per-element walk (before)", "one pass (now)", "pydicom dcmread + save_as (ceiling)")


def deid_rates(files: list[str], workers: int) -> dict[str, dict[int, float]]:
    """Instances per second of each way, in one process and in ``workers`` processes."""
    rates: dict[str, dict[int, float]] = {way: {} for way in WAYS}
    for way in WAYS:
        deid_files(way, files[:20])  # imports, first-call costs
        t = time.perf_counter()
        deid_files(way, files)
        rates[way][1] = len(files) / (time.perf_counter() - t)
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(deid_files, [WAYS[0]] * workers, [files[:20]] * workers))
            for way in WAYS:
                chunks = [files[i:i + 50] for i in range(0, len(files), 50)]
                t = time.perf_counter()
                done = sum(pool.map(deid_files, [way] * len(chunks), chunks))
                rates[way][workers] = done / (time.perf_counter() - t)
    return rates


# --- the whole ingest ---------------------------------------------------------------------------


def _tree_rss(pid: int) -> tuple[int, int]:
    """(RSS of the process, RSS summed over it and its descendants), bytes."""
    import psutil

    try:
        proc = psutil.Process(pid)
        own = proc.memory_info().rss
        kids = sum(c.memory_info().rss for c in proc.children(recursive=True) if c.is_running())
        return own, own + kids
    except psutil.Error:
        return 0, 0


def ingest(inputs: Path, home: Path) -> dict:
    """Run the CLI into a fresh lake; wall and job seconds, peak RSS (own, tree)."""
    env = {**os.environ, "OMICSLAKE_HOME": str(home), "RUST_LOG": "error"}
    cli = [sys.executable, "-m", "omicslake.cli"]
    subprocess.run([*cli, "tables"], env=env, check=True, capture_output=True)
    peak = [0, 0]
    t = time.perf_counter()
    proc = subprocess.Popen([*cli, "ingest", "dicom", str(inputs), "--center", CENTER], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def sample() -> None:
        while proc.poll() is None:
            own, tree = _tree_rss(proc.pid)
            peak[0], peak[1] = max(peak[0], own), max(peak[1], tree)
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - t
    sampler.join()
    if proc.returncode:
        raise SystemExit(err[-3000:])
    job = re.search(r"\(([\d.]+)s, run ", out)
    return {"wall_s": wall, "job_s": float(job.group(1)) if job else None, "rss_own": peak[0],
            "rss_tree": peak[1], "summary": out.strip().splitlines()[-1] if out.strip() else ""}


# --- report -----------------------------------------------------------------------------------


def run_size(work: Path, n: int, workers: int) -> dict:
    inputs = work / f"in{n}"
    make_instances(inputs, n)
    files = sorted(str(p) for p in inputs.glob("*.dcm"))
    rates = deid_rates(files, workers)
    result = ingest(inputs, work / f"home{n}")
    shutil.rmtree(work / f"home{n}", ignore_errors=True)
    return {"instances": n, "bytes": sum(Path(f).stat().st_size for f in files), "deid": rates, **result}


def print_report(results: list[dict], workers: int) -> None:
    print(f"\nDICOM on {os.cpu_count()} cores; instances/s (higher is better)")
    head = f"{'':44}" + "".join(f"{r['instances']:>12,} inst" for r in results)
    print(head)
    for way in WAYS:
        for w in sorted(results[0]["deid"][way]):
            label = f"de-id alone, {way}, {w} proc"
            print(f"{label[:44]:44}" + "".join(f"{r['deid'][way][w]:>17,.0f}" for r in results))
    job = [f"{r['instances'] / r['job_s']:>17,.0f}" if r["job_s"] else f"{'-':>17}" for r in results]
    print(f"{'whole ingest, job (as the CLI reports it)':44}" + "".join(job))
    print(f"{'whole ingest, CLI wall (engine start incl.)':44}"
          + "".join(f"{r['instances'] / r['wall_s']:>17,.0f}" for r in results))
    print(f"{'  seconds: job / CLI wall':44}"
          + "".join(f"{(r['job_s'] or 0):>9.1f} / {r['wall_s']:<5.1f}" for r in results))
    print(f"{'peak RSS MB: CLI process / with workers':44}"
          + "".join(f"{r['rss_own'] / 2**20:>9.0f} / {r['rss_tree'] / 2**20:<5.0f}" for r in results))
    for r in results:
        print(json.dumps({
            "instances": r["instances"], "mean_bytes": r["bytes"] // r["instances"],
            "deid_per_s": {way: {str(w): round(v) for w, v in rate.items()}
                           for way, rate in r["deid"].items()},
            "ingest_job_s": r["job_s"], "ingest_cli_s": round(r["wall_s"], 2),
            "ingest_job_per_s": round(r["instances"] / r["job_s"]) if r["job_s"] else None,
            "ingest_cli_per_s": round(r["instances"] / r["wall_s"]),
            "peak_rss_cli_mb": round(r["rss_own"] / 2**20), "peak_rss_tree_mb": round(r["rss_tree"] / 2**20),
            "worker_processes": workers, "summary": r["summary"],
        }))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--instances", type=int, action="append",
                    help="size (repeat for more; default 1000 and 2000)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="processes for de-id alone")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="omicslake-imaging-bench-"))
    try:
        results = [run_size(work, n, args.workers) for n in (args.instances or [1000, 2000])]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_report(results, args.workers)


if __name__ == "__main__":
    main()
