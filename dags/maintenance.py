"""Maintenance: every night, compact, Z-order (genomic tables), vacuum and checkpoint each table.

Thin wiring only; the work and its rules (168 h vacuum floor, cited cohort versions kept) live
in ``jobs/maintain_tables.py``. One mapped task per table, so each table has exactly one
maintenance writer and a failed table is retried on its own; one run at a time.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

from omicslake.airflow_support import DEFAULT_ARGS, run_job


@dag(
    dag_id="omicslake_maintenance",
    schedule="0 3 * * *",  # 03:00 China Standard Time, after the day's feeds
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["omicslake", "maintenance"],
    params={
        "retention_hours": Param(168, type="integer", minimum=168,
                                 description="vacuum files unreferenced for this long (hours)"),
    },
)
def omicslake_maintenance():
    @task
    def plan() -> list[str]:
        from omicslake.catalog import lake_tables
        from omicslake.settings import load_settings

        return [t.full_name for t in lake_tables(load_settings())]

    @task(max_active_tis_per_dag=2)  # each task runs its own engine; two cores
    def maintain(table: str, params=None) -> dict:
        return run_job("maintain_tables", tables=[table], retention_hours=params["retention_hours"])

    maintain.expand(table=plan())


omicslake_maintenance()
