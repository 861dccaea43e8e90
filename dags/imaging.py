"""Imaging: DICOM from the C-STORE landing zone, or given files/zips -> bronze -> de-identified
silver hierarchy with thumbnails.

Thin wiring only: the tables the check validates are the contracts' ``imaging`` quality gate
(``schemas``); the work lives in ``jobs/ingest_dicom.py`` and ``quality/``.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task

from omicslake.airflow_support import DEFAULT_ARGS, lake_assets, landing_batches, run_job, run_quality
from schemas import gate_tables

WRITES = ["bronze.dicom_instances", "quarantine.dicom", "silver.imaging_instances", "silver.imaging_series",
          "silver.imaging_studies"]


@dag(
    dag_id="omicslake_imaging",
    schedule=timedelta(minutes=30),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["omicslake", "imaging"],
    params={
        "dicom": Param(
            [], type="array",
            description="[{center_id, paths}] DICOM files/folders/zips; empty: STATE/landing/dicom/<center>",
        ),
        "keep_dates": Param(False, type="boolean", description="keep dates instead of shifting per person"),
    },
)
def omicslake_imaging():
    @task
    def plan(params=None) -> list[dict]:
        return [{**b, "shift_dates": not params["keep_dates"]} for b in (list(params["dicom"])
                                                                          or landing_batches("dicom"))]

    @task(max_active_tis_per_dag=1, outlets=lake_assets(*WRITES))
    def ingest(batch: dict) -> dict:
        return run_job("ingest_dicom", paths=list(batch["paths"]), center_id=batch["center_id"],
                       shift_dates=batch.get("shift_dates", True))

    @task(trigger_rule="none_failed")
    def check() -> dict:
        return run_quality(gate_tables("imaging"))

    ingest.expand(batch=plan()) >> check()


omicslake_imaging()
