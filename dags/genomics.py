"""Genomics pipeline: centers -> VCF and BAM/CRAM ingest (mapped per batch) -> silver -> pharmacogenes.

Thin wiring only: the steps are ``omicslake.pipelines``' (a VCF ingest is followed by
``clean_variants``, as ``omicslake ingest vcf`` does), the tables each check validates are the
contracts' quality gates (``schemas``), the work lives in ``jobs/`` and ``quality/``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

from omicslake.airflow_support import DEFAULT_ARGS, lake_assets, run_job, run_quality
from schemas import gate_tables

# lineage: what each job task reads from and writes to the lake (README "Lineage")
PGX_READS = ["silver.genotypes", "silver.reference_blocks", "silver.samples", "silver.medications"]
PGX_WRITES = ["silver.pgx_diplotypes", "gold.pgx_recommendations", "gold.medication_alerts",
              "silver.pgx_positions", "silver.pgx_alleles", "silver.pgx_guidance", "ops.reference_sources"]


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
            description="[{center_id, vcf, manifest}] VCF/BCF/gVCF batches uploaded by centers",
        ),
        "alignments": Param(
            [], type="array",
            description="[{center_id, paths, manifest, targets?, reference?}] indexed BAM/CRAM batches",
        ),
        "reference": Param(
            None, type=["null", "string"],
            description="reference FASTA to left-align indels in silver (bcftools norm -f)",
        ),
    },
)
def omicslake_genomics():
    @task(outlets=lake_assets("ops.centers"))
    def register_centers() -> dict:
        return run_job("register_centers")

    @task
    def plan_batches(params=None) -> list[dict]:
        return list(params["batches"])

    @task(max_active_tis_per_dag=1, outlets=lake_assets("bronze.vcf_headers", "bronze.vcf_variants",
                                                       "quarantine.vcf", "silver.samples"))
    def ingest_vcf(batch: dict) -> dict:
        return run_job("ingest_vcf", paths=[batch["vcf"]], center_id=batch["center_id"],
                       manifest=batch.get("manifest"))

    @task
    def plan_alignments(params=None) -> list[dict]:
        return list(params["alignments"])

    @task(max_active_tis_per_dag=1,
          outlets=lake_assets("silver.alignment_qc", "quarantine.bam", "silver.samples"))
    def ingest_bam(batch: dict) -> dict:
        return run_job("ingest_bam", paths=list(batch["paths"]), center_id=batch["center_id"],
                       manifest=batch["manifest"], targets=batch.get("targets"),
                       reference=batch.get("reference"))

    @task(inlets=lake_assets("bronze.vcf_variants", "bronze.vcf_headers", "silver.samples"),
          outlets=lake_assets("silver.variants", "silver.genotypes", "silver.structural_variants",
                              "silver.reference_blocks"))
    def clean_variants(params=None) -> dict:
        return run_job("clean_variants", reference=params.get("reference"))

    @task(trigger_rule="none_failed")
    def check_silver() -> dict:
        return run_quality(gate_tables("genomics.silver"))

    @task(inlets=lake_assets(*PGX_READS), outlets=lake_assets(*PGX_WRITES))
    def call_pgx() -> dict:
        return run_job("call_pgx")

    @task
    def check_runs() -> dict:
        return run_quality(gate_tables("genomics.runs"))

    centers = register_centers()
    ingested = ingest_vcf.expand(batch=plan_batches())
    aligned = ingest_bam.expand(batch=plan_alignments())
    centers >> [ingested, aligned]
    silver = check_silver()
    ingested >> clean_variants() >> silver
    aligned >> silver
    silver >> call_pgx() >> check_runs()


omicslake_genomics()
