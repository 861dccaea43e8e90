"""Gene models from a GTF (GENCODE, Ensembl) or GFF3 file, as region intervals variants join on.

Per transcript: its exons split into CDS and 5'/3' UTR by the coding span (CDS, start_codon
and stop_codon lines: GTF's CDS leaves the stop codon out, GFF3's keeps it), exons of
non-coding transcripts, introns, and the two intronic bases at each end of an intron (splice
donor on the intron's 5' side, acceptor on its 3' side, by strand). UTR lines are implied by
exon minus coding span, which is how GENCODE and Ensembl define them; a transcript without
exon lines takes its exons from its CDS and UTR lines.

The file is read in blocks and split with Arrow kernels, not line by line in Python. A line
that is not 9 tab-separated columns, has a bad start/end, no strand or no transcript is
skipped and counted, with its line number.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from connectors.contigs import normalise_contig
from omicslake.errors import InputError

# Most severe first: the index is the rank a variant takes when it overlaps several regions.
REGION_CLASSES = ("splice_acceptor", "splice_donor", "CDS", "five_prime_UTR", "three_prime_UTR",
                  "exon", "intron")
RANK = {name: i for i, name in enumerate(REGION_CLASSES)}
CODING = ("CDS", "start_codon", "stop_codon")
UTR = ("UTR", "five_prime_utr", "three_prime_utr", "five_prime_UTR", "three_prime_UTR")
STRUCTURE = ("exon", *CODING, *UTR)
SPLICE_BP = 2
BLOCK_BYTES = 32 << 20
MAX_EXAMPLES = 5

GTF_KEYS = {"tx": "transcript_id", "gene_id": "gene_id", "gene_name": "gene_name",
            "gene_type": "gene_type|gene_biotype"}
GFF3_KEYS = {"id": "ID", "parent": "Parent", "name": "Name", "tx": "transcript_id",
             "gene_id": "gene_id", "gene_name": "gene_name",
             "gene_type": "gene_type|gene_biotype|biotype"}


@dataclass
class GeneModels:
    regions: pa.Table  # contig, start, end (1-based, inclusive), gene, transcript, class, rank
    transcripts: int
    header: list[str]
    is_gff3: bool
    skipped: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)  # "file:line: reason"

    def genes(self) -> pa.Table:
        """One row per gene: id, name, type, strand."""
        cols = ["gene_id", "gene_name", "gene_type", "strand"]
        df = self.regions.select(cols).to_pandas().drop_duplicates("gene_id")
        return pa.Table.from_pandas(df, preserve_index=False)


def _open(path: str):
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else open(path, "rb")


def _blocks(path: str) -> Iterator[tuple[int, list[str]]]:
    """(first line number, lines) in blocks of about BLOCK_BYTES, cut at line ends."""
    first, rest = 1, b""
    with _open(path) as fh:
        while data := fh.read(BLOCK_BYTES):
            data = rest + data
            cut = data.rfind(b"\n")
            if cut < 0:
                rest = data
                continue
            lines = data[:cut].replace(b"\r", b"").decode("utf-8", "replace").split("\n")
            rest = data[cut + 1:]
            yield first, lines
            first += len(lines)
    if rest.strip():
        yield first, [rest.replace(b"\r", b"").decode("utf-8", "replace")]


def _attr(attrs: pa.Array, key: str, gff3: bool) -> pa.Array:
    """One attribute's value per line (null when absent); ``a|b`` tries keys in turn."""
    names = "|".join(re.escape(k) for k in key.split("|"))
    pattern = (rf"(?:^|;)\s*(?:{names})=(?P<v>[^;]*)" if gff3
               else rf'(?:^|;)\s*(?:{names}) "(?P<v>[^"]*)"')
    found = pc.struct_field(pc.extract_regex(attrs, pattern), [0])
    return pc.if_else(pc.equal(found, ""), pa.scalar(None, pa.string()), found)


class _Skips:
    def __init__(self, path: str):
        self.path, self.counts, self.examples = path, {}, []

    def add(self, reason: str, line_numbers: np.ndarray) -> None:
        if len(line_numbers):
            self.counts[reason] = self.counts.get(reason, 0) + len(line_numbers)
            room = MAX_EXAMPLES - len(self.examples)
            self.examples += [f"{self.path}:{n}: {reason}" for n in line_numbers[:max(0, room)]]


def _parse_block(first: int, lines: list[str], gff3: bool, skips: _Skips) -> pa.Table | None:
    arr = pa.array(lines, pa.string())
    numbers = np.arange(first, first + len(lines))
    data = pc.invert(pc.or_(pc.starts_with(arr, "#"), pc.equal(pc.utf8_trim_whitespace(arr), "")))
    arr, numbers = arr.filter(data), numbers[data.to_numpy(zero_copy_only=False)]
    parts = pc.split_pattern(arr, "\t")
    ok = pc.equal(pc.list_value_length(parts), 9).to_numpy(zero_copy_only=False)
    skips.add("not 9 tab-separated columns", numbers[~ok])
    parts, numbers = parts.filter(pa.array(ok)), numbers[ok]
    cols = {name: pc.list_element(parts, i) for i, name in
            ((0, "seqid"), (2, "type"), (3, "start"), (4, "end"), (6, "strand"), (8, "attrs"))}
    wanted = pc.is_in(cols["type"], pa.array(STRUCTURE)) if not gff3 else pc.or_(
        pc.is_in(cols["type"], pa.array(STRUCTURE)), pc.match_substring(cols["attrs"], "ID="))
    numeric = pc.and_(pc.match_substring_regex(cols["start"], r"^[0-9]+$"),
                      pc.match_substring_regex(cols["end"], r"^[0-9]+$"))
    bad = pc.and_(wanted, pc.invert(numeric)).to_numpy(zero_copy_only=False)
    skips.add("start or end is not a number", numbers[bad])
    keep = pc.and_(wanted, numeric)
    cols = {k: v.filter(keep) for k, v in cols.items()}
    numbers = numbers[keep.to_numpy(zero_copy_only=False)]
    if not len(numbers):
        return None
    out = {"seqid": cols["seqid"], "type": cols["type"], "start": pc.cast(cols["start"], pa.int64()),
           "end": pc.cast(cols["end"], pa.int64()), "strand": cols["strand"],
           "line": pa.array(numbers, pa.int64())}
    for name, key in (GFF3_KEYS if gff3 else GTF_KEYS).items():
        out[name] = _attr(cols["attrs"], key, gff3)
    return pa.table(out)


def header_lines(path: str, limit: int = 200) -> list[str]:
    out = []
    with _open(path) as fh:
        for raw in fh:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if not line.startswith("#"):
                break
            out.append(line)
            if len(out) >= limit:
                break
    return out


def is_gff3(path: str, header: list[str]) -> bool:
    name = Path(path).name.lower().removesuffix(".gz")
    return any(h.startswith("##gff-version 3") for h in header) or name.endswith((".gff3", ".gff"))


def read_features(path: str, gff3: bool, skips: _Skips) -> pd.DataFrame:
    """The feature lines that describe transcripts, one column per attribute needed."""
    tables = []
    for first, lines in _blocks(path):
        stop = gff3 and "##FASTA" in lines  # a GFF3 may end with its sequences
        if stop:
            lines = lines[:lines.index("##FASTA")]
        if (t := _parse_block(first, lines, gff3, skips)) is not None:
            tables.append(t)
        if stop:
            break
    if not tables:
        raise InputError(f"{path}: no exon, CDS or UTR lines; is this a GTF/GFF3 file?")
    return pa.concat_tables(tables).to_pandas()


def _strip(ids: pd.Series) -> pd.Series:
    """Ensembl GFF3 writes ``gene:ENSG...`` and ``transcript:ENST...``; the lake keeps the ids."""
    return ids.str.replace(r"^(?:gene|transcript):", "", regex=True)


def _resolve_gff3(feat: pd.DataFrame) -> pd.DataFrame:
    """Give each exon/CDS/UTR line its transcript and gene through the ID/Parent tree."""
    nodes = feat[~feat["type"].isin(STRUCTURE) & feat["id"].notna()].drop_duplicates("id")
    nodes = nodes.set_index("id")
    st = feat[feat["type"].isin(STRUCTURE)].copy()
    st["tx"] = st["tx"].fillna(st["parent"]).str.split(",")
    st = st.explode("tx")
    txn = nodes.reindex(st["tx"])
    gene = nodes.reindex(txn["parent"])
    st["gene_id"] = (st["gene_id"].fillna(pd.Series(txn["gene_id"].to_numpy(), st.index))
                     .fillna(pd.Series(_strip(txn["parent"]).to_numpy(), st.index)))
    for col, sources in (("gene_name", (txn["gene_name"], gene["name"], gene["gene_name"])),
                         ("gene_type", (gene["gene_type"], txn["gene_type"]))):
        for src in sources:
            st[col] = st[col].fillna(pd.Series(src.to_numpy(), st.index))
    st["tx"] = _strip(st["tx"])
    st["gene_id"] = _strip(st["gene_id"])
    return st


def _merge_intervals(df: pd.DataFrame) -> pd.DataFrame:
    """Overlapping or adjacent intervals of one transcript become one (repeated lines, or CDS
    and UTR lines standing in for missing exons)."""
    df = df.sort_values(["tx", "start", "end"]).reset_index(drop=True)
    reach = df.groupby("tx")["end"].cummax().groupby(df["tx"]).shift()
    new = reach.isna() | (df["start"] > reach + 1)
    return df.groupby(new.cumsum()).agg(tx=("tx", "first"), start=("start", "min"), end=("end", "max"))


def _exons(st: pd.DataFrame) -> pd.DataFrame:
    ex = st[st["type"] == "exon"]
    stand_in = st[~st["tx"].isin(ex["tx"]) & st["type"].isin((*CODING, *UTR))]
    return _merge_intervals(pd.concat([ex, stand_in])[["tx", "start", "end"]])


def _exon_pieces(ex: pd.DataFrame, span: pd.DataFrame, plus: np.ndarray) -> pd.DataFrame:
    """Exons cut at the coding span: UTR before it, CDS inside, UTR after (5'/3' by strand)."""
    s, e = ex["start"].to_numpy(), ex["end"].to_numpy()
    lo = span["lo"].reindex(ex["tx"]).to_numpy(dtype=float)
    hi = span["hi"].reindex(ex["tx"]).to_numpy(dtype=float)
    coding = ~np.isnan(lo)
    lo, hi = np.where(coding, lo, 0).astype(np.int64), np.where(coding, hi, 0).astype(np.int64)
    before = np.where(plus, RANK["five_prime_UTR"], RANK["three_prime_UTR"])
    after = np.where(plus, RANK["three_prime_UTR"], RANK["five_prime_UTR"])
    tx = ex["tx"].to_numpy()
    parts = [
        (~coding, s, e, np.full(len(s), RANK["exon"])),
        (coding, s, np.minimum(e, lo - 1), before),
        (coding, np.maximum(s, lo), np.minimum(e, hi), np.full(len(s), RANK["CDS"])),
        (coding, np.maximum(s, hi + 1), e, after),
    ]
    return pd.concat([pd.DataFrame({"tx": tx[m & (a <= b)], "start": a[m & (a <= b)],
                                    "end": b[m & (a <= b)], "rank": r[m & (a <= b)]})
                      for m, a, b, r in parts])


def _introns(ex: pd.DataFrame, plus: np.ndarray) -> pd.DataFrame:
    """Introns between consecutive exons, and the SPLICE_BP intronic bases at each end."""
    nxt = ex.groupby("tx")["start"].shift(-1)
    gap = (nxt > ex["end"] + 1).to_numpy()
    tx, left = ex["tx"].to_numpy()[gap], ex["end"].to_numpy()[gap] + 1
    right, plus = nxt.to_numpy()[gap].astype(np.int64) - 1, plus[gap]
    donor, acceptor = RANK["splice_donor"], RANK["splice_acceptor"]
    return pd.concat([
        pd.DataFrame({"tx": tx, "start": left, "end": right, "rank": RANK["intron"]}),
        pd.DataFrame({"tx": tx, "start": left, "end": np.minimum(left + SPLICE_BP - 1, right),
                      "rank": np.where(plus, donor, acceptor)}),
        pd.DataFrame({"tx": tx, "start": np.maximum(right - SPLICE_BP + 1, left), "end": right,
                      "rank": np.where(plus, acceptor, donor)}),
    ])


def _transcripts(st: pd.DataFrame, skips: _Skips) -> pd.DataFrame:
    missing = st["tx"].isna()
    skips.add("no transcript_id (GTF) or Parent (GFF3)", st.loc[missing, "line"].to_numpy())
    st = st[~missing]
    tx = st.groupby("tx", sort=False).agg(
        contig=("seqid", "first"), strand=("strand", "first"), gene_id=("gene_id", "first"),
        gene_name=("gene_name", "first"), gene_type=("gene_type", "first"), line=("line", "first"))
    stranded = tx["strand"].isin(["+", "-"])
    skips.add("transcript without strand (+/-)", tx.loc[~stranded, "line"].to_numpy())
    tx = tx[stranded]
    tx["gene_id"] = tx["gene_id"].fillna(pd.Series(tx.index, tx.index))
    tx["gene_name"] = tx["gene_name"].fillna(tx["gene_id"])
    return tx.drop(columns="line")


def regions(st: pd.DataFrame, skips: _Skips) -> tuple[pd.DataFrame, int]:
    """Every region of every transcript, with its gene; and how many transcripts."""
    tx = _transcripts(st, skips)
    st = st[st["tx"].isin(tx.index)]
    ex = _exons(st)
    span = st[st["type"].isin(CODING)].groupby("tx").agg(lo=("start", "min"), hi=("end", "max"))
    plus = (tx["strand"].reindex(ex["tx"]) == "+").to_numpy()
    out = pd.concat([_exon_pieces(ex, span, plus), _introns(ex, plus)], ignore_index=True)
    out = out.join(tx, on="tx")
    names = {c: normalise_contig(c) for c in out["contig"].unique()}
    out["contig"] = out["contig"].map(names)
    out["region_class"] = np.array(REGION_CLASSES, dtype=object)[out["rank"].to_numpy()]
    return out.rename(columns={"tx": "transcript_id"}), len(tx)


REGION_SCHEMA = pa.schema([
    ("contig", pa.string()), ("start", pa.int64()), ("end", pa.int64()), ("gene_id", pa.string()),
    ("gene_name", pa.string()), ("gene_type", pa.string()), ("strand", pa.string()),
    ("transcript_id", pa.string()), ("region_class", pa.string()), ("rank", pa.int32()),
])


def read_gene_models(path: str) -> GeneModels:
    """Parse a GTF or GFF3 (plain or gzipped) into the regions of its transcripts."""
    if not Path(path).is_file():
        raise InputError(f"{path}: no such file")
    header = header_lines(path)
    gff3 = is_gff3(path, header)
    skips = _Skips(path)
    feat = read_features(path, gff3, skips)
    st = _resolve_gff3(feat) if gff3 else feat[feat["type"].isin(STRUCTURE)]
    out, n_tx = regions(st, skips)
    if not n_tx:
        raise InputError(f"{path}: no transcript could be read ({skips.counts})")
    table = pa.Table.from_pandas(out[REGION_SCHEMA.names], schema=REGION_SCHEMA, preserve_index=False)
    return GeneModels(table, n_tx, header, gff3, skips.counts, skips.examples)


def release_and_build(path: str, header: list[str]) -> tuple[str, str | None]:
    """GENCODE's ``##description ... version N``, else the file name; the build from the
    header (``#!genome-version``, ``#!genome-build``, ``(GRCh38)``) when it says."""
    text = "\n".join(header)
    m = re.search(r"version (\d+)", text) if "GENCODE" in text or "gencode" in path.lower() else None
    stem = re.sub(r"\.(gtf|gff3|gff)(\.gz)?$", "", Path(path).name, flags=re.I)
    release = f"GENCODE {m.group(1)}" if m else stem
    b = re.search(r"GRCh3[78]|hg19|hg38", text)
    build = {"hg19": "GRCh37", "hg38": "GRCh38"}.get(b.group(0), b.group(0)) if b else None
    return release, build
