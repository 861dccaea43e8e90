"""The lake on an S3 API: a real moto server on loopback, written by Sail, read by delta-rs."""

import json
import os
import subprocess
import sys

import pytest

from omicslake.demo_data import make_demo_inputs
from omicslake.net import free_port


@pytest.fixture(scope="module")
def s3_env(tmp_path_factory):
    if os.environ.get("OMICSLAKE_TEST_ENGINE", "local") != "local":
        pytest.skip("Delta I/O is tested on the local engine")
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    creds = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
             "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ALLOW_HTTP": "true"}
    boto3.client("s3", endpoint_url=creds["AWS_ENDPOINT_URL"], region_name="us-east-1",
                 aws_access_key_id="testing", aws_secret_access_key="testing").create_bucket(Bucket="omics")
    state = tmp_path_factory.mktemp("s3state")
    env = {**os.environ, **creds, "OMICSLAKE_HOME": "s3://omics/network", "OMICSLAKE_STATE_DIR": str(state)}
    yield env, state
    server.stop()


def run(env, *args):
    p = subprocess.run([sys.executable, "-m", "omicslake.cli", *args], env=env, capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, f"omicslake {' '.join(args)}:\n{p.stdout}\n{p.stderr[-3000:]}"
    return p.stdout


def test_ingest_to_s3_is_idempotent_and_readable_by_delta_rs(s3_env, monkeypatch):
    env, state = s3_env
    batch = make_demo_inputs(state / "inputs", samples_per_center=4, sites=60)[1]
    args = ("ingest", "vcf", str(batch.vcf), "--center", batch.center_id, "--manifest", str(batch.manifest))
    run(env, *args)
    rows = {d["name"]: d for d in map(json.loads, run(env, "tables", "--json").splitlines())}
    assert rows["silver.samples"]["rows"] == 4
    assert rows["silver.variants"]["location"] == "s3://omics/network/lake/silver/variants"
    first = {t: rows[t]["rows"] for t in ("bronze.vcf_variants", "silver.variants", "silver.genotypes")}
    assert first["bronze.vcf_variants"] == 60
    run(env, *args)
    again = {d["name"]: d["rows"] for d in map(json.loads, run(env, "tables", "--json").splitlines())}
    assert {t: again[t] for t in first} == first

    from deltalake import DeltaTable

    from omicslake.settings import load_settings

    for k, v in env.items():
        if k.startswith("AWS_") or k.startswith("OMICSLAKE_"):
            monkeypatch.setenv(k, v)
    s = load_settings()
    dt = DeltaTable(f"{s.lake_root}/silver/genotypes", storage_options=s.storage_options())
    assert dt.to_pyarrow_table().num_rows == first["silver.genotypes"]
