"""Cutting indexed genomic files by region, for htsget: index queries and BGZF slices.

- ``BinIndex`` reads the binning indexes (BAI and CSI of BAM; TBI and CSI of bgzipped VCF; CSI
  of BCF; formats in SAMv1 section 5, CSIv1 and the tabix paper) and answers, for a region, the
  virtual-offset chunks whose records may overlap it, the way htslib's ``hts_itr_query`` does
  (bins overlapping the region, chunks ending before the linear/``loffset`` minimum dropped,
  neighbours in one BGZF block merged).
- ``bgzf_slice`` turns a virtual-offset range into bytes that are themselves valid BGZF: the
  partial first and last blocks are decompressed, cut at the virtual offsets and compressed
  again; the whole blocks between are sent as they are on disk. Consecutive slices therefore
  concatenate into one stream whose uncompressed bytes are exactly those of the range, which
  is what lets a header, some body ranges and the EOF block form a file htslib reads.
- ``CramIndex`` reads ``.crai`` (gzipped text, one line per slice) and gives the byte ranges of
  the containers holding a region; CRAM containers are cut on their own boundaries, no
  re-encoding.

The granularity is the index's: a chunk may hold records outside the region (whole 16 kb
windows, whole CRAM containers). htsget allows that superset; clients filter.
"""

from __future__ import annotations

import bisect
import gzip
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
_BGZF_HEAD = b"\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\xff\x06\x00BC\x02\x00"
_BLOCK_INPUT = 0xFF00  # what htslib puts in one block; its deflate always fits the 64 KiB limit
_STREAM_CHUNK = 1 << 20


class SliceError(ValueError):
    """An index that cannot be read, or a range that does not fall on BGZF blocks."""


# --- binning indexes (BAI, CSI, TBI) ------------------------------------------------------------


@dataclass
class RefBins:
    bins: dict[int, tuple[int, np.ndarray]]  # bin -> (loffset, chunks as an (n, 2) uint64 array)
    linear: np.ndarray  # BAI/TBI 16 kb linear index (empty for CSI)


@dataclass
class BinIndex:
    kind: str  # BAI | CSI | TBI
    min_shift: int
    depth: int
    refs: list[RefBins]
    names: list[str] | None  # TBI and tabix-style CSI name their references; BAI and BCF's CSI do not
    n_no_coor: int | None  # unplaced reads counted by the index, when it says

    @property
    def span(self) -> int:
        """Positions the binning scheme covers (2^29 for BAI/TBI)."""
        return 1 << (self.min_shift + 3 * self.depth)

    def _firsts(self) -> list[int]:
        return [((1 << (3 * level)) - 1) // 7 for level in range(self.depth + 1)]

    def chunks(self, tid: int, beg: int, end: int) -> list[tuple[int, int]]:
        """Merged virtual-offset ranges holding every record of reference ``tid`` that overlaps
        [beg, end) (0-based, half-open), and possibly some others."""
        end = min(end, self.span)
        if tid < 0 or tid >= len(self.refs) or beg >= end:
            return []
        ref, firsts = self.refs[tid], self._firsts()
        min_off = self._min_offset(ref, beg, firsts)
        found: list[tuple[int, int]] = []
        for b, (_, chunks) in ref.bins.items():
            level = bisect.bisect_right(firsts, b) - 1
            size = 1 << (self.min_shift + 3 * (self.depth - level))
            lo = (b - firsts[level]) * size
            if lo >= self.span or not (lo < end and beg < lo + size):
                continue  # the pseudo-bin (bin numbers past the last level) falls here too
            found += [(int(u), int(v)) for u, v in chunks if v > min_off]
        return merge(found)

    def _min_offset(self, ref: RefBins, beg: int, firsts: list[int]) -> int:
        """No record overlapping ``beg`` starts before this offset (htslib's rule)."""
        if len(ref.linear):
            return int(ref.linear[min(beg >> self.min_shift, len(ref.linear) - 1)])
        b = firsts[self.depth] + (beg >> self.min_shift)
        while b > 0 and b not in ref.bins:
            first_sibling = (((b - 1) >> 3) << 3) + 1
            b = b - 1 if b > first_sibling else (b - 1) >> 3
        return ref.bins[b][0] if b in ref.bins else 0

    def _real_bins(self, ref: RefBins) -> Iterator[np.ndarray]:
        pseudo = ((1 << (3 * (self.depth + 1))) - 1) // 7 + 1  # its "chunks" are counts
        return (chunks for b, (_, chunks) in ref.bins.items() if b < pseudo and len(chunks))

    def placed_end(self) -> int:
        """Where the records with a position end: unplaced reads (BAM ``*``) follow."""
        return max((int(c[:, 1].max()) for ref in self.refs for c in self._real_bins(ref)), default=0)

    @cached_property
    def block_starts(self) -> list[int]:
        """Compressed offsets of BGZF blocks the index points into: where a long range may be cut."""
        offs: set[int] = set()
        for ref in self.refs:
            for chunks in self._real_bins(ref):
                offs.update(int(x) for x in np.unique(chunks >> np.uint64(16)))
            if len(ref.linear):
                offs.update(int(x) for x in np.unique(ref.linear >> np.uint64(16)))
        return sorted(offs)


def merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sort, then join ranges that overlap or meet in one BGZF block (as htslib merges chunks)."""
    out: list[tuple[int, int]] = []
    for u, v in sorted(ranges):
        if out and (u <= out[-1][1] or u >> 16 == out[-1][1] >> 16):
            if v > out[-1][1]:
                out[-1] = (out[-1][0], v)
        else:
            out.append((u, v))
    return out


def load_bin_index(path: str) -> BinIndex:
    """A BAI, CSI or TBI file (the latter two are BGZF-compressed)."""
    st = os.stat(path)
    return _load_bin_index(path, st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=32)
def _load_bin_index(path: str, mtime_ns: int, size: int) -> BinIndex:
    with open(path, "rb") as fh:
        raw = fh.read()
    try:
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        return _parse_bin_index(raw)
    except (struct.error, ValueError, OSError, EOFError, zlib.error) as exc:
        raise SliceError(f"index {os.path.basename(path)} cannot be read ({exc})") from None


def _parse_bin_index(buf: bytes) -> BinIndex:
    magic = buf[:4]
    names: list[str] | None = None
    if magic == b"BAI\x01":
        kind, min_shift, depth, csi = "BAI", 14, 5, False
        (n_ref,) = struct.unpack_from("<i", buf, 4)
        pos = 8
    elif magic == b"TBI\x01":
        kind, min_shift, depth, csi = "TBI", 14, 5, False
        n_ref, *_, l_nm = struct.unpack_from("<8i", buf, 4)
        names = _names(buf[36:36 + l_nm], n_ref)
        pos = 36 + l_nm
    elif magic == b"CSI\x01":
        kind, csi = "CSI", True
        min_shift, depth, l_aux = struct.unpack_from("<3i", buf, 4)
        aux = buf[16:16 + l_aux]
        if l_aux >= 28:  # a tabix configuration: format, columns, meta, skip, then the names
            (l_nm,) = struct.unpack_from("<i", aux, 24)
            names = _names(aux[28:28 + l_nm], None)
        pos = 16 + l_aux
        (n_ref,) = struct.unpack_from("<i", buf, pos)
        pos += 4
    else:
        raise SliceError(f"not a BAI, CSI or TBI index (magic {magic!r})")
    if not 0 < min_shift < 32 or not 0 < depth < 16 or n_ref < 0:
        raise SliceError("index header out of range")
    refs = []
    for _ in range(n_ref):
        (n_bin,) = struct.unpack_from("<i", buf, pos)
        pos += 4
        bins: dict[int, tuple[int, np.ndarray]] = {}
        for _ in range(n_bin):
            if csi:
                b, loff, n_chunk = struct.unpack_from("<IQi", buf, pos)
                pos += 16
            else:
                b, n_chunk = struct.unpack_from("<Ii", buf, pos)
                loff = 0
                pos += 8
            if pos + 16 * n_chunk > len(buf) or n_chunk < 0:
                raise SliceError("index truncated")
            bins[b] = (loff, np.frombuffer(buf, "<u8", 2 * n_chunk, pos).reshape(-1, 2))
            pos += 16 * n_chunk
        linear = np.zeros(0, dtype="<u8")
        if not csi:
            (n_intv,) = struct.unpack_from("<i", buf, pos)
            pos += 4
            if pos + 8 * n_intv > len(buf) or n_intv < 0:
                raise SliceError("index truncated")
            linear = np.frombuffer(buf, "<u8", n_intv, pos)
            pos += 8 * n_intv
        refs.append(RefBins(bins, linear))
    n_no_coor = struct.unpack_from("<Q", buf, pos)[0] if len(buf) >= pos + 8 else None
    if names is not None and len(names) < n_ref:
        raise SliceError("index names fewer references than it holds")
    return BinIndex(kind, min_shift, depth, refs, names, n_no_coor)


def _names(blob: bytes, n: int | None) -> list[str]:
    names = [x.decode() for x in blob.split(b"\x00")]
    if names and names[-1] == "":
        names.pop()
    return names if n is None else names[:n]


# --- CRAM index (.crai) ------------------------------------------------------------------------


@dataclass
class CramIndex:
    entries: list[tuple[int, int, int, int]]  # (reference id or -1, 1-based start, span, container offset)

    @property
    def containers(self) -> list[int]:
        return sorted({e[3] for e in self.entries})

    def ranges(self, want: Callable[[int, int, int], bool], data_end: int) -> list[tuple[int, int]]:
        """Byte ranges of the containers with a slice ``want(ref, start0, end0)`` accepts,
        each container running to the next one (the last to the EOF container)."""
        starts = self.containers
        nxt = dict(zip(starts, [*starts[1:], data_end], strict=True))
        hit = sorted({e[3] for e in self.entries if want(e[0], e[1] - 1, e[1] - 1 + max(e[2], 1))})
        out: list[tuple[int, int]] = []
        for off in hit:
            if out and out[-1][1] == off:
                out[-1] = (out[-1][0], nxt[off])
            else:
                out.append((off, nxt[off]))
        return out


def load_crai(path: str) -> CramIndex:
    try:
        with gzip.open(path, "rt") as fh:
            entries = []
            for line in fh:
                if line.strip():
                    ref, start, span, off, *_ = (int(x) for x in line.split())
                    entries.append((ref, start, span, off))
    except (OSError, EOFError, ValueError) as exc:
        raise SliceError(f"index {os.path.basename(path)} cannot be read ({exc})") from None
    return CramIndex(entries)


def cram_eof(path: str) -> bytes:
    """The file's end-of-file container (38 bytes in CRAM 3, 30 in 2.1); missing means cut short."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        head = fh.read(6)
        if head[:4] != b"CRAM":
            raise SliceError("not a CRAM file")
        n = 38 if head[4] >= 3 else 30
        if size < 26 + n:
            raise SliceError("CRAM file too short")
        fh.seek(size - n)
        tail = fh.read(n)
    if tail[9:13] != b"\xe0EOF":
        raise SliceError("CRAM file has no EOF container (truncated)")
    return tail


# --- BGZF slices ---------------------------------------------------------------------------------


def bgzf_data_end(path: str) -> int:
    """Compressed offset where the records end: the start of the BGZF EOF block."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        fh.seek(max(0, size - len(BGZF_EOF)))
        if fh.read() != BGZF_EOF:
            raise SliceError("no BGZF end-of-file block (the file is truncated)")
    return size - len(BGZF_EOF)


def read_block(fh, offset: int) -> tuple[bytes, int]:
    """The uncompressed bytes of the BGZF block at ``offset`` and where the next block starts."""
    fh.seek(offset)
    head = fh.read(12)
    if len(head) < 12 or head[:4] != b"\x1f\x8b\x08\x04":
        raise SliceError(f"offset {offset} is not the start of a BGZF block")
    (xlen,) = struct.unpack_from("<H", head, 10)
    extra = fh.read(xlen)
    bsize, i = None, 0
    while i + 4 <= len(extra):
        slen = struct.unpack_from("<H", extra, i + 2)[0]
        if extra[i:i + 2] == b"BC" and slen == 2:
            (bsize,) = struct.unpack_from("<H", extra, i + 4)
        i += 4 + slen
    if bsize is None:
        raise SliceError(f"offset {offset} is not the start of a BGZF block")
    rest = fh.read(bsize + 1 - 12 - xlen)
    if len(rest) != bsize + 1 - 12 - xlen or len(rest) < 8:
        raise SliceError(f"the BGZF block at {offset} is truncated")
    crc, isize = struct.unpack_from("<II", rest, len(rest) - 8)
    try:
        data = zlib.decompress(rest[:-8], -15)
    except zlib.error as exc:
        raise SliceError(f"the BGZF block at {offset} is corrupt ({exc})") from None
    if len(data) != isize or zlib.crc32(data) != crc:
        raise SliceError(f"the BGZF block at {offset} fails its CRC")
    return data, offset + bsize + 1


def bgzf_compress(data: bytes, level: int = 6) -> bytes:
    """``data`` as BGZF blocks (no EOF block); nothing for nothing."""
    out = []
    for i in range(0, len(data), _BLOCK_INPUT):
        piece = data[i:i + _BLOCK_INPUT]
        c = zlib.compressobj(level, zlib.DEFLATED, -15)
        cdata = c.compress(piece) + c.flush()
        out.append(_BGZF_HEAD + struct.pack("<H", len(cdata) + 25) + cdata
                   + struct.pack("<II", zlib.crc32(piece), len(piece)))
    return b"".join(out)


@dataclass(frozen=True)
class Slice:
    """What one data URL sends: ``head`` (re-compressed), file bytes ``middle``, ``tail``."""

    path: str
    head: bytes
    middle: tuple[int, int]
    tail: bytes

    @property
    def size(self) -> int:
        return len(self.head) + self.middle[1] - self.middle[0] + len(self.tail)

    def stream(self) -> Iterator[bytes]:
        if self.head:
            yield self.head
        start, end = self.middle
        if end > start:
            with open(self.path, "rb") as fh:
                fh.seek(start)
                while start < end:
                    piece = fh.read(min(_STREAM_CHUNK, end - start))
                    if not piece:
                        raise SliceError("the file got shorter while it was sent")
                    start += len(piece)
                    yield piece
        if self.tail:
            yield self.tail


def bgzf_slice(path: str, vbeg: int, vend: int) -> Slice:
    """BGZF blocks whose uncompressed bytes are exactly those between two virtual offsets."""
    size = os.path.getsize(path)
    cb, ub, ce, ue = vbeg >> 16, vbeg & 0xFFFF, vend >> 16, vend & 0xFFFF
    if vbeg < 0 or vend < vbeg or ce > size or (ce == size and ue):
        raise SliceError("range outside the file")
    if vbeg == vend:
        return Slice(path, b"", (0, 0), b"")
    with open(path, "rb") as fh:
        data, nxt = read_block(fh, cb)
        if cb == ce:
            if ue > len(data):
                raise SliceError("virtual offset past the end of its block")
            return Slice(path, bgzf_compress(data[ub:ue]), (0, 0), b"")
        if ub > len(data):
            raise SliceError("virtual offset past the end of its block")
        head, mid = (bgzf_compress(data[ub:]), nxt) if ub else (b"", cb)
        tail = b""
        if ce < size:
            last, _ = read_block(fh, ce)  # also proves ce is a block start
            if ue > len(last):
                raise SliceError("virtual offset past the end of its block")
            tail = bgzf_compress(last[:ue])
    if mid > ce:
        raise SliceError("range end is inside the first block")
    return Slice(path, head, (mid, ce), tail)


def byte_slice(path: str, start: int, end: int) -> Slice:
    """Plain bytes [start, end) of the file (CRAM containers)."""
    if not 0 <= start <= end <= os.path.getsize(path):
        raise SliceError("range outside the file")
    return Slice(path, b"", (start, end), b"")


def split(ranges: list[tuple[int, int]], starts: list[int], limit: int,
          shift: int = 16) -> list[tuple[int, int]]:
    """Cut ranges longer than ``limit`` compressed bytes at known block starts (offsets
    ``>> shift`` of the range ends), so that no one data URL is huge."""
    out = []
    for u, v in ranges:
        while (v >> shift) - (u >> shift) > limit:
            lo, hi = u >> shift, v >> shift
            i = bisect.bisect_right(starts, lo + limit) - 1
            cut = starts[i] if i >= 0 and starts[i] > lo else None
            if cut is None:  # no known start within the limit: take the next one after it
                j = bisect.bisect_right(starts, lo)
                cut = starts[j] if j < len(starts) else None
            if cut is None or cut >= hi:
                break
            out.append((u, cut << shift))
            u = cut << shift
        out.append((u, v))
    return out
