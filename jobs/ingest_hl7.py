"""Ingest HL7 v2 files (or the MLLP landing zone) into ``bronze.hl7_messages``.

Files are parsed in Spark tasks, a batch of files per task, with hl7apy in tolerant mode.
A message that cannot be accepted (not HL7, unsupported version, no control id, hl7apy
cannot parse it) goes to ``quarantine.hl7`` with its file, byte offset, control id and reason,
and the rest of the file lands. A file whose sha256 already landed is skipped, so re-running
over the same files, or the same landing zone, adds nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from omicslake import staging
from omicslake.checksums import sha256_file
from omicslake.errors import InputError
from omicslake.ingest import expand_inputs
from omicslake.quarantine import reject_lines
from omicslake.runs import JobResult, main_for, track_run
from omicslake.session import parallelism
from omicslake.settings import Settings
from omicslake.writes import append, count_rows, landed_checksums
from schemas import get_table

JOB = "ingest_hl7"
SUFFIXES = (".hl7", ".HL7", ".txt", ".er7", ".msg")
TASK_SCHEMA = "path string, checksum string, center_id string, run_id string, staging string, part int"
FILES_PER_TASK = 64


def staging_root(settings: Settings) -> str:
    return f"{settings.lake_root}/_staging/hl7"


def message_rows(path: str, data: bytes) -> tuple[list[dict], list[dict]]:
    """(accepted rows, rejects) for one file's bytes, without provenance.

    A message hl7apy rejects is quarantined with its reason; one whose mapping fails in any
    other way (an MSH-7 whose UTC time falls before year 1) is quarantined too, naming the
    exception, and the rest of the file still lands.
    """
    from connectors.hl7 import HL7Error, split_messages

    good, bad = [], []
    for m in split_messages(data):
        try:
            good.append(_message_row(m))
        except Exception as exc:
            reason = str(exc) if isinstance(exc, HL7Error) else (
                f"cannot map message: {type(exc).__name__}: {exc}")
            cid = exc.control_id if isinstance(exc, HL7Error) else _control_id(m.text)
            where = f"offset {m.offset}" + (f", control id {cid}" if cid else "")
            bad.append({"location": where, "line": None, "reason": reason, "raw": m.text})
    return good, bad


def _message_row(m) -> dict:
    from connectors.hl7 import hl7_timestamp, parse

    h, _ = parse(m.text)
    return {
        "message_control_id": h.control_id, "message_type": h.message_type,
        "trigger_event": h.trigger_event, "message_structure": h.structure, "version": h.version,
        "sending_application": h.sending_application, "sending_facility": h.sending_facility,
        "receiving_application": h.receiving_application, "receiving_facility": h.receiving_facility,
        "message_time": hl7_timestamp(h.message_datetime), "segments": h.segments, "raw": m.text,
        "byte_offset": m.offset,
    }


def _control_id(text: str) -> str | None:
    from connectors.hl7 import HL7Error, read_header

    try:
        return read_header(text).control_id
    except HL7Error:
        return None


def file_rows(path: str) -> tuple[list[dict], list[dict]]:
    """``message_rows`` of a file; a file that cannot be read at all is one reject."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        return [], [_file_reject(f"cannot read: {exc}")]
    try:
        return message_rows(path, data)
    except Exception as exc:  # the file could not even be split into messages
        return [], [_file_reject(f"cannot split into messages: {type(exc).__name__}: {exc}")]


def _file_reject(reason: str) -> dict:
    return {"location": "file", "line": None, "reason": reason, "raw": None}


def parse_files(batches):
    """mapInArrow body: file paths in, message rows out; rejects are staged beside the lake."""
    schema = get_table("bronze.hl7_messages").arrow_schema()
    qschema = get_table("quarantine.hl7").arrow_schema()
    now = datetime.now(UTC)
    for batch in batches:
        for t in batch.to_pylist():
            good, bad = file_rows(t["path"])
            prov = {"center_id": t["center_id"], "source_uri": t["path"], "source_checksum": t["checksum"],
                    "ingest_run_id": t["run_id"]}
            if good:
                rows = [{**r, **prov, "ingested_at": now} for r in good]
                yield pa.RecordBatch.from_pylist(rows, schema=schema)
            if bad:
                rows = [{**r, **prov, "quarantined_at": now} for r in bad]
                staging.write_table(t["staging"], t["run_id"], f"{t['checksum']}.parquet",
                                    pa.Table.from_pylist(rows, schema=qschema))


def run(spark: SparkSession, settings: Settings, paths: list[str], center_id: str) -> JobResult:
    """Ingest HL7 v2 files of one center (files, folders or the MLLP landing zone)."""
    files = expand_inputs(paths, SUFFIXES)
    if not files:
        raise InputError(f"no HL7 files ({', '.join(SUFFIXES)}) found in {paths}")
    with track_run(spark, settings, JOB, {"paths": paths, "center_id": center_id}, center_id) as result:
        checksums = {f: sha256_file(f) for f in files}
        result.inputs, result.checksums = files, list(checksums.values())
        landed = landed_checksums(spark, settings, "bronze.hl7_messages", result.checksums)
        landed |= landed_checksums(spark, settings, "quarantine.hl7", result.checksums)
        todo = [f for f in files if checksums[f] not in landed]
        result.skipped_inputs = [f for f in files if checksums[f] in landed]
        if not todo:
            return result
        root = staging_root(settings)
        tasks = [{"path": f, "checksum": checksums[f], "center_id": center_id, "run_id": result.run_id,
                  "staging": root, "part": i // FILES_PER_TASK} for i, f in enumerate(todo)]
        n = max(1, min(len(tasks) // FILES_PER_TASK + 1, 4 * parallelism(spark)))
        plan = spark.createDataFrame(tasks, TASK_SCHEMA).repartition(n)
        try:
            append(plan.mapInArrow(parse_files, get_table("bronze.hl7_messages").spark_schema()), settings,
                   "bronze.hl7_messages")
            rejects = staging.read(root, result.run_id)
            if rejects is not None:
                append(spark.createDataFrame(rejects), settings, "quarantine.hl7")
                result.details["rejected"] = reject_lines(rejects)
        finally:
            staging.clear(root, result.run_id)
        of_run = F.col("ingest_run_id") == result.run_id
        result.rows_accepted = count_rows(spark, settings, "bronze.hl7_messages", of_run)
        result.rows_quarantined = count_rows(spark, settings, "quarantine.hl7", of_run)
        result.rows_read = result.rows_written = result.rows_accepted + result.rows_quarantined
        result.details["files"] = len(todo)
    return result


def _args(p) -> None:
    p.add_argument("paths", nargs="+", help="HL7 files, folders, or the landing zone")
    p.add_argument("--center", dest="center_id", required=True, help="sending center id")


if __name__ == "__main__":
    main_for(run, _args, __doc__)
