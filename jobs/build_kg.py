"""The precision-medicine knowledge graph: ``gold.kg_nodes`` and ``gold.kg_edges``.

``run`` derives the lake's part on the engine and replaces it in one commit per table (a
``replaceWhere`` on the lake's sources), leaving the external releases untouched:

- person -carries-> variant (silver.genotypes via silver.samples; only variants the annotation
  places in a gene or ClinVar classifies: an intergenic, unclassified call links nothing);
- variant -in_gene-> gene (GTF overlap, evidence the region class) and variant -clinvar-> gene
  (evidence the ClinVar significance, toward the genes ClinVar names, else the overlapping
  ones). The annotation keeps no ClinVar condition (CLNDN), so there is no variant -> disease
  edge: the significance rides on the variant -> gene link, where the data supports it;
- gene -cpic_guideline-> drug (silver.pgx_guidance, latest PharmCAT/CPIC release);
- person -diagnosed_with-> disease:ICD10:<3-character category> (silver.conditions),
  person -prescribed-> drug (silver.medications), person -has_imaging_study-> imaging_study
  (silver.imaging_studies); evidence ``records=N``.

A person is only ``person:<person_id>`` with no name. Drugs are ``drug:<name>`` when
reference/cpic/drugs.csv names their ATC or RxNorm code, so prescriptions and CPIC guidance
meet on one node; other codes stay ``drug:ATC:<code>`` / ``drug:RxNorm:<code>``.

``load`` adds one release of an external graph (connectors/kg_formats.py): registered in
``ops.reference_sources`` only after its rows are written, so a half-written release is never
read, and a name already loaded from other content is refused unless replaced.

Queries over the graph (``omicslake kg neighbors``, the loaded releases) are in
``omicslake/kg_reads.py``.
"""

from __future__ import annotations

import csv
import re
from datetime import UTC, datetime
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from connectors import kg_formats
from connectors.kg_formats import EXTERNAL_SOURCES, NODE_COLUMNS, TRIPLE_COLUMNS
from connectors.pharmcat import CPIC_DIR
from omicslake import staging
from omicslake.catalog import path_ref, read_table, table_uri
from omicslake.checksums import sha256_file, sha256_text
from omicslake.errors import InputError
from omicslake.kg_reads import EDGES, NODES, SOURCES, Release, releases
from omicslake.runs import JobResult, main_for, track_run
from omicslake.settings import Settings
from omicslake.writes import append, retry_on_conflict
from schemas import get_table

JOB, LOAD_JOB = "build_kg", "load_kg"
LAKE_ROWS = "source NOT IN ({})".format(", ".join(f"'{s}'" for s in EXTERNAL_SOURCES))
RELEASE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


def drug_codes(folder: Path = CPIC_DIR) -> list[dict[str, str]]:
    """``drug, atc, rxnorm`` of every drug the lake names (reference/cpic/drugs.csv)."""
    with open(folder / "drugs.csv", newline="") as fh:
        return [{k: (v or "").strip() for k, v in r.items()} for r in csv.DictReader(fh)]


def _ends(src: Column, src_type: str, src_name: Column, src_sid: Column,
          dst: Column, dst_type: str, dst_name: Column, dst_sid: Column,
          relation: str, evidence: Column) -> list[Column]:
    """One edge's columns in TRIPLE_COLUMNS order."""
    cols = [src, F.lit(src_type), src_name, src_sid, dst, F.lit(dst_type), dst_name, dst_sid,
            F.lit(relation), evidence]
    return [c.cast("string").alias(n) for c, n in zip(cols, TRIPLE_COLUMNS, strict=True)]


def _person() -> list[Column]:
    """person:<id>, type, no name, the id: persons appear as nothing but their person_id."""
    return [F.concat(F.lit("person:"), "person_id"), "person", F.lit(None), F.col("person_id")]


def _records(df: DataFrame, key: list[str]) -> DataFrame:
    return df.groupBy(*key).agg(F.count(F.lit(1)).alias("n"))


# --- lake edges: each returns triples --------------------------------------------------------


def carried(spark: SparkSession, settings: Settings) -> DataFrame:
    """``person_id, variant_id, alt_count, calls``: the master person's calls of variants the
    annotation places in a gene or ClinVar classifies."""
    notes = read_table(spark, settings, "silver.variant_annotations").where(
        (F.size("genes") > 0) | F.col("clinvar_significance").isNotNull()).select("variant_id")
    calls = read_table(spark, settings, "silver.genotypes").select("center_id", "sample_id", "variant_id",
                                                                    "alt_count")
    samples = read_table(spark, settings, "silver.samples").select("center_id", "sample_id", "person_id")
    return (calls.join(samples, ["center_id", "sample_id"]).join(notes, "variant_id", "left_semi")
            .groupBy("person_id", "variant_id")
            .agg(F.max("alt_count").alias("alt_count"), F.count(F.lit(1)).alias("calls")))


def carries(carried_df: DataFrame) -> DataFrame:
    variant = F.concat(F.lit("variant:"), "variant_id")
    evidence = F.concat(F.lit("alt_count="), "alt_count", F.lit("; calls="), "calls")
    return carried_df.select(*_ends(*_person(), variant, "variant", F.col("variant_id"),
                                    F.col("variant_id"), "carries", evidence))


def _notes(spark: SparkSession, settings: Settings, carried_df: DataFrame) -> DataFrame:
    return read_table(spark, settings, "silver.variant_annotations").join(
        carried_df.select("variant_id").distinct(), "variant_id", "left_semi")


def _variant() -> list:
    return [F.concat(F.lit("variant:"), "variant_id"), "variant", F.col("variant_id"), F.col("variant_id")]


def in_gene(spark: SparkSession, settings: Settings, carried_df: DataFrame) -> DataFrame:
    """variant -in_gene-> gene: the genes the GTF overlaps, evidence the region class."""
    hits = _notes(spark, settings, carried_df).select("variant_id", F.explode("genes").alias("g"))
    gene = F.concat(F.lit("gene:"), "g.gene_name")
    return hits.select(*_ends(*_variant(), gene, "gene", F.col("g.gene_name"), F.col("g.gene_id"), "in_gene",
                              F.col("g.region_class")))


def clinvar(spark: SparkSession, settings: Settings, carried_df: DataFrame) -> DataFrame:
    """variant -clinvar-> gene, evidence the significance: toward the genes ClinVar names
    (GENEINFO), else those the GTF overlaps."""
    notes = _notes(spark, settings, carried_df)
    named = F.transform(F.split("clinvar_gene_info", r"\|"), lambda s: F.split(s, ":")[0])
    rows = (notes.where(F.col("clinvar_significance").isNotNull())
            .select("variant_id", "clinvar_significance", F.explode(
                F.when(F.col("clinvar_gene_info").isNotNull(), named)
                .otherwise(F.col("genes.gene_name"))).alias("gene")))
    return rows.select(*_ends(*_variant(), F.concat(F.lit("gene:"), "gene"), "gene", F.col("gene"),
                              F.lit(None), "clinvar", F.col("clinvar_significance")))


def _latest_pgx_release(spark: SparkSession, settings: Settings) -> str | None:
    row = (read_table(spark, settings, SOURCES).where(F.col("source") == "pharmcat")
           .agg(F.max_by("release", "loaded_at").alias("release")).collect())
    return row[0].release if row else None


def cpic(spark: SparkSession, settings: Settings) -> DataFrame:
    """gene -cpic_guideline-> drug: the CPIC guidelines behind each gene-drug pair."""
    guidance = read_table(spark, settings, "silver.pgx_guidance")
    release = _latest_pgx_release(spark, settings)
    if release is not None:
        guidance = guidance.where(F.col("release") == release)
    pairs = guidance.groupBy("gene", "drug").agg(
        F.concat_ws("; ", F.sort_array(F.collect_set("guideline"))).alias("guideline"),
        F.first("atc", ignorenulls=True).alias("atc"), F.first("rxnorm", ignorenulls=True).alias("rxnorm"))
    codes = F.concat_ws("|", F.concat(F.lit("ATC:"), "atc"), F.concat(F.lit("RxNorm:"), "rxnorm"))
    return pairs.select(*_ends(F.concat(F.lit("gene:"), "gene"), "gene", F.col("gene"), F.lit(None),
                               F.concat(F.lit("drug:"), F.lower("drug")), "drug", F.col("drug"), codes,
                               "cpic_guideline", F.col("guideline")))


def conditions(spark: SparkSession, settings: Settings) -> DataFrame:
    """person -diagnosed_with-> disease:ICD10:<category> (C34.1 and C34.9 are both C34)."""
    category = F.upper(F.substring(F.regexp_replace("icd10_code", "[^A-Za-z0-9]", ""), 1, 3))
    rows = (read_table(spark, settings, "silver.conditions").where(F.col("icd10_code").isNotNull())
            .select("person_id", category.alias("category")).where(F.length("category") == 3))
    rows = _records(rows, ["person_id", "category"])
    return rows.select(*_ends(*_person(), F.concat(F.lit("disease:ICD10:"), "category"), "disease",
                              F.col("category"), F.concat(F.lit("ICD10:"), "category"), "diagnosed_with",
                              F.concat(F.lit("records="), "n")))


def medications(spark: SparkSession, settings: Settings, drugs: list[dict[str, str]]) -> DataFrame:
    """person -prescribed-> drug: by name when drugs.csv knows the ATC or RxNorm code."""
    names = spark.createDataFrame(
        [(system, d[col], d["drug"]) for d in drugs for system, col in (("ATC", "atc"), ("RxNorm", "rxnorm"))
         if d[col]], "code_system string, code string, drug string")
    rows = (read_table(spark, settings, "silver.medications").where(F.col("code").isNotNull())
            .select("person_id", F.coalesce("code_system", F.lit("unknown")).alias("code_system"),
                    F.trim("code").alias("code"))
            .join(names, ["code_system", "code"], "left"))
    rows = _records(rows, ["person_id", "code_system", "code", "drug"])
    coded = F.concat_ws(":", "code_system", "code")
    drug = F.when(F.col("drug").isNotNull(), F.concat(F.lit("drug:"), F.lower("drug"))).otherwise(
        F.concat(F.lit("drug:"), coded))
    return rows.select(*_ends(*_person(), drug, "drug", F.coalesce("drug", coded), coded,
                              "prescribed", F.concat(F.lit("records="), "n")))


def imaging(spark: SparkSession, settings: Settings) -> DataFrame:
    """person -has_imaging_study-> imaging_study:<uid> (de-identified UID; evidence the modalities)."""
    rows = read_table(spark, settings, "silver.imaging_studies")
    name = F.concat_ws(" ", "modalities", F.col("study_date").cast("string"))
    return rows.select(*_ends(*_person(), F.concat(F.lit("imaging_study:"), "study_instance_uid"),
                              "imaging_study", name, F.col("study_instance_uid"), "has_imaging_study",
                              F.col("modalities")))


def lake_triples(spark: SparkSession, settings: Settings, drugs: list[dict[str, str]]) -> DataFrame:
    """Every lake edge, with its source table and a rank that decides which source names a node."""
    carried_df = carried(spark, settings)
    parts = [
        ("silver.genotypes", carries(carried_df)),
        ("silver.variant_annotations", in_gene(spark, settings, carried_df)),
        ("silver.variant_annotations", clinvar(spark, settings, carried_df)),
        ("silver.pgx_guidance", cpic(spark, settings)),
        ("silver.conditions", conditions(spark, settings)),
        ("silver.medications", medications(spark, settings, drugs)),
        ("silver.imaging_studies", imaging(spark, settings)),
    ]
    out = None
    for rank, (source, df) in enumerate(parts):
        df = df.withColumn("source", F.lit(source)).withColumn("rank", F.lit(rank))
        out = df if out is None else out.unionByName(df)
    return out


# --- triples -> nodes and edges --------------------------------------------------------------


def split(triples: DataFrame, release: str, extra_nodes: DataFrame | None = None,
          undirected: bool = False) -> tuple[DataFrame, DataFrame]:
    """Nodes (one row per node id: the lowest-ranked source names it) and edges of ``release``.
    An edge with an end that could not be named is left out (the loader counts it).
    ``extra_nodes`` (node columns and source) adds nodes no edge reaches; ``undirected`` keeps
    one row per edge listed both ways, the smaller node id first (drug: before gene:)."""
    ok = triples.where(F.col("src").isNotNull() & F.col("dst").isNotNull())
    sides = [ok.select(*[F.col(f"{side}{suffix}").alias(c) for c, suffix in
                         zip(NODE_COLUMNS, ("", "_type", "_name", "_source_id"), strict=True)],
                       "source", "rank") for side in ("src", "dst")]
    rows = sides[0].unionByName(sides[1])
    if extra_nodes is not None:
        rows = rows.unionByName(extra_nodes.where(F.col("node_id").isNotNull()).select(
            *NODE_COLUMNS, "source", F.lit(99).alias("rank")))
    known = F.col("source_id").isNull().alias("unknown")  # a row that knows the source id wins a tie
    best = F.min(F.struct("rank", known, "type", "name", "source", "source_id")).alias("b")
    nodes = rows.distinct().groupBy("node_id").agg(best).select(  # distinct first: a node is in many edges
        "node_id", "b.type", "b.name", "b.source", "b.source_id", F.lit(release).alias("release"))
    ends = [F.least("src", "dst"), F.greatest("src", "dst")] if undirected else [F.col("src"), F.col("dst")]
    edges = ok.select(ends[0].alias("src"), ends[1].alias("dst"), "relation", "source", "evidence",
                      F.lit(release).alias("release"))
    return nodes, edges.distinct()


def _replace_lake_rows(settings: Settings, table: str, rows: DataFrame) -> None:
    """Swap the lake-derived rows of ``table`` for ``rows`` in one commit; external releases stay."""
    (get_table(table).conform(rows).write.format("delta").mode("overwrite")
     .option("replaceWhere", LAKE_ROWS).save(table_uri(settings, table)))


def _count_lake(spark: SparkSession, settings: Settings, result: JobResult) -> None:
    lake = ~F.col("source").isin(*EXTERNAL_SOURCES)
    edges = read_table(spark, settings, EDGES).where(lake).groupBy("relation").count().collect()
    nodes = read_table(spark, settings, NODES).where(lake).groupBy("type").count().collect()
    result.details["edges"] = {r.relation: r["count"] for r in sorted(edges, key=lambda r: r.relation)}
    result.details["nodes"] = {r.type: r["count"] for r in sorted(nodes, key=lambda r: r.type)}
    result.rows_written = sum(result.details["edges"].values()) + sum(result.details["nodes"].values())


def run(spark: SparkSession, settings: Settings) -> JobResult:
    """Rebuild the lake's part of the knowledge graph (external releases are kept)."""
    with track_run(spark, settings, JOB, {}) as result:
        root = f"{settings.lake_root}/_staging/kg"
        triples = staging.materialise(spark, lake_triples(spark, settings, drug_codes()),
                                      staging.folder(root, result.run_id))
        nodes, edges = split(triples, result.run_id)
        _replace_lake_rows(settings, NODES, nodes)
        _replace_lake_rows(settings, EDGES, edges)
        staging.clear(root, result.run_id)
        _count_lake(spark, settings, result)
        result.rows_read = result.rows_accepted = sum(result.details["edges"].values())
    return result


# --- external releases -----------------------------------------------------------------------


def digest(files: list[str]) -> str:
    """sha256 of the file (as ``sha256sum`` prints it), or of the sorted digests of several."""
    sums = sorted(sha256_file(f) for f in files)
    return sums[0] if len(sums) == 1 else sha256_text(",".join(sums))


def _delete_release(spark: SparkSession, settings: Settings, table: str, source: str, release: str) -> None:
    """Remove every row of one release (MERGE: no SQL text is built from the release name)."""
    view = f"kg_drop_{table.replace('.', '_')}"
    spark.createDataFrame([(source, release)], "source string, release string").createOrReplaceTempView(view)
    q = (f"MERGE INTO {path_ref(settings, table)} t USING {view} s "
         "ON t.source = s.source AND t.release = s.release WHEN MATCHED THEN DELETE")
    try:
        retry_on_conflict(lambda: spark.sql(q), f"MERGE INTO {table}")
    finally:
        spark.catalog.dropTempView(view)


def check_release(known: list[Release], source: str, release: str, sha: str, replace: bool) -> bool:
    """Whether this exact release is loaded already (nothing to do); refuse mixing content."""
    if not RELEASE_NAME.match(release):
        raise InputError(f"release name {release!r}: use letters, digits and . _ : - (at most 64)")
    for r in known:
        if r.source == source and r.sha256 == sha and r.release != release:
            raise InputError(f"this {source} content (sha256 {sha[:12]}...) is already loaded as release "
                             f"{r.release!r}; query that release, nothing to load")
    same = [r for r in known if r.source == source and r.release == release]
    if same and same[0].sha256 == sha:
        return True
    if same and not replace:
        old = same[0]
        raise InputError(
            f"{source} release {release!r} is already loaded from other content "
            f"(sha256 {old.sha256[:12]}..., "
            f"{old.records} edges, loaded {old.loaded_at:%Y-%m-%d %H:%M}); this file is sha256 {sha[:12]}... "
            "Releases are never mixed: load it under a new --release name (both stay queryable), or give "
            f"--replace to drop the rows of {release!r} and load this content in their place")
    return False


def _register(spark: SparkSession, settings: Settings, source: str, release: str, sha: str,
              files: list[str], counts: tuple[int, int], run_id: str) -> None:
    row = {"source": source, "release": release, "build": None, "uri": ";".join(files), "sha256": sha,
           "normalised_against": None, "records": counts[0], "skipped": counts[1], "parsed_uri": EDGES,
           "run_id": run_id, "loaded_at": datetime.now(UTC).replace(tzinfo=None)}
    append(spark.createDataFrame([row], get_table(SOURCES).spark_schema()), settings, SOURCES)


def load(spark: SparkSession, settings: Settings, fmt: str, files: list[str], release: str,
         replace: bool = False) -> JobResult:
    """Load one release of an external graph (PrimeKG or Hetionet) next to the lake's rows."""
    params = {"format": fmt, "files": files, "release": release, "replace": replace}
    with track_run(spark, settings, LOAD_JOB, params) as result:
        parsed = kg_formats.read(spark, fmt, files, [d["drug"].lower() for d in drug_codes()])
        sha = digest(parsed.files)
        result.inputs, result.checksums = parsed.files, [sha]
        if check_release(releases(spark, settings), fmt, release, sha, replace):
            result.skipped_inputs = list(parsed.files)
            return result
        _delete_release(spark, settings, SOURCES, fmt, release)  # unregistered first: never read half-done
        for table in (NODES, EDGES):
            _delete_release(spark, settings, table, fmt, release)
        root = f"{settings.lake_root}/_staging/kg"
        triples = staging.materialise(spark, parsed.triples.withColumn("source", F.lit(fmt))
                                      .withColumn("rank", F.lit(0)), staging.folder(root, result.run_id))
        extra = parsed.nodes.withColumn("source", F.lit(fmt)) if parsed.nodes is not None else None
        nodes, edges = split(triples, release, extra, parsed.undirected)
        append(nodes, settings, NODES)
        append(edges, settings, EDGES)
        result.rows_read = triples.count()
        left_out = triples.where(F.col("src").isNull() | F.col("dst").isNull())
        skipped, examples = left_out.count(), [r.raw for r in left_out.select("raw").limit(3).collect()]
        staging.clear(root, result.run_id)
        written = read_table(spark, settings, EDGES).where(
            (F.col("source") == fmt) & (F.col("release") == release)).count()
        result.rows_accepted, result.rows_written = result.rows_read - skipped, written
        if skipped:
            result.warnings.append(f"{skipped} row(s) left out: an end without an id or name, or an edge to "
                                   f"a node the nodes file lacks; e.g. {' | '.join(examples)}")
        _register(spark, settings, fmt, release, sha, parsed.files, (written, skipped), result.run_id)
        result.details.update(source=fmt, release=release, edges=written, skipped=skipped,
                              folded=result.rows_accepted - written)  # duplicates and reverse twins
    return result


def _args(p) -> None:
    p.add_argument("--load", dest="files", nargs="+", metavar="FILE",
                   help="load an external graph release instead of rebuilding the lake's rows")
    p.add_argument("--format", dest="fmt", choices=sorted(kg_formats.READERS), help="with --load")
    p.add_argument("--release", help="with --load: the release name")
    p.add_argument("--replace", action="store_true", help="with --load: replace a release of that name")


def _main(spark: SparkSession, settings: Settings, files: list[str] | None = None, fmt: str | None = None,
          release: str | None = None, replace: bool = False) -> JobResult:
    """``python -m jobs.build_kg`` rebuilds the lake's rows; with ``--load`` it loads a release."""
    if not files:
        return run(spark, settings)
    if not (fmt and release):
        raise InputError("--load needs --format and --release")
    return load(spark, settings, fmt, files, release, replace)


if __name__ == "__main__":
    main_for(_main, _args, __doc__)
