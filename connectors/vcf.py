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

import pyarrow as pa

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
        build=from_header or build, header_lines=n_header, meta=meta,
    )


def _convert(value: str, ftype: str):
    if value in (".", ""):
        return None
    if ftype == "Integer":
        return int(value)
    if ftype == "Float":
        f = float(value)
        return None if math.isnan(f) else f
    return value


def parse_info(text: str, defs: dict[str, FieldDef]) -> dict:
    """INFO typed by the header: Number 1/0 are scalars, anything else is a list."""
    out: dict = {}
    if text in (".", ""):
        return out
    for item in text.split(";"):
        if not item:
            continue
        key, eq, raw = item.partition("=")
        d = defs.get(key)
        if d is None:
            raise ValueError(f"INFO field {key} is not declared in the header")
        if d.type == "Flag":
            out[key] = True
            continue
        if not eq:
            raise ValueError(f"INFO field {key} has no value")
        values = [_convert(v, d.type) for v in raw.split(",")]
        out[key] = values[0] if d.number in ("1",) and len(values) == 1 else values
    return out


def _int_or_none(v: str | None) -> int | None:
    return None if v in (None, ".", "") else int(v)


def parse_genotype(sample_index: int, keys: list[str], text: str) -> dict:
    parts = text.split(":")
    values = dict(zip(keys, parts, strict=False))
    gt_text = values.get("GT", ".")
    phased = "|" in gt_text
    alleles = gt_text.replace("|", "/").split("/")
    gt = [-1 if a in (".", "") else int(a) for a in alleles]
    ad_text = values.get("AD")
    ad = None if ad_text in (None, ".", "") else [
        -1 if a == "." else int(a) for a in ad_text.split(",")
    ]
    return {
        "sample_index": sample_index,
        "gt": gt,
        "phased": phased,
        "dp": _int_or_none(values.get("DP")),
        "gq": _int_or_none(values.get("GQ")),
        "ad": ad,
    }


def parse_record(line: str, header: VcfHeader) -> dict:
    """One data line to a bronze row (without provenance); raises ValueError on bad input."""
    cols = line.rstrip("\n").rstrip("\r").split("\t")
    expected = 8 + (1 + len(header.samples) if header.samples else 0)
    if len(cols) != expected:
        raise ValueError(f"expected {expected} tab-separated columns, found {len(cols)}")
    chrom, pos_s, vid, ref, alt, qual, filt, info = cols[:8]
    if not pos_s.isdigit() or int(pos_s) < 1:
        raise ValueError(f"POS {pos_s!r} is not a positive integer")
    if not ref or any(b not in "ACGTNacgtn" for b in ref):
        raise ValueError(f"REF {ref!r} is not a DNA sequence")
    pos = int(pos_s)
    alts = [] if alt == "." else alt.split(",")
    info_d = parse_info(info, header.info)
    end = info_d.get("END")
    genotypes = None
    if header.samples:
        keys = cols[8].split(":")
        genotypes = []
        for k, (s, t) in enumerate(zip(header.samples, cols[9:], strict=True)):
            try:
                genotypes.append(parse_genotype(k, keys, t))
            except ValueError as exc:
                raise ValueError(f"sample {s}: bad genotype {t!r} for FORMAT {cols[8]} ({exc})") from None
        n_alleles = 1 + len(alts)
        for g in genotypes:
            if any(a >= n_alleles for a in g["gt"]):
                raise ValueError(f"sample {header.samples[g['sample_index']]}: GT allele index out of range")
    return {
        "contig": normalise_contig(chrom),
        "pos": pos,
        "end": int(end) if isinstance(end, int) else pos + len(ref) - 1,
        "id": None if vid == "." else vid,
        "ref": ref.upper(),
        "alt": [a.upper() for a in alts],
        "qual": None if qual == "." else float(qual),
        "filter": None if filt == "." else filt.split(";"),
        "info_json": json.dumps(info_d, sort_keys=True),
        "genotypes": genotypes,
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


def parsed_schema(bronze_schema: pa.Schema) -> pa.Schema:
    """Bronze columns plus the reason and raw text a rejected line needs."""
    return bronze_schema.append(pa.field("_error", pa.string())).append(pa.field("_raw", pa.string()))
