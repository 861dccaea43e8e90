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


@contextmanager
def s3_lake(state: Path, bucket: str, prefix: str):
    """``(env, client)``: a real S3 API (moto) on loopback with an empty ``bucket``, and the
    environment that points a CLI subprocess's lake at ``s3://bucket/prefix`` (state stays in
    the local ``state`` folder). Skipped off the local engine."""
    import boto3
    from moto.server import ThreadedMotoServer

    from omicslake.net import free_port

    if TEST_ENGINE != "local":
        pytest.skip("Delta I/O is tested on the local engine")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    creds = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
             "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ALLOW_HTTP": "true"}
    client = boto3.client("s3", endpoint_url=creds["AWS_ENDPOINT_URL"], region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_bucket(Bucket=bucket)
    env = {**os.environ, **creds, "OMICSLAKE_HOME": f"s3://{bucket}/{prefix}",
           "OMICSLAKE_STATE_DIR": str(state)}
    try:
        yield env, client
    finally:
        server.stop()


def run_cli(env: dict, *args: str) -> str:
    """``omicslake ARGS`` in a subprocess with ``env``; its stdout, or a failure with stderr."""
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "omicslake.cli", *args], env=env, capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, f"omicslake {' '.join(args)}:\n{p.stdout}\n{p.stderr[-3000:]}"
    return p.stdout
