"""Spark jobs: one module per pipeline step. A job is ``run(spark, settings, **params) -> JobResult``
and also runs under ``spark-submit`` / ``python -m jobs.X``.

Jobs use the core (``omicslake``), the connectors and the table contracts (``schemas``); a job
never imports another job, and only the entry points (the CLI, ``omicslake.pipelines``, the
Airflow support and the demo) import jobs (import-linter contracts in pyproject.toml).
"""

__all__ = [
    "annotate_variants",
    "build_clinical",
    "build_cohorts",
    "build_kg",
    "call_pgx",
    "clean_variants",
    "ingest_bam",
    "ingest_dicom",
    "ingest_fhir",
    "ingest_hl7",
    "ingest_vcf",
    "link_persons",
    "maintain_tables",
    "register_centers",
]
