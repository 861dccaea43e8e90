"""``omicslake demo``: generated data for a small four-tier network, run through the DAG."""

from __future__ import annotations

import time
from typing import Any

from omicslake.demo_data import make_demo_inputs
from omicslake.settings import Settings


def run_demo(settings: Settings, echo=print, samples: int = 8, sites: int = 300) -> dict[str, Any]:
    t0 = time.perf_counter()
    echo(f"[1/3] generating sample data in {settings.state_dir / 'demo-data'}")
    batches = make_demo_inputs(settings.state_dir / "demo-data", samples, sites)
    echo(f"[2/3] running DAG omicslake_genomics with dag.test() ({len(batches)} center batches)")
    from omicslake.airflow_support import test_dag

    test_dag("omicslake_genomics", {"batches": [
        {"center_id": b.center_id, "vcf": str(b.vcf), "manifest": str(b.manifest)} for b in batches
    ]}, settings)
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
