"""Split a VCF/BCF into chunks that Spark tasks read on their own.

- bgzipped VCF with a ``.tbi``/``.csi`` index, or BCF with a ``.csi``: genomic regions; a task
  fetches its region with pysam and keeps the records that *start* in it, so a deletion that
  spans a boundary is read once.
- plain-text VCF: byte ranges aligned to line starts (as Hadoop splits text); line numbers
  are kept by counting newlines before the range.
- bgzipped or BCF without an index: one chunk, read front to back by one task.

Region reads do not know line numbers; a rejected record's line is found afterwards by
:func:`locate_lines` (one scan of the file, only when something was rejected).
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from omicslake.errors import InputError
from omicslake.ingest import count_newlines

BYTES_PER_CHUNK = 64 << 20
MIN_REGION_BP = 1_000_000


@dataclass(frozen=True)
class Chunk:
    kind: str  # region | bytes | whole
    contig: str | None = None
    start: int = 0  # region: 0-based inclusive; bytes: offset
    end: int | None = None  # region: 0-based exclusive; bytes: offset (None = to EOF)
    index: str | None = None
    fmt: str = "bgzf"

    def to_dict(self) -> dict:
        return asdict(self)


def file_format(path: str) -> str:
    """``bcf``, ``bgzf`` (bgzipped VCF) or ``plain``."""
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic[:3] == b"BCF":
        return "bcf"
    if magic[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as fh:
                head = fh.read(3)
        except (OSError, EOFError) as exc:
            raise InputError(f"{path}: truncated or corrupt compressed file ({exc})") from exc
        return "bcf" if head == b"BCF" else "bgzf"
    return "plain"


def find_index(path: str) -> str | None:
    for suffix in (".tbi", ".csi"):
        if Path(path + suffix).is_file():
            if os.path.getmtime(path + suffix) + 1 < os.path.getmtime(path):
                raise InputError(
                    f"{path}: index {path + suffix} is older than the file; re-index it "
                    f"(`bcftools index -f {path}` or `tabix -f -p vcf {path}`) or remove it"
                )
            return path + suffix
    return None


_BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")


def check_bgzf_eof(path: str) -> None:
    """A bgzip file ends with a fixed empty block; without it the file was cut short."""
    with open(path, "rb") as fh:
        fh.seek(max(0, os.path.getsize(path) - len(_BGZF_EOF)))
        if fh.read() != _BGZF_EOF:
            raise InputError(f"{path}: truncated bgzip file (no BGZF end-of-file block); "
                             "re-send the complete file")


def plan_chunks(path: str, contigs: dict[str, int], target: int) -> list[Chunk]:
    """Chunks for about ``target`` tasks, by region where an index allows it."""
    fmt = file_format(path)
    if fmt == "plain":
        size = os.path.getsize(path)
        step = max(1 << 20, min(BYTES_PER_CHUNK, -(-size // max(1, target))))
        return [Chunk("bytes", start=s, end=min(size, s + step), fmt=fmt)
                for s in range(0, size, step)] or [Chunk("bytes", start=0, end=0, fmt=fmt)]
    check_bgzf_eof(path)
    index = find_index(path)
    if index is None:
        return [Chunk("whole", fmt=fmt)]
    return _balanced_regions(path, fmt, index, contigs, target)


def _balanced_regions(path: str, fmt: str, index: str, contigs: dict[str, int], target: int) -> list[Chunk]:
    """Cut contigs into fine bins, drop the bins the index says are empty, and group the rest
    into about ``target`` contiguous regions, so a file that covers a small part of the genome
    (an exome, a panel, a simulated region) still spreads over every task."""
    indexed = _indexed_contigs(path, fmt, index)
    total = sum(contigs.get(c, 0) for c in indexed) or 1
    step = max(MIN_REGION_BP // 20, total // max(1, 64 * target))
    bins: list[tuple[str, int, int | None]] = []
    for contig in indexed:
        length = contigs.get(contig, 0)
        if not length:
            bins.append((contig, 0, None))
            continue
        for s in range(0, length, step):
            bins.append((contig, s, None if s + step >= length else s + step))
    occupied = [b for b in bins if _has_records(path, fmt, index, *b)]
    if not occupied:
        return [Chunk("region", indexed[0], 0, None, index, fmt)] if indexed else [Chunk("whole", fmt=fmt)]
    per = -(-len(occupied) // max(1, target))
    chunks: list[Chunk] = []
    for contig in dict.fromkeys(c for c, _, _ in occupied):
        mine = [b for b in occupied if b[0] == contig]
        for i in range(0, len(mine), per):
            group = mine[i:i + per]
            start = 0 if i == 0 else group[0][1]
            end = None if i + per >= len(mine) else mine[i + per][1]
            chunks.append(Chunk("region", contig, start, end, index, fmt))
    return chunks


def _has_records(path: str, fmt: str, index: str, contig: str, start: int, end: int | None) -> bool:
    import pysam

    if fmt == "bcf":
        with pysam.VariantFile(path, index_filename=index) as vf:
            return next(iter(vf.fetch(contig, start, end)), None) is not None
    with pysam.TabixFile(path, index=index) as tf:
        return next(iter(tf.fetch(contig, start, end)), None) is not None


def _indexed_contigs(path: str, fmt: str, index: str) -> list[str]:
    import pysam

    if fmt == "bcf":
        with pysam.VariantFile(path, index_filename=index) as vf:
            return list(vf.index.keys())
    with pysam.TabixFile(path, index=index) as tf:
        return list(tf.contigs)


def read_chunk(path: str, chunk: Chunk, header_lines: int) -> Iterator[tuple[int | None, str]]:
    """Yield (line number or None, data line) for the records that start in the chunk."""
    try:
        if chunk.kind == "bytes":
            yield from _read_bytes(path, chunk)
        elif chunk.kind == "region":
            yield from _read_region(path, chunk)
        else:
            yield from _read_whole(path, header_lines)
    except (EOFError, OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{path}: truncated or corrupt file ({exc})") from exc


def _read_region(path: str, chunk: Chunk) -> Iterator[tuple[None, str]]:
    import pysam

    lo, hi = chunk.start, chunk.end
    if chunk.fmt == "bcf":
        with pysam.VariantFile(path, index_filename=chunk.index) as vf:
            for rec in vf.fetch(chunk.contig, lo, hi):
                if rec.start >= lo and (hi is None or rec.start < hi):
                    yield None, str(rec)
        return
    with pysam.TabixFile(path, index=chunk.index) as tf:
        for line in tf.fetch(chunk.contig, lo, hi, multiple_iterators=True):
            start = int(line.split("\t", 2)[1]) - 1
            if start >= lo and (hi is None or start < hi):
                yield None, line


def _read_whole(path: str, header_lines: int) -> Iterator[tuple[int | None, str]]:
    if file_format(path) == "bcf":
        import pysam

        with pysam.VariantFile(path) as vf:
            for rec in vf:
                yield None, str(rec)
        return
    with gzip.open(path, "rt", encoding="utf-8", newline="\n") as fh:
        for lineno, line in enumerate(fh, start=1):
            if lineno > header_lines and line.strip():
                yield lineno, line


def _read_bytes(path: str, chunk: Chunk) -> Iterator[tuple[int, str]]:
    with open(path, "rb") as fh:
        pos = chunk.start
        lineno = 0
        if pos > 0:
            lineno = count_newlines(fh, 0, pos)
            fh.seek(pos - 1)
            if fh.read(1) != b"\n":  # the line that straddles the start belongs to the chunk before
                pos += len(fh.readline())
                lineno += 1
        else:
            fh.seek(0)
        end = chunk.end if chunk.end is not None else float("inf")
        while pos < end:
            raw = fh.readline()
            if not raw:
                break
            pos += len(raw)
            lineno += 1
            if raw.startswith(b"#") or not raw.strip():
                continue
            yield lineno, raw.decode("utf-8")


def locate_lines(path: str, raws: set[str]) -> dict[str, int]:
    """Line numbers of the given raw lines (first occurrence), by one scan of the file."""
    found: dict[str, int] = {}
    if not raws or file_format(path) == "bcf":
        return found
    opener = gzip.open if file_format(path) == "bgzf" else open
    with opener(path, "rt", encoding="utf-8", newline="\n") as fh:
        for lineno, line in enumerate(fh, start=1):
            key = line.rstrip("\r\n")
            if key in raws and key not in found:
                found[key] = lineno
                if len(found) == len(raws):
                    break
    return found
