"""Alignment QC from BAM/CRAM into ``silver.alignment_qc``; the reads stay where they are.

Each file is split into genomic windows that Spark tasks read through the index with pysam
(``connectors.bam``); the tasks return flag counts and depth histograms, which add up to one
row per file: the ``samtools flagstat`` numbers, mean and median depth, and with a BED of
targets the share of target bases at >= 20x. A file whose checksum already landed is skipped.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

from pyspark.sql import SparkSession

from connectors.bam import BamHeader, load_targets, plan_windows, read_header, summarise, window_qc
from connectors.contigs import normalise_contig
from connectors.manifest import read_manifest
from jobs.common import expand_inputs, main_for
from jobs.ingest_vcf import upsert_samples
from omicslake.checksums import sha256_file
from omicslake.errors import InputError
from omicslake.pseudonym import load_key, person_id
from omicslake.runs import JobResult, track_run
from omicslake.settings import Settings
from omicslake.writes import append, landed_checksums
from schemas import get_table

JOB = "ingest_bam"
SUFFIXES = (".bam", ".cram")
TASK_SCHEMA = ("path string, reference string, idx string, contig string, start long, end long, "
               "targets string")
PART_SCHEMA = (
    "total long, qc_failed long, secondary long, supplementary long, duplicates long, mapped long, "
    "paired long, properly_paired long, singletons long, depth_values array<long>, "
    "depth_counts array<long>"
)


def qc_windows(batches):
    """mapInArrow body: one window per row in, its counts and depth histogram out."""
    import pyarrow as pa

    for batch in batches:
        out = []
        for t in batch.to_pylist():
            targets = json.loads(t["targets"]) if t["targets"] else None
            out.append(window_qc(t["path"], t["reference"], t["idx"], t["contig"], t["start"], t["end"],
                                 [tuple(x) for x in targets] if targets is not None else None,
                                 whole_genome=targets is None))
        yield pa.RecordBatch.from_pylist(out)


def file_qc(spark: SparkSession, header: BamHeader, reference: str | None,
            targets: dict[str, list[tuple[int, int]]] | None) -> dict:
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
    n = max(1, min(len(tasks), 4 * (os.cpu_count() or 2)))
    plan = spark.createDataFrame(tasks, TASK_SCHEMA).repartition(n)
    parts = [r.asDict() for r in plan.mapInArrow(qc_windows, PART_SCHEMA).collect()]
    return summarise(parts)


def run(spark: SparkSession, settings: Settings, paths: list[str], center_id: str, manifest: str,
        targets: str | None = None, reference: str | None = None) -> JobResult:
    """QC every BAM/CRAM of one center; one ``silver.alignment_qc`` row per file."""
    files = expand_inputs(paths, SUFFIXES)
    if not files:
        raise InputError(f"no BAM/CRAM files found in {paths}")
    params = {"paths": files, "center_id": center_id, "manifest": manifest, "targets": targets,
              "reference": reference}
    with track_run(spark, settings, JOB, params, center_id) as result:
        rows = {r.sample_id: r for r in read_manifest(manifest)}
        bed = load_targets(targets) if targets else None
        checksums = {f: sha256_file(f) for f in files}
        result.inputs, result.checksums = files, list(checksums.values())
        landed = landed_checksums(spark, settings, "silver.alignment_qc", result.checksums)
        key = load_key(settings)
        failed, out = [], []
        result.details["samples"] = upsert_samples(spark, settings, manifest, center_id,
                                                   sha256_file(manifest), None)
        for f in files:
            if checksums[f] in landed:
                result.skipped_inputs.append(f)
                continue
            result.rows_read += 1
            try:
                header = read_header(f, reference)
                unknown = [s for s in header.samples if s not in rows]
                if unknown:
                    raise InputError(f"{f}: sample(s) {unknown} from @RG SM are not in manifest {manifest}")
                if len(header.samples) != 1:
                    raise InputError(f"{f}: holds {len(header.samples)} samples {header.samples}; "
                                     "alignment QC is per sample, split the file by read group")
                qc = file_qc(spark, header, reference, bed)
            except InputError as exc:
                failed.append(str(exc))
                continue
            m = rows[header.samples[0]]
            out.append({
                "sample_id": m.sample_id,
                "person_id": person_id(key, m.assigning_authority or center_id, m.patient_id),
                "center_id": center_id, "format": header.fmt, "alignment_uri": f,
                "index_uri": header.index, "reference_uri": reference, "size_bytes": os.path.getsize(f),
                "source_checksum": checksums[f], "total_reads": qc["total"],
                **{k: qc[k] for k in ("qc_failed", "mapped", "paired", "properly_paired", "singletons",
                                      "duplicates", "secondary", "supplementary")},
                "depth_scope": "targets" if bed is not None else "genome",
                "bases_assessed": qc["bases"], "mean_depth": qc["mean_depth"],
                "median_depth": qc["median_depth"],
                "fraction_target_20x": qc["fraction_20x"] if bed is not None else None,
                "ingest_run_id": result.run_id, "computed_at": datetime.now(UTC).replace(tzinfo=None),
            })
        if out:
            append(spark.createDataFrame(out, get_table("silver.alignment_qc").spark_schema()), settings,
                   "silver.alignment_qc")
        result.rows_accepted = result.rows_written = len(out)
        result.details.update(files=len(out), failed_files=len(failed))
        if failed:
            raise InputError("; ".join(failed))
    return result


def _args(p) -> None:
    p.add_argument("paths", nargs="+", help="BAM/CRAM files or folders (indexed)")
    p.add_argument("--center", dest="center_id", required=True, help="sending center id")
    p.add_argument("--manifest", required=True, help="sample manifest CSV/TSV")
    p.add_argument("--targets", help="BED of target regions (exome/panel)")
    p.add_argument("--reference", help="reference FASTA (required for CRAM)")


if __name__ == "__main__":
    main_for(run, _args, __doc__)
