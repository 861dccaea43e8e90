"""Clinical feeds: HL7 v2 (MLLP landing zone or files) and FHIR R4 (Bundles, NDJSON) -> bronze.

Thin wiring only; the work lives in ``jobs/`` and ``quality/``.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task

from omicslake.airflow_support import landing_batches, run_job, run_quality

DEFAULT_ARGS = {"owner": "omicslake-data-eng", "retries": 2, "retry_delay": timedelta(seconds=30)}


@dag(
    dag_id="omicslake_clinical",
    schedule=timedelta(minutes=15),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["omicslake", "clinical"],
    params={
        "hl7": Param(
            [], type="array",
            description="[{center_id, paths}] HL7 v2 files; empty: every center's MLLP landing zone",
        ),
        "fhir": Param(
            [], type="array",
            description="[{center_id, paths}] FHIR Bundles / NDJSON; empty: STATE/landing/fhir/<center>",
        ),
    },
)
def omicslake_clinical():
    @task
    def plan_hl7(params=None) -> list[dict]:
        return list(params["hl7"]) or landing_batches("hl7")

    @task(max_active_tis_per_dag=1)
    def ingest_hl7(batch: dict) -> dict:
        return run_job("ingest_hl7", paths=list(batch["paths"]), center_id=batch["center_id"])

    @task
    def plan_fhir(params=None) -> list[dict]:
        return list(params["fhir"]) or landing_batches("fhir")

    @task(max_active_tis_per_dag=1)
    def ingest_fhir(batch: dict) -> dict:
        return run_job("ingest_fhir", paths=list(batch["paths"]), center_id=batch["center_id"])

    @task(trigger_rule="none_failed")
    def check_bronze() -> dict:
        return run_quality(["bronze.hl7_messages", "bronze.fhir_resources"])

    [ingest_hl7.expand(batch=plan_hl7()), ingest_fhir.expand(batch=plan_fhir())] >> check_bronze()


omicslake_clinical()
