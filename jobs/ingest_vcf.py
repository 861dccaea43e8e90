"""Ingest VCF files into ``bronze.vcf_variants``, quarantine bad lines, upsert samples.

Each input is identified by its sha256; an input whose checksum already has rows in bronze is
skipped, so re-running the same files changes nothing. Records are parsed inside Spark tasks
(``mapInArrow``), one task per file here; the driver reads only headers and manifests.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import to_arrow_schema

from connectors.manifest import check_samples, read_manifest
from connectors.vcf import iter_records, read_header
from jobs.common import expand_inputs, main_for
from omicslake.checksums import sha256_file
from omicslake.errors import InputError
from omicslake.pseudonym import load_key, person_id
from omicslake.runs import JobResult, track_run
from omicslake.settings import Settings
from omicslake.writes import append, count_where, landed_checksums, merge_new
from schemas import get_table

JOB = "ingest_vcf"
VCF_SUFFIXES = (".vcf", ".vcf.gz", ".vcf.bgz")
TASK_SCHEMA = "path string, checksum string, header_json string, center_id string, run_id string"
BATCH_ROWS = 2048


def _parse_schema():
    from pyspark.sql import types as T

    bronze = get_table("bronze.vcf_variants").spark_schema()
    return T.StructType(
        [*bronze.fields, T.StructField("_error", T.StringType()), T.StructField("_raw", T.StringType())]
    )


def parse_files(batches):
    """mapInArrow body: (path, header) rows in, parsed bronze rows (or rejections) out."""
    from connectors.vcf import VcfHeader

    schema = to_arrow_schema(_parse_schema(), timezone="UTC")
    now = datetime.now(UTC)
    for batch in batches:
        for task in batch.to_pylist():
            header = VcfHeader.from_json(task["header_json"])
            rows = []
            for lineno, raw, rec, err in iter_records(task["path"], header):
                row = rec or {}
                row.update(
                    line=lineno, build=header.build, center_id=task["center_id"],
                    source_uri=task["path"], source_checksum=task["checksum"],
                    ingest_run_id=task["run_id"], ingested_at=now, _error=err,
                    _raw=raw.rstrip("\n") if err else None,
                )
                rows.append(row)
                if len(rows) >= BATCH_ROWS:
                    yield pa.RecordBatch.from_pylist(rows, schema=schema)
                    rows = []
            if rows:
                yield pa.RecordBatch.from_pylist(rows, schema=schema)


def parsed_records(spark: SparkSession, tasks: list[dict]) -> DataFrame:
    plan = spark.createDataFrame(tasks, TASK_SCHEMA).repartition(max(1, len(tasks)))
    return plan.mapInArrow(parse_files, _parse_schema())


def rejected_to_quarantine(parsed: DataFrame) -> DataFrame:
    return parsed.where(F.col("_error").isNotNull()).select(
        "center_id", "source_uri", "source_checksum",
        F.concat(F.lit("line "), F.col("line").cast("string")).alias("location"),
        "line", F.col("_error").alias("reason"), F.col("_raw").alias("raw"),
        "ingest_run_id", F.col("ingested_at").alias("quarantined_at"),
    )


def upsert_samples(spark: SparkSession, settings: Settings, manifest_path: str, center_id: str,
                   checksum: str, default_build: str | None) -> int:
    key = load_key(settings)
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = [
        {
            "sample_id": r.sample_id,
            "person_id": person_id(key, r.assigning_authority or center_id, r.patient_id),
            "center_id": center_id,
            "specimen": r.specimen,
            "assay": r.assay,
            "build": r.build or default_build,
            "source_checksum": checksum,
            "updated_at": now,
        }
        for r in read_manifest(manifest_path)
    ]
    df = spark.createDataFrame(rows, get_table("silver.samples").spark_schema())
    merge_new(spark, settings, df, "silver.samples", update=True)
    return len(rows)


def run(spark: SparkSession, settings: Settings, paths: list[str], center_id: str,
        manifest: str | None = None, build: str | None = None) -> JobResult:
    """Ingest VCFs of one center; returns counts (read = accepted + quarantined)."""
    files = expand_inputs(paths, VCF_SUFFIXES)
    if not files:
        raise InputError(f"no VCF files found in {paths}")
    params = {"paths": files, "center_id": center_id, "manifest": manifest, "build": build}
    with track_run(spark, settings, JOB, params, center_id) as result:
        manifest_rows = read_manifest(manifest) if manifest else None
        checksums = {f: sha256_file(f) for f in files}
        result.inputs, result.checksums = files, list(checksums.values())
        landed = landed_checksums(spark, settings, "bronze.vcf_variants", result.checksums)
        landed |= landed_checksums(spark, settings, "quarantine.vcf", result.checksums)
        tasks = []
        for f in files:
            if checksums[f] in landed:
                result.skipped_inputs.append(f)
                continue
            header = read_header(f, build)
            if manifest_rows is not None:
                check_samples(manifest_rows, header.samples, f, manifest)
            tasks.append({"path": f, "checksum": checksums[f], "header_json": header.to_json(),
                          "center_id": center_id, "run_id": result.run_id})
        if manifest:
            result.details["samples"] = upsert_samples(
                spark, settings, manifest, center_id, sha256_file(manifest), build
            )
        if not tasks:
            return result
        parsed = parsed_records(spark, tasks)
        append(parsed.where(F.col("_error").isNull()), settings, "bronze.vcf_variants")
        append(rejected_to_quarantine(parsed), settings, "quarantine.vcf")
        run_filter = f"ingest_run_id = '{result.run_id}'"
        result.rows_accepted = count_where(spark, settings, "bronze.vcf_variants", run_filter)
        result.rows_quarantined = count_where(spark, settings, "quarantine.vcf", run_filter)
        result.rows_read = result.rows_accepted + result.rows_quarantined
        result.rows_written = result.rows_accepted + result.rows_quarantined
        result.details["files"] = len(tasks)
    return result


def _args(p) -> None:
    p.add_argument("paths", nargs="+", help="VCF files or folders")
    p.add_argument("--center", dest="center_id", required=True, help="sending center id")
    p.add_argument("--manifest", help="sample manifest CSV/TSV")
    p.add_argument("--build", help="reference build when the header does not say (GRCh37/GRCh38)")


if __name__ == "__main__":
    main_for(run, _args, __doc__)
