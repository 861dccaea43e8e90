"""The center side of the upload API: resumable tus 1.0 uploads over httpx, and receipts.

``omicslake upload --center C --feed F FILES...`` (``omicslake/cli.py``) is a thin wrapper
around :func:`upload_files`. For each file the client

1. computes its sha256 (streamed, 1 MiB at a time),
2. looks in a small state file for an upload of the same file that a previous run left
   unfinished (keyed by API address, center, feed, absolute path, size, mtime and sha256)
   and asks ``HEAD`` how much of it the server has; otherwise it creates one
   (``POST /uploads``) and notes its URL in the state file,
3. sends the rest in chunks (``PATCH``, 8 MiB by default, each streamed from disk), and
4. on a network error, a timeout, 408, 429 or a 5xx waits (exponential backoff with jitter),
   asks ``HEAD`` for the server's offset and goes on from there, so no byte the server holds
   is sent twice; a 409 (offset conflict) re-syncs the same way. Any other 4xx stops that
   file with the server's message.

The last PATCH answers with ``Omicslake-Receipt``. When that answer is lost (the connection
drops while the server checks the sha256), ``HEAD`` says 404 and the client finds the receipt
at ``GET /receipts/r-<upload id>``, so a finished upload is never sent again either.

httpx is used directly rather than tuspy: tuspy retries every non-2xx alike (a 403 or 400 is
retried as if it were a 502) with a fixed delay, its Uploader reads each chunk into memory,
it exposes no per-byte progress or the headers of the last PATCH (where the receipt is),
and it pulls in requests, aiohttp and tinydb; the protocol subset needed here is four
requests.

The bearer token (``OMICSLAKE_TOKEN``) only ever goes into the ``Authorization`` header: it
is never logged, printed or written to the state file.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

import httpx

from omicslake.errors import OmicslakeError

TUS_VERSION = "1.0.0"
MiB = 1 << 20
DEFAULT_CHUNK = 8 * MiB
PIECE = 1 * MiB  # how much of a chunk is read from disk and handed to the socket at a time
DEFAULT_RETRIES = 8
RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})
HASH_RATE = 100 * MiB  # bytes/s the server is assumed to hash at least, for the last PATCH's timeout
STATE_ENV = "OMICSLAKE_UPLOAD_STATE"


class UploadFailed(OmicslakeError):
    """One file's upload stopped; ``status`` is the HTTP status when the server refused it."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class Cancelled(Exception):
    """The user interrupted the run; what the server has is kept for the next one."""


# --- settings ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    api: str
    token: str = field(repr=False)

    @property
    def cleartext(self) -> bool:
        """True for plain http:// to another host: the token would cross the network in clear."""
        url = urlparse(self.api)
        return url.scheme == "http" and url.hostname not in ("127.0.0.1", "localhost", "::1")


def endpoint_from_env(env: dict[str, str] | None = None) -> Endpoint:
    """The API address (OMICSLAKE_API) and bearer token (OMICSLAKE_TOKEN), or a clear error."""
    env = os.environ if env is None else env
    api = (env.get("OMICSLAKE_API") or "").strip()
    token = (env.get("OMICSLAKE_TOKEN") or "").strip()
    if not api:
        raise OmicslakeError("OMICSLAKE_API is not set: the center API's address, e.g. "
                             "https://lake.example.org or http://127.0.0.1:8750 (`omicslake api`)")
    url = urlparse(api)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise OmicslakeError(f"OMICSLAKE_API={api!r} is not an http:// or https:// address")
    if not token:
        raise OmicslakeError("OMICSLAKE_TOKEN is not set: the center's uploader token, from "
                             "`omicslake centers token issue CENTER --role uploader` (shown once)")
    return Endpoint(api.rstrip("/"), token)


def default_state_file(env: dict[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get(STATE_ENV) or Path.home() / ".omicslake-state" / "uploads.json").expanduser()


# --- the state file of unfinished uploads --------------------------------------------------


class ResumeState:
    """Unfinished uploads' URLs in one small JSON file, so a re-run after a crash resumes.

    Several client processes may share it: every read-modify-write holds an exclusive
    ``flock`` on a sidecar lock file and replaces the file atomically. Entries go when their
    upload finishes, fails for good, or turns out to be gone from the server.
    """

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()

    @staticmethod
    def key(api: str, center: str | None, feed: str, path: Path, size: int, mtime_ns: int,
            sha256: str) -> str:
        raw = "\0".join([api, center or "", feed, str(path), str(size), str(mtime_ns), sha256])
        return hashlib.sha256(raw.encode()).hexdigest()[:32]

    @contextlib.contextmanager
    def _open(self) -> Iterator[dict]:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self._lock, open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                data = json.loads(self.path.read_text()) if self.path.exists() else {}
            except (OSError, ValueError):
                data = {}  # a damaged state file only costs a restart from zero
            before = json.dumps(data, sort_keys=True)
            yield data
            if json.dumps(data, sort_keys=True) != before:
                tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as fh:
                    json.dump(data, fh, indent=1, sort_keys=True)
                os.replace(tmp, self.path)

    def get(self, key: str) -> dict | None:
        with self._open() as data:
            return data.get(key)

    def put(self, key: str, entry: dict) -> None:
        with self._open() as data:
            data[key] = entry

    def drop(self, key: str) -> None:
        with self._open() as data:
            data.pop(key, None)

    def entries(self) -> dict[str, dict]:
        with self._open() as data:
            return dict(data)


# --- progress ------------------------------------------------------------------------------


class Reporter:
    """Progress and events on stderr. This base reports nothing (library use)."""

    def begin(self, name: str, size: int) -> object:
        return None

    def stage(self, task: object, what: str, total: int, completed: int = 0) -> None:
        """``what`` is ``sha256`` (reading the file) or ``upload`` (from ``completed`` bytes on)."""

    def advance(self, task: object, n: int) -> None:
        pass

    def end(self, task: object, outcome: Outcome) -> None:
        pass

    def log(self, message: str) -> None:
        pass

    def close(self) -> None:
        pass


class PlainReporter(Reporter):
    """One line per event, for logs and pipes (stderr is not a terminal)."""

    def __init__(self, echo: Callable[[str], None]):
        self.echo = echo

    def begin(self, name: str, size: int) -> object:
        return name

    def stage(self, task: object, what: str, total: int, completed: int = 0) -> None:
        if what == "upload":
            at = f", going on from {completed} bytes the server has" if completed else ""
            self.echo(f"{task}: sending {_size(total - completed)} of {_size(total)}{at}")

    def end(self, task: object, outcome: Outcome) -> None:
        if outcome.receipt:
            self.echo(f"{task}: {outcome.receipt} after {outcome.seconds:.1f} s "
                      f"({_size(outcome.sent)} sent by this run)")

    def log(self, message: str) -> None:
        self.echo(message)


class RichReporter(Reporter):
    """rich bars on stderr: one for all the bytes, and one per file while it is under way."""

    def __init__(self, total_bytes: int, files: int):
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                 TransferSpeedColumn(), TimeRemainingColumn(), console=Console(stderr=True))
        self.overall = self.progress.add_task(f"{files} file(s)", total=total_bytes)
        self.names: dict[object, str] = {}
        self.counted: dict[object, int] = {}  # each file's share of the overall bar
        self.uploading: set[object] = set()
        self.progress.start()

    def begin(self, name: str, size: int) -> object:
        task = self.progress.add_task(f"  {name[:40]}", total=size)
        self.names[task], self.counted[task] = name[:40], 0
        return task

    def stage(self, task: object, what: str, total: int, completed: int = 0) -> None:
        label = self.names[task] if what == "upload" else f"{what} {self.names[task]}"
        self.progress.reset(task, total=total, completed=completed, description=f"  {label}")
        if what == "upload":
            self.uploading.add(task)
            self.progress.advance(self.overall, completed - self.counted[task])
            self.counted[task] = completed

    def advance(self, task: object, n: int) -> None:
        self.progress.advance(task, n)
        if task in self.uploading:
            self.progress.advance(self.overall, n)
            self.counted[task] += n

    def end(self, task: object, outcome: Outcome) -> None:
        self.progress.remove_task(task)
        if outcome.receipt:
            self.progress.advance(self.overall, outcome.size - self.counted[task])
            self.progress.console.print(f"[green]done[/] {outcome.filename}  {outcome.receipt}",
                                        highlight=False)

    def log(self, message: str) -> None:
        self.progress.console.print(message, markup=False, highlight=False)

    def close(self) -> None:
        self.progress.stop()


# --- one file ------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What became of one file; ``as_json()`` is the line ``--json`` prints."""

    path: str
    filename: str
    feed: str
    center: str | None
    size: int = 0
    sha256: str | None = None
    receipt: str | None = None
    error: str | None = None
    http_status: int | None = None
    resumed_from: int | None = None  # the server's offset of an upload a previous run left
    resumes: list[int] = field(default_factory=list)  # offsets this run went on from after errors
    sent: int = 0  # body bytes handed to the network by this run
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.receipt is not None

    def as_json(self) -> dict:
        return {"status": "ok" if self.ok else "failed", **asdict(self)}


@dataclass(frozen=True)
class LocalFile:
    path: Path
    size: int
    mtime_ns: int
    sha256: str


class UploadClient:
    """tus 1.0 uploads to the center API for one center and feed. Thread-safe: the files of
    one run share its connection pool."""

    def __init__(self, endpoint: Endpoint, feed: str, center: str | None = None, *,
                 chunk_size: int = DEFAULT_CHUNK, retries: int = DEFAULT_RETRIES, backoff: float = 0.5,
                 max_backoff: float = 30.0, timeout: float = 60.0, state: ResumeState | None = None,
                 reporter: Reporter | None = None, cancel: threading.Event | None = None):
        if chunk_size < 1:
            raise ValueError("chunk_size must be positive")
        self.endpoint, self.feed, self.center = endpoint, feed, center
        self.chunk_size, self.retries = chunk_size, retries
        self.backoff, self.max_backoff, self.timeout = backoff, max_backoff, timeout
        self.state, self.reporter = state, reporter or Reporter()
        self.cancel = cancel or threading.Event()
        self.http = httpx.Client(
            base_url=endpoint.api + "/", timeout=httpx.Timeout(timeout, connect=10.0),
            headers={"Authorization": f"Bearer {endpoint.token}", "Tus-Resumable": TUS_VERSION,
                     "User-Agent": "omicslake-upload/1.0"},
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16))

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> UploadClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- public

    def upload(self, path: str | Path) -> Outcome:
        """Upload one file; never raises for a failed upload (see ``Outcome.error``), only
        :class:`Cancelled` when the run is interrupted."""
        started = time.monotonic()
        path = Path(path).expanduser().absolute()
        out = Outcome(str(path), path.name, self.feed, self.center)
        task = None
        try:
            st = path.stat()
            if not path.is_file():
                raise UploadFailed(f"{path}: not a regular file")
            out.size = st.st_size
            task = self.reporter.begin(path.name, st.st_size)
            out.sha256 = self._sha256(path, st.st_size, task)
            self._send(LocalFile(path, st.st_size, st.st_mtime_ns, out.sha256), out, task)
        except UploadFailed as exc:
            out.error, out.http_status = str(exc), exc.status
        except OSError as exc:
            out.error = f"{path}: {exc.strerror or exc}"
        finally:
            out.seconds = round(time.monotonic() - started, 3)
            if task is not None:
                self.reporter.end(task, out)
        return out

    def receipt(self, receipt_id: str) -> dict:
        """``GET /receipts/{id}``: where an upload stands (received, ingesting, landed,
        quarantined or failed, with the ingest run's counts)."""
        resp = self._call("GET", f"receipts/{receipt_id}", what=f"receipt {receipt_id}")
        if resp.status_code != 200:
            raise UploadFailed(f"receipt {receipt_id}: {_message(resp)}", resp.status_code)
        return resp.json()

    # ---- the protocol

    def _send(self, local: LocalFile, out: Outcome, task: object) -> None:
        key = ResumeState.key(self.endpoint.api, self.center, self.feed, local.path, local.size,
                              local.mtime_ns, local.sha256)
        entry = self.state.get(key) if self.state else None
        offset = None
        if entry:
            url = entry["url"]
            offset, receipt = self._probe(url, local)
            if receipt:  # a previous run sent everything but never heard the answer
                out.resumed_from, out.receipt = local.size, receipt
                self._forget(key)
                return
            if offset is None:
                self.reporter.log(f"{local.path.name}: the server no longer has the upload a previous "
                                  "run left; starting again")
                self._forget(key)
            else:
                out.resumed_from = offset
        if offset is None:
            url, receipt = self._create(local)
            offset = 0
            if receipt:  # an empty file completes on creation
                out.receipt = receipt
                return
            if self.state:
                self.state.put(key, {"url": url, "api": self.endpoint.api, "center": self.center,
                                     "feed": self.feed, "path": str(local.path), "size": local.size,
                                     "mtime_ns": local.mtime_ns, "sha256": local.sha256,
                                     "created_at": datetime.now(UTC).isoformat(timespec="seconds")})
        try:
            out.receipt = self._patch_all(url, local, offset, out, task)
        except UploadFailed as exc:
            if exc.status is not None and exc.status not in RETRYABLE | {401}:
                self._forget(key)  # refused for good (or gone): a re-run starts afresh
            raise
        self._forget(key)

    def _forget(self, key: str) -> None:
        if self.state:
            self.state.drop(key)

    def _create(self, local: LocalFile) -> tuple[str, str | None]:
        meta = {"feed": self.feed, "filename": local.path.name, "sha256": local.sha256}
        if self.center:
            meta["center"] = self.center
        resp = self._call("POST", "uploads", what=f"{local.path.name}: create", headers={
            "Upload-Length": str(local.size), "Upload-Metadata": _metadata(meta)})
        if resp.status_code != 201 or "Location" not in resp.headers:
            raise UploadFailed(_message(resp), resp.status_code)
        url = str(httpx.URL(self.endpoint.api + "/").join(resp.headers["Location"]))
        return url, resp.headers.get("Omicslake-Receipt")

    def _patch_all(self, url: str, local: LocalFile, offset: int, out: Outcome, task: object) -> str:
        """PATCH from ``offset`` to the end; after any failure go on from the server's offset."""
        self.reporter.stage(task, "upload", local.size, offset)
        failures, waiting_since = 0, None
        while True:
            if self.cancel.is_set():
                raise Cancelled()
            if offset < local.size:
                n = min(self.chunk_size, local.size - offset)
                last = offset + n == local.size
                timeout = httpx.Timeout(self.timeout + (local.size / HASH_RATE if last else 0), connect=10.0)
                try:
                    body = self._body(local.path, offset, n, out, task)
                    resp = self.http.patch(url, content=body, timeout=timeout, headers={
                        "Upload-Offset": str(offset), "Content-Length": str(n),
                        "Content-Type": "application/offset+octet-stream"})
                except httpx.TransportError as exc:
                    problem = _describe(exc)
                else:
                    if resp.status_code == 204:
                        offset = int(resp.headers["Upload-Offset"])
                        failures = 0
                        if receipt := resp.headers.get("Omicslake-Receipt"):
                            return receipt
                        continue
                    if resp.status_code in (404, 410):
                        offset = None
                    elif resp.status_code != 409 and resp.status_code not in RETRYABLE:
                        raise UploadFailed(_message(resp), resp.status_code)
                    problem = f"HTTP {resp.status_code}: {_message(resp)}"
            else:  # every byte is there but no receipt yet: the server is checking, or its answer was lost
                waited = time.monotonic() - (waiting_since := waiting_since or time.monotonic())
                if waited > self.timeout + local.size / HASH_RATE:
                    raise UploadFailed(f"the server holds every byte but gave no receipt in {waited:.0f} s")
                self._sleep(min(2.0, 0.1 + waited / 4))
            if offset is not None and offset < local.size:
                failures += 1
                if failures > self.retries:
                    raise UploadFailed(f"gave up after {self.retries} retries: {problem}")
                delay = self._delay(failures)
                self.reporter.log(f"{local.path.name}: {problem}; asking the server where to go on "
                                  f"(retry {failures}/{self.retries} in {delay:.1f} s)")
                self._sleep(delay)
            offset, receipt = self._probe(url, local)
            if receipt:
                return receipt
            if offset is None:
                raise UploadFailed("the server no longer has this upload (terminated, or refused at "
                                   "completion); run the command again to start afresh", 404)
            out.resumes.append(offset)
            self.reporter.stage(task, "upload", local.size, offset)

    def _probe(self, url: str, local: LocalFile) -> tuple[int | None, str | None]:
        """``(offset, None)`` while the upload is open, ``(None, receipt)`` once it finished,
        ``(None, None)`` when the server no longer has it."""
        resp = self._call("HEAD", url, what=f"{local.path.name}: offset")
        if resp.status_code == 200:
            length = resp.headers.get("Upload-Length")
            if length is not None and int(length) != local.size:
                return None, None
            return int(resp.headers["Upload-Offset"]), None
        if resp.status_code in (404, 410):
            upload_id = httpx.URL(url).path.rstrip("/").rsplit("/", 1)[-1]
            got = self._call("GET", f"receipts/r-{upload_id}", what=f"{local.path.name}: receipt")
            if got.status_code == 200 and got.json().get("sha256") == local.sha256:
                return None, got.json()["receipt_id"]
            return None, None
        raise UploadFailed(_message(resp), resp.status_code)

    def _call(self, method: str, url: str, *, what: str, **kw) -> httpx.Response:
        """One request without a body to stream, retried on network errors and RETRYABLE."""
        failures = 0
        while True:
            if self.cancel.is_set():
                raise Cancelled()
            try:
                resp = self.http.request(method, url, **kw)
            except httpx.TransportError as exc:
                problem = _describe(exc)
            else:
                if resp.status_code not in RETRYABLE:
                    return resp
                problem = f"HTTP {resp.status_code}: {_message(resp)}"
            failures += 1
            if failures > self.retries:
                raise UploadFailed(f"{what}: gave up after {self.retries} retries: {problem}")
            delay = self._delay(failures)
            self.reporter.log(f"{what}: {problem} (retry {failures}/{self.retries} in {delay:.1f} s)")
            self._sleep(delay)

    def _body(self, path: Path, offset: int, n: int, out: Outcome, task: object) -> Iterator[bytes]:
        with open(path, "rb") as fh:
            fh.seek(offset)
            left = n
            while left:
                if self.cancel.is_set():
                    raise Cancelled()
                piece = fh.read(min(PIECE, left))
                if not piece:
                    raise UploadFailed(f"{path} shrank while it was being sent")
                left -= len(piece)
                out.sent += len(piece)
                self.reporter.advance(task, len(piece))
                yield piece

    def _sha256(self, path: Path, size: int, task: object) -> str:
        self.reporter.stage(task, "sha256", size)
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            while piece := fh.read(PIECE):
                if self.cancel.is_set():
                    raise Cancelled()
                h.update(piece)
                self.reporter.advance(task, len(piece))
        return h.hexdigest()

    def _delay(self, failures: int) -> float:
        return min(self.max_backoff, self.backoff * 2 ** (failures - 1)) * random.uniform(0.5, 1.0)

    def _sleep(self, seconds: float) -> None:
        if self.cancel.wait(seconds):
            raise Cancelled()


# --- many files ----------------------------------------------------------------------------


def upload_files(endpoint: Endpoint, feed: str, paths: list[str], center: str | None = None, *,
                 parallel: int = 4, chunk_size: int = DEFAULT_CHUNK, retries: int = DEFAULT_RETRIES,
                 backoff: float = 0.5, state: ResumeState | None = None, reporter: Reporter | None = None,
                 on_done: Callable[[Outcome], None] | None = None,
                 cancel: threading.Event | None = None) -> list[Outcome]:
    """Upload every file (``parallel`` at a time), trying all of them whatever fails; the
    outcomes come back in completion order (``on_done`` sees each as it finishes)."""
    cancel = cancel or threading.Event()
    outcomes: list[Outcome] = []
    client = UploadClient(endpoint, feed, center, chunk_size=chunk_size, retries=retries, backoff=backoff,
                          state=state, reporter=reporter, cancel=cancel)
    pool = ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="upload")
    try:
        futures = [pool.submit(client.upload, p) for p in paths]
        for fut in as_completed(futures):
            outcome = fut.result()
            outcomes.append(outcome)
            if on_done:
                on_done(outcome)
    except BaseException:
        # Ctrl-C: stop every file where it is (the server keeps what it has, the state file
        # where to go on) without waiting for requests in flight; the caller exits
        cancel.set()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    client.close()
    return outcomes


def describe_receipt(r: dict) -> list[str]:
    """The lines ``omicslake upload status`` prints for a receipt."""
    lines = [f"{r['receipt_id']}  {r['status']}",
             f"  file      {r['filename']} ({r['feed']}, {r['center_id']}), {_size(r['size'])}, "
             f"sha256 {r['sha256']}",
             f"  received  {r['received_at']} from {r['principal']}; DAG {r['dag_id']}"
             + (f" run {r['dag_run_id']}" if r.get("dag_run_id") else "")]
    if r.get("run_id"):
        c = r.get("counts") or {}
        lines.append(f"  ingest    {r.get('job')} run {r['run_id']}: {c.get('rows_read')} read, "
                     f"{c.get('rows_accepted')} accepted, {c.get('rows_quarantined')} quarantined, "
                     f"{c.get('rows_written')} written")
    if r.get("error"):
        lines.append(f"  error     {r['error']}")
    if r.get("note"):
        lines.append(f"  note      {r['note']}")
    return lines


# --- helpers -------------------------------------------------------------------------------


def _metadata(meta: dict[str, str]) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in meta.items())


def _message(resp: httpx.Response) -> str:
    """The server's reason: FastAPI's ``detail``, else the start of the body, else the status."""
    try:
        detail = resp.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, list):  # request validation errors
        detail = "; ".join(f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg')}" for d in detail)
    text = detail or (resp.text or "").strip()[:300] or resp.reason_phrase
    return f"{text} (HTTP {resp.status_code})"


def _describe(exc: httpx.TransportError) -> str:
    text = str(exc).splitlines()[0].rstrip(".") if str(exc) else ""
    return f"{type(exc).__name__}{': ' + text if text else ''}"


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)
