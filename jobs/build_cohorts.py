"""Publish specialty-disease cohorts from the YAML definitions in ``cohorts/``.

For each definition: index events from the center subtree, the observation window, then each
inclusion and exclusion rule as a join on the engine (no loop over persons). The members go to
``gold.cohort`` in one MERGE, which is the cohort's version; the attrition per rule (overall,
per center, per tier) to ``gold.cohort_inclusion_stats``; one row per member to
``gold.cohort_<name>_features``; and the publication (version, definition checksum, input
table versions) to ``gold.cohort_versions``. A cohort whose definition and inputs are unchanged
since its last publication is skipped, so a re-run publishes nothing new; a rebuild that finds
the same members commits nothing to gold.cohort and keeps its version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import reduce

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from omicslake import cohort_events as ev
from omicslake import staging
from omicslake.catalog import ensure_tables, path_ref, read_table, table_uri
from omicslake.cohort_definitions import (
    CohortDefinition,
    CohortDefinitionError,
    Criterion,
    LoadedDefinition,
    Window,
    find,
    load_all,
)
from omicslake.delta_ops import adapter
from omicslake.runs import JobResult, main_for, track_run
from omicslake.settings import Settings
from omicslake.tiers import RegistryError, registry
from omicslake.writes import append, retry_on_conflict, sync_rows, upsert_rows
from schemas import cohort_features

JOB = "build_cohorts"
CANDIDATE = ("person_id", "center_id", "index_date")


@dataclass(frozen=True)
class Step:
    """What is left after one rule: index events ``person_id, center_id, index_date``."""

    sequence: int
    name: str
    kind: str
    events: DataFrame


def scope(settings: Settings, definition: CohortDefinition) -> list[str]:
    try:
        return sorted(registry(settings).visible_centers(definition.centers))
    except RegistryError:
        raise CohortDefinitionError(
            f"cohort {definition.name}: centers {definition.centers!r} is not a "
            f"center of the registry {settings.centers_file}"
        ) from None


def index_events(
    spark: SparkSession, settings: Settings, definition: CohortDefinition, centers: list[str]
) -> DataFrame:
    """Dated index events at centers of the scope; the earliest per person unless ``all``."""
    found = (
        ev.events(spark, settings, definition.index)
        .where(F.col("center_id").isin(centers) & F.col("event_date").isNotNull())
        .select("person_id", "center_id", F.col("event_date").alias("index_date"))
        .distinct()
    )
    return first_per_person(found) if definition.index.occurrence == "first" else found


def first_per_person(events: DataFrame) -> DataFrame:
    """The earliest index event of each person (ties: the smallest center id)."""
    first = events.groupBy("person_id").agg(F.min(F.struct("index_date", "center_id")).alias("f"))
    return first.select(
        "person_id", F.col("f.center_id").alias("center_id"), F.col("f.index_date").alias("index_date")
    )


def within(window: Window | None, when: Column, index: Column) -> Column:
    """An undated event (a genotype) is within every window."""
    ok = F.lit(True)
    if window and window.start_days is not None:
        ok = ok & (when >= F.date_add(index, window.start_days))
    if window and window.end_days is not None:
        ok = ok & (when <= F.date_add(index, window.end_days))
    return when.isNull() | ok


def in_observation(candidates: DataFrame, periods: DataFrame, definition: CohortDefinition) -> DataFrame:
    o = definition.observation
    joined = candidates.join(periods, "person_id")
    return joined.where(
        (F.col("obs_start") <= F.date_sub("index_date", o.prior_days))
        & (F.col("obs_end") >= F.date_add("index_date", o.post_days))
    ).select(*CANDIDATE)


def demographic_hits(candidates: DataFrame, people: DataFrame, rule: Criterion) -> DataFrame:
    spec = rule.demographics
    age = F.year("index_date") - F.col("birth_year")
    ok = F.lit(True)
    if spec.age_min is not None:
        ok = ok & (age >= spec.age_min)
    if spec.age_max is not None:
        ok = ok & (age <= spec.age_max)
    if spec.sex:
        ok = ok & F.col("sex").isin(list(spec.sex))
    return candidates.join(people, "person_id").where(ok).select(*CANDIDATE)


def rule_hits(
    spark: SparkSession, settings: Settings, candidates: DataFrame, rule: Criterion, people: DataFrame
) -> DataFrame:
    """The candidates with at least ``min_count`` of the rule's events in its window."""
    if rule.kind == "demographics":
        return demographic_hits(candidates, people, rule)
    found = ev.events(spark, settings, rule).select("person_id", F.col("event_date").alias("_when"))
    joined = candidates.join(found, "person_id").where(
        within(rule.window, F.col("_when"), F.col("index_date"))
    )
    counted = joined.groupBy(*CANDIDATE).agg(F.count(F.lit(1)).alias("_n"))
    return counted.where(F.col("_n") >= rule.min_count).select(*CANDIDATE)


def attrition_steps(spark: SparkSession, settings: Settings, definition: CohortDefinition) -> list[Step]:
    """Index events, then what is left after the observation window and after each rule."""
    centers = scope(settings, definition)
    candidates = index_events(spark, settings, definition, centers)
    steps = [Step(0, definition.index.label, "index", candidates)]
    candidates = in_observation(candidates, ev.observation_periods(spark, settings), definition)
    o = definition.observation
    steps.append(
        Step(
            1, f"observed {o.prior_days} days before and {o.post_days} days after", "observation", candidates
        )
    )
    people = ev.demographics(spark, settings)
    for seq, (kind, rule) in enumerate(definition.rules, start=2):
        hits = rule_hits(spark, settings, candidates, rule, people)
        how = "left_semi" if kind == "inclusion" else "left_anti"
        candidates = candidates.join(hits, list(CANDIDATE), how)
        steps.append(Step(seq, rule.label, kind, candidates))
    return steps


def members(
    spark: SparkSession, settings: Settings, definition: CohortDefinition, final: DataFrame
) -> DataFrame:
    """One row per person: the earliest remaining index event, and the end by the strategy."""
    first = first_per_person(final)
    end = definition.end
    if end.fixed_days is not None:
        stop = F.date_add("index_date", end.fixed_days)
    else:
        first = first.join(ev.observation_periods(spark, settings), "person_id", "left")
        stop = F.greatest(F.col("index_date"), F.coalesce("obs_end", "index_date"))
    return first.select(
        F.lit(definition.id).cast("long").alias("cohort_definition_id"),
        F.col("person_id").alias("subject_id"),
        F.col("index_date").alias("cohort_start_date"),
        stop.alias("cohort_end_date"),
        "center_id",
    )


def tiers(spark: SparkSession, settings: Settings) -> DataFrame:
    rows = [(c.center_id, c.tier) for c in registry(settings).centers.values()]
    return spark.createDataFrame(rows, "center_id string, tier string")


def inclusion_stats(
    spark: SparkSession, settings: Settings, steps: list[Step], cohort_id: int, version: int
) -> DataFrame:
    """Persons and index events left after each rule: overall, per center and per tier."""
    left = reduce(
        DataFrame.unionByName,
        [s.events.select(F.lit(s.sequence).alias("rule_sequence"), "person_id", "center_id") for s in steps],
    )
    left = left.join(tiers(spark, settings), "center_id", "left").fillna({"tier": "unknown"})
    counts = [F.countDistinct("person_id").alias("persons"), F.count(F.lit(1)).alias("events")]
    overall = left.groupBy("rule_sequence").agg(*counts)
    names = spark.createDataFrame(
        [(s.sequence, s.name, s.kind) for s in steps], "rule_sequence int, rule_name string, rule_kind string"
    )
    every = (
        names.join(overall, "rule_sequence", "left")
        .fillna({"persons": 0, "events": 0})
        .select(
            "rule_sequence",
            F.lit("all").alias("scope"),
            F.lit("all").alias("center_id"),
            F.lit("all").alias("tier"),
            "persons",
            "events",
        )
    )
    by_center = (
        left.groupBy("rule_sequence", "center_id", "tier")
        .agg(*counts)
        .select("rule_sequence", F.lit("center").alias("scope"), "center_id", "tier", "persons", "events")
    )
    by_tier = (
        left.groupBy("rule_sequence", "tier")
        .agg(*counts)
        .select(
            "rule_sequence",
            F.lit("tier").alias("scope"),
            F.lit("all").alias("center_id"),
            "tier",
            "persons",
            "events",
        )
    )
    return (
        every.unionByName(by_center)
        .unionByName(by_tier)
        .join(names, "rule_sequence")
        .withColumn("cohort_definition_id", F.lit(cohort_id).cast("long"))
        .withColumn("version", F.lit(version).cast("long"))
    )


def inputs_of(definition: CohortDefinition) -> list[str]:
    """Every table a build of this definition reads (its features included)."""
    tables = {*ev.DATED, *ev.DEMOGRAPHIC_INPUTS, *ev.IMAGING_INPUTS, "silver.samples"}
    if any(r.kind == "genomic" for _, r in definition.rules):
        tables |= set(ev.GENOMIC_INPUTS)
    return sorted(tables)


def fingerprint(spark: SparkSession, settings: Settings, definition: CohortDefinition) -> str:
    versions = adapter(settings, spark)
    state = {t: versions.version(t) for t in inputs_of(definition)}
    state["centers"] = ",".join(scope(settings, definition))
    return json.dumps(state, sort_keys=True)


def last_publication(spark: SparkSession, settings: Settings, cohort_id: int):
    rows = (
        read_table(spark, settings, "gold.cohort_versions")
        .where(F.col("cohort_definition_id") == cohort_id)
        .orderBy(F.desc("version"))
        .limit(1)
        .collect()
    )
    return rows[0] if rows else None


def staging_root(settings: Settings) -> str:
    return f"{settings.lake_root}/_staging/cohorts"


def write_members(
    spark: SparkSession, settings: Settings, cohort_id: int, rows: DataFrame, run_id: str
) -> int:
    """Replace one cohort's members in one MERGE; returns the table's Delta version after it
    (unchanged when the members are as they were)."""
    staged = staging.folder(staging_root(settings), f"{run_id}/{cohort_id}")
    sync_rows(spark, settings, "gold.cohort", rows, staged, within={"cohort_definition_id": cohort_id})
    return adapter(settings, spark).version("gold.cohort")


def write_features(spark: SparkSession, settings: Settings, definition: CohortDefinition) -> int:
    from omicslake.cohort_features import features

    contract = cohort_features(definition.name)
    ensure_tables(spark, settings, (contract,))
    cohort = read_table(spark, settings, "gold.cohort")  # as of now: the members just published
    rows = features(
        spark,
        settings,
        definition,
        cohort.where(F.col("cohort_definition_id") == definition.id),
        tiers(spark, settings),
    )
    contract.conform(rows).write.format("delta").mode("overwrite").save(table_uri(settings, contract))
    return adapter(settings, spark).version(contract.full_name)


def publish(
    spark: SparkSession, settings: Settings, loaded: LoadedDefinition, run_id: str, force: bool = False
) -> dict:
    """Build one cohort unless its definition and inputs are as last published."""
    d = loaded.definition
    state, checksum = fingerprint(spark, settings, d), d.checksum()
    last = last_publication(spark, settings, d.id)
    if last is not None and not force and last.checksum == checksum and last.inputs_json == state:
        return {"status": "unchanged", "version": int(last.version), "members": int(last.members)}
    steps = attrition_steps(spark, settings, d)
    upsert_rows(spark, settings, "gold.cohort_definition", [{
        "cohort_definition_id": d.id, "name": d.name, "title": d.title, "description": d.description,
        "definition_text": loaded.text, "checksum": checksum, "updated_at": datetime.now(UTC)}])
    before = adapter(settings, spark).version("gold.cohort")
    version = write_members(spark, settings, d.id, members(spark, settings, d, steps[-1].events), run_id)
    if version == before and last is not None:
        version = int(last.version)  # nothing committed: the members are as last published
    q = (f"DELETE FROM {path_ref(settings, 'gold.cohort_inclusion_stats')} "
         f"WHERE cohort_definition_id = {int(d.id)} AND version = {int(version)}")
    retry_on_conflict(lambda: spark.sql(q), "DELETE FROM gold.cohort_inclusion_stats")
    append(inclusion_stats(spark, settings, steps, d.id, version), settings, "gold.cohort_inclusion_stats")
    features_version = write_features(spark, settings, d)
    n = read_table(spark, settings, "gold.cohort").where(F.col("cohort_definition_id") == d.id).count()
    upsert_rows(spark, settings, "gold.cohort_versions", [{
        "cohort_definition_id": d.id, "name": d.name, "version": version, "checksum": checksum,
        "inputs_json": state, "members": n, "features_version": features_version, "run_id": run_id,
        "published_at": datetime.now(UTC)}])
    return {"status": "published", "version": version, "members": n}


def run(
    spark: SparkSession, settings: Settings, names: list[str] | None = None, force: bool = False
) -> JobResult:
    """Build the named cohorts (all definitions when none are named)."""
    loaded = [find(n, settings.cohorts_dir) for n in names] if names else load_all(settings.cohorts_dir)
    with track_run(spark, settings, JOB, {"cohorts": [d.name for d in loaded], "force": force}) as result:
        for d in loaded:
            outcome = publish(spark, settings, d, result.run_id, force)
            result.details[d.name] = outcome
            result.rows_read += outcome["members"]
            if outcome["status"] == "published":
                result.rows_written += outcome["members"]
        result.rows_accepted = result.rows_read
        staging.clear(staging_root(settings), result.run_id)
    return result


def _args(p) -> None:
    p.add_argument("names", nargs="*", help="cohort names (default: every definition in cohorts/)")
    p.add_argument("--force", action="store_true", help="rebuild even when nothing changed")


if __name__ == "__main__":
    main_for(run, _args, __doc__)
