"""Non-reference calls, split per ALT, from parsed genotype arrays (the silver.genotypes rows).

The ingest task has every genotype of a block as Arrow arrays already, so it finds carriers
with NumPy there instead of exploding the nested bronze column again in the engine, which on
a 1,000-sample file costs more than the parse. The rules are those of
``jobs.clean_variants.split_genotypes`` (``bcftools norm -m-any``): per ALT k, alleles equal
to k become 1, other called alleles 0, missing stay -1; AD keeps REF and ALT k; symbolic and
``*`` ALTs are left out (``connectors.alleles``). The tests check both paths give the same rows.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from connectors.alleles import NO_HOM_REF, REFERENCE, VARIANTS, is_sequence, record_destination
from omicslake import staging
from omicslake.settings import Settings


def calls_staging_root(settings: Settings) -> str:
    """Non-reference calls found while parsing, waiting for clean_variants to commit them."""
    return f"{settings.lake_root}/_staging/genotypes"


def staged_calls(settings: Settings, checksum: str) -> list[str] | None:
    """URIs of the staged call files of a source, or None if its parse did not stage them."""
    root = calls_staging_root(settings)
    return staging.files(root, checksum) if staging.is_done(root, checksum) else None


def clear_staged_calls(settings: Settings, checksum: str) -> None:
    staging.clear(calls_staging_root(settings), checksum)


def record_destinations(cols: dict[str, pa.Array]) -> list[str]:
    """Per parsed record, the silver table it is accounted to or the rule setting it aside.

    A reference-only record counts as reference evidence only when some sample is called
    homozygous reference on it (every allele 0); otherwise nothing in it can land.
    """
    alts = cols["alt"]
    plain = pc.invert(pc.match_substring_regex(alts.flatten(), r"[<>\[\].*]"))
    has_plain = np.bincount(pc.list_parent_indices(alts).to_numpy(zero_copy_only=False),
                            weights=plain.to_numpy(zero_copy_only=False), minlength=len(alts)) > 0
    # an ALT with none of <>[].* is a sequence allele, so the record is a variant's
    out = [VARIANTS if has_plain[i] else record_destination(alts[i].as_py()) for i in range(len(alts))]
    ref_rows = [i for i, d in enumerate(out) if d == REFERENCE]
    if ref_rows:
        called = _hom_ref_rows(cols["genotypes"], ref_rows)
        for i in ref_rows:
            if i not in called:
                out[i] = NO_HOM_REF
    return out


def _hom_ref_rows(geno: pa.Array, rows: list[int]) -> set[int]:
    """Which of ``rows`` have a sample whose GT is all 0 (vectorised: gVCFs hold millions)."""
    sub = geno.take(pa.array(rows, pa.int64()))
    calls = sub.flatten()
    if not len(calls):
        return set()
    gt = calls.field("gt")
    lengths = pc.list_value_length(gt).fill_null(0).to_numpy(zero_copy_only=False)
    alleles = gt.flatten().to_numpy(zero_copy_only=False)
    owner = np.repeat(np.arange(len(gt)), lengths)
    nonzero = np.bincount(owner, weights=alleles != 0, minlength=len(gt))
    hom_ref = (lengths > 0) & (nonzero == 0)
    row_of_call = pc.list_parent_indices(sub).to_numpy(zero_copy_only=False)
    has = np.bincount(row_of_call, weights=hom_ref, minlength=len(rows)) > 0
    return {rows[k] for k in np.nonzero(has)[0]}


def carrier_rows(cols: dict[str, pa.Array], samples: list[str], persons: list[str | None],
                 build: str | None, center_id: str, checksum: str, run_id: str) -> pa.Table | None:
    """silver.genotypes rows for the parsed block ``cols`` (None when it has no genotypes)."""
    geno = cols["genotypes"]
    n_lines, ns = len(geno), len(samples)
    if not n_lines or not ns or geno.null_count:
        return None
    structs = geno.flatten()
    gt = structs.field("gt")
    if gt.null_count or len(structs) != n_lines * ns:
        return None
    alleles = gt.flatten().to_numpy(zero_copy_only=False)
    starts = gt.offsets.to_numpy()[:-1]
    line_of = np.repeat(np.arange(n_lines), ns)
    alts = cols["alt"].to_pylist()
    pieces: list[tuple[np.ndarray, np.ndarray, pa.Array, pa.Array, np.ndarray]] = []
    # (genotype index, line index, recoded gt lists, ad lists, alt index) per ALT group
    bi = np.array([len(a) == 1 and is_sequence(a[0]) for a in alts])
    top = np.maximum.reduceat(alleles, starts) if len(alleles) else np.zeros(0, np.int32)
    pick = np.nonzero((top >= 1) & bi[line_of])[0]
    if len(pick):
        take = pa.array(pick)
        ad = structs.field("ad").take(take)
        ad2 = pc.if_else(pc.greater_equal(pc.list_value_length(ad), 2), pc.list_slice(ad, 0, 2),
                         pa.scalar(None, ad.type))
        pieces.append((pick, line_of[pick], gt.take(take), ad2, np.ones(len(pick), np.int32)))
    for line in np.nonzero(~bi)[0]:
        for k, alt in enumerate(alts[line], start=1):
            if not is_sequence(alt):
                continue
            lo = line * ns
            sub = gt.slice(lo, ns)
            vals = sub.flatten().to_numpy(zero_copy_only=False)
            recoded = np.where(vals < 0, -1, np.where(vals == k, 1, 0)).astype(np.int32)
            offs = sub.offsets.to_numpy() - sub.offsets[0].as_py()
            has = np.add.reduceat(recoded == 1, offs[:-1]) > 0 if len(vals) else np.zeros(ns, bool)
            idx = np.nonzero(has)[0]
            if not len(idx):
                continue
            lists = pa.ListArray.from_arrays(pa.array(offs.astype(np.int32)), pa.array(recoded)).take(
                pa.array(idx))
            ad = structs.field("ad").slice(lo, ns).take(pa.array(idx))
            ad_py = [[a[0], a[k]] if a is not None and len(a) > k else None for a in ad.to_pylist()]
            pieces.append((lo + idx, np.full(len(idx), line), lists, pa.array(ad_py, ad.type),
                           np.full(len(idx), k, np.int32)))
    if not pieces:
        return None
    g_idx = np.concatenate([p[0] for p in pieces])
    l_idx = np.concatenate([p[1] for p in pieces])
    k_idx = np.concatenate([p[4] for p in pieces])
    gts = pa.concat_arrays([p[2].cast(gt.type) for p in pieces])
    ads = pa.concat_arrays([p[3].cast(structs.field("ad").type) for p in pieces])
    s_idx = g_idx % ns
    person_arr = pa.array(persons, pa.string()).take(pa.array(s_idx))
    keep = pc.is_valid(person_arr)
    contig = cols["contig"].take(pa.array(l_idx))
    pos = cols["pos"].take(pa.array(l_idx))
    alt_allele = pa.array([alts[line][k - 1] for line, k in zip(l_idx.tolist(), k_idx.tolist(), strict=True)],
                          pa.string())
    vid = pc.binary_join_element_wise(
        pa.array([build or "NA"] * len(g_idx), pa.string()), contig, pc.cast(pos, pa.string()),
        cols["ref"].take(pa.array(l_idx)), alt_allele, ":")
    flat_alt = pc.list_value_length(gts)
    ones = pc.equal(gts.flatten(), 1)
    parents = pc.list_parent_indices(gts).to_numpy()
    alt_count = np.bincount(parents, weights=ones.to_numpy(zero_copy_only=False).astype(np.int32),
                            minlength=len(flat_alt)).astype(np.int32)
    n = len(g_idx)
    table = pa.table({
        "variant_id": vid,
        "person_id": person_arr,
        "sample_id": pa.array(samples, pa.string()).take(pa.array(s_idx)),
        "center_id": pa.array([center_id] * n, pa.string()),
        "contig": contig,
        "pos": pos,
        "gt": gts,
        "phased": structs.field("phased").take(pa.array(g_idx)),
        "alt_count": pa.array(alt_count, pa.int32()),
        "dp": structs.field("dp").take(pa.array(g_idx)),
        "gq": structs.field("gq").take(pa.array(g_idx)),
        "ad": ads,
        "source_checksum": pa.array([checksum] * n, pa.string()),
        "ingest_run_id": pa.array([run_id] * n, pa.string()),
        "person_bucket": pc.utf8_slice_codeunits(person_arr, 1, 2),
    })
    return table.filter(keep)
