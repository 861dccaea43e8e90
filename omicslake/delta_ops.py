"""History, vacuum, optimize and checkpoints behind one adapter.

Sail cannot run ``DESCRIBE HISTORY``, ``VACUUM`` or ``OPTIMIZE``, so on the ``local`` profile
delta-rs does them, and on a ``remote`` endpoint that turns out to be Sail too; on Spark with
delta-spark (``remote`` or ``classic``) they are SQL.
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


@dataclass
class TableInfo:
    name: str
    layer: str
    location: str
    version: int
    rows: int
    files: int
    partition_by: list[str]


def _iso(ms) -> str | None:
    from datetime import UTC, datetime

    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


class DeltaRsAdapter:
    """Maintenance through delta-rs: no engine needed, reads the log directly."""

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
        layer, _, short = name.partition(".")
        return TableInfo(name, layer, table_uri(self.settings, name), dt.version(), rows,
                         len(actions), list(dt.metadata().partition_columns))

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

    def vacuum(self, name: str, retention_hours: int = 168, dry_run: bool = True) -> list[str]:
        return self._table(name).vacuum(
            retention_hours=retention_hours, dry_run=dry_run, enforce_retention_duration=False
        )

    def optimize(self, name: str, zorder_by: list[str] | None = None) -> dict[str, Any]:
        dt = self._table(name)
        if zorder_by:
            return dt.optimize.z_order(zorder_by)
        return dt.optimize.compact()

    def checkpoint(self, name: str) -> None:
        self._table(name).create_checkpoint()


class SqlAdapter:
    """Maintenance through Spark SQL with delta-spark (remote Spark 4 or classic)."""

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
                         list(detail.get("partitionColumns") or []))

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

    def vacuum(self, name: str, retention_hours: int = 168, dry_run: bool = True) -> list[str]:
        q = f"VACUUM {self._ref(name)} RETAIN {int(retention_hours)} HOURS"
        rows = self.spark.sql(q + (" DRY RUN" if dry_run else "")).collect()
        return [r[0] for r in rows]

    def optimize(self, name: str, zorder_by: list[str] | None = None) -> dict[str, Any]:
        q = f"OPTIMIZE {self._ref(name)}"
        if zorder_by:
            q += f" ZORDER BY ({', '.join(zorder_by)})"
        return self.spark.sql(q).collect()[0].asDict(recursive=True)

    def checkpoint(self, name: str) -> None:
        # Spark writes checkpoints itself every delta.checkpointInterval commits; delta-rs
        # can force one where the driver reaches the storage.
        DeltaRsAdapter(self.settings).checkpoint(name)


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
