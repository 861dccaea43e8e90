"""PharmCAT's allele definitions and CPIC phenotype maps (``reference/pharmcat/``).

``alleles/<GENE>_translation.json`` lists a gene's defining positions (GRCh38, VCF
orientation) and its named alleles, one value per position (``null``: not part of the
definition, which matches the reference base, as PharmCAT fills it). ``phenotype/<GENE>.json``
maps each diplotype to a phenotype and, for some genes, an activity score. The files are
MPL-2.0 data; ``reference/pharmcat/README.md`` says what ships with them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from omicslake.errors import InputError

PHARMCAT_DIR = Path(__file__).resolve().parent.parent / "reference" / "pharmcat"
CPIC_DIR = PHARMCAT_DIR.parent / "cpic"  # CPIC guidance and drugs.csv, read by call_pgx and build_kg
GENES = ("CYP2B6", "CYP2C19", "CYP2C9", "CYP3A5", "DPYD", "NUDT15", "SLCO1B1", "TPMT", "UGT1A1", "VKORC1")


@dataclass(frozen=True)
class Position:
    contig: str
    pos: int
    rsid: str | None
    ref: str
    alts: tuple[str, ...]


@dataclass(frozen=True)
class NamedAllele:
    name: str
    alleles: tuple[str | None, ...]  # one per position; None: the reference base
    score: int  # defining positions: a more specific allele wins a tie
    reference: bool
    function: str | None
    activity: str | None


@dataclass(frozen=True)
class GeneDefinition:
    gene: str
    version: str
    positions: tuple[Position, ...]
    alleles: tuple[NamedAllele, ...]
    phenotypes: dict[tuple[str, str], tuple[str, str | None]]  # sorted allele pair -> (phenotype, score)

    def filled(self, allele: NamedAllele) -> tuple[str, ...]:
        """The allele's base at every position, the reference where it defines none."""
        return tuple(
            a if a is not None else p.ref for a, p in zip(allele.alleles, self.positions, strict=True)
        )


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: missing; PharmCAT definitions ship in reference/pharmcat/") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None


def _pairs(diplotypes: list[dict]) -> dict[tuple[str, str], tuple[str, str | None]]:
    out = {}
    for d in diplotypes:
        names = [n for n, k in d["diplotypekey"].items() for _ in range(k)]
        if len(names) == 2:
            out[tuple(sorted(names))] = (d["phenotype"], d.get("activityScore"))
    return out


def load_gene(gene: str, folder: Path = PHARMCAT_DIR) -> GeneDefinition:
    t = _read(folder / "alleles" / f"{gene}_translation.json")
    p = _read(folder / "phenotype" / f"{gene}.json")
    positions = tuple(
        Position(v["chromosome"], int(v["position"]), v.get("rsid"), v["ref"], tuple(v["alts"]))
        for v in t["variants"]
    )
    functions = {
        a["name"]: (a.get("functionValue"), a.get("activityValue")) for a in p.get("namedAlleles", [])
    }
    alleles = tuple(
        NamedAllele(
            a["name"],
            tuple(a["alleles"]),
            int(a.get("score") or 0),
            bool(a.get("reference")),
            *functions.get(a["name"], (None, None)),
        )
        for a in t["namedAlleles"]
    )
    for a in alleles:
        if len(a.alleles) != len(positions):
            raise InputError(
                f"{gene}: allele {a.name} has {len(a.alleles)} values for {len(positions)} positions"
            )
    return GeneDefinition(gene, str(t.get("version")), positions, alleles, _pairs(p["diplotypes"]))


def load_all(folder: Path = PHARMCAT_DIR) -> dict[str, GeneDefinition]:
    return {g: load_gene(g, folder) for g in GENES}


def release(folder: Path = PHARMCAT_DIR) -> str:
    """The PharmCAT commit the files come from and the definitions' own version."""
    commit = (folder / "SOURCE_COMMIT").read_text().split()[0][:12]
    version = _read(folder / "alleles" / "CYP2C19_translation.json").get("version")
    return f"pharmcat@{commit} ({version})"
