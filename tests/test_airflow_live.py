"""The real Airflow 3 stack on loopback: `omicslake airflow up`, DAG runs through the REST API v2,
an upload through the center API that starts its own clinical run, then `omicslake airflow down`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
from inputs import hl7_message

from omicslake.net import free_port, wait_for_port

GENOMICS, CLINICAL = "omicslake_genomics", "omicslake_clinical"


def _cli(env: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "omicslake.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def _tus(token: str, **extra) -> dict:
    return {"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0", **extra}


def _upload(api: httpx.Client, token: str, data: bytes, feed: str, filename: str) -> str:
    meta = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in
                    {"feed": feed, "filename": filename, "sha256": hashlib.sha256(data).hexdigest()}.items())
    created = api.post("/uploads", headers=_tus(token, **{"Upload-Length": str(len(data)),
                                                          "Upload-Metadata": meta}))
    assert created.status_code == 201, created.text
    done = api.patch(created.headers["Location"], content=data, headers=_tus(token, **{
        "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}))
    assert done.status_code == 204, done.text
    return done.headers["Omicslake-Receipt"]


def _wait(what: str, check, timeout: float, every: float = 2.0):
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


def _run_done(airflow, dag_id: str, run_id: str):
    run = airflow.dag_run(dag_id, run_id)
    if run["state"] in ("success", "failed"):
        return run
    return None


@pytest.mark.slow
def test_airflow_stack_runs_the_dags_and_an_upload_starts_its_run(fresh_lake, tmp_path):
    from deltalake import DeltaTable

    from omicslake.airflow_local import AirflowClient, read_state
    from omicslake.credentials import issue
    from omicslake.demo_data import make_demo_inputs

    spark, settings = fresh_lake
    token = issue(spark, settings, "CNT-S1A", "uploader").token
    port = free_port()
    # no scheduled runs in the test: only the runs it starts (and the upload starts) run
    env = {**os.environ, "OMICSLAKE_HOME": settings.home, "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"}
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    up = _cli(env, "airflow", "up", "--port", str(port), "--timeout", "240")
    timings["up"] = time.monotonic() - t0
    assert up.returncode == 0, up.stderr
    url = up.stdout.strip().splitlines()[-1]
    assert url == f"http://127.0.0.1:{port}"
    state = read_state(settings)
    assert set(state["processes"]) == {"api-server", "scheduler", "dag-processor", "triggerer"}
    roots = [psutil.Process(e["pid"]) for e in state["processes"].values()]
    seen: dict[int, psutil.Process] = {p.pid: p for p in roots}
    api_port = free_port()
    api_log = tmp_path / "api.log"
    api_proc = None
    try:
        assert _cli(env, "airflow", "status").returncode == 0
        again = _cli(env, "airflow", "up", "--port", str(port))
        assert again.returncode == 0 and "already running" in again.stderr
        assert all(Path(e["log"]).stat().st_size > 0 for e in state["processes"].values())

        with open(api_log, "wb") as out:
            api_proc = subprocess.Popen(
                [sys.executable, "-m", "omicslake.cli", "api", "--port", str(api_port)],
                env={**env, "OMICSLAKE_AIRFLOW_URL": url}, stdout=out, stderr=subprocess.STDOUT)
        airflow = AirflowClient(url)
        assert airflow.token().count(".") == 2  # a JWT from GET /auth/token (all admins)
        # all admins: the api-server adds an admin token to any request that has none (loopback only)
        assert httpx.get(f"{url}/api/v2/dags").status_code == 200
        for dag_id in (GENOMICS, CLINICAL):
            assert airflow.set_paused(dag_id, False)["is_paused"] is False

        batch = make_demo_inputs(tmp_path / "inputs", samples_per_center=4, sites=100)[1]
        genomics = airflow.trigger(GENOMICS, {"batches": [
            {"center_id": batch.center_id, "vcf": str(batch.vcf), "manifest": str(batch.manifest)}]})

        wait_for_port(api_port, timeout=120)
        data = b"".join(hl7_message(f"AFL{i:04d}") for i in range(20))
        with httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=60) as api:
            t1 = time.monotonic()
            receipt_id = _upload(api, token, data, "hl7", "live.hl7")
            timings["upload"] = time.monotonic() - t1
            statuses = []

            def receipt():
                r = api.get(f"/receipts/{receipt_id}", headers=_tus(token)).json()
                statuses.append(r["status"])
                for proc in roots:  # every process the stack starts, to check `down` later
                    with contextlib.suppress(psutil.Error):
                        seen.update({c.pid: c for c in proc.children(recursive=True)})
                return r if r["status"] not in ("received", "ingesting") else None

            landed = _wait("the uploaded HL7 to land", receipt, timeout=240)
            timings["upload_to_landed"] = time.monotonic() - t1
        assert landed["status"] == "landed", landed
        assert statuses[0] in ("received", "ingesting") and "ingesting" in statuses, statuses
        assert landed["dag_id"] == CLINICAL and landed["dag_run_id"] == f"upload__{receipt_id}"
        assert landed["note"] is None
        assert landed["counts"]["rows_read"] == 20 and landed["counts"]["rows_accepted"] == 20
        clinical_run = _wait("the upload's clinical run", lambda: _run_done(
            airflow, CLINICAL, landed["dag_run_id"]), timeout=120)
        assert clinical_run["state"] == "success"
        assert clinical_run["conf"] == {"hl7": [{"center_id": "CNT-S1A", "paths": [landed["path"]]}],
                                        "fhir": [], "scan_landing": False}

        run = _wait("the genomics run", lambda: _run_done(airflow, GENOMICS, genomics["dag_run_id"]),
                    timeout=240)
        timings["genomics_run"] = time.monotonic() - t0 - timings["up"]
        tasks = {t["task_id"]: t["state"] for t in airflow.task_instances(GENOMICS, genomics["dag_run_id"])}
        assert run["state"] == "success", tasks
        assert tasks["ingest_vcf"] == "success" and tasks["check_runs"] == "success"

        lake = settings.lake_root
        runs = DeltaTable(f"{lake}/ops/ingest_runs").to_pyarrow_table().to_pylist()
        [vcf_run] = [r for r in runs if r["job"] == "ingest_vcf"]
        assert vcf_run["status"] == "succeeded" and vcf_run["input_uris"] == [str(batch.vcf)]
        assert vcf_run["rows_accepted"] > 0
        bronze = DeltaTable(f"{lake}/bronze/vcf_variants").to_pyarrow_table()
        assert bronze.num_rows == vcf_run["rows_accepted"]
        assert DeltaTable(f"{lake}/silver/variants").to_pyarrow_table().num_rows > 0
        assert DeltaTable(f"{lake}/bronze/hl7_messages").to_pyarrow_table().num_rows == 20
        tables = [json.loads(line) for line in _cli(env, "tables", "--json").stdout.splitlines() if line]
        assert {t["name"]: t["rows"] for t in tables}["silver.samples"] == 4
    finally:
        if api_proc is not None:
            api_proc.terminate()
            api_proc.wait(timeout=30)
        t2 = time.monotonic()
        down = _cli(env, "airflow", "down")
        timings["down"] = time.monotonic() - t2
        print(f"timings (s): {json.dumps({k: round(v, 1) for k, v in timings.items()})}")
    assert down.returncode == 0, down.stderr
    assert "stopped api-server, scheduler, dag-processor, triggerer" in down.stdout
    left = [p for p in seen.values() if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not left, [(p.pid, p.cmdline()) for p in left]
    assert read_state(settings) is None
    assert _cli(env, "airflow", "status").returncode == 1
    with pytest.raises(ConnectionRefusedError):  # nothing listens on the api-server's port
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    audit = DeltaTable(f"{settings.lake_root}/ops/audit_log").to_pyarrow_table().to_pylist()
    triggers = [a for a in audit if a["action"] == "dag_trigger"]
    assert [(a["outcome"], a["center_id"], a["principal"]) for a in triggers] == [
        ("ok", "CNT-S1A", "CNT-S1A:uploader")]


def test_down_kills_what_ignores_sigterm_and_its_children(tmp_path, monkeypatch):
    from omicslake.airflow_local import _write_state, read_state, stop
    from omicslake.settings import load_settings

    monkeypatch.setenv("OMICSLAKE_HOME", str(tmp_path / "home"))
    settings = load_settings()
    settings.airflow_home.mkdir(parents=True)
    stubborn = ("import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); "
                "print('ready', flush=True); time.sleep(600)")
    polite = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    deaf = subprocess.Popen([sys.executable, "-c", stubborn], stdout=subprocess.PIPE, text=True)
    assert deaf.stdout.readline().strip() == "ready"
    tree = [psutil.Process(polite.pid), psutil.Process(deaf.pid), *psutil.Process(deaf.pid).children()]
    assert len(tree) == 3
    _write_state(settings, {"url": "http://127.0.0.1:9", "processes": {
        "scheduler": {"pid": deaf.pid, "create_time": tree[1].create_time(), "log": "x"},
        "triggerer": {"pid": polite.pid, "create_time": tree[0].create_time(), "log": "x"},
        "api-server": {"pid": polite.pid, "create_time": tree[0].create_time() - 100, "log": "x"}}})
    messages = []
    t0 = time.monotonic()
    assert stop(settings, timeout=2, echo=messages.append) == ["scheduler", "triggerer"]  # not a reused pid
    assert time.monotonic() - t0 < 10
    assert polite.wait(timeout=5) == -15  # SIGTERM was enough
    deaf.wait(timeout=5)  # SIGKILL (stop() may have reaped it already: it is our child here)
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in tree)
    assert messages and "SIGKILL" in messages[0]
    assert read_state(settings) is None and stop(settings) is None
