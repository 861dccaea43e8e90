"""One person's pharmacogenomics, read back for `omicslake pgx show` and the API."""

from __future__ import annotations

from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from omicslake.catalog import read_table
from omicslake.errors import InputError
from omicslake.settings import Settings


def resolve_person(
    spark: SparkSession, settings: Settings, person_id: str | None, sample_id: str | None
) -> str:
    if person_id:
        return person_id
    rows = (
        read_table(spark, settings, "silver.samples")
        .where(F.col("sample_id") == sample_id)
        .select("person_id")
        .distinct()
        .collect()
    )
    if not rows:
        raise InputError(f"no sample {sample_id!r} in silver.samples")
    if len(rows) > 1:
        raise InputError(
            f"sample id {sample_id!r} names {len(rows)} persons (at different centers): give the person id"
        )
    return rows[0].person_id


def person_pgx(
    spark: SparkSession, settings: Settings, person_id: str | None = None, sample_id: str | None = None
) -> dict[str, Any]:
    pid = resolve_person(spark, settings, person_id, sample_id)

    def rows(table: str, order: list[str]) -> list[dict]:
        return [
            r.asDict()
            for r in read_table(spark, settings, table)
            .where(F.col("person_id") == pid)
            .orderBy(*order)
            .collect()
        ]

    genes = rows("silver.pgx_diplotypes", ["gene"])
    if not genes:
        raise InputError(
            f"no pharmacogene calls for person {pid}: is the person genotyped, and has "
            "`omicslake pgx call` run since?"
        )
    samples = sorted({s for g in genes for s in g["sample_ids"] or ()})
    keep = (
        "gene",
        "diplotype",
        "phenotype",
        "activity_score",
        "status",
        "phased",
        "positions_called",
        "positions_total",
        "missing_positions",
        "alternatives",
        "reason",
    )
    return {
        "person_id": pid,
        "samples": samples,
        "genes": [{k: g[k] for k in keep} for g in genes],
        "recommendations": rows("gold.pgx_recommendations", ["actionable", "drug"])[::-1],
        "alerts": rows("gold.medication_alerts", ["prescribed_at"]),
    }
