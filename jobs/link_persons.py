"""Link every source identity into the master person index and point silver at it.

Reads ``silver.patient_identities`` (HL7 and FHIR identities, from build_clinical), adds the
DICOM identities (from the identified headers in ``bronze.dicom_instances``, for instances not
linked yet) and the sample-manifest identities (``silver.samples``), then
1. links deterministically: declared merges (HL7 ADT A40, FHIR Patient.link), the same
   identifier in the same system, the same valid resident ID;
2. links probabilistically with a Splink model on the keyed features only: one row per source
   identity (collected from patient_identities), small next to the genomics tables. It runs on
   the driver with DuckDB (``backend="duckdb"``, the default) or on the session's Spark engine
   (``backend="spark"``: Splink's Spark backend, Spark Connect safe, its intermediate tables
   in ``lake/_staging/link_persons/<run>/splink``, removed after the run);
3. clusters without ever joining two different valid resident IDs on a probability;
4. keeps person ids stable (``silver.persons``), writes ``silver.person_links`` and the pairs
   left to a human (``silver.person_link_review``);
5. moves ``person_id`` of silver.samples, alignment_qc, the clinical tables and silver.imaging_*
   to the master person with MERGE. silver.genotypes (and reference_blocks, structural_variants)
   are not rewritten: join them through silver.samples on (center_id, sample_id).
"""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime

import pandas as pd
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from connectors.clinical_records import TABLES as CLINICAL_TABLES
from omicslake import linkage, staging
from omicslake.catalog import path_ref, read_table, table_uri
from omicslake.errors import InputError
from omicslake.pseudonym import load_key
from omicslake.runs import JobResult, main_for, track_run
from omicslake.settings import Settings
from omicslake.writes import merge_new
from schemas import get_table

JOB = "link_persons"
IDENTITIES = "silver.patient_identities"
SOURCE_KEYED = ("silver.samples", *(f"silver.{t}" for t in CLINICAL_TABLES if t != "patient_identities"),
                "silver.imaging_instances")
FEATURES = (*linkage.STRING_FEATURES, *linkage.CLK_FEATURES, *linkage.LIST_FEATURES)
IDENTITY_COLUMNS = ("identity_id", "person_id", "center_id", "source_format", "assigning_authority",
                    "identifier_type", "identifier_key", "merged_into_person_id", "link_key",
                    "event_time", "updated_at", *FEATURES)


def staging_root(settings: Settings) -> str:
    return f"{settings.lake_root}/_staging/link_persons"


def _with_nulls(df: DataFrame, table: str) -> DataFrame:
    """``df`` with the contract's other columns as typed NULLs."""
    contract = get_table(table)
    return df.select(*df.columns, *[F.lit(None).cast(c.dtype).alias(c.name)
                                    for c in contract.columns if c.name not in df.columns])


# --- source identities from imaging and manifests --------------------------------------------


def _dicom_body(key: bytes, run_id: str):
    """mapInArrow body: identified headers in, identity rows (and the instance they came from) out."""
    schema = get_table(IDENTITIES).arrow_schema().append(pa.field("instance_checksum", pa.string()))

    def body(batches):
        from connectors.clinical_records import Source
        from connectors.dicom_deid import new_uid
        from connectors.dicom_identity import identity_rows

        for batch in batches:
            out = []
            for r in batch.to_pylist():
                # event time: when it landed (the study date stays shifted in silver)
                src = Source(key, r["center_id"], "DICOM", f"DICOM@{r['center_id']}", r["ingested_at"],
                             r["source_checksum"], run_id)
                study = f"Study/{new_uid(key, r['study_instance_uid'])}"
                out += [{**row, "instance_checksum": r["source_checksum"]}
                        for row in identity_rows(json.loads(r["header_json"]), src, study)]
            yield pa.RecordBatch.from_pylist(out, schema=schema)

    return body


def dicom_identities(spark: SparkSession, settings: Settings, key: bytes, run_id: str, full: bool) -> int:
    """Identities of the imaging instances not linked yet (all with ``full``); returns how many
    instances were read. Staged to Parquet first: a MERGE from mapInArrow may run it twice."""
    todo = read_table(spark, settings, "silver.imaging_instances")
    if not full:
        todo = todo.where(F.col("source_person_id").isNull())
    headers = (read_table(spark, settings, "bronze.dicom_instances")
               .select("source_checksum", "center_id", "header_json", "study_instance_uid", "ingested_at")
               .join(todo.select("source_checksum").distinct(), "source_checksum", "left_semi"))
    schema = get_table(IDENTITIES).spark_schema().add("instance_checksum", "string")
    root, folder = staging_root(settings), f"{run_id}/dicom"
    headers.mapInArrow(_dicom_body(key, run_id), schema).write.mode("overwrite").parquet(
        staging.folder(root, folder))
    files = staging.files(root, folder)
    if not files:
        return 0
    staged = spark.read.parquet(*files)
    newest = Window.partitionBy("identity_id").orderBy(F.col("event_time").desc_nulls_last(),
                                                       F.col("instance_checksum"))
    ids = staged.withColumn("_n", F.row_number().over(newest)).where(F.col("_n") == 1).drop("_n")
    merge_new(spark, settings, ids.drop("instance_checksum"), IDENTITIES, update=True)
    primary = staged.where(F.col("is_primary")).select(
        F.col("instance_checksum").alias("_d_checksum"), F.col("person_id").alias("_d_source")).distinct()
    (primary.mergeInto(f"delta.`{table_uri(settings, 'silver.imaging_instances')}`",
                       F.col("source_checksum") == F.col("_d_checksum"))
     .whenMatched().update({"source_person_id": F.col("_d_source")}).merge())
    return primary.count()


def manifest_identities(spark: SparkSession, settings: Settings, run_id: str) -> int:
    """One identity per (center, manifest patient): its pseudonym is all a manifest leaves."""
    node = F.coalesce(F.col("source_person_id"), F.col("person_id"))
    grouped = read_table(spark, settings, "silver.samples").groupBy("center_id", node.alias("node")).agg(
        F.first("assigning_authority", ignorenulls=True).alias("authority"),
        F.max("source_checksum").alias("checksum"), F.max("updated_at").alias("event_time"))
    identity = F.concat(F.lit("I"), F.substring(F.sha2(F.concat_ws("|", "center_id", F.lit("MANIFEST"),
                                                                      "node"), 256), 1, 31))
    rows = grouped.select(
        identity.alias("identity_id"), F.col("node").alias("person_id"),
        F.coalesce("authority", "center_id").alias("assigning_authority"),
        F.col("node").alias("identifier_key"), F.lit(True).alias("is_primary"),
        F.col("node").alias("link_key"), "center_id", F.lit("MANIFEST").alias("source_format"),
        F.concat(F.lit("MANIFEST@"), "center_id").alias("source_system"),
        F.lit("sample manifest").alias("source_record"), "event_time",
        F.coalesce("checksum", F.lit("")).alias("source_checksum"), F.lit(run_id).alias("ingest_run_id"),
        F.current_timestamp().alias("updated_at"), F.col("node").alias("source_person_id"))
    new = rows.join(read_table(spark, settings, IDENTITIES).select("identity_id"), "identity_id", "left_anti")
    n = new.count()
    if n:
        merge_new(spark, settings, _with_nulls(new, IDENTITIES), IDENTITIES)
    return n


# --- linking ----------------------------------------------------------------------------------


def read_identities(spark: SparkSession, settings: Settings) -> pd.DataFrame:
    """Every source identity's keyed features, on the driver (one row per identity)."""
    return read_table(spark, settings, IDENTITIES).select(*IDENTITY_COLUMNS).toPandas()


def read_prior(spark: SparkSession, settings: Settings) -> tuple[linkage.Prior, pd.DataFrame, pd.DataFrame]:
    """The index before this run: the model's view, and the stored persons and links."""
    persons = read_table(spark, settings, "silver.persons").toPandas()
    links = read_table(spark, settings, "silver.person_links").select(
        "identity_id", "source_person_id", "person_id", "linked_run_id", "first_run_id").toPandas()
    prior = linkage.Prior(
        person_of=dict(zip(links["source_person_id"], links["person_id"], strict=True)),
        status=dict(zip(persons["person_id"], persons["status"], strict=True)),
        created=dict(zip(persons["person_id"], persons["created_at"].astype(str), strict=True)))
    return prior, persons, links


def _iso(values: pd.Series) -> pd.Series:
    return values.astype("datetime64[us]").dt.strftime("%Y-%m-%dT%H:%M:%S.%f").fillna("~")


def link(identities: pd.DataFrame, prior: linkage.Prior, match_threshold: float, review_threshold: float,
         seed: int, backend: linkage.Backend = linkage.DUCKDB,
         ) -> tuple[linkage.Linkage, linkage.Assignment, pd.DataFrame, dict]:
    """Deterministic edges, the Splink model's pairs (on ``backend``), clusters and stable ids."""
    nodes = linkage.build_nodes(identities)
    edges = linkage.deterministic_edges(identities)
    info: dict = {"source_persons": len(nodes), "linkage_backend": backend.name}
    pairs = pd.DataFrame(columns=["node_id_l", "node_id_r", "match_weight", "match_probability"])
    if len(nodes) > 1:
        started = time.perf_counter()
        model = linkage.train(nodes, seed=seed, backend=backend)
        trained = time.perf_counter()
        try:
            pairs = linkage.predict(model, review_threshold)
            info.update(model=model.as_dict(), model_notes=model.notes, pairs_scored=model.pairs_scored,
                        train_seconds=round(trained - started, 3),
                        predict_seconds=round(time.perf_counter() - trained, 3))
        finally:
            model.close()
    national = identities.dropna(subset=["national_id_key"]).groupby("person_id")["national_id_key"].agg(set)
    result = linkage.cluster(list(nodes["node_id"]), edges, pairs, national.to_dict(), match_threshold)
    first_seen = dict(zip(nodes["node_id"], _iso(nodes["first_seen"]), strict=True))
    assignment = linkage.assign_ids(result.groups, prior, first_seen, linkage.merges(edges))
    info.update(candidate_pairs=len(pairs), deterministic_edges=_count(e.rule for e in edges),
                probabilistic_links=int((pairs["match_probability"] >= match_threshold).sum()))
    return result, assignment, pairs, info


def _count(values) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


# --- the index tables -------------------------------------------------------------------------


def link_rows(identities: pd.DataFrame, result: linkage.Linkage, assignment: linkage.Assignment,
              prior_links: pd.DataFrame, run_id: str, now: datetime) -> list[dict]:
    """One ``silver.person_links`` row per identity: its person and the evidence that joined it."""
    before = prior_links.set_index("identity_id").to_dict("index")
    rows = []
    for r in identities.itertuples(index=False):
        pid, ev = assignment.person_of[r.person_id], result.evidence.get(r.person_id)
        old = before.get(r.identity_id)
        rows.append({
            "identity_id": r.identity_id, "person_id": pid, "source_person_id": r.person_id,
            "center_id": r.center_id, "source_format": r.source_format,
            "assigning_authority": r.assigning_authority, "identifier_type": r.identifier_type,
            "identifier_key": r.identifier_key, "link_rule": ev.rule if ev else "self",
            "match_weight": ev.match_weight if ev else None,
            "match_probability": ev.match_probability if ev else None,
            "linked_to": (ev.right if ev.left == r.person_id else ev.left) if ev else None,
            "linked_run_id": old["linked_run_id"] if old and old["person_id"] == pid else run_id,
            "first_run_id": old["first_run_id"] if old else run_id, "updated_at": now})
    return rows


def person_rows(links: list[dict], assignment: linkage.Assignment, prior: pd.DataFrame,
                prior_links: pd.DataFrame, run_id: str, now: datetime) -> list[dict]:
    """Every person ever created: the active ones with their members, the retired with their heir."""
    stored = prior.set_index("person_id").to_dict("index")
    had = prior_links.groupby("person_id")["identity_id"].agg(frozenset).to_dict()
    members: dict[str, list[dict]] = {}
    for row in links:
        members.setdefault(row["person_id"], []).append(row)
    retired = {p: r["merged_into"] for p, r in stored.items() if r["status"] == "retired"}
    heirs = linkage.resolve_chains({**retired, **assignment.retired})
    rows = []
    for pid in sorted(set(members) | set(heirs)):
        old, mine = stored.get(pid), members.get(pid, [])
        changed = old is None or pid in assignment.retired or had.get(pid, frozenset()) != {
            m["identity_id"] for m in mine}
        rows.append({
            "person_id": pid, "status": "retired" if pid in heirs else "active",
            "merged_into": heirs.get(pid),
            "identity_count": len(mine), "source_person_count": len({m["source_person_id"] for m in mine}),
            "centers": sorted({m["center_id"] for m in mine}),
            "source_formats": sorted({m["source_format"] for m in mine}),
            "created_run_id": old["created_run_id"] if old else run_id,
            "created_at": old["created_at"] if old else now,
            "retired_run_id": run_id if pid in assignment.retired else (old or {}).get("retired_run_id"),
            "updated_run_id": run_id if changed else old["updated_run_id"],
            "updated_at": now if changed else old["updated_at"]})
    return rows


def review_rows(result: linkage.Linkage, assignment: linkage.Assignment, pairs: pd.DataFrame, run_id: str,
                now: datetime) -> list[dict]:
    """Pairs a human should decide, with the level of each comparison (never the values)."""
    gammas = [c for c in pairs.columns if c.startswith("gamma_")]
    levels = {(r["node_id_l"], r["node_id_r"]): {g[6:]: int(r[g]) for g in gammas}
              for r in pairs.to_dict("records")}
    rows = []
    for e, reason in result.review:
        left, right = sorted((e.left, e.right))
        rows.append({
            "pair_id": "R" + hashlib.sha256(f"{left}|{right}".encode()).hexdigest()[:31],
            "source_person_id_l": left, "source_person_id_r": right,
            "person_id_l": assignment.person_of[left], "person_id_r": assignment.person_of[right],
            "match_weight": e.match_weight, "match_probability": e.match_probability, "reason": reason,
            "comparison_levels": json.dumps(levels.get((e.left, e.right), {}), sort_keys=True),
            "run_id": run_id, "created_at": now})
    return rows


def replace_table(spark: SparkSession, settings: Settings, table: str, rows: list[dict]) -> None:
    """Write the table's new state in one commit (the index is recomputed whole each run)."""
    contract = get_table(table)
    df = (spark.createDataFrame(pa.Table.from_pylist(rows, schema=contract.arrow_schema())) if rows
          else spark.createDataFrame([], contract.spark_schema()))  # Connect refuses an empty Arrow table
    contract.conform(df).write.format("delta").mode("overwrite").save(table_uri(settings, table))


# --- every silver table on the master person --------------------------------------------------


def _merge_person(spark: SparkSession, settings: Settings, table: str, source: DataFrame, on,
                  new: str) -> int:
    """Set ``person_id`` of ``table`` to ``source[new]`` where ``on`` matches and it differs;
    returns the rows moved (counted first: MERGE reports none on Sail)."""
    target = read_table(spark, settings, table)
    n = target.join(source, on).where(F.col("person_id") != F.col(new)).count()
    if n:
        (source.mergeInto(f"delta.`{table_uri(settings, table)}`", on)
         .whenMatched(F.col("person_id") != F.col(new)).update({"person_id": F.col(new)}).merge())
    return n


def _fill_source_person(spark: SparkSession, settings: Settings, table: str) -> None:
    """Rows written before source_person_id existed carry their source pseudonym in person_id."""
    if read_table(spark, settings, table).where(F.col("source_person_id").isNull()).limit(1).count():
        spark.sql(f"UPDATE {path_ref(settings, table)} SET source_person_id = person_id "
                  "WHERE source_person_id IS NULL")


def relink_silver(spark: SparkSession, settings: Settings, run_id: str) -> dict[str, int]:
    """Move person_id of every person-keyed silver table to the master person."""
    links = read_table(spark, settings, "silver.person_links")
    changed = (F.col("source_person_id") != F.col("person_id")) | (F.col("linked_run_id") == run_id)
    moves = links.where(changed)
    moves = moves.select(F.col("source_person_id").alias("_m_source"), F.col("person_id").alias("_m_person"))
    moves = moves.distinct()
    out = {}
    for table in SOURCE_KEYED:
        if table != "silver.imaging_instances":
            _fill_source_person(spark, settings, table)
        out[table] = _merge_person(spark, settings, table, moves,
                                   F.col("source_person_id") == F.col("_m_source"), "_m_person")
    samples = read_table(spark, settings, "silver.samples").select(
        F.col("center_id").alias("_s_center"), F.col("sample_id").alias("_s_sample"),
        F.col("person_id").alias("_s_person"))
    out["silver.alignment_qc"] = _merge_person(
        spark, settings, "silver.alignment_qc", samples,
        (F.col("center_id") == F.col("_s_center")) & (F.col("sample_id") == F.col("_s_sample")), "_s_person")
    instances = read_table(spark, settings, "silver.imaging_instances")
    for table, key in (("silver.imaging_series", "series_instance_uid"),
                       ("silver.imaging_studies", "study_instance_uid")):
        owner = instances.groupBy(F.col(key).alias("_i_key")).agg(F.min("person_id").alias("_i_person"))
        out[table] = _merge_person(spark, settings, table, owner, F.col(key) == F.col("_i_key"), "_i_person")
    return out


# --- the job ----------------------------------------------------------------------------------


def run(spark: SparkSession, settings: Settings, match_threshold: float = linkage.MATCH_THRESHOLD,
        review_threshold: float = linkage.REVIEW_THRESHOLD, seed: int = 42, full: bool = False,
        backend: str = "duckdb") -> JobResult:
    """Link all source identities into silver.persons / person_links / person_link_review and
    move every silver table's person_id to the master person. ``full`` re-reads every DICOM
    header (not only instances linked for the first time). ``backend``: where the Splink model
    runs, ``duckdb`` (on the driver) or ``spark`` (on this session's engine)."""
    if backend not in linkage.BACKENDS:
        raise InputError(f"backend {backend!r}: one of {', '.join(linkage.BACKENDS)}")
    if not 0 < review_threshold <= match_threshold <= 1:
        raise InputError("thresholds must satisfy 0 < review_threshold <= match_threshold <= 1")
    params = {"match_threshold": match_threshold, "review_threshold": review_threshold, "seed": seed,
              "full": full, "backend": backend}
    with track_run(spark, settings, JOB, params) as result:
        key = load_key(settings)
        try:
            instances = dicom_identities(spark, settings, key, result.run_id, full)
        finally:
            staging.clear(staging_root(settings), result.run_id)
        manifests = manifest_identities(spark, settings, result.run_id)
        identities = read_identities(spark, settings)
        prior, prior_persons, prior_links = read_prior(spark, settings)
        engine = (linkage.Backend("spark", spark, staging_root(settings), f"{result.run_id}/splink")
                  if backend == "spark" else linkage.DUCKDB)
        try:
            linked, assignment, pairs, info = link(identities, prior, match_threshold, review_threshold, seed,
                                                   engine)
        finally:
            staging.clear(staging_root(settings), result.run_id)
        now = datetime.now(UTC)
        links = link_rows(identities, linked, assignment, prior_links, result.run_id, now)
        persons = person_rows(links, assignment, prior_persons, prior_links, result.run_id, now)
        review = review_rows(linked, assignment, pairs, result.run_id, now)
        replace_table(spark, settings, "silver.person_links", links)
        replace_table(spark, settings, "silver.persons", persons)
        replace_table(spark, settings, "silver.person_link_review", review)
        moved = relink_silver(spark, settings, result.run_id)
        save_model(settings, result.run_id, info.pop("model", None))
        _report(result, identities, links, persons, review, assignment, moved, info,
                dicom_instances=instances, manifest_identities=manifests)
    return result


def _report(result: JobResult, identities: pd.DataFrame, links: list[dict], persons: list[dict],
            review: list[dict], assignment: linkage.Assignment, moved: dict, info: dict, **extra) -> None:
    active = [p for p in persons if p["status"] == "active"]
    result.rows_read = result.rows_accepted = len(identities)
    result.rows_written = len(links)
    result.details.update(
        identities=len(identities), persons=len(active), persons_retired=len(persons) - len(active),
        new_persons=sum(p["created_run_id"] == result.run_id for p in active),
        retired_this_run=len(assignment.retired), links=len(links), review_pairs=len(review),
        rows_relinked=moved, **info, **extra)


def save_model(settings: Settings, run_id: str, model: dict | None) -> None:
    """Keep each run's trained model (m/u, prior, comparisons) next to the lake, for audit."""
    if model is None:
        return
    fs, root = staging.filesystem(settings.lake_root)
    folder = f"{root}/_models/{JOB}"
    fs.create_dir(folder, recursive=True)
    with fs.open_output_stream(f"{folder}/{run_id}.json") as out:
        out.write(json.dumps(model, indent=1, default=str).encode())


def _args(p) -> None:
    p.add_argument("--match-threshold", type=float, default=linkage.MATCH_THRESHOLD,
                   help="match probability at or above which two source persons are linked")
    p.add_argument("--review-threshold", type=float, default=linkage.REVIEW_THRESHOLD,
                   help="match probability from which a pair goes to silver.person_link_review")
    p.add_argument("--seed", type=int, default=42, help="seed of the u-probability sampling")
    p.add_argument("--full", action="store_true", help="re-read every DICOM header")
    p.add_argument("--backend", choices=linkage.BACKENDS, default="duckdb",
                   help="where the Splink model runs: duckdb on the driver, or spark on the session's "
                        "engine (a cluster's, for populations too large for the driver)")


if __name__ == "__main__":
    main_for(run, _args, __doc__)
