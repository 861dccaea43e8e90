"""omicslake: a precision-medicine omics data lake on Delta Lake.

``omicslake.connect("sc://host:port")`` gives a bioinformatician a Spark session on a running
``omicslake serve`` (or any Spark Connect endpoint) with every ``layer.table`` name registered.

The package holds three kinds of module (import-linter contracts in pyproject.toml):

- the core, listed in ``__all__``: settings, the Spark session, the catalog, writes, staging,
  runs, the ingest skeleton, quarantine, pseudonyms and identifiers, centers and access, audit,
  credentials, the SQL gateway. Every other layer may use it; it imports only ``schemas``.
- domain modules beside the connectors (cohort definitions, events and reads, person linkage,
  PGx and knowledge-graph reads, demo data): jobs and entry points use them.
- the entry points: the CLI (``cli``), the pipelines (``pipelines``), the Airflow support
  (``airflow_support``, ``airflow_local``) and the demo; only they import jobs.
"""

from __future__ import annotations

__version__ = "0.1.0"


def connect(url: str, home: str | None = None):
    """Connect to a Spark Connect endpoint and register every lake table in that session.

    Table locations come from ``home`` or ``OMICSLAKE_HOME``: the same storage root that the
    server's pipelines write to.
    """
    import os

    from pyspark.sql import SparkSession

    from omicslake.catalog import ensure_tables
    from omicslake.settings import load_settings

    env = dict(os.environ)
    if home:
        env["OMICSLAKE_HOME"] = home
    env["OMICSLAKE_ENGINE"] = "remote"
    env["SPARK_REMOTE"] = url
    settings = load_settings(env)
    spark = SparkSession.builder.remote(url).getOrCreate()
    ensure_tables(spark, settings)
    return spark


# the core: what every other layer may use
CORE = (
    "audit", "catalog", "checksums", "console", "credentials", "delta_ops", "errors", "identifiers",
    "ingest", "net", "persons", "pseudonym", "quarantine", "runs", "session", "settings",
    "sql_gateway", "staging", "tiers", "writes",
)

__all__ = ["connect", "__version__", *CORE]
