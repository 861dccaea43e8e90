"""What an ALT allele is, and so which silver table a VCF record feeds (VCF 4.4, 1.4.5 and 5.4).

The one home of the rule: the ingest tasks apply it in Python to account for every record,
and ``clean_variants`` applies the same patterns as Spark columns to route the alleles.

- sequence alleles (``A``, ``TTG``) go to ``silver.variants``;
- symbolic (``<DEL>``, ``<CN0>``, ``<INS:ME:ALU>``) and breakend (``G]chr17:198982]``, ``.A``)
  alleles go to ``silver.structural_variants``;
- a record whose only ALTs are the gVCF placeholders ``<*>``/``<NON_REF>``, or ``.``, is
  reference evidence for ``silver.reference_blocks``;
- ``*`` (an allele deleted by an upstream deletion) carries no allele of its own.
"""

from __future__ import annotations

import re

from pyspark.sql import Column
from pyspark.sql import functions as F

NON_REF = ("<*>", "<NON_REF>")
STAR = "*"
# Anchored so Python's re.search, Spark's (Java) and Sail's (Rust) rlike agree.
SV_PATTERN = r"^<[^<>]+>$|[\[\]]|^\.[A-Za-z]+$|^[A-Za-z]+\.$"
BREAKEND_MATE = r"[\[\]]([^\[\]:]+):([0-9]+)[\[\]]"
# Over the ALTs joined by commas: every one a gVCF placeholder, or none at all (ALT=.).
REFERENCE_ONLY = r"^(?:(?:<\*>|<NON_REF>)(?:,|$))*$"

VARIANTS = "silver.variants"
STRUCTURAL = "silver.structural_variants"
REFERENCE = "silver.reference_blocks"
SPANNING_ONLY = "ALT is only '*' (an allele removed by an upstream deletion, reported there)"
NO_HOM_REF = "reference-only record with no sample called homozygous reference"

_SV = re.compile(SV_PATTERN)
_REFERENCE_ONLY = re.compile(REFERENCE_ONLY)


def is_structural(alt: str) -> bool:
    return alt not in NON_REF and bool(_SV.search(alt))


def is_sequence(alt: str) -> bool:
    return alt != STAR and alt not in NON_REF and not _SV.search(alt)


def record_destination(alts: list[str]) -> str:
    """The silver table a record is accounted to, or the rule that sets it aside.

    A record counts once: a sequence ALT wins over a structural one (both are written), and
    gVCF placeholders beside a real ALT are ignored, as ``bcftools norm`` does.
    """
    if any(is_sequence(a) for a in alts):
        return VARIANTS
    if any(is_structural(a) for a in alts):
        return STRUCTURAL
    if _REFERENCE_ONLY.search(",".join(alts)):
        return REFERENCE
    return SPANNING_ONLY


def sequence_allele(alt: Column) -> Column:
    return (alt != F.lit(STAR)) & ~alt.isin(*NON_REF) & ~alt.rlike(SV_PATTERN)


def structural_allele(alt: Column) -> Column:
    return ~alt.isin(*NON_REF) & alt.rlike(SV_PATTERN)


def reference_record(alts: Column) -> Column:
    """Every ALT a gVCF placeholder, or none at all (``ALT=.``). A regex over the joined ALTs,
    not a lambda: Sail 0.7 fails a lambda in a filter on a Delta scan."""
    return F.concat_ws(",", alts).rlike(REFERENCE_ONLY)
