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
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from starlette.requests import ClientDisconnect

from connectors.airflow_api import AirflowClient
from connectors.api_engine import Engine, client_address
from connectors.htsget import htsget_router
from connectors.upload_trigger import UploadTrigger
from connectors.uploads import Receipt, UploadError, UploadStore
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


class Query(BaseModel):
    """The body of ``POST /sql``."""

    query: str
    format: str = "json"
    limit: int = 10_000


@dataclass
class CenterApi:
    """What the routes share (``app.state.api``): the engine (token checks, lookups, audit), the
    upload store, the DAG trigger when Airflow is configured, and one lock per upload in flight."""

    spark: SparkSession
    settings: Settings
    engine: Engine
    store: UploadStore
    trigger: UploadTrigger | None
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    def refuse(self, request: Request, who: Principal, status: int, message: str, action: str,
               target: str, center: str | None = None) -> HTTPException:
        """Audit a refusal and return the HTTP error to raise."""
        self.engine.audit.add(action, target, {"reason": message}, center_id=center or who.center_id,
                              principal=str(who), outcome="refused", client=client_address(request))
        return HTTPException(status, message, _tus_headers())

    def audit(self, request: Request, who: Principal, action: str, target: str, details: dict,
              center_id: str | None = None, outcome: str = "ok") -> None:
        self.engine.audit.add(action, target, details, center_id=center_id or who.center_id,
                              principal=str(who), client=client_address(request),
                              **({} if outcome == "ok" else {"outcome": outcome}))

    def owned(self, request: Request, who: Principal, upload_id: str):
        """The upload, if it belongs to ``who``'s center."""
        try:
            upload = self.store.get(upload_id)
        except UploadError as exc:
            raise HTTPException(exc.status, str(exc), _tus_headers()) from None
        if upload.center_id != who.center_id:
            raise self.refuse(request, who, 403, f"{who} cannot touch an upload of {upload.center_id}",
                              "upload", upload.filename, upload.center_id)
        return upload

    async def finish(self, request: Request, who: Principal, upload_id: str) -> Receipt:
        """Complete an upload that has all its bytes: checksum, land, audit, start its DAG run."""
        try:
            receipt = await run_in_threadpool(self.store.complete, upload_id)
        except UploadError as exc:
            raise self.refuse(request, who, exc.status, str(exc), "upload", upload_id) from None
        finally:
            self.locks.pop(upload_id, None)
        self.audit(request, who, "upload", receipt.filename,
                   {"receipt": receipt.receipt_id, "feed": receipt.feed, "sha256": receipt.sha256,
                    "bytes": receipt.size}, receipt.center_id)
        if self.trigger:  # in the background: the answer to the last PATCH does not wait for Airflow
            self.trigger.submit(receipt, str(who), client_address(request))
        return receipt

    def close(self) -> None:
        if self.trigger:
            self.trigger.close()
        self.engine.audit.close()


def _api(request: Request) -> CenterApi:
    return request.app.state.api


async def _principal(request: Request, authorization: str | None = Header(None)) -> Principal:
    try:
        return await run_in_threadpool(_api(request).engine.login, request, authorization)
    except AuthError:
        raise HTTPException(401, "invalid or missing token", {"WWW-Authenticate": "Bearer"}) from None


Who = Annotated[Principal, Depends(_principal)]
routes = APIRouter()


def create_app(spark: SparkSession, settings: Settings, max_bytes: int | None = None) -> FastAPI:
    """The center API on this session: the routes below, htsget, and the DAG trigger when
    ``OMICSLAKE_AIRFLOW_URL`` is set (a landed upload starts its DAG)."""
    engine = Engine(spark, settings)
    store = UploadStore(settings.state_dir, settings.landing_dir,
                        max_bytes or int(os.environ.get("OMICSLAKE_UPLOAD_MAX_BYTES", 64 * 2**30)))
    airflow = AirflowClient.from_env()
    trigger = UploadTrigger(airflow, store, engine.audit.add) if airflow else None
    app = FastAPI(title="omicslake center API", version="1.0",
                  description="Resumable uploads (tus 1.0), receipts and scoped SQL for the centers "
                              "of the network. Authenticate with `Authorization: Bearer <token>`.")
    app.state.api = CenterApi(spark, settings, engine, store, trigger)
    app.state.engine, app.state.store, app.state.trigger = engine, store, trigger
    app.include_router(routes)
    app.include_router(htsget_router(engine, settings))
    app.on_event("shutdown")(app.state.api.close)
    return app


@routes.get("/health", include_in_schema=False)
def health() -> dict:
    return {"ok": True}


# --- tus 1.0 -----------------------------------------------------------------------------


@routes.options("/uploads", summary="tus capabilities")
def tus_options(request: Request) -> Response:
    return Response(status_code=204, headers={**_tus_headers(), "Tus-Version": TUS_VERSION,
                                              "Tus-Extension": TUS_EXTENSIONS,
                                              "Tus-Max-Size": str(_api(request).store.max_bytes)})


@routes.post("/uploads", status_code=201, summary="create an upload (tus creation)")
async def tus_create(request: Request, who: Who,
                     upload_length: int = Header(...), upload_metadata: str = Header("")) -> Response:
    api, meta = _api(request), _metadata(upload_metadata)
    center, filename = meta.get("center") or who.center_id, meta.get("filename", "?")
    if center != who.center_id:
        raise api.refuse(request, who, 403, f"{who} cannot upload for center {center}", "upload", filename,
                         center)
    if who.role not in ("uploader", "admin"):
        raise api.refuse(request, who, 403, f"{who}: uploads need the uploader role", "upload", filename)
    try:
        upload = api.store.create(center, meta.get("feed", ""), meta.get("filename", ""), upload_length,
                                  meta.get("sha256", ""), str(who))
    except UploadError as exc:
        raise api.refuse(request, who, exc.status, str(exc), "upload", filename) from None
    api.audit(request, who, "upload_start", upload.filename,
              {"upload_id": upload.upload_id, "feed": upload.feed, "length": upload.length}, center)
    headers = {**_tus_headers(), "Location": f"/uploads/{upload.upload_id}", "Upload-Offset": "0"}
    if upload.length == 0:
        receipt = await api.finish(request, who, upload.upload_id)
        headers["Omicslake-Receipt"] = receipt.receipt_id
    return Response(status_code=201, headers=headers)


@routes.head("/uploads/{upload_id}", summary="how much arrived (tus resume)")
def tus_head(upload_id: str, request: Request, who: Who) -> Response:
    api = _api(request)
    upload = api.owned(request, who, upload_id)
    return Response(status_code=200, headers={**_tus_headers(), "Cache-Control": "no-store",
                                              "Upload-Offset": str(api.store.offset(upload_id)),
                                              "Upload-Length": str(upload.length)})


@routes.patch("/uploads/{upload_id}", status_code=204, summary="append bytes at Upload-Offset")
async def tus_patch(upload_id: str, request: Request, who: Who,
                    upload_offset: int = Header(...), content_type: str = Header(""),
                    content_length: int | None = Header(None)) -> Response:
    if content_type != "application/offset+octet-stream":
        raise HTTPException(415, "Content-Type must be application/offset+octet-stream", _tus_headers())
    api = _api(request)
    upload = api.owned(request, who, upload_id)
    async with api.locks.setdefault(upload_id, asyncio.Lock()):
        try:
            part, room = api.store.open_at(upload_id, upload_offset, content_length)
        except UploadError as exc:
            raise api.refuse(request, who, exc.status, str(exc), "upload", upload.filename) from None
        written = await _append(api, request, who, upload, part, room)
        if written is None:  # the client went away: what arrived is kept; HEAD says where to go on
            return Response(status_code=204, headers=_tus_headers())
        offset = upload_offset + written
        headers = {**_tus_headers(), "Upload-Offset": str(offset)}
        if offset == upload.length:
            receipt = await api.finish(request, who, upload_id)
            headers["Omicslake-Receipt"] = receipt.receipt_id
        return Response(status_code=204, headers=headers)


async def _append(api: CenterApi, request: Request, who: Principal, upload, part, room: int) -> int | None:
    """Append the request body to the upload's part file (synced to disk, also when the body
    is refused); the bytes written, or None when the client disconnected."""
    written = 0
    with open(part, "ab") as fh:
        try:
            async for chunk in request.stream():
                written += len(chunk)
                if written > room:
                    raise api.refuse(request, who, 413, f"the body passes Upload-Length {upload.length}",
                                     "upload", upload.filename)
                fh.write(chunk)
        except ClientDisconnect:
            return None
        finally:
            fh.flush()
            os.fsync(fh.fileno())
    return written


@routes.delete("/uploads/{upload_id}", status_code=204, summary="drop an unfinished upload (termination)")
def tus_delete(upload_id: str, request: Request, who: Who) -> Response:
    api = _api(request)
    upload = api.owned(request, who, upload_id)
    api.store.terminate(upload_id)
    api.audit(request, who, "upload_terminate", upload.filename, {"upload_id": upload_id}, upload.center_id)
    return Response(status_code=204, headers=_tus_headers())


# --- receipts ------------------------------------------------------------------------------


@routes.get("/receipts/{receipt_id}", summary="where an upload stands")
def get_receipt(receipt_id: str, request: Request, who: Who) -> dict:
    api = _api(request)
    try:
        receipt = api.store.receipt(receipt_id)
    except UploadError as exc:
        raise HTTPException(exc.status, str(exc)) from None
    if receipt.center_id not in registry(api.settings).visible_centers(who.center_id):
        raise api.refuse(request, who, 403, f"{who} cannot see receipts of {receipt.center_id}", "receipt",
                         receipt_id, receipt.center_id)
    status = api.engine.call(receipt_status, receipt)
    if api.trigger and status["status"] == "ingesting":  # a run that failed before any ingest
        state = api.trigger.run_state(receipt)
        status["dag_run_state"] = state
        if state == "failed":
            status.update(status="failed", error=f"DAG run {receipt.dag_run_id} of {receipt.dag_id} "
                                                 "failed in Airflow before it ingested the file")
    return status


# --- identity cross-reference (IHE PIX-like) -----------------------------------------------


@routes.get("/persons/xref", summary="the person an identifier belongs to, within your subtree")
def get_xref(authority: str, id: str, request: Request, who: Who, type: str | None = None) -> dict:
    api = _api(request)
    if who.role == "uploader":
        raise api.refuse(request, who, 403, f"{who}: uploaders cannot query", "query", "person xref")
    found = api.engine.call(xref, authority, id, type)
    visible = registry(api.settings).visible_centers(who.center_id)
    identities = [i for i in (found or {}).get("identities", []) if i.get("center_id") in visible]
    api.audit(request, who, "query", "person xref",
              {"authority": authority, "type": type, "found": bool(identities)})
    if not identities:  # whether another subtree knows the identifier is not told
        raise HTTPException(404, "no person with this identifier in your centers")
    return {"person_id": found["person_id"], "identities": identities}


# --- SQL ---------------------------------------------------------------------------------------


@routes.post("/sql", summary="one SELECT over layer.table names, cut to your subtree")
def post_sql(body: Query, request: Request, who: Who) -> Response:
    api = _api(request)
    try:
        scoped = scope_query(body.query, who, registry(api.settings))
    except QueryRefused as exc:
        raise api.refuse(request, who, 403, str(exc), "query", "sql") from None
    target = ",".join(scoped.tables)
    try:
        with api.engine.lock:
            df = api.spark.sql(scoped.sql).limit(max(0, min(body.limit, 1_000_000)))
            if body.format == "arrow":
                answer = df.toArrow()
            else:
                answer = [r.asDict(recursive=True) for r in df.collect()]
    except Exception as exc:
        api.audit(request, who, "query", target, {"query": body.query}, outcome="failed")
        raise HTTPException(400, f"query failed: {str(exc).splitlines()[0]}") from None
    api.audit(request, who, "query", target, {"query": body.query})
    if body.format == "arrow":
        return Response(_arrow_stream(answer), media_type=ARROW_STREAM)
    return JSONResponse(json.loads(json.dumps({"rows": answer}, default=str)))


def _arrow_stream(table) -> bytes:
    """An Arrow table as one IPC stream."""
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


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
