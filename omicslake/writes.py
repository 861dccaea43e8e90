"""Idempotent Delta writes shared by every job.

A Delta commit is atomic, so "append only if this source checksum has not landed" makes a
re-run of the same input a no-op, and MERGE on the contract's keys keeps derived tables free of
duplicates. Only SQL and the DataFrame writer are used, so this runs on every engine.
"""

from __future__ import annotations

import uuid

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from omicslake.catalog import path_ref, table_uri
from omicslake.settings import Settings
from schemas import get_table


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
    keys: tuple[str, ...] | None = None, update: bool = False,
) -> None:
    """Insert rows whose keys are not in ``table`` yet (and update matches if ``update``)."""
    contract = get_table(table)
    keys = keys or contract.keys
    view = f"src_{uuid.uuid4().hex[:12]}"
    contract.conform(df).createOrReplaceTempView(view)
    on = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
    q = f"MERGE INTO {path_ref(settings, table)} t USING {view} s ON {on} "
    if update:
        q += "WHEN MATCHED THEN UPDATE SET * "
    q += "WHEN NOT MATCHED THEN INSERT *"
    try:
        spark.sql(q)
    finally:
        spark.catalog.dropTempView(view)


def count_rows(spark: SparkSession, settings: Settings, table: str, where) -> int:
    """Rows of ``table`` matching a Column condition (no SQL text is built from values)."""
    from omicslake.catalog import read_table

    return read_table(spark, settings, table).where(where).count()
