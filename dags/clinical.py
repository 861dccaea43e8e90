"""Clinical feeds: HL7 v2 (MLLP landing zone or files) and FHIR R4 (Bundles, NDJSON) -> bronze
-> the silver clinical model.

Thin wiring only: the steps are ``omicslake.pipelines``' (``build_clinical`` maps the ingest
runs that landed rows, as ``omicslake ingest hl7|fhir`` does), the tables each check validates
are the contracts' quality gates (``schemas``), the work lives in ``jobs/`` and ``quality/``.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task

from connectors.clinical_records import TABLES as CLINICAL_TABLES
from omicslake.airflow_support import DEFAULT_ARGS, lake_assets, landing_batches, run_job, run_quality
from omicslake.pipelines import landed_run_ids
from schemas import gate_tables


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
        "scan_landing": Param(
            True, type="boolean",
            description="an empty hl7/fhir list reads the landing zone; false: only the files given",
        ),
    },
)
def omicslake_clinical():
    @task
    def plan_hl7(params=None) -> list[dict]:
        return list(params["hl7"]) or (landing_batches("hl7") if params["scan_landing"] else [])

    @task(max_active_tis_per_dag=1, outlets=lake_assets("bronze.hl7_messages", "quarantine.hl7"))
    def ingest_hl7(batch: dict) -> dict:
        return run_job("ingest_hl7", paths=list(batch["paths"]), center_id=batch["center_id"])

    @task
    def plan_fhir(params=None) -> list[dict]:
        return list(params["fhir"]) or (landing_batches("fhir") if params["scan_landing"] else [])

    @task(max_active_tis_per_dag=1, outlets=lake_assets("bronze.fhir_resources", "quarantine.fhir"))
    def ingest_fhir(batch: dict) -> dict:
        return run_job("ingest_fhir", paths=list(batch["paths"]), center_id=batch["center_id"])

    @task(trigger_rule="none_failed")
    def check_bronze() -> dict:
        return run_quality(gate_tables("clinical.bronze"))

    @task(trigger_rule="none_failed", inlets=lake_assets("bronze.hl7_messages", "bronze.fhir_resources"),
          outlets=lake_assets(*(f"silver.{t}" for t in CLINICAL_TABLES), "quarantine.hl7", "quarantine.fhir"))
    def build_silver(hl7_runs: list[dict], fhir_runs: list[dict]) -> dict:
        run_ids = landed_run_ids([*(hl7_runs or []), *(fhir_runs or [])])
        if not run_ids:
            return {"run_ids": [], "rows_written": 0}
        return run_job("build_clinical", run_ids=run_ids)

    @task(trigger_rule="none_failed")
    def check_silver() -> dict:
        return run_quality(gate_tables("clinical.silver"))

    hl7_runs = ingest_hl7.expand(batch=plan_hl7())
    fhir_runs = ingest_fhir.expand(batch=plan_fhir())
    [hl7_runs, fhir_runs] >> check_bronze() >> build_silver(hl7_runs, fhir_runs) >> check_silver()


omicslake_clinical()
