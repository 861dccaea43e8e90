"""Alignment QC from BAM/CRAM with pysam: flagstat counts and a depth histogram per region.

Work is split by genomic window (the index makes each window a seek), so Spark tasks share a
file. A read is counted by the window holding its start, so no read is counted twice;
depth is counted per reference base inside the window from the read's aligned blocks
(deletions and skips are not coverage), skipping unmapped, secondary, QC-fail and duplicate
reads, as ``samtools depth`` does by default. Unplaced unmapped reads form one extra task.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from omicslake.errors import InputError

WINDOW_BP = 10_000_000
DEPTH_CAP = 1_000_000
FLAG_KEYS = ("total", "qc_failed", "secondary", "supplementary", "duplicates", "mapped",
             "paired", "properly_paired", "singletons")
_SKIP_DEPTH = 0x4 | 0x100 | 0x200 | 0x400


@dataclass(frozen=True)
class BamHeader:
    path: str
    fmt: str  # BAM | CRAM
    index: str
    samples: list[str]
    contigs: dict[str, int]


def _open(path: str, reference: str | None, index: str | None = None):
    import pysam

    kwargs = {"reference_filename": reference} if reference else {}
    if index:
        kwargs["index_filename"] = index
    return pysam.AlignmentFile(path, "r", **kwargs)


def find_index(path: str) -> str | None:
    for cand in (path + ".bai", path + ".csi", path + ".crai", str(Path(path).with_suffix(".bai"))):
        if Path(cand).is_file():
            return cand
    return None


def read_header(path: str, reference: str | None = None) -> BamHeader:
    """Format, sample names (@RG SM), contigs and index; clear errors for what is missing."""
    if not Path(path).is_file():
        raise InputError(f"{path}: no such file")
    fmt = "CRAM" if path.endswith(".cram") else "BAM"
    if fmt == "CRAM" and not reference:
        raise InputError(f"{path}: CRAM needs the reference it was written against; pass --reference FASTA")
    index = find_index(path)
    if index is None:
        raise InputError(f"{path}: no index (.bai/.csi/.crai) next to it; create one with "
                         f"`samtools index {path}`")
    try:
        with _open(path, reference, index) as af:
            hdr = af.header.to_dict()
            contigs = dict(zip(af.references, af.lengths, strict=True))
    except Exception as exc:  # pysam raises ValueError, OSError and others for a damaged file
        raise InputError(f"{path}: not a readable {fmt} file ({exc})") from exc
    samples = sorted({rg["SM"] for rg in hdr.get("RG", []) if rg.get("SM")})
    if not samples:
        raise InputError(f"{path}: no @RG line with SM (sample) in the header; the sample cannot be known")
    return BamHeader(path, fmt, index, samples, contigs)


def plan_windows(contigs: dict[str, int], window: int = WINDOW_BP) -> list[tuple[str, int, int]]:
    out = [(c, s, min(n, s + window)) for c, n in contigs.items() for s in range(0, n, window)]
    return [*out, ("*", 0, 0)]


def load_targets(bed: str | None) -> dict[str, list[tuple[int, int]]]:
    """BED intervals (0-based, half-open), merged per contig."""
    if not bed:
        return {}
    raw: dict[str, list[tuple[int, int]]] = {}
    with open(bed) as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip() or line.startswith(("#", "track", "browser")):
                continue
            cols = line.rstrip("\n").split("\t")
            try:
                raw.setdefault(cols[0], []).append((int(cols[1]), int(cols[2])))
            except (IndexError, ValueError):
                raise InputError(f"{bed}: line {n} is not BED (chrom, start, end)") from None
    merged = {}
    for contig, ivs in raw.items():
        ivs.sort()
        out = [list(ivs[0])]
        for s, e in ivs[1:]:
            if s <= out[-1][1]:
                out[-1][1] = max(out[-1][1], e)
            else:
                out.append([s, e])
        merged[contig] = [(s, e) for s, e in out]
    return merged


def window_qc(path: str, reference: str | None, index: str, contig: str, start: int, end: int,
              targets: list[tuple[int, int]] | None, whole_genome: bool) -> dict:
    """Flag counts for reads starting in the window, and its depth histogram."""
    counts = dict.fromkeys(FLAG_KEYS, 0)
    hist = np.zeros(0, dtype=np.int64)
    with _open(path, reference, index) as af:
        if contig == "*":
            reads = af.fetch(contig="*")
            diff = None
        else:
            reads = af.fetch(contig, start, end)
            diff = np.zeros(end - start + 1, dtype=np.int32)
        for r in reads:
            flag = r.flag
            if contig == "*" or start <= r.reference_start < end:
                _count(counts, flag)
            if diff is not None and not flag & _SKIP_DEPTH:
                for bs, be in r.get_blocks():
                    bs, be = max(bs, start), min(be, end)
                    if bs < be:
                        diff[bs - start] += 1
                        diff[be - start] -= 1
    if diff is not None:
        depth = np.cumsum(diff[:-1])
        if targets is not None:
            mask = np.zeros(end - start, dtype=bool)
            for s, e in targets:
                s, e = max(s, start), min(e, end)
                if s < e:
                    mask[s - start:e - start] = True
            depth = depth[mask]
        elif not whole_genome:
            depth = depth[:0]
        hist = np.bincount(np.minimum(depth, DEPTH_CAP))
    nz = np.nonzero(hist)[0]
    return {**counts, "depth_values": nz.tolist(), "depth_counts": hist[nz].tolist()}


def _count(c: dict, flag: int) -> None:
    """samtools flagstat's rules (QC-passed and failed together)."""
    c["total"] += 1
    if flag & 0x200:
        c["qc_failed"] += 1
    if flag & 0x100:
        c["secondary"] += 1
    elif flag & 0x800:
        c["supplementary"] += 1
    if flag & 0x400:
        c["duplicates"] += 1
    if not flag & 0x4:
        c["mapped"] += 1
    if flag & 0x900:
        return
    if flag & 0x1:
        c["paired"] += 1
        if flag & 0x2 and not flag & 0x4:
            c["properly_paired"] += 1
        if not flag & 0x4 and flag & 0x8:
            c["singletons"] += 1


def summarise(parts: list[dict]) -> dict:
    """Add up windows: counts, then mean/median depth and the share of bases at >= 20x."""
    out = {k: sum(p[k] for p in parts) for k in FLAG_KEYS}
    hist: dict[int, int] = {}
    for p in parts:
        for v, n in zip(p["depth_values"], p["depth_counts"], strict=True):
            hist[v] = hist.get(v, 0) + n
    bases = sum(hist.values())
    if bases:
        values = np.array(sorted(hist))
        weights = np.array([hist[v] for v in values])
        cum = np.cumsum(weights)
        mid = (bases - 1) / 2
        lo = values[np.searchsorted(cum, np.floor(mid) + 1)]
        hi = values[np.searchsorted(cum, np.ceil(mid) + 1)]
        out.update(bases=int(bases), mean_depth=float((values * weights).sum() / bases),
                   median_depth=float((lo + hi) / 2),
                   fraction_20x=float(weights[values >= 20].sum() / bases))
    else:
        out.update(bases=0, mean_depth=None, median_depth=None, fraction_20x=None)
    return out
