"""One contig naming convention for the lake: ``chr``-prefixed, ``chrM`` for mitochondria."""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

_MITO = {"M", "MT", "CHRM", "CHRMT"}


def normalise_contig(name: str) -> str:
    bare = name[3:] if name.lower().startswith("chr") else name
    if name.upper() in _MITO or bare.upper() in _MITO:
        return "chrM"
    return f"chr{bare}"


def normalised_contig(name: Column) -> Column:
    """``normalise_contig`` as a Spark column, for contig names found inside values (breakend
    mates); a test checks that both give the same names."""
    bare = F.when(F.lower(name).startswith("chr"), F.substring(name, 4, 1 << 20)).otherwise(name)
    mito = F.upper(name).isin(*_MITO) | F.upper(bare).isin(*_MITO)
    return F.when(mito, F.lit("chrM")).otherwise(F.concat(F.lit("chr"), bare))


def guess_build(header_lines: list[str], contig_lengths: dict[str, int]) -> str | None:
    """GRCh37 or GRCh38 from ##reference / ##assembly, or chr1's length."""
    text = "\n".join(line for line in header_lines if line.startswith(("##reference", "##assembly")))
    lowered = text.lower()
    if any(k in lowered for k in ("grch38", "hg38")):
        return "GRCh38"
    if any(k in lowered for k in ("grch37", "hg19", "b37", "hs37")):
        return "GRCh37"
    lengths = {normalise_contig(k): v for k, v in contig_lengths.items()}
    return {248956422: "GRCh38", 249250621: "GRCh37"}.get(lengths.get("chr1", 0))
