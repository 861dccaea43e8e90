"""The header JSON's plain path (``connectors.dicom.plain_json``) against pydicom itself.

For every element of every input of the golden corpus (sequence items and private elements
included), the plain path either declines (None) or gives what pydicom gives: the DICOM JSON
of ``ds[tag].to_json_dict(...)`` and the same validation warnings, in the same order.
"""

from __future__ import annotations

import io
import json
import warnings

import pydicom
import pytest
from pydicom.dataelem import RawDataElement
from test_dicom_golden import more_mutations, mutated_inputs, named_inputs

from connectors.dicom import _bulk, plain_json


def _pydicom_json(ds, tag):
    try:
        elem = ds[tag]
    except Exception:
        return elem_error
    try:
        return elem.to_json_dict(bulk_data_element_handler=_bulk, bulk_data_threshold=256)
    except Exception:
        return elem_error


elem_error = object()


def _compare(ours: pydicom.Dataset, theirs: pydicom.Dataset, where: str, stats: dict) -> None:
    for tag in list(ours.keys()):
        raw = ours._dict[tag]
        if isinstance(raw, RawDataElement):
            with warnings.catch_warnings(record=True) as mine:
                warnings.simplefilter("always")
                got = plain_json(ours, raw)
            if got is not None:
                with warnings.catch_warnings(record=True) as pyd:
                    warnings.simplefilter("always")
                    want = _pydicom_json(theirs, tag)
                assert json.dumps(got) == json.dumps(want), (where, tag, got, want)  # NaN != NaN
                assert [str(w.message) for w in mine] == [str(w.message) for w in pyd], (where, tag)
                stats["plain"] += 1
                continue
        stats["pydicom"] += 1
        try:
            a, b = ours[tag], theirs[tag]
        except Exception:
            continue
        if a.VR == "SQ":
            for i, (x, y) in enumerate(zip(a.value or [], b.value or [], strict=True)):
                _compare(x, y, f"{where}/{tag}[{i}]", stats)


def test_plain_json_is_what_pydicom_gives():
    stats = {"plain": 0, "pydicom": 0}
    inputs = {**named_inputs(), **mutated_inputs(), **more_mutations()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, data in inputs.items():
            try:
                ours, theirs = (pydicom.dcmread(io.BytesIO(data)) for _ in range(2))
            except Exception:
                continue
            _compare(ours, theirs, name, stats)
    assert stats["plain"] > 4 * stats["pydicom"] > 0, stats  # most elements take the plain path


@pytest.mark.parametrize("vr,raw,expected", [
    ("IS", b"12\\-3 ", [12, -3]),
    ("DS", b" 1.50\\2e3", [1.5, 2000.0]),
    ("CS", b"A\\\\B ", ["A", "", "B"]),
    ("AE", b" PACS \\X", ["PACS", "X"]),
    ("UI", b"1.2.3\x00", ["1.2.3"]),
    ("LO", b"caf\xe9 \x00", ["caf\xe9"]),
])
def test_plain_json_values(vr, raw, expected):
    ds = pydicom.Dataset()
    elem = RawDataElement(pydicom.tag.Tag(0x00091001), vr, len(raw), raw, 0, False, True)
    assert plain_json(ds, elem) == {"vr": vr, "Value": expected}


def _written(elem, little: bool, implicit: bool, encodings) -> bytes:
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_data_element

    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = little, implicit
    write_data_element(fp, elem, encodings)
    return fp.getvalue()


def _rewrites(ds: pydicom.Dataset, where: str, stats: dict) -> None:
    from connectors.dicom import rewrites_as_sent

    implicit, little = ds.original_encoding
    for tag in list(ds.keys()):
        raw = ds._dict[tag]
        if isinstance(raw, RawDataElement) and rewrites_as_sent(ds, raw):
            encodings = ds.original_character_set or ds._character_set
            as_sent = _written(raw, little, implicit, encodings)
            try:
                decoded = ds[tag]
                as_rewritten = _written(decoded, little, implicit, encodings)
            except Exception as exc:
                raise AssertionError((where, tag, exc)) from exc
            assert as_sent == as_rewritten, (where, tag, as_sent[:80], as_rewritten[:80])
            stats["same"] += 1
            continue
        try:
            elem = ds[tag]
        except Exception:
            continue
        stats["decoded"] += 1
        if elem.VR == "SQ":
            for i, item in enumerate(elem.value or []):
                _rewrites(item, f"{where}/{tag}[{i}]", stats)


def test_an_element_kept_raw_is_written_as_pydicom_would_write_it():
    """De-identification leaves raw the elements ``rewrites_as_sent`` vouches for: pydicom,
    decoding and writing each, must give the very bytes that were sent."""
    stats = {"same": 0, "decoded": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, data in {**named_inputs(), **mutated_inputs(), **more_mutations()}.items():
            try:
                ds = pydicom.dcmread(io.BytesIO(data))
            except Exception:
                continue
            _rewrites(ds, name, stats)
    assert stats["same"] > 4 * stats["decoded"] > 0, stats


@pytest.mark.parametrize("vr,raw,same", [
    ("CS", b"AB", True), ("CS", b"ABC ", True), ("CS", b"ABC", False), ("CS", b"AB  ", False),
    ("LO", b"A \\B ", False), ("UI", b"1.2\x00\x00", False), ("UI", b"1.23", True), ("IS", b" 12 ", False),
    ("OB", b"\x01", False), ("US", b"\x01\x00", True), ("SH", b"  ", False), ("SH", b"", True),
])
def test_rewrites_as_sent(vr, raw, same):
    from connectors.dicom import rewrites_as_sent

    ds = pydicom.Dataset()
    ds.set_original_encoding(False, True)
    elem = RawDataElement(pydicom.tag.Tag(0x00091001), vr, len(raw), raw, 0, False, True)
    assert rewrites_as_sent(ds, elem) is same
