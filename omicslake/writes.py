"""Idempotent Delta writes shared by every job.

A Delta commit is atomic, so "append only if this source checksum has not landed" makes a
re-run of the same input a no-op, and MERGE on the contract's keys keeps derived tables free of
duplicates. Only SQL and the DataFrame writer are used, so this runs on every engine.

Concurrent writers: Delta commits are optimistic. A blind append that finds a newer version
is re-committed on top of it by the engine itself (Sail retries up to 15 times; delta-spark and
delta-rs likewise). Anything that read the table first (MERGE, DELETE, UPDATE, an overwrite)
is not: Sail 0.7 fails it with ``Failed to commit transaction: 0`` as soon as any other commit
landed after its snapshot (it does not run the conflict checker for such writes), delta-spark
with ``Concurrent...Exception``. ``retry_on_conflict`` runs the statement again, which plans it
on the newest snapshot, so the retry sees the winner's rows: nothing is lost or doubled.
"""

from __future__ import annotations

import logging
import random
import re
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from omicslake.catalog import path_ref, table_uri
from omicslake.settings import Settings
from schemas import get_table

log = logging.getLogger(__name__)
T = TypeVar("T")

# What a lost commit race looks like on each engine: Sail and delta-rs ("Failed to commit
# transaction: 0" = gave up without retrying; "...: Commit failed: a concurrent ..." = the
# conflict checker said no; "Tried committing existing table version"), delta-spark
# (ConcurrentAppendException & co., their DELTA_CONCURRENT_* / *_CHANGED error classes).
_CONFLICT = re.compile(
    r"Failed to commit transaction|Tried committing existing table version|CommitFailedError"
    r"|Concurrent(Append|DeleteRead|DeleteDelete|Transaction|Write|Modification)\w*Exception"
    r"|DELTA_CONCURRENT_\w+|DELTA_METADATA_CHANGED|DELTA_PROTOCOL_CHANGED"
    r"|MetadataChangedException|ProtocolChangedException"
)


def is_commit_conflict(exc: BaseException) -> bool:
    """True when ``exc`` says another commit won the race for the table's next version."""
    return bool(_CONFLICT.search(f"{type(exc).__name__}: {exc}"))


def retry_on_conflict(action: Callable[[], T], what: str, attempts: int = 6,
                      first_delay_s: float = 0.25) -> T:
    """Run ``action`` (a MERGE, DELETE, UPDATE, overwrite or maintenance commit) and run it
    again after a lost commit race, with exponential backoff and jitter.

    Safe because the losing commit wrote nothing to the log, and each run re-plans the statement
    on the table's newest version (re-reading the target and any source that reads it). Other
    errors, and the last conflict, are raised.
    """
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except Exception as exc:
            if attempt == attempts or not is_commit_conflict(exc):
                raise
            delay = min(first_delay_s * 2 ** (attempt - 1), 8.0) * random.uniform(0.5, 1.5)
            log.warning("%s: lost a Delta commit race (%s); retry %d of %d in %.2f s on the "
                        "newest version", what, str(exc).splitlines()[0][:160], attempt,
                        attempts - 1, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def landed_checksums(
    spark: SparkSession, settings: Settings, table: str, checksums: list[str],
    column: str = "source_checksum",
) -> set[str]:
    """Which of these source checksums already have rows in ``table``."""
    if not checksums:
        return set()
    from omicslake.catalog import read_table

    rows = read_table(spark, settings, table).where(F.col(column).isin(list(checksums))).select(
        F.col(column).alias("c")).distinct().collect()
    return {r.c for r in rows}


def append(df: DataFrame, settings: Settings, table: str) -> None:
    """Append rows conformed to the contract (one atomic commit)."""
    contract = get_table(table)
    writer = contract.conform(df).write.format("delta").mode("append")
    if contract.partition_by:
        writer = writer.partitionBy(*contract.partition_by)
    writer.save(table_uri(settings, table))


def merge_new(
    spark: SparkSession, settings: Settings, df: DataFrame, table: str,
    keys: tuple[str, ...] | None = None, update: bool = False, update_when: str | None = None,
) -> None:
    """Insert rows whose keys are not in ``table`` yet (and update matches if ``update``, or
    those where the fixed condition ``update_when`` over ``t`` (target) and ``s`` holds).

    A concurrent commit to ``table`` makes the MERGE run again on the newest version.
    """
    contract = get_table(table)
    keys = keys or contract.keys
    view = f"src_{uuid.uuid4().hex[:12]}"
    contract.conform(df).createOrReplaceTempView(view)
    on = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
    q = f"MERGE INTO {path_ref(settings, table)} t USING {view} s ON {on} "
    if update_when:
        q += f"WHEN MATCHED AND ({update_when}) THEN UPDATE SET * "
    elif update:
        q += "WHEN MATCHED THEN UPDATE SET * "
    q += "WHEN NOT MATCHED THEN INSERT *"
    try:
        retry_on_conflict(lambda: spark.sql(q), f"MERGE INTO {table}")
    finally:
        spark.catalog.dropTempView(view)


BOOKKEEPING = ("run_id", "updated_at", "created_at")  # change on every run: not a reason to rewrite


def sync_rows(
    spark: SparkSession, settings: Settings, table: str, rows: DataFrame, staged: str,
    within: dict[str, int] | None = None,
) -> None:
    """Make ``table`` (or its slice where every ``within`` column equals its value) hold exactly
    ``rows``, in one MERGE that rewrites only the rows whose values differ, so an unchanged
    derived table keeps its version. ``rows`` are staged at ``staged`` first: Sail's MERGE
    refuses some joined or ``mapInArrow`` plans as its source."""
    from omicslake import staging

    contract = get_table(table)
    view = f"src_{uuid.uuid4().hex[:12]}"
    staging.materialise(spark, contract.conform(rows), staged).createOrReplaceTempView(view)
    on = " AND ".join(f"t.`{k}` = s.`{k}`" for k in contract.keys)
    watched = [c for c in contract.column_names if c not in (*contract.keys, *BOOKKEEPING)]
    changed = " OR ".join(f"NOT (t.`{c}` <=> s.`{c}`)" for c in watched)
    gone = " AND ".join(["TRUE", *(f"t.`{c}` = {int(v)}" for c, v in (within or {}).items())])
    q = (f"MERGE INTO {path_ref(settings, table)} t USING {view} s ON {on} "
         f"WHEN MATCHED AND ({changed}) THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT * "
         f"WHEN NOT MATCHED BY SOURCE AND {gone} THEN DELETE")
    try:
        retry_on_conflict(lambda: spark.sql(q), f"MERGE INTO {table}")
    finally:
        spark.catalog.dropTempView(view)


def count_rows(spark: SparkSession, settings: Settings, table: str, where) -> int:
    """Rows of ``table`` matching a Column condition (no SQL text is built from values)."""
    from omicslake.catalog import read_table

    return read_table(spark, settings, table).where(where).count()


def upsert_rows(spark: SparkSession, settings: Settings, table: str, rows: list[dict]) -> None:
    """Insert or update a few rows built on the driver (bookkeeping: definitions, versions,
    reference releases), keyed on the contract's keys."""
    df = spark.createDataFrame(rows, get_table(table).spark_schema())
    merge_new(spark, settings, df, table, update=True)
