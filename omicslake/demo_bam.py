"""Small real BAMs for the demo and the tests: paired reads with every flag flagstat counts."""

from __future__ import annotations

import random
from pathlib import Path

import pysam

BAM_CONTIGS = {"chr1": 30000, "chr2": 20000}


def make_bam(folder: Path, sample: str = "NA001", n_pairs: int = 1500, seed: int = 1) -> tuple[Path, Path]:
    """A coordinate-sorted, indexed BAM with every flag flagstat counts, and its reference."""
    rng = random.Random(seed)
    fasta = folder / "ref.fa"
    if not fasta.exists():
        with open(fasta, "w") as fh:
            for name, n in BAM_CONTIGS.items():
                seq = "".join(rng.choice("ACGT") for _ in range(n))
                fh.write(f">{name}\n" + "\n".join(seq[i:i + 60] for i in range(0, n, 60)) + "\n")
        pysam.faidx(str(fasta))
    header = {"HD": {"VN": "1.6", "SO": "coordinate"},
              "SQ": [{"SN": k, "LN": v} for k, v in BAM_CONTIGS.items()],
              "RG": [{"ID": "rg1", "SM": sample, "PL": "ILLUMINA"}]}
    ref = pysam.FastaFile(str(fasta))
    unsorted = folder / f"{sample}.unsorted.bam"
    with pysam.AlignmentFile(str(unsorted), "wb", header=header) as out:
        for i in range(n_pairs):
            tid = rng.randrange(2)
            contig = list(BAM_CONTIGS)[tid]
            p1 = rng.randrange(0, BAM_CONTIGS[contig] - 600)
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
