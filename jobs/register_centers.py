"""Load the center registry (OMICSLAKE_CENTERS) into ``ops.centers`` (upsert by center_id), the
copy SQL joins on. A center dropped from the file stays in the table: rows still name it."""

from __future__ import annotations

from dataclasses import asdict

from pyspark.sql import SparkSession

from omicslake.runs import JobResult, main_for, track_run
from omicslake.settings import Settings
from omicslake.tiers import Network, registry
from omicslake.writes import merge_new
from schemas import get_table

JOB = "register_centers"


def run(spark: SparkSession, settings: Settings, network: Network | None = None) -> JobResult:
    network = network or registry(settings)
    with track_run(spark, settings, JOB, {"centers": len(network.centers)}) as result:
        rows = [asdict(c) for c in network.centers.values()]
        df = spark.createDataFrame(rows, get_table("ops.centers").spark_schema())
        merge_new(spark, settings, df, "ops.centers", update=True)
        result.rows_read = result.rows_accepted = result.rows_written = len(rows)
    return result


if __name__ == "__main__":
    main_for(lambda spark, settings: run(spark, settings), lambda p: None, __doc__)
