"""History, vacuum, optimize and checkpoints behind one adapter.

Sail cannot run ``DESCRIBE HISTORY``, ``VACUUM`` or ``OPTIMIZE``, so on the ``local`` profile
delta-rs does them, and on a ``remote`` endpoint that turns out to be Sail too; on Spark with
delta-spark (``remote`` or ``classic``) they are SQL.

A VACUUM that deletes files younger than ``MIN_RETENTION_HOURS`` can break a reader that is
still scanning an older snapshot and any time travel (``VERSION AS OF``) into that window, so
both adapters refuse it unless forced.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from pyspark.sql import SparkSession

from omicslake.catalog import table_uri
from omicslake.errors import OmicslakeError
from omicslake.settings import Settings

log = logging.getLogger(__name__)


MIN_RETENTION_HOURS = 168  # Delta's own default (delta.deletedFileRetentionDuration, 7 days)

# (column, "=" | "in", value or values): the partition filters delta-rs optimize accepts, ANDed.
PartitionFilter = tuple[str, str, Any]


@dataclass
class TableInfo:
    name: str
    layer: str
    location: str
    version: int
    rows: int
    files: int
    partition_by: list[str]
    size_bytes: int = 0


def check_retention(retention_hours: float, force: bool = False) -> None:
    """Refuse a vacuum retention below ``MIN_RETENTION_HOURS`` unless forced.

    Why: VACUUM deletes files that the current version no longer references. A query that
    started on an older snapshot, a writer whose commit is being retried, or a time-travel
    read of a version inside the window still needs them; a week covers a long job and its
    retries. Forcing is for tests and for a lake nobody reads or writes at that moment.
    """
    if retention_hours < MIN_RETENTION_HOURS and not force:
        raise OmicslakeError(
            f"vacuum retention {retention_hours:g} h is below {MIN_RETENTION_HOURS} h: running "
            "readers and time travel (VERSION AS OF) to versions younger than the retention "
            "would lose their files; force it only when nothing reads or writes the table"
        )


def _iso(ms) -> str | None:
    from datetime import UTC, datetime

    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


class DeltaRsAdapter:
    """Maintenance through delta-rs: no engine needed, reads the log directly."""

    keeps_versions = True  # its VACUUM can spare the files of named versions (cited cohorts)

    def __init__(self, settings: Settings):
        self.settings = settings

    def _table(self, name: str):
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        uri = table_uri(self.settings, name)
        try:
            return DeltaTable(uri, storage_options=self.settings.storage_options() or None)
        except TableNotFoundError:
            raise OmicslakeError(
                f"{name}: no Delta table at {uri} yet; check OMICSLAKE_HOME, or create the "
                "tables with `omicslake tables` / `omicslake demo`"
            ) from None

    def info(self, name: str) -> TableInfo:
        dt = self._table(name)
        import pyarrow as pa
        import pyarrow.compute as pc

        actions = pa.table(dt.get_add_actions(flatten=True))  # arro3 -> pyarrow

        num = actions.column("num_records")
        rows = int(pc.sum(num).as_py() or 0) if len(actions) else 0
        size = int(pc.sum(actions.column("size_bytes")).as_py() or 0) if len(actions) else 0
        layer, _, short = name.partition(".")
        return TableInfo(name, layer, table_uri(self.settings, name), dt.version(), rows,
                         len(actions), list(dt.metadata().partition_columns), size)

    def files(self, name: str) -> list[tuple[dict[str, str | None], int]]:
        """(partition values, size in bytes) of every file of the current version."""
        import pyarrow as pa

        actions = pa.table(self._table(name).get_add_actions(flatten=True)).to_pylist()
        return [({k.removeprefix("partition."): v for k, v in a.items() if k.startswith("partition.")},
                 int(a["size_bytes"])) for a in actions]

    def version(self, name: str) -> int:
        return self._table(name).version()

    def history(self, name: str, limit: int | None = None) -> list[dict[str, Any]]:
        return [
            {
                "version": h.get("version"),
                "timestamp": _iso(h.get("timestamp")),
                "operation": h.get("operation"),
                "parameters": json.dumps(h.get("operationParameters") or {}, sort_keys=True),
                "metrics": json.dumps(h.get("operationMetrics") or {}, sort_keys=True),
            }
            for h in self._table(name).history(limit)
        ]

    def vacuum(self, name: str, retention_hours: int = MIN_RETENTION_HOURS, dry_run: bool = True,
               force: bool = False, keep_versions: list[int] | None = None) -> list[str]:
        """Files no longer referenced and older than the retention (deleted unless dry_run).

        ``keep_versions`` spares every file those versions read, so they stay readable with
        VERSION AS OF. delta-rs lists tombstones, so a second run may name files already gone.
        """
        if not dry_run:
            check_retention(retention_hours, force)
        return self._table(name).vacuum(
            retention_hours=retention_hours, dry_run=dry_run, enforce_retention_duration=False,
            keep_versions=sorted(keep_versions) if keep_versions else None,
        )

    def optimize(self, name: str, zorder_by: list[str] | None = None,
                 partition_filters: list[PartitionFilter] | None = None) -> dict[str, Any]:
        """Compact small files; with ``zorder_by``, rewrite the (filtered) partitions Z-ordered.

        delta-rs compaction only touches partitions with several small files and commits
        nothing when there are none; Z-order rewrites every file of the partitions it is given.
        """
        dt = self._table(name)
        if zorder_by:
            return dt.optimize.z_order(zorder_by, partition_filters=partition_filters)
        return dt.optimize.compact(partition_filters=partition_filters)

    def set_properties(self, name: str, properties: dict[str, str]) -> bool:
        """Set table properties; commits (and returns True) only if one differs."""
        dt = self._table(name)
        current = dt.metadata().configuration
        if all(current.get(k) == v for k, v in properties.items()):
            return False
        dt.alter.set_table_properties(properties)
        return True

    def checkpoint(self, name: str) -> None:
        self._table(name).create_checkpoint()


class SqlAdapter:
    """Maintenance through Spark SQL with delta-spark (remote Spark 4 or classic)."""

    keeps_versions = False  # Delta SQL VACUUM cannot spare named versions

    def __init__(self, settings: Settings, spark: SparkSession):
        self.settings = settings
        self.spark = spark

    def _ref(self, name: str) -> str:
        return f"delta.`{table_uri(self.settings, name)}`"

    def info(self, name: str) -> TableInfo:
        detail = self.spark.sql(f"DESCRIBE DETAIL {self._ref(name)}").collect()[0].asDict()
        rows = self.spark.sql(f"SELECT count(*) AS n FROM {self._ref(name)}").collect()[0].n
        version = self.spark.sql(f"DESCRIBE HISTORY {self._ref(name)} LIMIT 1").collect()[0]
        layer, _, _ = name.partition(".")
        return TableInfo(name, layer, table_uri(self.settings, name), int(version.version),
                         int(rows), int(detail.get("numFiles") or 0),
                         list(detail.get("partitionColumns") or []),
                         int(detail.get("sizeInBytes") or 0))

    def files(self, name: str) -> list[tuple[dict[str, str | None], int]]:
        # The planning of partial Z-orders needs the file list; delta-rs reads it from the log
        # where the driver reaches the storage.
        return DeltaRsAdapter(self.settings).files(name)

    def version(self, name: str) -> int:
        return int(self.spark.sql(f"DESCRIBE HISTORY {self._ref(name)} LIMIT 1").collect()[0].version)

    def history(self, name: str, limit: int | None = None) -> list[dict[str, Any]]:
        q = f"DESCRIBE HISTORY {self._ref(name)}" + (f" LIMIT {int(limit)}" if limit else "")
        return [
            {
                "version": r.version,
                "timestamp": str(r.timestamp),
                "operation": r.operation,
                "parameters": json.dumps(r.operationParameters or {}, sort_keys=True),
                "metrics": json.dumps(r.operationMetrics or {}, sort_keys=True),
            }
            for r in self.spark.sql(q).collect()
        ]

    def vacuum(self, name: str, retention_hours: int = MIN_RETENTION_HOURS, dry_run: bool = True,
               force: bool = False, keep_versions: list[int] | None = None) -> list[str]:
        if keep_versions:
            raise OmicslakeError(f"{name}: Delta SQL VACUUM cannot keep named versions")
        if not dry_run:
            check_retention(retention_hours, force)
        if force:  # delta-spark refuses a short retention by itself unless told otherwise
            self.spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
        q = f"VACUUM {self._ref(name)} RETAIN {int(retention_hours)} HOURS"
        rows = self.spark.sql(q + (" DRY RUN" if dry_run else "")).collect()
        return [r[0] for r in rows]

    def optimize(self, name: str, zorder_by: list[str] | None = None,
                 partition_filters: list[PartitionFilter] | None = None) -> dict[str, Any]:
        q = f"OPTIMIZE {self._ref(name)}"
        if partition_filters:
            q += " WHERE " + " AND ".join(_sql_filter(f) for f in partition_filters)
        if zorder_by:
            q += f" ZORDER BY ({', '.join(zorder_by)})"
        return self.spark.sql(q).collect()[0].asDict(recursive=True)

    def set_properties(self, name: str, properties: dict[str, str]) -> bool:
        rows = self.spark.sql(f"SHOW TBLPROPERTIES {self._ref(name)}").collect()
        current = {r[0]: r[1] for r in rows}
        if all(current.get(k) == v for k, v in properties.items()):
            return False
        pairs = ", ".join(f"{_quote(k)} = {_quote(v)}" for k, v in properties.items())
        self.spark.sql(f"ALTER TABLE {self._ref(name)} SET TBLPROPERTIES ({pairs})")
        return True

    def checkpoint(self, name: str) -> None:
        # Spark writes checkpoints itself every delta.checkpointInterval commits; delta-rs
        # can force one where the driver reaches the storage.
        DeltaRsAdapter(self.settings).checkpoint(name)


def _quote(value: Any) -> str:
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _sql_filter(f: PartitionFilter) -> str:
    column, op, value = f
    if op == "in":
        return f"`{column}` IN ({', '.join(_quote(v) for v in value)})"
    return f"`{column}` = {_quote(value)}"


def speaks_delta_sql(spark: SparkSession, settings: Settings) -> bool:
    """True when the engine runs Delta's utility SQL; a remote Sail server does not."""
    try:
        spark.sql(f"DESCRIBE HISTORY delta.`{table_uri(settings, 'ops.centers')}` LIMIT 1").collect()
        return True
    except Exception as exc:  # the parser or analyzer rejects the statement
        log.info("engine does not run DESCRIBE HISTORY (%s); maintenance uses delta-rs",
                 str(exc).splitlines()[0][:200])
        return False


def adapter(settings: Settings, spark: SparkSession | None = None):
    """delta-rs on ``local`` and on engines without Delta utility SQL (Sail); SQL otherwise."""
    if settings.engine == "local":
        return DeltaRsAdapter(settings)
    if spark is None:
        raise ValueError("the SQL maintenance adapter needs a SparkSession")
    if not speaks_delta_sql(spark, settings):
        return DeltaRsAdapter(settings)
    return SqlAdapter(settings, spark)
