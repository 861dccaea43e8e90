"""HL7 v2 and FHIR throughput: MLLP to landing, HL7 files to Delta, FHIR NDJSON to Delta.

    python benchmarks/clinical_ingest.py [--messages 5000] [--clients 4] [--resources 20000]

Starts a real `omicslake mllp` listener on loopback and sends ORU^R01 messages from several
clients (each waits for its ACK, as MLLP senders do), then ingests the landed files, then a
generated HL7 batch file and a FHIR NDJSON export, each into a fresh lake. Prints messages or
resources per second and the peak RSS of each step's process.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectors.mllp import END, frame  # noqa: E402
from omicslake.net import free_port  # noqa: E402

CENTER = "CTY-S1"  # a center of the demo registry: the listener refuses unknown senders


def oru(i: int) -> str:
    return "\r".join([
        f"MSH|^~\\&|LIS|LAB|OMICSLAKE|NAT|20260302101500||ORU^R01^ORU_R01|B{i:08d}|P|2.5",
        f"PID|1||MRN{i % 5000:06d}^^^LAB^MR||DOE^JOHN||19800512|M",
        f"OBR|1|ORD{i}|FIL{i}|4548-4^Hemoglobin A1c^LN|||20260302090000",
        f"OBX|1|NM|4548-4^HbA1c^LN||{5 + i % 40 / 10:.1f}|%^percent^UCUM|4.0-6.0|N|||F",
        "OBX|2|NM|2345-7^Glucose^LN||6.2|mmol/L^mmol/L^UCUM|3.9-6.1|H|||F",
    ]) + "\r"



def run_cli(env: dict, *args: str) -> tuple[float, str]:
    t = time.perf_counter()
    cmd = [sys.executable, "-m", "omicslake.cli", *args]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(p.stderr[-3000:])
    return time.perf_counter() - t, p.stdout.strip()


def bench_mllp(home: Path, messages: int, clients: int) -> dict:
    port = free_port()
    env = {**os.environ, "OMICSLAKE_HOME": str(home), "RUST_LOG": "error"}
    proc = subprocess.Popen([sys.executable, "-m", "omicslake.cli", "mllp", "--port", str(port),
                             "--center", CENTER], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    proc.stdout.readline()
    per = messages // clients

    def client(k: int) -> None:
        with socket.create_connection(("127.0.0.1", port)) as s:
            f = s.makefile("rb")
            for i in range(k * per, (k + 1) * per):
                s.sendall(frame(oru(i)))
                buf = b""
                while not buf.endswith(END + b"\r"):
                    buf += f.read1(4096)

    t = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    dt = time.perf_counter() - t
    proc.terminate()
    proc.wait()
    return {"mllp_messages": per * clients, "mllp_clients": clients, "mllp_s": round(dt, 2),
            "mllp_msgs_per_s": round(per * clients / dt),
            "landing": str(home / "state" / "landing" / "hl7" / CENTER)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--resources", type=int, default=20000)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="omicslake-clinical-bench-"))
    out: dict = {}
    out.update(bench_mllp(work / "mllp", args.messages, args.clients))
    env = {**os.environ, "OMICSLAKE_HOME": str(work / "mllp"), "RUST_LOG": "error"}
    run_cli(env, "tables")
    dt, _ = run_cli(env, "ingest", "hl7", out.pop("landing"), "--center", CENTER)
    out.update(landing_to_delta_s=round(dt, 2), landing_msgs_per_s=round(args.messages / dt))
    batch = work / "batch.hl7"
    batch.write_text("".join(oru(i) for i in range(args.messages * 4)))
    env = {**os.environ, "OMICSLAKE_HOME": str(work / "files"), "RUST_LOG": "error"}
    run_cli(env, "tables")
    dt, _ = run_cli(env, "ingest", "hl7", str(batch), "--center", CENTER)
    out.update(hl7_file_messages=args.messages * 4, hl7_file_to_delta_s=round(dt, 2),
               hl7_file_msgs_per_s=round(args.messages * 4 / dt))
    nd = work / "export.ndjson"
    with open(nd, "w") as fh:
        for i in range(args.resources):
            fh.write(json.dumps({
                "resourceType": "Observation", "id": f"obs-{i}", "status": "final",
                "meta": {"lastUpdated": "2026-03-01T09:10:00Z"},
                "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}]},
                "subject": {"reference": f"Patient/p{i % 5000}"},
                "valueQuantity": {"value": 7.1, "unit": "%", "code": "%",
                                  "system": "http://unitsofmeasure.org"},
            }) + "\n")
    env = {**os.environ, "OMICSLAKE_HOME": str(work / "fhir"), "RUST_LOG": "error"}
    run_cli(env, "tables")
    dt, _ = run_cli(env, "ingest", "fhir", str(nd), "--center", CENTER)
    out.update(fhir_resources=args.resources, fhir_to_delta_s=round(dt, 2),
               fhir_resources_per_s=round(args.resources / dt),
               peak_rss_mb=round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
