"""Genomics pipeline: centers -> VCF ingest (one mapped task per batch) -> silver -> cohorts.

Thin wiring only; the work lives in ``jobs/`` and ``quality/``.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task

from omicslake.airflow_support import run_job, run_quality

DEFAULT_ARGS = {"owner": "omicslake-data-eng", "retries": 2, "retry_delay": timedelta(seconds=30)}
SILVER = ["silver.samples", "silver.variants", "silver.genotypes", "bronze.vcf_variants", "ops.centers"]
GOLD = ["gold.cohort", "gold.cohort_definitions", "ops.ingest_runs"]


@dag(
    dag_id="omicslake_genomics",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["omicslake", "genomics"],
    params={
        "batches": Param(
            [], type="array",
            description="[{center_id, vcf, manifest}] batches uploaded by centers",
        )
    },
)
def omicslake_genomics():
    @task
    def register_centers() -> dict:
        return run_job("register_centers")

    @task
    def plan_batches(params=None) -> list[dict]:
        return list(params["batches"])

    @task(max_active_tis_per_dag=1)
    def ingest_vcf(batch: dict) -> dict:
        return run_job("ingest_vcf", paths=[batch["vcf"]], center_id=batch["center_id"],
                       manifest=batch.get("manifest"))

    @task
    def clean_variants() -> dict:
        return run_job("clean_variants")

    @task
    def check_silver() -> dict:
        return run_quality(SILVER)

    @task
    def build_cohorts() -> dict:
        return run_job("build_cohorts")

    @task
    def check_gold() -> dict:
        return run_quality(GOLD)

    ingested = ingest_vcf.expand(batch=plan_batches())
    register_centers() >> ingested
    ingested >> clean_variants() >> check_silver() >> build_cohorts() >> check_gold()


omicslake_genomics()
