"""The center API over real HTTP on loopback: tus uploads, receipts, limits, auth, scoped SQL."""

import base64
import hashlib
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from inputs import hl7_message

from omicslake.net import free_port, wait_for_port

MAX_BYTES = 2_000_000


@pytest.fixture()
def api(fresh_lake, tmp_path):
    """Tokens issued in this process, then `omicslake api` in its own process on the same lake."""
    from omicslake.credentials import issue, revoke
    from omicslake.writes import merge_new
    from schemas import get_table

    spark, settings = fresh_lake
    tokens = {name: issue(spark, settings, center, role) for name, (center, role) in {
        "county": ("CNT-S1A", "uploader"), "other": ("CNT-S2A", "uploader"),
        "province": ("PRV-S", "analyst"), "north": ("PRV-N", "analyst"), "revoked": ("CNT-S1A", "uploader"),
        "expired": ("CNT-S1A", "uploader")}.items()}
    revoke(spark, settings, tokens["revoked"].token_id)
    row = spark.read.format("delta").load(f"{settings.lake_root}/ops/credentials").where(
        f"token_id = '{tokens['expired'].token_id}'").collect()[0].asDict()
    row["expires_at"] = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=1)
    merge_new(spark, settings, spark.createDataFrame([row], get_table("ops.credentials").spark_schema()),
              "ops.credentials", update=True)
    port = free_port()
    log = tmp_path / "api.log"
    env = {**os.environ, "OMICSLAKE_HOME": settings.home, "OMICSLAKE_UPLOAD_MAX_BYTES": str(MAX_BYTES)}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "omicslake.cli", "-v", "api", "--port", str(port)],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, timeout=120)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            yield client, {k: v.token for k, v in tokens.items()}, spark, settings, log
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0"}


def _meta(**kv) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in kv.items())


def _create(client, token, data: bytes, feed="hl7", filename="batch.hl7", sha=None, center=None, length=None):
    meta = {"feed": feed, "filename": filename, "sha256": sha or hashlib.sha256(data).hexdigest()}
    if center:
        meta["center"] = center
    return client.post("/uploads", headers={**_auth(token), "Upload-Length": str(len(data) if length is None
                                                                               else length),
                                            "Upload-Metadata": _meta(**meta)})


def _patch(client, token, location, offset, chunk):
    return client.patch(location, content=chunk, headers={
        **_auth(token), "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"})


def _landed(settings) -> list[Path]:
    root = Path(settings.landing_dir)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_resumable_upload_lands_once_and_its_receipt_follows_the_ingest(api):
    client, tokens, spark, settings, log = api
    data = b"".join(hl7_message(f"UPL{i:04d}") for i in range(400))
    assert client.options("/uploads").headers["Tus-Version"] == "1.0.0"
    created = _create(client, tokens["county"], data)
    assert created.status_code == 201, created.text
    location = created.headers["Location"]
    half = len(data) // 2
    # a client that dies mid-chunk: only part of the first PATCH arrives
    assert _patch(client, tokens["county"], location, 0, data[:1000]).status_code == 204
    assert not _landed(settings)  # a DAG never sees a partial file
    offset = int(client.head(location, headers=_auth(tokens["county"])).headers["Upload-Offset"])
    assert offset == 1000
    assert _patch(client, tokens["county"], location, 0, data[:half]).status_code == 409  # stale offset
    assert _patch(client, tokens["county"], location, offset, data[offset:half]).status_code == 204
    done = _patch(client, tokens["county"], location, half, data[half:])
    assert done.status_code == 204 and int(done.headers["Upload-Offset"]) == len(data)
    receipt = done.headers["Omicslake-Receipt"]
    [landed] = _landed(settings)
    assert landed.read_bytes() == data
    assert landed.parent.parent == Path(settings.landing_dir) / "hl7" / "CNT-S1A"
    status = client.get(f"/receipts/{receipt}", headers=_auth(tokens["county"])).json()
    assert status["status"] == "received" and status["sha256"] == hashlib.sha256(data).hexdigest()

    from jobs import ingest_hl7

    ingest_hl7.run(spark, settings, [str(landed.parent)], "CNT-S1A")
    status = client.get(f"/receipts/{receipt}", headers=_auth(tokens["county"])).json()
    assert status["status"] == "landed" and status["counts"]["rows_read"] == 400
    assert client.get(f"/receipts/{receipt}", headers=_auth(tokens["province"])).status_code == 200
    assert client.get(f"/receipts/{receipt}", headers=_auth(tokens["other"])).status_code == 403

    time.sleep(2.5)  # the audit queue writes every second
    audit = spark.read.format("delta").load(f"{settings.lake_root}/ops/audit_log")
    uploads = audit.where("action = 'upload' AND outcome = 'ok'").collect()
    assert [(u.principal, u.center_id, u.client) for u in uploads] == [
        ("CNT-S1A:uploader", "CNT-S1A", "127.0.0.1")]
    text = log.read_text(errors="replace")
    assert "ZHANG" not in text and "MRN0001" not in text
    assert not any(t in text for t in tokens.values())


def test_checksum_mismatch_and_limits_land_nothing(api):
    client, tokens, spark, settings, log = api
    data = b"MSH|^~\\&|X\r" * 50
    bad = _create(client, tokens["county"], data, sha="0" * 64)
    assert _patch(client, tokens["county"], bad.headers["Location"], 0, data).status_code == 422
    assert client.head(bad.headers["Location"], headers=_auth(tokens["county"])).status_code == 404
    assert _create(client, tokens["county"], data, length=MAX_BYTES + 1).status_code == 413
    assert _create(client, tokens["county"], data, feed="pdf").status_code == 400
    for name in ("../../etc/passwd", "a/b.vcf", "..vcf", "x" * 300, ".hidden", ""):
        assert _create(client, tokens["county"], data, filename=name).status_code == 400, name
    ok = _create(client, tokens["county"], data)
    assert _patch(client, tokens["county"], ok.headers["Location"], 7, data).status_code == 409
    over = _patch(client, tokens["county"], ok.headers["Location"], 0, data + b"more")
    assert over.status_code == 413
    assert client.delete(ok.headers["Location"], headers=_auth(tokens["county"])).status_code == 204
    assert not _landed(settings)
    assert not list((Path(settings.state_dir) / "uploads" / "partial").iterdir())


def test_every_bad_credential_is_401_and_other_centers_are_403(api):
    client, tokens, spark, settings, log = api
    data = b"MSH|^~\\&|X\r"
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"},
                    {"Authorization": f"Bearer {tokens['county'][:-1]}A"},
                    {"Authorization": f"Bearer {tokens['revoked']}"},
                    {"Authorization": f"Bearer {tokens['expired']}"}):
        r = client.post("/uploads", headers={**headers, "Upload-Length": "11",
                                             "Upload-Metadata": _meta(feed="hl7", filename="a.hl7",
                                                                      sha256=hashlib.sha256(data).hexdigest())})
        assert r.status_code == 401, headers
    assert _create(client, tokens["county"], data, center="CNT-S2A").status_code == 403
    assert _create(client, tokens["province"], data).status_code == 403  # analysts do not upload
    mine = _create(client, tokens["county"], data)
    assert client.head(mine.headers["Location"], headers=_auth(tokens["other"])).status_code == 403
    assert _patch(client, tokens["other"], mine.headers["Location"], 0, data).status_code == 403
    assert not _landed(settings)
    time.sleep(2.5)
    audit = spark.read.format("delta").load(f"{settings.lake_root}/ops/audit_log")
    assert audit.where("action = 'login' AND outcome = 'refused'").count() == 6
    assert audit.where("action = 'upload' AND outcome = 'refused'").count() >= 4
    text = log.read_text(errors="replace")
    assert not any(t in text for t in tokens.values())


def test_sql_over_http_is_cut_to_the_subtree(api):
    import pyarrow as pa

    from schemas import get_table

    client, tokens, spark, settings, log = api
    contract = get_table("silver.samples")
    rows = [{c: None for c in contract.column_names} | {
        "center_id": c, "sample_id": f"{c}-S1", "person_id": f"P-{c}", "source_person_id": f"P-{c}"}
        for c in ("CNT-S1A", "CTY-S1", "CNT-S2A", "PRV-N")]
    spark.createDataFrame(rows, contract.spark_schema()).write.format("delta").mode("append").save(
        f"{settings.lake_root}/silver/samples")
    q = {"query": "SELECT center_id FROM silver.samples ORDER BY center_id"}
    got = client.post("/sql", json=q, headers=_auth(tokens["province"]))
    assert got.status_code == 200, got.text
    assert [r["center_id"] for r in got.json()["rows"]] == ["CNT-S1A", "CNT-S2A", "CTY-S1"]
    arrow = client.post("/sql", json={**q, "format": "arrow"}, headers=_auth(tokens["province"]))
    table = pa.ipc.open_stream(arrow.content).read_all()
    assert table.column("center_id").to_pylist() == ["CNT-S1A", "CNT-S2A", "CTY-S1"]
    refused = client.post("/sql", json={"query": "SELECT * FROM bronze.hl7_messages"},
                          headers=_auth(tokens["province"]))
    assert refused.status_code == 403 and "admins only" in refused.json()["detail"]
    assert client.post("/sql", json=q, headers=_auth(tokens["county"])).status_code == 403  # uploader
    assert client.post("/sql", json=q).status_code == 401
    assert json.loads(client.get("/openapi.json").text)["info"]["title"] == "omicslake center API"


def test_identity_cross_reference_is_served_within_the_subtree(api):
    from jobs import build_clinical, ingest_hl7, link_persons

    client, tokens, spark, settings, log = api
    batch = Path(settings.state_dir) / "pix.hl7"
    batch.write_bytes(hl7_message("PIX0001"))
    landed = ingest_hl7.run(spark, settings, [str(batch)], "CNT-S1A")
    build_clinical.run(spark, settings, [landed.run_id])
    link_persons.run(spark, settings)
    ask = {"authority": "PRV-N", "id": "MRN0001"}
    found = client.get("/persons/xref", params=ask, headers=_auth(tokens["province"]))
    assert found.status_code == 200, found.text
    body = found.json()
    assert body["person_id"] and {i["center_id"] for i in body["identities"]} == {"CNT-S1A"}
    assert "MRN0001" not in found.text and "ZHANG" not in found.text  # values stay keyed
    assert client.get("/persons/xref", params=ask, headers=_auth(tokens["north"])).status_code == 404
    assert client.get("/persons/xref", params={**ask, "id": "MRN9999"},
                      headers=_auth(tokens["province"])).status_code == 404
    assert client.get("/persons/xref", params=ask, headers=_auth(tokens["county"])).status_code == 403


@pytest.fixture()
def dead_airflow(monkeypatch):
    """OMICSLAKE_AIRFLOW_URL pointing at a port nobody listens on (set before `api` starts)."""
    monkeypatch.setenv("OMICSLAKE_AIRFLOW_URL", f"http://127.0.0.1:{free_port()}")


def test_a_failed_dag_trigger_leaves_the_upload_landed_and_is_audited(dead_airflow, api):
    client, tokens, spark, settings, log = api
    data = hl7_message("TRG0001")
    location = _create(client, tokens["county"], data).headers["Location"]
    t0 = time.monotonic()
    done = _patch(client, tokens["county"], location, 0, data)
    assert done.status_code == 204 and time.monotonic() - t0 < 3  # the answer does not wait for Airflow
    receipt = done.headers["Omicslake-Receipt"]
    deadline = time.monotonic() + 60
    while True:
        status = client.get(f"/receipts/{receipt}", headers=_auth(tokens["county"])).json()
        if status.get("note") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert status["status"] == "received" and status["dag_run_id"] is None
    assert status["note"].startswith("the DAG run could not be started: Airflow at http://127.0.0.1:")
    assert len(_landed(settings)) == 1
    time.sleep(2.5)
    audit = spark.read.format("delta").load(f"{settings.lake_root}/ops/audit_log")
    [failed] = audit.where("action = 'dag_trigger'").collect()
    assert failed.outcome == "failed" and failed.center_id == "CNT-S1A"
    assert "could not start omicslake_clinical" in log.read_text(errors="replace")


def test_the_run_conf_ingests_exactly_the_uploaded_file(tmp_path):
    from connectors.upload_trigger import run_conf
    from connectors.uploads import Receipt

    landing = tmp_path / "landing"

    def receipt(feed: str, filename: str) -> Receipt:
        path = landing / feed / "CNT-S1A" / "2026-11-23" / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        return Receipt("r-" + "0" * 32, "0" * 32, "CNT-S1A", feed, filename, "0" * 64, 1, str(path), "p",
                       "2026-11-23T00:00:00+00:00", "dag")

    hl7 = receipt("hl7", "a.hl7")
    assert run_conf(hl7, landing) == ({"hl7": [{"center_id": "CNT-S1A", "paths": [hl7.path]}], "fhir": [],
                                       "scan_landing": False}, None)
    fhir = receipt("fhir", "b.ndjson")
    assert run_conf(fhir, landing)[0]["fhir"] == [{"center_id": "CNT-S1A", "paths": [fhir.path]}]
    dcm = receipt("dicom", "c.dcm")
    assert run_conf(dcm, landing) == ({"dicom": [{"center_id": "CNT-S1A", "paths": [dcm.path]}]}, None)
    vcf = receipt("vcf", "d.vcf.gz")
    conf, why = run_conf(vcf, landing)
    assert conf is None and why.startswith("no sample manifest from CNT-S1A yet")
    old = receipt("manifest", "old.csv")
    os.utime(old.path, (1, 1))
    new = receipt("manifest", "new.csv")
    assert run_conf(new, landing)[0] is None  # a manifest alone starts nothing
    assert run_conf(vcf, landing) == ({"batches": [{"center_id": "CNT-S1A", "vcf": vcf.path,
                                                    "manifest": new.path}]}, None)
    assert run_conf(receipt("vcf", "d.vcf.gz.tbi"), landing)[0] is None
    bam = receipt("bam", "e.bam")
    assert run_conf(bam, landing)[1].startswith("no index")
    bai = receipt("bam", "e.bam.bai")  # the index arrives: the run reads the BAM it indexes
    expected = {"alignments": [{"center_id": "CNT-S1A", "paths": [bam.path], "manifest": new.path}]}
    assert run_conf(bai, landing) == (expected, None)
    assert run_conf(bam, landing) == (expected, None)
    assert run_conf(receipt("bam", "f.bai"), landing)[1].startswith("an index: the alignment file")


def test_trigger_marks_the_receipt_and_survives_a_retried_post(tmp_path):
    """Against a stand-in Airflow: the run id goes into the receipt, a paused DAG is noted, a 409
    (the run a retried POST already created) counts as started, a 5xx is tried again."""
    from connectors.upload_trigger import UploadTrigger
    from connectors.uploads import UploadStore
    from omicslake.airflow_local import AirflowClient

    calls = []

    def airflow(request: httpx.Request) -> httpx.Response:
        calls.append((request.method, request.url.path))
        if request.url.path == "/auth/token":
            return httpx.Response(201, json={"access_token": "a.b.c"})
        assert request.headers["Authorization"] == "Bearer a.b.c"
        if request.method == "GET" and request.url.path == "/api/v2/dags/omicslake_clinical":
            return httpx.Response(200, json={"dag_id": "omicslake_clinical", "is_paused": True})
        if request.method == "POST":
            assert json.loads(request.content)["conf"]["scan_landing"] is False
            posts = sum(c == ("POST", request.url.path) for c in calls)
            return httpx.Response(503, json={"detail": "busy"}) if posts == 1 else httpx.Response(409)
        return httpx.Response(200, json={"state": "failed"})

    client = AirflowClient("http://airflow.test")
    client._http = httpx.Client(base_url=client.url, transport=httpx.MockTransport(airflow))
    store = UploadStore(tmp_path / "state", tmp_path / "landing")
    data = hl7_message("MCK0001")
    sha = hashlib.sha256(data).hexdigest()
    upload = store.create("CNT-S1A", "hl7", "m.hl7", len(data), sha, "CNT-S1A:uploader")
    with open(store.open_at(upload.upload_id, 0, len(data))[0], "ab") as fh:
        fh.write(data)
    receipt = store.complete(upload.upload_id)
    audited = []
    trigger = UploadTrigger(client, store, lambda *a, **kw: audited.append((a, kw)), retry_wait=0.01)
    trigger.submit(receipt, "CNT-S1A:uploader", "127.0.0.1").result(timeout=30)
    saved = store.receipt(receipt.receipt_id)
    assert saved.dag_run_id == f"upload__{receipt.receipt_id}"
    assert saved.note == "omicslake_clinical is paused in Airflow: the run starts when it is unpaused"
    assert [c for c in calls if c[0] == "POST"] == [("POST", "/api/v2/dags/omicslake_clinical/dagRuns")] * 2
    assert audited[0][0][0] == "dag_trigger" and audited[0][1].get("outcome", "ok") == "ok"
    assert trigger.run_state(saved) == "failed"
    trigger.close()
