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
- it is one pass over the dataset: each element's action is one dict lookup, each sequence's
  items are visited once, and an element the profile leaves alone is not even decoded;
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
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID
from pydicom.valuerep import AMBIGUOUS_VR

from connectors.dicom import as_read, rewrites_as_sent

PROFILE_DB = "dicomfields_2026c"
MODALITIES_WITH_BURNED_IN_TEXT = {"US", "SC", "XA", "ES", "OT", "DOC", "SM", "XC", "GM", "OP"}
_PATIENT_ID, _PATIENT_NAME = Tag(0x0010, 0x0020), Tag(0x0010, 0x0010)
_PATIENT = frozenset({0x00100020, 0x00100010})  # ints: a set lookup, no Tag.__eq__ per element


def _table() -> tuple[dict[Tag, str], list[tuple[int, int, int, int, str]]]:
    """Tag -> the action applied here: D (dummy), Z (empty), X (remove) or U (new UID); and the
    repeating groups as (group, element, group mask, element mask, action), in the table's order."""
    db = dicom_anonymization_database_selector(PROFILE_DB)
    exact: dict[Tag, str] = {}
    masked: list[tuple[int, int, int, int, str]] = []
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
                exact[Tag(*entry)] = action
            else:  # repeating groups: (group, element, group mask, element mask)
                masked.append((*entry, action))
    return exact, masked


ACTIONS, MASKED = _table()


def _lookup() -> tuple[dict[int, str], dict[int, str], list[tuple[int, int, int, int, str]]]:
    """The table as two dicts: one keyed by tag (the exact entries, and the repeating-group
    entries that name one element, expanded over their groups), one keyed by group (entries for
    every element of a group); entries of another shape are kept to be tried in order.

    An exact entry wins over a repeating group, and an earlier repeating group over a later
    one, as in ``action_for``'s walk of the table.
    """
    by_tag: dict[int, str] = {}
    by_group: dict[int, str] = {}
    others: list[tuple[int, int, int, int, str]] = []
    for group, elem, gmask, emask, action in MASKED:
        groups = [g for g in range(0x10000) if g & gmask == group]
        if others or emask not in (0, 0xFFFF) or (emask == 0 and elem != 0):
            others.append((group, elem, gmask, emask, action))  # from here on, tried in order
        elif emask == 0xFFFF:
            for g in groups:
                if g not in by_group:  # an earlier whole-group entry already decides
                    by_tag.setdefault(g << 16 | elem, action)
        else:
            for g in groups:
                by_group.setdefault(g, action)
    by_tag.update(ACTIONS)
    return by_tag, by_group, others


_BY_TAG, _BY_GROUP, _OTHER_MASKS = _lookup()


def action_for(tag: int) -> str | None:
    """The profile's action for ``tag``: one dict lookup (two for a repeating group)."""
    found = _BY_TAG.get(tag)
    if found is None:
        found = _BY_GROUP.get(tag >> 16)
    if found is None:
        for group, elem, gmask, emask, action in _OTHER_MASKS:
            if (tag >> 16) & gmask == group and tag & 0xFFFF & emask == elem:
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
DATE_VRS = ("DA", "DT", "TM")


@dataclass(frozen=True)
class _Pass:
    """What one de-identification pass needs to know: the key, the person and the date shift."""

    cfg: DeidConfig
    person: str
    days: int


def _scrub(ds: Dataset, p: _Pass) -> None:
    """De-identify ``ds`` in one pass over its elements, its sequences' items recursed once.

    Each element's action comes from one lookup in the table. Private elements, and command
    (0000) and file meta (0002) elements found in the dataset body (they belong to a DIMSE
    message or the file header, and pydicom refuses to write them there), are removed without
    being decoded (pydicom's remove_private_tags decodes each, and a private element in a VR
    pydicom does not know would stop the instance). An element the profile leaves alone is not
    decoded either, unless it is a sequence, so the copy keeps its bytes as they were sent.
    """
    for tag, elem in list(ds._dict.items()):
        group = tag >> 16
        if group & 1 or group in (0x0000, 0x0002):
            del ds[tag]
            continue
        action = action_for(tag)
        if action is None and _vr(ds, tag, elem) == "SQ":
            for item in ds[tag].value or []:
                _scrub(item, p)
        elif tag in _PATIENT:  # PatientID, PatientName: in its dictionary VR, whatever was sent
            ds.add_new(tag, dictionary_VR(tag), p.person)
        elif action is not None:
            _act(ds, tag, action, _vr(ds, tag, elem), p)
        kept = ds._dict.get(tag)
        if isinstance(kept, RawDataElement) and not rewrites_as_sent(ds, kept):
            ds[tag]  # decoded, so the copy holds it as pydicom writes it (padded, stripped)


def _act(ds: Dataset, tag: Tag, action: str, vr: str, p: _Pass) -> None:
    """Apply ``action`` to the element ``tag`` of VR ``vr`` (decoding it only to change it)."""
    if vr in DATE_VRS:  # shifted, or kept, as configured; times of day stay
        if p.cfg.shift_dates and vr != "TM":
            elem = ds[tag]
            elem.value = _shift(str(elem.value or ""), vr, p.days)
    elif action in ("U", "XU") and vr == "UI":
        elem = ds[tag]
        if elem.VM > 1:
            elem.value = [new_uid(p.cfg.key, str(v)) for v in elem.value]
        elif elem.value:
            elem.value = new_uid(p.cfg.key, str(elem.value))
    elif action in ("X", "XU"):
        del ds[tag]
    elif action == "Z":
        ds[tag].value = Sequence() if vr == "SQ" else (None if vr in BINARY_NUMBER_VRS else "")
    elif action == "D":
        if vr == "SQ":
            ds[tag].value = Sequence()
        elif vr in DUMMY:
            ds[tag].value = DUMMY[vr]
        else:
            del ds[tag]


def _vr(ds: Dataset, tag: Tag, elem) -> str:
    """The VR pydicom gives the element when it decodes it, without decoding where it can tell:
    an explicit VR as sent (but UN, which pydicom may replace), or an implicit one from the
    dictionary (unless ambiguous, or not there)."""
    if isinstance(elem, RawDataElement):
        vr = elem.VR
        if vr is None:
            try:
                vr = dictionary_VR(tag)
            except KeyError:
                vr = None
        if vr is not None and vr != "UN" and vr not in AMBIGUOUS_VR:
            return vr
    return ds[tag].VR


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
    with as_read(ds):
        burned = str(ds.get("BurnedInAnnotation", "")).upper() == "YES"
        risk = burned or str(ds.get("Modality", "")).upper() in MODALITIES_WITH_BURNED_IN_TEXT
    days = date_shift(cfg.key, person, cfg.max_shift_days) if cfg.shift_dates else 0
    _scrub(ds, _Pass(cfg, person, days))
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
