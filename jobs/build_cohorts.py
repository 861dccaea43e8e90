"""Publish ``gold.cohort`` from cohort definitions written in Spark SQL over silver tables.

Each definition's query returns ``subject_id`` and ``cohort_start_date``; the published
membership is replaced by what the query returns now, so a re-run changes nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.common import main_for
from omicslake.catalog import path_ref
from omicslake.runs import JobResult, track_run
from omicslake.settings import Settings
from omicslake.writes import count_rows, merge_new
from schemas import get_table


@dataclass(frozen=True)
class CohortDefinition:
    cohort_definition_id: int
    name: str
    description: str
    criteria_sql: str


DEFINITIONS = (
    CohortDefinition(
        1,
        "brca1_region_carriers",
        "People carrying a non-reference call in the BRCA1 gene region (GRCh38 chr17:43044295-43125483)",
        """
        SELECT g.person_id AS subject_id, to_date(min(r.started_at)) AS cohort_start_date
        FROM silver.genotypes g
        JOIN ops.ingest_runs r ON r.run_id = g.ingest_run_id
        WHERE g.contig = 'chr17' AND g.pos BETWEEN 43044295 AND 43125483
        GROUP BY g.person_id
        """,
    ),
    CohortDefinition(
        2,
        "multi_center_sequenced",
        "People with at least one non-reference call on chromosome 22",
        """
        SELECT g.person_id AS subject_id, to_date(min(r.started_at)) AS cohort_start_date
        FROM silver.genotypes g
        JOIN ops.ingest_runs r ON r.run_id = g.ingest_run_id
        WHERE g.contig = 'chr22'
        GROUP BY g.person_id
        """,
    ),
)

JOB = "build_cohorts"


def run(spark: SparkSession, settings: Settings,
        definitions: tuple[CohortDefinition, ...] = DEFINITIONS) -> JobResult:
    with track_run(spark, settings, JOB, {"cohorts": [d.name for d in definitions]}) as result:
        defs = spark.createDataFrame([asdict(d) for d in definitions],
                                     get_table("gold.cohort_definitions").spark_schema())
        merge_new(spark, settings, defs, "gold.cohort_definitions", update=True)
        for d in definitions:
            members = spark.sql(d.criteria_sql).select(
                F.lit(d.cohort_definition_id).cast("long").alias("cohort_definition_id"),
                F.col("subject_id"), F.col("cohort_start_date"),
                F.lit(None).cast("date").alias("cohort_end_date"),
            )
            view = f"cohort_{d.cohort_definition_id}"
            members.createOrReplaceTempView(view)
            spark.sql(
                f"MERGE INTO {path_ref(settings, 'gold.cohort')} t USING {view} s "
                "ON t.cohort_definition_id = s.cohort_definition_id AND t.subject_id = s.subject_id "
                "WHEN NOT MATCHED THEN INSERT * "
                f"WHEN NOT MATCHED BY SOURCE AND t.cohort_definition_id = {d.cohort_definition_id} "
                "THEN DELETE"
            )
            spark.catalog.dropTempView(view)
            n = count_rows(spark, settings, "gold.cohort",
                           F.col("cohort_definition_id") == d.cohort_definition_id)
            result.details[d.name] = n
            result.rows_written += n
        result.rows_read = result.rows_accepted = result.rows_written
    return result


if __name__ == "__main__":
    main_for(lambda spark, settings: run(spark, settings), lambda p: None, __doc__)
