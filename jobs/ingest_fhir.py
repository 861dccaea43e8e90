"""Ingest FHIR R4 Bundles and bulk-export NDJSON into ``bronze.fhir_resources``.

Files are read and validated (fhir.resources, R4B models) in Spark tasks. Resources upsert by
(type, id) on ``meta.lastUpdated``: a newer version replaces the stored one, an older or equal
one never does, and within one batch only the newest version of each resource is kept. Invalid
JSON and resources that fail validation go to ``quarantine.fhir`` with file, location (line N,
entry N or offset N) and reason; the rest of the batch lands.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from omicslake import staging
from omicslake.catalog import path_ref
from omicslake.checksums import sha256_file
from omicslake.errors import InputError
from omicslake.ingest import expand_inputs
from omicslake.quarantine import reject_lines
from omicslake.runs import JobResult, main_for, track_run
from omicslake.session import parallelism
from omicslake.settings import Settings
from omicslake.writes import append, count_rows, landed_checksums
from schemas import get_table

JOB = "ingest_fhir"
SUFFIXES = (".json", ".ndjson", ".jsonl")
TASK_SCHEMA = "path string, checksum string, center_id string, run_id string, staging string"


def staging_root(settings: Settings) -> str:
    return f"{settings.lake_root}/_staging/fhir"


def parse_files(batches):
    """mapInArrow body: files in, valid resources out; rejects are staged beside the lake."""
    schema = get_table("bronze.fhir_resources").arrow_schema()
    qschema = get_table("quarantine.fhir").arrow_schema()
    now = datetime.now(UTC)
    for batch in batches:
        for t in batch.to_pylist():
            prov = {"center_id": t["center_id"], "source_uri": t["path"], "source_checksum": t["checksum"],
                    "ingest_run_id": t["run_id"]}
            good, bad, valid = [], [], 0
            for row, reject in file_rows(t["path"]):
                if reject is not None:
                    bad.append({**prov, **reject, "quarantined_at": now})
                    continue
                valid += 1
                good.append({**prov, **row, "ingested_at": now})
                if len(good) >= 5000:
                    yield pa.RecordBatch.from_pylist(good, schema=schema)
                    good = []
            if good:
                yield pa.RecordBatch.from_pylist(good, schema=schema)
            if bad:
                staging.write_table(t["staging"], t["run_id"], f"{t['checksum']}.parquet",
                                    pa.Table.from_pylist(bad, schema=qschema))
            staging.write_table(t["staging"], f"{t['run_id']}-counts", f"{t['checksum']}.parquet",
                                pa.table({"valid": [valid]}))


def file_rows(path: str) -> Iterator[tuple[dict | None, dict | None]]:
    """(bronze row, None) or (None, reject) for each resource of a file, without provenance.

    A resource fhir.resources rejects is quarantined with its reason; any other failure to map
    one is quarantined naming the exception, and one that stops the reading of the file
    quarantines the rest of it as a single reject, after the resources already read.
    """
    from connectors.fhir import iter_resources

    where = "file"
    try:
        with open(path, "rb") as fh:
            data = fh.read()
        for found in iter_resources(path, data):
            where = found.location
            yield _resource_row(found)
    except Exception as exc:
        reason = f"cannot read the file after {where}: {type(exc).__name__}: {exc}"
        yield None, {"location": "file", "line": None, "reason": reason, "raw": None}


def _resource_row(found) -> tuple[dict | None, dict | None]:
    from connectors.fhir import validate

    reason = found.error
    if reason is None:
        try:
            rtype, rid, updated, version = validate(found.resource)
            return {"resource_type": rtype, "resource_id": rid, "last_updated": updated,
                    "version_id": version, "raw_json": found.raw, "location": found.location}, None
        except ValueError as exc:
            reason = str(exc)
        except Exception as exc:
            reason = f"cannot map resource: {type(exc).__name__}: {exc}"
    return None, {"location": found.location, "line": _line(found.location), "reason": reason,
                  "raw": found.raw}


def _line(location: str) -> int | None:
    return int(location.split()[1].rstrip(",")) if location.startswith("line ") else None


def newest_per_resource(df: DataFrame) -> DataFrame:
    """One row per (type, id) in a batch: the latest lastUpdated (missing counts as oldest)."""
    w = Window.partitionBy("resource_type", "resource_id").orderBy(
        F.col("last_updated").desc_nulls_last(), F.col("source_uri").desc(), F.col("location").desc())
    return df.withColumn("_rank", F.row_number().over(w)).where("_rank = 1").drop("_rank")


def upsert(spark: SparkSession, settings: Settings, df: DataFrame) -> None:
    contract = get_table("bronze.fhir_resources")
    view = f"fhir_{uuid.uuid4().hex[:12]}"
    contract.conform(newest_per_resource(df)).createOrReplaceTempView(view)
    try:
        spark.sql(f"""
            MERGE INTO {path_ref(settings, 'bronze.fhir_resources')} t USING {view} s
            ON t.resource_type = s.resource_type AND t.resource_id = s.resource_id
            WHEN MATCHED AND s.last_updated IS NOT NULL
                 AND (t.last_updated IS NULL OR s.last_updated > t.last_updated) THEN UPDATE SET *
            WHEN NOT MATCHED THEN INSERT *
        """)
    finally:
        spark.catalog.dropTempView(view)


def run(spark: SparkSession, settings: Settings, paths: list[str], center_id: str) -> JobResult:
    """Ingest FHIR files of one center; returns read = accepted + quarantined resources."""
    files = expand_inputs(paths, SUFFIXES)
    if not files:
        raise InputError(f"no FHIR files ({', '.join(SUFFIXES)}) found in {paths}")
    with track_run(spark, settings, JOB, {"paths": paths, "center_id": center_id}, center_id) as result:
        checksums = {f: sha256_file(f) for f in files}
        result.inputs, result.checksums = files, list(checksums.values())
        landed = landed_checksums(spark, settings, "bronze.fhir_resources", result.checksums)
        landed |= landed_checksums(spark, settings, "quarantine.fhir", result.checksums)
        todo = [f for f in files if checksums[f] not in landed]
        result.skipped_inputs = [f for f in files if checksums[f] in landed]
        if not todo:
            return result
        root = staging_root(settings)
        tasks = [{"path": f, "checksum": checksums[f], "center_id": center_id, "run_id": result.run_id,
                  "staging": root} for f in todo]
        n = max(1, min(len(tasks), 4 * parallelism(spark)))
        parsed = spark.createDataFrame(tasks, TASK_SCHEMA).repartition(n).mapInArrow(
            parse_files, get_table("bronze.fhir_resources").spark_schema())
        try:
            upsert(spark, settings, parsed)
            rejects = staging.read(root, result.run_id)
            if rejects is not None:
                append(spark.createDataFrame(rejects), settings, "quarantine.fhir")
                result.details["rejected"] = reject_lines(rejects)
            counts = staging.read(root, f"{result.run_id}-counts")
        finally:
            staging.clear(root, result.run_id)
            staging.clear(root, f"{result.run_id}-counts")
        result.rows_accepted = int(sum(counts.column("valid").to_pylist())) if counts is not None else 0
        of_run = F.col("ingest_run_id") == result.run_id
        result.rows_quarantined = count_rows(spark, settings, "quarantine.fhir", of_run)
        result.rows_written = count_rows(spark, settings, "bronze.fhir_resources", of_run)
        result.rows_read = result.rows_accepted + result.rows_quarantined
        result.details.update(files=len(todo), newest_versions_written=result.rows_written)
    return result


def _args(p) -> None:
    p.add_argument("paths", nargs="+", help="FHIR Bundle JSON / NDJSON files or folders")
    p.add_argument("--center", dest="center_id", required=True, help="sending center id")


if __name__ == "__main__":
    main_for(run, _args, __doc__)
