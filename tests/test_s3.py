"""The lake on an S3 API: a real moto server on loopback, written by Sail, read by delta-rs."""

import json

import pytest
from lakes import run_cli, s3_lake

from omicslake.demo_data import make_demo_inputs


@pytest.fixture(scope="module")
def s3_env(tmp_path_factory):
    state = tmp_path_factory.mktemp("s3state")
    with s3_lake(state, "omics", "network") as (env, _):
        yield env, state


def test_ingest_to_s3_is_idempotent_and_readable_by_delta_rs(s3_env, monkeypatch):
    env, state = s3_env
    batch = make_demo_inputs(state / "inputs", samples_per_center=4, sites=60)[1]
    args = ("ingest", "vcf", str(batch.vcf), "--center", batch.center_id, "--manifest", str(batch.manifest))
    run_cli(env, *args)
    rows = {d["name"]: d for d in map(json.loads, run_cli(env, "tables", "--json").splitlines())}
    assert rows["silver.samples"]["rows"] == 4
    assert rows["silver.variants"]["location"] == "s3://omics/network/lake/silver/variants"
    first = {t: rows[t]["rows"] for t in ("bronze.vcf_variants", "silver.variants", "silver.genotypes")}
    assert first["bronze.vcf_variants"] == 60
    run_cli(env, *args)
    again = {d["name"]: d["rows"] for d in map(json.loads, run_cli(env, "tables", "--json").splitlines())}
    assert {t: again[t] for t in first} == first

    from deltalake import DeltaTable

    from omicslake.settings import load_settings

    for k, v in env.items():
        if k.startswith("AWS_") or k.startswith("OMICSLAKE_"):
            monkeypatch.setenv(k, v)
    s = load_settings()
    dt = DeltaTable(f"{s.lake_root}/silver/genotypes", storage_options=s.storage_options())
    assert dt.to_pyarrow_table().num_rows == first["silver.genotypes"]
