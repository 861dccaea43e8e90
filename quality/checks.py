"""Run the suites on Spark DataFrames, record results, stop on critical failures."""

from __future__ import annotations

import json
import logging
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from pyspark.sql import DataFrame, SparkSession

from omicslake.catalog import read_table
from omicslake.errors import QualityError
from omicslake.settings import Settings
from omicslake.writes import append
from schemas import get_table

log = logging.getLogger(__name__)


@dataclass
class CheckResult:
    table_name: str
    expectation: str
    column_name: str | None
    critical: bool
    success: bool
    element_count: int | None
    unexpected_count: int | None
    details_json: str


def validate(df: DataFrame, table_name: str, suite=None) -> list[CheckResult]:
    """Validate one DataFrame against its table's suite with a throw-away GX context."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    from quality.suites import suite_for

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # one line per check instead
    suite = suite or suite_for(table_name)
    source = context.data_sources.add_spark(name=f"omicslake_{uuid.uuid4().hex[:8]}")
    asset = source.add_dataframe_asset(name=table_name)
    batch = asset.add_batch_definition_whole_dataframe("all").get_batch(
        batch_parameters={"dataframe": df}
    )
    report = batch.validate(suite, result_format="SUMMARY")
    results = []
    for r in report.results:
        cfg = r.expectation_config
        kwargs = cfg.kwargs
        column = kwargs.get("column") or (
            ",".join(kwargs["column_list"]) if kwargs.get("column_list") else None
        )
        res = r.result or {}
        results.append(
            CheckResult(
                table_name=table_name,
                expectation=cfg.type,
                column_name=column,
                critical=bool((cfg.meta or {}).get("critical")),
                success=bool(r.success),
                element_count=res.get("element_count"),
                unexpected_count=res.get("unexpected_count"),
                details_json=json.dumps(
                    {"observed_value": res.get("observed_value"),
                     "partial_unexpected_list": res.get("partial_unexpected_list"),
                     "exception": (r.exception_info or {}).get("exception_message")},
                    default=str,
                ),
            )
        )
    return results


def record(spark: SparkSession, settings: Settings, check_run_id: str,
           results: list[CheckResult]) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = [{**r.__dict__, "check_run_id": check_run_id, "checked_at": now} for r in results]
    if rows:
        df = spark.createDataFrame(rows, get_table("ops.quality_results").spark_schema())
        append(df, settings, "ops.quality_results")


def failure_message(failed: list[CheckResult]) -> str:
    parts = [
        f"{r.table_name}: {r.expectation}"
        + (f" on {r.column_name}" if r.column_name else "")
        + f" failed for {r.unexpected_count if r.unexpected_count is not None else '?'}"
        + (f" of {r.element_count}" if r.element_count is not None else "")
        + " rows"
        for r in failed
    ]
    return "critical data-quality check(s) failed: " + "; ".join(parts)


def check_tables(spark: SparkSession, settings: Settings, tables: list[str]) -> dict:
    """Validate tables, write ``ops.quality_results``, raise QualityError on critical failures."""
    check_run_id = f"quality-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    all_results: list[CheckResult] = []
    for name in tables:
        results = validate(read_table(spark, settings, name), name)
        all_results += results
        log.info("%s: %d/%d expectations met", name, sum(r.success for r in results), len(results))
    record(spark, settings, check_run_id, all_results)
    failed = [r for r in all_results if r.critical and not r.success]
    warnings = [r for r in all_results if not r.critical and not r.success]
    if failed:
        raise QualityError(failure_message(failed) + f" (check run {check_run_id})")
    return {
        "check_run_id": check_run_id,
        "expectations": len(all_results),
        "passed": sum(r.success for r in all_results),
        "warnings": len(warnings),
    }
