"""Structural variants, reference evidence and header gaps, checked against bcftools.

Files of the usual kinds: an SV caller's <DEL>/<DUP>/<INV>/<INS> records with paired and single
breakends, a CNV caller's <CN0>..<CN4>, a gVCF with ALT=. records, and a pharmacogenomics-style
single-sample file whose INFO flag the header does not declare.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pysam
import pytest
from pyspark.sql import functions as F

from jobs import clean_variants, ingest_vcf

pytestmark = pytest.mark.skipif(shutil.which("bcftools") is None,
                                reason="bcftools is installed by `make install` (Debian package)")

HEAD = """##fileformat=VCFv4.2
##reference=GRCh38
##contig=<ID=chr1,length=248956422>
##contig=<ID=chr17,length=83257441>
##ALT=<ID=DEL,Description="Deletion">
##ALT=<ID=DUP,Description="Duplication">
##ALT=<ID=INV,Description="Inversion">
##ALT=<ID=INS,Description="Insertion">
##INFO=<ID=END,Number=1,Type=Integer,Description="End">
##INFO=<ID=SVTYPE,Number=1,Type=String,Description="Type">
##INFO=<ID=SVLEN,Number=.,Type=Integer,Description="Length">
##INFO=<ID=CIPOS,Number=2,Type=Integer,Description="CI pos">
##INFO=<ID=CIEND,Number=2,Type=Integer,Description="CI end">
##INFO=<ID=MATEID,Number=.,Type=String,Description="Mate">
##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">
##FORMAT=<ID=GQ,Number=1,Type=Integer,Description="Quality">
##FORMAT=<ID=CN,Number=1,Type=Integer,Description="Copy number">
"""

SV = HEAD + """#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\tS2
chr1\t1000\tsnv1\tA\tG\t50\tPASS\t.\tGT:GQ\t0/1:40\t0/0:50
chr1\t2000\tdel1\tT\t<DEL>\t60\tPASS\tEND=2600;SVTYPE=DEL;SVLEN=-600;CIPOS=-10,10;CIEND=-5,5\tGT:GQ\t0/1:30\t1/1:45
chr1\t5000\tdup1\tC\t<DUP>\t55\tPASS\tEND=5900;SVTYPE=DUP;SVLEN=900\tGT:GQ\t0/0:20\t0/1:35
chr1\t8000\tinv1\tG\t<INV>\t40\tPASS\tEND=8400;SVTYPE=INV\tGT:GQ\t1/1:20\t./.:.
chr1\t9000\tins1\tA\t<INS:ME:ALU>\t40\tPASS\tEND=9000;SVTYPE=INS;SVLEN=300\tGT:GQ\t0/1:20\t0/0:30
chr1\t12000\tbnd_a\tG\tG]chr17:198982]\t70\tPASS\tSVTYPE=BND;MATEID=bnd_b\tGT:GQ\t0/1:60\t0/0:60
chr1\t14000\tsbnd\tC\t.C\t30\tPASS\tSVTYPE=BND\tGT:GQ\t0/1:20\t0/0:30
chr1\t15000\tspan\tA\t*\t.\tPASS\t.\tGT:GQ\t0/1:20\t0/0:30
chr17\t198982\tbnd_b\tA\tA]chr1:12000]\t70\tPASS\tSVTYPE=BND;MATEID=bnd_a\tGT:GQ\t0/1:60\t0/0:60
"""

CNV = HEAD + """#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\tS2
chr17\t43044295\tcnv1\tN\t<CN0>,<CN3>\t.\tPASS\tEND=43125483;SVTYPE=CNV\tGT:CN\t1/1:0\t0/2:3
chr17\t43200000\tcnv2\tN\t<CN1>,<CN4>\t.\tPASS\tEND=43300000;SVTYPE=CNV\tGT:CN\t0/1:1\t2/2:4
"""

GVCF = """##fileformat=VCFv4.2
##reference=GRCh38
##contig=<ID=chr10,length=133797422>
##ALT=<ID=NON_REF,Description="Any other allele">
##INFO=<ID=END,Number=1,Type=Integer,Description="End of block">
##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">
##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Depth">
##FORMAT=<ID=GQ,Number=1,Type=Integer,Description="Quality">
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tG1
chr10\t94761000\t.\tC\t<NON_REF>\t.\t.\tEND=94761899\tGT:DP:GQ\t0/0:31:60
chr10\t94761900\trs12248560\tC\tT,<NON_REF>\t500\t.\t.\tGT:DP:GQ\t0/1:30:99
chr10\t94761901\t.\tA\t<NON_REF>\t.\t.\tEND=94762700\tGT:DP:GQ\t0/0:28:45
chr10\t94775000\t.\tG\t<NON_REF>\t.\t.\tEND=94775200\tGT:DP:GQ\t./.:0:0
chr10\t94781859\trs4244285\tG\t.\t.\t.\t.\tGT:DP:GQ\t0/0:40:99
"""

# PharmCAT-style: single sample, GRCh38, chr names, an INFO flag and a FILTER the header lacks.
PGX = """##fileformat=VCFv4.2
##reference=GRCh38
##contig=<ID=chr10,length=133797422>
##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tPGX1
chr10\t94761900\trs12248560\tC\tT\t.\tPASS\tPX\tGT\t0/1
chr10\t94781859\trs4244285\tG\tA\t.\tPASS\tPX;DP\tGT:XX\t1/0:3
chr10\t94842866\trs3758581\tA\tG\t.\tq10\tPX\tGT\t1/1
"""


def _bgzip(tmp: Path, name: str, text: str) -> str:
    plain = tmp / name
    plain.write_text(text)
    return pysam.tabix_index(str(plain), preset="vcf", force=True)


def _manifest(tmp: Path, samples: list[str]) -> str:
    m = tmp / "manifest.tsv"
    m.write_text("sample_id\tpatient_id\n" + "".join(f"{s}\tMRN-{s}\n" for s in samples))
    return str(m)


def _bcftools(*args: str) -> list[str]:
    return subprocess.run(["bcftools", *args], check=True, capture_output=True, text=True).stdout.splitlines()


def test_structural_alleles_go_to_their_own_table(fresh_lake, tmp_path):
    spark, s = fresh_lake
    sv = _bgzip(tmp_path, "sv.vcf", SV)
    cnv = _bgzip(tmp_path, "cnv.vcf", CNV)
    r = ingest_vcf.run(spark, s, [sv, cnv], "CNT-S1A", _manifest(tmp_path, ["S1", "S2"]))
    clean_variants.run(spark, s)
    assert spark.sql("SELECT alt FROM silver.variants").collect() == [("G",)]
    rows = {x.vcf_id + ":" + x.alt: x for x in spark.table("silver.structural_variants").collect()}
    truth = [f"{i}:{a}" for f in (sv, cnv) for line in _bcftools("query", "-f", "%ID\t%ALT\n", f)
             for i, alts in [line.split("\t")] for a in alts.split(",") if a not in ("G", "*")]
    assert sorted(rows) == sorted(truth)
    d = rows["del1:<DEL>"]
    assert (d.svtype, d.pos, d.end, d.svlen) == ("DEL", 2000, 2600, -600)
    assert (d.cipos, d.ciend) == ([-10, 10], [-5, 5])
    assert sorted((c.sample_id, c.gt) for c in d.carriers) == [("S1", [0, 1]), ("S2", [1, 1])]
    persons = dict(spark.sql("SELECT sample_id, person_id FROM silver.samples").collect())
    assert {c.person_id for c in d.carriers} == {persons["S1"], persons["S2"]}
    assert [c.sample_id for c in rows["inv1:<INV>"].carriers] == ["S1"]  # a no-call carries nothing
    assert rows["ins1:<INS:ME:ALU>"].svtype == "INS"
    a = rows["bnd_a:G]chr17:198982]"]
    assert (a.svtype, a.mate_id, a.mate_contig, a.mate_pos, a.bnd_orientation) == (
        "BND", "bnd_b", "chr17", 198982, "t]p]")
    b = rows["bnd_b:A]chr1:12000]"]
    assert (b.mate_id, b.mate_contig, b.mate_pos) == ("bnd_a", "chr1", 12000)
    assert rows["sbnd:.C"].bnd_orientation == ".t" and rows["sbnd:.C"].mate_contig is None
    cn0, cn3 = rows["cnv1:<CN0>"], rows["cnv1:<CN3>"]
    assert (cn0.svtype, cn0.allele_cn, cn3.allele_cn, cn0.end) == ("CNV", 0, 3, 43125483)
    assert [(c.sample_id, c.gt) for c in cn0.carriers] == [("S1", [1, 1])]
    assert [(c.sample_id, c.gt) for c in cn3.carriers] == [("S2", [0, 1])]
    assert [(c.sample_id, c.gt) for c in rows["cnv2:<CN4>"].carriers] == [("S2", [1, 1])]
    # every record accounted for, per file, and the totals add up
    acct = r.per_input[sv]
    assert acct == {"read": 9, "quarantined": 0, "silver.variants": 1, "silver.structural_variants": 7,
                    "ALT is only '*' (an allele removed by an upstream deletion, reported there)": 1}
    assert acct["read"] == len(_bcftools("view", "-H", sv))
    assert r.per_input[cnv] == {"read": 2, "quarantined": 0, "silver.structural_variants": 2}
    stored = json.loads(spark.sql("SELECT per_input_json FROM ops.ingest_runs WHERE job = 'ingest_vcf'")
                        .collect()[0].per_input_json)
    assert stored == {k: v for k, v in r.per_input.items()}
    h = spark.table("bronze.vcf_headers").where(f"source_uri = '{sv}'").select(
        "records_read", "records_quarantined", F.col("records_by_destination").alias("d")).collect()[0]
    assert h.records_read == 9 == h.records_quarantined + sum(h.d.values())
    again = ingest_vcf.run(spark, s, [sv, cnv], "CNT-S1A", _manifest(tmp_path, ["S1", "S2"]))
    clean_variants.run(spark, s)
    assert again.status == "skipped"
    assert spark.table("silver.structural_variants").count() == len(truth)


def test_reference_evidence_answers_hom_ref_questions(fresh_lake, tmp_path):
    spark, s = fresh_lake
    gz = _bgzip(tmp_path, "g1.g.vcf", GVCF)
    r = ingest_vcf.run(spark, s, [gz], "CNT-S1A", _manifest(tmp_path, ["G1"]))
    assert r.per_input[gz] == {"read": 5, "quarantined": 0, "silver.reference_blocks": 3,
                               "silver.variants": 1,
                               "reference-only record with no sample called homozygous reference": 1}
    clean_variants.run(spark, s)
    blocks = spark.sql("SELECT contig, start, `end`, gq, dp FROM silver.reference_blocks ORDER BY start")\
        .collect()
    assert [tuple(b) for b in blocks] == [("chr10", 94761000, 94761899, 60, 31),
                                         ("chr10", 94761901, 94762700, 45, 28),
                                         ("chr10", 94781859, 94781859, 99, 40)]
    person = spark.sql("SELECT person_id FROM silver.samples WHERE sample_id = 'G1'").collect()[0].person_id

    def hom_ref(pos: int) -> bool:  # the README's query
        return spark.sql(
            "SELECT count(*) > 0 AS called FROM silver.reference_blocks "
            f"WHERE person_id = '{person}' AND contig = 'chr10' AND start <= {pos} AND `end` >= {pos}"
        ).collect()[0].called

    assert hom_ref(94761500) and hom_ref(94781859)
    assert not hom_ref(94775100)  # inside a block whose call is ./. : a no-call, not reference
    assert not hom_ref(94800000)  # no block: a no-call
    assert spark.sql("SELECT alt FROM silver.variants").collect() == [("T",)]


def test_undeclared_header_keys_land_like_htslib(fresh_lake, tmp_path):
    spark, s = fresh_lake
    gz = _bgzip(tmp_path, "pgx.vcf", PGX)
    assert len(_bcftools("view", "-H", gz)) == 3  # htslib reads every record, with warnings
    r = ingest_vcf.run(spark, s, [gz], "CNT-S1A")
    assert (r.rows_accepted, r.rows_quarantined) == (3, 0)
    info = [json.loads(x.info_json) for x in
            spark.sql("SELECT info_json FROM bronze.vcf_variants ORDER BY pos").collect()]
    assert info == [{"PX": True}, {"DP": True, "PX": True}, {"PX": True}]
    h = spark.sql("SELECT warnings FROM bronze.vcf_headers").collect()[0]
    assert h.warnings == [
        "FILTER/q10 is not declared in the header",
        "FORMAT/XX is not declared in the header; read as Type=String, Number=.",
        "INFO/DP has no value; read as a flag",
        "INFO/DP is not declared in the header; read as Type=String, Number=.",
        "INFO/PX has no value; read as a flag",
        "INFO/PX is not declared in the header; read as Type=String, Number=.",
    ]
    assert "warning: " + gz + ": INFO/PX is not declared" in r.summary()
    assert spark.table("quarantine.vcf").count() == 0


@pytest.mark.engine_matrix
def test_contig_rule_is_the_same_in_python_and_spark(spark):
    from connectors.contigs import normalise_contig, normalised_contig

    names = ["1", "chr1", "CHR2", "X", "chrX", "MT", "M", "chrM", "chrMT", "GL000192.1", "chrUn_x"]
    got = spark.createDataFrame([(n,) for n in names], "n string").select(
        "n", normalised_contig(F.col("n")).alias("c")).collect()
    assert {x.n: x.c for x in got} == {n: normalise_contig(n) for n in names}
