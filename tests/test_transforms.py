"""Pure DataFrame transforms, run on both engines (Sail and JVM Spark)."""

import shutil
import subprocess

import pytest

from connectors.vcf import iter_records, read_header
from jobs.clean_variants import name_samples, sample_names, sites, split_alleles, split_genotypes
from omicslake.demo_data import make_vcf
from schemas import get_table

pytestmark = pytest.mark.engine_matrix


def _bronze_df(spark, path):
    h = read_header(str(path))
    rows = []
    for lineno, _, rec, err in iter_records(str(path), h):
        if err:
            continue
        rec.update(line=lineno, build=h.build, center_id="C", source_uri=str(path),
                   source_checksum="x", ingest_run_id="r", ingested_at=None)
        rows.append(rec)
    return spark.createDataFrame(rows, get_table("bronze.vcf_variants").spark_schema())


def _headers(spark, samples):
    row = {c.name: None for c in get_table("bronze.vcf_headers").columns}
    row.update(samples=samples, source_checksum="x")
    return spark.createDataFrame([row], get_table("bronze.vcf_headers").spark_schema())


def test_multiallelic_split_recodes_genotypes(spark):
    rows = [{
        "contig": "chr1", "pos": 100, "end": 100, "id": None, "ref": "A", "alt": ["C", "G", "<NON_REF>"],
        "qual": None, "filter": None, "info_json": "{}", "line": 10, "build": "GRCh38",
        "genotypes": [
            {"sample_index": 0, "gt": [1, 2], "phased": False, "dp": 9, "gq": 50, "ad": [1, 4, 4, 0]},
            {"sample_index": 1, "gt": [0, 0], "phased": False, "dp": 9, "gq": 50, "ad": [9, 0, 0, 0]},
            {"sample_index": 2, "gt": [2, -1], "phased": True, "dp": None, "gq": None, "ad": None},
        ],
        "center_id": "C", "source_uri": "u", "source_checksum": "x", "ingest_run_id": "r",
        "ingested_at": None,
    }]
    df = spark.createDataFrame(rows, get_table("bronze.vcf_variants").spark_schema())
    split = split_alleles(df)
    got_sites = sorted(r.variant_id for r in sites(split).collect())
    assert got_sites == ["GRCh38:chr1:100:A:C", "GRCh38:chr1:100:A:G"]
    names = sample_names(_headers(spark, ["s1", "s2", "s3"]))
    calls = {(r.variant_id.rsplit(":", 1)[1], r.sample_id): (r.gt, r.ad, r.alt_count)
             for r in name_samples(split_genotypes(split), names).collect()}
    assert calls == {
        ("C", "s1"): ([1, 0], [1, 4], 1),
        ("G", "s1"): ([0, 1], [1, 4], 1),
        ("G", "s3"): ([1, -1], None, 1),
    }


@pytest.mark.skipif(shutil.which("bcftools") is None, reason="bcftools is installed by `make install`")
def test_split_matches_bcftools_norm(spark, tmp_path):
    vcf = make_vcf(tmp_path / "m.vcf.gz", ["A", "B", "C", "D"], 90, seed=3)
    out = subprocess.run(["bcftools", "norm", "-m-any", "-Ov", str(vcf)], check=True,
                         capture_output=True, text=True).stdout
    expected_sites, expected_calls = set(), set()
    for line in out.splitlines():
        if line.startswith("#"):
            continue
        f = line.split("\t")
        expected_sites.add(("chr" + f[0].removeprefix("chr"), int(f[1]), f[3], f[4]))
        for sample, call in zip(["A", "B", "C", "D"], f[9:], strict=True):
            gt = call.split(":")[0]
            if "1" in gt.replace("|", "/").split("/"):
                expected_calls.add((int(f[1]), f[4], sample, gt))
    split = split_alleles(_bronze_df(spark, vcf))
    got_sites = {(r.contig, r.pos, r.ref, r.alt) for r in sites(split).collect()}
    names = sample_names(_headers(spark, ["A", "B", "C", "D"]))
    got_calls = {(r.pos, r.variant_id.rsplit(":", 1)[1], r.sample_id, "/".join(map(str, r.gt)))
                 for r in name_samples(split_genotypes(split), names).collect()}
    assert got_sites == expected_sites
    assert got_calls == expected_calls
    assert len(got_sites) > 90  # the file has multiallelic records
