"""One row per cohort member with what an analysis starts from: demographics, diagnoses,
latest labs, carrier status for the definition's genes, imaging and medications.

Every part is an aggregate per person joined onto the members, so the work stays on the
engine whatever the cohort size.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from omicslake import cohort_events as ev
from omicslake.catalog import read_table
from omicslake.cohort_definitions import CohortDefinition
from omicslake.settings import Settings


def diagnoses(spark: SparkSession, settings: Settings) -> DataFrame:
    conditions = read_table(spark, settings, "silver.conditions").where(F.col("icd10_code").isNotNull())
    return conditions.groupBy("person_id").agg(
        F.sort_array(F.collect_set(F.upper(F.substring("icd10_code", 1, 3)))).alias("diagnoses")
    )


def latest_labs(spark: SparkSession, settings: Settings, codes: list[str]) -> DataFrame:
    obs = (
        read_table(spark, settings, "silver.observations")
        .where(F.col("loinc_code").isin(codes) & F.col("value_num").isNotNull())
        .select(
            "person_id",
            "loinc_code",
            F.col("value_num").alias("value"),
            "unit",
            ev.when("silver.observations").alias("effective_time"),
        )
    )
    newest = Window.partitionBy("person_id", "loinc_code").orderBy(F.desc("effective_time"), F.desc("value"))
    latest = obs.withColumn("_r", F.row_number().over(newest)).where(F.col("_r") == 1)
    return latest.groupBy("person_id").agg(
        F.sort_array(F.collect_list(F.struct("loinc_code", "value", "unit", "effective_time"))).alias(
            "latest_labs"
        )
    )


def carrier_map(
    spark: SparkSession, settings: Settings, definition: CohortDefinition, cohort: DataFrame
) -> DataFrame:
    """``person_id, carrier``: per gene of the definition, whether the member meets a genomic
    rule naming it."""
    found = [
        ev.carriers(spark, settings, r.genomic).where(F.col("gene").isNotNull()).select("person_id", "gene")
        for _, r in definition.rules
        if r.genomic and r.genomic.genes
    ]
    people = cohort.select(F.col("subject_id").alias("person_id"))
    if not found:
        return people.withColumn("carrier", F.create_map().cast("map<string,boolean>"))
    hits = found[0]
    for more in found[1:]:
        hits = hits.unionByName(more)
    hits = hits.distinct().withColumn("hit", F.lit(True))
    for gene in definition.genes:
        people = people.join(
            hits.where(F.col("gene") == gene).select("person_id", F.col("hit").alias(f"_{gene}")),
            "person_id",
            "left",
        )
    pairs = [x for g in definition.genes for x in (F.lit(g), F.coalesce(F.col(f"_{g}"), F.lit(False)))]
    return people.select("person_id", F.create_map(*pairs).alias("carrier"))


def counts(spark: SparkSession, settings: Settings) -> tuple[DataFrame, DataFrame, DataFrame]:
    """Imaging studies, medication codes and genotyped persons, each per person."""
    studies = (
        read_table(spark, settings, "silver.imaging_studies")
        .groupBy("person_id")
        .agg(F.countDistinct("study_instance_uid").alias("imaging_studies"))
    )
    meds = (
        read_table(spark, settings, "silver.medications")
        .where(F.col("code_system").isin("ATC", "RxNorm") & F.col("code").isNotNull())
        .groupBy("person_id")
        .agg(F.sort_array(F.collect_set("code")).alias("medications"))
    )
    sampled = (
        read_table(spark, settings, "silver.samples")
        .select("person_id")
        .distinct()
        .withColumn("genotyped", F.lit(True))
    )
    return studies, meds, sampled


def features(
    spark: SparkSession, settings: Settings, definition: CohortDefinition, cohort: DataFrame, tiers: DataFrame
) -> DataFrame:
    """The features rows of ``cohort`` (its gold.cohort rows)."""
    studies, meds, sampled = counts(spark, settings)
    out = (
        cohort.withColumnRenamed("subject_id", "person_id")
        .join(tiers, "center_id", "left")
        .join(ev.demographics(spark, settings), "person_id", "left")
        .join(diagnoses(spark, settings), "person_id", "left")
        .join(latest_labs(spark, settings, definition.lab_codes), "person_id", "left")
        .join(carrier_map(spark, settings, definition, cohort), "person_id", "left")
        .join(studies, "person_id", "left")
        .join(meds, "person_id", "left")
        .join(sampled, "person_id", "left")
    )
    return out.select(
        "cohort_definition_id",
        F.col("person_id").alias("subject_id"),
        "center_id",
        F.coalesce("tier", F.lit("unknown")).alias("tier"),
        "cohort_start_date",
        "cohort_end_date",
        "sex",
        "birth_year",
        (F.year("cohort_start_date") - F.col("birth_year")).alias("age_at_index"),
        F.coalesce("diagnoses", F.array().cast("array<string>")).alias("diagnoses"),
        "latest_labs",
        F.coalesce("genotyped", F.lit(False)).alias("genotyped"),
        "carrier",
        F.coalesce("imaging_studies", F.lit(0)).alias("imaging_studies"),
        F.coalesce("medications", F.array().cast("array<string>")).alias("medications"),
    )
