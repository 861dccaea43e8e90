"""Run bookkeeping: every job run leaves one row in ``ops.ingest_runs``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from pyspark.sql import SparkSession

from omicslake.errors import OmicslakeError
from omicslake.settings import Settings
from omicslake.tiers import require_center

log = logging.getLogger(__name__)


def new_run_id(job: str) -> str:
    return f"{job}-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


@dataclass
class JobResult:
    """What a job did, in counts: rows in = accepted + quarantined."""

    job: str
    run_id: str
    status: str = "succeeded"
    center_id: str | None = None
    rows_read: int = 0
    rows_accepted: int = 0
    rows_quarantined: int = 0
    rows_written: int = 0
    inputs: list[str] = field(default_factory=list)
    checksums: list[str] = field(default_factory=list)
    skipped_inputs: list[str] = field(default_factory=list)
    per_input: dict[str, dict[str, int]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    duration_s: float = 0.0

    def summary(self) -> str:
        text = (
            f"{self.job} [{self.status}] read={self.rows_read} accepted={self.rows_accepted} "
            f"quarantined={self.rows_quarantined} written={self.rows_written} "
            f"({self.duration_s:.1f}s, run {self.run_id})"
        )
        if self.skipped_inputs:
            text += f"; already landed, skipped: {', '.join(self.skipped_inputs)}"
        for uri, counts in self.per_input.items():
            text += f"\n  {uri}: " + ", ".join(f"{k} {v}" for k, v in counts.items())
        for warning in self.warnings:
            text += f"\n  warning: {warning}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def record_run(spark: SparkSession, settings: Settings, result: JobResult,
               params: dict[str, Any], started: datetime, finished: datetime) -> None:
    from omicslake.writes import append
    from schemas import get_table

    row = {
        "run_id": result.run_id,
        "job": result.job,
        "center_id": result.center_id,
        "params_json": json.dumps(params, sort_keys=True, default=str),
        "input_uris": list(result.inputs),
        "input_checksums": list(result.checksums),
        "rows_read": result.rows_read,
        "rows_accepted": result.rows_accepted,
        "rows_quarantined": result.rows_quarantined,
        "rows_written": result.rows_written,
        "per_input_json": json.dumps(result.per_input, sort_keys=True) if result.per_input else None,
        "warnings": list(result.warnings),
        "status": result.status,
        "error": result.error,
        "engine": settings.engine,
        "started_at": started.replace(tzinfo=None),
        "finished_at": finished.replace(tzinfo=None),
        "duration_s": result.duration_s,
    }
    df = spark.createDataFrame([row], get_table("ops.ingest_runs").spark_schema())
    append(df, settings, "ops.ingest_runs")
    from omicslake.audit import audit

    audit(spark, settings, "job", result.job,
          {"run_id": result.run_id, "status": result.status, "rows_written": result.rows_written,
           "inputs": result.inputs}, result.center_id,
          outcome="failed" if result.status == "failed" else "ok")


@contextmanager
def track_run(spark: SparkSession, settings: Settings, job: str, params: dict[str, Any],
              center_id: str | None = None):
    """Yield a JobResult to fill in; on exit record it (also when the job fails). A run for a
    center the registry does not know fails before it reads anything (and is recorded)."""
    result = JobResult(job=job, run_id=new_run_id(job), center_id=center_id)
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    try:
        if center_id is not None:
            require_center(settings, center_id)
        yield result
    except BaseException as exc:
        result.status = "failed"
        result.error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        result.duration_s = round(time.perf_counter() - t0, 3)
        if result.status == "succeeded" and result.inputs and (
            len(result.skipped_inputs) == len(result.inputs)
        ):
            result.status = "skipped"
        try:
            record_run(spark, settings, result, params, started, datetime.now(UTC))
        except Exception:  # the job's own error matters more than the bookkeeping's
            log.exception("could not record run %s", result.run_id)
            if result.status != "failed":
                raise


def main_for(run: Callable, build_parser: Callable[[argparse.ArgumentParser], None], doc: str) -> None:
    """``python -m jobs.X`` / spark-submit entry: parse args, run on the configured engine."""
    parser = argparse.ArgumentParser(description=doc)
    build_parser(parser)
    args = vars(parser.parse_args())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from omicslake.session import get_spark
    from omicslake.settings import load_settings

    try:
        settings = load_settings()
        result = run(get_spark(settings), settings, **args)
    except OmicslakeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(result.to_dict(), default=str))
