"""Build the silver clinical model from bronze HL7 v2 messages and FHIR resources.

Both formats map to the same tables (encounters, conditions, observations, medications,
procedures, allergies, immunizations, diagnostic_reports, patient_identities), and FHIR
QuestionnaireResponses to followup_answers, each joined to the Questionnaire it names from all of
bronze. Bronze rows are mapped in Spark tasks, which stage one Parquet file per table; the driver
keeps the latest version of each record and MERGEs it on the record id, so re-running over the
same bronze rows changes nothing. A record that fails to map, or breaks a rule its mapping relies
on (an RXE without a give code, an answer that does not fit its Questionnaire: ``Unmappable``),
goes to ``quarantine.hl7`` / ``quarantine.fhir`` with the reason, whole. ADT A40 merges are then
applied: every clinical row of a merged person moves to the surviving ``person_id``.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from connectors.clinical_records import TABLES, Unmappable
from connectors.fhir_clinical import MAPPED as FHIR_TYPES
from omicslake import staging
from omicslake.catalog import path_ref, read_table
from omicslake.ingest import staging_root
from omicslake.persons import to_master
from omicslake.pseudonym import load_key
from omicslake.quarantine import Rejected, quarantine_row, quarantine_rows
from omicslake.runs import JobResult, main_for, track_run
from omicslake.session import parallelism
from omicslake.settings import Settings
from omicslake.writes import retry_on_conflict
from schemas import get_table

JOB = "build_clinical"
COUNTS = "records long, mapped long, unmapped long, failed long"
COUNTS_ARROW = pa.schema([(c, pa.int64()) for c in ("records", "mapped", "unmapped", "failed")])
PERSON_TABLES = tuple(t for t in TABLES if t != "patient_identities")
# Tables whose later events may omit what earlier ones said (an A08 without a discharge time):
# the newer row wins, and its missing values are filled from the stored one.
FILL_FROM_OLDER = ("encounters", "patient_identities")


def bronze_input(spark: SparkSession, settings: Settings, run_ids: list[str] | None) -> DataFrame:
    """HL7 messages and FHIR resources to map, in one shape; ``None`` means all of bronze."""
    def of_runs(df: DataFrame) -> DataFrame:
        return df if run_ids is None else df.where(F.col("ingest_run_id").isin(list(run_ids)))

    hl7 = of_runs(read_table(spark, settings, "bronze.hl7_messages")).select(
        F.lit("HL7v2").alias("source_format"), "center_id", F.col("raw").alias("text"),
        F.col("message_control_id").alias("record"), F.col("trigger_event").alias("kind"),
        F.col("message_time").alias("event_time"),
        F.concat_ws("@", "sending_application", "sending_facility").alias("source_system"),
        "source_uri", "source_checksum", "ingest_run_id")
    fhir = of_runs(read_table(spark, settings, "bronze.fhir_resources")).where(
        F.col("resource_type").isin(list(FHIR_TYPES))).select(
        F.lit("FHIR").alias("source_format"), "center_id", F.col("raw_json").alias("text"),
        F.concat("resource_type", F.lit("/"), "resource_id").alias("record"),
        F.col("resource_type").alias("kind"), F.col("last_updated").alias("event_time"),
        F.lit(None).cast("string").alias("source_system"), "source_uri", "source_checksum", "ingest_run_id")
    return hl7.withColumn("context", F.lit(None).cast("string")).unionByName(
        with_questionnaires(spark, settings, fhir))


def with_questionnaires(spark: SparkSession, settings: Settings, fhir: DataFrame) -> DataFrame:
    """FHIR rows plus ``context``: for a QuestionnaireResponse the raw JSON of the Questionnaire it
    names (canonical ``url|version``; without a version, the newest of that url), looked up in all
    of bronze so one sent in an earlier batch counts; NULL for every other row (and when none is
    known, which the mapper quarantines)."""
    q = read_table(spark, settings, "bronze.fhir_resources").where(
        F.col("resource_type") == "Questionnaire").select(
        F.get_json_object("raw_json", "$.url").alias("q_url"),
        F.get_json_object("raw_json", "$.version").alias("q_version"),
        F.col("raw_json").alias("context"), F.col("last_updated").alias("q_updated"),
        F.col("resource_id").alias("q_id"))
    is_response = F.col("kind") == "QuestionnaireResponse"
    others = fhir.where(~is_response).withColumn("context", F.lit(None).cast("string"))
    canonical = F.get_json_object("text", "$.questionnaire")  # split as fhir_followup.canonical_parts
    responses = fhir.where(is_response).withColumns({
        "_url": F.substring_index(canonical, "|", 1),
        "_version": F.when(canonical.contains("|"), F.substring_index(canonical, "|", -1))})
    hit = (responses["_url"] == q["q_url"]) & (
        responses["_version"].isNull() | (responses["_version"] == q["q_version"]))
    newest = Window.partitionBy("record").orderBy(
        F.col("q_updated").desc_nulls_last(), F.col("q_version").desc_nulls_last(), F.col("q_id"))
    responses = responses.join(q, hit, "left").withColumn("_rank", F.row_number().over(newest))
    return others.unionByName(responses.where("_rank = 1").select(*others.columns))


def map_record(key: bytes, run_id: str, r: dict) -> dict[str, list[dict]]:
    """Silver rows by table for one bronze row: an HL7 message, or a FHIR resource with its
    ``context`` (the Questionnaire a QuestionnaireResponse names)."""
    import json

    from connectors import fhir_clinical, hl7_clinical
    from connectors.clinical_records import Source

    if r["source_format"] == "HL7v2":
        src = Source(key, r["center_id"], "HL7v2", r["source_system"] or "HL7v2", r["event_time"],
                     r["source_checksum"], run_id)
        return hl7_clinical.records(r["text"], src, r["record"], r["kind"])
    resource = json.loads(r["text"])
    system = (resource.get("meta") or {}).get("source") or f"FHIR@{r['center_id']}"
    src = Source(key, r["center_id"], "FHIR", system, r["event_time"], r["source_checksum"], run_id)
    return fhir_clinical.records(resource, src, json.loads(r["context"]) if r["context"] else None)


QUARANTINE = {"HL7v2": "quarantine.hl7", "FHIR": "quarantine.fhir"}


def map_batch(key: bytes, run_id: str, rows: list[dict], counts: Counter
              ) -> tuple[dict[str, list[dict]], dict[str, list[dict]]]:
    """Silver rows by table, and quarantine rows by table, of one batch of bronze rows."""
    out: dict[str, list[dict]] = {}
    failed: dict[str, list[dict]] = {}
    now = datetime.now(UTC)
    for r in rows:
        counts["records"] += 1
        try:
            found = map_record(key, run_id, r)
        except Exception as exc:  # one bad record must not stop the batch
            why = str(exc) if isinstance(exc, Unmappable) else f"{type(exc).__name__}: {exc}"
            prov = {**{k: r[k] for k in ("center_id", "source_uri", "source_checksum")},
                    "ingest_run_id": run_id}
            failed.setdefault(QUARANTINE[r["source_format"]], []).append(
                quarantine_row(Rejected(f"not mapped to silver: {why}", r["record"], r["text"]), prov, now))
            continue
        counts["mapped" if found else "unmapped"] += 1
        for table, found_rows in found.items():
            out.setdefault(f"silver.{table}", []).extend(found_rows)
    return out, failed


def map_rows(key: bytes, root: str, run_id: str):
    """mapInArrow body: bronze rows in, one count row out; silver and quarantine rows are staged
    per table as each batch is mapped, so a task holds one batch at a time."""
    def body(batches):
        counts: Counter = Counter()
        with staging.writers(root, run_id, uuid.uuid4().hex) as out:
            for batch in batches:
                found, failed = map_batch(key, run_id, batch.to_pylist(), counts)
                for table, rows in (*found.items(), *failed.items()):
                    out.write(table, get_table(table).arrow_schema(), rows)
        counts["failed"] = counts["records"] - counts["mapped"] - counts["unmapped"]
        yield pa.RecordBatch.from_pylist([{c: counts[c] for c in COUNTS_ARROW.names}], schema=COUNTS_ARROW)

    return body


def latest_per_record(df: DataFrame, table: str) -> DataFrame:
    """One row per record id: the latest event (tables in FILL_FROM_OLDER take each missing value
    from the newest event that has one; encounters keep the earliest start and the latest end)."""
    key = get_table(f"silver.{table}").keys[0]
    order = Window.partitionBy(key).orderBy(F.col("event_time").desc_nulls_last(),
                                            F.col("source_record").desc())
    if table in FILL_FROM_OLDER:
        whole = order.rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
        fills = {c: F.first(c, ignorenulls=True).over(whole) for c in df.columns if c != key}
        if table == "encounters":
            fills.update(start_time=F.min("start_time").over(Window.partitionBy(key)),
                         end_time=F.max("end_time").over(Window.partitionBy(key)))
        df = df.withColumns(fills)
    return df.withColumn("_rank", F.row_number().over(order)).where("_rank = 1").drop("_rank")


def merge_records(spark: SparkSession, settings: Settings, df: DataFrame, table: str) -> None:
    """Insert new records; replace stored ones when the incoming event is as new or newer."""
    contract = get_table(f"silver.{table}")
    key = contract.keys[0]
    view = f"clin_{uuid.uuid4().hex[:12]}"
    if table != "patient_identities":  # identities keep the source pseudonym; the rest joins the person
        df = to_master(spark, settings, df)
    contract.conform(latest_per_record(df, table)).createOrReplaceTempView(view)
    newer = "(t.event_time IS NULL OR s.event_time >= t.event_time)"
    if table in FILL_FROM_OLDER:
        sets = []
        for c in contract.column_names:
            if c == "start_time":
                sets.append("t.start_time = least(s.start_time, t.start_time)")
            elif c == "end_time":
                sets.append("t.end_time = greatest(s.end_time, t.end_time)")
            elif c != key:
                sets.append(f"t.{c} = CASE WHEN {newer} THEN coalesce(s.{c}, t.{c}) "
                            f"ELSE coalesce(t.{c}, s.{c}) END")
        matched = "WHEN MATCHED THEN UPDATE SET " + ", ".join(sets)
    else:
        matched = f"WHEN MATCHED AND {newer} THEN UPDATE SET *"
    q = (f"MERGE INTO {path_ref(settings, f'silver.{table}')} t USING {view} s "
         f"ON t.{key} = s.{key} {matched} WHEN NOT MATCHED THEN INSERT *")
    try:
        retry_on_conflict(lambda: spark.sql(q), f"MERGE INTO silver.{table}")
    finally:
        spark.catalog.dropTempView(view)


def person_merges(spark: SparkSession, settings: Settings, depth: int = 4) -> DataFrame:
    """(old, new) person ids from A40 merges, with chains (A->B, B->C) resolved to the survivor."""
    m = spark.sql(f"""SELECT DISTINCT person_id AS old, merged_into_person_id AS new
                      FROM {path_ref(settings, 'silver.patient_identities')}
                      WHERE merged_into_person_id IS NOT NULL AND merged_into_person_id <> person_id""")
    for _ in range(depth):
        nxt = m.select(F.col("old").alias("o2"), F.col("new").alias("n2"))
        m = (m.join(nxt, m.new == nxt.o2, "left")
              .select("old", F.coalesce("n2", "new").alias("new")).distinct())
    return m


def apply_merges(spark: SparkSession, settings: Settings) -> int:
    """Move clinical rows of merged persons to the survivor; returns how many merges are known."""
    merges = person_merges(spark, settings)
    n = merges.count()
    if not n:
        return 0
    view = f"merges_{uuid.uuid4().hex[:12]}"
    merges.createOrReplaceTempView(view)
    try:
        for table in PERSON_TABLES:
            q = (f"MERGE INTO {path_ref(settings, f'silver.{table}')} t USING {view} m "
                 f"ON t.person_id = m.old WHEN MATCHED THEN UPDATE SET t.person_id = m.new")
            retry_on_conflict(lambda q=q: spark.sql(q), f"MERGE INTO silver.{table}")
    finally:
        spark.catalog.dropTempView(view)
    return n


def run(spark: SparkSession, settings: Settings, run_ids: list[str] | None = None,
        rebuild: bool = False) -> JobResult:
    """Map the bronze rows of the given ingest runs (or all of bronze with ``rebuild``) to silver."""
    if not run_ids and not rebuild:
        raise ValueError("give the ingest run ids to build from, or rebuild=True for all of bronze")
    with track_run(spark, settings, JOB, {"run_ids": run_ids, "rebuild": rebuild}) as result:
        key = load_key(settings)
        root = staging_root(settings, "clinical")
        source = bronze_input(spark, settings, None if rebuild else run_ids)
        try:
            body = map_rows(key, root, result.run_id)
            counts = (source.repartition(max(1, 2 * parallelism(spark))).mapInArrow(body, COUNTS)
                      .agg(*[F.sum(c).alias(c) for c in ("records", "mapped", "unmapped", "failed")])
                      .collect()[0])
            written: Counter = Counter()
            for table in TABLES:
                files = staging.files(root, f"{result.run_id}/silver.{table}")
                if files:
                    rows = spark.read.schema(get_table(f"silver.{table}").spark_schema()).parquet(*files)
                    written[table] = rows.count()
                    merge_records(spark, settings, rows, table)
            for table in QUARANTINE.values():
                bad = staging.read(root, f"{result.run_id}/{table}")
                if bad is not None:
                    quarantine_rows(spark, settings, table, bad)
        finally:
            staging.clear(root, result.run_id)
        result.rows_read = int(counts.records or 0)
        result.rows_accepted = int((counts.mapped or 0) + (counts.unmapped or 0))
        result.rows_quarantined = int(counts.failed or 0)
        result.rows_written = sum(written.values())
        result.details.update(rows_by_table=dict(written),
                              records_without_clinical_content=int(counts.unmapped or 0),
                              person_merges=apply_merges(spark, settings))
    return result


def _args(p) -> None:
    p.add_argument("--run-id", dest="run_ids", action="append", help="ingest run id (repeatable)")
    p.add_argument("--rebuild", action="store_true", help="map all of bronze again (idempotent)")


if __name__ == "__main__":
    main_for(run, _args, __doc__)
