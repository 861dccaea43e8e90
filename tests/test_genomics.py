"""Genomics ingest checked against bcftools on the same files: chunked reading, BCF, gVCF,
genotype values after splitting multiallelics, truncated input, and N+1 batches."""

from __future__ import annotations

import gzip
import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from connectors.vcf import read_header
from connectors.vcf_arrow import parse_lines
from connectors.vcf_chunks import Chunk, plan_chunks, read_chunk
from jobs import clean_variants, ingest_vcf
from omicslake.demo_data import make_vcf
from omicslake.errors import InputError
from schemas import get_table

pytestmark = pytest.mark.skipif(shutil.which("bcftools") is None,
                                reason="bcftools is installed by `make install` (Debian package)")


def sh(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def vcf(tmp_path_factory) -> Path:
    return make_vcf(tmp_path_factory.mktemp("g") / "cohort.vcf.gz", [f"P{i}" for i in range(6)], 240,
                    seed=11)


def _sites(lines: list[str]) -> list[tuple]:
    return sorted((c[0], int(c[1]), c[3], c[4]) for c in (x.split("\t", 5) for x in lines))


def bcftools_sites(path: Path) -> list[tuple]:
    out = sh("bcftools", "query", "-f", "%CHROM\t%POS\t%REF\t%ALT\n", str(path))
    return sorted((c, int(p), r, a) for c, p, r, a in (x.split("\t") for x in out.splitlines()))


def test_region_chunks_read_every_record_once(vcf):
    h = read_header(str(vcf))
    chunks = plan_chunks(str(vcf), h.contigs, target=7)
    assert len(chunks) >= 4 and all(c.kind == "region" for c in chunks)
    lines = [line for c in chunks for _, line in read_chunk(str(vcf), c, h.header_lines)]
    assert _sites(lines) == bcftools_sites(vcf)


def test_byte_range_chunks_keep_line_numbers(vcf, tmp_path):
    plain = tmp_path / "plain.vcf"
    plain.write_bytes(gzip.decompress(vcf.read_bytes()))
    truth = [(i, line) for i, line in enumerate(plain.read_text().splitlines(keepends=True), start=1)
             if not line.startswith("#")]
    size = plain.stat().st_size
    cuts = sorted({0, size, *random.Random(3).sample(range(1, size), 9)})
    got = [x for a, b in zip(cuts, cuts[1:], strict=False)
           for x in read_chunk(str(plain), Chunk("bytes", start=a, end=b, fmt="plain"), 0)]
    assert got == truth


def test_bcf_reads_like_the_vcf(vcf, tmp_path):
    bcf = tmp_path / "cohort.bcf"
    sh("bcftools", "view", "-Ob", "-o", str(bcf), str(vcf))
    sh("bcftools", "index", str(bcf))
    h = read_header(str(bcf))
    assert h.samples == read_header(str(vcf)).samples and h.build == "GRCh38"
    chunks = plan_chunks(str(bcf), h.contigs, target=5)
    assert all(c.kind == "region" and c.fmt == "bcf" for c in chunks)
    lines = [line for c in chunks for _, line in read_chunk(str(bcf), c, 0)]
    assert _sites(lines) == bcftools_sites(vcf)
    gtype = ingest_vcf.bronze_arrow_schema().field("genotypes").type
    from_bcf, _, rej = parse_lines(lines, [None] * len(lines), h, gtype)
    vlines = [line for _, line in read_chunk(str(vcf), Chunk("whole"), read_header(str(vcf)).header_lines)]
    from_vcf, _, _ = parse_lines(vlines, [None] * len(vlines), read_header(str(vcf)), gtype)
    assert not rej
    key = lambda r: (r["contig"], r["pos"], tuple(r["alt"]))  # noqa: E731
    a = sorted(zip(*(from_bcf[k].to_pylist() for k in ("contig", "pos", "alt", "genotypes")),
                   strict=True), key=lambda t: key(dict(contig=t[0], pos=t[1], alt=t[2])))
    b = sorted(zip(*(from_vcf[k].to_pylist() for k in ("contig", "pos", "alt", "genotypes")),
                   strict=True), key=lambda t: key(dict(contig=t[0], pos=t[1], alt=t[2])))
    assert a == b


def test_silver_genotypes_match_bcftools_norm(fresh_lake, vcf, tmp_path):
    """Split multiallelics and non-reference calls, value for value, against bcftools."""
    spark, s = fresh_lake
    manifest = tmp_path / "m.csv"
    h = read_header(str(vcf))
    manifest.write_text("sample_id,patient_id\n" + "".join(f"{x},MRN-{x}\n" for x in h.samples))
    r = ingest_vcf.run(spark, s, [str(vcf)], "CTY-S1", str(manifest))
    assert r.rows_accepted == len(bcftools_sites(vcf)) and r.rows_quarantined == 0
    clean_variants.run(spark, s)
    normed = tmp_path / "norm.vcf"
    sh("bcftools", "norm", "-m-any", "-Ov", "-o", str(normed), str(vcf))
    out = sh("bcftools", "query", "-i", 'GT="alt"', "-f",
             "[%CHROM:%POS:%REF:%ALT\t%SAMPLE\t%GT\t%DP\t%GQ\t%AD\n]", str(normed))
    expected = sorted(tuple(line.split("\t")) for line in out.splitlines())
    rows = spark.sql(
        "SELECT substr(variant_id, 8) AS v, sample_id, gt, phased, dp, gq, ad FROM silver.genotypes"
    ).collect()
    got = sorted(
        (x.v, x.sample_id, ("|" if x.phased else "/").join("." if a < 0 else str(a) for a in x.gt),
         str(x.dp), str(x.gq), ",".join(map(str, x.ad)))
        for x in rows
    )
    assert len(got) == len(expected) > 100
    assert got == expected
    sites = spark.sql("SELECT count(*) AS n FROM silver.variants").collect()[0].n
    assert sites == len(sh("bcftools", "query", "-f", "%POS\n", str(normed)).splitlines())


GVCF = """##fileformat=VCFv4.2
##reference=GRCh37
##contig=<ID=1,length=249250621>
##ALT=<ID=NON_REF,Description="Any other allele">
##INFO=<ID=END,Number=1,Type=Integer,Description="End of block">
##INFO=<ID=DP,Number=1,Type=Integer,Description="Depth">
##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">
##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allelic depths">
##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Depth">
##FORMAT=<ID=GQ,Number=1,Type=Integer,Description="Quality">
##FORMAT=<ID=MIN_DP,Number=1,Type=Integer,Description="Minimum depth in block">
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tG1
1\t10000\t.\tA\t<NON_REF>\t.\t.\tEND=10499\tGT:DP:GQ:MIN_DP\t0/0:31:60:25
1\t10500\t.\tC\tT,<NON_REF>\t612.6\t.\tDP=30\tGT:AD:DP:GQ\t0/1:14,16,0:30:99
1\t10501\t.\tG\t<NON_REF>\t.\t.\tEND=10600\tGT:DP:GQ:MIN_DP\t0/0:28:45:20
1\t10601\t.\tTA\tT,<NON_REF>\t300\t.\tDP=22\tGT:AD:DP:GQ\t1/1:0,22,0:22:66
"""


def test_gvcf_reference_blocks(fresh_lake, tmp_path):
    spark, s = fresh_lake
    plain = tmp_path / "g1.g.vcf"
    plain.write_text(GVCF.replace("\\t", "\t"))
    import pysam

    gz = pysam.tabix_index(str(plain), preset="vcf", force=True)
    (tmp_path / "m.tsv").write_text("sample_id\tpatient_id\nG1\tMRN-G1\n")
    r = ingest_vcf.run(spark, s, [gz], "CNT-S1A", str(tmp_path / "m.tsv"))
    assert (r.rows_accepted, r.rows_quarantined) == (4, 0)
    blocks = spark.sql("SELECT contig, pos, `end`, build FROM bronze.vcf_variants ORDER BY pos").collect()
    assert [(b.contig, b.pos, b.end) for b in blocks] == [
        ("chr1", 10000, 10499), ("chr1", 10500, 10500), ("chr1", 10501, 10600), ("chr1", 10601, 10602)]
    assert blocks[0].build == "GRCh37"
    clean_variants.run(spark, s)
    v = spark.sql("SELECT variant_id FROM silver.variants ORDER BY pos").collect()
    assert [x.variant_id for x in v] == ["GRCh37:chr1:10500:C:T", "GRCh37:chr1:10601:TA:T"]
    g = spark.sql("SELECT variant_id, gt, ad FROM silver.genotypes ORDER BY pos").collect()
    assert [(x.gt, x.ad) for x in g] == [([0, 1], [14, 16]), ([1, 1], [0, 22])]


def test_truncated_file_commits_nothing_and_others_land(fresh_lake, vcf, tmp_path):
    spark, s = fresh_lake
    cut = tmp_path / "cut.vcf.gz"
    data = vcf.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    good = make_vcf(tmp_path / "good.vcf.gz", ["Q1", "Q2"], 40, seed=5)
    result = ingest_vcf.run(spark, s, [str(cut), str(good)], "CTY-S1")
    landed = spark.sql("SELECT source_uri, count(*) AS n FROM bronze.vcf_variants GROUP BY 1").collect()
    assert [(x.source_uri, x.n) for x in landed] == [(str(good), len(bcftools_sites(good)))]
    q = spark.sql("SELECT source_uri, location, reason FROM quarantine.vcf").collect()
    assert [(x.source_uri, x.location) for x in q] == [(str(cut), "file")] and "truncated" in q[0].reason
    run = spark.sql("SELECT status, rows_read, rows_accepted, rows_quarantined FROM ops.ingest_runs")\
        .collect()[0]
    assert run.status == "succeeded" and result.status == "succeeded"
    assert (run.rows_read, run.rows_accepted, run.rows_quarantined) == (len(bcftools_sites(good)) + 1,
                                                                         len(bcftools_sites(good)), 1)
    again = ingest_vcf.run(spark, s, [str(cut), str(good)], "CTY-S1")
    assert again.status == "skipped" and spark.table("quarantine.vcf").count() == 1


def test_corrupt_block_inside_fails_that_file_only(fresh_lake, vcf, tmp_path):
    spark, s = fresh_lake
    bad = tmp_path / "corrupt.vcf.gz"
    data = bytearray(vcf.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 64] = bytes(64)
    bad.write_bytes(bytes(data))
    shutil.copy(str(vcf) + ".tbi", str(bad) + ".tbi")
    result = ingest_vcf.run(spark, s, [str(bad)], "CTY-S1")
    assert result.rows_quarantined == 1 and any(str(bad) in w for w in result.warnings)
    assert spark.sql("SELECT count(*) AS n FROM bronze.vcf_variants").collect()[0].n == 0
    q = spark.sql("SELECT source_uri, location FROM quarantine.vcf").collect()
    assert [(x.source_uri, x.location) for x in q] == [(str(bad), "file")]


def test_manifest_must_match_samples(fresh_lake, vcf, tmp_path):
    spark, s = fresh_lake
    m = tmp_path / "wrong.csv"
    m.write_text("sample_id,patient_id\nP0,MRN1\nNOT-IN-VCF,MRN2\n")
    with pytest.raises(InputError, match="NOT-IN-VCF|P1"):
        ingest_vcf.run(spark, s, [str(vcf)], "CTY-S1", str(m))
    assert spark.sql("SELECT count(*) AS n FROM bronze.vcf_variants").collect()[0].n == 0


def test_n_plus_one_batch_only_adds_files(fresh_lake, tmp_path):
    from deltalake import DeltaTable

    from omicslake.catalog import table_uri

    spark, s = fresh_lake
    files = []
    for k in range(2):
        names = [f"B{k}-{i}" for i in range(3)]
        f = make_vcf(tmp_path / f"batch{k}.vcf.gz", names, 30, seed=20 + k)
        m = tmp_path / f"batch{k}.csv"
        m.write_text("sample_id,patient_id\n" + "".join(f"{x},MRN-{x}\n" for x in names))
        files.append((f, m))
    ingest_vcf.run(spark, s, [str(files[0][0])], "CTY-S1", str(files[0][1]))
    clean_variants.run(spark, s)
    uri = table_uri(s, "silver.genotypes")
    first = set(DeltaTable(uri).file_uris())
    ingest_vcf.run(spark, s, [str(files[1][0])], "CTY-S1", str(files[1][1]))
    clean_variants.run(spark, s)
    dt = DeltaTable(uri)
    assert first < set(dt.file_uris())
    last = dt.history(1)[0]
    assert "MERGE" not in last["operation"] and int(last["operationMetrics"].get("numRemovedFiles", 0)) == 0
    assert json.loads(json.dumps(last["operationParameters"])).get("mode", "Append") == "Append"


def test_left_align_matches_bcftools_norm_f(fresh_lake, tmp_path):
    import pysam

    spark, s = fresh_lake
    rng = random.Random(9)
    seq = list("".join(rng.choice("ACGT") for _ in range(3000)))
    seq[999:1010] = "AAAAAAAAAAA"  # homopolymer at 1000..1010
    seq[1999:2012] = "CACACACACACA" + "G"  # dinucleotide repeat at 2000..2011
    seq = "".join(seq)
    fasta = tmp_path / "ref.fa"
    fasta.write_text(">chr1\n" + "\n".join(seq[i:i + 60] for i in range(0, len(seq), 60)) + "\n")
    pysam.faidx(str(fasta))

    def at(pos: int, n: int) -> str:
        return seq[pos - 1:pos - 1 + n]

    records = [
        (500, at(500, 1), "T" if at(500, 1) != "T" else "G"),  # SNV
        (1008, at(1008, 2), at(1008, 1)),  # A deletion written at the end of the run
        (1009, at(1009, 1), at(1009, 1) + "A"),  # A insertion at the end of the run
        (2008, at(2008, 3), at(2008, 1)),  # CA deletion inside the repeat
        (2500, at(2500, 4), at(2500, 1) + "," + at(2500, 4)[:2] + "T"),  # del + mnv-ish, multiallelic
    ]
    body = "".join(f"chr1\t{p}\t.\t{r}\t{a}\t50\tPASS\t.\tGT\t0/1\n" for p, r, a in records)
    vcf = tmp_path / "indels.vcf"
    vcf.write_text("##fileformat=VCFv4.3\n##reference=GRCh38\n##contig=<ID=chr1,length=3000>\n"
                   '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
                   "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\n" + body)
    (tmp_path / "m.csv").write_text("sample_id,patient_id\nS1,MRN-S1\n")
    ingest_vcf.run(spark, s, [str(vcf)], "CTY-S1", str(tmp_path / "m.csv"))
    r = clean_variants.run(spark, s, reference=str(fasta))
    assert r.details["unnormalised_sites"] == 0
    rows = spark.sql("SELECT pos, ref, alt FROM silver.variants").collect()
    got = sorted((x.pos, x.ref, x.alt) for x in rows)
    out = sh("bcftools", "norm", "-f", str(fasta), "-m-any", "-Ov", str(vcf))
    data = [x.split("\t") for x in out.splitlines() if not x.startswith("#")]
    want = sorted((int(c[1]), c[3], c[4]) for c in data)
    assert got == want
    assert got != sorted((p, r_, a) for p, r_, alts in records for a in alts.split(","))


def test_genotype_layout_prunes_region_and_person_queries(fresh_lake, vcf, tmp_path):
    from deltalake import DeltaTable

    from omicslake.catalog import table_uri

    spark, s = fresh_lake
    h = read_header(str(vcf))
    manifest = tmp_path / "m.csv"
    manifest.write_text("sample_id,patient_id\n" + "".join(f"{x},MRN-{x}\n" for x in h.samples))
    ingest_vcf.run(spark, s, [str(vcf)], "CTY-S1", str(manifest))
    clean_variants.run(spark, s)
    dt = DeltaTable(table_uri(s, "silver.genotypes"))
    person = spark.sql("SELECT person_id, person_bucket FROM silver.genotypes LIMIT 1").collect()[0]
    assert person.person_bucket == person.person_id[1]
    every = len(dt.file_uris())
    one_person = len(dt.file_uris([("person_bucket", "=", person.person_bucket)]))
    one_region = len(dt.file_uris([("contig", "=", "chr17")]))
    assert one_person < every / 2 and one_region < every / 2
    direct = spark.sql(f"SELECT count(*) n FROM silver.genotypes WHERE person_id = '{person.person_id}'")
    assert direct.collect()[0].n == spark.sql(
        f"SELECT count(*) n FROM silver.genotypes WHERE person_bucket = '{person.person_bucket}' "
        f"AND person_id = '{person.person_id}'").collect()[0].n > 0


def test_staged_calls_equal_the_engine_path(fresh_lake, tmp_path):
    """The calls the ingest tasks stage (NumPy) are the rows the engine path derives from bronze."""
    from omicslake.catalog import read_table

    spark, s = fresh_lake
    f = make_vcf(tmp_path / "both.vcf.gz", [f"E{i}" for i in range(7)], 150, seed=77)
    m = tmp_path / "both.csv"
    m.write_text("sample_id,patient_id\n" + "".join(f"E{i},MRN-E{i}\n" for i in range(7)))
    ingest_vcf.run(spark, s, [str(f)], "CNT-N1A", str(m))
    r = clean_variants.run(spark, s)
    assert r.details["staged_sources"] == 1 and "slices" not in r.details
    cols = [c.name for c in get_table("silver.genotypes").columns]
    rows = spark.sql(f"SELECT {', '.join(cols)} FROM silver.genotypes").collect()
    staged = {tuple(map(str, x)) for x in rows}
    bronze = read_table(spark, s, "bronze.vcf_variants")
    names = clean_variants.sample_names(read_table(spark, s, "bronze.vcf_headers"))
    calls = clean_variants.split_genotypes(clean_variants.split_alleles(bronze))
    engine = clean_variants.link_persons(clean_variants.name_samples(calls, names),
                                         read_table(spark, s, "silver.samples"))
    derived = {tuple(map(str, x)) for x in engine.select(*cols).collect()}
    assert len(staged) > 50 and staged == derived
