"""The center API (FastAPI, served by uvicorn): tus 1.0 uploads, receipts, htsget, the
identity cross-reference and scoped SQL.

Every route but ``/health``, the OpenAPI pages and htsget's service-info takes
``Authorization: Bearer <token>``
(``omicslake centers token issue``). A principal uploads for its own center only, and queries
only its subtree's rows. Every request that acts, and every refusal, goes to ``ops.audit_log``.
"""


import asyncio
import base64
import json
import os
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from starlette.requests import ClientDisconnect

from connectors.api_engine import Engine, client_address
from connectors.htsget import htsget_router
from connectors.upload_trigger import UploadTrigger
from connectors.uploads import Receipt, UploadError, UploadStore
from omicslake.airflow_local import AirflowClient
from omicslake.catalog import read_table
from omicslake.credentials import AuthError
from omicslake.persons import xref
from omicslake.settings import Settings
from omicslake.sql_gateway import Principal, QueryRefused, scope_query
from omicslake.tiers import registry

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,creation-with-upload,termination"
ARROW_STREAM = "application/vnd.apache.arrow.stream"
QUARANTINE_OF_FEED = {f: f"quarantine.{f}" for f in ("vcf", "bam", "dicom", "hl7", "fhir")}


def create_app(spark: SparkSession, settings: Settings, max_bytes: int | None = None) -> FastAPI:
    engine = Engine(spark, settings)
    store = UploadStore(settings.state_dir, settings.landing_dir,
                        max_bytes or int(os.environ.get("OMICSLAKE_UPLOAD_MAX_BYTES", 64 * 2**30)))
    locks: dict[str, asyncio.Lock] = {}
    app = FastAPI(title="omicslake center API", version="1.0",
                  description="Resumable uploads (tus 1.0), receipts and scoped SQL for the centers "
                              "of the network. Authenticate with `Authorization: Bearer <token>`.")
    airflow = AirflowClient.from_env()  # OMICSLAKE_AIRFLOW_URL: a landed upload starts its DAG
    trigger = UploadTrigger(airflow, store, engine.audit.add) if airflow else None
    app.state.engine, app.state.store, app.state.trigger = engine, store, trigger
    app.include_router(htsget_router(engine, settings))

    @app.on_event("shutdown")
    def _close_audit() -> None:
        if trigger:
            trigger.close()
        engine.audit.close()

    async def principal(request: Request, authorization: str | None = Header(None)) -> Principal:
        try:
            return await run_in_threadpool(engine.login, request, authorization)
        except AuthError:
            raise HTTPException(401, "invalid or missing token", {"WWW-Authenticate": "Bearer"}) from None

    Who = Annotated[Principal, Depends(principal)]

    def refuse(request: Request, who: Principal, status: int, message: str, action: str,
               target: str, center: str | None = None) -> HTTPException:
        engine.audit.add(action, target, {"reason": message}, center_id=center or who.center_id,
                         principal=str(who), outcome="refused", client=client_address(request))
        return HTTPException(status, message, _tus_headers())

    @app.get("/health", include_in_schema=False)
    def health() -> dict:
        return {"ok": True}

    # --- tus 1.0 -----------------------------------------------------------------------

    @app.options("/uploads", summary="tus capabilities")
    def tus_options() -> Response:
        return Response(status_code=204, headers={**_tus_headers(), "Tus-Version": TUS_VERSION,
                                                  "Tus-Extension": TUS_EXTENSIONS,
                                                  "Tus-Max-Size": str(store.max_bytes)})

    @app.post("/uploads", status_code=201, summary="create an upload (tus creation)")
    async def tus_create(request: Request, who: Who,
                         upload_length: int = Header(...), upload_metadata: str = Header("")) -> Response:
        meta = _metadata(upload_metadata)
        center = meta.get("center") or who.center_id
        if center != who.center_id:
            raise refuse(request, who, 403, f"{who} cannot upload for center {center}", "upload",
                         meta.get("filename", "?"), center)
        if who.role not in ("uploader", "admin"):
            raise refuse(request, who, 403, f"{who}: uploads need the uploader role", "upload",
                         meta.get("filename", "?"))
        try:
            upload = store.create(center, meta.get("feed", ""), meta.get("filename", ""), upload_length,
                                  meta.get("sha256", ""), str(who))
        except UploadError as exc:
            raise refuse(request, who, exc.status, str(exc), "upload", meta.get("filename", "?")) from None
        engine.audit.add("upload_start", upload.filename, {"upload_id": upload.upload_id, "feed": upload.feed,
                                                           "length": upload.length},
                         center_id=center, principal=str(who), client=client_address(request))
        headers = {**_tus_headers(), "Location": f"/uploads/{upload.upload_id}", "Upload-Offset": "0"}
        if upload.length == 0:
            receipt = await _finish(request, who, upload.upload_id)
            headers["Omicslake-Receipt"] = receipt.receipt_id
        return Response(status_code=201, headers=headers)

    def owned(request: Request, who: Principal, upload_id: str):
        try:
            upload = store.get(upload_id)
        except UploadError as exc:
            raise HTTPException(exc.status, str(exc), _tus_headers()) from None
        if upload.center_id != who.center_id:
            raise refuse(request, who, 403, f"{who} cannot touch an upload of {upload.center_id}", "upload",
                         upload.filename, upload.center_id)
        return upload

    @app.head("/uploads/{upload_id}", summary="how much arrived (tus resume)")
    def tus_head(upload_id: str, request: Request, who: Who) -> Response:
        upload = owned(request, who, upload_id)
        return Response(status_code=200, headers={**_tus_headers(), "Cache-Control": "no-store",
                                                  "Upload-Offset": str(store.offset(upload_id)),
                                                  "Upload-Length": str(upload.length)})

    @app.patch("/uploads/{upload_id}", status_code=204, summary="append bytes at Upload-Offset")
    async def tus_patch(upload_id: str, request: Request, who: Who,
                        upload_offset: int = Header(...), content_type: str = Header(""),
                        content_length: int | None = Header(None)) -> Response:
        if content_type != "application/offset+octet-stream":
            raise HTTPException(415, "Content-Type must be application/offset+octet-stream", _tus_headers())
        upload = owned(request, who, upload_id)
        async with locks.setdefault(upload_id, asyncio.Lock()):
            try:
                part, room = store.open_at(upload_id, upload_offset, content_length)
            except UploadError as exc:
                raise refuse(request, who, exc.status, str(exc), "upload", upload.filename) from None
            written = 0
            with open(part, "ab") as fh:
                try:
                    async for chunk in request.stream():
                        written += len(chunk)
                        if written > room:
                            raise refuse(request, who, 413, f"the body passes Upload-Length {upload.length}",
                                         "upload", upload.filename)
                        fh.write(chunk)
                except ClientDisconnect:  # what arrived is kept; HEAD says where to go on
                    return Response(status_code=204, headers=_tus_headers())
                finally:
                    fh.flush()
                    os.fsync(fh.fileno())
            offset = upload_offset + written
            headers = {**_tus_headers(), "Upload-Offset": str(offset)}
            if offset == upload.length:
                receipt = await _finish(request, who, upload_id)
                headers["Omicslake-Receipt"] = receipt.receipt_id
            return Response(status_code=204, headers=headers)

    async def _finish(request: Request, who: Principal, upload_id: str) -> Receipt:
        try:
            receipt = await run_in_threadpool(store.complete, upload_id)
        except UploadError as exc:
            raise refuse(request, who, exc.status, str(exc), "upload", upload_id) from None
        finally:
            locks.pop(upload_id, None)
        engine.audit.add("upload", receipt.filename, {"receipt": receipt.receipt_id, "feed": receipt.feed,
                                                      "sha256": receipt.sha256, "bytes": receipt.size},
                         center_id=receipt.center_id, principal=str(who), client=client_address(request))
        if trigger:  # in the background: the answer to the last PATCH does not wait for Airflow
            trigger.submit(receipt, str(who), client_address(request))
        return receipt

    @app.delete("/uploads/{upload_id}", status_code=204, summary="drop an unfinished upload (termination)")
    def tus_delete(upload_id: str, request: Request, who: Who) -> Response:
        upload = owned(request, who, upload_id)
        store.terminate(upload_id)
        engine.audit.add("upload_terminate", upload.filename, {"upload_id": upload_id},
                         center_id=upload.center_id, principal=str(who), client=client_address(request))
        return Response(status_code=204, headers=_tus_headers())

    # --- receipts ----------------------------------------------------------------------

    @app.get("/receipts/{receipt_id}", summary="where an upload stands")
    def get_receipt(receipt_id: str, request: Request, who: Who) -> dict:
        try:
            receipt = store.receipt(receipt_id)
        except UploadError as exc:
            raise HTTPException(exc.status, str(exc)) from None
        if receipt.center_id not in registry(settings).visible_centers(who.center_id):
            raise refuse(request, who, 403, f"{who} cannot see receipts of {receipt.center_id}", "receipt",
                         receipt_id, receipt.center_id)
        status = engine.call(receipt_status, receipt)
        if trigger and status["status"] == "ingesting":  # a run that failed before any ingest
            state = trigger.run_state(receipt)
            status["dag_run_state"] = state
            if state == "failed":
                status.update(status="failed", error=f"DAG run {receipt.dag_run_id} of {receipt.dag_id} "
                                                     "failed in Airflow before it ingested the file")
        return status

    # --- identity cross-reference (IHE PIX-like) ----------------------------------------

    @app.get("/persons/xref", summary="the person an identifier belongs to, within your subtree")
    def get_xref(authority: str, id: str, request: Request, who: Who, type: str | None = None) -> dict:
        if who.role == "uploader":
            raise refuse(request, who, 403, f"{who}: uploaders cannot query", "query", "person xref")
        found = engine.call(xref, authority, id, type)
        visible = registry(settings).visible_centers(who.center_id)
        identities = [i for i in (found or {}).get("identities", []) if i.get("center_id") in visible]
        engine.audit.add("query", "person xref", {"authority": authority, "type": type,
                                                  "found": bool(identities)},
                         center_id=who.center_id, principal=str(who), client=client_address(request))
        if not identities:  # whether another subtree knows the identifier is not told
            raise HTTPException(404, "no person with this identifier in your centers")
        return {"person_id": found["person_id"], "identities": identities}

    # --- SQL ---------------------------------------------------------------------------

    class Query(BaseModel):
        query: str
        format: str = "json"
        limit: int = 10_000

    @app.post("/sql", summary="one SELECT over layer.table names, cut to your subtree")
    def post_sql(body: Query, request: Request, who: Who) -> Response:
        try:
            scoped = scope_query(body.query, who, registry(settings))
        except QueryRefused as exc:
            raise refuse(request, who, 403, str(exc), "query", "sql") from None
        try:
            with engine.lock:
                df = spark.sql(scoped.sql).limit(max(0, min(body.limit, 1_000_000)))
                if body.format == "arrow":
                    table = df.toArrow()
                else:
                    rows = [r.asDict(recursive=True) for r in df.collect()]
        except Exception as exc:
            engine.audit.add("query", ",".join(scoped.tables), {"query": body.query}, center_id=who.center_id,
                             principal=str(who), outcome="failed", client=client_address(request))
            raise HTTPException(400, f"query failed: {str(exc).splitlines()[0]}") from None
        engine.audit.add("query", ",".join(scoped.tables), {"query": body.query}, center_id=who.center_id,
                         principal=str(who), client=client_address(request))
        if body.format == "arrow":
            import pyarrow as pa

            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
            return Response(sink.getvalue().to_pybytes(), media_type=ARROW_STREAM)
        return JSONResponse(json.loads(json.dumps({"rows": rows}, default=str)))

    return app


def receipt_status(spark: SparkSession, settings: Settings, receipt: Receipt) -> dict[str, Any]:
    """received (landed in the landing zone), ingesting (its DAG run was started), then landed,
    quarantined (the whole file) or failed, with the counts of the ingest run that read it."""
    runs = read_table(spark, settings, "ops.ingest_runs").where(
        (F.col("center_id") == receipt.center_id)
        & (F.array_contains("input_checksums", receipt.sha256) | F.array_contains("input_uris", receipt.path))
        & (F.col("status") != "skipped")).orderBy(F.col("finished_at").desc()).limit(1).collect()
    out = asdict(receipt)
    if not runs:
        out["status"] = "ingesting" if receipt.dag_run_id else "received"
        return out
    run = runs[0]
    per_input = json.loads(run.per_input_json or "{}").get(receipt.path)
    out.update(run_id=run.run_id, job=run.job, counts={
        "rows_read": run.rows_read, "rows_accepted": run.rows_accepted,
        "rows_quarantined": run.rows_quarantined, "rows_written": run.rows_written, "file": per_input})
    if run.status == "failed":
        out.update(status="failed", error=run.error)
        return out
    table = QUARANTINE_OF_FEED.get(receipt.feed)
    whole = table is not None and read_table(spark, settings, table).where(
        (F.col("source_checksum") == receipt.sha256) & (F.col("location") == "file")).limit(1).count() > 0
    out["status"] = "quarantined" if whole else "landed"
    return out


def _metadata(header: str) -> dict[str, str]:
    """tus Upload-Metadata: comma-separated ``key base64value`` pairs."""
    out = {}
    for pair in filter(None, (p.strip() for p in header.split(","))):
        key, _, value = pair.partition(" ")
        try:
            out[key] = base64.b64decode(value, validate=True).decode("utf-8") if value else ""
        except (ValueError, UnicodeDecodeError):
            raise HTTPException(400, f"Upload-Metadata {key}: not base64 UTF-8") from None
    return out


def _tus_headers() -> dict[str, str]:
    return {"Tus-Resumable": TUS_VERSION}
