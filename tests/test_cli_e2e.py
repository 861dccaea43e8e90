"""The CLI as a user runs it: demo twice, tables, sql --json, serve + connect from another process."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from omicslake.net import free_port

OMICSLAKE = [sys.executable, "-m", "omicslake.cli"]
DATA_TABLES = ["bronze.vcf_variants", "quarantine.vcf", "silver.samples", "silver.variants",
               "silver.genotypes", "silver.alignment_qc", "gold.cohort", "gold.cohort_definitions",
               "ops.centers"]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    if os.environ.get("OMICSLAKE_TEST_ENGINE", "local") != "local":
        pytest.skip("CLI end to end runs on the local engine")
    return tmp_path_factory.mktemp("cli") / "home"


@pytest.fixture(scope="module")
def demo_home(home):
    """The lake after one `omicslake demo`, shared by the tests that read it."""
    first = cli(home, "demo")
    return home, first


def cli(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMICSLAKE_HOME": str(home)}
    proc = subprocess.run([*OMICSLAKE, *args], env=env, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"omicslake {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr[-4000:]}")
    return proc


def table_rows(home: Path) -> dict[str, int]:
    out = cli(home, "tables", "--json").stdout
    return {d["name"]: d["rows"] for d in map(json.loads, out.splitlines())}


def test_demo_twice_then_tables_and_sql(demo_home):
    home, first = demo_home
    assert "demo finished" in first.stdout
    assert "running DAG omicslake_genomics" in first.stderr
    rows = table_rows(home)
    for layer in ("bronze.", "silver.", "ops.", "gold."):
        assert any(n > 0 for t, n in rows.items() if t.startswith(layer)), layer
    assert rows["quarantine.vcf"] == 1
    cli(home, "demo")
    again = table_rows(home)
    assert {t: again[t] for t in DATA_TABLES} == {t: rows[t] for t in DATA_TABLES}
    assert again["ops.ingest_runs"] > rows["ops.ingest_runs"]  # one row per run, by design
    out = cli(home, "sql", "--json",
              "SELECT center_id, count(*) AS n FROM silver.samples GROUP BY center_id ORDER BY center_id")
    got = [json.loads(line) for line in out.stdout.splitlines()]
    assert got == [{"center_id": c, "n": 8} for c in sorted(["PRV-N", "CTY-S1", "CNT-S1A", "CNT-N1A"])]
    skipped = cli(home, "sql", "--json",
                  "SELECT count(*) AS n FROM ops.ingest_runs WHERE job = 'ingest_vcf' AND status = 'skipped'")
    assert json.loads(skipped.stdout)["n"] == 4
    county = cli(home, "sql", "--json", "--as", "CNT-S1A",
                 "SELECT center_id, count(*) AS n FROM silver.samples GROUP BY center_id")
    assert [json.loads(line) for line in county.stdout.splitlines()] == [{"center_id": "CNT-S1A", "n": 8}]
    province = cli(home, "sql", "--json", "--as", "PRV-S",
                   "SELECT DISTINCT center_id FROM silver.genotypes ORDER BY center_id")
    assert [json.loads(x)["center_id"] for x in province.stdout.splitlines()] == ["CNT-S1A", "CTY-S1"]
    refused = cli(home, "sql", "--as", "PRV-S", "SELECT * FROM bronze.vcf_headers", check=False)
    assert refused.returncode == 2 and "admins only" in refused.stderr
    events = cli(home, "audit", "--json", "--center", "PRV-S", "--action", "query").stdout.splitlines()
    outcomes = [(e["principal"], e["outcome"], e["target"]) for e in map(json.loads, events)]
    assert outcomes[:2] == [("PRV-S:analyst", "refused", "sql"), ("PRV-S:analyst", "ok", "silver.genotypes")]
    hist = cli(home, "history", "silver.variants", "--json").stdout.splitlines()
    assert json.loads(hist[-1])["operation"] == "CREATE TABLE"


def test_errors_are_clear(home):
    bad = cli(home, "sql", "SELECT * FROM silver.nope", check=False)
    assert bad.returncode == 2 and "error: unknown table silver.nope" in bad.stderr
    bad = cli(home, "sql", "SELECT nope FROM silver.samples", check=False)
    assert bad.returncode == 2 and "error: query failed" in bad.stderr
    bad = cli(home, "history", "silver.nope", check=False)
    assert bad.returncode == 2 and "unknown table" in bad.stderr
    env = {**os.environ, "OMICSLAKE_ENGINE": "nope", "OMICSLAKE_HOME": str(home)}
    p = subprocess.run([*OMICSLAKE, "tables"], env=env, capture_output=True, text=True)
    assert p.returncode == 2 and "OMICSLAKE_ENGINE='nope'" in p.stderr
    assert "Settings (environment variables)" in cli(home, "--help").stdout


def test_serve_and_connect_from_another_process(demo_home):
    home, _ = demo_home
    port = free_port()
    env = {**os.environ, "OMICSLAKE_HOME": str(home)}
    server = subprocess.Popen([*OMICSLAKE, "serve", "--port", str(port)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        assert f"sc://127.0.0.1:{port}" in line, server.stderr.read() if server.poll() else line
        client = (
            "import json, omicslake\n"
            f"s = omicslake.connect('sc://127.0.0.1:{port}')\n"
            "n = s.sql('SELECT count(*) AS n FROM silver.variants').collect()[0].n\n"
            "c = s.sql('SELECT count(*) AS n FROM gold.cohort').collect()[0].n\n"
            "print(json.dumps({'variants': n, 'cohort': c}))\n"
        )
        out = subprocess.run([sys.executable, "-c", client], env=env, capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stderr[-3000:]
        got = json.loads(out.stdout.strip().splitlines()[-1])
        rows = table_rows(home)
        assert got == {"variants": rows["silver.variants"], "cohort": rows["gold.cohort"]}
        assert got["variants"] > 0
        plain = (
            "from pyspark.sql import SparkSession\n"
            f"s = SparkSession.builder.remote('sc://127.0.0.1:{port}').getOrCreate()\n"
            f"print(s.sql(\"SELECT count(*) FROM delta.`{home}/lake/silver/samples`\").collect()[0][0])\n"
        )
        out = subprocess.run([sys.executable, "-c", plain], env=env, capture_output=True, text=True,
                             timeout=120)
        assert out.stdout.strip().splitlines()[-1] == "32", out.stderr[-2000:]
    finally:
        server.terminate()
        server.wait(timeout=30)
    time.sleep(0.1)
