"""Person linkage throughput and accuracy on a generated population with known truth.

    python benchmarks/link_persons.py [--persons 2000 --persons 10000] [--seed 7]

For each size, in its own process and lake: generates the population (omicslake/person_population:
HL7 PID and FHIR Patient registrations at three centers, with typos, nicknames, swapped names,
missing fields, twins and mistyped resident IDs), maps every registration with the same connectors
build_clinical uses (clear values become keyed features there) into silver.patient_identities in one
commit, then runs ``jobs.link_persons`` as in production (Splink on DuckDB, clustering, the index
tables, relinking silver). Prints the model's training time (u from up to 2M random pairs, EM),
the candidate pairs it scored per second, the job's wall time, precision and recall on pairs
against the truth, and the process's peak RSS (the embedded engine included). Parsing and the
Delta append are not in the timed part.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def identity_rows(pop, key: bytes, run_id: str) -> list[dict]:
    """patient_identities rows of every HL7/FHIR registration, as build_clinical maps them."""
    from connectors import fhir_clinical, hl7_clinical
    from connectors.clinical_records import Source
    from connectors.hl7 import read_header
    from omicslake import person_population as pp

    rows, when = [], datetime(2026, 1, 1, tzinfo=UTC)
    for i, r in enumerate(pop.records):
        src = Source(key, r.center_id, r.fmt, f"BENCH@{r.center_id}", when, "b" * 64, run_id)
        if r.fmt == "HL7v2":
            text = pp.hl7_message(r, i, "20260101090000")
            header = read_header(text)
            found = hl7_clinical.records(text, src, header.control_id, header.trigger_event)
        elif r.fmt == "FHIR":
            found = fhir_clinical.records(pp.fhir_patient(r), src)
        else:
            continue
        rows += found.get("patient_identities", [])
    return rows


def accuracy(pop, key: bytes, links) -> tuple[float, float, int]:
    """Precision and recall on pairs of source pseudonyms (the unnamed registration left out)."""
    from omicslake.pseudonym import person_id

    truth = {person_id(key, a, i): p for (a, i), p in pop.truth().items()}
    unknown = person_id(key, pop.unknown.authority, pop.unknown.identifier)
    by_truth, by_person = defaultdict(set), defaultdict(set)
    for node, person in zip(links.source_person_id, links.person_id, strict=True):
        if node != unknown:
            by_truth[truth[node]].add(node)
            by_person[person].add(node)
    pairs = [{p for g in groups.values() for p in itertools.combinations(sorted(g), 2)}
             for groups in (by_truth, by_person)]
    hit = len(pairs[0] & pairs[1])
    return hit / max(1, len(pairs[1])), hit / max(1, len(pairs[0])), len(pairs[0])


def child(persons: int, seed: int) -> dict:
    """One size in a fresh lake; returns the figures."""
    import pyarrow as pa

    from jobs import link_persons
    from omicslake import person_population as pp
    from omicslake.catalog import read_table
    from omicslake.pseudonym import load_key
    from omicslake.session import get_spark
    from omicslake.settings import load_settings
    from omicslake.writes import append
    from schemas import get_table

    settings = load_settings()
    spark = get_spark(settings)
    key = load_key(settings)
    t = time.perf_counter()
    pop = pp.generate(persons, seed=seed, dicom=0, manifest_rate=0)
    rows = identity_rows(pop, key, "bench")
    table = pa.Table.from_pylist(rows, schema=get_table("silver.patient_identities").arrow_schema())
    append(spark.createDataFrame(table), settings, "silver.patient_identities")
    prepare = time.perf_counter() - t
    t = time.perf_counter()
    result = link_persons.run(spark, settings)
    wall = time.perf_counter() - t
    links = read_table(spark, settings, "silver.person_links").select("source_person_id", "person_id")
    links = links.toPandas()
    precision, recall, true_pairs = accuracy(pop, key, links)
    d = result.details
    return {"persons": persons, "registrations": len(pop.records), "identities": d["identities"],
            "source_persons": d["source_persons"], "pairs_scored": d["pairs_scored"],
            "train_s": d["train_seconds"], "predict_s": d["predict_seconds"],
            "pairs_per_s": round(d["pairs_scored"] / d["predict_seconds"]),
            "job_s": round(wall, 1), "prepare_s": round(prepare, 1), "true_pairs": true_pairs,
            "precision": round(precision, 4), "recall": round(recall, 4), "persons_linked": d["persons"],
            "review_pairs": d["review_pairs"],
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, action="append", help="population size (repeatable)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.seed)))
        return
    for persons in args.persons or [2000, 10000]:
        home = tempfile.mkdtemp(prefix="omicslake-bench-link-")
        env = {**os.environ, "OMICSLAKE_HOME": home, "RUST_LOG": "error",
               "OMICSLAKE_PSEUDONYM_KEY": os.environ.get("OMICSLAKE_PSEUDONYM_KEY", "bench-" + "0" * 40)}
        proc = subprocess.run([sys.executable, __file__, "--child", str(persons), "--seed", str(args.seed)],
                              env=env, capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(proc.stderr[-3000:])
        figures = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"persons {figures['persons']:>6}: {figures['source_persons']} source persons, "
              f"model trained in {figures['train_s']} s, {figures['pairs_scored']:,} candidate pairs "
              f"scored in {figures['predict_s']} s ({figures['pairs_per_s']:,} pairs/s), "
              f"whole job {figures['job_s']} s, "
              f"precision {figures['precision']}, recall {figures['recall']} "
              f"({figures['true_pairs']} true pairs), peak RSS {figures['peak_rss_mb']} MB")
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
