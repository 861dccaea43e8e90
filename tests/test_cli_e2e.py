"""The CLI as a user runs it: demo twice, tables, sql --json, serve + connect from another process."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from omicslake.net import free_port

OMICSLAKE = [sys.executable, "-m", "omicslake.cli"]
DATA_TABLES = [
    "bronze.vcf_variants", "quarantine.vcf", "silver.samples", "silver.variants", "silver.genotypes",
    "silver.alignment_qc", "bronze.hl7_messages", "bronze.fhir_resources", "silver.conditions",
    "silver.observations", "silver.medications", "silver.encounters", "bronze.dicom_instances",
    "silver.imaging_studies", "silver.persons", "silver.variant_annotations", "silver.pgx_diplotypes",
    "gold.cohort", "gold.cohort_definition", "gold.cohort_versions", "ops.centers",
]
DOCS = Path(__file__).resolve().parent.parent / "docs" / "querying.md"


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


def _json(proc: subprocess.CompletedProcess) -> list[dict]:
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def test_demo_runs_every_feed_and_reruns_without_new_rows(demo_home):
    home, first = demo_home
    assert "demo finished" in first.stdout
    for dag in ("genomics", "clinical", "imaging", "curation", "cohorts"):
        assert f"running DAG omicslake_{dag}" in first.stderr
    assert "over MLLP" in first.stderr and "C-STORE" in first.stderr
    for engine_line in ("sail_common::actor", "Persist operation", "sail_spark_connect"):
        assert engine_line not in first.stderr  # the engine's own lines go to the log file
    assert "sail_" in (home / "state" / "logs" / "engine.log").read_text()
    rows = table_rows(home)
    assert {t: n for t, n in rows.items() if t in DATA_TABLES and n == 0} == {}
    assert rows["quarantine.vcf"] == 1
    sizes = {c["name"]: c["members"] for c in _json(cli(home, "cohort", "list", "--json"))}
    assert set(sizes) == {"lung_cancer_egfr", "hboc_brca", "t2d_hba1c", "stroke_imaging"}
    assert all(n > 0 for n in sizes.values()), sizes
    for name, n in sizes.items():  # the demo prints each cohort's size and the report it wrote
        line = next(x for x in first.stdout.splitlines() if x.strip().startswith(name))
        assert f"{n} members" in line and Path(line.split()[-1]).read_text().startswith("<!DOCTYPE html>")
    alerts = next(x for x in first.stdout.splitlines() if "medication alerts:" in x)
    assert int(alerts.rsplit(":", 1)[1]) > 0 and "ALERT clopidogrel for a CYP2C19" in first.stdout
    cli(home, "demo")
    again = table_rows(home)
    assert {t: again[t] for t in DATA_TABLES} == {t: rows[t] for t in DATA_TABLES}
    assert again["ops.ingest_runs"] > rows["ops.ingest_runs"]  # one row per run, by design
    skipped = cli(home, "sql", "--json",
                  "SELECT count(*) AS n FROM ops.ingest_runs WHERE job = 'ingest_vcf' AND status = 'skipped'")
    assert json.loads(skipped.stdout)["n"] == 1


def test_centers_see_their_subtree(demo_home):
    home, _ = demo_home
    everyone = {r["center_id"] for r in _json(cli(home, "sql", "--json",
                                                  "SELECT DISTINCT center_id FROM silver.conditions"))}
    assert {"CNT-S1A", "CTY-S1", "PRV-N"} <= everyone
    county = cli(home, "sql", "--json", "--as", "CNT-S1A", "SELECT DISTINCT center_id FROM silver.conditions")
    assert _json(county) == [{"center_id": "CNT-S1A"}]
    south = cli(home, "sql", "--json", "--as", "PRV-S",
                "SELECT DISTINCT center_id FROM silver.conditions ORDER BY center_id")
    assert [r["center_id"] for r in _json(south)] == ["CNT-S1A", "CTY-S1"]  # not PRV-N, another province
    refused = cli(home, "sql", "--as", "PRV-S", "SELECT * FROM bronze.vcf_headers", check=False)
    assert refused.returncode == 2 and "admins only" in refused.stderr
    events = _json(cli(home, "audit", "--json", "--center", "PRV-S", "--action", "query"))
    outcomes = [(e["principal"], e["outcome"], e["target"]) for e in events]
    assert outcomes[:2] == [("PRV-S:analyst", "refused", "sql"), ("PRV-S:analyst", "ok", "silver.conditions")]
    hist = cli(home, "history", "silver.variants", "--json").stdout.splitlines()
    assert json.loads(hist[-1])["operation"] == "CREATE TABLE"


def test_every_query_in_the_docs_runs_on_the_demo_lake(demo_home):
    home, _ = demo_home
    blocks = re.findall(r"```sql\n(.*?)```", DOCS.read_text(), re.S)
    assert len(blocks) >= 8
    version = None
    for sql in blocks:
        if "{version}" in sql:
            assert version is not None, "a {version} query needs a version query before it"
            sql = sql.replace("{version}", str(version))
        got = _json(cli(home, "sql", "--json", sql))
        assert got, f"no rows from docs/querying.md query:\n{sql}"
        version = got[0].get("version", version)


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
    shown = cli(home, "sql", "SELECT 'GRCh38:chr13:1:A:C' AS v, '[b]x[/b]' AS m").stdout
    assert "GRCh38:chr13:1:A:C" in shown and "[b]x[/b]" in shown  # values are printed, not rendered


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
        assert out.stdout.strip().splitlines()[-1] == str(rows["silver.samples"]), out.stderr[-2000:]
        notebook = re.search(r"```python\n(.*?)```", DOCS.read_text(), re.S).group(1)
        notebook = notebook.replace("sc://localhost:15002", f"sc://127.0.0.1:{port}")
        out = subprocess.run([sys.executable, "-c", notebook], env=env, capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0 and "age_at_index" in out.stdout, out.stderr[-3000:]
    finally:
        server.terminate()
        server.wait(timeout=30)
    time.sleep(0.1)
