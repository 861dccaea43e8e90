"""A lake of its own on the shared embedded engine, for fixtures of any scope."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import pytest

TEST_ENGINE = os.environ.get("OMICSLAKE_TEST_ENGINE", "local")


@contextmanager
def own_lake(home: Path):
    """``(spark, settings)`` for a lake under ``home``: its own OMICSLAKE_HOME (set while open),
    its own Spark Connect session and catalog on the shared Sail server. Skipped off the local
    engine, where Delta I/O is not tested."""
    from pyspark.sql import SparkSession

    from omicslake.catalog import ensure_tables
    from omicslake.session import start_local_server
    from omicslake.settings import load_settings

    if TEST_ENGINE != "local":
        pytest.skip("Delta I/O is tested on the local engine")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMICSLAKE_HOME", str(home))
        settings = load_settings()
        _, (_, port) = start_local_server()
        spark = SparkSession.builder.remote(f"sc://127.0.0.1:{port}").create()  # own catalog
        spark.conf.set("spark.sql.session.timeZone", "UTC")
        ensure_tables(spark, settings)
        try:
            yield spark, settings
        finally:
            spark.stop()
