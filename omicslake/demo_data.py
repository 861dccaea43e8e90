"""Deterministic sample data for the demo: VCFs and manifests for a few centers.

Same seed, same bytes: running the demo twice feeds identical files, which is how the demo
shows that ingestion is idempotent.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CONTIGS = {"chr1": 248956422, "chr17": 83257441, "chr22": 50818468}
REGIONS = {"chr1": (1_000_000, 2_000_000), "chr17": (43_044_295, 43_125_483),
           "chr22": (20_000_000, 21_000_000)}
SENDERS = ("PRV-N", "CTY-S1", "CNT-S1A", "CNT-N1A")


@dataclass(frozen=True)
class CenterBatch:
    center_id: str
    vcf: Path
    manifest: Path


def _header(samples: list[str]) -> str:
    lines = [
        "##fileformat=VCFv4.2",
        "##reference=GRCh38",
        *(f"##contig=<ID={c},length={n}>" for c, n in CONTIGS.items()),
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


def make_vcf(path: Path, samples: list[str], n_sites: int, seed: int,
             bad_line: bool = False) -> Path:
    """Write a bgzipped, tabix-indexed multi-sample VCF with GT:AD:DP:GQ."""
    import pysam

    rng = np.random.default_rng(seed)
    bases = np.array(list("ACGT"))
    records = []
    per = n_sites // len(REGIONS)
    for contig, (lo, hi) in REGIONS.items():
        positions = np.sort(rng.choice(np.arange(lo, hi), size=per, replace=False))
        for k, pos in enumerate(positions):
            ref = str(rng.choice(bases))
            n_alt = 2 if k % 25 == 0 else 1
            alts = [str(b) for b in rng.permutation([b for b in bases if b != ref])[:n_alt]]
            af = rng.beta(0.5, 4.0, size=len(alts)) / len(alts)
            p = np.concatenate([[1 - af.sum()], af])
            calls, ac = [], np.zeros(len(alts), dtype=int)
            for _ in samples:
                a = rng.choice(len(p), size=2, p=p)
                ac += np.bincount(a, minlength=len(p))[1:]
                dp = int(rng.integers(8, 60))
                share = np.bincount(a, minlength=len(p)) / 2 * 0.96 + 0.04 / len(p)
                ad = [int(x) for x in rng.multinomial(dp, share)]
                calls.append(f"{a[0]}/{a[1]}:{','.join(map(str, ad))}:{dp}:{int(rng.integers(20, 99))}")
            an = 2 * len(samples)
            info = (f"AC={','.join(map(str, ac))};AN={an};"
                    f"AF={','.join(f'{x / an:.4f}' for x in ac)};DP={int(rng.integers(200, 900))}")
            records.append((contig, int(pos), f"{contig}\t{pos}\t.\t{ref}\t{','.join(alts)}\t"
                            f"{rng.integers(30, 999)}\tPASS\t{info}\tGT:AD:DP:GQ\t" + "\t".join(calls)))
    if bad_line:
        pos = REGIONS["chr22"][1] + 5
        calls = "\t".join(["0/1"] * len(samples))
        records.append(("chr22", pos, f"chr22\t{pos}\t.\tZ\tA\t50\tPASS\tDP=10\tGT\t{calls}"))
    order = {c: i for i, c in enumerate(CONTIGS)}
    records.sort(key=lambda r: (order[r[0]], r[1]))
    plain = path.with_suffix("")  # x.vcf.gz -> x.vcf
    plain.write_text(_header(samples) + "\n".join(r[2] for r in records) + "\n")
    pysam.tabix_index(str(plain), preset="vcf", force=True)
    return path


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
            with open(manifest, "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["sample_id", "patient_id", "assigning_authority", "specimen", "assay", "build"])
                for j, s in enumerate(samples):
                    w.writerow([s, f"MRN{i:02d}{j:05d}", center, "blood", "WGS", "GRCh38"])
        batches.append(CenterBatch(center, vcf, manifest))
    return batches
