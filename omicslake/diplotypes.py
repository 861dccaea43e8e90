"""Match a person's calls at a gene's defining positions to its named alleles, as PharmCAT's
named-allele matcher does: a position with no call is left out (never taken as reference),
every remaining position must be explained by the two haplotypes, and among the pairs that
explain it the most specific (highest summed score) wins. Phased calls are matched per
chromosome; otherwise any assignment of the two observed alleles counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import combinations_with_replacement

from connectors.pharmcat import GeneDefinition, NamedAllele

IUPAC = {
    "R": "AG",
    "Y": "CT",
    "S": "CG",
    "W": "AT",
    "K": "GT",
    "M": "AC",
    "B": "CGT",
    "D": "AGT",
    "H": "ACT",
    "V": "ACG",
    "N": "ACGT",
}


@dataclass(frozen=True)
class Call:
    """Two observed alleles at one position (None when that allele is missing)."""

    a1: str | None
    a2: str | None
    phased: bool = False

    @property
    def called(self) -> bool:
        return self.a1 is not None and self.a2 is not None


@dataclass
class Diplotype:
    gene: str
    status: str  # called | partial | ambiguous | uncallable
    diplotype: str | None = None
    allele1: str | None = None
    allele2: str | None = None
    phenotype: str | None = None
    activity_score: str | None = None
    phased: bool = False  # matched per chromosome: every heterozygous call was phased
    positions_called: int = 0
    missing: list[str] = field(default_factory=list)  # rsid or chrom:pos of each no-call
    alternatives: list[str] = field(default_factory=list)
    reason: str | None = None


def same(defined: str, observed: str) -> bool:
    return defined == observed or (len(observed) == 1 and observed in IUPAC.get(defined, ""))


def _natural(name: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


def _explains(h1: tuple[str, ...], h2: tuple[str, ...], calls: list[tuple[int, Call]], phased: bool) -> bool:
    for i, c in calls:
        straight = same(h1[i], c.a1) and same(h2[i], c.a2)
        if not (straight or (not phased and same(h1[i], c.a2) and same(h2[i], c.a1))):
            return False
    return True


def _score(a: NamedAllele, called: set[int]) -> int:
    """Defining positions the calls can speak to (a reference allele defines them all)."""
    return sum(1 for i, v in enumerate(a.alleles) if (v is not None or a.reference) and i in called)


def _best_pairs(
    gene: GeneDefinition, calls: list[tuple[int, Call]], phased: bool
) -> list[tuple[NamedAllele, NamedAllele]]:
    seen = {i: {c.a1, c.a2} for i, c in calls}
    haps = [(a, gene.filled(a)) for a in gene.alleles]
    fits = [(a, h) for a, h in haps if all(any(same(h[i], o) for o in seen[i]) for i, _ in calls)]
    called = {i for i, _ in calls}
    pairs = [(x, y) for x in fits for y in fits] if phased else list(combinations_with_replacement(fits, 2))
    good = [(x[0], y[0]) for x, y in pairs if _explains(x[1], y[1], calls, phased)]
    if not good:
        return []
    top = max(_score(x, called) + _score(y, called) for x, y in good)
    return [(x, y) for x, y in good if _score(x, called) + _score(y, called) == top]


def _label(x: NamedAllele, y: NamedAllele) -> tuple[str, str]:
    return tuple(sorted((x.name, y.name), key=_natural))  # type: ignore[return-value]


def phenotype_of(gene: GeneDefinition, pair: tuple[str, str]) -> tuple[str, str | None]:
    """CPIC's phenotype and activity score of a diplotype (Indeterminate when unmapped)."""
    return gene.phenotypes.get(tuple(sorted(pair)), ("Indeterminate", None))


def call_gene(gene: GeneDefinition, observed: dict[int, Call]) -> Diplotype:
    """The diplotype of one person at one gene; ``observed`` maps position index to its call."""
    calls = sorted((i, c) for i, c in observed.items() if c.called)
    missing = [p.rsid or f"{p.contig}:{p.pos}" for i, p in enumerate(gene.positions) if i not in dict(calls)]
    out = Diplotype(gene.gene, "uncallable", positions_called=len(calls), missing=missing)
    if not calls:
        out.reason = f"no call at any of the {len(gene.positions)} defining positions"
        return out
    hets = [c for _, c in calls if c.a1 != c.a2]
    phased = bool(hets) and all(c.phased for c in hets)  # homozygous calls need no phase
    best = _best_pairs(gene, calls, phased)
    if not best:
        out.reason = ("the calls fit no pair of named alleles (a novel allele, or alleles not normalised "
                      "as PharmCAT's positions)")
        return out
    labels = sorted({_label(x, y) for x, y in best}, key=lambda p: (_natural(p[0]), _natural(p[1])))
    a1, a2 = labels[0]
    phenos = {phenotype_of(gene, p) for p in labels}
    phenotype, activity = phenotype_of(gene, (a1, a2))
    out.allele1, out.allele2, out.diplotype, out.phased = a1, a2, f"{a1}/{a2}", phased
    out.alternatives = [f"{x}/{y}" for x, y in labels[1:]]
    if len(phenos) > 1:
        out.status, out.reason = (
            "ambiguous",
            (f"{len(labels)} diplotypes explain the calls equally well, with different phenotypes"),
        )
        out.phenotype = "Indeterminate"
        return out
    out.phenotype, out.activity_score = phenotype, activity
    out.status = "partial" if missing else "called"
    if missing:
        out.reason = f"{len(missing)} defining position(s) not called; called from the other {len(calls)}"
    return out
