"""VCF reading: header typing with pysam, record parsing on the executors.

The header is read on the driver (contigs, samples, INFO/FORMAT types, build). Records are
parsed from text inside ``mapInArrow`` tasks, so the driver never holds a file; each line
keeps its 1-based line number so a malformed record can be quarantined with file and line.
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from connectors.contigs import guess_build, normalise_contig
from omicslake.errors import InputError


@dataclass
class FieldDef:
    number: str
    type: str


@dataclass
class VcfHeader:
    path: str
    samples: list[str]
    contigs: dict[str, int]
    info: dict[str, FieldDef]
    formats: dict[str, FieldDef]
    build: str | None
    header_lines: int
    meta: list[str] = field(default_factory=list)
    filters: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> VcfHeader:
        d = json.loads(text)
        d["info"] = {k: FieldDef(**v) for k, v in d["info"].items()}
        d["formats"] = {k: FieldDef(**v) for k, v in d["formats"].items()}
        return cls(**d)


def open_text(path: str):
    """Plain or (b)gzipped VCF text; gzip reads bgzip, which is a series of gzip members."""
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace", newline="\n")
    return open(path, encoding="utf-8", errors="replace", newline="\n")


def read_header(path: str, build: str | None = None) -> VcfHeader:
    """Read and type the header; a file without a valid header fails with InputError."""
    import pysam

    if not Path(path).is_file():
        raise InputError(f"{path}: no such file")
    from connectors.vcf_chunks import file_format

    fmt = file_format(path)
    try:
        with pysam.VariantFile(path) as vf:
            hdr = vf.header
            samples = list(hdr.samples)
            contigs = {name: (c.length or 0) for name, c in hdr.contigs.items()}
            info = {k: FieldDef(str(v.number), v.type) for k, v in hdr.info.items()}
            formats = {k: FieldDef(str(v.number), v.type) for k, v in hdr.formats.items()}
            filters = list(hdr.filters)
            meta = [str(r).rstrip("\n") for r in hdr.records]
    except (ValueError, OSError) as exc:
        if "truncated" in str(exc).lower() or "EOF" in str(exc):
            raise InputError(f"{path}: truncated or corrupt compressed file ({exc})") from exc
        raise InputError(f"{path}: not a readable VCF/BCF with a valid header ({exc})") from exc
    from_header = guess_build(meta, contigs)
    if build and from_header and build != from_header:
        raise InputError(f"{path}: the header says {from_header} but {build} was given "
                         "(--build or the manifest); fix whichever is wrong")
    n_header = 0
    if fmt != "bcf":
        with open_text(path) as fh:
            for line in fh:
                if not line.startswith("#"):
                    break
                n_header += 1
    return VcfHeader(
        path=str(path), samples=samples, contigs=contigs, info=info, formats=formats,
        build=from_header or build, header_lines=n_header, meta=meta, filters=filters,
    )


INT32 = range(-(2**31) + 8, 2**31)  # htslib reserves the lowest values for missing/end markers
HTS_POS_MAX = ((2**31 - 1) << 32) | (2**31 - 1)


class Extreme(ValueError):
    """An integer outside the 32 bits htslib stores; it reads it as missing, with a warning."""


def _int32(value: str) -> int:
    v = int(value)
    if v not in INT32:
        raise Extreme(value)
    return v


def _convert(value: str, ftype: str):
    if value in (".", ""):
        return None
    if ftype == "Integer":
        return _int32(value)
    if ftype == "Float":
        f = float(value)
        return None if math.isnan(f) else f
    return value


UNDECLARED = FieldDef(".", "String")  # what htslib assumes for a key the header lacks


def parse_info(text: str, defs: dict[str, FieldDef], gaps: set[str] | None = None) -> dict:
    """INFO typed by the header: Number 1/0 are scalars, anything else is a list.

    As permissive as htslib: an undeclared key is read as ``String``, ``Number=.`` and a key
    without a value as a flag; each such gap is added to ``gaps`` (one warning per kind).
    """
    out: dict = {}
    if text in (".", ""):
        return out
    for item in text.split(";"):
        if not item:
            continue
        key, eq, raw = item.partition("=")
        d = defs.get(key)
        if d is None:
            d = UNDECLARED
            if gaps is not None:
                gaps.add(f"INFO/{key} is not declared in the header; read as Type=String, Number=.")
        if d.type == "Flag" or not eq:
            if not eq and d.type != "Flag" and gaps is not None:
                gaps.add(f"INFO/{key} has no value; read as a flag")
            out[key] = True
            continue
        try:
            values = [_convert(v, d.type) for v in raw.split(",")]
        except Extreme:
            values = [None if _extreme(v) else _convert(v, d.type) for v in raw.split(",")]
            if gaps is not None:
                gaps.add(f"INFO/{key} has a value outside the 32-bit integer range; read as missing")
        out[key] = values[0] if d.number in ("1",) and len(values) == 1 else values
    return out


def header_gaps(header: VcfHeader, fmt: str, filters: list[str] | None, gaps: set[str]) -> None:
    """FORMAT and FILTER keys the header does not declare (htslib warns and reads them)."""
    for key in fmt.split(":") if fmt else ():
        if key not in header.formats:
            gaps.add(f"FORMAT/{key} is not declared in the header; read as Type=String, Number=.")
    for key in filters or ():
        if key != "PASS" and key not in header.filters:
            gaps.add(f"FILTER/{key} is not declared in the header")


def info_end(info: dict) -> int | None:
    """INFO/END when it is a real integer (a bare ``END`` reads as a flag, not position 1)."""
    end = info.get("END")
    return end if isinstance(end, int) and not isinstance(end, bool) else None


def _extreme(value: str) -> bool:
    try:
        _int32(value)
    except Extreme:
        return True
    except ValueError:
        return False
    return False


def _int_or_none(v: str | None) -> int | None:
    """A FORMAT integer; one outside 32 bits is missing, as htslib reads it."""
    if v in (None, ".", ""):
        return None
    n = int(v)
    return n if n in INT32 else None


def parse_genotype(sample_index: int, keys: list[str], text: str) -> dict:
    parts = text.split(":")
    values = dict(zip(keys, parts, strict=False))
    gt_text = values.get("GT", ".")
    phased = "|" in gt_text
    alleles = gt_text.replace("|", "/").split("/")
    gt = [-1 if a in (".", "") else int(a) for a in alleles]
    if any(a < -1 for a in gt) or any(a.startswith(("-", "+")) for a in alleles):
        raise ValueError(f"GT {gt_text!r} has a negative allele index")
    ad_text = values.get("AD")
    ad = None if ad_text in (None, ".", "") else [
        -1 if a == "." or (n := int(a)) not in INT32 else n for a in ad_text.split(",")
    ]
    return {
        "sample_index": sample_index,
        "gt": gt,
        "phased": phased,
        "dp": _int_or_none(values.get("DP")),
        "gq": _int_or_none(values.get("GQ")),
        "ad": ad,
    }


@dataclass
class Fixed:
    """The eight fixed columns of a record, checked and typed, and its unparsed sample text."""

    contig: str
    pos: int
    end: int
    id: str | None
    ref: str
    alt: list[str]
    qual: float | None
    filter: list[str] | None
    info_json: str
    fmt: str
    samples_text: str
    n_alleles: int


_DNA = frozenset("ACGTNacgtn")
_NOT_PLAIN = frozenset("<>[].*")


def _alts(alt: str) -> list[str]:
    """ALT alleles; sequences are upper-cased, symbolic and breakend text is kept as sent."""
    if alt == ".":
        return []
    if _NOT_PLAIN.isdisjoint(alt):
        return alt.upper().split(",")
    return [a if _NOT_PLAIN.intersection(a) else a.upper() for a in alt.split(",")]


def parse_fixed(line: str, header: VcfHeader, contigs: dict[str, str] | None = None,
                gaps: set[str] | None = None) -> Fixed:
    """CHROM to INFO of one data line; raises ValueError where htslib would refuse the record."""
    parts = line.rstrip("\n").rstrip("\r").split("\t", 9)
    want = 10 if header.samples else 8
    if len(parts) < want or (not header.samples and len(parts) > 8):
        raise ValueError(f"expected {8 + (1 + len(header.samples) if header.samples else 0)} "
                         f"tab-separated columns, found {line.count(chr(9)) + 1}")
    chrom, pos_s, vid, ref, alt, qual, filt, info = parts[:8]
    if not pos_s.isdigit() or int(pos_s) < 1:
        raise ValueError(f"POS {pos_s!r} is not a positive integer")
    if not ref or not _DNA.issuperset(ref):
        raise ValueError(f"REF {ref!r} is not a DNA sequence")
    pos = int(pos_s)
    if pos > HTS_POS_MAX:
        raise ValueError(f"POS {pos_s} is beyond the largest position htslib accepts ({HTS_POS_MAX})")
    alts = _alts(alt)
    info_d = parse_info(info, header.info, gaps)
    filters = None if filt == "." else filt.split(";")
    fmt = parts[8] if header.samples else ""
    if gaps is not None:
        header_gaps(header, fmt, filters, gaps)
    end = info_end(info_d)
    contig = contigs.get(chrom) if contigs is not None else None
    if contig is None:
        contig = normalise_contig(chrom)
        if contigs is not None:
            contigs[chrom] = contig
    return Fixed(
        contig, pos, end if end is not None else pos + len(ref) - 1,
        None if vid == "." else vid, ref.upper(), alts,
        None if qual == "." else float(qual), filters,
        json.dumps(info_d, sort_keys=True), fmt,
        parts[9] if header.samples else "", 1 + len(alts),
    )


def parse_record(line: str, header: VcfHeader, gaps: set[str] | None = None) -> dict:
    """One data line to a bronze row (without provenance); raises ValueError on bad input."""
    f = parse_fixed(line, header, None, gaps)
    genotypes = None
    if header.samples:
        texts = f.samples_text.split("\t")
        if len(texts) != len(header.samples):
            raise ValueError(f"expected {9 + len(header.samples)} tab-separated columns, "
                             f"found {9 + len(texts)}")
        keys = f.fmt.split(":")
        genotypes = []
        for k, (s, t) in enumerate(zip(header.samples, texts, strict=True)):
            try:
                genotypes.append(parse_genotype(k, keys, t))
            except ValueError as exc:
                raise ValueError(f"sample {s}: bad genotype {t!r} for FORMAT {f.fmt} ({exc})") from None
        for g in genotypes:
            if any(a >= f.n_alleles for a in g["gt"]):
                raise ValueError(f"sample {header.samples[g['sample_index']]}: GT allele index out of range")
    return {
        "contig": f.contig, "pos": f.pos, "end": f.end, "id": f.id, "ref": f.ref, "alt": f.alt,
        "qual": f.qual, "filter": f.filter, "info_json": f.info_json, "genotypes": genotypes,
    }


def iter_records(path: str, header: VcfHeader) -> Iterator[tuple[int, str, dict | None, str | None]]:
    """Yield (line number, raw line, parsed row or None, error or None) for each data line."""
    try:
        with open_text(path) as fh:
            for lineno, line in enumerate(fh, start=1):
                if lineno <= header.header_lines or not line.strip():
                    continue
                try:
                    yield lineno, line, parse_record(line, header), None
                except (ValueError, KeyError, IndexError) as exc:
                    yield lineno, line, None, str(exc)
    except (EOFError, gzip.BadGzipFile, OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: truncated or corrupt compressed file ({exc})") from exc
