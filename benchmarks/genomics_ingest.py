"""VCF -> bronze + silver throughput and peak memory, against `bcftools view -Ob` on the same file.

    python benchmarks/genomics_ingest.py --samples 1000 --sites 20000 [--sites 40000 ...]

For each size it simulates a cohort with msprime (coalescent, so the allele-frequency spectrum
is realistic), writes a bgzipped, tabix-indexed VCF with GT:AD:DP:GQ and INFO AC/AN/AF/DP,
times single-threaded `bcftools view -Ob` on it, then times `omicslake ingest vcf` (bronze and
silver) in a fresh process on the embedded engine and reports genotypes/s and peak RSS.
Generated files are cached in benchmarks/out/.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

OUT = Path(__file__).parent / "out"
ROOT = Path(__file__).resolve().parent.parent


def simulate(samples: int, sites: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
    """Diploid genotypes (sites x samples x 2), positions, and alleles per site."""
    import msprime

    length = 1_000_000
    while True:
        ts = msprime.sim_ancestry(samples=samples, ploidy=2, sequence_length=length,
                                  recombination_rate=1e-8, population_size=10_000, random_seed=seed)
        ts = msprime.sim_mutations(ts, rate=1.5e-8, random_seed=seed)
        if ts.num_sites >= sites:
            break
        length = int(length * 1.3 * sites / max(ts.num_sites, 1))
    positions, alleles, haps = [], [], []
    for var in ts.variants():
        if len(positions) == sites:
            break
        pos = int(var.site.position) + 1
        if positions and pos <= positions[-1]:
            continue
        positions.append(pos)
        alleles.append(var.alleles)
        haps.append(var.genotypes.astype(np.int8))
    h = np.stack(haps).reshape(len(positions), samples, 2)
    return h, np.array(positions), np.array(positions), alleles


def write_vcf(path: Path, samples: int, sites: int, seed: int = 42) -> Path:
    h, positions, _, alleles = simulate(samples, sites, seed)
    rng = np.random.default_rng(seed)
    names = [f"BENCH{i:05d}" for i in range(samples)]
    plain = path.with_suffix("")
    gt_text = np.array([f"{a}|{b}" for a in range(4) for b in range(4)], dtype=object).reshape(4, 4)
    with open(plain, "w") as fh:
        fh.write("##fileformat=VCFv4.2\n##reference=GRCh38\n##contig=<ID=chr20,length=64444167>\n")
        fh.write('##INFO=<ID=AC,Number=A,Type=Integer,Description="Allele count">\n')
        fh.write('##INFO=<ID=AN,Number=1,Type=Integer,Description="Allele number">\n')
        fh.write('##INFO=<ID=AF,Number=A,Type=Float,Description="Allele frequency">\n')
        fh.write('##INFO=<ID=DP,Number=1,Type=Integer,Description="Total depth">\n')
        fh.write('##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n')
        fh.write('##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allelic depths">\n')
        fh.write('##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Depth">\n')
        fh.write('##FORMAT=<ID=GQ,Number=1,Type=Integer,Description="Genotype quality">\n')
        fh.write("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(names) + "\n")
        for i, pos in enumerate(positions):
            al = [a if a in "ACGT" else "N" for a in alleles[i] if a is not None]
            if len(set(al)) != len(al):
                continue
            g = np.minimum(h[i], len(al) - 1)
            n_alt = len(al) - 1
            dp = rng.poisson(30, samples)
            alt_reads = np.where((g[:, 0] > 0) | (g[:, 1] > 0), rng.binomial(dp, 0.5), 0)
            gq = rng.integers(20, 99, samples)
            gts = gt_text[g[:, 0], g[:, 1]]
            ac = [int((g == k).sum()) for k in range(1, n_alt + 1)]
            an = 2 * samples
            if n_alt == 1:
                ads = [f"{d - a},{a}" for d, a in zip(dp, alt_reads, strict=True)]
            else:
                zeros = ",0" * (n_alt - 1)
                ads = [f"{d - a},{a}{zeros}" for d, a in zip(dp, alt_reads, strict=True)]
            calls = "\t".join(f"{t}:{a}:{d}:{q}" for t, a, d, q in zip(gts, ads, dp, gq, strict=True))
            info = (f"AC={','.join(map(str, ac))};AN={an};"
                    f"AF={','.join(f'{c / an:.4g}' for c in ac)};DP={int(dp.sum())}")
            fh.write(f"chr20\t{pos}\t.\t{al[0]}\t{','.join(al[1:])}\t50\tPASS\t{info}\tGT:AD:DP:GQ\t{calls}\n")
    subprocess.run(["bgzip", "-f", "-@2", str(plain)], check=True)
    subprocess.run(["tabix", "-f", "-p", "vcf", str(path)], check=True)
    with open(path.parent / f"{path.name}.manifest.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["sample_id", "patient_id", "specimen", "assay", "build"])
        for i, n in enumerate(names):
            w.writerow([n, f"MRN-B{i:06d}", "blood", "WGS", "GRCh38"])
    return path


def time_bcftools(path: Path) -> float:
    best = float("inf")
    for _ in range(2):
        t = time.perf_counter()
        subprocess.run(["bcftools", "view", "-Ob", "-o", os.devnull, str(path)], check=True)
        best = min(best, time.perf_counter() - t)
    return best


def time_ingest(path: Path) -> dict:
    home = Path(tempfile.mkdtemp(prefix="omicslake-bench-"))
    env = {**os.environ, "OMICSLAKE_HOME": str(home), "RUST_LOG": "error",
           "OMICSLAKE_PSEUDONYM_KEY": "bench-key-0123456789abcdef0123456789"}
    manifest = path.parent / f"{path.name}.manifest.csv"
    cmd = [sys.executable, "-m", "omicslake.cli", "ingest", "vcf", str(path), "--center", "BENCH",
           "--manifest", str(manifest)]
    # create the empty tables first, so the timing covers the ingest itself
    subprocess.run([sys.executable, "-m", "omicslake.cli", "tables"], env=env, check=True,
                   capture_output=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if proc.returncode != 0:
        raise SystemExit(f"ingest failed:\n{proc.stdout}\n{proc.stderr[-3000:]}")
    timings = [json.loads(line[len("TIMING "):]) for line in proc.stderr.splitlines()
               if line.startswith("TIMING ")]
    out = subprocess.run([sys.executable, "-m", "omicslake.cli", "tables", "--json"], env=env,
                         capture_output=True, text=True, check=True).stdout
    rows = {d["name"]: d["rows"] for d in map(json.loads, out.splitlines())}
    shutil.rmtree(home, ignore_errors=True)
    return {"wall_s": wall, "peak_rss_mb": max(peak_kb, before) / 1024, "rows": rows, "timings": timings,
            "stdout": proc.stdout.strip()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--sites", type=int, action="append", help="sites per file; repeat for several sizes")
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    for sites in args.sites or [20000]:
        path = OUT / f"msprime_{args.samples}x{sites}.vcf.gz"
        if not path.exists():
            t = time.perf_counter()
            print(f"generating {path.name} with msprime ...", flush=True)
            write_vcf(path, args.samples, sites)
            print(f"  generated in {time.perf_counter() - t:.1f} s", flush=True)
        n_sites = int(subprocess.run(["bcftools", "index", "-n", str(path)], capture_output=True,
                                     text=True, check=True).stdout.strip() or 0)
        genotypes = n_sites * args.samples
        bcf = time_bcftools(path)
        res = time_ingest(path)
        print(json.dumps({
            "file": path.name, "size_mb": round(path.stat().st_size / 2**20, 1), "sites": n_sites,
            "samples": args.samples, "genotypes": genotypes,
            "bcftools_view_Ob_s": round(bcf, 2),
            "ingest_bronze_silver_s": round(res["wall_s"], 2),
            "ratio_to_bcftools": round(res["wall_s"] / bcf, 2),
            "genotypes_per_s": round(genotypes / res["wall_s"]),
            "peak_rss_mb": round(res["peak_rss_mb"]),
            "rows": {k: v for k, v in res["rows"].items() if k.startswith(("bronze.", "silver."))},
        }), flush=True)
        print("  " + res["stdout"].replace("\n", "\n  "), flush=True)


if __name__ == "__main__":
    main()
