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
from net import free_port, wait_for_port

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
