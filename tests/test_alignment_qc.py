"""BAM/CRAM alignment QC checked against samtools flagstat and samtools depth on the same files."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pysam
import pytest

from jobs import ingest_bam
from omicslake.errors import InputError

pytestmark = pytest.mark.skipif(shutil.which("samtools") is None,
                                reason="samtools is installed by `make install` (Debian package)")
CONTIGS = {"chr1": 30000, "chr2": 20000}


def sh(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def make_bam(folder: Path, sample: str = "NA001", n_pairs: int = 1500, seed: int = 1) -> tuple[Path, Path]:
    """A coordinate-sorted, indexed BAM with every flag flagstat counts, and its reference."""
    rng = random.Random(seed)
    fasta = folder / "ref.fa"
    if not fasta.exists():
        with open(fasta, "w") as fh:
            for name, n in CONTIGS.items():
                seq = "".join(rng.choice("ACGT") for _ in range(n))
                fh.write(f">{name}\n" + "\n".join(seq[i:i + 60] for i in range(0, n, 60)) + "\n")
        pysam.faidx(str(fasta))
    header = {"HD": {"VN": "1.6", "SO": "coordinate"},
              "SQ": [{"SN": k, "LN": v} for k, v in CONTIGS.items()],
              "RG": [{"ID": "rg1", "SM": sample, "PL": "ILLUMINA"}]}
    ref = pysam.FastaFile(str(fasta))
    unsorted = folder / f"{sample}.unsorted.bam"
    with pysam.AlignmentFile(str(unsorted), "wb", header=header) as out:
        for i in range(n_pairs):
            tid = rng.randrange(2)
            contig = list(CONTIGS)[tid]
            p1 = rng.randrange(0, CONTIGS[contig] - 600)
            p2 = p1 + rng.randrange(100, 400)
            kind = rng.random()
            for mate, pos, mpos in ((1, p1, p2), (2, p2, p1)):
                a = pysam.AlignedSegment(out.header)
                a.query_name = f"r{i}"
                cigar = [(0, 100)] if rng.random() > 0.1 else [(0, 40), (2, 5), (0, 60)]
                span = sum(n for op, n in cigar if op in (0, 2))
                a.query_sequence = ref.fetch(contig, pos, pos + 100).upper()
                a.query_qualities = pysam.qualitystring_to_array("I" * 100)
                a.reference_id, a.reference_start, a.cigar = tid, pos, cigar
                a.next_reference_id, a.next_reference_start = tid, mpos
                a.mapping_quality = 60
                flag = 0x1 | 0x2 | (0x40 if mate == 1 else 0x80) | (0x20 if mate == 1 else 0x10)
                if kind < 0.05:
                    flag |= 0x400
                elif kind < 0.08 and mate == 2:
                    flag = (flag | 0x4) & ~0x2
                    a.cigar, a.mapping_quality = None, 0
                elif kind < 0.10 and mate == 1:
                    flag = (flag | 0x8) & ~0x2
                elif kind < 0.12:
                    flag |= 0x200
                a.flag = flag
                a.set_tag("RG", "rg1")
                assert span
                out.write(a)
                if kind > 0.97 and mate == 1:
                    b = pysam.AlignedSegment(out.header)
                    b.query_name, b.flag = f"r{i}", flag | (0x100 if kind > 0.985 else 0x800)
                    b.reference_id, b.reference_start, b.cigar = tid, pos + 7, [(0, 50)]
                    b.query_sequence = ref.fetch(contig, pos + 7, pos + 57).upper()
                    b.mapping_quality = 3
                    out.write(b)
        for j in range(25):  # unplaced, unmapped pairs
            for mate in (1, 2):
                a = pysam.AlignedSegment(out.header)
                a.query_name, a.flag = f"u{j}", 0x1 | 0x4 | 0x8 | (0x40 if mate == 1 else 0x80)
                a.reference_id = a.next_reference_id = -1
                a.reference_start = a.next_reference_start = -1
                a.query_sequence = "A" * 50
                out.write(a)
    bam = folder / f"{sample}.bam"
    pysam.sort("-o", str(bam), str(unsorted))
    pysam.index(str(bam))
    unsorted.unlink()
    return bam, fasta


@pytest.fixture(scope="module")
def bam(tmp_path_factory):
    return make_bam(tmp_path_factory.mktemp("bam"))


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
