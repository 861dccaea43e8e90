"""Resumable uploads on disk: tus state, checksum on completion, atomic landing, receipts.

An upload grows in ``STATE/uploads/partial/<id>.part`` (with ``<id>.json`` describing it), so a
DAG never sees a partial file. When the last byte arrives its sha256 is checked against the
one the client declared, and the file is moved (one rename on the same filesystem) to
``STATE/landing/<feed>/<center>/<date>/<filename>``, the layout the listeners and the DAGs
already use, and a receipt is written. Nothing here speaks HTTP (``connectors/upload_api.py``
does).
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from omicslake.checksums import sha256_file

FEEDS = ("vcf", "bam", "dicom", "hl7", "fhir", "manifest")
DAG_OF_FEED = {"vcf": "omicslake_genomics", "bam": "omicslake_genomics", "manifest": "omicslake_genomics",
               "hl7": "omicslake_clinical", "fhir": "omicslake_clinical", "dicom": "omicslake_imaging"}
FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,199}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
DEFAULT_MAX_BYTES = 64 * 2**30
CHUNK = 1 << 20


class UploadError(Exception):
    """A refused upload step; ``status`` is the HTTP status that says why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class Upload:
    upload_id: str
    center_id: str
    feed: str
    filename: str
    length: int
    sha256: str
    principal: str
    created_at: str


@dataclass
class Receipt:
    receipt_id: str
    upload_id: str
    center_id: str
    feed: str
    filename: str
    sha256: str
    size: int
    path: str
    principal: str
    received_at: str
    dag_id: str
    dag_run_id: str | None = None
    note: str | None = None  # why no DAG run was started, or what the run waits for


def check_new(center_id: str, feed: str, filename: str, length: int, sha256: str, max_bytes: int) -> None:
    """Refuse a bad creation request before any byte is accepted."""
    if feed not in FEEDS:
        raise UploadError(400, f"unknown feed {feed!r}: one of {', '.join(FEEDS)}")
    if not FILENAME.match(filename or "") or ".." in filename:
        raise UploadError(400, f"filename {filename!r}: 1-200 letters, digits, '.', '_', '+', '-', "
                               "no folders")
    if not SHA256.match(sha256 or ""):
        raise UploadError(400, "sha256: the file's SHA-256 as 64 lowercase hex digits is required")
    if length < 0:
        raise UploadError(400, "Upload-Length must be a non-negative integer")
    if length > max_bytes:
        raise UploadError(413, f"Upload-Length {length} is over the maximum of {max_bytes} bytes")


class UploadStore:
    """Uploads under ``state_dir``. Not thread-safe per upload: the API serialises the requests
    of one upload (its offset check, write and completion)."""

    def __init__(self, state_dir: Path, landing_dir: Path, max_bytes: int = DEFAULT_MAX_BYTES):
        self.partial = state_dir / "uploads" / "partial"
        self.receipts = state_dir / "uploads" / "receipts"
        self.landing = landing_dir
        self.max_bytes = max_bytes
        for d in (self.partial, self.receipts, self.landing):
            d.mkdir(parents=True, exist_ok=True)

    def _part(self, upload_id: str) -> Path:
        return self.partial / f"{upload_id}.part"

    def create(self, center_id: str, feed: str, filename: str, length: int, sha256: str,
               principal: str) -> Upload:
        check_new(center_id, feed, filename, length, sha256, self.max_bytes)
        upload = Upload(secrets.token_hex(16), center_id, feed, filename, length, sha256, principal,
                        datetime.now(UTC).isoformat(timespec="seconds"))
        self._part(upload.upload_id).touch()
        _write_json(self.partial / f"{upload.upload_id}.json", asdict(upload))
        return upload

    def get(self, upload_id: str) -> Upload:
        meta = self.partial / f"{upload_id}.json"
        if not UPLOAD_ID.match(upload_id) or not meta.exists():
            raise UploadError(404, f"no upload {upload_id!r} (finished, terminated or never created)")
        return Upload(**json.loads(meta.read_text()))

    def offset(self, upload_id: str) -> int:
        self.get(upload_id)
        return self._part(upload_id).stat().st_size

    def open_at(self, upload_id: str, offset: int, declared: int | None) -> tuple[Path, int]:
        """The partial file to append to and the bytes it still takes, once ``offset`` is checked
        against what arrived (the caller holds the upload's lock while it writes)."""
        upload = self.get(upload_id)
        part = self._part(upload_id)
        current = part.stat().st_size
        if offset != current:
            raise UploadError(409, f"Upload-Offset {offset} does not match the {current} bytes received")
        room = upload.length - current
        if declared is not None and declared > room:
            raise UploadError(413, f"{declared} bytes would pass Upload-Length {upload.length}")
        return part, room

    def complete(self, upload_id: str) -> Receipt:
        """Check the sha256 and land the file atomically; a mismatch removes it (422)."""
        upload = self.get(upload_id)
        part = self._part(upload_id)
        digest = sha256_file(part, 8 * CHUNK)
        if digest != upload.sha256:
            self._remove(upload_id)
            raise UploadError(422, f"sha256 mismatch: declared {upload.sha256}, received {digest}; "
                                   "nothing landed, upload again")
        now = datetime.now(UTC)
        folder = self.landing / upload.feed / upload.center_id / now.strftime("%Y-%m-%d")
        folder.mkdir(parents=True, exist_ok=True)
        target = _free_name(folder, upload.filename, upload.upload_id)
        os.replace(part, target)
        _fsync_dir(folder)
        receipt = Receipt(f"r-{upload.upload_id}", upload.upload_id, upload.center_id, upload.feed,
                          upload.filename, digest, target.stat().st_size, str(target), upload.principal,
                          now.isoformat(timespec="seconds"), DAG_OF_FEED[upload.feed])
        self.save_receipt(receipt)
        (self.partial / f"{upload_id}.json").unlink()
        return receipt

    def terminate(self, upload_id: str) -> None:
        self.get(upload_id)
        self._remove(upload_id)

    def _remove(self, upload_id: str) -> None:
        for suffix in (".part", ".json"):
            (self.partial / f"{upload_id}{suffix}").unlink(missing_ok=True)

    def save_receipt(self, receipt: Receipt) -> None:
        _write_json(self.receipts / f"{receipt.receipt_id}.json", asdict(receipt))

    def receipt(self, receipt_id: str) -> Receipt:
        path = self.receipts / f"{receipt_id}.json"
        if not re.match(r"^r-[0-9a-f]{32}$", receipt_id) or not path.exists():
            raise UploadError(404, f"no receipt {receipt_id!r}")
        return Receipt(**json.loads(path.read_text()))


def _free_name(folder: Path, filename: str, upload_id: str) -> Path:
    """The filename, or ``<id8>-filename`` when the same name already landed today."""
    target = folder / filename
    return target if not target.exists() else folder / f"{upload_id[:8]}-{filename}"


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, sort_keys=True))
    os.replace(tmp, path)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
