"""Center uploads end to end: `omicslake upload` clients against `omicslake api` on loopback.

    python benchmarks/upload.py [--files 60] [--centers 5] [--max-mb 50] [--big-mb 1024] [--keep]

Starts the API in its own process on a fresh lake (own OMICSLAKE_HOME under benchmarks/out/),
issues an uploader token per center, then starts at the same time:

* two `omicslake upload --json` processes per center (two feeds each), together sending
  ``--files`` files of mixed sizes (1 KB to ``--max-mb`` MB, log-uniform, random bytes), every
  file of a process in flight at once, so all of them upload concurrently;
* one process sending a ``--big-mb`` MB file, killed (SIGKILL) once the server holds half of
  it, then run again with the same command, which resumes from the state file and the
  server's offset.

Then it checks that every file landed exactly once with its sha256 (hashing the landing zone)
and has a receipt the API reports as received, and prints uploads/s, MB/s, latency per upload
(p50/p95, from the start of the file's sha256 pass to its receipt) and the peak RSS of the API
process and of the client processes (from wait4). Inputs and the lake are removed afterwards
unless --keep.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from omicslake.checksums import sha256_file
from omicslake.net import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out" / "upload"
CENTERS = ("CNT-S1A", "CNT-S1B", "CNT-S2A", "CNT-N1A", "CTY-S1", "CTY-S2", "CTY-N1")
FEEDS = ("vcf", "bam", "dicom", "hl7", "fhir")
MB = 1_000_000

ISSUE = """
import json, sys
from omicslake.credentials import issue
from omicslake.session import get_spark
from omicslake.settings import load_settings
s = load_settings()
spark = get_spark(s)
print(json.dumps({c: issue(spark, s, c, "uploader").token for c in sys.argv[1:]}))
"""





def reap(proc: subprocess.Popen) -> tuple[int, float]:
    """Wait for a child; its exit code and peak RSS in MB (wait4's ru_maxrss)."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss / 1024


def write_random(path: Path, size: int, rng: np.random.Generator) -> None:
    with open(path, "wb") as fh:
        left = size
        while left:
            n = min(left, 16 << 20)
            fh.write(rng.bytes(n))
            left -= n


def sizes(n: int, max_bytes: int, rng: np.random.Generator) -> list[int]:
    """Log-uniform from 1 KB to max_bytes, both ends included."""
    logs = rng.uniform(math.log(1000), math.log(max_bytes), n - 2)
    out = [1000, max_bytes] + [int(math.exp(x)) for x in logs]
    rng.shuffle(out)
    return out


def pct(values: list[float], p: float) -> float:
    return float(np.percentile(values, p)) if values else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=60, help="concurrent mixed-size uploads")
    ap.add_argument("--centers", type=int, default=5, choices=range(1, len(CENTERS) + 1))
    ap.add_argument("--max-mb", type=int, default=50)
    ap.add_argument("--big-mb", type=int, default=1024, help="the file cut off mid-way and resumed")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep", action="store_true", help="keep inputs and the lake in benchmarks/out/upload")
    args = ap.parse_args()

    shutil.rmtree(OUT, ignore_errors=True)
    inputs, home = OUT / "inputs", OUT / "home"
    inputs.mkdir(parents=True)
    env = {**os.environ, "OMICSLAKE_HOME": str(home), "RUST_LOG": "error"}
    env.pop("OMICSLAKE_STATE_DIR", None)
    centers = CENTERS[:args.centers]
    rng = np.random.default_rng(args.seed)
    api_proc = None
    try:
        t = time.perf_counter()
        groups: dict[tuple[str, str], list[Path]] = {}
        for i, size in enumerate(sizes(args.files, args.max_mb * MB, rng)):
            center = centers[i % len(centers)]
            feed = FEEDS[(i // len(centers)) % 2 + (centers.index(center) % 3)]
            path = inputs / f"{center}-{i:03d}.{feed}"
            write_random(path, size, rng)
            groups.setdefault((center, feed), []).append(path)
        big = inputs / f"{centers[0]}-big.bam"
        write_random(big, args.big_mb * MB, rng)
        mixed_bytes = sum(p.stat().st_size for ps in groups.values() for p in ps)
        print(f"inputs: {args.files} files, {mixed_bytes / MB:.0f} MB (1 KB to {args.max_mb} MB) in "
              f"{len(groups)} client processes from {len(centers)} centers, plus {args.big_mb} MB; "
              f"written in {time.perf_counter() - t:.1f} s", flush=True)

        t = time.perf_counter()
        issued = subprocess.run([sys.executable, "-c", ISSUE, *centers], env=env, capture_output=True,
                                text=True, cwd=ROOT)
        if issued.returncode:
            raise SystemExit(issued.stderr[-3000:])
        tokens = json.loads(issued.stdout.strip().splitlines()[-1])
        port = free_port()
        api_log = open(OUT / "api.log", "wb")  # noqa: SIM115 - open for the API's whole life
        api_proc = subprocess.Popen([sys.executable, "-m", "omicslake.cli", "api", "--port", str(port)],
                                    env=env, stdout=api_log, stderr=subprocess.STDOUT, cwd=ROOT)
        wait_for_port(port, timeout=180)
        print(f"API up on :{port}, {len(tokens)} tokens, in {time.perf_counter() - t:.1f} s", flush=True)

        def client(center: str, feed: str, files: list[Path], tag: str, parallel: int) -> subprocess.Popen:
            cenv = {**env, "OMICSLAKE_API": f"http://127.0.0.1:{port}", "OMICSLAKE_TOKEN": tokens[center],
                    "OMICSLAKE_UPLOAD_STATE": str(OUT / "client-state.json")}
            return subprocess.Popen(
                [sys.executable, "-m", "omicslake.cli", "upload", "--center", center, "--feed", feed,
                 "--json", "--parallel", str(parallel), *map(str, files)],
                env=cenv, cwd=ROOT, stdout=open(OUT / f"{tag}.out", "wb"),  # noqa: SIM115
                stderr=open(OUT / f"{tag}.err", "wb"))  # noqa: SIM115

        partial = home / "state" / "uploads" / "partial"
        big_size = big.stat().st_size
        t0 = time.perf_counter()
        procs = {f"{c}-{f}": client(c, f, ps, f"{c}-{f}", len(ps)) for (c, f), ps in groups.items()}
        big_proc = client(centers[0], "bam", [big], "big-1", 1)

        # cut the big upload off once the server holds half of it
        killed_at = None
        while killed_at is None:
            if big_proc.poll() is not None:
                raise SystemExit("the big upload ended before it was cut off: "
                                 + (OUT / "big-1.err").read_text())
            for meta in partial.glob("*.json") if partial.exists() else ():
                try:
                    if json.loads(meta.read_text())["length"] != big_size:
                        continue
                    held = meta.with_suffix(".part").stat().st_size
                except (OSError, ValueError, KeyError):
                    continue
                if held >= big_size // 2:
                    os.kill(big_proc.pid, signal.SIGKILL)
                    killed_at = held
            time.sleep(0.02)
        t_kill = time.perf_counter() - t0
        _, big_rss1 = reap(big_proc)
        big_proc2 = client(centers[0], "bam", [big], "big-2", 1)

        rss, failed = {}, []
        for tag, proc in procs.items():
            code, rss[tag] = reap(proc)
            if code:
                failed.append(tag)
        t_mixed = time.perf_counter() - t0
        code, big_rss2 = reap(big_proc2)
        t_all = time.perf_counter() - t0
        if code:
            failed.append("big-2")
        if failed:
            raise SystemExit(f"client(s) failed: {failed}: " + "".join(
                (OUT / f"{tag}.err").read_text()[-1500:] for tag in failed))

        # --- checks: every file once, right sha256, a receipt the API knows
        results = [json.loads(line) for tag in procs
                   for line in (OUT / f"{tag}.out").read_text().splitlines()]
        [big_result] = [json.loads(line) for line in (OUT / "big-2.out").read_text().splitlines()]
        assert not (OUT / "big-1.out").read_text().strip(), "the killed client reported a finished upload"
        assert len(results) == args.files and all(r["status"] == "ok" and r["receipt"] for r in results)
        assert big_result["status"] == "ok" and big_result["resumed_from"] >= killed_at > 0, big_result
        assert big_result["sent"] == big_size - big_result["resumed_from"], big_result
        expected = {r["sha256"]: r for r in [*results, big_result]}
        assert len(expected) == args.files + 1
        landed: dict[str, int] = {}
        for f in (home / "state" / "landing").rglob("*"):
            if f.is_file():
                digest = sha256_file(f, 8 << 20)
                landed[digest] = landed.get(digest, 0) + 1
        assert landed == dict.fromkeys(expected, 1), "a file landed twice, never, or altered"
        for path in [*(p for ps in groups.values() for p in ps), big]:
            assert sha256_file(path, 8 << 20) in expected
        assert not any(partial.iterdir()), "partial uploads left behind"
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
            for r in [*results, big_result]:
                auth = {"Authorization": f"Bearer {tokens[r['center']]}"}
                got = http.get(f"/receipts/{r['receipt']}", headers=auth)
                body = got.json()
                assert got.status_code == 200 and body["status"] == "received", body
                assert body["sha256"] == r["sha256"] and body["size"] == r["size"], body
        state_left = json.loads((OUT / "client-state.json").read_text())
        assert state_left == {}, state_left
    finally:
        api_rss = None
        if api_proc is not None:
            api_proc.terminate()
            _, api_rss = reap(api_proc)
    for text in [(OUT / "api.log").read_text(errors="replace"),
                 *(f.read_text(errors="replace") for f in OUT.glob("*.out")),
                 *(f.read_text(errors="replace") for f in OUT.glob("*.err"))]:
        assert not any(tok in text for tok in tokens.values()), "a token reached a log"

    lat = [r["seconds"] for r in results]
    all_bytes = mixed_bytes + big_size
    figures = {
        "uploads": args.files + 1, "concurrent_mixed": args.files, "client_processes": len(procs) + 2,
        "centers": len(centers), "mixed_mb": round(mixed_bytes / MB, 1), "big_mb": round(big_size / MB),
        "wall_s": round(t_all, 2), "uploads_per_s": round((args.files + 1) / t_all, 2),
        "mb_per_s": round(all_bytes / MB / t_all, 1),
        "mixed_wall_s": round(t_mixed, 2), "mixed_uploads_per_s": round(args.files / t_mixed, 2),
        "latency_p50_s": round(pct(lat, 50), 2), "latency_p95_s": round(pct(lat, 95), 2),
        "latency_max_s": round(max(lat), 2),
        "big_cut_at_mb": round(killed_at / MB, 1), "big_cut_after_s": round(t_kill, 2),
        "big_resumed_from_mb": round(big_result["resumed_from"] / MB, 1),
        "big_second_run_s": big_result["seconds"],
        "peak_rss_api_mb": round(api_rss or 0), "peak_rss_client_max_mb": round(max(rss.values())),
        "peak_rss_big_client_mb": round(max(big_rss1, big_rss2)),
    }
    f = figures
    print(f"{f['uploads']} uploads ({args.files} concurrent of 1 KB-{args.max_mb} MB, {f['mixed_mb']} MB, "
          f"+ {f['big_mb']} MB cut at {f['big_cut_at_mb']} MB and resumed from "
          f"{f['big_resumed_from_mb']} MB) from {len(centers)} centers in {t_all:.1f} s: "
          f"{f['uploads_per_s']} uploads/s, {f['mb_per_s']} MB/s")
    print(f"mixed files alone: {t_mixed:.1f} s, {f['mixed_uploads_per_s']} uploads/s; latency per upload "
          f"p50 {f['latency_p50_s']} s, p95 {f['latency_p95_s']} s, max {f['latency_max_s']} s")
    print(f"peak RSS: API {f['peak_rss_api_mb']} MB, client processes up to {f['peak_rss_client_max_mb']} MB "
          f"(the 1 GB client {f['peak_rss_big_client_mb']} MB)")
    print("every upload landed exactly once with its sha256 and a receipt; nothing re-sent after the cut")
    print(json.dumps(figures))
    if not args.keep:
        shutil.rmtree(OUT, ignore_errors=True)


if __name__ == "__main__":
    main()
