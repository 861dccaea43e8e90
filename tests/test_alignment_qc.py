"""BAM/CRAM alignment QC checked against samtools flagstat and samtools depth on the same files."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from jobs import ingest_bam
from omicslake.demo_bam import BAM_CONTIGS as CONTIGS
from omicslake.demo_bam import make_bam
from omicslake.errors import InputError

pytestmark = pytest.mark.skipif(shutil.which("samtools") is None,
                                reason="samtools is installed by `make install` (Debian package)")
@pytest.fixture(scope="module")
def bam(tmp_path_factory):
    return make_bam(tmp_path_factory.mktemp("bam"))


def sh(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def samtools_flagstat(path: Path, fasta: Path) -> dict:
    d = json.loads(sh("samtools", "flagstat", "--input-fmt-option", f"reference={fasta}", "-O", "json",
                      str(path)))
    p, f = d["QC-passed reads"], d["QC-failed reads"]
    both = {k: p[k] + f[k] for k in p if isinstance(p[k], int)}
    return {"total_reads": both["total"], "qc_failed": f["total"], "mapped": both["mapped"],
            "paired": both["paired in sequencing"], "properly_paired": both["properly paired"],
            "singletons": both["singletons"], "duplicates": both["duplicates"],
            "secondary": both["secondary"], "supplementary": both["supplementary"]}


def samtools_depth(path: Path, fasta: Path, bed: Path | None = None) -> np.ndarray:
    region = ["-b", str(bed)] if bed else []
    args = ["samtools", "depth", "-a", "--reference", str(fasta), *region, str(path)]
    return np.array([int(line.split("\t")[2]) for line in sh(*args).splitlines()])


def _manifest(folder: Path, *samples: str) -> Path:
    m = folder / "bam_manifest.csv"
    m.write_text("sample_id,patient_id\n" + "".join(f"{s},MRN-{s}\n" for s in samples))
    return m


def test_flagstat_and_depth_match_samtools(fresh_lake, bam, tmp_path):
    spark, s = fresh_lake
    path, fasta = bam
    r = ingest_bam.run(spark, s, [str(path)], "PRV-N", str(_manifest(tmp_path, "NA001")))
    assert r.rows_accepted == 1
    row = spark.sql("SELECT * FROM silver.alignment_qc").collect()[0].asDict()
    want = samtools_flagstat(path, fasta)
    assert {k: row[k] for k in want} == want
    assert want["duplicates"] > 0 and want["secondary"] > 0 and want["supplementary"] > 0
    depth = samtools_depth(path, fasta)
    assert row["bases_assessed"] == len(depth) == sum(CONTIGS.values())
    assert row["mean_depth"] == pytest.approx(depth.mean())
    assert row["median_depth"] == float(np.median(depth))
    assert row["alignment_uri"] == str(path) and row["format"] == "BAM" and row["person_id"]
    again = ingest_bam.run(spark, s, [str(path)], "PRV-N", str(_manifest(tmp_path, "NA001")))
    assert again.status == "skipped"
    assert spark.sql("SELECT count(*) n FROM silver.alignment_qc").collect()[0].n == 1


def test_targets_and_cram(fresh_lake, bam, tmp_path):
    spark, s = fresh_lake
    path, fasta = bam
    bed = tmp_path / "targets.bed"
    bed.write_text("chr1\t1000\t6000\nchr1\t5500\t9000\nchr2\t100\t2500\n")
    cram = tmp_path / "NA001.cram"
    sh("samtools", "view", "-C", "-T", str(fasta), "-o", str(cram), str(path))
    sh("samtools", "index", str(cram))
    with pytest.raises(InputError, match="CRAM needs the reference"):
        ingest_bam.run(spark, s, [str(cram)], "PRV-N", str(_manifest(tmp_path, "NA001")))
    ingest_bam.run(spark, s, [str(cram)], "PRV-N", str(_manifest(tmp_path, "NA001")), str(bed), str(fasta))
    row = spark.sql("SELECT * FROM silver.alignment_qc WHERE format = 'CRAM'").collect()[0].asDict()
    assert {k: row[k] for k in samtools_flagstat(cram, fasta)} == samtools_flagstat(path, fasta)
    depth = samtools_depth(cram, fasta, bed)
    assert row["bases_assessed"] == len(depth) == 5000 + 3000 + 2400
    assert row["mean_depth"] == pytest.approx(depth.mean())
    assert row["fraction_target_20x"] == pytest.approx((depth >= 20).mean())
    assert row["reference_uri"] == str(fasta) and row["depth_scope"] == "targets"


def test_bad_alignment_inputs(fresh_lake, bam, tmp_path):
    spark, s = fresh_lake
    path, fasta = bam
    other, _ = make_bam(tmp_path, sample="NOT-LISTED", n_pairs=50, seed=3)
    noindex = tmp_path / "noindex.bam"
    shutil.copy(path, noindex)
    with pytest.raises(InputError) as err:
        ingest_bam.run(spark, s, [str(other), str(noindex), str(path)], "PRV-N",
                       str(_manifest(tmp_path, "NA001")))
    msg = str(err.value)
    assert "NOT-LISTED" in msg and "samtools index" in msg
    landed = spark.sql("SELECT alignment_uri FROM silver.alignment_qc").collect()
    assert [r.alignment_uri for r in landed] == [str(path)]
