"""``omicslake demo``: generated data for a small four-tier network, run through the DAG."""

from __future__ import annotations

import time
from typing import Any

from omicslake.demo_data import make_demo_inputs
from omicslake.settings import Settings


def demo_alignments(root, batch) -> list[dict]:
    """One BAM (and a target BED) for the first sample of the first sending center."""
    from omicslake.demo_bam import make_bam

    folder = root / "alignments"
    folder.mkdir(parents=True, exist_ok=True)
    sample = f"{batch.center_id}-S000"
    bam = folder / f"{sample}.bam"
    if not bam.exists():
        make_bam(folder, sample=sample, n_pairs=1500, seed=7)
    bed = folder / "targets.bed"
    if not bed.exists():
        bed.write_text("chr1\t1000\t9000\nchr2\t500\t4500\n")
    return [{"center_id": batch.center_id, "paths": [str(bam)], "manifest": str(batch.manifest),
             "targets": str(bed)}]


def run_demo(settings: Settings, echo=print, samples: int = 8, sites: int = 300) -> dict[str, Any]:
    t0 = time.perf_counter()
    echo(f"[1/3] generating sample data in {settings.state_dir / 'demo-data'}")
    root = settings.state_dir / "demo-data"
    batches = make_demo_inputs(root, samples, sites)
    alignments = demo_alignments(root, batches[0])
    echo(f"[2/3] running DAG omicslake_genomics with dag.test() ({len(batches)} VCF batches, "
         f"{len(alignments)} BAM batch)")
    from omicslake.airflow_support import test_dag

    test_dag("omicslake_genomics", {
        "batches": [{"center_id": b.center_id, "vcf": str(b.vcf), "manifest": str(b.manifest)}
                    for b in batches],
        "alignments": alignments,
    }, settings)
    echo("[3/3] summarising tables")
    from omicslake.delta_ops import DeltaRsAdapter
    from omicslake.session import get_spark
    from schemas import ALL_TABLES

    if settings.engine == "local":
        infos = [DeltaRsAdapter(settings).info(t.full_name) for t in ALL_TABLES]
        counts = {i.name: i.rows for i in infos}
    else:
        spark = get_spark(settings)
        counts = {t.full_name: spark.table(t.full_name).count() for t in ALL_TABLES}
    return {"tables": counts, "seconds": round(time.perf_counter() - t0, 1)}
