"""The demo's one population: who is sequenced, who is ill with what, and which variant they carry.

``person_population.generate`` gives persons registered at a county (CNT-S1A, HL7), a city
(CTY-S1, HL7 + DICOM) and the provincial hospital (PRV-N, FHIR), and a sequencing manifest
naming the provincial MRN. On top of that, this module assigns, deterministically, the
clinical facts the shipped specialty-disease cohorts look for, to sequenced persons, so that
genomic and clinical criteria meet after person linkage:

- lung cancer (ICD-10 C34.x), most carrying EGFR L858R, some with a chest CT;
- hereditary breast/ovarian cancer (C50.9 / C56, women), most carrying a BRCA1 or BRCA2 SNV;
- type 2 diabetes (E11.9) with 2-4 HbA1c results (LOINC 4548-4, %) and metformin (ATC A10BA02);
  type 1 diabetes (E10.9) and normal HbA1c results as exclusion material;
- ischaemic stroke (I63.9), most with a head CT or brain MR 0-3 days after the diagnosis;
- pharmacogenes (``PGX_GENES``): every sequenced sample is genotyped at every PharmCAT defining
  position, most as the normal diplotype; a few CYP2C19 intermediate/poor metabolizers among the
  stroke patients get clopidogrel (ATC B01AC04) at the province, as do two normal metabolizers,
  and DPYD intermediate metabolizers among the breast cancer patients get capecitabine
  (ATC L01BC06), so that ``gold.medication_alerts`` has rows to show and rows to leave out.

Each fact is an ``Event`` filed at one center the person is registered at; the feed writers
(``demo_feeds``, ``demo_imaging``) turn events into HL7 v2, FHIR R4 and DICOM. Same seed, same
population, same events.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import date, timedelta

from omicslake import person_population as pp

SEQ_CENTER = "NAT"  # the registered national center sends the sequencing data
FIRST_DAY, LAST_DAY = date(2024, 1, 8), date(2026, 6, 30)
ADULT_BORN_BY = date(1999, 1, 1)  # persons given a disease are adults when it is diagnosed


@dataclass(frozen=True)
class Site:
    """A pathogenic demo SNV (GRCh38) and how the generated ClinVar file describes it."""

    name: str
    gene: str
    gene_id: int  # NCBI Gene id, as ClinVar's GENEINFO names it
    contig: str
    pos: int
    ref: str
    alt: str
    variation_id: str


EGFR_L858R = Site("EGFR_L858R", "EGFR", 1956, "chr7", 55191822, "T", "G", "9000001")
BRCA1_SNV = Site("BRCA1_SNV", "BRCA1", 672, "chr17", 43094464, "G", "A", "9000002")
BRCA2_SNV = Site("BRCA2_SNV", "BRCA2", 675, "chr13", 32340300, "C", "T", "9000003")
SITES = (EGFR_L858R, BRCA1_SNV, BRCA2_SNV)

ICD10 = {
    "C34.1": "Malignant neoplasm: upper lobe, bronchus or lung",
    "C34.3": "Malignant neoplasm: lower lobe, bronchus or lung",
    "C50.9": "Malignant neoplasm: breast, unspecified",
    "C56": "Malignant neoplasm of ovary",
    "E11.9": "Non-insulin-dependent diabetes mellitus without complications",
    "E10.9": "Insulin-dependent diabetes mellitus without complications",
    "I63.9": "Cerebral infarction, unspecified",
}
HBA1C = ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood")
METFORMIN = ("A10BA02", "metformin")
CLOPIDOGREL = ("B01AC04", "clopidogrel")
CAPECITABINE = ("L01BC06", "capecitabine")
# How many persons get each condition, and how many of them carry the driver variant.
SIZES = {"stroke": 12, "hboc": 12, "lung": 12, "t2d": 18, "t1d": 2, "normal_hba1c": 10}
CARRIERS = {"lung": 9, "hboc_brca1": 6, "hboc_brca2": 4, "unaffected_brca1": 2}
IMAGED = {"stroke": 10, "lung": 6}


@dataclass(frozen=True)
class Diplo:
    """A diplotype with PharmCAT's allele names (in PharmCAT's order), and whether the VCF
    writes it phased (``|``) or unphased (``/``)."""

    allele1: str
    allele2: str
    phased: bool = False

    @property
    def name(self) -> str:
        return f"{self.allele1}/{self.allele2}"


@dataclass(frozen=True)
class PgxGroup:
    """Persons of one pool given one diplotype (and maybe a drug its guidance speaks to)."""

    pool: str  # stroke | breast | lung | any: sequenced persons the pool's records can reach
    gene: str
    alleles: tuple[str, str]
    persons: int
    drug: tuple[str, str] | None = None  # (ATC code, name), prescribed at the province
    no_call: int | None = None  # a defining position written ./. for the group's first person


@dataclass(frozen=True)
class PgxPlan:
    """What the population VCF calls at the pharmacogenes' defining positions, by sample."""

    genes: tuple[str, ...]
    diplotypes: dict[str, dict[str, Diplo]]  # sample -> gene -> diplotype, every gene
    no_calls: frozenset[tuple[str, str, int]] = frozenset()  # (sample, gene, position) written ./.


# Genotyped at every PharmCAT defining position in every sample; normal unless PGX says otherwise.
PGX_GENES = ("CYP2C19", "DPYD", "TPMT", "SLCO1B1", "CYP2C9")
NORMAL = {"CYP2C19": Diplo("*1", "*1"), "DPYD": Diplo("Reference", "Reference"), "TPMT": Diplo("*1", "*1"),
          "SLCO1B1": Diplo("*1", "*1"), "CYP2C9": Diplo("*1", "*1")}
DPYD_2A = "c.1905+1G>A (*2A)"
RS3758581 = 94842866  # CYP2C19: without it *1 and *38 look alike, a `partial` call
# Each group takes persons no earlier group took. Stroke patients on clopidogrel: 5 intermediate
# or poor metabolizers (alerts) and 2 normal ones (no alert); breast cancer on capecitabine: 2 DPYD
# intermediate metabolizers (alerts) and 1 normal one.
PGX = (
    PgxGroup("stroke", "CYP2C19", ("*2", "*2"), 1, CLOPIDOGREL),
    PgxGroup("stroke", "CYP2C19", ("*1", "*2"), 4, CLOPIDOGREL),
    PgxGroup("stroke", "CYP2C19", ("*1", "*1"), 2, CLOPIDOGREL),
    PgxGroup("breast", "DPYD", ("Reference", DPYD_2A), 2, CAPECITABINE),
    PgxGroup("breast", "DPYD", ("Reference", "Reference"), 1, CAPECITABINE),
    PgxGroup("lung", "DPYD", ("Reference", DPYD_2A), 1),
    PgxGroup("any", "CYP2C19", ("*1", "*2"), 2, no_call=RS3758581),
    PgxGroup("any", "CYP2C19", ("*2", "*2"), 1),
    PgxGroup("any", "CYP2C19", ("*1", "*17"), 3),
    PgxGroup("any", "TPMT", ("*1", "*3A"), 2),
    PgxGroup("any", "SLCO1B1", ("*1", "*5"), 2),
    PgxGroup("any", "CYP2C9", ("*1", "*3"), 2),
)


@dataclass(frozen=True)
class Event:
    """One clinical fact at one center: a diagnosis, an HbA1c result, a prescription, a study."""

    person: int
    center_id: str
    kind: str  # diagnosis | hba1c | imaging | metformin | clopidogrel | capecitabine
    day: date
    code: str  # ICD-10 code, LOINC code, ATC code (the drug kinds), or the modality (CT, MR)
    value: float | None = None
    body_part: str | None = None


@dataclass
class DemoPopulation:
    pop: pp.Population
    homes: dict[tuple[int, str], pp.Record]  # (person, center) -> the registration to file under
    manifest: list[pp.Record]  # sequencing manifest rows (person, provincial MRN, sample id)
    diseases: dict[str, list[int]] = field(default_factory=dict)
    carriers: dict[str, list[int]] = field(default_factory=dict)  # site name -> persons
    events: list[Event] = field(default_factory=list)
    pgx: dict[str, dict[int, Diplo]] = field(default_factory=dict)  # gene -> person -> PGX diplotype
    pgx_no_calls: list[tuple[int, str, int]] = field(default_factory=list)  # (person, gene, position)

    def sample_person(self) -> dict[str, int]:
        return {r.extra["sample_id"]: r.person for r in self.manifest}

    def sequenced(self) -> list[int]:
        return sorted({r.person for r in self.manifest})

    def centers_of(self, person: int) -> list[str]:
        return [c for c in (pp.COUNTY, pp.CITY, pp.PROVINCE) if (person, c) in self.homes]

    def diplotype(self, person: int, gene: str) -> Diplo:
        return self.pgx.get(gene, {}).get(person, NORMAL[gene])

    def pgx_plan(self) -> PgxPlan:
        """Every sample's diplotypes, for ``demo_data.make_population_vcf``: a person's samples
        all carry the person's (two samples that disagree would make a no-call)."""
        person = self.sample_person()
        calls = {s: {g: self.diplotype(p, g) for g in PGX_GENES} for s, p in person.items()}
        missing = frozenset((s, g, pos) for s, p in person.items()
                            for q, g, pos in self.pgx_no_calls if q == p)
        return PgxPlan(PGX_GENES, calls, missing)


def _homes(pop: pp.Population) -> dict[tuple[int, str], pp.Record]:
    """The first HL7/FHIR registration of each person at each center (not the unnamed emergency
    registration, not a replaced FHIR Patient): the identity clinical events are sent under."""
    homes: dict[tuple[int, str], pp.Record] = {}
    for r in pop.records:
        if r.fmt in ("HL7v2", "FHIR") and r is not pop.unknown and "replaced_by" not in r.extra:
            homes.setdefault((r.person, r.center_id), r)
    return homes


def build(n_persons: int = 200, seed: int = 2026, manifest_rate: float = 0.7) -> DemoPopulation:
    """The population with its diseases, carriers and clinical events (deterministic)."""
    pop = pp.generate(n_persons, seed=seed, manifest_rate=manifest_rate)
    demo = DemoPopulation(pop, _homes(pop), [r for r in pop.records if r.fmt == "MANIFEST"])
    rng = random.Random(seed + 1)
    _assign(demo, rng)
    for name, persons in sorted(demo.diseases.items()):
        for person in persons:
            demo.events += EVENTS[name](demo, rng, person)
    pgx_rng = random.Random(seed + 2)  # its own stream: the diseases above stay as they were
    demo.events += [_prescription(demo, pgx_rng, p, drug) for p, drug in _assign_pgx(demo, pgx_rng)]
    return demo


def _take(rng: random.Random, pool: list[int], n: int, taken: set[int]) -> list[int]:
    free = [p for p in pool if p not in taken]
    chosen = sorted(rng.sample(free, min(n, len(free))))
    taken.update(chosen)
    return chosen


def _assign(demo: DemoPopulation, rng: random.Random) -> None:
    """Disjoint disease groups among the sequenced adults; stroke needs a city registration (its
    imaging comes from the city PACS), HBOC needs a woman."""
    taken: set[int] = set()
    seq = [p for p in demo.sequenced() if demo.pop.persons[p].birth <= ADULT_BORN_BY]
    women = [p for p in seq if demo.pop.persons[p].sex == "F"]
    city = [p for p in seq if (p, pp.CITY) in demo.homes]
    d = demo.diseases
    d["stroke"] = _take(rng, city, SIZES["stroke"], taken)
    d["hboc"] = _take(rng, women, SIZES["hboc"], taken)
    d["lung"] = _take(rng, seq, SIZES["lung"], taken)
    d["t2d"] = _take(rng, seq, SIZES["t2d"], taken)
    d["t1d"] = _take(rng, seq, SIZES["t1d"], taken)
    everyone = sorted({p for p, _ in demo.homes})
    d["normal_hba1c"] = _take(rng, everyone, SIZES["normal_hba1c"], taken)
    hboc = rng.sample(d["hboc"], CARRIERS["hboc_brca1"] + CARRIERS["hboc_brca2"])
    healthy = _take(rng, [p for p in women if p not in taken], CARRIERS["unaffected_brca1"], taken)
    demo.carriers = {
        EGFR_L858R.name: sorted(rng.sample(d["lung"], CARRIERS["lung"])),
        BRCA1_SNV.name: sorted(hboc[:CARRIERS["hboc_brca1"]] + healthy),
        BRCA2_SNV.name: sorted(hboc[CARRIERS["hboc_brca1"]:]),
    }


def _day(rng: random.Random, lo: date = FIRST_DAY, hi: date = date(2025, 10, 31)) -> date:
    return lo + timedelta(days=rng.randrange((hi - lo).days + 1))


def _center(demo: DemoPopulation, rng: random.Random, person: int, allowed: tuple[str, ...]) -> str:
    """A center the person is registered at, among ``allowed`` when possible."""
    mine = demo.centers_of(person)
    return rng.choice([c for c in mine if c in allowed] or mine)


def _diagnosis(demo: DemoPopulation, rng: random.Random, person: int, code: str,
               allowed: tuple[str, ...]) -> Event:
    return Event(person, _center(demo, rng, person, allowed), "diagnosis", _day(rng), code)


def _hba1c(demo: DemoPopulation, rng: random.Random, person: int, start: date, n: int,
           lo: float, hi: float) -> list[Event]:
    """``n`` HbA1c results 3-6 months apart from ``start``, each at one of the person's centers."""
    out, day = [], start
    for _ in range(n):
        if day > LAST_DAY:
            break
        value = round(rng.uniform(lo, hi), 1)
        center = _center(demo, rng, person, (pp.COUNTY, pp.CITY, pp.PROVINCE))
        out.append(Event(person, center, "hba1c", day, HBA1C[0], value))
        day += timedelta(days=rng.randrange(90, 184))
    return out


def _imaging(person: int, day: date, modality: str, body_part: str) -> Event:
    return Event(person, pp.CITY, "imaging", day, modality, body_part=body_part)


def _stroke(demo: DemoPopulation, rng: random.Random, person: int) -> list[Event]:
    dx = _diagnosis(demo, rng, person, "I63.9", (pp.CITY,))
    k = demo.diseases["stroke"].index(person)
    if k >= IMAGED["stroke"]:
        return [dx]
    modality, part = (("CT", "HEAD"), ("MR", "BRAIN"))[k % 2]
    return [dx, _imaging(person, dx.day + timedelta(days=rng.choice((0, 0, 1, 2, 3))), modality, part)]


def _lung(demo: DemoPopulation, rng: random.Random, person: int) -> list[Event]:
    dx = _diagnosis(demo, rng, person, rng.choice(("C34.1", "C34.1", "C34.3")), (pp.CITY, pp.PROVINCE))
    imaged = [p for p in demo.diseases["lung"] if (p, pp.CITY) in demo.homes][:IMAGED["lung"]]
    if person not in imaged:
        return [dx]
    return [dx, _imaging(person, dx.day - timedelta(days=rng.randrange(0, 6)), "CT", "CHEST")]


def _hboc(demo: DemoPopulation, rng: random.Random, person: int) -> list[Event]:
    code = "C56" if demo.diseases["hboc"].index(person) % 3 == 2 else "C50.9"
    return [_diagnosis(demo, rng, person, code, (pp.CITY, pp.PROVINCE))]


def _t2d(demo: DemoPopulation, rng: random.Random, person: int) -> list[Event]:
    dx = _diagnosis(demo, rng, person, "E11.9", (pp.COUNTY, pp.CITY, pp.PROVINCE))
    labs = _hba1c(demo, rng, person, dx.day, rng.randint(2, 4), 6.5, 10.0)
    rx = Event(person, pp.PROVINCE, "metformin", dx.day + timedelta(days=rng.randrange(0, 15)), METFORMIN[0])
    return [dx, *labs, rx]


def _t1d(demo: DemoPopulation, rng: random.Random, person: int) -> list[Event]:
    """Type 1 diabetes with raised HbA1c; the first of them is later also coded E11.9, which
    the T2D cohort must exclude (type 1 diagnosed before)."""
    dx = _diagnosis(demo, rng, person, "E10.9", (pp.CITY, pp.PROVINCE))
    out = [dx, *_hba1c(demo, rng, person, dx.day, 2, 6.8, 9.0)]
    if demo.diseases["t1d"].index(person) == 0:
        out.append(replace(dx, code="E11.9", day=dx.day + timedelta(days=200)))
    return out


def _normal(demo: DemoPopulation, rng: random.Random, person: int) -> list[Event]:
    return _hba1c(demo, rng, person, _day(rng), rng.randint(1, 2), 5.0, 5.6)


EVENTS = {"stroke": _stroke, "lung": _lung, "hboc": _hboc, "t2d": _t2d, "t1d": _t1d,
          "normal_hba1c": _normal}


def _callable(demo: DemoPopulation) -> set[int]:
    """Sequenced persons with one sample whose provincial FHIR Patient carries the MRN their
    manifest row names: their prescriptions and their sample meet in linkage by that MRN."""
    samples = Counter(r.person for r in demo.manifest)
    mrn = {r.person: r.identifier for r in demo.manifest}
    homes = {p: demo.homes.get((p, pp.PROVINCE)) for p in mrn}
    return {p for p, h in homes.items() if samples[p] == 1 and h is not None and h.extra.get("mrn") == mrn[p]}


def _assign_pgx(demo: DemoPopulation, rng: random.Random) -> list[tuple[int, tuple[str, str]]]:
    """Give each ``PGX`` group its persons (one in three heterozygotes phased); returns who is
    prescribed what."""
    ok, hboc = _callable(demo), demo.diseases["hboc"]
    pools = {"stroke": demo.diseases["stroke"], "lung": demo.diseases["lung"],
             "breast": [p for k, p in enumerate(hboc) if k % 3 != 2],  # C50.9, see _hboc
             "any": demo.sequenced()}
    taken: set[int] = set()
    prescribed, hets = [], 0
    for g in PGX:
        chosen = _take(rng, [p for p in pools[g.pool] if p in ok], g.persons, taken)
        for person in chosen:
            het = g.alleles[0] != g.alleles[1]
            hets += het
            demo.pgx.setdefault(g.gene, {})[person] = Diplo(*g.alleles, phased=het and hets % 3 == 1)
            prescribed += [(person, g.drug)] if g.drug else []
        if g.no_call and chosen:
            demo.pgx_no_calls.append((chosen[0], g.gene, g.no_call))
    return prescribed


def _prescription(demo: DemoPopulation, rng: random.Random, person: int, drug: tuple[str, str]) -> Event:
    """The drug at the province after the person's first diagnosis: clopidogrel within days of
    the stroke, capecitabine weeks after the breast cancer diagnosis."""
    dx = min(e.day for e in demo.events if e.person == person and e.kind == "diagnosis")
    wait = rng.randrange(0, 3) if drug == CLOPIDOGREL else rng.randrange(21, 60)
    return Event(person, pp.PROVINCE, drug[1], dx + timedelta(days=wait), drug[0])
