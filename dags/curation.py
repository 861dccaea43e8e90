"""Curation: link every source identity to one person, annotate variants, re-call the
pharmacogenes (their person ids and the medications they are checked against follow linkage),
then rebuild the lake's part of the knowledge graph.

Thin wiring only: the tables each check validates are the contracts' quality gates
(``schemas``); the work lives in ``jobs/link_persons.py``, ``jobs/annotate_variants.py``,
``jobs/call_pgx.py`` and ``jobs/build_kg.py``.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task

from connectors.clinical_records import TABLES as CLINICAL_TABLES
from omicslake.airflow_support import DEFAULT_ARGS, lake_assets, run_job, run_quality
from schemas import gate_tables

# lineage: what each job task reads from and writes to the lake (README "Lineage"); linkage moves
# person_id in every person-keyed silver table
LINKED = ["silver.persons", "silver.person_links", "silver.person_link_review", "silver.samples",
          "silver.imaging_instances", *(f"silver.{t}" for t in CLINICAL_TABLES)]
PGX_READS = ["silver.genotypes", "silver.reference_blocks", "silver.samples", "silver.medications"]
PGX_WRITES = ["silver.pgx_diplotypes", "gold.pgx_recommendations", "gold.medication_alerts",
              "silver.pgx_positions", "silver.pgx_alleles", "silver.pgx_guidance", "ops.reference_sources"]


@dag(
    dag_id="omicslake_curation",
    schedule=timedelta(hours=6),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["omicslake", "curation"],
    params={
        "gtf": Param(None, type=["null", "string"], description="GTF/GFF3; null: latest registered release"),
        "clinvar": Param(None, type=["null", "string"], description="ClinVar VCF; null: latest registered"),
        "gnomad": Param(None, type=["null", "string"], description="gnomAD sites VCF/folder; null: latest"),
        "reference": Param(None, type=["null", "string"], description="FASTA to left-align source alleles"),
    },
)
def omicslake_curation():
    @task(outlets=lake_assets(*LINKED))
    def link_persons() -> dict:
        return run_job("link_persons")

    @task
    def check_persons() -> dict:
        return run_quality(gate_tables("curation.persons"))

    @task(inlets=lake_assets("silver.variants", "silver.genotypes"),
          outlets=lake_assets("silver.variant_annotations", "silver.variant_stats", "ops.reference_sources"))
    def annotate_variants(params=None) -> dict:
        return run_job("annotate_variants", gtf=params["gtf"], clinvar=params["clinvar"],
                       gnomad=params["gnomad"], reference=params["reference"])

    @task
    def check_annotations() -> dict:
        return run_quality(gate_tables("curation.annotations"))

    @task(inlets=lake_assets(*PGX_READS), outlets=lake_assets(*PGX_WRITES))
    def call_pgx() -> dict:
        return run_job("call_pgx")

    @task(outlets=lake_assets("gold.kg_nodes", "gold.kg_edges"))
    def build_kg() -> dict:
        return run_job("build_kg")

    @task
    def check_kg() -> dict:
        return run_quality(gate_tables("curation.kg"))

    link_persons() >> check_persons() >> annotate_variants() >> check_annotations() >> call_pgx() \
        >> build_kg() >> check_kg()


omicslake_curation()
