"""DICOM Part 10 files: find them (files, folders, zip archives) and read their headers.

Headers are read with pydicom, pixel data sliced from the buffer and never decoded, so a large
multi-frame or compressed instance costs no more than its header. The full header is kept as
DICOM JSON (PS3.18 F.2) with binary values replaced by their length.

Reading is as lenient as pydicom's default (``reading_validation_mode`` WARN): a value that
breaks its VR's rules (an IS of ``1A``) is kept as sent, the typed columns derived from it are
NULL, and in the DICOM JSON the attribute is present without a value. Only what pydicom itself
cannot parse is rejected, with ``DicomError``.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels.utils import get_expected_length
from pydicom.uid import UID

SUFFIXES = (".dcm", ".DCM", ".dicom", ".zip", ".ZIP", ".ima", ".IMA")
ARCHIVE_SEP = "!/"  # archive.zip!/member.dcm, as in jar: URIs


class DicomError(ValueError):
    """A file that is not a readable DICOM instance."""


INT32_MAX = 2**31 - 1


@dataclass
class Source:
    uri: str  # a path, or archive.zip!/member
    data: bytes
    error: str | None = None  # why the bytes could not be had (unreadable file, bad zip member)


def iter_sources(path: str) -> Iterator[Source]:
    """The instances in a file: itself, or each member of a zip archive (folders skipped).

    A file or member that cannot be read comes back with ``error`` set, so one bad member
    does not hide the rest of its archive.
    """
    try:
        is_zip = zipfile.is_zipfile(path)
        if not is_zip:
            data = Path(path).read_bytes()
    except OSError as exc:
        yield Source(path, b"", f"cannot read: {exc}")
        return
    if not is_zip:
        yield Source(path, data)
        return
    try:
        zf = zipfile.ZipFile(path)
    except Exception as exc:  # zipfile raises BadZipFile, ValueError, OSError, EOFError ...
        yield Source(path, b"", f"not a readable zip archive: {type(exc).__name__}: {exc}")
        return
    with zf:
        for info in zf.infolist():
            if info.is_dir() or Path(info.filename).name.startswith("."):
                continue
            uri = f"{path}{ARCHIVE_SEP}{info.filename}"
            try:
                data = zf.read(info)
            except Exception as exc:  # CRC mismatch, encrypted, unknown compression, cut-off
                yield Source(uri, b"", f"cannot extract zip member: {type(exc).__name__}: {exc}")
                continue
            yield Source(uri, data)


def read_dataset(data: bytes) -> pydicom.Dataset:
    """The dataset in ``data``, checked to be whole; DicomError says why it cannot be read.

    The pixel data is sliced from the buffer, not decoded, so this stays cheap for large
    instances; a cut-off file is caught by the pixel data being shorter than its header says.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = pydicom.dcmread(io.BytesIO(data))
            pixels = ds.get("PixelData")
        except InvalidDicomError as exc:
            raise DicomError(f"not a DICOM file: {exc}") from exc
        except Exception as exc:  # whatever pydicom cannot parse is corrupt, whichever way it fails
            raise DicomError(f"truncated or corrupt DICOM: {type(exc).__name__}: {exc}") from exc
        _decode_public(ds)
    cut = [str(w.message) for w in caught if "End of file" in str(w.message) or "truncated" in str(w.message)]
    if cut:
        raise DicomError(f"truncated DICOM: {cut[0]}")
    for raw in list(ds._dict.values()):
        if (
            isinstance(raw, RawDataElement)
            and raw.length != 0xFFFFFFFF
            and len(raw.value or b"") < raw.length
        ):
            raise DicomError(
                f"truncated DICOM: element {raw.tag} has {len(raw.value or b'')} of {raw.length} bytes"
            )
    for attr in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
        if not _text(_tag_value(ds, attr)):
            raise DicomError(f"{attr} is missing")
    encapsulated = _encapsulated(ds)
    if pixels is not None and not encapsulated:
        expected = _pixel_bytes(ds)
        if len(pixels) < expected:
            raise DicomError(f"truncated DICOM: pixel data has {len(pixels)} of {expected} bytes")
    if pixels is not None and encapsulated and not bytes(pixels[:4]) == b"\xfe\xff\x00\xe0":
        raise DicomError("pixel data is not encapsulated although the transfer syntax is compressed")
    return ds


def _decode_public(ds: pydicom.Dataset) -> None:
    """Decode every public element now, so one pydicom cannot decode is named here.

    pydicom decodes lazily; an element it cannot decode at all (an unknown VR, a binary value
    whose length is not a multiple of its size) would otherwise fail later, in the mapping.
    Private elements stay raw: de-identification removes them without decoding.
    """
    for tag in list(ds.keys()):
        if tag.is_private:
            continue
        try:
            elem = ds[tag]
            items = list(elem.value or []) if elem.VR == "SQ" else []
        except Exception as exc:
            raise DicomError(f"corrupt DICOM: element {tag} cannot be decoded: {type(exc).__name__}: "
                             f"{exc}") from exc
        for item in items:
            _decode_public(item)


def _pixel_bytes(ds: pydicom.Dataset) -> int:
    """Native pixel data length the header implies, as pydicom computes it (YBR_FULL_422, 1-bit);
    if an attribute it needs is invalid (NumberOfFrames ``1A``), a lenient estimate at defaults."""
    try:
        return int(get_expected_length(ds, "bytes"))
    except Exception:
        pass

    def count(keyword: str, default: int) -> int:
        value = _int(_tag_value(ds, keyword))
        return value if value is not None and value >= 0 else default

    return (
        count("Rows", 0) * count("Columns", 0) * count("SamplesPerPixel", 1)
        * count("BitsAllocated", 8) // 8 * count("NumberOfFrames", 1)
    )


def _tag_value(ds: pydicom.Dataset, keyword: str):
    """The attribute's value as pydicom converts it, or None if pydicom cannot convert it."""
    try:
        return ds.get(keyword)
    except Exception:  # a value pydicom itself cannot decode (e.g. an odd-length US)
        return None


def _encapsulated(ds: pydicom.Dataset) -> bool:
    """Whether the transfer syntax compresses the pixels; one that is not a transfer syntax is corrupt."""
    meta = getattr(ds, "file_meta", None)
    try:
        text = _text(meta.get("TransferSyntaxUID")) if meta else None
    except Exception as exc:
        raise DicomError(f"corrupt DICOM: the Transfer Syntax UID cannot be decoded: {exc}") from exc
    if not text:
        return False
    ts = UID(text)
    if not (ts.is_private or ts.is_transfer_syntax):
        raise DicomError(f"corrupt DICOM: Transfer Syntax UID {text!r} is not a transfer syntax")
    return not ts.is_private and ts.is_encapsulated


def header_json(ds: pydicom.Dataset) -> str:
    """DICOM JSON of the header; bulk binary values become their byte count.

    An attribute whose value does not fit its VR's JSON type (an IS of ``1A``) is kept present
    without a value, as pydicom's ``suppress_invalid_tags`` would drop it, rather than losing the
    instance or the rest of the header.
    """
    return json.dumps(_json_dict(ds), separators=(",", ":"))


def _bulk(elem) -> str:
    return f"{len(elem.value or b'')} bytes"


def _json_dict(ds: pydicom.Dataset) -> dict:
    out = {}
    for tag in list(ds.keys()):
        key = f"{tag:08X}"
        try:
            elem = ds[tag]
        except Exception:  # a private element pydicom cannot decode: unknown, without a value
            out[key] = {"vr": "UN"}
            continue
        if elem.VR == "SQ":
            items = [_json_dict(item) for item in (elem.value or [])]
            out[key] = {"vr": "SQ", **({"Value": items} if items else {})}
            continue
        try:
            out[key] = elem.to_json_dict(bulk_data_element_handler=_bulk, bulk_data_threshold=256)
            json.dumps(out[key])
        except Exception:
            out[key] = {"vr": str(elem.VR)}
    return out


def key_tags(ds: pydicom.Dataset) -> dict:
    """The typed columns: text as sent (multiple values joined by ``\\``), numbers or NULL."""
    meta = getattr(ds, "file_meta", None)
    frames = _tag_value(ds, "NumberOfFrames")
    text = {
        "sop_instance_uid": "SOPInstanceUID", "study_instance_uid": "StudyInstanceUID",
        "series_instance_uid": "SeriesInstanceUID", "sop_class_uid": "SOPClassUID",
        "modality": "Modality", "body_part": "BodyPartExamined", "study_date": "StudyDate",
        "series_date": "SeriesDate", "acquisition_date": "AcquisitionDate", "patient_id": "PatientID",
        "issuer_of_patient_id": "IssuerOfPatientID",
    }
    numbers = {"series_number": "SeriesNumber", "instance_number": "InstanceNumber", "rows": "Rows",
               "columns": "Columns"}
    return {
        **{k: _text(_tag_value(ds, kw)) for k, kw in text.items()},
        **{k: _int(_tag_value(ds, kw)) for k, kw in numbers.items()},
        "number_of_frames": _int(frames) if frames not in (None, "") else (1 if "Rows" in ds else None),
        "transfer_syntax": _text(_tag_value(meta, "TransferSyntaxUID")) if meta else None,
    }


def _text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, MultiValue | list | tuple):
        value = "\\".join(str(v) for v in value)
    return str(value).replace("\x00", "").strip() or None


def _int(value) -> int | None:
    """An IS/US value as an int column; invalid, multi-valued or out of 32-bit range is NULL."""
    try:
        n = int(value) if value not in (None, "") else None
    except (TypeError, ValueError, OverflowError):
        return None
    return n if n is None or -INT32_MAX - 1 <= n <= INT32_MAX else None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
