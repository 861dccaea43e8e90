"""Cohorts: rebuild each cohort whose definition or input tables changed, then check gold.

Thin wiring only: the tables the check validates are the contracts' ``cohorts.gold`` quality
gate (``schemas``); the work lives in ``jobs/build_cohorts.py`` (which skips a cohort whose
definition checksum and input table versions match its last publication).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task

from omicslake.airflow_support import DEFAULT_ARGS, lake_assets, run_job, run_quality
from schemas import gate_tables

# lineage: the tables a build writes (README "Lineage")
WRITES = ["gold.cohort", "gold.cohort_definition", "gold.cohort_versions", "gold.cohort_inclusion_stats"]


@dag(
    dag_id="omicslake_cohorts",
    schedule=timedelta(hours=6),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["omicslake", "cohorts"],
)
def omicslake_cohorts():
    @task
    def plan() -> list[str]:
        from omicslake.cohort_definitions import load_all
        from omicslake.settings import load_settings

        return [d.name for d in load_all(load_settings().cohorts_dir)]

    @task(max_active_tis_per_dag=1, outlets=lake_assets(*WRITES))  # one writer of gold.cohort at a time
    def build(name: str) -> dict:
        return run_job("build_cohorts", names=[name])

    @task
    def check_gold() -> dict:
        return run_quality(gate_tables("cohorts.gold"))

    build.expand(name=plan()) >> check_gold()


omicslake_cohorts()
