"""Ingest DICOM files, folders and zip archives: bronze headers, de-identified copies, silver.

Files are read in Spark tasks, a batch per task. Each task reads every instance's header
(pydicom, pixels sliced not decoded), de-identifies it along PS3.15 Annex E
(``connectors/dicom_deid.py``) and writes the copy to the curated zone; it stages the bronze,
silver and quarantine rows, which the driver MERGEs on their keys (the instance's sha256 for
bronze, the de-identified SOP Instance UID for silver), so re-ingesting the same files adds
nothing. Series and study rows are recomputed from the instances of the studies touched, and
each touched series gets a PNG thumbnail of its middle instance.
"""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
from pyspark.sql import SparkSession, Window
from pyspark.sql import functions as F

from omicslake import staging
from omicslake.catalog import path_ref, table_uri
from omicslake.errors import InputError
from omicslake.persons import to_master
from omicslake.pseudonym import load_key
from omicslake.quarantine import reject_lines
from omicslake.runs import JobResult, main_for, track_run
from omicslake.session import parallelism
from omicslake.settings import Settings
from omicslake.writes import merge_new
from schemas import get_table

if TYPE_CHECKING:
    from connectors.dicom import Source
    from connectors.dicom_deid import DeidConfig

JOB = "ingest_dicom"
FILES_PER_TASK = 32
COUNTS = "instances long, accepted long, quarantined long"
# What the tasks stage, by staging folder, in the order the driver commits it.
STAGED = (
    ("bronze", "bronze.dicom_instances"),
    ("quarantine", "quarantine.dicom"),
    ("silver", "silver.imaging_instances"),
)


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


@dataclass
class Mapped:
    """One instance read and de-identified: its rows (checked against the contracts) and copy."""

    bronze: pa.RecordBatch
    silver: pa.RecordBatch
    copy: bytes
    folder: str  # under the curated base: center/study/series
    name: str  # sop.dcm


def map_instance(src: Source, cfg: DeidConfig, key: bytes, center_id: str, run_id: str, curated: str,
                 base: str, now: datetime) -> Mapped:
    """Read, map and de-identify one instance without touching storage.

    Raises DicomError for what is not a readable, linkable instance; any other exception is a
    mapping failure of this one instance, which the caller quarantines like the first.
    """
    from connectors.dicom import DicomError, header_json, key_tags, read_dataset, sha256
    from connectors.dicom_deid import deidentify, shifted_date
    from omicslake.pseudonym import person_id

    ds = read_dataset(src.data)
    tags = key_tags(ds)
    if not tags["patient_id"]:
        raise DicomError("PatientID is empty: the instance cannot be linked to a person")
    prov = {"center_id": center_id, "source_uri": src.uri, "source_checksum": sha256(src.data),
            "ingest_run_id": run_id}
    bronze = {
        **{k: v for k, v in tags.items() if k not in ("patient_id", "issuer_of_patient_id")},
        "has_pixel_data": "PixelData" in ds, "header_json": header_json(ds), "file_uri": src.uri,
        "size_bytes": len(src.data), **prov, "ingested_at": now,
    }
    person = person_id(key, tags["issuer_of_patient_id"] or center_id, tags["patient_id"])
    result = deidentify(ds, cfg, person)
    d = result.dataset
    buf = io.BytesIO()
    d.save_as(buf, enforce_file_format=False)
    folder, name = f"{center_id}/{d.StudyInstanceUID}/{d.SeriesInstanceUID}", f"{d.SOPInstanceUID}.dcm"
    silver = {
        "sop_instance_uid": str(d.SOPInstanceUID), "series_instance_uid": str(d.SeriesInstanceUID),
        "study_instance_uid": str(d.StudyInstanceUID), "person_id": person, "center_id": center_id,
        **{k: tags[k] for k in ("modality", "body_part", "sop_class_uid", "instance_number", "rows",
                                "columns", "number_of_frames", "transfer_syntax")},
        "study_date": shifted_date(tags["study_date"], result.date_shift_days),
        "date_shift_days": result.date_shift_days, "burned_in_annotation": result.burned_in_annotation,
        "burned_in_risk": result.burned_in_risk, "deid_uri": _as_uri(curated, f"{base}/{folder}/{name}"),
        "size_bytes": len(buf.getvalue()), "source_checksum": prov["source_checksum"],
        "ingest_run_id": run_id, "updated_at": now,
    }
    return Mapped(_batch(bronze, "bronze.dicom_instances"), _batch(silver, "silver.imaging_instances"),
                  buf.getvalue(), folder, name)


def _batch(row: dict, table: str) -> pa.RecordBatch:
    """One row as Arrow, so a value that does not fit the contract fails this instance only."""
    return pa.RecordBatch.from_pylist([row], schema=get_table(table).arrow_schema())


def rejected(src: Source, reason: str, run_id: str, center_id: str, now: datetime) -> pa.RecordBatch:
    """The quarantine row of one file or member; an unreadable one is keyed by its URI."""
    from connectors.dicom import sha256

    return _batch({
        "center_id": center_id, "source_uri": src.uri,
        "source_checksum": sha256(src.uri.encode()) if src.error else sha256(src.data),
        "location": src.uri.rsplit("/", 1)[-1], "line": None, "reason": reason,
        "raw": src.data[:256].hex() or None, "ingest_run_id": run_id, "quarantined_at": now,
    }, "quarantine.dicom")


def failure_reason(exc: Exception) -> str:
    """A DicomError says it plainly; anything else names its type so it can be traced."""
    from connectors.dicom import DicomError

    if isinstance(exc, DicomError):
        return str(exc)
    return f"cannot map the instance: {type(exc).__name__}: {exc}"


def process_files(key: bytes, shift_dates: bool, root: str, curated: str, run_id: str, center_id: str):
    """mapInArrow body: file paths in, one count row out; rows are staged, copies written.

    Each file or zip member that cannot be read or mapped becomes a quarantine row; only a
    failure to write the copy or the staged rows (storage) fails the task.
    """

    def body(batches):
        from connectors.dicom import iter_sources
        from connectors.dicom_deid import DeidConfig

        cfg = DeidConfig(key, shift_dates)
        fs, base = staging.filesystem(curated)  # a folder, S3 or HDFS, like the staged rows
        out: dict[str, list[pa.RecordBatch]] = {"bronze": [], "silver": [], "quarantine": []}
        now = datetime.now(UTC)
        n = 0
        for batch in batches:
            for path in batch.column("path").to_pylist():
                for src in iter_sources(path):
                    n += 1
                    if src.error:
                        out["quarantine"].append(rejected(src, src.error, run_id, center_id, now))
                        continue
                    try:
                        m = map_instance(src, cfg, key, center_id, run_id, curated, base, now)
                    except Exception as exc:
                        out["quarantine"].append(rejected(src, failure_reason(exc), run_id, center_id, now))
                        continue
                    fs.create_dir(f"{base}/{m.folder}", recursive=True)
                    with fs.open_output_stream(f"{base}/{m.folder}/{m.name}") as fh:
                        fh.write(m.copy)
                    out["bronze"].append(m.bronze)
                    out["silver"].append(m.silver)
        part = f"{uuid.uuid4().hex}.parquet"
        for name, table in STAGED:
            if out[name]:
                staging.write_table(root, f"{run_id}/{name}", part,
                                    pa.Table.from_batches(out[name], get_table(table).arrow_schema()))
        yield pa.RecordBatch.from_pylist(
            [{"instances": n, "accepted": len(out["bronze"]), "quarantined": len(out["quarantine"])}],
            schema=pa.schema(
                [("instances", pa.int64()), ("accepted", pa.int64()), ("quarantined", pa.int64())]
            ),
        )

    return body


def render_thumbnails(batches):
    """mapInArrow body: (series uid, middle instance URI) in, (series uid, PNG URI) out."""
    from connectors.dicom_thumbnail import thumbnail_png

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
            out.append(
                {
                    "series_instance_uid": r["series_instance_uid"],
                    "thumbnail_uri": _as_uri(r["deid_uri"], target),
                }
            )
        yield pa.RecordBatch.from_pylist(
            out, schema=pa.schema([("series_instance_uid", pa.string()), ("thumbnail_uri", pa.string())])
        )


def refresh_hierarchy(spark: SparkSession, settings: Settings, touched) -> None:
    """Recompute the series and study rows (counts, thumbnails) of the studies in ``touched``."""
    studies = touched.select("study_instance_uid").distinct()
    inst = (
        spark.read.format("delta")
        .load(table_uri(settings, "silver.imaging_instances"))
        .join(studies, "study_instance_uid")
    )
    now = F.current_timestamp()
    series = inst.groupBy("series_instance_uid", "study_instance_uid", "person_id", "center_id").agg(
        F.first("modality", ignorenulls=True).alias("modality"),
        F.first("body_part", ignorenulls=True).alias("body_part"),
        F.count("*").alias("instance_count"),
        F.sum(F.coalesce("number_of_frames", F.lit(1))).alias("frame_count"),
        F.max(F.col("burned_in_risk").cast("int")).cast("boolean").alias("burned_in_risk"),
    )
    ranked = inst.withColumn(
        "_n",
        F.row_number().over(
            Window.partitionBy("series_instance_uid").orderBy(
                F.coalesce("instance_number", F.lit(0)), "sop_instance_uid"
            )
        ),
    )
    counts = inst.groupBy("series_instance_uid").agg(F.count("*").alias("_c"))
    middle = (
        ranked.join(counts, "series_instance_uid")
        .where(F.col("_n") == F.floor((F.col("_c") + 1) / 2))
        .select("series_instance_uid", "deid_uri")
    )
    thumbs = middle.repartition(max(1, 2 * parallelism(spark))).mapInArrow(
        render_thumbnails,
        "series_instance_uid string, thumbnail_uri string",
    )
    series = series.join(thumbs, "series_instance_uid", "left").withColumn("updated_at", now)
    merge_new(spark, settings, series, "silver.imaging_series", update=True)
    study = (
        inst.groupBy("study_instance_uid", "person_id", "center_id")
        .agg(
            F.min("study_date").alias("study_date"),
            F.array_join(F.array_sort(F.collect_set("modality")), ",").alias("modalities"),
            F.countDistinct("series_instance_uid").alias("series_count"),
            F.count("*").alias("instance_count"),
        )
        .withColumn("updated_at", now)
    )
    merge_new(spark, settings, study, "silver.imaging_studies", update=True)


def run(
    spark: SparkSession, settings: Settings, paths: list[str], center_id: str, shift_dates: bool = True
) -> JobResult:
    """Ingest DICOM files, folders and zip archives of one center."""
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
            load_key(settings), shift_dates, root, curated_root(settings), result.run_id, center_id
        )
        try:
            c = (
                plan.mapInArrow(body, COUNTS)
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
    main_for(run, _args, __doc__)
