"""Concurrent writers on one Delta table, on the embedded Sail engine (and delta-rs maintenance).

What Sail 0.7.2 does on a commit race (see omicslake/writes.py): a blind append is re-committed
on top of the winner by Sail itself; a MERGE (any write that read the table) fails with
``Failed to commit transaction: 0`` and ``retry_on_conflict`` runs it again on the new version.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs import maintain_tables
from omicslake.catalog import table_uri
from omicslake.delta_ops import DeltaRsAdapter
from omicslake.writes import append, merge_new
from schemas import get_table

ROOT = Path(__file__).resolve().parent.parent

APPENDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from omicslake.session import get_spark
    from omicslake.settings import load_settings
    from omicslake.writes import append
    sys.path.insert(0, "tests")
    from test_concurrency import run_rows

    me, rounds, sync = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    settings = load_settings()
    spark = get_spark(settings, register=False)  # its own engine, its own session
    batches = [run_rows(spark, me, r) for r in range(rounds)]
    (sync / "ready").touch()
    while not (sync / "go").exists():
        time.sleep(0.005)
    for df in batches:
        append(df, settings, "ops.ingest_runs")
""")
ROWS, ROUNDS = 7, 5


def run_rows(spark: SparkSession, writer: str, round_: int):
    """A few ops.ingest_runs rows, as a job's run bookkeeping appends them."""
    from datetime import datetime

    rows = [{"run_id": f"{writer}-{round_}-{i}", "job": writer, "rows_read": 0, "rows_accepted": 0,
             "rows_quarantined": 0, "rows_written": 0, "status": "succeeded",
             "started_at": datetime(2026, 1, 1), "finished_at": datetime(2026, 1, 1), "duration_s": 0.0}
            for i in range(ROWS)]
    return spark.createDataFrame(rows, get_table("ops.ingest_runs").spark_schema())


def test_two_jobs_append_at_the_same_moment_and_both_land(fresh_lake, tmp_path):
    """One job in another process with its own engine, one here: two independent Sail engines
    commit to one log at the same moment, as two Airflow tasks would."""
    spark, settings = fresh_lake
    uri = table_uri(settings, "ops.ingest_runs")
    before_version = DeltaRsAdapter(settings).version("ops.ingest_runs")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RUST_LOG": "warn"}
    child = subprocess.Popen([sys.executable, "-c", APPENDER, "job_b", str(ROUNDS), str(tmp_path)],
                             cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    mine = [run_rows(spark, "job_a", r) for r in range(ROUNDS)]
    deadline = time.monotonic() + 120
    while not (tmp_path / "ready").exists():
        assert time.monotonic() < deadline and child.poll() is None, child.communicate()
        time.sleep(0.02)
    (tmp_path / "go").touch()  # both engines commit from here on
    for df in mine:
        append(df, settings, "ops.ingest_runs")
    _, err = child.communicate(timeout=120)
    assert child.returncode == 0, err[-3000:]
    runs = spark.read.format("delta").load(uri)
    assert runs.count() == runs.select("run_id").distinct().count() == 2 * ROWS * ROUNDS
    assert runs.groupBy("job").count().collect() and {
        r.job: r["count"] for r in runs.groupBy("job").count().collect()} == {
        "job_a": ROWS * ROUNDS, "job_b": ROWS * ROUNDS}
    history = DeltaRsAdapter(settings).history("ops.ingest_runs")
    assert sum(h["operation"] == "WRITE" and h["version"] > before_version for h in history) == 2 * ROUNDS
    print(f"\nthe other engine re-committed {err.count('but the underlying table has been updated')} "
          "append(s) after losing a race")


def _slow(seconds: float):
    """A source column that takes time, so both MERGEs read the same snapshot before either commits."""
    def pause(value):  # no type hints: pyspark would warn that it cannot infer the UDF type
        time.sleep(seconds)
        return value
    return F.udf(pause, "string")


def _centers(spark: SparkSession, rows: list[tuple], delay: float = 0.0):
    df = spark.createDataFrame(rows, get_table("ops.centers").spark_schema())
    return df.withColumn("name", _slow(delay)(F.col("name"))) if delay else df


def _session() -> SparkSession:
    """Another Spark Connect session (its own catalog) on the shared embedded engine."""
    from omicslake.session import start_local_server

    _, (_, port) = start_local_server()
    return SparkSession.builder.remote(f"sc://127.0.0.1:{port}").create()


def test_two_conflicting_merges_end_as_one_commit_and_one_clean_retry(fresh_lake, caplog):
    spark, settings = fresh_lake
    base = [(f"C{i}", "original", "county", "PRV-N", None) for i in range(4)]
    merge_new(spark, settings, _centers(spark, base), "ops.centers")
    start = DeltaRsAdapter(settings).version("ops.centers")
    sessions = {"writer-A": spark, "writer-B": _session()}
    barrier, errors = threading.Barrier(2), []

    def write(name: str) -> None:
        s = sessions[name]
        rows = [(f"C{i}", f"renamed by {name}", "county", "PRV-N", None) for i in range(4)]
        source = _centers(s, rows + [(f"NEW-{name}", name, "county", "PRV-N", None)], delay=0.3)
        barrier.wait()
        try:
            merge_new(s, settings, source, "ops.centers", update=True)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    caplog.set_level(logging.WARNING, logger="omicslake.writes")
    threads = [threading.Thread(target=write, args=(n,), name=n) for n in sessions]
    [t.start() for t in threads]
    [t.join() for t in threads]
    sessions["writer-B"].stop()
    assert not errors, errors
    retries = [r for r in caplog.records if "lost a Delta commit race" in r.getMessage()]
    assert len(retries) == 1, [r.getMessage() for r in retries]
    assert "Failed to commit transaction: 0" in retries[0].getMessage()
    loser = retries[0].threadName
    history = DeltaRsAdapter(settings).history("ops.centers")
    assert [h["operation"] for h in history if h["version"] > start] == ["MERGE", "MERGE"]
    rows = {r.center_id: r.name for r in spark.read.format("delta").load(
        table_uri(settings, "ops.centers")).collect()}
    # Nothing lost (both new centers), nothing doubled (one row per key), and the retry ran on
    # the winner's rows: its update is the last one.
    assert sorted(rows) == ["C0", "C1", "C2", "C3", "NEW-writer-A", "NEW-writer-B"]
    assert {rows[f"C{i}"] for i in range(4)} == {f"renamed by {loser}"}


def test_a_merge_that_races_a_maintenance_commit_is_retried(fresh_lake, caplog):
    spark, settings = fresh_lake
    for i in range(3):  # three small files for the compaction to rewrite
        merge_new(spark, settings, _centers(spark, [(f"C{i}", "original", "county", "PRV-N", None)]),
                  "ops.centers")
    caplog.set_level(logging.WARNING, logger="omicslake.writes")
    other = _session()
    source = _centers(other, [("C1", "renamed", "county", "PRV-N", None),
                              ("C9", "new", "county", "PRV-N", None)], delay=1.0)
    merge = threading.Thread(target=merge_new, args=(other, settings, source, "ops.centers"),
                             kwargs={"update": True})
    merge.start()
    time.sleep(0.4)  # the MERGE has read its snapshot; delta-rs now compacts under it
    compacted = maintain_tables.run(spark, settings, tables=["ops.centers"], steps=["optimize"])
    merge.join()
    other.stop()
    assert compacted.details["ops.centers"]["optimize_files_removed"] == 3
    assert len([r for r in caplog.records if "lost a Delta commit race" in r.getMessage()]) == 1
    ops = [h["operation"] for h in DeltaRsAdapter(settings).history("ops.centers", 2)]
    assert ops == ["MERGE", "OPTIMIZE"]
    rows = {r.center_id: r.name for r in spark.read.format("delta").load(
        table_uri(settings, "ops.centers")).collect()}
    assert rows == {"C0": "original", "C1": "renamed", "C2": "original", "C9": "new"}


S3_RACE = textwrap.dedent("""
    import json, threading
    from pyspark.sql import SparkSession
    from omicslake.catalog import ensure_tables
    from omicslake.delta_ops import DeltaRsAdapter
    from omicslake.session import get_spark, start_local_server
    from omicslake.settings import load_settings
    from omicslake.writes import append
    from schemas import get_table

    settings = load_settings()  # OMICSLAKE_HOME=s3://omics/race, AWS_* -> the recording server
    spark = get_spark(settings, register=False)
    ensure_tables(spark, settings, (get_table("ops.centers"),))
    other = SparkSession.builder.remote(f"sc://127.0.0.1:{start_local_server()[1][1]}").create()
    schema = get_table("ops.centers").spark_schema()
    barrier = threading.Barrier(2)
    def write(s, me):
        batches = [s.createDataFrame([(f"{me}{r}", "n", "county", "P", None)], schema) for r in range(4)]
        barrier.wait()
        for df in batches:
            append(df, settings, "ops.centers")
    threads = [threading.Thread(target=write, args=(s, me)) for s, me in ((spark, "A"), (other, "B"))]
    [t.start() for t in threads]; [t.join() for t in threads]
    ad = DeltaRsAdapter(settings)
    compacted = ad.optimize("ops.centers")["numFilesRemoved"]
    print(json.dumps({"rows": spark.read.format("delta").load(f"{settings.lake_root}/ops/centers").count(),
                      "version": ad.version("ops.centers"), "compacted": compacted}))
""")


@pytest.fixture()
def recording_s3():
    """moto's S3 API on loopback (in this process, so the writer's process holds no server),
    recording the If-None-Match header of every PUT of a Delta commit file."""
    if os.environ.get("OMICSLAKE_TEST_ENGINE", "local") != "local":
        pytest.skip("Delta I/O is tested on the local engine")
    import boto3
    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    from omicslake.net import free_port

    puts: list[tuple[str, str | None]] = []
    moto = DomainDispatcherApplication(create_backend_app)

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if environ["REQUEST_METHOD"] == "PUT" and "/_delta_log/" in path and path.endswith(".json"):
            puts.append((path.rsplit("/", 1)[-1], environ.get("HTTP_IF_NONE_MATCH")))
        return moto(environ, start_response)

    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="t",
                 aws_secret_access_key="t").create_bucket(Bucket="omics")
    yield endpoint, puts
    server.shutdown()


def test_on_s3_every_commit_is_a_conditional_put_and_concurrent_appends_land(recording_s3, tmp_path):
    endpoint, puts = recording_s3
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RUST_LOG": "warn", "AWS_ACCESS_KEY_ID": "t",
           "AWS_SECRET_ACCESS_KEY": "t", "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint,
           "AWS_ALLOW_HTTP": "true", "OMICSLAKE_HOME": "s3://omics/race",
           "OMICSLAKE_STATE_DIR": str(tmp_path / "state")}
    p = subprocess.run([sys.executable, "-c", S3_RACE], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["rows"] == 8 and out["version"] == 9 and out["compacted"] == 8  # create, 8, optimize
    # Sail's commits and delta-rs's alike: PUT _delta_log/N.json with If-None-Match: *, so the
    # second writer of version N gets 412 Precondition Failed and moves on to N+1.
    assert len(puts) >= 10 and all(inm == "*" for _, inm in puts), puts
    print(f"\n{len(puts)} commit PUTs for 10 versions, all If-None-Match: *")
