"""Alignment QC from BAM/CRAM into ``silver.alignment_qc``; the reads stay where they are.

Each file is split into genomic windows that Spark tasks read through the index with pysam
(``connectors.bam``); the tasks return flag counts and depth histograms, which add up to one
row per file: the ``samtools flagstat`` numbers, mean and median depth, and with a BED of
targets the share of target bases at >= 20x. A file whose checksum already landed is skipped;
a file that cannot be QC'd goes to ``quarantine.bam`` with its reason.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

from pyspark.sql import SparkSession

from connectors.bam import (
    FLAG_KEYS,
    BamHeader,
    load_targets,
    plan_windows,
    read_header,
    summarise,
    window_qc,
)
from connectors.contigs import normalise_contig
from connectors.manifest import land_samples, read_manifest
from omicslake.checksums import sha256_file
from omicslake.errors import InputError
from omicslake.ingest import Source, expand_inputs, fan_out, pending
from omicslake.pseudonym import load_key, person_id
from omicslake.quarantine import Rejected, quarantine_row, quarantine_rows, reject_lines
from omicslake.runs import JobResult, main_for, track_run
from omicslake.settings import Settings
from omicslake.writes import append
from schemas import get_table

JOB = "ingest_bam"
SUFFIXES = (".bam", ".cram")
TASK_SCHEMA = ("path string, reference string, idx string, contig string, start long, end long, "
               "targets string")
PART_SCHEMA = (
    "total long, qc_failed long, secondary long, supplementary long, duplicates long, mapped long, "
    "paired long, properly_paired long, singletons long, depth_values array<long>, "
    "depth_counts array<long>, error string"
)
EMPTY_PART = {k: 0 for k in FLAG_KEYS} | {"depth_values": [], "depth_counts": []}


def qc_windows(batches):
    """mapInArrow body: one window per row in, its counts and depth histogram out.

    A window whose reads cannot be read (a truncated or corrupt BAM) comes back with ``error``
    set instead of failing the task, so the file is quarantined and the others still land.
    """
    import pyarrow as pa

    for batch in batches:
        out = []
        for t in batch.to_pylist():
            targets = json.loads(t["targets"]) if t["targets"] else None
            try:
                part = window_qc(t["path"], t["reference"], t["idx"], t["contig"], t["start"], t["end"],
                                 [tuple(x) for x in targets] if targets is not None else None,
                                 whole_genome=targets is None)
                out.append({**part, "error": None})
            except Exception as exc:
                where = ("unplaced reads" if t["contig"] == "*"
                         else f"{t['contig']}:{t['start'] + 1}-{t['end']}")
                out.append({**EMPTY_PART, "error": f"cannot read {where}: {type(exc).__name__}: {exc}"})
        yield pa.RecordBatch.from_pylist(out)


def file_qc(spark: SparkSession, header: BamHeader, reference: str | None,
            targets: dict[str, list[tuple[int, int]]] | None) -> dict:
    """Counts and depth of one file over all its windows; InputError if any window is unreadable."""
    by_name = {normalise_contig(c): ivs for c, ivs in (targets or {}).items()}
    tasks = []
    for contig, start, end in plan_windows(header.contigs):
        if targets is None:
            t = None
        else:
            ivs = [iv for iv in by_name.get(normalise_contig(contig), []) if iv[0] < end and iv[1] > start]
            t = json.dumps(ivs)
        tasks.append({"path": header.path, "reference": reference, "idx": header.index, "contig": contig,
                      "start": start, "end": end, "targets": t})
    parts = [r.asDict() for r in fan_out(spark, tasks, TASK_SCHEMA, qc_windows, PART_SCHEMA).collect()]
    errors = sorted(p["error"] for p in parts if p["error"])
    if errors:
        more = f" (and {len(errors) - 1} more window(s))" if len(errors) > 1 else ""
        raise InputError(f"{header.path}: truncated or corrupt {header.fmt}: {errors[0]}{more}")
    return summarise(parts)


def qc_row(f: str, header: BamHeader, qc: dict, sample, key: bytes, center_id: str, checksum: str,
           reference: str | None, with_targets: bool, run_id: str) -> dict:
    """The ``silver.alignment_qc`` row of one file."""
    return {
        "sample_id": sample.sample_id,
        "person_id": person_id(key, sample.assigning_authority or center_id, sample.patient_id),
        "center_id": center_id, "format": header.fmt, "alignment_uri": f,
        "index_uri": header.index, "reference_uri": reference, "size_bytes": os.path.getsize(f),
        "source_checksum": checksum, "total_reads": qc["total"],
        **{k: qc[k] for k in ("qc_failed", "mapped", "paired", "properly_paired", "singletons",
                              "duplicates", "secondary", "supplementary")},
        "depth_scope": "targets" if with_targets else "genome",
        "bases_assessed": qc["bases"], "mean_depth": qc["mean_depth"],
        "median_depth": qc["median_depth"],
        "fraction_target_20x": qc["fraction_20x"] if with_targets else None,
        "ingest_run_id": run_id, "computed_at": datetime.now(UTC).replace(tzinfo=None),
    }


def check_samples(f: str, header: BamHeader, manifest: dict, manifest_path: str) -> None:
    """One sample per file, and that sample in the manifest; InputError says which rule failed."""
    unknown = [s for s in header.samples if s not in manifest]
    if unknown:
        raise InputError(f"{f}: sample(s) {unknown} from @RG SM are not in manifest {manifest_path}")
    if len(header.samples) != 1:
        raise InputError(f"{f}: holds {len(header.samples)} samples {header.samples}; "
                         "alignment QC is per sample, split the file by read group")


def run(spark: SparkSession, settings: Settings, paths: list[str], center_id: str, manifest: str,
        targets: str | None = None, reference: str | None = None) -> JobResult:
    """QC every BAM/CRAM of one center; one ``silver.alignment_qc`` row per file.

    A file that cannot be QC'd (unreadable, truncated, no index, no sample, not in the
    manifest) goes to ``quarantine.bam`` with its reason and the other files still land; it
    is tried again on the next run, since the cause (an index, a manifest) may be fixed.
    """
    files = expand_inputs(paths, SUFFIXES)
    if not files:
        raise InputError(f"no BAM/CRAM files found in {paths}")
    params = {"paths": files, "center_id": center_id, "manifest": manifest, "targets": targets,
              "reference": reference}
    with track_run(spark, settings, JOB, params, center_id) as result:
        rows = {r.sample_id: r for r in read_manifest(manifest)}
        bed = load_targets(targets) if targets else None
        todo = pending(spark, settings, result, files, ("silver.alignment_qc",))
        key = load_key(settings)
        failed: list[tuple[Source, Rejected]] = []
        out = []
        result.details["samples"] = land_samples(spark, settings, manifest, center_id,
                                                 sha256_file(manifest), None)
        for s in todo:
            try:
                header = read_header(s.path, reference)
                check_samples(s.path, header, rows, manifest)
                qc = file_qc(spark, header, reference, bed)
            except InputError as exc:
                failed.append((s, Rejected(str(exc))))
                continue
            out.append(qc_row(s.path, header, qc, rows[header.samples[0]], key, center_id, s.checksum,
                              reference, bed is not None, result.run_id))
        if out:
            append(spark.createDataFrame(out, get_table("silver.alignment_qc").spark_schema()), settings,
                   "silver.alignment_qc")
        prov = {"center_id": center_id, "ingest_run_id": result.run_id}
        rejects = [quarantine_row(r, {**prov, "source_uri": s.path, "source_checksum": s.checksum})
                   for s, r in failed]
        quarantine_rows(spark, settings, "quarantine.bam", rejects)
        result.rows_read = len(todo)
        result.rows_accepted = result.rows_written = len(out)
        result.rows_quarantined = len(failed)
        result.details.update(files=len(out), rejected=reject_lines(rejects))
    return result


def _args(p) -> None:
    p.add_argument("paths", nargs="+", help="BAM/CRAM files or folders (indexed)")
    p.add_argument("--center", dest="center_id", required=True, help="sending center id")
    p.add_argument("--manifest", required=True, help="sample manifest CSV/TSV")
    p.add_argument("--targets", help="BED of target regions (exome/panel)")
    p.add_argument("--reference", help="reference FASTA (required for CRAM)")


if __name__ == "__main__":
    main_for(run, _args, __doc__)
