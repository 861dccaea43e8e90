"""The table catalog: where each contract lives and how it is named in Spark SQL.

Sail keeps its catalog in memory per session, so every session registers the
``layer.table`` names itself (``ensure_tables``). Tables are external Delta tables at
``{lake_root}/{layer}/{name}``, created empty with their declared schema and partitioning.
"""

from __future__ import annotations

import logging

from pyspark.sql import DataFrame, SparkSession

from omicslake.settings import Settings
from schemas import ALL_TABLES, COHORT_NAME, Table, cohort_features, get_table

log = logging.getLogger(__name__)


def table_uri(settings: Settings, table: Table | str) -> str:
    t = get_table(table) if isinstance(table, str) else table
    return f"{settings.lake_root}/{t.layer}/{t.name}"


def _exists(spark: SparkSession, settings: Settings, uri: str) -> bool:
    if settings.is_local_storage:
        from pathlib import Path

        return (Path(uri) / "_delta_log").is_dir()
    if settings.storage_options() or uri.startswith(("s3://", "s3a://")):
        from deltalake import DeltaTable

        return DeltaTable.is_deltatable(uri, storage_options=settings.storage_options())
    try:
        spark.read.format("delta").load(uri).limit(0).collect()
        return True
    except Exception:
        return False


def create_table(spark: SparkSession, settings: Settings, table: Table) -> None:
    """Create the empty Delta table with its declared schema and partitioning."""
    empty = spark.createDataFrame([], table.spark_schema())
    writer = empty.write.format("delta").mode("append")
    if table.partition_by:
        writer = writer.partitionBy(*table.partition_by)
    writer.save(table_uri(settings, table))
    log.info("created %s at %s", table.full_name, table_uri(settings, table))


def add_missing_columns(settings: Settings, table: Table) -> list[str]:
    """Add the columns a newer contract declares to a table an older release created.

    Sail has no ``ALTER TABLE ... ADD COLUMNS``, so delta-rs does it (local and S3 roots); the
    table stays at protocol (1,2) and old rows read the new columns as NULL.
    """
    if not settings.delta_rs_reaches_lake:
        return []
    from deltalake import DeltaTable, Schema

    dt = DeltaTable(table_uri(settings, table), storage_options=settings.storage_options() or None)
    have = {f.name for f in dt.schema().fields}
    missing = [c.name for c in table.columns if c.name not in have]
    if missing:
        fields = [f for f in Schema.from_arrow(table.arrow_schema()).fields if f.name in missing]
        dt.alter.add_columns(fields)
        log.info("%s: added columns %s", table.full_name, missing)
    return missing


def apply_table_properties(settings: Settings, table: Table) -> None:
    """Set what the contract declares on the Delta table (``delta.appendOnly``), through
    delta-rs on local and S3 roots; Sail and delta-spark then refuse a DELETE, UPDATE or
    overwrite of its rows."""
    if not table.append_only or not settings.delta_rs_reaches_lake:
        return
    from deltalake import DeltaTable

    dt = DeltaTable(table_uri(settings, table), storage_options=settings.storage_options() or None)
    if dt.metadata().configuration.get("delta.appendOnly") != "true":
        dt.alter.set_table_properties({"delta.appendOnly": "true"})
        log.info("%s: delta.appendOnly set", table.full_name)


def lake_tables(settings: Settings) -> tuple[Table, ...]:
    """Every table of the lake: the fixed contracts and one features table per cohort
    definition in ``settings.cohorts_dir`` (named by its file, which must match its name)."""
    names = sorted(p.stem for p in settings.cohorts_dir.glob("*.yaml") if COHORT_NAME.match(p.stem))
    return ALL_TABLES + tuple(cohort_features(n) for n in names)


def ensure_tables(
    spark: SparkSession, settings: Settings, tables: tuple[Table, ...] | None = None
) -> None:
    """Create missing tables and register every ``layer.table`` name in this session."""
    tables = lake_tables(settings) if tables is None else tables
    for layer in sorted({t.layer for t in tables}):
        spark.sql(f"CREATE SCHEMA IF NOT EXISTS {layer}")
    for table in tables:
        uri = table_uri(settings, table)
        if not _exists(spark, settings, uri):
            create_table(spark, settings, table)
        else:
            add_missing_columns(settings, table)
        apply_table_properties(settings, table)
        spark.sql(f"CREATE TABLE IF NOT EXISTS {table.full_name} USING delta LOCATION '{uri}'")


def read_table(spark: SparkSession, settings: Settings, name: str) -> DataFrame:
    return spark.read.format("delta").load(table_uri(settings, name))


def path_ref(settings: Settings, name: str) -> str:
    """The SQL reference ``delta.`uri``` that every engine accepts in MERGE/DELETE/UPDATE."""
    return f"delta.`{table_uri(settings, name)}`"
