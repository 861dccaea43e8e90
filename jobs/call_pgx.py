"""Call pharmacogene diplotypes for every genotyped person, pair them with CPIC guidance, and
raise an alert for each prescription that the guidance says to change.

1. Loads PharmCAT's definitions and the CPIC guidance table into versioned silver tables
   (once per release; ``ops.reference_sources`` records it).
2. Gathers each person's calls at the defining positions on the engine: the VCF records at
   those positions (``bronze.vcf_variants``, so 0/0 and ./. calls count as sent) and the gVCF
   reference blocks that cover them. A position with neither is a no-call, never reference.
3. Matches the calls per person and gene in Python tasks (``mapInArrow``), as PharmCAT's
   named-allele matcher does (``omicslake/diplotypes.py``), into ``silver.pgx_diplotypes``.
4. Joins phenotypes with the guidance into ``gold.pgx_recommendations`` and actionable
   guidance with ``silver.medications`` into ``gold.medication_alerts``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from connectors import pharmcat
from omicslake import staging
from omicslake.catalog import read_table
from omicslake.checksums import sha256_text
from omicslake.diplotypes import Call, call_gene
from omicslake.runs import JobResult, main_for, track_run
from omicslake.settings import Settings
from omicslake.writes import merge_new, sync_rows, upsert_rows
from schemas import get_table

JOB = "call_pgx"
GUIDANCE_DIR = pharmcat.CPIC_DIR
SOURCES = "ops.reference_sources"
CALL = "struct<pos:bigint,a1:string,a2:string,phased:boolean,sample_id:string,center_id:string>"


# --- reference data ----------------------------------------------------------------------


def _fingerprint(folder: Path, guidance: Path) -> str:
    files = sorted([*folder.rglob("*.json"), folder / "SOURCE_COMMIT", *guidance.glob("*.csv")])
    return sha256_text("".join(f"{f.name}:{sha256_text(f.read_bytes())}" for f in files))


def guidance_rows(folder: Path, release: str) -> list[dict]:
    with open(folder / "drugs.csv", newline="") as fh:
        codes = {r["drug"]: r for r in csv.DictReader(fh)}
    with open(folder / "guidance.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [
        {
            **r,
            "actionable": r["actionable"] == "true",
            "atc": codes[r["drug"]]["atc"],
            "rxnorm": codes[r["drug"]]["rxnorm"],
            "release": release,
        }
        for r in rows
    ]


def reference_rows(defs: dict[str, pharmcat.GeneDefinition], release: str) -> tuple[list[dict], list[dict]]:
    positions, alleles = [], []
    for g in defs.values():
        positions += [
            {
                "gene": g.gene,
                "contig": p.contig,
                "pos": p.pos,
                "rsid": p.rsid,
                "ref": p.ref,
                "alts": list(p.alts),
                "release": release,
            }
            for p in g.positions
        ]
        alleles += [
            {
                "gene": g.gene,
                "allele": a.name,
                "function": a.function,
                "activity_value": a.activity,
                "score": a.score,
                "is_reference": a.reference,
                "release": release,
                "defining": {p.pos: v for p, v in zip(g.positions, a.alleles, strict=True) if v is not None},
            }
            for a in g.alleles
        ]
    return positions, alleles


def load_reference(
    spark: SparkSession, settings: Settings, folder: Path, guidance: Path, result: JobResult
) -> str:
    """Load one release of the definitions and guidance (a release already loaded is skipped)."""
    release, digest = pharmcat.release(folder), _fingerprint(folder, guidance)
    known = (
        read_table(spark, settings, SOURCES)
        .where((F.col("source") == "pharmcat") & (F.col("sha256") == digest))
        .limit(1)
        .collect()
    )
    if known:
        return known[0].release
    positions, alleles = reference_rows(pharmcat.load_all(folder), release)
    for table, rows in (
        ("silver.pgx_positions", positions),
        ("silver.pgx_alleles", alleles),
        ("silver.pgx_guidance", guidance_rows(guidance, release)),
    ):
        merge_new(spark, settings, spark.createDataFrame(rows, get_table(table).spark_schema()), table)
        result.details[f"{table} loaded"] = len(rows)
    upsert_rows(spark, settings, SOURCES, [{
        "source": "pharmcat", "release": release, "build": "GRCh38", "uri": str(folder), "sha256": digest,
        "records": len(alleles), "skipped": 0, "parsed_uri": "silver.pgx_alleles", "run_id": result.run_id,
        "loaded_at": datetime.now(UTC).replace(tzinfo=None)}])
    return release


# --- calls at the defining positions -------------------------------------------------------


def _alleles(index: F.Column) -> F.Column:
    """The allele a GT index names (NULL for a missing allele)."""
    bases = F.concat(F.array(F.col("ref")), F.coalesce("alt", F.array().cast("array<string>")))
    return F.when(index >= 0, F.element_at(bases, index + 1))


def vcf_calls(spark: SparkSession, settings: Settings, positions: DataFrame) -> DataFrame:
    """Every sample's call in every VCF record at a defining position, 0/0 and ./. included."""
    records = read_table(spark, settings, "bronze.vcf_variants").join(
        positions.select("gene", "contig", "pos"), ["contig", "pos"]
    )
    calls = records.select(
        "gene", "pos", "ref", "alt", "source_checksum", "center_id", F.explode("genotypes").alias("g")
    )
    samples = read_table(spark, settings, "bronze.vcf_headers").select(
        "source_checksum", F.posexplode("samples").alias("sample_index", "sample_id")
    )
    calls = calls.join(
        samples,
        (calls.source_checksum == samples.source_checksum)
        & (F.col("g.sample_index") == samples.sample_index),
    )
    return calls.select(
        "gene",
        "pos",
        "center_id",
        "sample_id",
        _alleles(F.element_at("g.gt", 1)).alias("a1"),
        F.when(F.size("g.gt") == 2, _alleles(F.element_at("g.gt", 2))).alias("a2"),
        F.col("g.phased").alias("phased"),
    )


def block_calls(spark: SparkSession, settings: Settings, positions: DataFrame) -> DataFrame:
    """Homozygous reference at the defining positions a gVCF reference block covers."""
    blocks = read_table(spark, settings, "silver.reference_blocks")
    p = positions.select("gene", F.col("contig").alias("p_contig"), "pos", "ref")
    hit = blocks.join(p, (blocks.contig == p.p_contig) & (p.pos >= blocks.start) & (p.pos <= blocks.end))
    return hit.select(
        "gene",
        "pos",
        "center_id",
        "sample_id",
        F.col("ref").alias("a1"),
        F.col("ref").alias("a2"),
        F.lit(None).cast("boolean").alias("phased"),
    )


def person_calls(spark: SparkSession, settings: Settings, positions: DataFrame) -> DataFrame:
    """``person_id, gene, calls``: every genotyped person and gene, with the calls found."""
    samples = read_table(spark, settings, "silver.samples").select("center_id", "sample_id", "person_id")
    found = vcf_calls(spark, settings, positions).unionByName(block_calls(spark, settings, positions))
    found = (
        found.join(samples, ["center_id", "sample_id"])
        .groupBy("person_id", "gene")
        .agg(F.collect_list(F.struct("pos", "a1", "a2", "phased", "sample_id", "center_id")).alias("calls"))
    )
    everyone = samples.select("person_id").distinct().crossJoin(positions.select("gene").distinct())
    return everyone.join(found, ["person_id", "gene"], "left").withColumn(
        "calls", F.coalesce("calls", F.array().cast(f"array<{CALL}>"))
    )


# --- matching ------------------------------------------------------------------------------


def observed(gene: pharmcat.GeneDefinition, calls: list[dict]) -> tuple[dict[int, Call], set[str], set[str]]:
    """One call per position. A sample's records at one position are merged first (a split
    multi-allelic site gives 0/0 in one record and 0/1 in the other: the non-reference one
    holds); two samples or files that still disagree make the position a no-call."""
    index = {p.pos: i for i, p in enumerate(gene.positions)}
    per_sample: dict[tuple[int, str], list[Call]] = {}
    for c in calls:
        call = Call(c["a1"], c["a2"], bool(c["phased"]))
        if call.called:
            per_sample.setdefault((index[c["pos"]], c["sample_id"]), []).append(call)
    out: dict[int, Call] = {}
    conflicting: set[int] = set()
    for (i, _), found in sorted(per_sample.items()):
        ref = gene.positions[i].ref
        variant = {(x.a1, x.a2): x for x in found if (x.a1, x.a2) != (ref, ref)}
        if len({frozenset(k) for k in variant}) > 1:
            conflicting.add(i)
            continue
        call = next(iter(variant.values())) if variant else found[0]
        if i in out and {out[i].a1, out[i].a2} != {call.a1, call.a2}:
            conflicting.add(i)
        out.setdefault(i, call)
    for i in conflicting:
        out.pop(i, None)
    return out, {c["sample_id"] for c in calls}, {c["center_id"] for c in calls}


def match_batches(definitions: dict[str, pharmcat.GeneDefinition], release: str, run_id: str):
    schema = get_table("silver.pgx_diplotypes").arrow_schema()

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        now = datetime.now(UTC)
        for batch in batches:
            rows = []
            for r in batch.to_pylist():
                gene = definitions[r["gene"]]
                calls, samples, centers = observed(gene, r["calls"])
                d = call_gene(gene, calls)
                rows.append(
                    {
                        "person_id": r["person_id"],
                        "gene": d.gene,
                        "status": d.status,
                        "diplotype": d.diplotype,
                        "allele1": d.allele1,
                        "allele2": d.allele2,
                        "phenotype": d.phenotype,
                        "activity_score": d.activity_score,
                        "phased": d.phased,
                        "positions_called": d.positions_called,
                        "positions_total": len(gene.positions),
                        "missing_positions": d.missing,
                        "alternatives": d.alternatives,
                        "reason": d.reason,
                        "sample_ids": sorted(samples),
                        "centers": sorted(centers),
                        "release": release,
                        "run_id": run_id,
                        "updated_at": now,
                    }
                )
            yield pa.RecordBatch.from_pylist(rows, schema=schema)

    return run


# --- outputs -------------------------------------------------------------------------------


def recommendations(spark: SparkSession, settings: Settings, release: str) -> DataFrame:
    calls = read_table(spark, settings, "silver.pgx_diplotypes").where(
        F.col("status").isin("called", "partial")
    )
    guidance = (
        read_table(spark, settings, "silver.pgx_guidance").where(F.col("release") == release).drop("release")
    )
    return (
        calls.select("person_id", "gene", "diplotype", "phenotype", "centers", "release")
        .join(guidance, ["gene", "phenotype"])
        .withColumn("updated_at", F.current_timestamp())
    )


INACTIVE = ("cancelled", "entered-in-error", "stopped", "revoked")


def alerts(spark: SparkSession, settings: Settings, run_id: str) -> DataFrame:
    """Prescriptions (ATC or RxNorm, not cancelled, stopped or entered in error) of a drug with
    actionable guidance for the person."""
    recs = read_table(spark, settings, "gold.pgx_recommendations").where(F.col("actionable"))
    guidance = read_table(spark, settings, "silver.pgx_guidance").select("drug", "atc", "rxnorm").distinct()
    recs = recs.join(guidance, "drug")
    meds = read_table(spark, settings, "silver.medications").where(
        ~F.coalesce(F.col("status"), F.lit("")).isin(*INACTIVE)).select(
        "medication_id",
        "person_id",
        "center_id",
        F.col("code").alias("medication_code"),
        "code_system",
        F.coalesce("start_time", "event_time").alias("prescribed_at"),
    )
    hit = ((F.col("code_system") == "ATC") & (F.col("medication_code") == F.col("atc"))) | (
        (F.col("code_system") == "RxNorm") & (F.col("medication_code") == F.col("rxnorm"))
    )
    return (
        meds.join(recs, "person_id")
        .where(hit)
        .select(
            "medication_id",
            "person_id",
            "center_id",
            "drug",
            "medication_code",
            "code_system",
            "prescribed_at",
            "gene",
            "diplotype",
            "phenotype",
            "recommendation",
            "guideline",
            F.lit(run_id).alias("run_id"),
            F.current_timestamp().alias("created_at"),
        )
    )


def run(
    spark: SparkSession, settings: Settings, definitions: str | None = None, guidance: str | None = None
) -> JobResult:
    """Call every genotyped person's pharmacogenes and refresh recommendations and alerts."""
    folder = Path(definitions) if definitions else pharmcat.PHARMCAT_DIR
    guide = Path(guidance) if guidance else GUIDANCE_DIR
    with track_run(spark, settings, JOB, {"definitions": str(folder), "guidance": str(guide)}) as result:
        release = load_reference(spark, settings, folder, guide, result)
        defs = pharmcat.load_all(folder)
        positions = read_table(spark, settings, "silver.pgx_positions").where(F.col("release") == release)
        todo = person_calls(spark, settings, positions)
        called = todo.mapInArrow(
            match_batches(defs, release, result.run_id), get_table("silver.pgx_diplotypes").spark_schema()
        )
        root = f"{settings.lake_root}/_staging/pgx/{result.run_id}"
        sync_rows(spark, settings, "silver.pgx_diplotypes", called, f"{root}/diplotypes")
        sync_rows(spark, settings, "gold.pgx_recommendations", recommendations(spark, settings, release),
                  f"{root}/recommendations")
        sync_rows(spark, settings, "gold.medication_alerts", alerts(spark, settings, result.run_id),
                  f"{root}/alerts")
        staging.clear(f"{settings.lake_root}/_staging/pgx", result.run_id)
        _count(spark, settings, result)
    return result


def _count(spark: SparkSession, settings: Settings, result: JobResult) -> None:
    calls = read_table(spark, settings, "silver.pgx_diplotypes").groupBy("status").count().collect()
    result.details["diplotypes"] = {r.status: r["count"] for r in calls}
    uncallable = (
        read_table(spark, settings, "silver.pgx_diplotypes")
        .where(F.col("status") != "called")
        .groupBy("gene", "status", "reason")
        .count()
        .orderBy("gene")
        .collect()
    )
    result.details["not_called"] = [f"{r.gene} {r.status} x{r['count']}: {r.reason}" for r in uncallable]
    result.details["recommendations"] = read_table(spark, settings, "gold.pgx_recommendations").count()
    result.details["alerts"] = read_table(spark, settings, "gold.medication_alerts").count()
    result.rows_read = sum(result.details["diplotypes"].values())
    result.rows_accepted = result.rows_written = result.rows_read


def _args(p) -> None:
    p.add_argument("--definitions", help="PharmCAT definitions folder (default: reference/pharmcat)")
    p.add_argument("--guidance", help="CPIC guidance folder (default: reference/cpic)")


if __name__ == "__main__":
    main_for(run, _args, __doc__)
