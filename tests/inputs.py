"""Real-format inputs the robustness and fuzz tests build: DICOM instances, HL7 messages, FHIR JSON.

Each builder makes a valid input (or one with a single, named defect) so a test knows exactly
how many inputs should land and how many should be quarantined.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

HL7_DIR = Path(__file__).parent / "data" / "hl7"


def ct_bytes(patient_id: str = "PAT-0001", frames: str | None = None) -> bytes:
    """pydicom's CT_small with fresh UIDs, so every call is its own instance in its own series.

    ``frames`` writes NumberOfFrames (IS) exactly as given, valid or not (``1A``), the way a
    faulty modality would send it.
    """
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.PatientID = patient_id
    if frames is not None:
        ds.add_new(0x00280008, "IS", "9" * len(frames))
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    data = buf.getvalue()
    if frames is not None:
        placeholder = b"\x28\x00\x08\x00IS" + len(frames.encode()).to_bytes(2, "little")
        assert data.count(placeholder + b"9" * len(frames)) == 1
        data = data.replace(placeholder + b"9" * len(frames), placeholder + frames.encode())
    return data


def with_private_unknown_vr(data: bytes) -> bytes:
    """The instance plus a private element whose VR (``FS``) pydicom does not know."""
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.add_new(0x00090010, "LO", "ACME 1.0")
    ds.add_new(0x00091001, "LO", "SECRETVALUE")
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    out = buf.getvalue()
    tag_lo = b"\x09\x00\x01\x10LO"
    assert out.count(tag_lo) == 1
    return out.replace(tag_lo, b"\x09\x00\x01\x10FS")


def hl7_message(control_id: str, msh7: str = "20260302101500", obx5: bytes = b"7.1") -> bytes:
    """The shipped ORU^R01 with its own control id, MSH-7 and first OBX-5, as bytes."""
    text = (HL7_DIR / "oru_r01.hl7").read_bytes().split(b"\rMSH")[0]
    text = text.replace(b"LAB0001", control_id.encode()).replace(b"20260302101500", msh7.encode(), 1)
    return text.replace(b"||7.1|", b"||" + obx5 + b"|", 1).rstrip(b"\r\n") + b"\r"


def fhir_patient(pid: str, **extra) -> dict:
    return {"resourceType": "Patient", "id": pid, "meta": {"lastUpdated": "2026-03-01T08:00:00Z"},
            "gender": "female", "birthDate": "1975-11-02", **extra}


def fhir_observation(oid: str) -> dict:
    return {"resourceType": "Observation", "id": oid, "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}]},
            "subject": {"reference": "Patient/p1"}, "valueQuantity": {"value": 7.1, "unit": "%"}}


def ndjson(resources: list) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in resources).encode()
