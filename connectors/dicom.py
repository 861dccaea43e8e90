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

import base64
import copy
import hashlib
import io
import json
import struct
import sys
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom import config as pd_config
from pydicom import valuerep
from pydicom.charset import custom_encoders, default_encoding
from pydicom.charset import need_tail_escape_sequence_encodings as need_tail_escape
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import _determine_encoding, write_data_element, write_file_meta_info
from pydicom.hooks import hooks as pd_hooks
from pydicom.multival import MultiValue
from pydicom.pixels.utils import get_expected_length
from pydicom.tag import tag_in_exception
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian
from pydicom.valuerep import (
    EXPLICIT_VR_LENGTH_32,
    IS,
    MAX_VALUE_LEN,
    STR_VR_REGEXES,
    VALIDATORS,
    DSfloat,
    validate_type_and_length,
    validate_value,
)

SUFFIXES = (".dcm", ".DCM", ".dicom", ".zip", ".ZIP", ".ima", ".IMA")
ARCHIVE_SEP = "!/"  # archive.zip!/member.dcm, as in jar: URIs


_LENGTH_ONLY = (None, validate_type_and_length)  # SH, LO, ST, LT (length), UC, UT (none)
_LUT_DESCRIPTOR_TAGS = {0x00281101, 0x00281102, 0x00281103, 0x00283002}  # pydicom writes value 1 as US
_DEFAULT_VR_HOOK = pd_hooks.raw_element_vr
_DEFAULT_VALUE_HOOK = pd_hooks.raw_element_value


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


@dataclass
class Instance:
    """A dataset read and checked, with the DICOM JSON of its public elements decoded so far.

    Public elements pydicom decodes the plain way are left raw in the dataset (decoded only for
    their JSON), so a copy written from it keeps their bytes as sent, and nothing decodes them
    twice.
    """

    dataset: pydicom.Dataset
    decoded: dict = field(default_factory=dict)  # (id(dataset), tag) -> DICOM JSON of the element

    def header_json(self) -> str:
        return json.dumps(_json_dict(self.dataset, self.decoded), separators=(",", ":"))


def read_dataset(data: bytes) -> pydicom.Dataset:
    """The dataset in ``data``, checked to be whole; DicomError says why it cannot be read."""
    return read_instance(data).dataset


def read_instance(data: bytes) -> Instance:
    """The instance in ``data``, checked to be whole; DicomError says why it cannot be read.

    The pixel data is sliced from the buffer, not decoded, so this stays cheap for large
    instances; a cut-off file is caught by the pixel data being shorter than its header says.
    """
    decoded: dict = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = _parse(data)
        _check_public(ds, decoded)
    cut = [str(w.message) for w in caught if "End of file" in str(w.message) or "truncated" in str(w.message)]
    if cut:
        raise DicomError(f"truncated DICOM: {cut[0]}")
    for raw in list(ds._dict.values()):  # private (public ones were decoded or checked above)
        if (
            isinstance(raw, RawDataElement)
            and raw.tag.is_private
            and raw.length != 0xFFFFFFFF
            and len(raw.value or b"") < raw.length
        ):
            raise DicomError(
                f"truncated DICOM: element {raw.tag} has {len(raw.value or b'')} of {raw.length} bytes"
            )
    with as_read(ds):
        _check_keys_and_pixels(ds)
    return Instance(ds, decoded)


@contextmanager
def as_read(ds: pydicom.Dataset):
    """Elements only read inside the block (not sequences) are put back raw afterwards, so the
    copy written later still carries them as sent rather than re-encoded."""
    before = dict(ds._dict)
    try:
        yield ds
    finally:
        for tag, raw in before.items():
            now = ds._dict.get(tag)
            if (now is not raw and now is not None and isinstance(raw, RawDataElement)
                    and not (isinstance(now, DataElement) and now.VR == "SQ")):
                ds._dict[tag] = raw


def _parse(data: bytes) -> pydicom.Dataset:
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
        with as_read(ds):
            ds.get("PixelData")
    except InvalidDicomError as exc:
        raise DicomError(f"not a DICOM file: {exc}") from exc
    except Exception as exc:  # whatever pydicom cannot parse is corrupt, whichever way it fails
        raise DicomError(f"truncated or corrupt DICOM: {type(exc).__name__}: {exc}") from exc
    return ds


def _check_keys_and_pixels(ds: pydicom.Dataset) -> None:
    """The three UIDs are there, and native pixel data is as long as the header says."""
    for attr in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
        if not _text(_tag_value(ds, attr)):
            raise DicomError(f"{attr} is missing")
    pixels = ds.get("PixelData")
    encapsulated = _encapsulated(ds)
    if pixels is not None and not encapsulated:
        expected = _pixel_bytes(ds)
        if len(pixels) < expected:
            raise DicomError(f"truncated DICOM: pixel data has {len(pixels)} of {expected} bytes")
    if pixels is not None and encapsulated and not bytes(pixels[:4]) == b"\xfe\xff\x00\xe0":
        raise DicomError("pixel data is not encapsulated although the transfer syntax is compressed")


def _check_public(ds: pydicom.Dataset, decoded: dict) -> None:
    """Decode every public element now, so one pydicom cannot decode is named here.

    pydicom decodes lazily; an element it cannot decode at all (an unknown VR, a binary value
    whose length is not a multiple of its size) would otherwise fail later, in the mapping.
    An element of the plain kinds (see ``plain_json``) is decoded for its JSON only and stays
    raw; the others are decoded by pydicom, in place. Private elements stay raw:
    de-identification removes them without decoding.
    """
    plain = _plain_config()
    for tag, raw in list(ds._dict.items()):
        if tag.is_private:
            continue
        try:
            entry = plain_json(ds, raw) if plain and isinstance(raw, RawDataElement) else None
            if entry is not None:
                decoded[(id(ds), int(tag))] = entry
                continue
            elem = ds[tag]
            items = list(elem.value or []) if elem.VR == "SQ" else []
        except Exception as exc:
            raise DicomError(f"corrupt DICOM: element {tag} cannot be decoded: {type(exc).__name__}: "
                             f"{exc}") from exc
        for item in items:
            _check_public(item, decoded)


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
        tag = tag_for_keyword(keyword)
        return ds[tag].value if tag is not None and tag in ds._dict else None
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
    return json.dumps(_json_dict(ds, {}), separators=(",", ":"))


def _bulk(elem) -> str:
    return f"{len(elem.value or b'')} bytes"


def _json_dict(ds: pydicom.Dataset, decoded: dict) -> dict:
    out = {}
    plain = _plain_config()
    creators: dict[int, bool] = {}
    here, cached = id(ds), decoded.get
    for tag in list(ds._dict):
        key = f"{tag:08X}"
        entry = cached((here, int(tag)))
        raw = ds._dict[tag]
        if entry is None and plain and isinstance(raw, RawDataElement):
            entry = plain_json(ds, raw) if _creator_decodes(ds, tag, creators) else None
        if entry is not None:
            out[key] = entry
            continue
        try:
            elem = ds[tag]
        except Exception:  # a private element pydicom cannot decode: unknown, without a value
            out[key] = {"vr": "UN"}
            continue
        if elem.VR == "SQ":
            items = [_json_dict(item, decoded) for item in (elem.value or [])]
            out[key] = {"vr": "SQ", **({"Value": items} if items else {})}
            continue
        try:
            out[key] = elem.to_json_dict(bulk_data_element_handler=_bulk, bulk_data_threshold=256)
            json.dumps(out[key])
        except Exception:
            out[key] = {"vr": str(elem.VR)}
    return out


def _creator_decodes(ds: pydicom.Dataset, tag: int, known: dict[int, bool]) -> bool:
    """Whether pydicom, decoding a private element, can read its Private Creator (it fails the
    element when not); public elements have none. ``known`` keeps the answers per creator."""
    tag = int(tag)
    if not (tag >> 16) & 1:
        return True
    creator = (tag & 0xFFFF0000) | ((tag & 0xFFFF) >> 8)
    if creator in known:
        return known[creator]
    if creator == tag or creator not in ds._dict:
        return True
    raw = ds._dict[creator]
    if isinstance(raw, RawDataElement) and plain_json(ds, raw) is not None:
        known[creator] = True  # a plain element: pydicom decodes it (see plain_json)
        return True
    try:
        _ = ds[creator].value
        known[creator] = True
    except Exception:
        known[creator] = False
    return known[creator]


# --- the plain elements, decoded straight from their bytes -------------------------------------
#
# pydicom decodes an element through hooks, a DataElement and the Dataset's bookkeeping, about
# 20 microseconds each; a CT header holds hundreds (most of them private). For the plain cases
# below the value is decoded here the way pydicom's converters decode it (the same codecs,
# splitting, stripping and value classes, so the same validation warnings) and turned into
# DICOM JSON as DataElement.to_json_dict does. Anything else (PN, AT, SQ, UN, an implicit VR
# pydicom must look up or correct, ISO 2022 escapes, a value that does not decode cleanly)
# returns None and goes through pydicom. tests/test_dicom_json.py checks both give the same.

NUMBER_FORMATS = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d", "SV": "q", "UV": "Q"}
# The same as native memoryview formats (their sizes fixed: C's long is 8 bytes here, not 4).
NATIVE_FORMATS = {vr: ({"L": "I", "l": "i"}.get(f, f), struct.calcsize("=" + f))
                  for vr, f in NUMBER_FORMATS.items()}
assert all(struct.calcsize(n) == size for n, size in NATIVE_FORMATS.values())
BYTES_VRS = {"OB", "OD", "OF", "OL", "OV", "OW"}
STRING_VRS = {"AS", "CS", "DA", "DT", "TM"}  # pydicom's convert_string: default charset, split
MULTI_TEXT_VRS = {"SH", "LO", "UC"}  # convert_text: the dataset's charset, split, validated
SINGLE_TEXT_VRS = {"ST", "LT", "UT"}  # convert_single_string: not split
BULK_THRESHOLD = (256 // 4) * 3  # bytes above which to_json_dict gives a BulkDataURI


def _plain_config() -> bool:
    """Whether pydicom decodes the way plain_json assumes (its defaults)."""
    return not (
        pd_config.datetime_conversion or pd_config.use_DS_numpy or pd_config.use_IS_numpy
        or pd_config.use_none_as_empty_text_VR_value or pd_config.data_element_callback
        or pd_hooks.raw_element_kwargs or pd_hooks.raw_element_vr is not _DEFAULT_VR_HOOK
        or pd_hooks.raw_element_value is not _DEFAULT_VALUE_HOOK
    )


def plain_json(ds: pydicom.Dataset, raw: RawDataElement) -> dict | None:
    """DICOM JSON of a raw element of a plain kind, as pydicom would give it; else None."""
    vr = _plain_vr(raw)
    data = raw.value
    if vr is None or data is None:
        return None
    if not data:
        return {"vr": vr}
    try:
        if vr in NUMBER_FORMATS:
            return _numbers_json(vr, data, raw.is_little_endian)
        if vr in BYTES_VRS:
            if len(data) > BULK_THRESHOLD:
                return {"vr": vr, "BulkDataURI": f"{len(data)} bytes"}
            return {"vr": vr, "InlineBinary": base64.b64encode(data).decode("utf-8")}
        items = _text_items(ds, vr, data)
    except Exception:  # pydicom has its own way with it (a retry under other VRs, ...)
        return None
    return None if items is None else _values_json(vr, items)


def _plain_vr(raw: RawDataElement) -> str | None:
    """The VR pydicom gives the element, where it needs no lookup in the dataset."""
    vr = raw.VR
    if vr is None:  # implicit VR: the dictionary's, unless private, unknown or ambiguous
        if raw.tag.is_private:
            return None
        try:
            vr = dictionary_VR(raw.tag)
        except KeyError:
            return None
    return vr if vr in _PLAIN_VRS else None


def _numbers_json(vr: str, data: bytes, little: bool) -> dict | None:
    native, size = NATIVE_FORMATS[vr]
    if len(data) % size:
        return None
    if little and sys.byteorder == "little":  # the bytes as they are, viewed as numbers
        return {"vr": vr, "Value": memoryview(data).cast(native).tolist()}
    values = struct.unpack(f"{'<' if little else '>'}{len(data) // size}{NUMBER_FORMATS[vr]}", data)
    return {"vr": vr, "Value": list(values)}


def _text_items(ds: pydicom.Dataset, vr: str, data: bytes, mode: int | None = None) -> list | None:
    """The values pydicom's converter makes of ``data`` (a list, one per value), validated in
    ``mode`` (pydicom's reading mode by default, so with its warnings)."""
    mode = pd_config.settings.reading_validation_mode if mode is None else mode
    if vr in MULTI_TEXT_VRS or vr in SINGLE_TEXT_VRS:
        text = _charset_text(ds, data)
        if text is None:
            return None
        values = text.split("\\") if vr in MULTI_TEXT_VRS else [text]
        for value in values:
            if VALIDATORS.get(vr) not in _LENGTH_ONLY or len(value) > MAX_VALUE_LEN.get(vr, len(value)):
                validate_value(vr, value, mode)  # warns (a str can only be too long for these)
        return [value.rstrip("\0 ") for value in values]
    text = data.decode(default_encoding)
    if vr in STRING_VRS:
        return text.rstrip(" \x00").split("\\")
    if vr == "AE":
        return [value.strip() for value in text.split("\\")]
    if vr == "UI":
        values = text.rstrip("\0 ").rstrip(" \x00").split("\\")
        return [value if _valid(vr, value) else UID(value, mode) for value in values]
    if vr == "UR":
        return [text.rstrip()]
    if vr == "IS":
        return [value if _valid(vr, value) else IS(value, mode) for value in text.rstrip(" \x00").split("\\")]
    values = text.strip().rstrip(" \x00").split("\\")  # DS
    ds_class = valuerep.DSclass
    return [value if ds_class is DSfloat and _valid(vr, value) else ds_class(value, validation_mode=mode)
            for value in values]


def _valid(vr: str, value: str) -> bool:
    """Whether pydicom's validation passes ``value`` (so its value class would warn of nothing
    and hold the value as this string says: an int for IS, a float for DS, the UID itself)."""
    return (len(value) <= MAX_VALUE_LEN[vr] and not value.endswith("\n")
            and STR_VR_REGEXES[vr].match(value) is not None)


def _charset_text(ds: pydicom.Dataset, data: bytes) -> str | None:
    """``data`` decoded as pydicom's decode_bytes does without escape sequences, or None."""
    if b"\x1b" in data:
        return None
    encodings = ds.original_character_set or ds._character_set or [default_encoding]
    encoding = encodings if isinstance(encodings, str) else encodings[0]
    try:
        return data.decode(encoding)
    except (LookupError, UnicodeError):  # pydicom warns and replaces: leave it to pydicom
        return None


def _values_json(vr: str, items: list) -> dict | None:
    """DataElement.to_json_dict of a value pydicom would hold as ``items`` (one, or a MultiValue)."""
    if len(items) == 1:
        value = items[0]
        vm = (1 if value else 0) if isinstance(value, str) else 1
    else:
        vm = len(items)
    if not vm:
        return {"vr": vr}
    try:  # convert_to_python_number: ints for IS, floats for DS, the rest as they are
        if vr == "IS":
            return {"vr": vr, "Value": [int(v) for v in items]}
        if vr == "DS":
            return {"vr": vr, "Value": [float(v) for v in items]}
        return {"vr": vr, "Value": list(items)}
    except Exception:
        return None


def rewrites_as_sent(ds: pydicom.Dataset, raw: RawDataElement) -> bool:
    """Whether pydicom, decoding ``raw`` and writing it back in the same encoding, writes the
    bytes that were sent, so the raw element can be written as it is.

    Not so for a value pydicom pads or strips differently (an odd length, extra padding, a
    space before a backslash), one it does not decode the plain way, or one read in another
    encoding than its dataset's; those are decoded.
    """
    vr, data = _plain_vr(raw), raw.value
    if vr is None or data is None or not _plain_config():
        return False
    if (raw.is_implicit_VR, raw.is_little_endian) != ds.original_encoding:
        return False  # read in another encoding than the dataset's (a body that belies its meta)
    if not raw.is_implicit_VR and vr != raw.VR:
        return False  # an explicit VR pydicom could not read: the dictionary's is written instead
    if not data:
        return True
    try:
        if vr in NUMBER_FORMATS:
            return _numbers_rewrite(vr, raw.tag, data, raw.is_little_endian)
        if vr in BYTES_VRS:
            return len(data) % 2 == 0
        items = _text_items(ds, vr, data, pd_config.IGNORE)
        return items is not None and _encoded(ds, vr, items) == data
    except Exception:
        return False


def _numbers_rewrite(vr: str, tag, data: bytes, little: bool) -> bool:
    fmt = NUMBER_FORMATS[vr]
    size = struct.calcsize("=" + fmt)
    if len(data) % size or (vr == "SS" and tag in _LUT_DESCRIPTOR_TAGS):
        return False
    if vr not in ("FL", "FD"):
        return True
    layout = f"{'<' if little else '>'}{len(data) // size}{fmt}"
    return struct.pack(layout, *struct.unpack(layout, data)) == data  # a NaN may not come back


def _encoded(ds: pydicom.Dataset, vr: str, items: list) -> bytes | None:
    """The value bytes pydicom's writers make of a value held as ``items`` (None: not known here)."""
    if len(items) == 1 and isinstance(items[0], str) and not items[0]:
        return b""  # empty: nothing is written
    if vr in MULTI_TEXT_VRS or vr in SINGLE_TEXT_VRS:
        encodings = ds.original_character_set or ds._character_set or [default_encoding]
        encodings = [encodings] if isinstance(encodings, str) else encodings
        if len(encodings) > 1 or encodings[0] in custom_encoders or encodings[0] in need_tail_escape:
            return None  # pydicom's encoder may add escape sequences: let it decode and write
        out = b"\\".join(item.encode(encodings[0]) for item in items)
        return out + b" " if len(out) % 2 else out
    if vr in ("IS", "DS"):  # pydicom writes the string it read, stripped
        text = "\\".join(item.strip() if type(item) is str else
                         item.original_string if hasattr(item, "original_string") else str(item)
                         for item in items)
    else:
        text = "\\".join(str(item) for item in items)
    if len(text) % 2:
        text += "\0" if vr == "UI" else " "
    return text.encode(default_encoding)


_PLAIN_VRS = (set(NUMBER_FORMATS) | BYTES_VRS | STRING_VRS | MULTI_TEXT_VRS | SINGLE_TEXT_VRS
              | {"AE", "UI", "UR", "IS", "DS"})


# --- writing: a dataset whose untouched elements are still raw --------------------------------


def encode(ds: pydicom.Dataset) -> bytes:
    """The bytes ``ds.save_as(..., enforce_file_format=False)`` writes, written faster.

    pydicom writes an element through a buffer and a handful of calls, about ten microseconds
    even for a raw element it only copies. Here the raw elements of the dataset (those the
    de-identification left as sent, see ``rewrites_as_sent``) are framed with one ``struct``
    call each; everything else (the file meta, decoded elements, sequences) is written by
    pydicom's own functions. A case this does not cover (deflate, a dataset to be re-encoded in
    another transfer syntax or character set, a value pydicom would turn to UN) is handed to
    pydicom whole, so the bytes are pydicom's either way.
    """
    try:
        out = _encode_fast(ds)
    except Exception:
        out = None
    if out is None:
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=False)
        return buf.getvalue()
    return out


def _encode_fast(ds: pydicom.Dataset) -> bytes | None:
    """dcmwrite(enforce_file_format=False), for a dataset written in the encoding it was read in."""
    if any(t >> 16 in (0, 2) for t in ds._dict):
        return None  # pydicom refuses these: let it say so
    file_meta = ds.file_meta if hasattr(ds, "file_meta") else FileMetaDataset()
    if "FileMetaInformationGroupLength" in file_meta:  # the one element writing it changes
        file_meta = copy.deepcopy(file_meta)
    tsyntax = file_meta.get("TransferSyntaxUID", None)
    encoding = _determine_encoding(ds, tsyntax, None, None, False)
    preamble = getattr(ds, "preamble", None)
    if (encoding == (True, False) or tsyntax == DeflatedExplicitVRLittleEndian
            or (preamble and len(preamble) != 128) or encoding != ds.original_encoding
            or ds.original_character_set != ds._character_set):
        return None
    if tsyntax and not tsyntax.is_private and tsyntax.is_transfer_syntax and "PixelData" in ds:
        ds["PixelData"].is_undefined_length = tsyntax.is_compressed
    fp = DicomBytesIO()
    fp.is_implicit_VR, fp.is_little_endian = encoding
    if preamble:
        fp.write(preamble)
        fp.write(b"DICM")
    if file_meta:
        write_file_meta_info(fp, file_meta, enforce_standard=False)
    return _write_body(fp, ds)


def _write_body(fp: DicomBytesIO, ds: pydicom.Dataset) -> bytes | None:
    """write_dataset(fp, ds): raw elements, and decoded ones holding plain text, framed here;
    the others (sequences, person names, numbers ...) written by pydicom."""
    implicit, little = fp.is_implicit_VR, fp.is_little_endian
    end = "<" if little else ">"
    charset = ds.get("SpecificCharacterSet", default_encoding)
    parts = [fp.getvalue()]
    for tag in sorted(ds._dict):
        if tag & 0xFFFF == 0 and tag >> 16 > 6:
            continue  # retired group lengths are not written
        elem = ds._dict[tag]
        if isinstance(elem, RawDataElement):
            framed = _framed(elem, implicit, end)
        else:
            framed = _framed_text(ds, elem, implicit, end)
        if framed is None:
            one = DicomBytesIO()
            one.is_implicit_VR, one.is_little_endian = implicit, little
            with tag_in_exception(tag):
                write_data_element(one, ds.get_item(tag), charset)
            framed = one.getvalue()
        parts.append(framed)
    return b"".join(parts)


def _frame(tag: int, vr: str | None, value: bytes, implicit: bool, end: str) -> bytes | None:
    """Tag, VR and length before ``value``, as write_data_element frames a defined length."""
    head = struct.pack(f"{end}HH", tag >> 16, tag & 0xFFFF)
    if implicit:
        return head + struct.pack(f"{end}L", len(value)) + value
    if vr is None or len(vr) != 2:
        return None
    if vr in EXPLICIT_VR_LENGTH_32:
        return head + vr.encode() + struct.pack(f"{end}HL", 0, len(value)) + value
    if len(value) > 0xFFFF:
        return None  # pydicom writes it as UN, and says so
    return head + vr.encode() + struct.pack(f"{end}H", len(value)) + value


def _framed(raw: RawDataElement, implicit: bool, end: str) -> bytes | None:
    """A raw element as write_data_element writes it (its value as it is), or None to let
    pydicom write it (undefined length, no usable VR, a value too long for its length field)."""
    if raw.value is None or raw.length == 0xFFFFFFFF:
        return None
    return _frame(raw.tag, raw.VR, raw.value, implicit, end)


_TEXT_VRS = STRING_VRS | MULTI_TEXT_VRS | SINGLE_TEXT_VRS | {"AE", "UI", "UR", "IS", "DS"}


def _framed_text(ds: pydicom.Dataset, elem: DataElement, implicit: bool, end: str) -> bytes | None:
    """A decoded element of a text VR holding plain str (or IS/DS) values, as pydicom's writers
    write it (see ``_encoded``); None for anything else."""
    vr, value = elem.VR, elem.value
    if vr not in _TEXT_VRS or elem.is_undefined_length:
        return None
    number = vr in ("IS", "DS")  # held as IS/DSfloat (a str there is one pydicom could not read)

    def plain(v) -> bool:
        return isinstance(v, IS | DSfloat) if number else isinstance(v, str)

    if value is None:
        items = [""]  # no value: nothing written
    elif plain(value):
        items = [value]
    elif isinstance(value, MultiValue | list | tuple) and len(value) > 1 and all(plain(v) for v in value):
        items = list(value)
    else:
        return None
    if vr in ("DA", "DT", "TM") and not all(type(v) is str for v in items):
        return None  # date and time objects have writers of their own
    payload = _encoded(ds, vr, items)
    return None if payload is None else _frame(elem.tag, vr, payload, implicit, end)


def key_tags(ds: pydicom.Dataset) -> dict:
    """The typed columns: text as sent (multiple values joined by ``\\``), numbers or NULL."""
    with as_read(ds):
        return _key_tags(ds)


def _key_tags(ds: pydicom.Dataset) -> dict:
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
