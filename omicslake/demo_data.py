"""Deterministic sample data for the demo: VCFs and manifests.

``make_vcf``/``make_demo_inputs`` give small random VCFs per center (the tests use them);
``make_population_vcf`` gives the demo population's one multi-sample VCF, with the pathogenic
demo sites called in their carriers and, given a ``PgxPlan``, a record at every PharmCAT defining
position of the planned pharmacogenes for every sample (0/0 included: a position without a
record is a no-call, never reference, so a gene is only called where all its positions are
sent). Same seed, same bytes: running the demo twice feeds
identical files, which is how the demo shows that ingestion is idempotent.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from connectors.pharmcat import GeneDefinition, Position
    from omicslake.demo_population import Diplo, PgxPlan, Site

CONTIGS = {"chr1": 248956422, "chr17": 83257441, "chr22": 50818468}
REGIONS = {"chr1": (1_000_000, 2_000_000), "chr17": (43_044_295, 43_125_483),
           "chr22": (20_000_000, 21_000_000)}
SENDERS = ("PRV-N", "CTY-S1", "CNT-S1A", "CNT-N1A")
# The population VCF adds the EGFR and BRCA2 gene regions (GRCh38) to the background regions,
# and the pharmacogenes' contigs (DPYD chr1, TPMT chr6, CYP2C19/CYP2C9 chr10, SLCO1B1 chr12).
POPULATION_CONTIGS = {"chr1": 248956422, "chr6": 170805979, "chr7": 159345973, "chr10": 133797422,
                      "chr12": 133275309, "chr13": 114364328, "chr17": 83257441, "chr22": 50818468}
POPULATION_REGIONS = {**REGIONS, "chr7": (55_019_017, 55_211_628), "chr13": (32_315_508, 32_400_268)}
MANIFEST_COLUMNS = ["sample_id", "patient_id", "assigning_authority", "specimen", "assay", "build"]


@dataclass(frozen=True)
class CenterBatch:
    center_id: str
    vcf: Path
    manifest: Path


def _header(samples: list[str], contigs: dict[str, int] = CONTIGS) -> str:
    lines = [
        "##fileformat=VCFv4.2",
        "##reference=GRCh38",
        *(f"##contig=<ID={c},length={n}>" for c, n in contigs.items()),
        '##INFO=<ID=AC,Number=A,Type=Integer,Description="Allele count">',
        '##INFO=<ID=AN,Number=1,Type=Integer,Description="Allele number">',
        '##INFO=<ID=AF,Number=A,Type=Float,Description="Allele frequency">',
        '##INFO=<ID=DP,Number=1,Type=Integer,Description="Total depth">',
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        '##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allelic depths">',
        '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Depth">',
        '##FORMAT=<ID=GQ,Number=1,Type=Integer,Description="Genotype quality">',
        "#" + "\t".join(["CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT",
                         *samples]),
    ]
    return "\n".join(lines) + "\n"


def _random_record(rng: np.random.Generator, contig: str, pos: int, k: int, n_samples: int) -> str:
    """One background site: random REF/ALTs (every 25th multi-allelic), Beta-distributed allele
    frequencies, GT:AD:DP:GQ per sample drawn from them."""
    bases = np.array(list("ACGT"))
    ref = str(rng.choice(bases))
    n_alt = 2 if k % 25 == 0 else 1
    alts = [str(b) for b in rng.permutation([b for b in bases if b != ref])[:n_alt]]
    af = rng.beta(0.5, 4.0, size=len(alts)) / len(alts)
    p = np.concatenate([[1 - af.sum()], af])
    calls, ac = [], np.zeros(len(alts), dtype=int)
    for _ in range(n_samples):
        a = rng.choice(len(p), size=2, p=p)
        ac += np.bincount(a, minlength=len(p))[1:]
        dp = int(rng.integers(8, 60))
        share = np.bincount(a, minlength=len(p)) / 2 * 0.96 + 0.04 / len(p)
        ad = [int(x) for x in rng.multinomial(dp, share)]
        calls.append(f"{a[0]}/{a[1]}:{','.join(map(str, ad))}:{dp}:{int(rng.integers(20, 99))}")
    an = 2 * n_samples
    info = (f"AC={','.join(map(str, ac))};AN={an};"
            f"AF={','.join(f'{x / an:.4f}' for x in ac)};DP={int(rng.integers(200, 900))}")
    return (f"{contig}\t{pos}\t.\t{ref}\t{','.join(alts)}\t"
            f"{rng.integers(30, 999)}\tPASS\t{info}\tGT:AD:DP:GQ\t" + "\t".join(calls))


Line = tuple[str, int, str]  # contig, pos, the record's text


def _background(rng: np.random.Generator, regions: dict[str, tuple[int, int]], n_sites: int,
                n_samples: int, avoid: frozenset[tuple[str, int]] = frozenset()) -> list[Line]:
    """(contig, pos, line) of ``n_sites`` random sites spread evenly over ``regions``."""
    records = []
    per = n_sites // len(regions)
    for contig, (lo, hi) in regions.items():
        positions = np.sort(rng.choice(np.arange(lo, hi), size=per, replace=False))
        for k, pos in enumerate(p for p in positions if (contig, int(p)) not in avoid):
            records.append((contig, int(pos), _random_record(rng, contig, int(pos), k, n_samples)))
    return records


def _bad_record(n_samples: int) -> Line:
    """A record htslib refuses (REF 'Z'): it lands in quarantine.vcf, the rest of the file lands."""
    pos = REGIONS["chr22"][1] + 5
    calls = "\t".join(["0/1"] * n_samples)
    return ("chr22", pos, f"chr22\t{pos}\t.\tZ\tA\t50\tPASS\tDP=10\tGT\t{calls}")


def _write_indexed(path: Path, samples: list[str], records: list[Line],
                   contigs: dict[str, int] = CONTIGS) -> Path:
    """Sort, write, bgzip and tabix-index: ``x.vcf.gz`` and ``x.vcf.gz.tbi``."""
    import pysam

    order = {c: i for i, c in enumerate(contigs)}
    records = sorted(records, key=lambda r: (order[r[0]], r[1]))
    plain = path.with_suffix("")  # x.vcf.gz -> x.vcf
    plain.write_text(_header(samples, contigs) + "\n".join(r[2] for r in records) + "\n")
    pysam.tabix_index(str(plain), preset="vcf", force=True)
    return path


def make_vcf(path: Path, samples: list[str], n_sites: int, seed: int,
             bad_line: bool = False) -> Path:
    """Write a bgzipped, tabix-indexed multi-sample VCF with GT:AD:DP:GQ."""
    rng = np.random.default_rng(seed)
    records = _background(rng, REGIONS, n_sites, len(samples))
    if bad_line:
        records.append(_bad_record(len(samples)))
    return _write_indexed(path, samples, records)


def make_demo_inputs(root: Path, samples_per_center: int = 8, sites: int = 300) -> list[CenterBatch]:
    """Create (once) one VCF + manifest per sending center; returns what to ingest."""
    root.mkdir(parents=True, exist_ok=True)
    batches = []
    for i, center in enumerate(SENDERS):
        vcf = root / f"{center}.vcf.gz"
        manifest = root / f"{center}.manifest.csv"
        samples = [f"{center}-S{j:03d}" for j in range(samples_per_center)]
        if not vcf.exists():
            make_vcf(vcf, samples, sites, seed=1000 + i, bad_line=(i == 0))
        if not manifest.exists():
            write_manifest(manifest, [(s, f"MRN{i:02d}{j:05d}", center) for j, s in enumerate(samples)])
        batches.append(CenterBatch(center, vcf, manifest))
    return batches


def _site_record(rng: np.random.Generator, site: Site, samples: list[str], carriers: set[str]) -> str:
    """A pathogenic site: heterozygous in its carriers, called 0/0 in everyone else."""
    calls = []
    for sample in samples:
        dp = int(rng.integers(25, 60))
        if sample in carriers:
            alt = int(rng.binomial(dp, 0.5))
            calls.append(f"0/1:{dp - alt},{alt}:{dp}:99")
        else:
            calls.append(f"0/0:{dp},0:{dp}:{int(rng.integers(40, 99))}")
    an, ac = 2 * len(samples), sum(s in carriers for s in samples)
    info = f"AC={ac};AN={an};AF={ac / an:.4f};DP={int(rng.integers(900, 2400))}"
    return (f"{site.contig}\t{site.pos}\t.\t{site.ref}\t{site.alt}\t{int(rng.integers(200, 999))}\tPASS\t"
            f"{info}\tGT:AD:DP:GQ\t" + "\t".join(calls))


def make_population_vcf(path: Path, samples: list[str], carriers: dict[Site, set[str]], n_sites: int,
                        seed: int, bad_line: bool = True, pgx: PgxPlan | None = None) -> Path:
    """The sequencing center's multi-sample VCF: random background sites in the demo regions
    (never at a pathogenic or pharmacogene position) plus each pathogenic site called in
    ``carriers[site]`` and, with ``pgx``, every sample's genotypes at the pharmacogenes."""
    rng = np.random.default_rng(seed)
    avoid = frozenset((site.contig, site.pos) for site in carriers) | _pgx_positions(pgx)
    records = _background(rng, POPULATION_REGIONS, n_sites, len(samples), avoid)
    records += [(site.contig, site.pos, _site_record(rng, site, samples, carried))
                for site, carried in carriers.items()]
    if pgx is not None:
        records += _pgx_records(rng, pgx, samples)
    if bad_line:
        records.append(_bad_record(len(samples)))
    return _write_indexed(path, samples, records, POPULATION_CONTIGS)


def _pgx_positions(plan: PgxPlan | None) -> frozenset[tuple[str, int]]:
    if plan is None:
        return frozenset()
    from connectors.pharmcat import load_gene

    return frozenset((p.contig, p.pos) for g in plan.genes for p in load_gene(g).positions)


def _base(defined: str, ref: str) -> str:
    """The base to write for a definition's value: an IUPAC code (R = A or G) becomes the
    reference base when the code allows it, else the code's first base."""
    from omicslake.diplotypes import IUPAC

    if defined not in IUPAC:
        return defined
    return ref if len(ref) == 1 and ref in IUPAC[defined] else IUPAC[defined][0]


def haplotypes(gene: GeneDefinition, d: Diplo) -> tuple[list[str], list[str]]:
    """The diplotype's two haplotypes as the alleles to write at each defining position (the
    reference where a named allele defines none)."""
    named = {a.name: a for a in gene.alleles}

    def bases(name: str) -> list[str]:
        return [_base(v, p.ref) for v, p in zip(gene.filled(named[name]), gene.positions, strict=True)]

    return bases(d.allele1), bases(d.allele2)


Genotype = tuple[str, str, bool] | None  # the two alleles and whether phased; None: ./.


def _pgx_record(rng: np.random.Generator, p: Position, calls: list[Genotype]) -> str:
    """One defining position, every sample called (0/0 for the reference), with its rsID."""
    alleles = [p.ref, *p.alts]
    dps, gqs = rng.integers(25, 60, size=len(calls)), rng.integers(40, 99, size=len(calls))
    halves = rng.binomial(dps, 0.5)
    counts, cols = [0] * len(alleles), []
    for call, dp, gq, half in zip(calls, dps.tolist(), gqs.tolist(), halves.tolist(), strict=True):
        if call is None:
            cols.append("./.:.:.:.")
            continue
        i, j = alleles.index(call[0]), alleles.index(call[1])  # a base outside REF/ALT is a bug
        ad = [0] * len(alleles)
        ad[i] += dp if i == j else half
        ad[j] += 0 if i == j else dp - half
        counts[i] += 1
        counts[j] += 1
        cols.append(f"{i}{'|' if call[2] else '/'}{j}:{','.join(map(str, ad))}:{dp}:{gq}")
    an = sum(counts)
    info = (f"AC={','.join(map(str, counts[1:]))};AN={an};"
            f"AF={','.join(f'{c / max(an, 1):.4f}' for c in counts[1:])};DP={int(rng.integers(900, 2400))}")
    return (f"{p.contig}\t{p.pos}\t{p.rsid or '.'}\t{p.ref}\t{','.join(p.alts)}\t"
            f"{int(rng.integers(200, 999))}\tPASS\t{info}\tGT:AD:DP:GQ\t" + "\t".join(cols))


def _pgx_records(rng: np.random.Generator, plan: PgxPlan, samples: list[str]) -> list[Line]:
    """A record at every defining position of the plan's genes, for every sample in ``samples``."""
    from connectors.pharmcat import load_gene

    records = []
    for name in plan.genes:
        gene = load_gene(name)
        haps = {d: haplotypes(gene, d) for d in sorted({plan.diplotypes[s][name] for s in samples},
                                                        key=lambda d: (d.name, d.phased))}
        for i, p in enumerate(gene.positions):
            calls: list[Genotype] = []
            for s in samples:
                d = plan.diplotypes[s][name]
                h1, h2 = haps[d]
                calls.append(None if (s, name, p.pos) in plan.no_calls else (h1[i], h2[i], d.phased))
            records.append((p.contig, p.pos, _pgx_record(rng, p, calls)))
    return records


def write_manifest(path: Path, rows: Iterable[tuple[str, str, str]]) -> Path:
    """A sample manifest: (sample_id, patient_id, assigning_authority) rows, blood WGS on GRCh38."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(MANIFEST_COLUMNS)
        for sample, patient, authority in rows:
            w.writerow([sample, patient, authority, "blood", "WGS", "GRCh38"])
    return path
