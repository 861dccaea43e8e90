"""Variant annotation: genes and region classes (GTF/GFF3), ClinVar, gnomAD, consequences and
cohort statistics, on small real-format files the tests write (bgzip + tabix with pysam).

One lake is built for the module through the real ingest path (ingest_vcf, clean_variants with
a FASTA, register_centers) and annotated once; the read-only checks run against it, and the
tests that re-annotate run last, in file order.
"""

from __future__ import annotations

import gzip
import logging
import os
import random
import sys
from fractions import Fraction
from math import comb
from pathlib import Path

import numpy as np
import pysam
import pytest

from connectors.gtf import read_gene_models
from omicslake.checksums import sha256_file
from omicslake.errors import InputError
from omicslake.hwe import hwe_exact_p

# --- the reference and the files -------------------------------------------------------------

rng = random.Random(11)
SEQ = list("".join(rng.choice("ACGT") for _ in range(80_000)))
SEQ[2998:3006] = "CAAAAAAG"  # an A homopolymer at 3000..3005 (1-based), C before, G after
SEQ[3498:3511] = "TCACACACACACG"  # a CA repeat at 3500..3511
SEQ = "".join(SEQ)


def base(pos: int, n: int = 1) -> str:
    return SEQ[pos - 1:pos - 1 + n]


def other(pos: int, k: int = 1) -> str:
    return [b for b in "ACGT" if b != base(pos)][k - 1]


GTF_HEAD = ("##description: evidence-based annotation of the human genome (GRCh38), version 44 "
            "(Ensembl 110)\n##provider: GENCODE\n##format: gtf\n")
# (gene, name, type, strand, transcript, exons, CDS, start codon, stop codon)
MODELS = [
    ("ENSG01", "PLUS1", "protein_coding", "+", "ENST01", [(1000, 1200), (2000, 2300), (4000, 5000)],
     [(1100, 1200), (2000, 2300), (4000, 4197)], (1100, 1102), (4198, 4200)),
    ("ENSG01", "PLUS1", "protein_coding", "+", "ENST02", [(1000, 1300), (4000, 4100)], [], None, None),
    ("ENSG02", "MINUS1", "protein_coding", "-", "ENST03", [(8000, 8500), (9000, 9400)],
     [(8300, 8500), (9000, 9200)], (9198, 9200), (8297, 8299)),
    ("ENSG03", "OVL1", "lncRNA", "+", "ENST04", [(4500, 6000)], [], None, None),
    ("ENSG04", "BIG1", "lncRNA", "+", "ENST05", [(60000, 61000), (70000, 71000)], [], None, None),
]


def gtf_text() -> str:
    out = []
    for gene, name, kind, strand, tx, exons, cds, start, stop in MODELS:
        attrs = f'gene_id "{gene}"; transcript_id "{tx}"; gene_type "{kind}"; gene_name "{name}";'
        lo, hi = exons[0][0], exons[-1][1]
        out.append(f"chr1\tHAVANA\ttranscript\t{lo}\t{hi}\t.\t{strand}\t.\t{attrs}")
        feats = [("exon", e) for e in exons] + [("CDS", c) for c in cds]
        feats += [(k, x) for k, x in (("start_codon", start), ("stop_codon", stop)) if x]
        out += [f"chr1\tHAVANA\t{k}\t{a}\t{b}\t.\t{strand}\t.\t{attrs}" for k, (a, b) in feats]
    return GTF_HEAD + "\n".join(out) + "\n"


def gff3_text() -> str:
    """The same models as Ensembl writes GFF3: an ID/Parent tree, CDS including the stop codon."""
    out, genes = ["##gff-version 3", "#!genome-version GRCh38"], set()
    for gene, name, kind, strand, tx, exons, cds, _, stop in MODELS:
        lo, hi = exons[0][0], exons[-1][1]
        if gene not in genes:
            genes.add(gene)
            out.append(f"1\tensembl\tgene\t{lo}\t{hi}\t.\t{strand}\t.\tID=gene:{gene};Name={name};"
                       f"biotype={kind}")
        out.append(f"1\tensembl\tmRNA\t{lo}\t{hi}\t.\t{strand}\t.\tID=transcript:{tx};Parent=gene:{gene}")
        out += [f"1\tensembl\texon\t{a}\t{b}\t.\t{strand}\t.\tParent=transcript:{tx}" for a, b in exons]
        with_stop = [(min(a, stop[0]) if strand == "-" and a == cds[0][0] else a,
                      max(b, stop[1]) if strand == "+" and b == cds[-1][1] else b) for a, b in cds]
        out += [f"1\tensembl\tCDS\t{a}\t{b}\t.\t{strand}\t0\tID=CDS:{tx};Parent=transcript:{tx}"
                for a, b in with_stop]
    return "\n".join(out) + "\n"


# Expected region class of silver sites by position (the GTF above), and genes hit.
REGIONS = {
    1050: ("five_prime_UTR", ["PLUS1"]), 1150: ("CDS", ["PLUS1"]), 1200: ("CDS", ["PLUS1"]),
    1201: ("splice_donor", ["PLUS1"]), 1203: ("exon", ["PLUS1"]), 1998: ("splice_acceptor", ["PLUS1"]),
    2000: ("CDS", ["PLUS1"]), 4199: ("CDS", ["PLUS1"]), 4201: ("three_prime_UTR", ["PLUS1"]),
    4600: ("three_prime_UTR", ["OVL1", "PLUS1"]), 8250: ("three_prime_UTR", ["MINUS1"]),
    8501: ("splice_acceptor", ["MINUS1"]), 8503: ("intron", ["MINUS1"]),
    8999: ("splice_donor", ["MINUS1"]), 9300: ("five_prime_UTR", ["MINUS1"]),
    15000: ("intergenic", []), 66000: ("intron", ["BIG1"]), 70500: ("exon", ["BIG1"]),
    2999: ("intron", ["PLUS1"]), 3499: ("intron", ["PLUS1"]), 5500: ("exon", ["OVL1"]),
}
DELETION = (2999, "CA", "C")  # left-aligned; ClinVar writes it at the end of the run
INSERTION = (3499, "T", "TCA")  # left-aligned; gnomAD writes it at the end of the repeat


def cohort_lines(samples: int, calls: dict[int, list[str]], positions: list[int]) -> str:
    rows = []
    for p in positions:
        ref, alt = (DELETION[1:] if p == DELETION[0] else INSERTION[1:] if p == INSERTION[0]
                    else (base(p), other(p)))
        gts = calls.get(p, ["0/1"] + ["0/0"] * (samples - 1))
        rows.append(f"chr1\t{p}\t.\t{ref}\t{alt}\t50\tPASS\t.\tGT\t" + "\t".join(gts))
    return "\n".join(rows) + "\n"


def vcf_head(samples: list[str]) -> str:
    return ("##fileformat=VCFv4.2\n##reference=GRCh38\n##contig=<ID=chr1,length=248956422>\n"
            '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
            "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(samples) + "\n")


def clinvar_text(date: str, vus_becomes: str = "Uncertain_significance") -> str:
    info = '##INFO=<ID={},Number={},Type=String,Description="x">\n'
    head = ("##fileformat=VCFv4.1\n" f"##fileDate={date}\n##source=ClinVar\n##reference=GRCh38\n"
            + "".join(info.format(k, n) for k, n in (("CLNSIG", "."), ("CLNREVSTAT", "."), ("GENEINFO", "1")))
            + "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
    rev = "CLNREVSTAT=criteria_provided,_multiple_submitters,_no_conflicts;GENEINFO=PLUS1:1001"
    body = [
        f"1\t1150\t100001\t{base(1150)}\t{other(1150, 2)},{other(1150)}\t.\t.\tCLNSIG=Pathogenic;{rev}",
        f"1\t1201\t100002\t{base(1201)}\t{other(1201)}\t.\t.\tCLNSIG={vus_becomes};{rev}",
        f"1\t3004\t100003\tAA\tA\t.\t.\tCLNSIG=Likely_pathogenic;{rev}",  # = 2999 CA>C left-aligned
        f"1\t8501\t100004\t{base(8501)}\t{other(8501)}\t.\t.\tCLNSIG=Benign;GENEINFO=MINUS1:1002",
        f"1\t9300\t100005\t{base(9300)}\t{other(9300)}\t.\t.\tCLNREVSTAT=no_classification_provided",
    ]
    return head + "\n".join(body) + "\n"


def gnomad_text() -> str:
    keys = [("AC", "A", "Integer"), ("AN", "1", "Integer"), ("AF", "A", "Float"), ("AF_afr", "A", "Float"),
            ("AF_eas", "A", "Float"), ("AF_nfe", "A", "Float"), ("nhomalt", "A", "Integer")]
    head = ("##fileformat=VCFv4.2\n##FILTER=<ID=AC0,Description=\"no alt\">\n"
            + "".join(f'##INFO=<ID={k},Number={n},Type={t},Description="x">\n' for k, n, t in keys)
            + "##contig=<ID=chr1,length=248956422>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
    body = [
        f"chr1\t1150\t.\t{base(1150)}\t{other(1150, 2)},{other(1150)}\t.\tPASS\t"
        "AC=10,2;AN=1000;AF=0.01,0.002;AF_afr=0.03,0.001;AF_eas=0,.;AF_nfe=0.005,0.004;nhomalt=1,0",
        "chr1\t3509\t.\tA\tACA\t.\tPASS\tAC=5;AN=1000;AF=0.005;AF_afr=0.01;AF_nfe=0.002",  # = 3499 T>TCA
        f"chr1\t15000\t.\t{base(15000)}\t{other(15000)}\t.\tAC0\tAC=0;AN=1000;AF=0",
    ]
    return head + "\n".join(body) + "\n"


def bgzip(path: Path, text: str) -> str:
    path.write_text(text)
    return pysam.tabix_index(str(path), preset="vcf", force=True)


# --- the lake ----------------------------------------------------------------------------------

SAMPLES_A, SAMPLES_B = ["A1", "A2", "A3", "A4"], ["B1", "B2", "B3"]
CALLS_A = {1150: ["0/1", "1/1", "0/0", "./."], 5500: ["0/1", "0/0", "0/0", "./1"]}
CALLS_B = {1150: ["0/1", "0/0", "0/0"]}
POSITIONS_B = [1150, DELETION[0]]


class Lake:
    pass


def write_inputs(tmp: Path) -> Lake:
    f = Lake()
    fasta = tmp / "ref.fa"
    fasta.write_text(">chr1\n" + "\n".join(SEQ[i:i + 60] for i in range(0, len(SEQ), 60)) + "\n")
    pysam.faidx(str(fasta))
    f.fasta = str(fasta)
    f.vcf_a = bgzip(tmp / "north.vcf", vcf_head(SAMPLES_A) + cohort_lines(4, CALLS_A, sorted(REGIONS)))
    f.vcf_b = bgzip(tmp / "south.vcf", vcf_head(SAMPLES_B) + cohort_lines(3, CALLS_B, POSITIONS_B))
    for name, samples in (("north", SAMPLES_A), ("south", SAMPLES_B)):
        rows = "".join(f"{x},MRN-{x}\n" for x in samples)
        (tmp / f"{name}.csv").write_text("sample_id,patient_id\n" + rows)
    f.gtf = str(tmp / "gencode.v44.annotation.gtf")
    Path(f.gtf).write_text(gtf_text())
    f.clinvar = bgzip(tmp / "clinvar_20240107.vcf", clinvar_text("2024-01-07"))
    f.clinvar2 = bgzip(tmp / "clinvar_20240204.vcf", clinvar_text("2024-02-04", "Likely_pathogenic"))
    gz = bgzip(tmp / "gnomad.genomes.v4.1.sites.chr1.vcf", gnomad_text())
    f.gnomad = gz.replace(".vcf.gz", ".vcf.bgz")
    os.rename(gz + ".tbi", f.gnomad + ".tbi")
    os.rename(gz, f.gnomad)
    os.utime(f.gnomad + ".tbi")
    f.tmp = tmp
    return f


class Captured(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    """silver built by the real ingest path, then annotated once with every source."""
    from pyspark.sql import SparkSession

    from jobs import annotate_variants, clean_variants, ingest_vcf, register_centers
    from omicslake.catalog import ensure_tables
    from omicslake.session import start_local_server
    from omicslake.settings import load_settings

    if os.environ.get("OMICSLAKE_TEST_ENGINE", "local") != "local":
        pytest.skip("Delta I/O is tested on the local engine")
    tmp = tmp_path_factory.mktemp("annotate")
    mp = pytest.MonkeyPatch()
    mp.setenv("OMICSLAKE_HOME", str(tmp / "home"))
    s = load_settings()
    _, (_, port) = start_local_server()
    spark = SparkSession.builder.remote(f"sc://127.0.0.1:{port}").create()
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    ensure_tables(spark, s)
    f = write_inputs(tmp)
    register_centers.run(spark, s)
    ingest_vcf.run(spark, s, [f.vcf_a], "CTY-N1", str(tmp / "north.csv"))
    ingest_vcf.run(spark, s, [f.vcf_b], "CNT-S1A", str(tmp / "south.csv"))
    clean_variants.run(spark, s, reference=f.fasta)
    logs = Captured()
    logging.getLogger("jobs.annotate_variants").addHandler(logs)
    path = os.environ["PATH"]
    os.environ["PATH"] = str(tmp / "no-tools")  # neither vep nor snpEff
    try:
        f.result = annotate_variants.run(spark, s, gtf=f.gtf, clinvar=f.clinvar, gnomad=[f.gnomad],
                                         reference=f.fasta)
    finally:
        os.environ["PATH"] = path
        logging.getLogger("jobs.annotate_variants").removeHandler(logs)
    f.logs, f.spark, f.settings = logs.lines, spark, s
    yield f
    spark.stop()
    mp.undo()


def rows_by_pos(lake, table: str = "silver.variant_annotations") -> dict:
    return {r.pos: r for r in lake.spark.table(table).collect()}



# --- pure parts --------------------------------------------------------------------------------


def snphwe(het: int, hom1: int, hom2: int) -> float:
    """Wigginton, Cutler & Abecasis (2005), the published SNPHWE recurrence, transcribed."""
    homr, homc = sorted((hom1, hom2))
    rare, n = 2 * homr + het, het + homr + homc
    probs = [0.0] * (rare + 1)
    mid = rare * (2 * n - rare) // (2 * n)
    mid += (rare & 1) ^ (mid & 1)
    probs[mid] = total = 1.0
    h, r, c = mid, (rare - mid) // 2, n - mid - (rare - mid) // 2
    while h > 1:
        probs[h - 2] = probs[h] * h * (h - 1.0) / (4.0 * (r + 1.0) * (c + 1.0))
        total, h, r, c = total + probs[h - 2], h - 2, r + 1, c + 1
    h, r, c = mid, (rare - mid) // 2, n - mid - (rare - mid) // 2
    while h <= rare - 2:
        probs[h + 2] = probs[h] * 4.0 * r * c / ((h + 2.0) * (h + 1.0))
        total, h, r, c = total + probs[h + 2], h + 2, r - 1, c - 1
    return min(1.0, sum(p for p in probs if p <= probs[het]) / total)


def exact_hwe(hom_ref: int, het: int, hom_alt: int) -> Fraction:
    """The same test by direct enumeration in exact rationals (Levene's formula)."""
    n, n_alt = hom_ref + het + hom_alt, 2 * hom_alt + het

    def p(k: int) -> Fraction:
        hom_ref_k = (2 * n - n_alt - k) // 2
        ways = comb(n, k) * comb(n - k, hom_ref_k) * 2 ** k
        return Fraction(ways, comb(2 * n, n_alt))

    support = [k for k in range(min(n_alt, 2 * n - n_alt) + 1) if (n_alt - k) % 2 == 0]
    obs = p(het)
    return sum((p(k) for k in support if p(k) <= obs), Fraction(0))


def test_hwe_exact_test_matches_the_published_algorithm():
    triples = [(4, 2, 1), (2, 1, 0), (57, 14, 50), (1000, 0, 0), (999, 1, 0), (0, 10, 0), (5, 0, 5),
               (1, 0, 0), (100, 10, 0), (30, 40, 30), (0, 0, 7)]
    r = np.random.default_rng(5)
    triples += [tuple(int(x) for x in r.integers(0, 300, 3)) for _ in range(300)]
    a = np.array(triples)
    got = hwe_exact_p(a[:, 0], a[:, 1], a[:, 2])
    want = np.array([snphwe(h, aa, bb) for aa, h, bb in triples])
    assert np.allclose(got, want, rtol=1e-9, atol=1e-300)
    for t in triples[:11]:
        assert float(exact_hwe(*t)) == pytest.approx(got[triples.index(t)], rel=1e-9)
    assert got[triples.index((57, 14, 50))] < 1e-10  # a heterozygote deficit is significant
    assert got[triples.index((1000, 0, 0))] == 1.0
    assert np.isnan(hwe_exact_p([0], [0], [0])[0])  # no genotype, no test


def test_gff3_gives_the_same_regions_as_the_gtf(tmp_path):
    (tmp_path / "a.gtf").write_text(gtf_text())
    (tmp_path / "a.gff3").write_text(gff3_text())
    cols = ["contig", "start", "end", "gene_id", "gene_name", "transcript_id", "region_class", "strand"]
    gtf = read_gene_models(str(tmp_path / "a.gtf"))
    gff = read_gene_models(str(tmp_path / "a.gff3"))
    as_set = lambda m: set(map(tuple, m.regions.to_pandas()[cols].values))  # noqa: E731
    assert gff.is_gff3 and not gtf.is_gff3
    assert as_set(gtf) == as_set(gff) and len(as_set(gtf)) == 29
    assert (gtf.transcripts, gff.transcripts) == (5, 5)


def test_malformed_gtf_lines_are_counted_with_file_and_line(tmp_path):
    text = gtf_text().splitlines()
    text.insert(5, "chr1\tHAVANA\texon\tbroken")
    text.insert(8, 'chr1\tHAVANA\texon\tx\t10\t.\t+\t.\tgene_id "G"; transcript_id "T";')
    text.insert(9, 'chr1\tHAVANA\texon\t10\t20\t.\t+\t.\tgene_id "G";')
    path = tmp_path / "bad.gtf.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(text) + "\n")
    m = read_gene_models(str(path))
    assert m.skipped == {"not 9 tab-separated columns": 1, "start or end is not a number": 1,
                         "no transcript_id (GTF) or Parent (GFF3)": 1}
    assert sorted(m.examples) == sorted([f"{path}:6: not 9 tab-separated columns",
                                         f"{path}:9: start or end is not a number",
                                         f"{path}:10: no transcript_id (GTF) or Parent (GFF3)"])
    assert m.transcripts == 5
    with pytest.raises(InputError, match="no exon, CDS or UTR"):
        (tmp_path / "empty.gtf").write_text("# nothing\n")
        read_gene_models(str(tmp_path / "empty.gtf"))


# --- annotations on the lake --------------------------------------------------------------------


def test_region_classes_by_strand_boundary_and_bin(lake):
    rows = rows_by_pos(lake)
    assert set(rows) == set(REGIONS)
    got = {p: (r.region_class, sorted(g.gene_name for g in r.genes)) for p, r in rows.items()}
    assert got == REGIONS
    # the exon's last base is CDS, the next two intronic bases the donor (+ strand); on the
    # minus strand the intron's low end is the acceptor and its high end the donor
    assert (got[1200][0], got[1201][0], got[8501][0], got[8999][0]) == (
        "CDS", "splice_donor", "splice_acceptor", "splice_donor")
    by_gene = {g.gene_name: g for g in rows[4600].genes}
    assert (by_gene["PLUS1"].region_class, by_gene["OVL1"].region_class) == ("three_prime_UTR", "exon")
    assert by_gene["PLUS1"].transcript_ids == ["ENST01"] and by_gene["PLUS1"].strand == "+"
    assert rows[1203].genes[0].transcript_ids == ["ENST01", "ENST02"]  # intron of one, exon of other
    assert rows[66000].pos >> 16 == 1 and 61001 >> 16 == 0  # the intron starts in the bin before
    assert {r.gtf_release for r in rows.values()} == {"GENCODE 44"}


def test_clinvar_matches_split_and_left_aligned_alleles(lake):
    rows = rows_by_pos(lake)
    assert rows[1150].alt == other(1150)  # the second ALT of ClinVar's multiallelic record
    assert (rows[1150].clinvar_id, rows[1150].clinvar_significance, rows[1150].clinvar_gene_info) == (
        "100001", "Pathogenic", "PLUS1:1001")
    assert rows[1150].clinvar_review_status == "criteria_provided,_multiple_submitters,_no_conflicts"
    assert (rows[2999].ref, rows[2999].alt) == DELETION[1:]  # ClinVar wrote it as 3004 AA>A
    assert (rows[2999].clinvar_id, rows[2999].clinvar_significance) == ("100003", "Likely_pathogenic")
    assert (rows[8501].clinvar_significance, rows[8501].clinvar_review_status) == ("Benign", None)
    matched = {p for p, r in rows.items() if r.clinvar_id}
    assert matched == {1150, 1201, 2999, 8501}
    assert {r.clinvar_release for r in rows.values()} == {"2024-01-07"}  # on unmatched rows too


def test_clinvar_record_without_clnsig_is_skipped_with_its_line(lake):
    with gzip.open(lake.clinvar, "rt") as fh:
        text = fh.read().splitlines()
    line = next(i for i, t in enumerate(text, start=1) if "\t100005\t" in t)
    assert f"{lake.clinvar}: 1 record(s) skipped: no CLNSIG in INFO (line {line})" in lake.result.warnings
    assert lake.result.per_input[lake.clinvar] == {"alleles": 5, "skipped": 1}
    assert rows_by_pos(lake)[9300].clinvar_id is None


def test_gnomad_frequencies_per_alt_and_population(lake):
    rows = rows_by_pos(lake)
    r = rows[1150]
    assert (r.gnomad_af, r.gnomad_ac, r.gnomad_an, r.gnomad_filter) == (0.002, 2, 1000, "PASS")
    assert dict(r.gnomad_af_by_population) == {"afr": 0.001, "nfe": 0.004}  # eas is '.' there
    ins = rows[INSERTION[0]]
    assert (ins.ref, ins.alt, ins.gnomad_af) == (*INSERTION[1:], 0.005)  # gnomAD: 3509 A>ACA
    assert dict(ins.gnomad_af_by_population) == {"afr": 0.01, "nfe": 0.002}
    assert (rows[15000].gnomad_filter, rows[15000].gnomad_af_by_population) == ("AC0", None)
    assert {p for p, x in rows.items() if x.gnomad_an} == {1150, INSERTION[0], 15000}
    assert {x.gnomad_release for x in rows.values()} == {"v4.1"}  # from the file name


def test_reference_sources_are_registered_with_release_and_checksum(lake):
    rows = {r.source: r for r in lake.spark.table("ops.reference_sources").collect()}
    assert {k: (r.release, r.build, r.records, r.skipped) for k, r in rows.items()} == {
        "gtf": ("GENCODE 44", "GRCh38", 5, 0), "clinvar": ("2024-01-07", "GRCh38", 5, 1),
        "gnomad": ("v4.1", "GRCh38", 4, 0)}
    for source, path in (("gtf", lake.gtf), ("clinvar", lake.clinvar), ("gnomad", lake.gnomad)):
        assert (rows[source].uri, rows[source].sha256) == (path, sha256_file(path))
    assert rows["clinvar"].normalised_against == lake.fasta and rows["gtf"].normalised_against is None


def test_consequences_are_skipped_with_one_line_when_no_tool_is_installed(lake):
    assert lake.logs == ["consequence annotation skipped: neither vep nor snpEff is on PATH"]
    assert lake.result.details["consequence"] == "not installed (vep, snpEff)"
    assert lake.result.status == "succeeded"
    assert {r.consequence for r in rows_by_pos(lake).values()} == {None}


def test_cohort_stats_overall_and_per_province(lake):
    stats = {(r.pos, r.scope): r for r in lake.spark.table("silver.variant_stats").collect()}
    fields = ("files", "n_samples", "n_hom_ref", "n_het", "n_hom_alt", "n_other", "ac", "an")
    got = {k: tuple(getattr(stats[k], f) for f in fields) for k in stats if k[0] in (1150, 15000, 5500)}
    # 1150: north A1 0/1, A2 1/1, A3 0/0, A4 ./. ; south B1 0/1, B2 0/0, B3 0/0. A4's no-call
    # is not in silver.genotypes, so it counts as homozygous reference (the documented rule).
    assert got == {
        (1150, "all"): (2, 7, 4, 2, 1, 0, 4, 14),
        (1150, "PRV-N"): (1, 4, 2, 1, 1, 0, 3, 8),
        (1150, "PRV-S"): (1, 3, 2, 1, 0, 0, 1, 6),
        # only the northern file has a record here: the southern samples are not counted at all
        (15000, "all"): (1, 4, 3, 1, 0, 0, 1, 8),
        (15000, "PRV-N"): (1, 4, 3, 1, 0, 0, 1, 8),
        # A4 is ./1: a carrier with a missing allele (one allele called)
        (5500, "all"): (1, 4, 2, 1, 0, 1, 2, 7),
        (5500, "PRV-N"): (1, 4, 2, 1, 0, 1, 2, 7),
    }
    assert stats[(1150, "all")].af == pytest.approx(4 / 14)
    assert stats[(1150, "all")].call_rate == 1.0 and stats[(5500, "all")].call_rate == 0.75
    for key in ((1150, "all"), (1150, "PRV-N"), (1150, "PRV-S"), (5500, "all")):
        s = stats[key]
        assert s.hwe_p == pytest.approx(snphwe(s.n_het, s.n_hom_ref, s.n_hom_alt), rel=1e-9)
    assert stats[(1150, "all")].hwe_p != stats[(1150, "PRV-N")].hwe_p
    assert {k[1] for k in stats if k[0] == DELETION[0]} == {"all", "PRV-N", "PRV-S"}


def test_the_readme_query_finds_pathogenic_variants_of_a_gene(lake):
    rows = lake.spark.sql(
        "SELECT a.pos, a.clinvar_significance, s.af FROM silver.variant_annotations a "
        "JOIN silver.variant_stats s ON s.variant_id = a.variant_id AND s.scope = 'all' "
        "WHERE array_contains(a.genes.gene_name, 'PLUS1') "
        "AND a.clinvar_significance IN ('Pathogenic', 'Likely_pathogenic')").collect()
    assert sorted((r.pos, r.clinvar_significance) for r in rows) == [
        (1150, "Pathogenic"), (DELETION[0], "Likely_pathogenic")]


def test_an_empty_lake_annotates_nothing(fresh_lake):
    from jobs import annotate_variants

    spark, s = fresh_lake
    r = annotate_variants.run(spark, s)
    assert (r.status, r.rows_written, r.details["variants"]) == ("succeeded", 0, 0)
    assert r.details["releases"] == {"gtf": None, "clinvar": None, "gnomad": None}
    assert spark.table("silver.variant_annotations").count() == 0


def test_a_source_of_another_build_is_refused(lake, tmp_path):
    from jobs import annotate_variants

    bad = bgzip(tmp_path / "clinvar37.vcf", clinvar_text("2024-01-07").replace("GRCh38", "GRCh37"))
    with pytest.raises(InputError, match=r"clinvar37\.vcf\.gz: the file is GRCh37 but GRCh38"):
        annotate_variants.run(lake.spark, lake.settings, clinvar=bad, stats=False)


# --- re-annotation (these change the lake; they run last, in this order) -----------------------

TABLES = ("silver.variant_annotations", "silver.variant_stats", "ops.reference_sources")


def versions(lake) -> dict[str, int]:
    from deltalake import DeltaTable

    from omicslake.catalog import table_uri

    return {t: DeltaTable(table_uri(lake.settings, t)).version() for t in TABLES}


def test_rerunning_the_same_release_changes_nothing(lake):
    from jobs import annotate_variants

    before = versions(lake)
    again = annotate_variants.run(lake.spark, lake.settings, gtf=lake.gtf, clinvar=lake.clinvar,
                                  gnomad=lake.gnomad, reference=lake.fasta)
    assert again.rows_written == 0 and versions(lake) == before
    registered = annotate_variants.run(lake.spark, lake.settings)  # no paths: the registered releases
    assert registered.rows_written == 0 and versions(lake) == before
    assert registered.details["releases"] == {"gtf": "GENCODE 44", "clinvar": "2024-01-07", "gnomad": "v4.1"}
    assert registered.details["clinvar_matches"] == 4


def test_a_new_clinvar_release_updates_rows_in_place(lake):
    from deltalake import DeltaTable

    from jobs import annotate_variants
    from omicslake.catalog import table_uri

    before = versions(lake)
    r = annotate_variants.run(lake.spark, lake.settings, clinvar=lake.clinvar2, reference=lake.fasta,
                              stats=False)
    rows = rows_by_pos(lake)
    assert len(rows) == len(REGIONS) and r.rows_written == len(REGIONS)  # the release is on every row
    assert rows[1201].clinvar_significance == "Likely_pathogenic" and rows[1201].clinvar_id == "100002"
    assert {x.clinvar_release for x in rows.values()} == {"2024-02-04"}
    assert {(x.gtf_release, x.gnomad_release) for x in rows.values()} == {("GENCODE 44", "v4.1")}
    assert {x.run_id for x in rows.values()} == {r.run_id}
    dt = DeltaTable(table_uri(lake.settings, "silver.variant_annotations"))
    assert dt.version() == before["silver.variant_annotations"] + 1
    assert "MERGE" in dt.history(1)[0]["operation"]
    releases = lake.spark.sql("SELECT release FROM ops.reference_sources WHERE source = 'clinvar'").collect()
    assert sorted(x.release for x in releases) == ["2024-01-07", "2024-02-04"]


FAKE_SNPEFF = '''#!{python}
import sys
if sys.argv[1:] == ["-version"]:
    print("SnpEff\\t5.2-test\\t2024-01-01")
    sys.exit(0)
open({log!r}, "a").write(" ".join(sys.argv[1:]) + "\\n")
for line in sys.stdin:
    if line.startswith("#"):
        sys.stdout.write(line)
        continue
    c = line.rstrip("\\n").split("\\t")
    term = "missense_variant" if len(c[3]) == len(c[4]) == 1 else "frameshift_variant"
    c[7] = "ANN=" + c[4] + "|" + term + "|MODERATE|G|G|transcript|T|protein_coding"
    print("\\t".join(c))
'''


def test_consequences_come_from_a_tool_on_path(lake, tmp_path, monkeypatch):
    from jobs import annotate_variants

    tool, log = tmp_path / "bin" / "snpEff", tmp_path / "calls.txt"
    tool.parent.mkdir()
    tool.write_text(FAKE_SNPEFF.format(python=sys.executable, log=str(log)))
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tool.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("OMICSLAKE_SNPEFF_ARGS", "GRCh38.mane.1.2.refseq")
    r = annotate_variants.run(lake.spark, lake.settings, stats=False)
    rows = rows_by_pos(lake)
    want = {p: "missense_variant" if len(x.ref) == len(x.alt) == 1 else "frameshift_variant"
            for p, x in rows.items()}
    assert {p: x.consequence for p, x in rows.items()} == want
    assert {x.consequence_source for x in rows.values()} == {"snpEff SnpEff 5.2-test 2024-01-01"}
    assert set(log.read_text().split()) == {"ann", "-noStats", "GRCh38.mane.1.2.refseq", "-"}
    assert r.details["consequence"].endswith(f": {len(REGIONS)} variant(s) run")
    again = annotate_variants.run(lake.spark, lake.settings, stats=False)
    assert again.details["consequence"].endswith(": 0 variant(s) run") and again.rows_written == 0


def test_without_left_alignment_the_indel_does_not_match(lake):
    from jobs import annotate_variants

    r = annotate_variants.run(lake.spark, lake.settings, clinvar=lake.clinvar2, stats=False)
    rows = rows_by_pos(lake)
    assert rows[DELETION[0]].clinvar_id is None and r.rows_written == 1  # ClinVar's 3004 AA>A
    assert rows[1150].clinvar_id == "100001" and rows[1201].clinvar_id == "100002"
    assert rows[1150].consequence == "missense_variant"  # kept: no tool on PATH now
