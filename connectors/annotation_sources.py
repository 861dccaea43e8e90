"""ClinVar and gnomAD-style sites VCFs as one row per allele, parsed inside Spark tasks.

A record is split per ALT as ``bcftools norm -m-any`` does (Number=A INFO values are taken per
ALT, Number=R ones keep this ALT's element, the rest are copied), sequences are upper-cased and
contigs take the lake's names (``normalise_contig``), so the alleles meet ``silver.variants``
on the same terms; left-alignment (``connectors.normalise``) runs after, in the job. Lines are
split with Arrow kernels, a block at a time. A record that cannot be used (too few columns, a
bad POS or REF, a ClinVar record without CLNSIG) or an ALT that is not a sequence comes out
as a row with ``problem`` set and its raw text, so the job counts it and names the line.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from connectors.contigs import normalise_contig

BLOCK_LINES = 200_000
SEQUENCE = r"^[ACGTN]+$"


@dataclass(frozen=True)
class SourceSpec:
    kind: str
    info: dict[str, str]  # INFO key -> silver.variant_annotations column
    id_column: str | None = None  # the VCF ID column goes here
    filter_column: str | None = None
    populations: str | None = None  # AF_<label> keys, as a map column
    required: tuple[str, ...] = ()

    @property
    def columns(self) -> list[str]:
        return [c for c in (self.id_column, *self.info.values(), self.filter_column, self.populations) if c]


CLINVAR = SourceSpec("clinvar", {"CLNSIG": "clinvar_significance", "CLNREVSTAT": "clinvar_review_status",
                                 "GENEINFO": "clinvar_gene_info"}, id_column="clinvar_id",
                     required=("CLNSIG",))
GNOMAD = SourceSpec("gnomad", {"AF": "gnomad_af", "AC": "gnomad_ac", "AN": "gnomad_an"},
                    filter_column="gnomad_filter", populations="gnomad_af_by_population")
SPECS = {s.kind: s for s in (CLINVAR, GNOMAD)}

BASE = pa.schema([("contig", pa.string()), ("pos", pa.int64()), ("ref", pa.string()),
                  ("alt_allele", pa.string()), ("line", pa.int64()), ("problem", pa.string()),
                  ("raw", pa.string())])


def output_schema(spec: SourceSpec, contract: pa.Schema) -> pa.Schema:
    """Parsed rows: the allele, then the annotation columns typed as ``contract`` types them."""
    return pa.schema([*BASE, *(contract.field(c) for c in spec.columns)])


def plan(spec: SourceSpec, info_numbers: dict[str, str]) -> dict:
    """What a task extracts: each INFO key with its header Number, and the population keys."""
    pops = sorted(k for k in info_numbers if spec.populations and re.fullmatch(r"AF_\w+", k))
    return {"numbers": {k: info_numbers.get(k, ".") for k in (*spec.info, *pops)}, "populations": pops}


def release_of(kind: str, path: str, meta: list[str]) -> str:
    """The release a header names (``##fileDate`` for ClinVar; a version or date line for
    gnomAD), else a ``vN.N`` in the file name, else the file name."""
    fields = dict(m.groups() for line in meta if (m := re.match(r"##([^=<]+)=(.*)", line)))
    lowered = {k.lower(): v for k, v in fields.items()}
    for key in (f"{kind}_version", "version", "filedate"):
        if lowered.get(key):
            return lowered[key].strip()
    name = Path(path).name
    m = re.search(r"[._-](v\d+(?:\.\d+)*)", name)
    return m.group(1) if m else re.sub(r"\.(vcf|bcf)(\.b?gz)?$", "", name)


def _info_values(info: pa.Array, keys: list[str]) -> dict[str, pa.Array]:
    """Each key's raw value per record (null when absent), from one split of the INFO column."""
    pairs = pc.split_pattern(info, ";")
    kv = pc.extract_regex(pc.list_flatten(pairs), r"^(?P<k>[^=]*)(?:=(?P<v>.*))?$")
    which = pc.index_in(pc.struct_field(kv, [0]), value_set=pa.array(keys, pa.string()))
    which = which.to_numpy(zero_copy_only=False)
    which = np.where(np.isnan(which.astype(float)), -1, which).astype(np.int64)
    owner = pc.list_parent_indices(pairs).to_numpy()
    values = pc.struct_field(kv, [1])
    out = {}
    for j, key in enumerate(keys):
        hit = np.nonzero(which == j)[0]
        at = np.full(len(info), -1, np.int64)
        at[owner[hit]] = hit
        out[key] = values.take(pa.array(at, mask=at < 0))
    return out


def _pick(values: pa.Array, rec: np.ndarray, k: np.ndarray, number: str) -> pa.Array:
    """The value for split row (record ``rec``, ALT ``k``, 0-based) of a per-record value."""
    if number not in ("A", "R"):
        return values.take(pa.array(rec))
    lists = pc.split_pattern(values, ",")
    lengths = pc.list_value_length(lists).fill_null(0).to_numpy()
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    k = k + (number == "R")
    ok = k < lengths[rec]
    at = np.where(ok, starts[rec] + k, 0)
    return pc.list_flatten(lists).take(pa.array(at, mask=~ok))


def _population_map(values: list[pa.Array], labels: list[str]) -> pa.Array:
    """AF_<label> values per row as a map of the labels present (null when none is)."""
    n = len(values[0]) if values else 0
    if not labels:
        return pa.nulls(n, pa.map_(pa.string(), pa.float64()))
    mat = np.stack([v.to_numpy(zero_copy_only=False).astype(float) for v in values], axis=1)
    present = ~np.isnan(mat)
    offsets = np.concatenate([[0], np.cumsum(present.sum(axis=1))]).astype(np.int32)
    keys = np.tile(np.array(labels, dtype=object), n)[present.ravel()]
    return pa.MapArray.from_arrays(pa.array(offsets), pa.array(keys, pa.string()),
                                   pa.array(mat[present], pa.float64()),
                                   mask=pa.array(~present.any(axis=1)))


NUMBER = r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$|^(?:[nN]a[nN]|[-+]?[iI]nf)$"


def _typed(values: pa.Array, dtype: pa.DataType, key: str) -> pa.Array:
    """'.' and '' are missing; a number that does not parse stops the load with its value."""
    missing = pc.fill_null(pc.or_(pc.equal(values, "."), pc.equal(values, "")), True)
    clean = pc.if_else(missing, pa.scalar(None, pa.string()), values)
    if dtype == pa.string():
        return clean
    bad = pc.invert(pc.fill_null(pc.match_substring_regex(clean, NUMBER), True))
    if pc.any(bad).as_py():
        raise ValueError(f"INFO/{key} value {clean.filter(bad)[0].as_py()!r} is not a number")
    return pc.cast(clean, dtype)


def _contigs(chrom: pa.Array) -> pa.Array:
    names = pc.unique(chrom)
    lake = pa.array([normalise_contig(c) for c in names.to_pylist()], pa.string())
    return lake.take(pc.index_in(chrom, value_set=names))


def _record_problems(cols: dict[str, pa.Array], values: dict[str, pa.Array], spec: SourceSpec) -> np.ndarray:
    """Why each record cannot be used (None when it can), the first reason that applies."""
    checks = [(pc.match_substring_regex(cols["pos"], r"^0*[1-9][0-9]*$"), "POS is not a positive integer"),
              (pc.match_substring_regex(cols["ref"], SEQUENCE), "REF is not a DNA sequence")]
    checks += [(pc.is_valid(_typed(values[k], pa.string(), k)), f"no {k} in INFO") for k in spec.required]
    reason = np.full(len(cols["pos"]), None, dtype=object)
    for ok, text in reversed(checks):
        reason[~pc.fill_null(ok, False).to_numpy(zero_copy_only=False)] = text
    return reason


def _split(cols: dict[str, pa.Array], values: dict[str, pa.Array], spec: SourceSpec, task_plan: dict,
           schema: pa.Schema) -> dict[str, pa.Array]:
    """One row per ALT of the good records, with the annotation columns for that ALT."""
    alts = pc.split_pattern(cols["alt"], ",")
    rec = pc.list_parent_indices(alts).to_numpy()
    lengths = pc.list_value_length(alts).to_numpy()
    k = np.arange(len(rec)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    take = pa.array(rec)
    out = {"contig": _contigs(cols["chrom"]).take(take), "pos": pc.cast(cols["pos"], pa.int64()).take(take),
           "ref": cols["ref"].take(take), "alt_allele": pc.utf8_upper(pc.list_flatten(alts)),
           "line": cols["line"].take(take), "raw": cols["raw"].take(take)}
    numbers = task_plan["numbers"]
    if spec.id_column:
        out[spec.id_column] = _typed(cols["id"].take(take), pa.string(), "ID")
    for key, column in spec.info.items():
        out[column] = _typed(_pick(values[key], rec, k, numbers[key]), schema.field(column).type, key)
    if spec.filter_column:
        out[spec.filter_column] = _typed(cols["filter"].take(take), pa.string(), "FILTER")
    if spec.populations:
        pops = task_plan["populations"]
        per_pop = [_typed(_pick(values[p], rec, k, numbers[p]), pa.float64(), p) for p in pops]
        out[spec.populations] = _population_map(per_pop, [p[3:] for p in pops])
    sequence = pc.match_substring_regex(out["alt_allele"], SEQUENCE).to_numpy(zero_copy_only=False)
    out["problem"] = pa.array(np.where(sequence, None, "ALT is not a sequence allele (symbolic, * or .)"),
                              pa.string())
    out["raw"] = pc.if_else(pa.array(sequence), pa.scalar(None, pa.string()), out["raw"])
    return out


FIELDS = ("chrom", "pos", "id", "ref", "alt", "qual", "filter", "info")


def parse_lines(lines: list[str], numbers: list[int | None], spec: SourceSpec, task_plan: dict,
                schema: pa.Schema) -> pa.Table:
    """Data lines of a sites VCF to parsed rows (``schema``), problem rows included."""
    raw = pc.utf8_rtrim(pa.array(lines, pa.string()), characters="\r\n")
    parts = pc.split_pattern(raw, "\t", max_splits=8)
    ok = pc.greater_equal(pc.list_value_length(parts), 8)
    line = pa.array(numbers, pa.int64())
    short = pc.invert(ok)
    pieces = [_problem_rows(raw.filter(short), line.filter(short), "fewer than 8 tab-separated columns",
                            schema)]
    parts = parts.filter(ok)
    cols = {name: pc.list_element(parts, i) for i, name in enumerate(FIELDS)}
    cols.update(raw=raw.filter(ok), line=line.filter(ok), ref=pc.utf8_upper(pc.list_element(parts, 3)))
    values = _info_values(cols["info"], list(task_plan["numbers"]))
    reason = _record_problems(cols, values, spec)
    for text in {r for r in reason if r is not None}:
        bad = pa.array(reason == text)
        pieces.append(_problem_rows(cols["raw"].filter(bad), cols["line"].filter(bad), text, schema))
    good = pa.array(np.equal(reason, None))
    split = _split({k: v.filter(good) for k, v in cols.items()},
                   {k: v.filter(good) for k, v in values.items()}, spec, task_plan, schema)
    pieces.append(pa.table({f.name: split[f.name] for f in schema}).cast(schema))
    return pa.concat_tables(pieces)


def _problem_rows(raw: pa.Array, line: pa.Array, reason: str, schema: pa.Schema) -> pa.Table:
    n = len(raw)
    cols = {f.name: pa.nulls(n, f.type) for f in schema}
    cols.update(raw=raw, line=line, problem=pa.array([reason] * n, pa.string()))
    return pa.table({f.name: cols[f.name] for f in schema}).cast(schema)


def parse_task(schema: pa.Schema):
    """mapInArrow body: one chunk of a source VCF per input row, parsed rows out."""
    def run(batches):
        from connectors.vcf_chunks import Chunk, read_chunk

        for batch in batches:
            for task in batch.to_pylist():
                spec, task_plan = SPECS[task["kind"]], json.loads(task["plan_json"])
                chunk = Chunk(**json.loads(task["chunk_json"]))
                lines, numbers = [], []
                for lineno, text in read_chunk(task["path"], chunk, task["header_lines"]):
                    lines.append(text)
                    numbers.append(lineno)
                    if len(lines) >= BLOCK_LINES:
                        yield from parse_lines(lines, numbers, spec, task_plan, schema).to_batches()
                        lines, numbers = [], []
                if lines:
                    yield from parse_lines(lines, numbers, spec, task_plan, schema).to_batches()
    return run
