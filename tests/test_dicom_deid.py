"""One-pass de-identification: the table lookup, elements left raw, and the copy's writer.

``deidentify`` looks each element's action up once (a dict keyed by tag, the repeating groups
expanded) and leaves undecoded the elements the profile keeps. These tests hold it to the
straightforward forms: the lookup to a walk of the table, the copy of a dataset left raw to the
copy of the same dataset decoded element by element first, byte for byte, and ``encode`` (which
frames raw elements itself) to pydicom's ``save_as``.
"""

from __future__ import annotations

import io
import random
import warnings
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file
from pydicom.datadict import DicomDictionary
from test_dicom_golden import KEY, more_mutations, mutated_inputs, named_inputs

from connectors.dicom import encode
from connectors.dicom_deid import ACTIONS, MASKED, DeidConfig, action_for, deidentify


def _walk(tag: int) -> str | None:
    """The action as a walk of the table finds it: the exact entry, else the first group."""
    found = ACTIONS.get(tag)
    if found is None:
        for group, elem, gmask, emask, action in MASKED:
            if (tag >> 16) & gmask == group and (tag & 0xFFFF) & emask == elem:
                return action
    return found


def test_action_lookup_is_the_table_walk():
    rnd = random.Random(11)
    tags = set(ACTIONS) | set(DicomDictionary)
    tags |= {g << 16 | e for g in range(0x5000, 0x6100, 2) for e in (0, 0x10, 0x3000, 0x4000, 0x4001, 0xFFFF)}
    tags |= {rnd.getrandbits(32) for _ in range(20000)}
    wrong = {f"{t:08X}": (action_for(t), _walk(t)) for t in tags if action_for(t) != _walk(t)}
    assert not wrong, list(wrong.items())[:10]


def _decoded(ds: pydicom.Dataset) -> pydicom.Dataset:
    """Every element decoded in place, as the per-element implementation saw the dataset."""
    for tag in list(ds.keys()):
        try:
            elem = ds[tag]
        except Exception:
            continue
        if elem.VR == "SQ":
            for item in elem.value or []:
                _decoded(item)
    return ds


def _copy(ds: pydicom.Dataset, shift: bool, fast: bool = False) -> bytes:
    """The de-identified copy, written by pydicom (or by ``encode``, which must match it)."""
    d = deidentify(ds, DeidConfig(KEY, shift), "Pdeid").dataset
    out = io.BytesIO()
    d.save_as(out, enforce_file_format=False)
    if fast:
        assert encode(d) == out.getvalue()
    return out.getvalue()


def _body_belies_meta() -> bytes:
    """A file whose meta says explicit VR while its body is implicit, with a patient."""
    data = Path(get_testdata_file("SC_rgb_jpeg.dcm")).read_bytes()
    ds = pydicom.dcmread(io.BytesIO(data))
    assert ds.original_encoding == (False, True) and ds._dict[0x00080008].is_implicit_VR
    return data


def test_a_dataset_left_raw_deidentifies_as_one_decoded_first():
    inputs = {**named_inputs(), **mutated_inputs(), **more_mutations(),
              "SC_rgb_jpeg.dcm": _body_belies_meta()}
    compared = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, data in inputs.items():
            for shift in (True, False):
                try:
                    want = _copy(_decoded(pydicom.dcmread(io.BytesIO(data))), shift)
                except Exception:
                    continue  # the per-element way fails too: nothing to hold the one pass to
                got = _copy(pydicom.dcmread(io.BytesIO(data)), shift, fast=True)
                assert got == want, (name, shift)
                compared += 1
    assert compared > 300
