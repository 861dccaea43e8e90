"""The shared quarantine writer: rejected records keep reason, location and raw text."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from pyspark.sql import DataFrame, SparkSession

from omicslake.settings import Settings
from omicslake.writes import append, landed_checksums
from schemas import get_table


@dataclass(frozen=True)
class Rejected:
    """One rejected record found on the driver (a bad manifest row, a whole bad file)."""

    source_uri: str
    source_checksum: str
    location: str
    reason: str
    raw: str | None = None
    line: int | None = None


def quarantine_rows(
    spark: SparkSession, settings: Settings, table: str, center_id: str, run_id: str,
    rejected: list[Rejected],
) -> int:
    """Write driver-side rejections; a source checksum already quarantined is not repeated."""
    if not rejected:
        return 0
    done = landed_checksums(spark, settings, table, sorted({r.source_checksum for r in rejected}))
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = [
        {
            "center_id": center_id,
            "source_uri": r.source_uri,
            "source_checksum": r.source_checksum,
            "location": r.location,
            "line": r.line,
            "reason": r.reason,
            "raw": r.raw,
            "ingest_run_id": run_id,
            "quarantined_at": now,
        }
        for r in rejected
        if r.source_checksum not in done
    ]
    if rows:
        append(spark.createDataFrame(rows, get_table(table).spark_schema()), settings, table)
    return len(rejected)


def quarantine_df(settings: Settings, table: str, df: DataFrame) -> None:
    """Write rejections computed by the engine (already shaped like the quarantine contract)."""
    append(df, settings, table)


def reject_lines(rejects, limit: int = 20) -> list[str]:
    """The first rejects as one line each (``source (location): reason``), for the run's report.

    ``rejects`` is an Arrow table or a list of rows shaped like the quarantine contract.
    """
    rows = rejects.slice(0, limit).to_pylist() if hasattr(rejects, "to_pylist") else list(rejects)[:limit]
    return [f"{r['source_uri']} ({r['location']}): {' '.join(str(r['reason']).split())}" for r in rows]
