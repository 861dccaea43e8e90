"""The DICOM per-instance mapping, pinned: de-identified copies, bronze and silver rows.

``tests/data/dicom_golden.json`` was written by the per-element implementation (walk per rule
and element, before the one-pass rewrite of issue 11) from the inputs built here: every
pydicom test and charset file, a "kitchen sink" instance that reaches every action of the
profile (D/Z/X/U/XU on each VR, nested and private sequences, repeating groups, bad dates,
command and meta elements in the body), generated CT instances like the job tests', and a
seeded corpus of mutated files. For each input it holds what ``map_instance`` gives: the
reason a file is refused, or the bronze row (its header JSON by digest), the silver row and
every element of the de-identified copy as read back (tag path, VR, value; file meta and
sequence items included; binary values by length and digest), with dates shifted and kept.

Regenerate only when the mapping is meant to change: ``python -m tests.test_dicom_golden``.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import warnings
from datetime import UTC, datetime
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pydicom.valuerep import IS, DSdecimal, DSfloat, PersonName

from connectors.dicom import DicomError, Source
from connectors.dicom_deid import DeidConfig, deidentify

GOLDEN = Path(__file__).parent / "data" / "dicom_golden.json"
KEY = b"golden-key-" + b"0" * 32
CENTER, RUN = "CTY-S1", "run-golden"
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
PYDICOM_DATA = Path(get_testdata_file("CT_small.dcm")).parent.parent
# Folders of near-identical instances: the first few of each are enough.
SAMPLED = {"dicomdirtests": 6}
MUTATED_FROM = ("CT_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "rtplan.dcm",
                "reportsi.dcm", "chrSQEncoding.dcm", "badVR.dcm", "liver_1frame.dcm")
MUTATIONS = 320
# Inputs whose records are kept whole, readable in a diff; the others' by digest.
SPELLED_OUT = ("test_files/CT_small.dcm", "test_files/MR_small.dcm", "test_files/MR_small_implicit.dcm",
               "test_files/MR_small_bigendian.dcm", "test_files/rtplan.dcm", "test_files/reportsi.dcm",
               "test_files/JPEG2000.dcm", "test_files/badVR.dcm", "charset_files/chrSQEncoding.dcm",
               "charset_files/chrJapMulti.dcm", "charset_files/chrX1.dcm")


# --- inputs ---------------------------------------------------------------------------------


def _bytes(ds: Dataset, **kw) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, **kw)
    return buf.getvalue()


def _uid(n: int) -> str:
    return f"1.2.826.0.1.3680043.8.498.{n}"


def _item(**attrs) -> Dataset:
    item = Dataset()
    for k, v in attrs.items():
        setattr(item, k, v)
    return item


def kitchen_sink(implicit: bool = False, charset: str = "ISO_IR 192") -> bytes:
    """One instance reaching every branch of the profile: each action on each VR it meets."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = _uid(1)
    ds.file_meta.SourceApplicationEntityTitle = "SENDER-AE"
    ds.SpecificCharacterSet = charset
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, _uid(1)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = _uid(2), _uid(3)
    ds.FrameOfReferenceUID = [_uid(4), _uid(5)]  # U, several values
    ds.IrradiationEventUID = ""  # U, empty
    ds.AnnotationGroupUID = _uid(7)  # D on a UI
    ds.Modality, ds.BodyPartExamined, ds.Manufacturer = "CT", "CHEST", "ACME Médical"
    ds.PatientName, ds.IssuerOfPatientID = "DOE^JANE^^^", "HOSP-A"
    ds.add_new(0x00100020, "SH", "MRN-77")  # PatientID sent with a VR that is not its own
    ds.PatientBirthDate, ds.PatientSex, ds.PatientAge = "19700412", "F", "054Y"
    ds.AccessionNumber, ds.StudyID, ds.ReferringPhysicianName = "ACC123", "S1", "HOUSE^GREGORY"
    ds.InstitutionName, ds.StationName, ds.OperatorsName = "JFK IMAGING", "CT01", ["OP^ONE", "OP^TWO"]
    ds.StudyDate, ds.SeriesDate, ds.ContentDate = "20240229", "20240301", "20240302"
    ds.AcquisitionDate = "2024-03-01"  # not a DA: shifting it fails
    ds.AcquisitionDateTime = "20240229101530.123+0100"  # X on a DT: shifted, not removed
    ds.StudyTime, ds.ContentTime, ds.SeriesTime = "101530", "101531.5", "101532"
    ds.CalibrationDate = ["20230101", "20230601"]  # X on a multi-valued DA
    ds.CalibrationTime = ["0800", "0900"]
    ds.CalibrationDateTime = "20230101083000"  # Z on a DT
    ds.AssertionDateTime = "20230101083000"  # D on a DT
    ds.Date, ds.Time, ds.SafePositionExitTime = "20240101", "120000", "130000"  # D on DA, TM
    ds.PregnancyStatus = 4  # X on a US
    ds.ClinicalTrialProtocolID = "TRIAL-9"  # D on LO
    ds.VerifyingObserverName = "WATSON^JOHN"  # D on PN
    ds.DestinationAE = "PACS"  # D on AE
    ds.ReasonForTheAttributeModification = "CORRECT"  # D on CS
    ds.RTPlanLabel, ds.InterlockDescription = "PLAN-A", "interlock"  # D on SH, ST
    ds.XRayDetectorID, ds.DeviceAlternateIdentifier = "DET-1", "ALT-1"  # D on UC, Z on UC
    ds.SelectorASValue = ["010Y", "020Y"]  # D on AS
    ds.SelectorUTValue, ds.SelectorLTValue = "free text", "long text"  # D on UT, LT
    ds.SelectorURValue = "http://example.org/x"  # D on UR: no dummy, removed
    ds.SelectorUNValue = b"\x01\x02"  # D on UN: removed
    ds.FrameOriginTimestamp = b"\x00" * 8  # D on OB: removed
    ds.CertifiedTimestamp = b"\x01" * 6  # X on OB
    ds.PatientComments = "likes tea"
    ds.BurnedInAnnotation = "NO"
    ds.ContentSequence = [_item(TextValue="report text")]  # D on SQ
    ds.PrescriptionNotesSequence = [_item(PrescriptionNotes="notes")]  # Z on SQ
    ds.OtherPatientIDsSequence = [_item(PatientID="OTHER-1", IssuerOfPatientID="X")]  # X on SQ
    ds.ReferencedImageSequence = [_item(ReferencedSOPInstanceUID=_uid(8))]  # XU on SQ
    nested = _item(
        PatientID="MRN-77", PatientName="DOE^JANE", StudyDate="20240229",
        ReferencedSOPInstanceUID=_uid(9), CodeMeaning="Chest",
        ReferencedSeriesSequence=[_item(SeriesInstanceUID=_uid(3), ReferencedSOPInstanceUID=_uid(10),
                                        InstitutionName="JFK IMAGING",
                                        SourceImageSequence=[_item(ReferencedSOPInstanceUID=_uid(11))])],
    )
    nested.add_new(0x00290010, "LO", "ACME NESTED")
    nested.add_new(0x00291001, "LO", "NESTED SECRET")
    ds.AnatomicRegionSequence = [nested, _item(CodeMeaning="Abdomen")]
    ds.ProcedureCodeSequence = []  # no action, no items
    ds.add_new(0x50000010, "US", 2)  # curve data, repeating group 50xx
    ds.add_new(0x50023000, "OW", b"\x00\x01" * 4)
    ds.add_new(0x60000010, "US", 4)  # overlay rows: kept
    ds.add_new(0x60003000, "OW", b"\xff\x00" * 2)  # overlay data, X by mask
    ds.add_new(0x60024000, "LT", "overlay comment")  # X by mask
    ds.add_new(0x00090010, "LO", "ACME 1.0")
    ds.add_new(0x00091001, "LO", "SECRETVALUE")
    ds.add_new(0x00110010, "LO", "ACME SQ")
    ds.add_new(0x00111001, "SQ", Sequence([_item(PatientName="HIDDEN^NAME")]))
    ds.Rows = ds.Columns = 2
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.SmallestImagePixelValue = 0  # US or SS, by Pixel Representation
    ds.PixelData = b"\x00\x01\x02\x03\x04\x05\x06\x07"
    return _bytes(ds, implicit_vr=implicit, little_endian=True, enforce_file_format=True)


def _with_foreign_groups(data: bytes) -> bytes:
    """Command (0000) and meta (0002) elements in the body, as some PACS exports carry them."""
    ds = pydicom.dcmread(io.BytesIO(data))
    at = data.index(b"\x08\x00\x05\x00")  # the first body element, SpecificCharacterSet
    extra = (b"\x00\x00\x02\x00UI" + len(b"1.2.3\x00").to_bytes(2, "little") + b"1.2.3\x00"
             + b"\x02\x00\x16\x00AE" + (8).to_bytes(2, "little") + b"OLD-AE  ")
    assert ds.file_meta  # the meta group stays before the insertion point
    return data[:at] + extra + data[at:]


def generated() -> dict[str, bytes]:
    """CT instances like the job tests make, with fixed UIDs."""
    ct = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ct.StudyInstanceUID, ct.SeriesInstanceUID = _uid(20), _uid(21)
    ct.SOPInstanceUID = ct.file_meta.MediaStorageSOPInstanceUID = _uid(22)
    ct.PatientName, ct.PatientID = "SERIES^PATIENT", "SER-0001"
    ct.add_new(0x00090010, "LO", "ACME PRIVATE")
    plain = _bytes(ct, enforce_file_format=True)
    ct.add_new(0x00280008, "IS", "99")
    frames = _bytes(ct, enforce_file_format=True)
    frames = frames.replace(b"\x28\x00\x08\x00IS\x02\x0099", b"\x28\x00\x08\x00IS\x02\x001A")
    del ct[0x00280008]
    ct.add_new(0x00091001, "LO", "SECRETVALUE")
    private_fs = _bytes(ct, enforce_file_format=True).replace(b"\x09\x00\x01\x10LO", b"\x09\x00\x01\x10FS")
    return {
        "gen/ct_private.dcm": plain, "gen/ct_frames_1a.dcm": frames, "gen/ct_private_fs.dcm": private_fs,
        "gen/kitchen_sink.dcm": kitchen_sink(), "gen/kitchen_sink_implicit.dcm": kitchen_sink(True),
        "gen/kitchen_sink_latin1.dcm": kitchen_sink(charset="ISO_IR 100"),
        "gen/kitchen_sink_foreign_groups.dcm": _with_foreign_groups(kitchen_sink()),
    }


def named_inputs() -> dict[str, bytes]:
    """Every pydicom test and charset file (a sample of the near-identical ones), and ours."""
    out = {}
    for folder in ("test_files", "charset_files"):
        seen: dict[str, int] = {}
        for path in sorted((PYDICOM_DATA / folder).rglob("*")):
            rel = path.relative_to(PYDICOM_DATA / folder)
            if not path.is_file() or path.suffix in (".txt", ".icc", ".py", ".json") or "TINY" in str(rel):
                continue
            group = rel.parts[0] if len(rel.parts) > 1 else ""
            seen[group] = seen.get(group, 0) + 1
            if group in SAMPLED and seen[group] > SAMPLED[group]:
                continue
            out[f"{folder}/{rel}"] = path.read_bytes()
    return {**out, **generated()}


def _layout(data: bytes) -> list[tuple[int | None, int, int, str]]:
    """(VR offset, length offset, length size, byte order) of each top-level element."""
    ds = pydicom.dcmread(io.BytesIO(data), defer_size=256)
    out = []
    for dataset, implicit, little in ((ds.file_meta, False, True),
                                      (ds, ds.original_encoding[0], ds.original_encoding[1])):
        for tag in list(dataset.keys()):
            tell = getattr(dataset.get_item(tag), "value_tell", None)
            if tell is None:
                continue
            order = "little" if little else "big"
            if implicit:
                out.append((None, tell - 4, 4, order))
            elif str(dataset.get_item(tag).VR) in {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC",
                                                    "UN", "UR", "UT", "UV"}:
                out.append((tell - 8, tell - 4, 4, order))
            else:
                out.append((tell - 4, tell - 2, 2, order))
    return out


MUTATED_VRS = (b"XX", b"UN", b"SQ", b"OB", b"US", b"FD", b"IS", b"DS", b"UI", b"PN", b"AT", b"LO", b"DA")


def mutated_inputs(seed: int = 20261123, count: int = MUTATIONS, vrs: tuple = MUTATED_VRS) -> dict:
    """Seeded mutations (bad VR, bad length, bit flip, insertion, cut) of a few files; the
    defaults make the pinned corpus."""
    rnd = random.Random(seed)
    sources = {name: (PYDICOM_DATA / ("charset_files" if name.startswith("chr") else "test_files")
                      / name).read_bytes() for name in MUTATED_FROM}
    layouts = {name: _layout(data) for name, data in sources.items()}
    out = {}
    for i in range(count):
        name = MUTATED_FROM[i % len(MUTATED_FROM)]
        b = bytearray(sources[name])
        vr_at, len_at, size, order = rnd.choice(layouts[name])
        kind = rnd.choice(("vr", "len", "flip", "insert", "cut"))
        if kind == "vr" and vr_at is not None:
            b[vr_at:vr_at + 2] = rnd.choice(vrs)
        elif kind in ("vr", "len"):
            lengths = (0, 1, 3, 7, 0xFFFF, *((0xFFFFFFFF, 0x7FFFFFFF) if size == 4 else ()))
            b[len_at:len_at + size] = rnd.choice(lengths).to_bytes(size, order)
        elif kind == "flip":
            at = rnd.randrange(132, len(b))
            b[at] ^= 1 << rnd.randrange(8)
        elif kind == "insert":
            at = rnd.randrange(132, len(b))
            b[at:at] = rnd.choice((b"1A", b"\x00" * 3, b"9" * 40))
        else:
            del b[rnd.randrange(132, len(b)):]
        out[f"mutated/{i:03d}_{kind}_{name}"] = bytes(b)
    return out


# Beyond the pinned corpus (for the tests that hold the new code to pydicom's own ways): more
# mutations, and VR bytes pydicom cannot read at all.
WIDER_VRS = (*MUTATED_VRS, b"\x00\x00", b"  ", b"ZZ", b"OW", b"SS", b"UT", b"ST", b"CS", b"TM", b"DT", b"FL",
             b"UL", b"SL", b"OF", b"SH", b"AE", b"UC", b"UR", b"AS")


def more_mutations() -> dict[str, bytes]:
    return {f"more/{k}": v for k, v in mutated_inputs(seed=7, count=800, vrs=WIDER_VRS).items()}


# --- what is pinned ---------------------------------------------------------------------------


def _value(v):
    if isinstance(v, (DSfloat, DSdecimal, IS, PersonName)):
        return str(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        v = bytes(v)
        return f"bytes:{len(v)}:{hashlib.sha256(v).hexdigest()[:16]}"
    if isinstance(v, MultiValue | list | tuple):
        return [_value(x) for x in v]
    if isinstance(v, float):
        return repr(v)
    if v is None or isinstance(v, int | str):
        return v
    return f"{type(v).__name__}:{v}"


def _elements(ds: Dataset, prefix: str = "") -> list:
    out = []
    for tag in sorted(ds.keys()):
        path = f"{prefix}{tag.group:04X},{tag.element:04X}"
        try:
            elem = ds[tag]
        except Exception as exc:
            raw = ds.get_item(tag)
            out.append([path, str(getattr(raw, "VR", "")), f"undecodable:{type(exc).__name__}:"
                        f"{_value(getattr(raw, 'value', b''))}"])
            continue
        if elem.VR == "SQ":
            items = list(elem.value or [])
            out.append([path, "SQ", f"{len(items)} items"])
            for i, item in enumerate(items):
                out += _elements(item, f"{path}[{i}]/")
        else:
            out.append([path, str(elem.VR), _value(elem.value)])
    return out


def canonical(data: bytes) -> list:
    """Every element of a DICOM file as read back: file meta first, then the dataset."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(io.BytesIO(data))
        meta = getattr(ds, "file_meta", None)
        return [*(_elements(meta, "meta:") if meta is not None else []), *_elements(ds)]


def _row(batch, drop: tuple[str, ...] = ()) -> dict:
    row = batch.to_pylist()[0]
    return {k: (str(v) if v is not None and not isinstance(v, int | str | bool) else v)
            for k, v in row.items() if k not in drop}


def record(name: str, data: bytes, shift_dates: bool) -> dict:
    """What ``map_instance`` makes of one input: the refusal, or the rows and the copy."""
    from jobs.ingest_dicom import map_instance

    cfg = DeidConfig(KEY, shift_dates)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            m = map_instance(Source(name, data), cfg, KEY, CENTER, RUN, "/lake/curated", "/lake/curated", NOW)
        except DicomError as exc:
            return {"error": str(exc)}
    bronze = _row(m.bronze, ("header_json",))
    header = m.bronze.column("header_json")[0].as_py()
    bronze["header_json_sha256"] = hashlib.sha256(header.encode()).hexdigest()
    return {"bronze": bronze, "silver": _row(m.silver), "folder": m.folder, "name": m.name,
            "copy": canonical(m.copy)}


def direct(data: bytes, shift_dates: bool) -> dict:
    """``deidentify`` on a dataset read with plain dcmread (no reader checks), saved."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(io.BytesIO(data))
        r = deidentify(ds, DeidConfig(KEY, shift_dates), "Pgolden")
        return {"date_shift_days": r.date_shift_days, "burned_in_annotation": r.burned_in_annotation,
                "burned_in_risk": r.burned_in_risk,
                "copy": canonical(_bytes(r.dataset, enforce_file_format=False))}


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def _pinned(name: str, rec: dict, part: str) -> dict:
    """The record whole (refusals, spelled-out inputs, the copy with dates shifted), else its digest."""
    whole = "error" in rec or (part == "shifted" and (name in SPELLED_OUT or name.startswith("gen/")))
    return rec if whole else {"sha256": _digest(rec)}


def outputs() -> dict:
    named = {}
    for name, data in named_inputs().items():
        named[name] = {"shifted": _pinned(name, record(name, data, True), "shifted"),
                       "kept": _pinned(name, record(name, data, False), "kept")}
    for name, data in generated().items():
        named[name]["direct"] = _pinned(name, direct(data, True), "direct")
        named[name]["direct_kept"] = _pinned(name, direct(data, False), "direct")
    mutated = {name: _pinned(name, record(name, data, True), "mutated")
               for name, data in mutated_inputs().items()}
    return {"named": named, "mutated": mutated}


# --- the test ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads(GOLDEN.read_text())


@pytest.fixture(scope="module")
def now() -> dict:
    return outputs()


def test_the_inputs_are_the_ones_pinned(golden, now):
    assert sorted(now["named"]) == sorted(golden["named"])
    assert sorted(now["mutated"]) == sorted(golden["mutated"])
    refused = sum("error" in r for r in golden["mutated"].values())
    assert 40 < refused < MUTATIONS - 40  # the corpus holds both kinds


@pytest.mark.parametrize("part", ["shifted", "kept", "direct", "direct_kept"])
def test_named_inputs_map_as_pinned(golden, now, part):
    for name, parts in golden["named"].items():
        if part not in parts:
            continue
        want, got = parts[part], json.loads(json.dumps(now["named"][name][part]))
        if "copy" in want and "copy" in got and got["copy"] != want["copy"]:
            g, w = {tuple(e[:1]): e for e in got["copy"]}, {tuple(e[:1]): e for e in want["copy"]}
            diff = [(k, w.get(k), g.get(k)) for k in sorted(set(g) | set(w)) if g.get(k) != w.get(k)]
            pytest.fail(f"{name} ({part}): copy differs (path, pinned, now): {diff[:8]}")
        assert got == want, f"{name} ({part})"


def test_mutated_inputs_map_or_are_refused_as_pinned(golden, now):
    wrong = {name: (want, now["mutated"][name]) for name, want in golden["mutated"].items()
             if now["mutated"][name] != want}
    assert not wrong, list(wrong.items())[:5]


if __name__ == "__main__":
    out = outputs()
    lines = ["{", f'"about": {json.dumps(__doc__.strip().splitlines()[0])},', '"named": {']
    named = list(out["named"].items())
    for i, (name, parts) in enumerate(named):
        lines.append(f"{json.dumps(name)}: {{")
        for j, (part, rec) in enumerate(parts.items()):
            body = {k: v for k, v in rec.items() if k != "copy"}
            text = json.dumps(body, sort_keys=True)[:-1]
            if "copy" in rec:
                elems = ",\n".join(json.dumps(e) for e in rec["copy"])
                text += (", " if body else "") + f'"copy": [\n{elems}\n]'
            lines.append(f"{json.dumps(part)}: {text}}}" + ("," if j < len(parts) - 1 else ""))
        lines.append("}" + ("," if i < len(named) - 1 else ""))
    lines.append("},")
    lines.append('"mutated": {')
    mutated = list(out["mutated"].items())
    lines += [f"{json.dumps(k)}: {json.dumps(v, sort_keys=True)}" + ("," if i < len(mutated) - 1 else "")
              for i, (k, v) in enumerate(mutated)]
    lines.append("}}")
    GOLDEN.write_text("\n".join(lines) + "\n")
    back = json.loads(GOLDEN.read_text())
    assert {k: back[k] for k in out} == json.loads(json.dumps(out))
    print(f"{GOLDEN}: {len(named)} named inputs, {len(mutated)} mutated, {GOLDEN.stat().st_size} bytes")
