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
    r = ingest_bam.run(spark, s, [str(cram)], "PRV-N", str(_manifest(tmp_path, "NA001")))
    assert (r.rows_read, r.rows_accepted, r.rows_quarantined) == (1, 0, 1)
    assert "CRAM needs the reference" in spark.table("quarantine.bam").collect()[0].reason
    ingest_bam.run(spark, s, [str(cram)], "PRV-N", str(_manifest(tmp_path, "NA001")), str(bed), str(fasta))
    row = spark.sql("SELECT * FROM silver.alignment_qc WHERE format = 'CRAM'").collect()[0].asDict()
    assert {k: row[k] for k in samtools_flagstat(cram, fasta)} == samtools_flagstat(path, fasta)
    depth = samtools_depth(cram, fasta, bed)
    assert row["bases_assessed"] == len(depth) == 5000 + 3000 + 2400
    assert row["mean_depth"] == pytest.approx(depth.mean())
    assert row["fraction_target_20x"] == pytest.approx((depth >= 20).mean())
    assert row["reference_uri"] == str(fasta) and row["depth_scope"] == "targets"


def _corrupt(src: Path, target: Path) -> Path:
    """A copy of ``src`` with its header intact, its index beside it and every later block damaged."""
    data = bytearray(src.read_bytes())
    for i in range(2000, len(data) - 28, 997):  # keep the header block and the BGZF EOF marker
        data[i] ^= 0xFF
    target.write_bytes(bytes(data))
    shutil.copy(f"{src}.bai", f"{target}.bai")
    return target


def test_bad_alignment_inputs_are_quarantined_and_the_good_one_lands(fresh_lake, bam, tmp_path):
    spark, s = fresh_lake
    path, fasta = bam
    other, _ = make_bam(tmp_path, sample="NOT-LISTED", n_pairs=50, seed=3)
    noindex = tmp_path / "noindex.bam"
    shutil.copy(path, noindex)
    corrupt = _corrupt(path, tmp_path / "corrupt.bam")
    junk = tmp_path / "junk.bam"
    junk.write_bytes(b"not a BAM file\n" * 100)
    shutil.copy(f"{path}.bai", f"{junk}.bai")
    batch = [str(other), str(noindex), str(corrupt), str(junk), str(path)]
    manifest = str(_manifest(tmp_path, "NA001"))
    r = ingest_bam.run(spark, s, batch, "PRV-N", manifest)
    assert r.status == "succeeded"
    assert (r.rows_read, r.rows_accepted, r.rows_quarantined) == (5, 1, 4)
    assert r.rows_read == r.rows_accepted + r.rows_quarantined
    landed = spark.sql("SELECT alignment_uri FROM silver.alignment_qc").collect()
    assert [x.alignment_uri for x in landed] == [str(path)]
    q = {x.source_uri: x for x in spark.table("quarantine.bam").collect()}
    assert set(q) == {str(other), str(noindex), str(corrupt), str(junk)}
    assert "NOT-LISTED" in q[str(other)].reason and "samtools index" in q[str(noindex)].reason
    assert "corrupt BAM: cannot read chr" in q[str(corrupt)].reason
    assert "not a readable BAM" in q[str(junk)].reason
    assert all(x.location == "file" and len(x.source_checksum) == 64 for x in q.values())
    assert len(r.details["rejected"]) == 4

    again = ingest_bam.run(spark, s, batch, "PRV-N", manifest)
    assert set(again.skipped_inputs) == {str(path), str(noindex)}  # noindex.bam has the same bytes
    assert again.rows_quarantined == 3
    assert spark.table("silver.alignment_qc").count() == 1 and spark.table("quarantine.bam").count() == 4
