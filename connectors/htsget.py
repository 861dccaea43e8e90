"""GA4GH htsget 1.3 on the center API: region slices of the VCF/BCF and BAM/CRAM files the lake
ingested, read where they lie, cut with their indexes.

``GET /htsget/variants/{id}`` and ``GET /htsget/reads/{id}`` answer a ticket; ``{id}`` is the
file's sha256, the ``source_checksum`` of ``bronze.vcf_headers`` (VCF/BCF) or
``silver.alignment_qc`` (BAM/CRAM). The ticket's URLs point back at this API
(``/htsget/data/{reads|variants}/{id}?class=&start=&end=``, offsets virtual for BGZF, plain
bytes for CRAM) and carry the caller's own ``Authorization`` header in their ``headers``: every
block request is authenticated, scoped to the principal's subtree and audited again, and the
URLs themselves hold no secret. The header block, the body blocks and the EOF marker (inline, a
``data:`` URI) concatenate into a file htslib reads. Body blocks follow the index's chunks, so
they may hold records just outside the region (whole index windows or CRAM containers), as the
protocol allows; clients filter. No data URL spans more than ``OMICSLAKE_HTSGET_BLOCK_BYTES``
(512 MiB) of the file where the index offers a cut.

An object comes in the format it is stored in (``format`` may be left out; another format is
``UnsupportedFormat``: nothing is transcoded). Analysts and admins of the object's center or a
center above it may read it; uploaders may not. ``/htsget/{reads,variants}/service-info`` is
open, as GA4GH service-info usually is.
"""

from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from connectors.api_engine import TtlCache, client_address
from connectors.contigs import normalise_contig
from connectors.hts_index import (
    BGZF_EOF,
    BinIndex,
    CramIndex,
    SliceError,
    bgzf_data_end,
    bgzf_slice,
    byte_slice,
    cram_eof,
    load_bin_index,
    load_crai,
    split,
)
from omicslake.catalog import read_table
from omicslake.credentials import AuthError
from omicslake.errors import RegistryError
from omicslake.settings import Settings
from omicslake.sql_gateway import Principal
from omicslake.tiers import registry

if TYPE_CHECKING:
    from connectors.api_engine import Engine

HTSGET_VERSION = "1.3.0"
TICKET_TYPE = f"application/vnd.ga4gh.htsget.v{HTSGET_VERSION}+json; charset=utf-8"
FORMATS = {"reads": ("BAM", "CRAM"), "variants": ("VCF", "BCF")}
CACHE_S = 30.0  # an object's row is trusted this long (ids are content hashes; rows rarely go)
SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_POS = (1 << 63) - 1


class HtsgetError(Exception):
    STATUS = {"InvalidAuthentication": 401, "PermissionDenied": 403, "NotFound": 404,
              "UnsupportedFormat": 400, "InvalidInput": 400, "InvalidRange": 400}

    def __init__(self, error: str, message: str):
        super().__init__(message)
        self.error, self.message = error, message

    def response(self) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if self.error == "InvalidAuthentication" else None
        return JSONResponse({"htsget": {"error": self.error, "message": self.message}},
                            status_code=self.STATUS[self.error], headers=headers)


@dataclass(frozen=True)
class HtsObject:
    """One ingested file, as the lake recorded it."""

    id: str
    kind: str  # reads | variants
    format: str  # VCF | BCF | BAM | CRAM, or PLAIN (an uncompressed VCF: not sliceable)
    path: str
    center_id: str
    index: str | None = None  # as recorded (alignment_qc.index_uri); VCF indexes are looked for
    size: int | None = None  # as recorded, for BAM/CRAM


def find_objects(spark: SparkSession, settings: Settings, kind: str, object_id: str) -> list[HtsObject]:
    if kind == "variants":
        rows = (read_table(spark, settings, "bronze.vcf_headers")
                .where(F.col("source_checksum") == object_id)
                .select("source_uri", "center_id", "file_format").limit(50).collect())
        fmt = {"bcf": "BCF", "bgzf": "VCF"}
        return [HtsObject(object_id, kind, fmt.get(r.file_format, "PLAIN"), _local(r.source_uri), r.center_id)
                for r in rows]
    rows = (read_table(spark, settings, "silver.alignment_qc")
            .where(F.col("source_checksum") == object_id)
            .select("alignment_uri", "index_uri", "center_id", "format", "size_bytes").limit(50).collect())
    return [HtsObject(object_id, kind, r.format, _local(r.alignment_uri), r.center_id,
                      _local(r.index_uri) if r.index_uri else None, r.size_bytes) for r in rows]


def _local(uri: str) -> str:
    return uri[len("file://"):] if uri.startswith("file://") else uri


# --- what a ticket is cut from -------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """An object's file as htsget cuts it. Offsets are virtual for BGZF and bytes for CRAM."""

    format: str
    path: str
    index: BinIndex | CramIndex
    header_end: int
    data_end: int
    eof: bytes
    tids: dict[str, int]  # reference name -> the index's reference number
    contigs: frozenset[str]  # every reference name the header or the index knows

    @property
    def shift(self) -> int:
        return 0 if self.format == "CRAM" else 16

    def resolve(self, name: str) -> str | None:
        """The file's own name for a reference: as given, else by the lake's convention
        (``1`` finds ``chr1``, ``chrM`` finds ``MT``) when exactly one matches."""
        if name in self.contigs:
            return name
        want = normalise_contig(name)
        hits = [c for c in self.contigs if normalise_contig(c) == want]
        return hits[0] if len(hits) == 1 else None

    def body(self, reference: str | None, start: int | None, end: int | None) -> list[tuple[int, int]]:
        if reference is None:
            return [(self.header_end, self.data_end)] if self.header_end < self.data_end else []
        if reference == "*":  # unplaced unmapped reads, after every placed record
            if isinstance(self.index, CramIndex):
                return self.index.ranges(lambda ref, s, e: ref == -1, self.data_end)
            if self.index.n_no_coor == 0:
                return []
            begin = max(self.header_end, self.index.placed_end())
            return [(begin, self.data_end)] if begin < self.data_end else []
        tid = self.tids.get(reference)
        if tid is None:  # in the header, never in the index: no records
            return []
        beg, stop = start or 0, MAX_POS if end is None else end
        if isinstance(self.index, CramIndex):
            return self.index.ranges(lambda ref, s, e: ref == tid and s < stop and beg < e, self.data_end)
        return self.index.chunks(tid, beg, stop)

    def block_starts(self) -> list[int]:
        if isinstance(self.index, CramIndex):
            return self.index.containers
        return self.index.block_starts


def index_of(obj: HtsObject) -> str:
    """The object's index file, or NotFound saying what to do."""
    if obj.format == "PLAIN":
        raise HtsgetError("NotFound", f"object {obj.id} is an uncompressed VCF, which cannot be cut by "
                                      "region; send it bgzipped with a .tbi/.csi index")
    candidates = {"VCF": (".tbi", ".csi"), "BCF": (".csi",), "BAM": (".bai", ".csi"), "CRAM": (".crai",)}
    suffixes = candidates[obj.format]
    found = [obj.index] if obj.index and obj.index.endswith(suffixes) else []
    found += [obj.path + s for s in suffixes]
    if obj.format == "BAM":
        found.append(obj.path[: -len(".bam")] + ".bai" if obj.path.endswith(".bam") else obj.path + ".bai")
    for cand in found:
        if os.path.isfile(cand):
            if os.path.getmtime(cand) + 1 < os.path.getmtime(obj.path):
                raise HtsgetError("NotFound", f"object {obj.id}: its index is older than the file; the "
                                              "center must re-index it")
            return cand
    kinds = "/".join(suffixes)
    raise HtsgetError("NotFound", f"object {obj.id} ({obj.format}) has no index ({kinds}) next to its file; "
                                  "the center must index it (tabix/bcftools index/samtools index)")


def layout_of(obj: HtsObject) -> Layout:
    if not os.path.isfile(obj.path):
        raise HtsgetError("NotFound", f"object {obj.id} ({obj.format} of {obj.center_id}): the file it was "
                                      "ingested from is no longer where it was read")
    st = os.stat(obj.path)
    if obj.size is not None and st.st_size != obj.size:
        raise HtsgetError("NotFound", f"object {obj.id}: the file at its location changed since it was "
                                      "ingested (size differs)")
    index = index_of(obj)
    ist = os.stat(index)
    try:
        return _layout(obj.format, obj.path, st.st_mtime_ns, st.st_size, index, ist.st_mtime_ns)
    except SliceError as exc:
        raise HtsgetError("NotFound", f"object {obj.id}: {exc}") from None
    except (OSError, ValueError) as exc:
        raise HtsgetError("NotFound", f"object {obj.id}: the file cannot be read ({exc})") from None


@lru_cache(maxsize=64)
def _layout(fmt: str, path: str, mtime_ns: int, size: int, index: str, index_mtime_ns: int) -> Layout:
    import pysam

    if fmt in ("VCF", "BCF"):
        idx = load_bin_index(index)
        with pysam.VariantFile(path) as vf:
            header_end = vf.tell()
            header = {name: c.id for name, c in vf.header.contigs.items()}
        tids = {n: i for i, n in enumerate(idx.names)} if idx.names is not None else header
        return Layout(fmt, path, idx, header_end, bgzf_data_end(path) << 16, BGZF_EOF, tids,
                      frozenset(header) | frozenset(tids))
    with pysam.AlignmentFile(path, "rc" if fmt == "CRAM" else "rb") as af:
        names = list(af.references)
        header_end = af.tell()
    tids = {n: i for i, n in enumerate(names)}
    if fmt == "CRAM":
        crai = load_crai(index)
        eof = cram_eof(path)
        data_end = size - len(eof)
        starts = crai.containers
        return Layout(fmt, path, crai, starts[0] if starts else data_end, data_end, eof, tids,
                      frozenset(names))
    return Layout(fmt, path, load_bin_index(index), header_end, bgzf_data_end(path) << 16, BGZF_EOF, tids,
                  frozenset(names))


# --- the request -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TicketRequest:
    format: str | None  # None: as the object is stored (the ticket's format says which)
    header_only: bool
    reference: str | None
    start: int | None
    end: int | None

    def describe(self) -> str | None:
        if self.reference is None:
            return None
        if self.start is None and self.end is None:
            return self.reference
        return f"{self.reference}:{self.start or 0}-{'' if self.end is None else self.end}"


def parse_request(kind: str, q) -> TicketRequest:
    fmt = q.get("format").upper() if q.get("format") else None
    if fmt is not None and fmt not in FORMATS[kind]:
        raise HtsgetError("UnsupportedFormat", f"format {q.get('format')!r}: {kind} are served as "
                                               f"{' or '.join(FORMATS[kind])}")
    cls = q.get("class")
    if cls not in (None, "header"):
        raise HtsgetError("InvalidInput", f"class {cls!r}: the only class is 'header'")
    others = [k for k in ("referenceName", "start", "end", "fields", "tags", "notags") if k in q]
    if cls == "header" and others:
        raise HtsgetError("InvalidInput", f"class=header takes no other parameter than format (got "
                                          f"{', '.join(others)})")
    tags, notags = q.get("tags"), q.get("notags")
    if tags and notags and set(tags.split(",")) & set(notags.split(",")):
        raise HtsgetError("InvalidInput", "tags and notags name the same tag")
    reference = q.get("referenceName")
    if reference == "":
        raise HtsgetError("InvalidInput", "referenceName is empty")
    start, end = _position(q, "start"), _position(q, "end")
    if (start is not None or end is not None) and reference in (None, "*"):
        raise HtsgetError("InvalidInput", "start and end need a referenceName (other than '*')")
    if reference == "*" and kind == "variants":
        raise HtsgetError("InvalidInput", "referenceName '*' (unplaced reads) is for reads only")
    if start is not None and end is not None and start > end:
        raise HtsgetError("InvalidRange", f"start {start} is after end {end}")
    return TicketRequest(fmt, cls == "header", reference, start, end)


def _position(q, name: str) -> int | None:
    raw = q.get(name)
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit() or int(raw) > MAX_POS:
        raise HtsgetError("InvalidInput", f"{name} {raw!r} is not a non-negative integer")
    return int(raw)


def _data_uri(data: bytes) -> str:
    return "data:application/octet-stream;base64," + base64.b64encode(data).decode()


# --- the service ---------------------------------------------------------------------------------


class HtsgetService:
    """What the htsget routes do, sharing the API's engine (token checks, lookups, audit): a
    ticket for an object, and one data block of a ticket. Every answer and refusal is audited."""

    def __init__(self, engine: Engine, settings: Settings, block_bytes: int | None = None):
        self.engine, self.settings = engine, settings
        self.limit = block_bytes or int(os.environ.get("OMICSLAKE_HTSGET_BLOCK_BYTES", 512 * 2**20))
        self.objects = TtlCache(CACHE_S)

    def authenticate(self, request: Request, authorization: str | None) -> Principal:
        try:
            return self.engine.login(request, authorization)
        except AuthError:
            raise HtsgetError("InvalidAuthentication", "invalid or missing bearer token") from None

    def lookup(self, kind: str, object_id: str) -> list[HtsObject]:
        found = self.objects.get((kind, object_id))
        if found is None:
            found = self.engine.call(find_objects, kind, object_id) if SHA256.match(object_id) else []
            if found:  # a miss is not kept: a file ingested a moment ago is found at once
                self.objects.put((kind, object_id), found)
        return found

    def visible(self, who: Principal, kind: str, object_id: str) -> HtsObject:
        """The object as ``who`` may read it: of a center in its subtree, and not to uploaders."""
        found = self.lookup(kind, object_id)
        if not found:
            raise HtsgetError("NotFound", f"no {kind} object {object_id!r}; ids are the sha256 of an "
                                          "ingested file (its source_checksum)")
        try:
            mine = registry(self.settings).visible_centers(who.center_id)
        except RegistryError:  # the center left the registry while its token was cached
            raise HtsgetError("PermissionDenied", f"{who}: center not in the registry") from None
        ok = [o for o in found if o.center_id in mine]
        if not ok:
            raise HtsgetError("PermissionDenied", f"{who} cannot read data of {found[0].center_id}")
        if who.role == "uploader":
            raise HtsgetError("PermissionDenied", f"{who}: uploaders cannot read data; ask for an analyst "
                                                  "token")
        return ok[0]

    def refused(self, request: Request, who: Principal | None, object_id: str, exc: HtsgetError,
                details: dict, obj: HtsObject | None) -> JSONResponse:
        if who is not None:  # a failed login is audited as such
            self.engine.audit.add("htsget", object_id, {**details, "reason": exc.message, "error": exc.error},
                                  center_id=obj.center_id if obj else who.center_id, principal=str(who),
                                  outcome="refused", client=client_address(request))
        return exc.response()

    def audited(self, request: Request, who: Principal, obj: HtsObject, details: dict) -> None:
        self.engine.audit.add("htsget", obj.id, details, center_id=obj.center_id, principal=str(who),
                              client=client_address(request))

    # --- tickets ---

    def ticket(self, kind: str, object_id: str, request: Request, authorization: str | None) -> Response:
        """The ticket for ``object_id`` (the query parameters are read from the request)."""
        who = obj = None
        details: dict = {"request": "ticket", "kind": kind}
        try:
            who = self.authenticate(request, authorization)
            req = parse_request(kind, request.query_params)
            details.update(format=req.format, region=req.describe(), header_only=req.header_only)
            obj = self.visible(who, kind, object_id)
            details["format"] = _stored_format(obj, req)
            layout = layout_of(obj)
            body = [] if req.header_only else self.body_blocks(layout, req, object_id)
        except HtsgetError as exc:
            return self.refused(request, who, object_id, exc, details, obj)
        urls = _ticket_urls(request, kind, object_id, layout, body)
        self.audited(request, who, obj, {**details, "urls": len(urls)})
        return JSONResponse({"htsget": {"format": obj.format, "urls": urls}}, media_type=TICKET_TYPE)

    def body_blocks(self, layout: Layout, req: TicketRequest, object_id: str) -> list[tuple[int, int]]:
        """The (start, end) offsets of the body blocks of the requested region, each at most
        ``limit`` bytes of the file where the index offers a cut."""
        reference = req.reference
        if reference not in (None, "*"):
            reference = layout.resolve(reference)
            if reference is None:
                raise HtsgetError("NotFound", f"reference {req.reference!r} is not in object {object_id}")
        return split(layout.body(reference, req.start, req.end), layout.block_starts(), self.limit,
                     layout.shift)

    # --- data blocks ---

    def data(self, kind: str, object_id: str, request: Request, authorization: str | None,
             cls: str | None, start: str | None, end: str | None) -> Response:
        """One data block of a ticket, streamed from the file."""
        who = obj = None
        details: dict = {"request": "data", "kind": kind, "class": cls, "start": start, "end": end}
        try:
            who = self.authenticate(request, authorization)
            begin, stop = _data_range(kind, cls, request.query_params)
            obj = self.visible(who, kind, object_id)
            piece = _slice(obj, begin, stop)
        except HtsgetError as exc:
            return self.refused(request, who, object_id, exc, details, obj)
        self.audited(request, who, obj, {**details, "bytes": piece.size})
        return StreamingResponse(piece.stream(), media_type="application/octet-stream",
                                 headers={"Content-Length": str(piece.size), "Cache-Control": "no-store"})


def _stored_format(obj: HtsObject, req: TicketRequest) -> str:
    """The object's format; asking for another is ``UnsupportedFormat`` (nothing is transcoded)."""
    stored = "VCF" if obj.format == "PLAIN" else obj.format
    if req.format not in (None, stored):
        raise HtsgetError("UnsupportedFormat", f"object {obj.id} is stored as {stored}; this "
                                               f"server does not convert it to {req.format}")
    return stored


def _ticket_urls(request: Request, kind: str, object_id: str, layout: Layout,
                 body: list[tuple[int, int]]) -> list[dict]:
    """The header block, the body blocks (back at this API, with the caller's Authorization
    header) and the EOF marker inline."""
    base = str(request.url_for("htsget_data", kind=kind, object_id=object_id))
    auth = {"Authorization": request.headers["authorization"]}

    def url(cls: str, start: int, end: int) -> dict:
        return {"url": f"{base}?{urlencode({'class': cls, 'start': start, 'end': end})}",
                "headers": auth, "class": cls}

    urls = [url("header", 0, layout.header_end), *(url("body", u, v) for u, v in body)]
    urls.append({"url": _data_uri(layout.eof), "class": "body"})
    return urls


def _data_range(kind: str, cls: str | None, q) -> tuple[int, int]:
    """The checked (start, end) of a data block request."""
    if kind not in FORMATS:
        raise HtsgetError("NotFound", f"no data kind {kind!r}")
    if cls not in ("header", "body"):
        raise HtsgetError("InvalidInput", "class must be header or body")
    begin, stop = _position(q, "start"), _position(q, "end")
    if begin is None or stop is None:
        raise HtsgetError("InvalidInput", "start and end are required")
    if begin > stop:
        raise HtsgetError("InvalidRange", f"start {begin} is after end {stop}")
    return begin, stop


def _slice(obj: HtsObject, begin: int, stop: int):
    """The bytes of ``obj`` between two offsets (virtual for BGZF, plain for CRAM)."""
    if not os.path.isfile(obj.path):
        raise HtsgetError("NotFound", f"object {obj.id}: the file it was ingested from is gone")
    try:
        if obj.format == "CRAM":
            return byte_slice(obj.path, begin, stop)
        return bgzf_slice(obj.path, begin, stop)
    except SliceError as exc:
        raise HtsgetError("InvalidRange", f"object {obj.id}: {exc}") from None


# --- the router --------------------------------------------------------------------------------


def htsget_router(engine: Engine, settings: Settings, block_bytes: int | None = None) -> APIRouter:
    """The htsget routes, sharing the API's engine (token checks, lookups, audit). The ticket
    routes declare the htsget query parameters for the OpenAPI document; the service reads and
    checks them from the request."""
    service = HtsgetService(engine, settings, block_bytes)
    router = APIRouter(prefix="/htsget", tags=["htsget"])

    @router.get("/reads/service-info", summary="htsget service-info (reads)")
    def reads_info(request: Request) -> dict:
        return _service_info("reads", str(request.base_url))

    @router.get("/variants/service-info", summary="htsget service-info (variants)")
    def variants_info(request: Request) -> dict:
        return _service_info("variants", str(request.base_url))

    @router.get("/reads/{object_id}", summary="htsget ticket for an ingested BAM/CRAM (id = its sha256)",
                response_model=None)
    def reads(object_id: str, request: Request, authorization: str | None = Header(None),
              format: str | None = Query(None), referenceName: str | None = Query(None),
              start: str | None = Query(None), end: str | None = Query(None),
              cls: str | None = Query(None, alias="class")) -> Response:
        return service.ticket("reads", object_id, request, authorization)

    @router.get("/variants/{object_id}", summary="htsget ticket for an ingested VCF/BCF (id = its sha256)",
                response_model=None)
    def variants(object_id: str, request: Request, authorization: str | None = Header(None),
                 format: str | None = Query(None), referenceName: str | None = Query(None),
                 start: str | None = Query(None), end: str | None = Query(None),
                 cls: str | None = Query(None, alias="class")) -> Response:
        return service.ticket("variants", object_id, request, authorization)

    @router.get("/data/{kind}/{object_id}", name="htsget_data", response_model=None,
                summary="one data block of a ticket (virtual offsets for BGZF files, bytes for CRAM)")
    def data(kind: str, object_id: str, request: Request, authorization: str | None = Header(None),
             start: str | None = Query(None), end: str | None = Query(None),
             cls: str | None = Query(None, alias="class")) -> Response:
        return service.data(kind, object_id, request, authorization, cls, start, end)

    return router


def _service_info(kind: str, base_url: str) -> dict:
    return {
        "id": f"omicslake.htsget.{kind}", "name": f"omicslake htsget {kind}", "version": "1.0",
        "organization": {"name": "omicslake", "url": base_url},
        "type": {"group": "org.ga4gh", "artifact": "htsget", "version": HTSGET_VERSION},
        "htsget": {"datatype": kind, "formats": list(FORMATS[kind]),
                   "fieldsParameterEffective": False, "tagsParametersEffective": False},
    }
