"""DICOM de-identification along PS3.15 Annex E, Basic Application Level Confidentiality Profile.

The action table (D, Z, X, U and the combined actions) is the one dicom-anonymizer generates
from the standard (database ``dicomfields_2026c``); this module applies it with pydicom, with
the choices the lake needs:
- PatientID and PatientName become the person's keyed pseudonym, the same ``person_id`` the
  HL7, FHIR and genomics feeds use for that person;
- UIDs are replaced by ``2.25.<HMAC>`` so the same source UID always maps to the same new UID
  (a study stays one study, across files and re-runs);
- dates and times are shifted back by a per-person number of days (intervals kept), or kept,
  as configured (Retain Longitudinal Temporal Information options);
- private tags are removed; nested sequences get the same treatment;
- Patient Identity Removed, De-identification Method (+ code sequence) and Longitudinal
  Temporal Information Modified are set.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from dicomanonymizer.dicomfields_selector import dicom_anonymization_database_selector
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID

PROFILE_DB = "dicomfields_2026c"
MODALITIES_WITH_BURNED_IN_TEXT = {"US", "SC", "XA", "ES", "OT", "DOC", "SM", "XC", "GM", "OP"}
_PATIENT_ID, _PATIENT_NAME = Tag(0x0010, 0x0020), Tag(0x0010, 0x0010)
_KEEP_AFTER = {Tag(0x0012, 0x0062), Tag(0x0012, 0x0063), Tag(0x0012, 0x0064), Tag(0x0028, 0x0303)}


def _table() -> dict[Tag, str]:
    """Tag -> the action applied here: D (dummy), Z (empty), X (remove) or U (new UID)."""
    db = dicom_anonymization_database_selector(PROFILE_DB)
    out: dict[Tag, str] = {}
    for category, action in (
        ("D_TAGS", "D"),
        ("Z_TAGS", "Z"),
        ("X_TAGS", "X"),
        ("U_TAGS", "U"),
        ("Z_D_TAGS", "Z"),
        ("X_Z_TAGS", "X"),
        ("X_D_TAGS", "X"),
        ("X_Z_D_TAGS", "X"),
        ("X_Z_U_STAR_TAGS", "XU"),
    ):
        for entry in db[category]:
            if len(entry) == 2:
                out[Tag(*entry)] = action
            else:  # repeating groups: (group, element, group mask, element mask)
                MASKED.append((*entry, action))
    return out


MASKED: list[tuple[int, int, int, int, str]] = []
ACTIONS = _table()


def action_for(tag: Tag) -> str | None:
    found = ACTIONS.get(tag)
    if found is None:
        for group, elem, gmask, emask, action in MASKED:
            if tag.group & gmask == group and tag.element & emask == elem:
                return action
    return found


@dataclass(frozen=True)
class DeidConfig:
    key: bytes
    shift_dates: bool = True
    max_shift_days: int = 365


@dataclass
class DeidResult:
    dataset: Dataset
    person_id: str
    date_shift_days: int
    burned_in_annotation: bool  # the header says YES
    burned_in_risk: bool  # YES, or a modality that often has text in the pixels


def new_uid(key: bytes, uid: str) -> str:
    """Deterministic replacement UID under the 2.25 (UUID-derived) root."""
    digest = hmac.new(key, f"uid\x1f{uid}".encode(), hashlib.sha256).digest()[:16]
    return f"2.25.{int.from_bytes(digest, 'big')}"


def date_shift(key: bytes, person_id: str, max_days: int = 365) -> int:
    """Days to move this person's dates back (1..max_days), the same in every file."""
    digest = hmac.new(key, f"dateshift\x1f{person_id}".encode(), hashlib.sha256).digest()
    return 1 + int.from_bytes(digest[:4], "big") % max_days


def _shift(value: str, vr: str, days: int) -> str:
    if not value:
        return value
    try:
        if vr == "DA":
            return (datetime.strptime(value[:8], "%Y%m%d") - timedelta(days=days)).strftime("%Y%m%d")
        if vr == "DT":
            head = datetime.strptime(value[:8], "%Y%m%d") - timedelta(days=days)
            return head.strftime("%Y%m%d") + value[8:]
    except ValueError:
        return ""
    return value  # TM: a time of day carries no date to shift


DUMMY = {
    "DA": "19000101",
    "DT": "19000101000000",
    "TM": "000000",
    "PN": "ANONYMOUS",
    "UI": "2.25.0",
    "IS": "0",
    "DS": "0",
    "AS": "000Y",
    "CS": "ANON",
    "SH": "ANON",
    "LO": "ANONYMIZED",
    "ST": "ANONYMIZED",
    "LT": "ANONYMIZED",
    "UT": "ANONYMIZED",
    "UC": "ANONYMIZED",
    "AE": "ANON",
}


BINARY_NUMBER_VRS = {"US", "SS", "UL", "SL", "FL", "FD"}  # emptied as no value, not ""


def _apply(ds: Dataset, cfg: DeidConfig, person: str, days: int) -> None:
    for elem in list(ds):
        action = action_for(elem.tag)
        if elem.VR == "SQ" and action is None:
            for item in elem.value or []:
                _apply(item, cfg, person, days)
            continue
        if elem.tag in (_PATIENT_ID, _PATIENT_NAME):  # in its dictionary VR, whatever was sent
            ds.add_new(elem.tag, dictionary_VR(elem.tag), person)
        elif action is None:
            continue
        elif elem.VR in ("DA", "DT", "TM"):  # shifted, or kept, as configured; times of day stay
            if cfg.shift_dates and elem.VR != "TM":
                elem.value = _shift(str(elem.value or ""), elem.VR, days)
        elif action in ("U", "XU") and elem.VR == "UI":
            if elem.VM > 1:
                elem.value = [new_uid(cfg.key, str(v)) for v in elem.value]
            elif elem.value:
                elem.value = new_uid(cfg.key, str(elem.value))
        elif action in ("X", "XU"):
            del ds[elem.tag]
        elif action == "Z":
            elem.value = Sequence() if elem.VR == "SQ" else (None if elem.VR in BINARY_NUMBER_VRS else "")
        elif action == "D":
            if elem.VR == "SQ":
                elem.value = Sequence()
            elif elem.VR in DUMMY:
                elem.value = DUMMY[elem.VR]
            else:
                del ds[elem.tag]


def _remove_private(ds: Dataset) -> None:
    """Remove private elements without decoding them (pydicom's remove_private_tags decodes each,
    and a private element in a VR pydicom does not know would stop the instance).

    Command (0000) and file meta (0002) elements found in the dataset body belong to a DIMSE
    message or the file header, and pydicom refuses to write them there; they go too.
    """
    for tag in list(ds.keys()):
        if tag.is_private or tag.group in (0x0000, 0x0002):
            del ds[tag]
        elif ds[tag].VR == "SQ":
            for item in ds[tag].value or []:
                _remove_private(item)


def _new_file_meta(ds: Dataset) -> FileMetaDataset:
    """A fresh file meta for the copy: same transfer syntax, the new SOP UIDs, this writer.

    Nothing else of the sender's meta group is kept (source AE title, private information),
    and a damaged meta element cannot stop the copy from being written.
    """
    old = ds.file_meta
    meta = FileMetaDataset()
    ts = str(old.get("TransferSyntaxUID") or "").strip("\x00 ")
    if ts:
        meta.TransferSyntaxUID = UID(ts)
    if "SOPClassUID" in ds:
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "OMICSLAKE"
    return meta


def deidentify(ds: Dataset, cfg: DeidConfig, person: str) -> DeidResult:
    """De-identify ``ds`` in place (file meta included) for the person it belongs to."""
    burned = str(ds.get("BurnedInAnnotation", "")).upper() == "YES"
    risk = burned or str(ds.get("Modality", "")).upper() in MODALITIES_WITH_BURNED_IN_TEXT
    days = date_shift(cfg.key, person, cfg.max_shift_days) if cfg.shift_dates else 0
    _remove_private(ds)
    _apply(ds, cfg, person, days)
    if getattr(ds, "file_meta", None) is not None:
        ds.file_meta = _new_file_meta(ds)
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "PS3.15 E.1 basic; dates " + ("shifted" if cfg.shift_dates else "kept")
    codes = [
        ("113100", "Basic Application Confidentiality Profile"),
        ("113107", "Retain Longitudinal Temporal Information Modified Dates Option")
        if cfg.shift_dates
        else ("113106", "Retain Longitudinal Temporal Information Full Dates Option"),
    ]
    seq = []
    for value, meaning in codes:
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
        seq.append(item)
    ds.DeidentificationMethodCodeSequence = Sequence(seq)
    ds.LongitudinalTemporalInformationModified = "MODIFIED" if cfg.shift_dates else "UNMODIFIED"
    return DeidResult(ds, person, days, burned, risk)


def shifted_date(value: str | None, days: int) -> date | None:
    """A DA value as a date, moved back by ``days``."""
    if not value:
        return None
    try:
        return (datetime.strptime(value[:8], "%Y%m%d") - timedelta(days=days)).date()
    except ValueError:
        return None


__all__ = [
    "ACTIONS",
    "MASKED",
    "DeidConfig",
    "DeidResult",
    "action_for",
    "date_shift",
    "deidentify",
    "new_uid",
    "shifted_date",
]
