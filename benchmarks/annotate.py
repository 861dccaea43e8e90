"""Variant annotation throughput and peak memory: genes, ClinVar and gnomAD on silver.variants.

    python benchmarks/annotate.py [--variants 2000000] [--clinvar 3000000] [--gnomad 3000000]

Generates (cached in benchmarks/out/annotate/) a 1.5 Gb 24-contig reference, a GENCODE-style
GTF of 60,000 transcripts (20,000 genes, so genes cover about as much of it as of a human
genome), a ClinVar-style VCF (3M alleles, SNVs, indels and
multiallelic records, as ClinVar writes them) and a gnomAD-style sites VCF with AF, AC, AN and
eight AF_<population> keys, all bgzipped and tabix-indexed. Then, in a fresh process on the
embedded engine, it writes the variants to silver.variants (half of them ClinVar alleles, some
of the rest gnomAD's) and times three annotate_variants runs:

  load      parse + normalise the three sources (once per release), annotate, first write
  rerun     annotate every variant again from the registered releases (nothing changes)
  release   a new ClinVar release name: every row is updated in place (MERGE)

and, on its own, the ClinVar + gnomAD match (every variant joined to both releases); it prints
variants/s for each and the peak RSS of that process.
"""

from __future__ import annotations

import argparse
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

ROOT = Path(__file__).resolve().parent.parent
OUT = Path(__file__).parent / "out" / "annotate"
CONTIGS = {f"chr{i}": 62_500_020 for i in range(1, 25)}  # 1.5 Gb in whole 60-base lines
BASES = np.frombuffer(b"ACGT", dtype=np.uint8)
SIGNIFICANCE = ["Pathogenic", "Likely_pathogenic", "Uncertain_significance", "Likely_benign", "Benign",
                "Conflicting_classifications_of_pathogenicity"]
REVIEW = ["criteria_provided,_single_submitter", "criteria_provided,_multiple_submitters,_no_conflicts",
          "reviewed_by_expert_panel", "no_assertion_criteria_provided"]
POPS = ["afr", "amr", "asj", "eas", "fin", "mid", "nfe", "sas"]


def genome(rng) -> dict[str, np.ndarray]:
    return {c: BASES[rng.integers(0, 4, n, dtype=np.uint8)] for c, n in CONTIGS.items()}


def write_fasta(seq: dict[str, np.ndarray], path: Path) -> None:
    with open(path, "wb") as fh:
        for c, s in seq.items():
            fh.write(f">{c}\n".encode())
            rows = s.reshape(-1, 60)
            fh.write(np.hstack([rows, np.full((len(rows), 1), ord("\n"), np.uint8)]).tobytes())
    subprocess.run(["samtools", "faidx", str(path)], check=True)


def write_gtf(rng, path: Path, genes: int = 20_000, per_gene: int = 3) -> None:
    names = list(CONTIGS)
    with open(path, "w") as fh:
        fh.write("##description: evidence-based annotation of the human genome (GRCh38), version 99 "
                 "(benchmark)\n##provider: GENCODE\n")
        for g in range(genes):
            contig = names[g * len(names) // genes]
            start = int(rng.integers(1_000, CONTIGS[contig] - 100_000))
            span, strand = int(rng.integers(5_000, 60_000)), "+-"[g % 2]
            for t in range(per_gene):
                write_transcript(rng, fh, contig, start, span, strand, g, t)


def write_transcript(rng, fh, contig: str, start: int, span: int, strand: str, g: int, t: int) -> None:
    n = int(rng.integers(4, 13))
    cuts = np.sort(rng.choice(np.arange(start, start + span, 50), n, replace=False))
    exons = [(int(a), int(a) + int(rng.integers(80, 300))) for a in cuts]
    attrs = (f'gene_id "ENSGB{g:06d}"; transcript_id "ENSTB{g:06d}{t}"; gene_type "protein_coding"; '
             f'gene_name "GENE{g}";')
    lines = [("transcript", exons[0][0], exons[-1][1])] + [("exon", a, b) for a, b in exons]
    if t < 2:  # coding transcripts: CDS from inside the first exon to inside the last
        lo, hi = exons[0][0] + 40, exons[-1][1] - 40
        lines += [("CDS", max(a, lo), min(b, hi)) for a, b in exons]
    fh.write("".join(f"{contig}\tBENCH\t{k}\t{a}\t{b}\t.\t{strand}\t.\t{attrs}\n" for k, a, b in lines))


def alleles(rng, seq: dict[str, np.ndarray], n: int) -> list[tuple[str, int, str, str]]:
    """Sorted (contig, pos, ref, alt): 90% SNVs, 5% deletions, 5% insertions, unique positions."""
    out = []
    for contig, s in seq.items():
        k = n // len(seq)
        pos = np.unique(rng.integers(10, len(s) - 50, int(k * 1.05)))[:k]
        kind = rng.random(len(pos))
        shift = rng.integers(1, 4, len(pos))
        for p, x, d in zip(pos.tolist(), kind.tolist(), shift.tolist(), strict=True):
            ref = chr(s[p - 1])
            if x < 0.90:
                out.append((contig, p, ref, "ACGT"[("ACGT".index(ref) + d) % 4]))
            elif x < 0.95:
                out.append((contig, p, s[p - 1:p + d].tobytes().decode(), ref))
            else:
                out.append((contig, p, ref, ref + "ACGT"[d] * d))
    return out


def bgzip_tabix(plain: Path) -> Path:
    subprocess.run(["bgzip", "-f", "-@2", str(plain)], check=True)
    gz = Path(str(plain) + ".gz")
    subprocess.run(["tabix", "-f", "-p", "vcf", str(gz)], check=True)
    return gz


def write_clinvar(rng, sites: list, path: Path) -> Path:
    with open(path, "w") as fh:
        fh.write("##fileformat=VCFv4.1\n##fileDate=2026-11-01\n##source=ClinVar\n##reference=GRCh38\n")
        for k, n in (("CLNSIG", "."), ("CLNREVSTAT", "."), ("GENEINFO", "1"), ("ALLELEID", "1")):
            fh.write(f'##INFO=<ID={k},Number={n},Type=String,Description="{k}">\n')
        fh.write("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
        sig, rev = rng.integers(0, len(SIGNIFICANCE), len(sites)), rng.integers(0, len(REVIEW), len(sites))
        for i, (c, p, r, a) in enumerate(sites):
            multi = i % 97 == 0 and len(r) == len(a) == 1  # ClinVar has a few multiallelic records
            alt = f"{a},{'ACGT'[('ACGT'.index(r[0]) + 2) % 4]}" if multi else a
            info = (f"ALLELEID={i + 1};CLNSIG={SIGNIFICANCE[sig[i]]};CLNREVSTAT={REVIEW[rev[i]]};"
                    f"GENEINFO=GENE{i % 20000}:{i % 20000 + 1}")
            fh.write(f"{c[3:]}\t{p}\t{i + 1}\t{r}\t{alt}\t.\t.\t{info}\n")
    return bgzip_tabix(path)


def write_gnomad(rng, sites: list, path: Path) -> Path:
    with open(path, "w") as fh:
        fh.write("##fileformat=VCFv4.2\n")
        for k, n, t in [("AC", "A", "Integer"), ("AN", "1", "Integer"), ("AF", "A", "Float")] + [
                (f"AF_{p}", "A", "Float") for p in POPS]:
            fh.write(f'##INFO=<ID={k},Number={n},Type={t},Description="{k}">\n')
        fh.writelines(f"##contig=<ID={c},length={n}>\n" for c, n in CONTIGS.items())
        fh.write("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
        af = rng.beta(0.1, 5, (len(sites), len(POPS) + 1)).round(6)
        for i, (c, p, r, a) in enumerate(sites):
            pops = ";".join(f"AF_{q}={af[i, j + 1]:g}" for j, q in enumerate(POPS))
            fh.write(f"{c}\t{p}\t.\t{r}\t{a}\t.\tPASS\tAC={int(af[i, 0] * 152000)};AN=152000;"
                     f"AF={af[i, 0]:g};{pops}\n")
    return bgzip_tabix(path)


def generate(args) -> dict:
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    tag = f"{args.clinvar}_{args.gnomad}_{args.variants}"
    mb = sum(CONTIGS.values()) // 1_000_000
    files = {"fasta": OUT / f"genome_{mb}M.fa", "gtf": OUT / f"gencode.v99.bench_{mb}M.gtf",
             "clinvar": OUT / f"clinvar_{tag}.vcf.gz", "gnomad": OUT / f"gnomad.v9.9.bench_{tag}.vcf.gz",
             "variants": OUT / f"variants_{tag}.parquet"}
    if all(f.exists() for f in files.values()):
        return files
    shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    t = time.perf_counter()
    seq = genome(rng)
    write_fasta(seq, files["fasta"])
    write_gtf(rng, files["gtf"])
    clin = alleles(rng, seq, args.clinvar)
    write_clinvar(rng, clin, files["clinvar"].with_suffix(""))
    extra = alleles(np.random.default_rng(8), seq, args.gnomad)
    picked = rng.random(len(clin)) < 0.6
    shared = [x for x, k in zip(clin, picked, strict=True) if k]
    gno = sorted({*shared, *extra[: max(0, args.gnomad - len(shared))]})
    write_gnomad(rng, gno, files["gnomad"].with_suffix(""))
    write_variants(rng, clin, gno, seq, args.variants, files["variants"])
    print(f"generated inputs in {time.perf_counter() - t:.0f} s", flush=True)
    return files


def write_variants(rng, clin: list, gno: list, seq, n: int, path: Path) -> None:
    """Half ClinVar alleles, a third gnomAD's, the rest new SNVs (as silver.variants rows)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    take = lambda xs, k: [xs[i] for i in rng.choice(len(xs), min(k, len(xs)), replace=False)]  # noqa: E731
    rows = set(take(clin, n // 2)) | set(take(gno, n // 3))
    rows |= set(alleles(np.random.default_rng(9), seq, n - len(rows) + n // 50))
    rows = sorted(rows)[:n]
    cols = list(zip(*rows, strict=True))
    ids = [f"GRCh38:{c}:{p}:{r}:{a}" for c, p, r, a in rows]
    pq.write_table(pa.table({"variant_id": ids, "build": ["GRCh38"] * len(rows), "contig": cols[0],
                             "pos": pa.array(cols[1], pa.int64()), "ref": cols[2], "alt": cols[3]}), path)


def child(files: dict) -> None:
    """The timed part, in its own process (its peak RSS includes the embedded engine)."""
    sys.path.insert(0, str(ROOT))
    from pyspark.sql import functions as F

    from jobs import annotate_variants
    from omicslake.catalog import ensure_tables
    from omicslake.session import get_spark
    from omicslake.settings import load_settings
    from omicslake.writes import append

    settings = load_settings()
    spark = get_spark(settings)
    ensure_tables(spark, settings)
    t = time.perf_counter()
    none = F.lit(None).cast("string")
    variants = spark.read.parquet(str(files["variants"]))
    variants = variants.withColumn("rsid", none).withColumn("first_seen_run_id", none)
    append(variants, settings, "silver.variants")
    n = spark.table("silver.variants").count()
    out = {"variants": n, "setup_s": round(time.perf_counter() - t, 1)}
    runs = {"load": dict(gtf=str(files["gtf"]), clinvar=str(files["clinvar"]), gnomad=str(files["gnomad"]),
                         reference=str(files["fasta"])),
            "rerun": {}, "release": {"clinvar": str(files["clinvar"]), "clinvar_release": "2026-12-01",
                                     "reference": str(files["fasta"])}}
    for name, kw in runs.items():
        t = time.perf_counter()
        r = annotate_variants.run(spark, settings, stats=False, **kw)
        wall = time.perf_counter() - t
        out[name] = {"wall_s": round(wall, 1), "variants_per_s": round(n / wall), "written": r.rows_written,
                     "seconds": r.details["seconds"], "clinvar_matches": r.details["clinvar_matches"],
                     "gnomad_matches": r.details["gnomad_matches"], "in_genes": r.details["in_genes"]}
        match = r.details["seconds"]["annotations"]
        out[name]["annotate_variants_per_s"] = round(n / match)
    out["match"] = time_match(spark, settings, n)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print("RESULT " + json.dumps(out), flush=True)


def time_match(spark, settings, n: int) -> dict:
    """ClinVar + gnomAD matching alone: every variant joined to both registered releases on its
    normalised allele (the job's own functions), written out as Parquet."""
    from jobs import annotate_variants as av
    from omicslake.catalog import read_table

    rows = read_table(spark, settings, "silver.variants").select(
        "variant_id", "build", "contig", "pos", "ref", "alt")
    for source in ("clinvar", "gnomad"):
        rows = av.with_source(spark, rows, av.latest(spark, settings, source, "GRCh38"), source)
    out = f"{settings.lake_root}/_staging/bench_match"
    t = time.perf_counter()
    rows.write.mode("overwrite").parquet(out)
    wall = time.perf_counter() - t
    matched = spark.read.parquet(out).where("clinvar_id IS NOT NULL OR gnomad_an IS NOT NULL").count()
    return {"wall_s": round(wall, 2), "variants_per_s": round(n / wall), "matched_either": matched}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", type=int, default=2_000_000)
    ap.add_argument("--clinvar", type=int, default=3_000_000)
    ap.add_argument("--gnomad", type=int, default=3_000_000)
    ap.add_argument("--generate-only", action="store_true", help="write the inputs, time nothing")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child({k: Path(v) for k, v in json.loads(args.child).items()})
    files = generate(args)
    if args.generate_only:
        return print(json.dumps({k: str(v) for k, v in files.items()}, indent=1))
    home = Path(tempfile.mkdtemp(prefix="omicslake-bench-annotate-"))
    env = {**os.environ, "OMICSLAKE_HOME": str(home), "RUST_LOG": "error",
           "OMICSLAKE_PSEUDONYM_KEY": "bench-key-0123456789abcdef0123456789"}
    spec = json.dumps({k: str(v) for k, v in files.items()})
    proc = subprocess.run([sys.executable, __file__, "--child", spec], env=env, capture_output=True,
                          text=True)
    shutil.rmtree(home, ignore_errors=True)
    if proc.returncode:
        raise SystemExit(proc.stderr[-4000:])
    result = json.loads(next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))[7:])
    sizes = {k: f"{v.stat().st_size / 2**20:.0f} MB" for k, v in files.items()}
    print(json.dumps({"inputs": sizes, **result}, indent=1))


if __name__ == "__main__":
    main()
