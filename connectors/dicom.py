"""DICOM Part 10 files: find them (files, folders, zip archives) and read their headers.

Headers are read with pydicom up to the pixel data (``stop_before_pixels``), so a large
multi-frame or compressed instance costs no more than its header. The full header is kept as
DICOM JSON (PS3.18 F.2) with binary values replaced by their length.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.errors import InvalidDicomError

SUFFIXES = (".dcm", ".DCM", ".dicom", ".zip", ".ZIP", ".ima", ".IMA")
ARCHIVE_SEP = "!/"  # archive.zip!/member.dcm, as in jar: URIs


class DicomError(ValueError):
    """A file that is not a readable DICOM instance."""


@dataclass
class Source:
    uri: str  # a path, or archive.zip!/member
    data: bytes


def iter_sources(path: str) -> Iterator[Source]:
    """The instances in a file: itself, or each member of a zip archive (folders skipped)."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if not info.is_dir() and not Path(info.filename).name.startswith("."):
                    yield Source(f"{path}{ARCHIVE_SEP}{info.filename}", zf.read(info))
        return
    yield Source(path, Path(path).read_bytes())


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
        except (EOFError, OSError, ValueError, KeyError, IndexError, TypeError, struct.error) as exc:
            raise DicomError(f"truncated or corrupt DICOM: {type(exc).__name__}: {exc}") from exc
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
        if not ds.get(attr):
            raise DicomError(f"{attr} is missing")
    if pixels is not None and not _encapsulated(ds):
        expected = (
            int(ds.get("Rows") or 0)
            * int(ds.get("Columns") or 0)
            * int(ds.get("SamplesPerPixel") or 1)
            * int(ds.get("BitsAllocated") or 8)
            // 8
            * int(ds.get("NumberOfFrames") or 1)
        )
        if len(pixels) < expected:
            raise DicomError(f"truncated DICOM: pixel data has {len(pixels)} of {expected} bytes")
    return ds


def _encapsulated(ds: pydicom.Dataset) -> bool:
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta else None
    return bool(ts) and ts.is_encapsulated


def header_json(ds: pydicom.Dataset) -> str:
    """DICOM JSON of the header; bulk binary values become their byte count."""

    def bulk(elem) -> str:
        return f"{len(elem.value or b'')} bytes"

    return json.dumps(
        ds.to_json_dict(bulk_data_threshold=256, bulk_data_element_handler=bulk), separators=(",", ":")
    )


def key_tags(ds: pydicom.Dataset) -> dict:
    meta = getattr(ds, "file_meta", None)
    frames = ds.get("NumberOfFrames")
    return {
        "sop_instance_uid": str(ds.SOPInstanceUID),
        "study_instance_uid": str(ds.StudyInstanceUID),
        "series_instance_uid": str(ds.SeriesInstanceUID),
        "sop_class_uid": str(ds.get("SOPClassUID") or "") or None,
        "modality": ds.get("Modality") or None,
        "body_part": ds.get("BodyPartExamined") or None,
        "study_date": ds.get("StudyDate") or None,
        "series_date": ds.get("SeriesDate") or None,
        "acquisition_date": ds.get("AcquisitionDate") or None,
        "series_number": _int(ds.get("SeriesNumber")),
        "instance_number": _int(ds.get("InstanceNumber")),
        "rows": _int(ds.get("Rows")),
        "columns": _int(ds.get("Columns")),
        "number_of_frames": _int(frames) if frames not in (None, "") else (1 if "Rows" in ds else None),
        "transfer_syntax": str(meta.get("TransferSyntaxUID"))
        if meta and meta.get("TransferSyntaxUID")
        else None,
        "patient_id": ds.get("PatientID") or None,
        "issuer_of_patient_id": ds.get("IssuerOfPatientID") or None,
    }


def _int(value) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
