"""Bulk VCF record parsing with Arrow compute kernels.

The fixed columns and INFO are parsed per line in Python (one call per record), but the
sample columns (thousands per line) are split and converted as whole Arrow arrays, so a
1,000-sample record costs a few C++ kernel passes instead of 1,000 Python objects.

Anything the fast path cannot prove valid (a non-numeric allele, an allele index out of range,
a wrong sample count) sends the lines of that run through :func:`connectors.vcf.parse_record`,
which gives the exact per-line reason. Both paths produce identical rows; the tests check it.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from connectors.vcf import Fixed, VcfHeader, parse_fixed, parse_record
from omicslake.quarantine import Rejected

GENOTYPE_FIELDS = ("sample_index", "gt", "phased", "dp", "gq", "ad")


class _Fallback(Exception):
    """The fast path met something it cannot vouch for; parse the run line by line."""


def _nullable_int(values: pa.Array) -> pa.Array:
    missing = pc.or_(pc.equal(values, "."), pc.equal(values, ""))
    try:
        return pc.cast(pc.if_else(missing, pa.scalar(None, pa.string()), values), pa.int32())
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise _Fallback from exc


def _int_list(lists: pa.ListArray, null_mask: pa.Array | None = None) -> pa.Array:
    values = lists.flatten()
    missing = pc.or_(pc.equal(values, "."), pc.equal(values, ""))
    try:
        ints = pc.cast(pc.if_else(missing, "-1", values), pa.int32())
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise _Fallback from exc
    return pa.ListArray.from_arrays(lists.offsets, ints, mask=null_mask)


_SEPS = np.frombuffer(b"/|", dtype=np.uint8)


def _diploid_gt(gt_text: pa.Array) -> tuple[pa.Array, pa.Array] | None:
    """GTs that are all ``a/b`` or ``a|b`` with one-digit alleles (nearly every real call),
    decoded straight from the string buffer; None sends the array down the general path."""
    n = len(gt_text)
    if n == 0 or gt_text.null_count or not isinstance(gt_text, pa.StringArray):
        return None
    offsets = np.frombuffer(gt_text.buffers()[1], dtype=np.int32)[gt_text.offset:gt_text.offset + n + 1]
    if offsets[-1] - offsets[0] != 3 * n or not (np.diff(offsets) == 3).all():
        return None
    raw = np.frombuffer(gt_text.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[-1]].reshape(n, 3)
    sep = raw[:, 1]
    if not np.isin(sep, _SEPS).all():
        return None
    chars = raw[:, ::2]
    missing = chars == ord(".")
    alleles = chars.astype(np.int32) - ord("0")
    if ((alleles < 0) | (alleles > 9))[~missing].any():
        return None
    alleles[missing] = -1
    gt = pa.ListArray.from_arrays(pa.array(np.arange(0, 2 * n + 1, 2, dtype=np.int32)),
                                  pa.array(alleles.ravel()))
    return gt, pa.array(sep == ord("|"))


def _genotypes(rows: list[Fixed], ns: int) -> pa.Array:
    """One list<struct> per row, all rows sharing one FORMAT."""
    n = len(rows)
    text = pa.array([r.samples_text for r in rows], pa.string())
    if pc.any(pc.not_equal(pc.count_substring(text, "\t"), ns - 1)).as_py():
        raise _Fallback
    flat = pc.split_pattern(text, "\t").flatten()
    keys = rows[0].fmt.split(":")
    padded = pc.binary_join_element_wise(flat, pa.scalar(":" * len(keys)), "")
    sub = pc.split_pattern(padded, ":")

    def field(name: str) -> pa.Array | None:
        return pc.list_element(sub, keys.index(name)) if name in keys else None

    gt_text = field("GT")
    if gt_text is None:
        gt = pa.nulls(n * ns, pa.list_(pa.int32()))
        phased = pa.nulls(n * ns, pa.bool_())
    else:
        fast = _diploid_gt(gt_text)
        if fast is not None:
            gt, phased = fast
        else:
            gt_text = pc.if_else(pc.equal(gt_text, ""), ".", gt_text)
            phased = pc.match_substring(gt_text, "|")
            gt = _int_list(pc.split_pattern(pc.replace_substring(gt_text, "|", "/"), "/"))
        owner = pc.list_parent_indices(gt).to_numpy() // ns
        n_alleles = np.fromiter((r.n_alleles for r in rows), np.int32, n)
        flat = gt.flatten().to_numpy()
        if (flat >= n_alleles[owner]).any() or (flat < -1).any():
            raise _Fallback
    dp, gq = (_nullable_int(f) if (f := field(k)) is not None else pa.nulls(n * ns, pa.int32())
              for k in ("DP", "GQ"))
    ad_text = field("AD")
    if ad_text is None:
        ad = pa.nulls(n * ns, pa.list_(pa.int32()))
    else:
        absent = pc.or_(pc.equal(ad_text, "."), pc.equal(ad_text, ""))
        ad = _int_list(pc.split_pattern(pc.if_else(absent, "0", ad_text), ","), absent)
    index = pa.array(np.tile(np.arange(ns, dtype=np.int32), n))
    struct = pa.StructArray.from_arrays([index, gt, phased, dp, gq, ad], names=list(GENOTYPE_FIELDS))
    return pa.ListArray.from_arrays(pa.array(np.arange(0, (n + 1) * ns, ns, dtype=np.int32)), struct)


def _slow_genotypes(rows: list[Fixed], lines: list[str], header: VcfHeader):
    """Exact per-line parse; returns (genotype lists, per-row error or None)."""
    out, errors = [], []
    for line in lines:
        try:
            out.append(parse_record(line, header)["genotypes"])
            errors.append(None)
        except (ValueError, KeyError, IndexError) as exc:
            out.append(None)
            errors.append(str(exc))
    return out, errors


def parse_lines(lines: list[str], line_numbers: list[int | None], header: VcfHeader,
                genotype_type: pa.DataType, gaps: set[str] | None = None,
                ) -> tuple[dict[str, pa.Array], list[int], list[Rejected]]:
    """Parse data lines; returns (bronze core columns of accepted rows, their indexes, rejects).

    Header gaps that htslib reads past (undeclared keys, valueless INFO) are added to ``gaps``.
    """
    contigs: dict[str, str] = {}
    fixed: list[Fixed] = []
    kept: list[int] = []
    rejected: list[Rejected] = []
    for i, line in enumerate(lines):
        try:
            fixed.append(parse_fixed(line, header, contigs, gaps))
            kept.append(i)
        except (ValueError, KeyError, IndexError) as exc:
            rejected.append(Rejected(str(exc), raw=line.rstrip("\r\n"), line=line_numbers[i]))
    geno_parts: list[pa.Array] = []
    if header.samples:
        ns = len(header.samples)
        good_rows, good_idx = [], []
        start = 0
        while start < len(fixed):
            stop = start
            while stop < len(fixed) and fixed[stop].fmt == fixed[start].fmt:
                stop += 1
            run = fixed[start:stop]
            try:
                geno_parts.append(_genotypes(run, ns).cast(genotype_type))
                good_rows += run
                good_idx += kept[start:stop]
            except _Fallback:
                lists, errors = _slow_genotypes(run, [lines[k] for k in kept[start:stop]], header)
                ok = [j for j, e in enumerate(errors) if e is None]
                for j, e in enumerate(errors):
                    if e is not None:
                        k = kept[start + j]
                        rejected.append(Rejected(e, raw=lines[k].rstrip("\r\n"), line=line_numbers[k]))
                if ok:
                    geno_parts.append(pa.array([lists[j] for j in ok], genotype_type))
                good_rows += [run[j] for j in ok]
                good_idx += [kept[start + j] for j in ok]
            start = stop
        fixed, kept = good_rows, good_idx
    cols = {
        "contig": pa.array([r.contig for r in fixed], pa.string()),
        "pos": pa.array([r.pos for r in fixed], pa.int64()),
        "end": pa.array([r.end for r in fixed], pa.int64()),
        "id": pa.array([r.id for r in fixed], pa.string()),
        "ref": pa.array([r.ref for r in fixed], pa.string()),
        "alt": pa.array([r.alt for r in fixed], pa.list_(pa.string())),
        "qual": pa.array([r.qual for r in fixed], pa.float64()),
        "filter": pa.array([r.filter for r in fixed], pa.list_(pa.string())),
        "info_json": pa.array([r.info_json for r in fixed], pa.string()),
        "genotypes": (pa.concat_arrays(geno_parts) if geno_parts
                      else pa.nulls(len(fixed), genotype_type)),
    }
    return cols, kept, rejected
