"""The evidence a cohort rule looks for, as DataFrames of events: ``person_id, center_id,
event_date``, one row per dated fact (a genomic call has no date: ``event_date`` is NULL and
counts at any time).

Each kind of rule reads one silver table with the Column API, so a rule is a filter, never a
loop over persons. ``person_id`` is the master person everywhere: clinical and imaging rows
carry it after linkage, genotypes reach it through silver.samples.
"""

from __future__ import annotations

from functools import reduce
from operator import or_

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from omicslake.catalog import read_table
from omicslake.cohort_definitions import Criterion, Diagnosis, Genomic, Imaging, Lab, Medication
from omicslake.settings import Settings

EVENT = ("person_id", "center_id", "event_date")
DATED = {  # silver tables that say a person was seen, and when (for the observation period)
    "silver.conditions": ("onset_time", "event_time"),
    "silver.observations": ("effective_time", "event_time"),
    "silver.medications": ("start_time", "event_time"),
    "silver.encounters": ("start_time", "event_time"),
    "silver.procedures": ("performed_time", "event_time"),
    "silver.imaging_studies": ("study_date",),
}
DEMOGRAPHIC_INPUTS = ("silver.patient_identities", "silver.person_links")
IMAGING_INPUTS = ("silver.imaging_series", "silver.imaging_studies", "silver.imaging_instances")
GENOMIC_INPUTS = ("silver.genotypes", "silver.samples", "silver.variant_annotations")


def when(table: str) -> Column:
    """When a row of a dated table happened: its clinical time, else the source event time."""
    return F.coalesce(*DATED[table])


def day(table: str) -> Column:
    """The date of ``when``, always computed: Sail refuses a union whose branches pass a stored
    DATE column through with its field metadata next to computed ones."""
    return F.date_add(when(table), 0)


def _any(conditions: list[Column]) -> Column:
    return reduce(or_, conditions)


def diagnosis_events(spark: SparkSession, settings: Settings, spec: Diagnosis) -> DataFrame:
    code = F.upper(F.regexp_replace("icd10_code", r"\.", ""))
    prefixes = [p.replace(".", "") for p in spec.icd10]
    return (
        read_table(spark, settings, "silver.conditions")
        .where(F.col("icd10_code").isNotNull() & _any([code.startswith(p) for p in prefixes]))
        .select("person_id", "center_id", day("silver.conditions").alias("event_date"))
    )


def lab_events(spark: SparkSession, settings: Settings, spec: Lab) -> DataFrame:
    df = read_table(spark, settings, "silver.observations").where(
        (F.col("loinc_code") == spec.loinc) & (F.col("unit") == spec.unit) & F.col("value_num").isNotNull()
    )
    if spec.min is not None:
        df = df.where(F.col("value_num") >= spec.min)
    if spec.max is not None:
        df = df.where(F.col("value_num") <= spec.max)
    return df.select("person_id", "center_id", day("silver.observations").alias("event_date"))


def medication_events(spark: SparkSession, settings: Settings, spec: Medication) -> DataFrame:
    system, code = F.col("code_system"), F.upper(F.col("code"))
    matches = [(system == "ATC") & code.startswith(p) for p in spec.atc or ()]
    if spec.rxnorm:
        matches.append((system == "RxNorm") & F.col("code").isin(spec.rxnorm))
    return (
        read_table(spark, settings, "silver.medications")
        .where(_any(matches))
        .select("person_id", "center_id", day("silver.medications").alias("event_date"))
    )


def imaging_events(spark: SparkSession, settings: Settings, spec: Imaging) -> DataFrame:
    """Studies with a matching series, on their real date: de-identification moves a
    person's study dates back by ``date_shift_days``, while clinical dates stay as sent."""
    series = read_table(spark, settings, "silver.imaging_series").where(F.col("modality").isin(spec.modality))
    if spec.body_part:
        series = series.where(F.upper("body_part").isin(spec.body_part))
    shifts = (
        read_table(spark, settings, "silver.imaging_instances")
        .groupBy("study_instance_uid")
        .agg(F.max("date_shift_days").alias("_shift"))
    )
    studies = read_table(spark, settings, "silver.imaging_studies").join(shifts, "study_instance_uid", "left")
    studies = studies.select(
        "study_instance_uid", F.date_add("study_date", F.coalesce("_shift", F.lit(0))).alias("event_date")
    )
    return (
        series.select("study_instance_uid", "person_id", "center_id")
        .distinct()
        .join(studies, "study_instance_uid")
        .select(*EVENT)
    )


def qualifying_variants(spark: SparkSession, settings: Settings, spec: Genomic) -> DataFrame:
    """``variant_id, gene`` of the annotated sites that meet the rule (gene NULL when the rule
    names no gene)."""
    ann = read_table(spark, settings, "silver.variant_annotations").where(F.col("build") == spec.build)
    if spec.variant_id:
        ann = ann.where(F.col("variant_id") == spec.variant_id)
    if spec.max_af is not None:
        ann = ann.where(F.coalesce("gnomad_af", F.lit(0.0)) <= spec.max_af)
    if spec.clinvar:
        terms = F.explode(F.split(F.coalesce("clinvar_significance", F.lit("")), r"[|,]_?"))
        ann = (
            ann.select("variant_id", "genes", terms.alias("term"))
            .where(F.col("term").isin(list(spec.clinvar)))
            .drop("term")
        )
    if not spec.genes:
        return ann.select("variant_id", F.lit(None).cast("string").alias("gene")).distinct()
    genes = ann.select("variant_id", F.explode("genes").alias("g"))
    return (
        genes.where(F.col("g.gene_name").isin(spec.genes))
        .select("variant_id", F.col("g.gene_name").alias("gene"))
        .distinct()
    )


def carriers(spark: SparkSession, settings: Settings, spec: Genomic) -> DataFrame:
    """``person_id, center_id, gene`` of every person with a non-reference call at a
    qualifying site."""
    variants = qualifying_variants(spark, settings, spec)
    calls = (
        read_table(spark, settings, "silver.genotypes")
        .where(F.col("alt_count") > 0)
        .select("variant_id", "center_id", "sample_id")
        .join(variants, "variant_id")
    )
    samples = read_table(spark, settings, "silver.samples").select("center_id", "sample_id", "person_id")
    return calls.join(samples, ["center_id", "sample_id"]).select("person_id", "center_id", "gene").distinct()


def genomic_events(spark: SparkSession, settings: Settings, spec: Genomic) -> DataFrame:
    return (
        carriers(spark, settings, spec)
        .select("person_id", "center_id")
        .distinct()
        .withColumn("event_date", F.lit(None).cast("date"))
    )


def events(spark: SparkSession, settings: Settings, rule: Criterion) -> DataFrame:
    """The events of one rule (not for demographics: those are person attributes)."""
    build = {
        "diagnosis": diagnosis_events,
        "lab": lab_events,
        "medication": medication_events,
        "imaging": imaging_events,
        "genomic": genomic_events,
    }[rule.kind]
    return build(spark, settings, rule.spec)


def demographics(spark: SparkSession, settings: Settings) -> DataFrame:
    """``person_id, sex, birth_year``: the value most of a person's source identities give."""
    ids = read_table(spark, settings, "silver.patient_identities").select("identity_id", "sex", "birth_year")
    links = read_table(spark, settings, "silver.person_links").select("identity_id", "person_id")
    known = ids.join(links, "identity_id")

    def most_frequent(column: str) -> DataFrame:
        usable = F.col(column).isNotNull() & ((F.col(column) != "U") if column == "sex" else F.lit(True))
        counted = known.where(usable).groupBy("person_id", column).count()
        rank = Window.partitionBy("person_id").orderBy(F.desc("count"), F.asc(column))
        return (
            counted.withColumn("_r", F.row_number().over(rank))
            .where(F.col("_r") == 1)
            .select("person_id", column)
        )

    return most_frequent("sex").join(most_frequent("birth_year"), "person_id", "full")


def observation_periods(spark: SparkSession, settings: Settings) -> DataFrame:
    """``person_id, obs_start, obs_end``: from the first to the last dated record of the person
    in any clinical or imaging table (the lake has no enrolment data)."""
    dated = [read_table(spark, settings, t).select("person_id", day(t).alias("d")) for t in DATED]
    return (
        reduce(DataFrame.unionByName, dated)
        .where(F.col("d").isNotNull())
        .groupBy("person_id")
        .agg(F.min("d").alias("obs_start"), F.max("d").alias("obs_end"))
    )
