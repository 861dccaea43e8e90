"""Reading published cohorts back: a publication, its members as of that version, and the small
aggregates its report draws. Reads go through Delta time travel, so version N gives the rows
that were cited as version N."""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from omicslake.catalog import read_table, table_uri
from omicslake.cohort_definitions import CohortDefinitionError, LoadedDefinition
from omicslake.cohort_report import AttritionStep, ReportData
from omicslake.settings import Settings
from schemas import get_table

BANDS = (
    (0, 18, "<18"),
    (18, 30, "18-29"),
    (30, 40, "30-39"),
    (40, 50, "40-49"),
    (50, 60, "50-59"),
    (60, 70, "60-69"),
    (70, 80, "70-79"),
    (80, 90, "80-89"),
    (90, 200, "90+"),
)


@dataclass(frozen=True)
class Publication:
    cohort_definition_id: int
    name: str
    version: int
    checksum: str
    members: int
    features_version: int | None
    published_at: str
    run_id: str


def publications(spark: SparkSession, settings: Settings, cohort_id: int) -> list[Publication]:
    rows = (
        read_table(spark, settings, "gold.cohort_versions")
        .where(F.col("cohort_definition_id") == cohort_id)
        .orderBy("version", "published_at")
        .collect()
    )
    return [
        Publication(
            r.cohort_definition_id,
            r.name,
            r.version,
            r.checksum,
            r.members,
            r.features_version,
            r.published_at.isoformat(timespec="seconds"),
            r.run_id,
        )
        for r in rows
    ]


def publication(
    spark: SparkSession, settings: Settings, loaded: LoadedDefinition, version: int | None = None
) -> Publication:
    """The latest publication at ``version`` (the latest overall when None)."""
    found = publications(spark, settings, loaded.definition.id)
    if not found:
        raise CohortDefinitionError(
            f"cohort {loaded.name} has not been published: run `omicslake cohort build {loaded.name}`"
        )
    if version is None:
        return found[-1]
    at = [p for p in found if p.version == version]
    if not at:
        known = ", ".join(str(v) for v in sorted({p.version for p in found}))
        raise CohortDefinitionError(f"cohort {loaded.name} has no version {version} (published: {known})")
    return at[-1]


def as_of(spark: SparkSession, settings: Settings, table: str, version: int,
          cohort_id: int | None = None) -> DataFrame:
    """``table`` as of a Delta version (one cohort's rows when ``cohort_id`` is given).

    delta-rs reads it wherever the driver reaches the storage: Sail 0.7 cannot time-travel to a
    version between two of its own checkpoints (it writes one every 10 commits), and a cited
    cohort version must read back. Elsewhere the engine's ``versionAsOf`` does it."""
    if not settings.delta_rs_reaches_lake:
        df = spark.read.format("delta").option("versionAsOf", version).load(table_uri(settings, table))
        return df if cohort_id is None else df.where(F.col("cohort_definition_id") == cohort_id)
    import pyarrow.compute as pc
    from deltalake import DeltaTable

    contract = get_table(table)
    dataset = DeltaTable(table_uri(settings, table), version=version,
                         storage_options=settings.storage_options() or None).to_pyarrow_dataset()
    wanted = None if cohort_id is None else pc.field("cohort_definition_id") == cohort_id
    rows = dataset.to_table(filter=wanted)
    if rows.num_rows == 0:  # Spark Connect refuses an empty Arrow table
        return spark.createDataFrame([], contract.spark_schema())
    return spark.createDataFrame(rows.select(contract.column_names), contract.spark_schema())


def members(spark: SparkSession, settings: Settings, pub: Publication) -> DataFrame:
    return as_of(spark, settings, "gold.cohort", pub.version, pub.cohort_definition_id).orderBy(
        "cohort_start_date", "subject_id")


def _band() -> F.Column:
    age = F.col("age_at_index")
    out = F.when(age.isNull(), F.lit("unknown"))
    for lo, hi, label in BANDS:
        out = out.when((age >= lo) & (age < hi), F.lit(label))
    return out.otherwise(F.lit("unknown"))


def report_data(
    spark: SparkSession, settings: Settings, loaded: LoadedDefinition, pub: Publication
) -> ReportData:
    """The aggregates of one publication (a few dozen rows reach the driver, never members)."""
    d = loaded.definition
    stats = (
        read_table(spark, settings, "gold.cohort_inclusion_stats")
        .where(
            (F.col("cohort_definition_id") == d.id)
            & (F.col("version") == pub.version)
            & (F.col("scope") == "all")
        )
        .orderBy("rule_sequence")
        .collect()
    )
    attrition = [AttritionStep(r.rule_sequence, r.rule_name, r.rule_kind, r.persons, r.events) for r in stats]
    feats = as_of(spark, settings, f"gold.cohort_{d.name}_features", pub.features_version)
    pyramid = feats.groupBy(_band().alias("band"), F.coalesce("sex", F.lit("U")).alias("sex")).count()
    centers = feats.groupBy("center_id", "tier").count().orderBy("center_id")
    carriers = [
        (
            g,
            feats.where(F.col("genotyped") & F.col("carrier")[g]).count(),
            feats.where(F.col("genotyped")).count(),
        )
        for g in d.genes
    ]
    return ReportData(
        name=d.name,
        description=f"{d.title}. {d.description}",
        cohort_definition_id=d.id,
        version=pub.version,
        checksum=pub.checksum,
        built_at=pub.published_at,
        members=pub.members,
        attrition=attrition,
        pyramid=[(r.band, r.sex if r.sex in ("M", "F") else "U", r["count"]) for r in pyramid.collect()],
        centers=[(r.center_id, r.tier, r["count"]) for r in centers.collect()],
        carriers=carriers,
    )
