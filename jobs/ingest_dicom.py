"""Ingest DICOM files, folders and zip archives: bronze headers, de-identified copies, silver.

Files are read in Spark tasks, a batch per task. Each instance's header is read (pydicom,
pixels sliced not decoded), de-identified along PS3.15 Annex E (``connectors/dicom_deid.py``)
and its copy written to the curated zone; the task stages the bronze, silver and quarantine
rows, which the driver MERGEs on their keys (the instance's sha256 for bronze, the
de-identified SOP Instance UID for silver), so re-ingesting the same files adds nothing. Series
and study rows are recomputed from the instances of the studies touched, and each touched
series gets a PNG thumbnail of its middle instance.

On the embedded engine every task runs in this one Python process, so pure-Python work would
use one core whatever the fan-out; there a task hands its files, in chunks, to a pool of
worker processes (one per task slot) and only stages what they return. On a cluster, where
tasks are processes of their own, the task maps its files itself. The workers are started as
multiprocessing starts them (forkserver): a script that calls ``run`` must guard its entry
point with ``if __name__ == "__main__":``, or set ``OMICSLAKE_DICOM_WORKERS=0``.

The per-instance work is plain functions: a dataset in, rows (dicts) out (``bronze_row``,
``silver_row``, ``quarantine_row``); the series and study tables are DataFrame-to-DataFrame
steps (``series_rows``, ``middle_instances``, ``thumbnails``, ``study_rows``).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import uuid
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from omicslake import staging
from omicslake.errors import InputError

# Spark, the contracts and the lake's bookkeeping are imported where they are used: the worker
# processes import this module to map files and need none of them.
if TYPE_CHECKING:
    import pydicom
    from pyspark.sql import DataFrame, SparkSession

    from connectors.dicom import Source
    from connectors.dicom_deid import DeidConfig, DeidResult
    from omicslake.runs import JobResult
    from omicslake.settings import Settings

JOB = "ingest_dicom"
FILES_PER_TASK = 32
CHUNK_FILES = 8  # files a worker process maps per call: small enough to spread a task's files
COPY_BYTES_PER_FLUSH = 64 << 20  # copies held before their rows are checked and they are written
COUNT_SCHEMA = pa.schema([("instances", pa.int64()), ("accepted", pa.int64()), ("quarantined", pa.int64())])
# What the tasks stage, by staging folder, in the order the driver commits it.
STAGED = (
    ("bronze", "bronze.dicom_instances"),
    ("quarantine", "quarantine.dicom"),
    ("silver", "silver.imaging_instances"),
)
THUMBNAIL_COLUMNS = ("series_instance_uid", "thumbnail_uri")  # of silver.imaging_series


def counts_schema():
    """The Spark schema of the count row each task returns."""
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(COUNT_SCHEMA)


def arrow_schema(table: str) -> pa.Schema:
    from schemas import get_table

    return get_table(table).arrow_schema()


def staging_root(settings: Settings) -> str:
    return f"{settings.lake_root}/_staging/dicom"


def curated_root(settings: Settings) -> str:
    return f"{settings.lake_root}/curated/dicom"


def find_files(paths: list[str]) -> list[str]:
    """Files as given, and every non-hidden file under a folder (DICOM files often lack a suffix)."""
    out: list[str] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            out += sorted(str(f) for f in path.rglob("*") if f.is_file() and not f.name.startswith("."))
        elif path.is_file():
            out.append(str(path))
        else:
            raise InputError(f"{p}: no such file or folder")
    return out


def _as_uri(like: str, path: str) -> str:
    """``path`` (as pyarrow.fs names it) with the scheme of ``like`` put back."""
    return f"{like.split('://', 1)[0]}://{path}" if "://" in like else path


# --- rows: plain functions, an instance in, dicts out ----------------------------------------


def provenance(src: Source, center_id: str, run_id: str) -> dict:
    from connectors.dicom import sha256

    return {"center_id": center_id, "source_uri": src.uri, "source_checksum": sha256(src.data),
            "ingest_run_id": run_id}


def bronze_row(ds: pydicom.Dataset, tags: dict, header_json: str, src: Source, prov: dict,
               now: datetime) -> dict:
    """``bronze.dicom_instances``: the identified header's key tags and DICOM JSON."""
    return {
        **{k: v for k, v in tags.items() if k not in ("patient_id", "issuer_of_patient_id")},
        "has_pixel_data": "PixelData" in ds, "header_json": header_json, "file_uri": src.uri,
        "size_bytes": len(src.data), **prov, "ingested_at": now,
    }


def silver_row(result: DeidResult, tags: dict, prov: dict, deid_uri: str, size: int,
               now: datetime) -> dict:
    """``silver.imaging_instances``: the de-identified instance and where its copy is."""
    from connectors.dicom_deid import shifted_date

    d = result.dataset
    return {
        "sop_instance_uid": str(d.SOPInstanceUID), "series_instance_uid": str(d.SeriesInstanceUID),
        "study_instance_uid": str(d.StudyInstanceUID), "person_id": result.person_id,
        "center_id": prov["center_id"],
        **{k: tags[k] for k in ("modality", "body_part", "sop_class_uid", "instance_number", "rows",
                                "columns", "number_of_frames", "transfer_syntax")},
        "study_date": shifted_date(tags["study_date"], result.date_shift_days),
        "date_shift_days": result.date_shift_days, "burned_in_annotation": result.burned_in_annotation,
        "burned_in_risk": result.burned_in_risk, "deid_uri": deid_uri, "size_bytes": size,
        "source_checksum": prov["source_checksum"], "ingest_run_id": prov["ingest_run_id"],
        "updated_at": now,
    }


def quarantine_row(src: Source, reason: str, run_id: str, center_id: str, now: datetime) -> dict:
    """``quarantine.dicom``: a file or member; an unreadable one is keyed by its URI."""
    from connectors.dicom import sha256
    from omicslake.quarantine import Rejected
    from omicslake.quarantine import quarantine_row as row

    checksum = sha256(src.uri.encode()) if src.error else sha256(src.data)
    prov = {"center_id": center_id, "source_uri": src.uri, "source_checksum": checksum,
            "ingest_run_id": run_id}
    return row(Rejected(reason, src.uri.rsplit("/", 1)[-1], src.data[:256].hex() or None), prov, now)


def failure_reason(exc: Exception) -> str:
    """A DicomError says it plainly; anything else names its type so it can be traced."""
    from connectors.dicom import DicomError

    if isinstance(exc, DicomError):
        return str(exc)
    return f"cannot map the instance: {type(exc).__name__}: {exc}"


# --- one instance ------------------------------------------------------------------------------


@dataclass
class MappedRows:
    """One instance read and de-identified: its rows (not yet checked against the contracts)."""

    bronze: dict
    silver: dict
    copy: bytes
    folder: str  # under the curated base: center/study/series
    name: str  # sop.dcm


@dataclass
class Mapped:
    """One instance read and de-identified: its rows (checked against the contracts) and copy."""

    bronze: pa.RecordBatch
    silver: pa.RecordBatch
    copy: bytes
    folder: str
    name: str


def map_rows(src: Source, cfg: DeidConfig, key: bytes, center_id: str, run_id: str, curated: str,
             base: str, now: datetime) -> MappedRows:
    """Read, map and de-identify one instance without touching storage.

    The header is read once: its public elements are decoded once (for the checks and the
    DICOM JSON together), and those the profile keeps are written to the copy as they came.
    Raises DicomError for what is not a readable, linkable instance; any other exception is a
    mapping failure of this one instance, which the caller quarantines like the first.
    """
    from connectors.dicom import DicomError, encode, key_tags, read_instance
    from connectors.dicom_deid import deidentify
    from omicslake.pseudonym import person_id

    inst = read_instance(src.data)
    tags = key_tags(inst.dataset)
    if not tags["patient_id"]:
        raise DicomError("PatientID is empty: the instance cannot be linked to a person")
    prov = provenance(src, center_id, run_id)
    bronze = bronze_row(inst.dataset, tags, inst.header_json(), src, prov, now)
    person = person_id(key, tags["issuer_of_patient_id"] or center_id, tags["patient_id"])
    result = deidentify(inst.dataset, cfg, person)
    d = result.dataset
    copy = encode(d)
    folder, name = f"{center_id}/{d.StudyInstanceUID}/{d.SeriesInstanceUID}", f"{d.SOPInstanceUID}.dcm"
    silver = silver_row(result, tags, prov, _as_uri(curated, f"{base}/{folder}/{name}"), len(copy), now)
    return MappedRows(bronze, silver, copy, folder, name)


def map_instance(src: Source, cfg: DeidConfig, key: bytes, center_id: str, run_id: str, curated: str,
                 base: str, now: datetime) -> Mapped:
    """``map_rows`` with the rows checked against the contracts, one Arrow row each."""
    m = map_rows(src, cfg, key, center_id, run_id, curated, base, now)
    return Mapped(_batch(m.bronze, arrow_schema("bronze.dicom_instances")),
                  _batch(m.silver, arrow_schema("silver.imaging_instances")), m.copy, m.folder, m.name)


def _batch(row: dict, schema: pa.Schema) -> pa.RecordBatch:
    """One row as Arrow, so a value that does not fit the contract fails this instance only."""
    return pa.RecordBatch.from_pylist([row], schema=schema)


# --- rows against the contracts, without pyarrow ----------------------------------------------
#
# pyarrow, converting Python values, first imports pandas (1-2 s, and memory) to rule out pandas
# objects. The worker processes check each row in plain Python instead: a row whose values are
# of the column's Python type (an int within its Arrow range, a str that encodes as UTF-8) is
# one pyarrow converts; only a row that is not gets pyarrow's own verdict (and its message).
# The task, where pandas is loaded anyway, builds the Arrow tables.

_KINDS = {pa.string(): (str, None), pa.int32(): (int, 2**31), pa.int64(): (int, 2**63),
          pa.bool_(): (bool, None), pa.date32(): (date, None)}


def plain_columns(schema: pa.Schema) -> list[tuple[str, type | None, int | None]]:
    """(column, Python type, bound of an int) of each column; type None: only None is known to fit."""
    out = []
    for f in schema:
        kind, bound = (datetime, None) if pa.types.is_timestamp(f.type) else _KINDS.get(f.type, (None, None))
        out.append((f.name, kind, bound))
    return out


def fits(row: dict, columns: list) -> bool:
    """Whether pyarrow surely converts ``row`` into the columns (False: maybe not)."""
    for name, kind, bound in columns:
        value = row.get(name)
        if value is None:
            continue
        if type(value) is not kind:
            return False
        if bound is not None and not -bound <= value < bound:
            return False
        if kind is str and not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return False
    return True


# --- a chunk of files: what a worker process (or the task itself) does ------------------------


@dataclass(frozen=True)
class ChunkJob:
    """What mapping a chunk of files needs, sent to a worker process as it is (picklable)."""

    key: bytes
    shift_dates: bool
    curated: str
    run_id: str
    center_id: str
    now: datetime
    schemas: dict  # staging folder -> Arrow schema of its table, from the contracts
    env: dict = field(default_factory=dict)  # the task's environment (storage credentials ...)

    @property
    def columns(self) -> dict:
        return {name: plain_columns(schema) for name, schema in self.schemas.items()}


@dataclass
class ChunkOut:
    """The rows of a chunk by staging folder (dicts that fit the contracts), and how many
    instances it held."""

    rows: dict
    instances: int


def chunk_job(key: bytes, shift_dates: bool, curated: str, run_id: str, center_id: str) -> ChunkJob:
    return ChunkJob(key, shift_dates, curated, run_id, center_id, datetime.now(UTC),
                    {name: arrow_schema(table) for name, table in STAGED}, dict(os.environ))


def map_paths(job: ChunkJob, paths: list[str]) -> ChunkOut:
    """Map every instance of ``paths`` (files, zip members): copies written, rows returned.

    A file or member that cannot be read or mapped becomes a quarantine row; only a failure to
    write a copy (storage) raises.
    """
    from connectors.dicom import iter_sources
    from connectors.dicom_deid import DeidConfig

    _use_env(job.env)
    cfg = DeidConfig(job.key, job.shift_dates)
    fs, base = staging.filesystem(job.curated)  # a folder, S3 or HDFS, like the staged rows
    rows: dict[str, list] = {name: [] for name, _ in STAGED}
    pending: list[tuple[Source, MappedRows]] = []
    n = 0
    for path in paths:
        for src in iter_sources(path):
            n += 1
            try:
                if src.error:
                    raise _Unreadable(src.error)
                pending.append((src, map_rows(src, cfg, job.key, job.center_id, job.run_id, job.curated,
                                              base, job.now)))
            except Exception as exc:
                reason = str(exc) if isinstance(exc, _Unreadable) else failure_reason(exc)
                rows["quarantine"].append(quarantine_row(src, reason, job.run_id, job.center_id, job.now))
            if sum(len(m.copy) for _, m in pending) > COPY_BYTES_PER_FLUSH:
                _flush(job, fs, base, pending, rows)
    _flush(job, fs, base, pending, rows)
    return ChunkOut(rows, n)


class _Unreadable(Exception):
    """A file or zip member whose bytes could not be had (its reason as the message)."""


def _flush(job: ChunkJob, fs, base: str, pending: list, rows: dict) -> None:
    """Check the pending rows against the contracts (a value that does not fit quarantines its
    own instance only), then write the copies of those that fit."""
    columns = job.columns
    made: set[str] = set()
    for src, m in pending:
        reason = _misfit(job, columns, m)
        if reason is not None:
            rows["quarantine"].append(quarantine_row(src, reason, job.run_id, job.center_id, job.now))
            continue
        if m.folder not in made:
            fs.create_dir(f"{base}/{m.folder}", recursive=True)
            made.add(m.folder)
        with fs.open_output_stream(f"{base}/{m.folder}/{m.name}") as fh:
            fh.write(m.copy)
        rows["bronze"].append(m.bronze)
        rows["silver"].append(m.silver)
    pending.clear()


def _misfit(job: ChunkJob, columns: dict, m: MappedRows) -> str | None:
    """Why the instance's rows do not fit their contracts (pyarrow's words), or None."""
    if fits(m.bronze, columns["bronze"]) and fits(m.silver, columns["silver"]):
        return None
    try:
        _batch(m.bronze, job.schemas["bronze"])
        _batch(m.silver, job.schemas["silver"])
    except Exception as exc:
        return failure_reason(exc)
    return None


def _use_env(env: dict) -> None:
    """Run with the task's environment (a worker process started earlier may hold an older one)."""
    if env and env != os.environ:
        for name in set(os.environ) - set(env):
            del os.environ[name]
        os.environ.update(env)


# --- the task: fan the files out to worker processes, stage what comes back -------------------

_POOL: ProcessPoolExecutor | None = None
_POOL_WORKERS = 0
_POOL_LOCK = threading.Lock()


def mapping_workers(spark: SparkSession, settings: Settings) -> int:
    """Worker processes to map files with: on the embedded engine, whose tasks share this one
    Python process, one per task slot; elsewhere none (a task is a process of its own).
    ``OMICSLAKE_DICOM_WORKERS`` sets the number (0: map in the tasks)."""
    from omicslake.session import parallelism

    if os.environ.get("OMICSLAKE_DICOM_WORKERS"):
        return max(0, int(os.environ["OMICSLAKE_DICOM_WORKERS"]))
    return parallelism(spark) if settings.engine == "local" else 0


# What a worker needs, imported once by the forkserver the workers are forked from.
WORKER_MODULES = (__name__, "connectors.dicom", "connectors.dicom_deid", "omicslake.pseudonym")


def _pool(workers: int) -> ProcessPoolExecutor:
    """The worker processes, started once per process (forked from a fresh forkserver that has
    imported what they need, never from the engine's own threads) and kept for later runs."""
    global _POOL, _POOL_WORKERS
    with _POOL_LOCK:
        if _POOL is None or workers != _POOL_WORKERS:
            if _POOL is not None:
                _POOL.shutdown(wait=False, cancel_futures=True)
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(list(WORKER_MODULES))
            _POOL, _POOL_WORKERS = ProcessPoolExecutor(workers, mp_context=ctx), workers
        return _POOL


def warm_pool(workers: int) -> None:
    """Start the worker processes now, in the background, so their imports overlap the
    engine's planning rather than delay the first task."""
    if workers < 2:
        return
    pool = _pool(workers)

    def start() -> None:
        with suppress(Exception):  # a pool that cannot start fails the tasks, with the reason
            for future in [pool.submit(int, 0) for _ in range(workers)]:
                future.result()

    threading.Thread(target=start, daemon=True).start()


def _forget_pool(pool: ProcessPoolExecutor) -> None:
    global _POOL
    with _POOL_LOCK:
        if _POOL is pool:
            _POOL = None


def map_chunks(job: ChunkJob, paths: list[str], workers: int) -> list[ChunkOut]:
    """``map_paths`` over chunks of ``paths``: in the worker processes, or here without any."""
    chunks = [paths[i:i + CHUNK_FILES] for i in range(0, len(paths), CHUNK_FILES)]
    if workers < 2 or len(paths) < 2:
        return [map_paths(job, chunk) for chunk in chunks]
    pool = _pool(workers)
    try:
        futures = [pool.submit(map_paths, job, chunk) for chunk in chunks]
        return [f.result() for f in futures]
    except BrokenProcessPool:  # a worker died (killed, out of memory): fail the task, start afresh
        _forget_pool(pool)
        raise


def stage(root: str, job: ChunkJob, outs: list[ChunkOut]) -> dict[str, int]:
    """Write the task's rows, one Parquet file per staging folder; the counts of the task."""
    part = f"{uuid.uuid4().hex}.parquet"
    count = {}
    for name, _ in STAGED:
        rows = [row for out in outs for row in out.rows[name]]
        count[name] = len(rows)
        if rows:
            staging.write_table(root, f"{job.run_id}/{name}", part,
                                pa.Table.from_pylist(rows, schema=job.schemas[name]))
    return {"instances": sum(o.instances for o in outs), "accepted": count["bronze"],
            "quarantined": count["quarantine"]}


def process_files(key: bytes, shift_dates: bool, root: str, curated: str, run_id: str, center_id: str,
                  workers: int = 0):
    """mapInArrow body: file paths in, one count row out; rows are staged, copies written.

    Each file or zip member that cannot be read or mapped becomes a quarantine row; only a
    failure to write the copy or the staged rows (storage) fails the task.
    """
    warm_pool(workers)

    def body(batches):
        paths = [p for batch in batches for p in batch.column("path").to_pylist()]
        job = chunk_job(key, shift_dates, curated, run_id, center_id)
        counts = stage(root, job, map_chunks(job, paths, workers))
        yield pa.RecordBatch.from_pylist([counts], schema=COUNT_SCHEMA)

    return body


# --- series and studies: DataFrame -> DataFrame steps -----------------------------------------


def thumbnail_schema() -> pa.Schema:
    full = arrow_schema("silver.imaging_series")
    return pa.schema([full.field(c) for c in THUMBNAIL_COLUMNS])


def render_thumbnails(batches):
    """mapInArrow body: (series uid, middle instance URI) in, (series uid, PNG URI) out."""
    from connectors.dicom_thumbnail import thumbnail_png

    schema = thumbnail_schema()
    for batch in batches:
        out = []
        for r in batch.to_pylist():
            fs, path = staging.filesystem(r["deid_uri"])
            try:
                with fs.open_input_file(path) as fh:
                    png = thumbnail_png(fh.read())
            except Exception:  # no pixels, or a codec we lack: the series has no thumbnail
                out.append({"series_instance_uid": r["series_instance_uid"], "thumbnail_uri": None})
                continue
            target = path.rsplit("/", 1)[0] + "/thumbnail.png"
            with fs.open_output_stream(target) as fh:
                fh.write(png)
            out.append({"series_instance_uid": r["series_instance_uid"],
                        "thumbnail_uri": _as_uri(r["deid_uri"], target)})
        yield pa.RecordBatch.from_pylist(out, schema=schema)


def studies_instances(spark: SparkSession, settings: Settings, touched: DataFrame) -> DataFrame:
    """Every ``silver.imaging_instances`` row of the studies ``touched`` has instances of."""
    from omicslake.catalog import table_uri

    studies = touched.select("study_instance_uid").distinct()
    return (spark.read.format("delta").load(table_uri(settings, "silver.imaging_instances"))
            .join(studies, "study_instance_uid"))


def series_rows(inst: DataFrame) -> DataFrame:
    """Instances -> one row per series: modality, body part, counts, burned-in risk."""
    from pyspark.sql import functions as F

    return inst.groupBy("series_instance_uid", "study_instance_uid", "person_id", "center_id").agg(
        F.first("modality", ignorenulls=True).alias("modality"),
        F.first("body_part", ignorenulls=True).alias("body_part"),
        F.count("*").alias("instance_count"),
        F.sum(F.coalesce("number_of_frames", F.lit(1))).alias("frame_count"),
        F.max(F.col("burned_in_risk").cast("int")).cast("boolean").alias("burned_in_risk"),
    )


def middle_instances(inst: DataFrame) -> DataFrame:
    """Instances -> (series uid, copy URI) of each series' middle instance, by instance number."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    order = Window.partitionBy("series_instance_uid").orderBy(
        F.coalesce("instance_number", F.lit(0)), "sop_instance_uid")
    ranked = inst.withColumn("_n", F.row_number().over(order))
    counts = inst.groupBy("series_instance_uid").agg(F.count("*").alias("_c"))
    return (ranked.join(counts, "series_instance_uid")
            .where(F.col("_n") == F.floor((F.col("_c") + 1) / 2))
            .select("series_instance_uid", "deid_uri"))


def thumbnails(spark: SparkSession, middle: DataFrame) -> DataFrame:
    """(series uid, copy URI) -> (series uid, thumbnail URI), rendered in Spark tasks."""
    from pyspark.sql.pandas.types import from_arrow_schema

    from omicslake.session import parallelism

    return middle.repartition(max(1, 2 * parallelism(spark))).mapInArrow(
        render_thumbnails, from_arrow_schema(thumbnail_schema()))


def study_rows(inst: DataFrame) -> DataFrame:
    """Instances -> one row per study: first date, modalities, series and instance counts."""
    from pyspark.sql import functions as F

    return inst.groupBy("study_instance_uid", "person_id", "center_id").agg(
        F.min("study_date").alias("study_date"),
        F.array_join(F.array_sort(F.collect_set("modality")), ",").alias("modalities"),
        F.countDistinct("series_instance_uid").alias("series_count"),
        F.count("*").alias("instance_count"),
    )


def refresh_hierarchy(spark: SparkSession, settings: Settings, touched: DataFrame) -> None:
    """Recompute the series and study rows (counts, thumbnails) of the studies in ``touched``."""
    from pyspark.sql import functions as F

    from omicslake.writes import merge_new

    inst = studies_instances(spark, settings, touched)
    now = F.current_timestamp()
    series = (series_rows(inst).join(thumbnails(spark, middle_instances(inst)), "series_instance_uid", "left")
              .withColumn("updated_at", now))
    merge_new(spark, settings, series, "silver.imaging_series", update=True)
    merge_new(spark, settings, study_rows(inst).withColumn("updated_at", now), "silver.imaging_studies",
              update=True)


def run(
    spark: SparkSession, settings: Settings, paths: list[str], center_id: str, shift_dates: bool = True
) -> JobResult:
    """Ingest DICOM files, folders and zip archives of one center."""
    from pyspark.sql import functions as F

    from omicslake.catalog import path_ref
    from omicslake.persons import to_master
    from omicslake.pseudonym import load_key
    from omicslake.quarantine import reject_lines
    from omicslake.runs import track_run
    from omicslake.session import parallelism
    from omicslake.writes import merge_new
    from schemas import get_table

    files = find_files(paths)
    if not files:
        raise InputError(f"no files found in {paths}")
    params = {"paths": paths, "center_id": center_id, "shift_dates": shift_dates}
    with track_run(spark, settings, JOB, params, center_id) as result:
        result.inputs = files
        staging.filesystem(curated_root(settings))  # an unreachable store fails here, plainly
        root = staging_root(settings)
        plan = spark.createDataFrame([(f,) for f in files], "path string").repartition(
            max(1, min(len(files) // FILES_PER_TASK + 1, 4 * parallelism(spark)))
        )
        body = process_files(
            load_key(settings), shift_dates, root, curated_root(settings), result.run_id, center_id,
            workers=mapping_workers(spark, settings),
        )
        try:
            c = (
                plan.mapInArrow(body, counts_schema())
                .agg(*[F.sum(x).alias(x) for x in ("instances", "accepted", "quarantined")])
                .collect()[0]
            )
            before = (
                spark.sql(f"SELECT count(*) n FROM {path_ref(settings, 'bronze.dicom_instances')}")
                .collect()[0]
                .n
            )
            for key, table in STAGED:
                found = staging.files(root, f"{result.run_id}/{key}")
                if not found:
                    continue
                df = spark.read.parquet(*found)
                contract = get_table(table)
                df = df.dropDuplicates(list(contract.keys))
                if table == "silver.imaging_instances":  # a linked person's new instances join it
                    df = to_master(spark, settings, df)
                merge_new(spark, settings, df, table, update=(table == "silver.imaging_instances"))
                if table == "silver.imaging_instances":
                    refresh_hierarchy(spark, settings, df)
            after = (
                spark.sql(f"SELECT count(*) n FROM {path_ref(settings, 'bronze.dicom_instances')}")
                .collect()[0]
                .n
            )
            rejects = staging.read(root, f"{result.run_id}/quarantine")
            result.details["rejected"] = reject_lines(rejects) if rejects is not None else []
        finally:
            staging.clear(root, result.run_id)
        result.rows_read = int(c.instances or 0)
        result.rows_accepted = int(c.accepted or 0)
        result.rows_quarantined = int(c.quarantined or 0)
        result.rows_written = int(after - before)
        result.details.update(
            files=len(files),
            new_instances=result.rows_written,
            already_landed=result.rows_accepted - result.rows_written,
        )
    return result


def _args(p) -> None:
    p.add_argument("paths", nargs="+", help="DICOM files, folders or zip archives")
    p.add_argument("--center", dest="center_id", required=True, help="sending center id")
    p.add_argument(
        "--keep-dates", dest="shift_dates", action="store_false", help="keep dates instead of shifting"
    )


if __name__ == "__main__":
    from omicslake.runs import main_for

    main_for(run, _args, __doc__)
