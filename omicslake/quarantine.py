"""The one quarantine path: a ``Rejected`` record, one row builder, one writer.

Every quarantine table has the same contract (``schemas.contract.QUARANTINE_COLUMNS``), so a
rejection found on the driver (a whole bad file) and one found in a task (a bad line) become
rows the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the row builder is imported by light worker processes: no engine at import
    from pyspark.sql import SparkSession

    from omicslake.settings import Settings

__all__ = ["Rejected", "quarantine_row", "quarantine_rows", "reject_lines", "stage_rejects"]


@dataclass(frozen=True)
class Rejected:
    """One record that could not be accepted: why, where in its source, and its raw text.

    Example:
        >>> Rejected("no control id", "offset 0", raw="MSH|^~\\\\&|").location
        'offset 0'
    """

    reason: str
    location: str = "file"
    raw: str | None = None
    line: int | None = None


def quarantine_row(rejected: Rejected, provenance: dict, at: datetime | None = None) -> dict:
    """The quarantine-contract row of one rejection.

    Args:
        rejected: what was rejected and why.
        provenance: ``center_id``, ``source_uri``, ``source_checksum`` and ``ingest_run_id``.
        at: when; now by default.
    Returns:
        A dict with exactly the quarantine contract's columns.
    """
    return {
        "center_id": provenance["center_id"], "source_uri": provenance["source_uri"],
        "source_checksum": provenance["source_checksum"], "location": rejected.location,
        "line": rejected.line, "reason": rejected.reason, "raw": rejected.raw,
        "ingest_run_id": provenance["ingest_run_id"],
        "quarantined_at": (at or datetime.now(UTC)).replace(tzinfo=None),
    }


def stage_rejects(out, table: str, provenance: dict, rejected: list[Rejected]) -> None:
    """Stage a task's rejections (``out`` is a ``staging.writers``) for the driver to commit."""
    from schemas import get_table

    now = datetime.now(UTC)
    out.write(table, get_table(table).arrow_schema(), [quarantine_row(r, provenance, now) for r in rejected])


def quarantine_rows(spark: SparkSession, settings: Settings, table: str, rows) -> int:
    """Append quarantine rows (an Arrow table or a list of ``quarantine_row`` dicts).

    A record already quarantined (same source checksum and location, the contract's keys) is
    not written again, so a file that keeps failing on every run (a BAM without its index), or
    a rebuild that meets the same bad record, leaves its row once.
    """
    from omicslake.writes import append
    from schemas import get_table

    rows = rows.to_pylist() if hasattr(rows, "to_pylist") else list(rows)
    if not rows:
        return 0
    done = _quarantined(spark, settings, table, sorted({r["source_checksum"] for r in rows}))
    fresh = [r for r in rows if (r["source_checksum"], r["location"]) not in done]
    if fresh:
        append(spark.createDataFrame(fresh, get_table(table).spark_schema()), settings, table)
    return len(rows)


def _quarantined(spark: SparkSession, settings: Settings, table: str, checksums: list[str]) -> set:
    from pyspark.sql import functions as F

    from omicslake.catalog import read_table

    found = read_table(spark, settings, table).where(F.col("source_checksum").isin(checksums))
    return {(r.source_checksum, r.location) for r in found.select("source_checksum", "location").collect()}


def reject_lines(rejects, limit: int = 20) -> list[str]:
    """The first rejects as one line each (``source (location): reason``), for the run's report.

    ``rejects`` is an Arrow table or a list of rows shaped like the quarantine contract.
    """
    rows = rejects.slice(0, limit).to_pylist() if hasattr(rejects, "to_pylist") else list(rejects)[:limit]
    return [f"{r['source_uri']} ({r['location']}): {' '.join(str(r['reason']).split())}" for r in rows]
