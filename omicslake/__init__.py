"""omicslake: a precision-medicine omics data lake on Delta Lake.

``omicslake.connect("sc://host:port")`` gives a bioinformatician a Spark session on a running
``omicslake serve`` (or any Spark Connect endpoint) with every ``layer.table`` name registered.
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


__all__ = ["connect", "__version__"]
