"""Annotate ``silver.variants``: gene and region class from a GTF/GFF3, ClinVar significance and
gnomAD frequencies by exact allele match, optional VEP/snpEff consequences
(``silver.variant_annotations``), and cohort allele counts with a Hardy-Weinberg test, over all
centers and per province (``silver.variant_stats``).

Each reference file is parsed once per release into Parquet under ``lake/_reference/`` and
registered in ``ops.reference_sources``; a source given no path uses its latest registered
release. ClinVar and gnomAD alleles are split per ALT, their contigs renamed and, with
``reference``, left-aligned by the same code as ``clean_variants``, so they match on
``variant_id``. Rows are written only where their values changed (``row_hash``): a new ClinVar
release updates rows in place, and re-running the same release changes nothing.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.pandas.types import from_arrow_schema

from connectors import annotation_sources as src
from connectors.consequence import Tool, annotate, find_tool
from connectors.gtf import REGION_CLASSES, read_gene_models, release_and_build
from connectors.normalise import normalise_alleles, variant_id
from connectors.vcf import read_header
from connectors.vcf_chunks import locate_lines, plan_chunks
from omicslake import staging
from omicslake.catalog import read_table
from omicslake.checksums import sha256_file
from omicslake.errors import InputError
from omicslake.hwe import hwe_exact_p
from omicslake.ingest import expand_inputs
from omicslake.runs import JobResult, main_for, track_run
from omicslake.session import parallelism
from omicslake.settings import Settings
from omicslake.tiers import registry
from omicslake.writes import append, merge_new
from schemas import get_table
from schemas.tables import DERIVED_ROW, GENE_HIT

JOB = "annotate_variants"
CLEANED_BY = "clean_variants"  # the job whose succeeded runs list the sources in silver
VCF_SUFFIXES = (".vcf", ".vcf.gz", ".vcf.bgz", ".bcf")
GTF_SUFFIXES = (".gtf", ".gtf.gz", ".gff3", ".gff3.gz", ".gff", ".gff.gz")
BIN_BITS = 12  # interval-join bins of 4 kb: few candidate regions per variant, long introns in a few bins
ROWS_PER_COMMIT = 2_000_000
EXAMPLES = 3
ANNOTATIONS, STATS, SOURCES = "silver.variant_annotations", "silver.variant_stats", "ops.reference_sources"
log = logging.getLogger(__name__)


@dataclass
class Loaded:
    """One source's release as the annotation joins it: its parsed Parquet files."""

    source: str
    release: str
    parsed_uris: list[str] = field(default_factory=list)


# --- reference sources ---------------------------------------------------------------------


def _reference_uri(settings: Settings, source: str, sha256: str, reference: str | None, build: str) -> str:
    """Where a file's parsed rows live: one folder per file, build (it is in every variant_id)
    and FASTA the alleles were aligned to."""
    if reference and not Path(reference + ".fai").is_file():
        raise InputError(f"{reference}: no .fai index next to the FASTA; run `samtools faidx {reference}`")
    norm = f"-norm-{sha256_file(reference + '.fai')[:12]}" if reference else ""
    return f"{settings.lake_root}/_reference/{source}/{build}-{sha256[:20]}{norm}"


def _exists(uri: str) -> bool:
    from pyarrow import fs as pafs

    fs, path = pafs.FileSystem.from_uri(uri)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def _registered(spark: SparkSession, settings: Settings, source: str) -> list:
    return read_table(spark, settings, SOURCES).where(F.col("source") == source).collect()


def latest(spark: SparkSession, settings: Settings, source: str, build: str) -> Loaded | None:
    """The release of ``source`` for ``build`` loaded last, with every file of that release."""
    rows = [r for r in _registered(spark, settings, source) if r.build == build]
    if not rows:
        return None
    top = max(rows, key=lambda r: r.loaded_at)
    return Loaded(source, top.release, sorted({r.parsed_uri for r in rows if r.release == top.release}))


def register(spark: SparkSession, settings: Settings, row: dict) -> None:
    df = spark.createDataFrame([row], get_table(SOURCES).spark_schema())
    merge_new(spark, settings, df, SOURCES, update=True)


def _source_row(source: str, release: str, build: str | None, path: str, sha: str, reference: str | None,
                records: int, skipped: int, parsed_uri: str, run_id: str) -> dict:
    return {"source": source, "release": release, "build": build, "uri": path, "sha256": sha,
            "normalised_against": reference, "records": records, "skipped": skipped,
            "parsed_uri": parsed_uri, "run_id": run_id, "loaded_at": datetime.now(UTC).replace(tzinfo=None)}


def _check_build(path: str, found: str | None, build: str) -> None:
    if found and found != build:
        raise InputError(f"{path}: the file is {found} but {build} variants are being annotated; "
                         f"give the {build} release, or build={found!r}")


def _reuse(spark: SparkSession, settings: Settings, source: str, sha: str, target: str,
           release: str | None) -> str | None:
    """The registered release of this very file, when its parsed form is still there."""
    for r in _registered(spark, settings, source):
        if r.sha256 == sha and r.parsed_uri == target and _exists(target):
            if release and release != r.release:
                register(spark, settings, {**r.asDict(), "release": release})
                return release
            return r.release
    return None


def load_gtf(spark: SparkSession, settings: Settings, path: str, release: str | None, build: str,
             result: JobResult) -> Loaded:
    """Parse a GTF/GFF3 into transcript regions (on the driver, with Arrow) once per file."""
    sha = sha256_file(path)
    target = _reference_uri(settings, "gtf", sha, None, build)
    if (known := _reuse(spark, settings, "gtf", sha, target, release)) is not None:
        return Loaded("gtf", known, [target])
    models = read_gene_models(path)
    found_release, found_build = release_and_build(path, models.header)
    _check_build(path, found_build, build)
    root, key = target.rsplit("/", 1)
    staging.write_table(root, f"{key}/regions", "regions.parquet",
                        models.regions.select(["contig", "start", "end", "gene_id", "transcript_id", "rank"]))
    staging.write_table(root, f"{key}/genes", "genes.parquet", models.genes())
    skipped = sum(models.skipped.values())
    for reason, n in models.skipped.items():
        result.warnings.append(f"{path}: {n} line(s) skipped: {reason}")
    result.warnings += models.examples
    release = release or found_release
    register(spark, settings, _source_row("gtf", release, build, path, sha, None,
                                          models.transcripts, skipped, target, result.run_id))
    result.per_input[path] = {"transcripts": models.transcripts, "skipped": skipped}
    return Loaded("gtf", release, [target])


def _parse_tasks(spark: SparkSession, path: str, source: str, header, task_plan: dict) -> DataFrame:
    """One Spark task per region (tabix index) or byte range of the file."""
    target = max(2 * parallelism(spark), -(-os.path.getsize(path) // (32 << 20)))
    chunks = plan_chunks(path, header.contigs, target)
    rows = [(i, path, source, json.dumps(c.to_dict()), json.dumps(task_plan), header.header_lines)
            for i, c in enumerate(chunks)]
    plan = spark.createDataFrame(rows, "chunk_id int, path string, kind string, chunk_json string, "
                                       "plan_json string, header_lines int")
    schema = src.output_schema(src.SPECS[source], get_table(ANNOTATIONS).arrow_schema())
    return plan.repartition(max(1, len(rows)), "chunk_id").mapInArrow(
        src.parse_task(schema), from_arrow_schema(schema))


def _report_problems(parsed: DataFrame, path: str, result: JobResult) -> int:
    """Count the rows left out, by reason, and name a few of their lines."""
    problems = parsed.where(F.col("problem").isNotNull())
    counts = problems.groupBy("problem").count().collect()
    examples = problems.select("problem", "line", "raw").limit(EXAMPLES * max(1, len(counts))).collect()
    lines = locate_lines(path, {e.raw for e in examples if e.line is None})
    for c in counts:
        where = [str(e.line or lines.get(e.raw, "?")) for e in examples if e.problem == c.problem]
        result.warnings.append(f"{path}: {c['count']} record(s) skipped: {c.problem} "
                               f"(line {', '.join(where[:EXAMPLES])})")
    return sum(c["count"] for c in counts)


def _dedupe(df: DataFrame, source: str) -> DataFrame:
    """One row per allele when two records normalise to the same one: ClinVar keeps the lowest
    VariationID, gnomAD the PASS site with the most alleles."""
    order = ([F.col("clinvar_id").cast("long").asc_nulls_last()] if source == "clinvar" else
             [(F.col("gnomad_filter") == "PASS").desc_nulls_last(), F.col("gnomad_ac").desc_nulls_last()])
    w = Window.partitionBy("variant_id").orderBy(*order)
    return df.withColumn("_n", F.row_number().over(w)).where(F.col("_n") == 1).drop("_n")


def load_vcf_source(spark: SparkSession, settings: Settings, source: str, path: str, release: str | None,
                    reference: str | None, build: str, result: JobResult, staged: str) -> tuple[str, str]:
    """Parse one ClinVar/gnomAD file in Spark tasks, normalise and keep it as Parquet; returns
    its release and the Parquet's URI."""
    sha = sha256_file(path)
    target = _reference_uri(settings, source, sha, reference, build)
    if (known := _reuse(spark, settings, source, sha, target, release)) is not None:
        return known, target
    header = read_header(path)
    _check_build(path, header.build, build)
    spec = src.SPECS[source]
    task_plan = src.plan(spec, {k: d.number for k, d in header.info.items()})
    _parse_tasks(spark, path, source, header, task_plan).write.mode("overwrite").parquet(f"{staged}/{sha}")
    parsed = spark.read.parquet(f"{staged}/{sha}")
    skipped = _report_problems(parsed, path, result)
    alleles = parsed.where(F.col("problem").isNull()).drop("problem", "raw", "line").withColumn(
        "build", F.lit(build))
    if reference:
        alleles, unchecked = normalise_alleles(alleles, reference)
        if n := unchecked.count():
            result.warnings.append(f"{path}: {n} allele(s) not left-aligned (REF differs from "
                                   f"{reference} or contig not in it); matched as written")
    else:
        alleles = alleles.withColumn("variant_id", variant_id(F.col("build"), F.col("contig"), F.col("pos"),
                                                              F.col("ref"), F.col("alt_allele")))
    _dedupe(alleles, source).select("variant_id", *spec.columns).write.mode("overwrite").parquet(target)
    records = spark.read.parquet(target).count()
    release = release or src.release_of(source, path, header.meta)
    register(spark, settings, _source_row(source, release, build, path, sha, reference,
                                          records, skipped, target, result.run_id))
    result.per_input[path] = {"alleles": records, "skipped": skipped}
    return release, target


def load_sources(spark: SparkSession, settings: Settings, given: dict, releases: dict, reference: str | None,
                 build: str, result: JobResult, staged: str) -> dict[str, Loaded | None]:
    """Each source from its files when given (parsed unless already registered), else its latest
    registered release, else None (its columns stay empty)."""
    out: dict[str, Loaded | None] = {}
    for source, paths in given.items():
        if not paths:
            out[source] = latest(spark, settings, source, build)
            continue
        files = expand_inputs([paths] if isinstance(paths, str) else list(paths),
                              GTF_SUFFIXES if source == "gtf" else VCF_SUFFIXES)
        if source == "gtf":
            if len(files) != 1:
                raise InputError(f"gtf: give one GTF/GFF3 file, found {files}")
            out[source] = load_gtf(spark, settings, files[0], releases.get(source), build, result)
            continue
        found = {f: load_vcf_source(spark, settings, source, f, releases.get(source), reference, build,
                                    result, f"{staged}/{source}") for f in files}
        names = sorted({r for r, _ in found.values()})
        if len(names) > 1:
            raise InputError(f"{source}: files of different releases {names}; annotate with one release")
        out[source] = Loaded(source, names[0], [uri for _, uri in found.values()])
    return out


# --- variant annotations -------------------------------------------------------------------


def variant_spans(variants: DataFrame) -> DataFrame:
    """The reference bases a variant touches: an anchored deletion its deleted bases, an
    anchored insertion the two bases it sits between, anything else its REF."""
    rl, al = F.length("ref"), F.length("alt")
    anchored = (F.substring("ref", 1, 1) == F.substring("alt", 1, 1)) & (rl != al)
    start = F.when(anchored & (rl > al), F.col("pos") + 1).otherwise(F.col("pos"))
    end = F.when(anchored & (rl == 1), F.col("pos") + 1).otherwise(F.col("pos") + rl - 1)
    return variants.select("variant_id", "contig", start.alias("start"), end.alias("end"))


def _binned(df: DataFrame) -> DataFrame:
    bins = F.sequence(F.shiftright("start", BIN_BITS), F.shiftright("end", BIN_BITS))
    return df.withColumn("bin", F.explode(bins))


def gene_hits(spans: DataFrame, regions: DataFrame, genes: DataFrame) -> DataFrame:
    """Per variant: its genes (most severe region class of each over its transcripts) and the
    most severe class overall. A binned interval join: (contig, bin) equality plus overlap."""
    v, r = _binned(spans).alias("v"), _binned(regions).alias("r")
    hits = v.join(r, (F.col("v.contig") == F.col("r.contig")) & (F.col("v.bin") == F.col("r.bin"))
                  & (F.col("r.start") <= F.col("v.end")) & (F.col("r.end") >= F.col("v.start")))
    names = F.array(*[F.lit(c) for c in REGION_CLASSES])
    keys = F.col("v.variant_id").alias("variant_id"), F.col("r.gene_id").alias("gene_id")
    per_gene = hits.groupBy(*keys).agg(  # array_distinct(collect_list) is far cheaper than collect_set
        F.min("r.rank").alias("rank"),
        F.array_sort(F.array_distinct(F.collect_list("r.transcript_id"))).alias("transcript_ids"),
    ).join(genes, "gene_id")
    gene = F.struct("gene_id", "gene_name", "gene_type", "strand",
                    F.element_at(names, F.col("rank") + 1).alias("region_class"), "transcript_ids")
    return per_gene.groupBy("variant_id").agg(
        F.element_at(names, F.min("rank") + 1).alias("region_class"),
        F.sort_array(F.collect_list(gene)).alias("genes"))


def _missing(columns: list[str]) -> list:
    contract = {c.name: c.dtype for c in get_table(ANNOTATIONS).columns}
    return [F.lit(None).cast(contract[c]).alias(c) for c in columns]


def with_genes(spark: SparkSession, rows: DataFrame, gtf: Loaded | None) -> DataFrame:
    if gtf is None:
        return rows.select("*", *_missing(["region_class", "genes", "gtf_release"]))
    regions = spark.read.parquet(*[f"{u}/regions" for u in gtf.parsed_uris])
    genes = spark.read.parquet(*[f"{u}/genes" for u in gtf.parsed_uris])
    hits = gene_hits(variant_spans(rows), regions, genes)
    none = F.array().cast(f"array<{GENE_HIT.simpleString()}>")
    return (rows.join(hits, "variant_id", "left")
            .withColumn("region_class", F.coalesce("region_class", F.lit("intergenic")))
            .withColumn("genes", F.coalesce("genes", none)).withColumn("gtf_release", F.lit(gtf.release)))


def with_source(spark: SparkSession, rows: DataFrame, loaded: Loaded | None, source: str) -> DataFrame:
    """ClinVar or gnomAD columns by exact match on variant_id (same normalisation both sides)."""
    columns = src.SPECS[source].columns
    if loaded is None:
        return rows.select("*", *_missing([*columns, f"{source}_release"]))
    found = spark.read.parquet(*loaded.parsed_uris).select("variant_id", *columns)
    if len(loaded.parsed_uris) > 1:  # each file is deduplicated when loaded; files may overlap
        found = found.dropDuplicates(["variant_id"])
    return rows.join(found, "variant_id", "left").withColumn(f"{source}_release", F.lit(loaded.release))


def with_consequences(spark: SparkSession, settings: Settings, rows: DataFrame, tool: Tool | None,
                      staged: str, result: JobResult) -> DataFrame:
    """Keep each variant's consequence; run the tool (when installed) on those it has not seen."""
    have = (read_table(spark, settings, ANNOTATIONS).where(F.col("consequence_source").isNotNull())
            .select("variant_id", "consequence", "consequence_source"))
    if tool is None:
        log.warning("consequence annotation skipped: neither vep nor snpEff is on PATH")
        result.details["consequence"] = "not installed (vep, snpEff)"
        if not have.limit(1).count():  # nothing to keep: spare the join
            return rows.select("*", *_missing(["consequence", "consequence_source"]))
        return rows.join(have, "variant_id", "left")
    rows = rows.join(have, "variant_id", "left")
    todo = rows.where(F.col("consequence_source").isNull() | (F.col("consequence_source") != tool.label))
    result.details["consequence"] = f"{tool.label}: {(n := todo.count())} variant(s) run"
    if not n:
        return rows
    todo.select("variant_id", "contig", "pos", "ref", "alt").mapInArrow(
        annotate(tool), "variant_id string, consequence string").write.mode("overwrite").parquet(staged)
    new = (spark.read.parquet(staged).dropDuplicates(["variant_id"])
           .select("variant_id", F.col("consequence").alias("new"), F.lit(True).alias("ran")))
    rows = rows.join(new, "variant_id", "left")
    ran = F.coalesce("ran", F.lit(False))
    source = F.when(ran, F.lit(tool.label)).otherwise(F.col("consequence_source"))
    return (rows.withColumn("consequence", F.when(ran, F.col("new")).otherwise(F.col("consequence")))
            .withColumn("consequence_source", source).drop("new", "ran"))


def with_row_meta(df: DataFrame, table: str, run_id: str, now: datetime) -> DataFrame:
    """row_hash over the values (not keys or bookkeeping), run_id and updated_at. Each value
    rides with its null flag, since a hash of several columns skips nulls."""
    contract = get_table(table)
    meta = {c.name for c in DERIVED_ROW}
    parts = []
    for c in contract.columns:
        if c.name not in meta and c.name not in contract.keys:
            value = F.map_entries(c.name) if isinstance(c.dtype, T.MapType) else F.col(c.name)
            parts += [value, F.isnull(c.name)]
    return (df.withColumn("row_hash", F.xxhash64(*parts))
            .withColumn("run_id", F.lit(run_id)).withColumn("updated_at", F.lit(now.replace(tzinfo=None))))


def _stage(spark: SparkSession, settings: Settings, table: str, rows: DataFrame,
           staged: str) -> DataFrame | None:
    """All computed rows, flagged ``_changed`` when the table lacks them with these values; an
    unchanged row keeps the run_id and updated_at it has. Staged, so a Python task feeding
    ``rows`` runs once."""
    contract = get_table(table)
    have = read_table(spark, settings, table).select(
        *contract.keys, "row_hash", F.col("run_id").alias("_run"), F.col("updated_at").alias("_at"))
    flagged = (contract.conform(rows).join(have, [*contract.keys, "row_hash"], "left")
               .withColumn("_changed", F.col("_run").isNull())
               .withColumn("run_id", F.coalesce("_run", "run_id"))
               .withColumn("updated_at", F.coalesce("_at", "updated_at")).drop("_run", "_at"))
    flagged.write.mode("overwrite").parquet(staged)
    return spark.read.parquet(staged) if staging.has_rows(staged) else None


def _groups(counts: list) -> list[list[str]]:
    """Contigs with changed rows, in groups of about ROWS_PER_COMMIT changed rows: a write on
    Sail holds what it writes."""
    groups: list[list[str]] = []
    size = 0
    for r in sorted(counts, key=lambda r: r.contig):
        if not r.changed:
            continue
        if not groups or size + r.changed > ROWS_PER_COMMIT:
            groups.append([])
            size = 0
        groups[-1].append(r.contig)
        size += r.changed
    return groups


def upsert_changed(spark: SparkSession, settings: Settings, table: str, rows: DataFrame, staged: str) -> int:
    """Write only rows that are new or whose values changed (MERGE on the keys); returns how many.

    A whole-contig ``replaceWhere`` overwrite would be faster for a new release that touches
    every row, but Sail 0.7 fails it on any table with an array<struct> column (the nested
    field metadata of the kept rows and the new rows differ in its union).
    """
    flagged = _stage(spark, settings, table, rows, staged)
    if flagged is None:
        return 0
    counts = flagged.groupBy("contig").agg(F.sum(F.col("_changed").cast("long")).alias("changed")).collect()
    total = sum(r.changed or 0 for r in counts)
    if not total:
        return 0
    empty = read_table(spark, settings, table).limit(1).count() == 0
    for group in _groups(counts):
        part = flagged.where(F.col("contig").isin(group) & F.col("_changed")).drop("_changed")
        if empty:
            append(part, settings, table)
        else:
            merge_new(spark, settings, part, table, update=True)
    return total


def annotations(spark: SparkSession, settings: Settings, sources: dict[str, Loaded | None], build: str,
                result: JobResult, staged: str) -> int:
    """silver.variant_annotations for every site of ``build``; returns the rows written."""
    rows = read_table(spark, settings, "silver.variants").where(F.col("build") == build).select(
        "variant_id", "build", "contig", "pos", "ref", "alt")
    rows = with_genes(spark, rows, sources["gtf"])
    rows = with_source(spark, rows, sources["clinvar"], "clinvar")
    rows = with_source(spark, rows, sources["gnomad"], "gnomad")
    rows = with_consequences(spark, settings, rows, find_tool(), f"{staged}/consequence", result)
    rows = with_row_meta(rows, ANNOTATIONS, result.run_id, datetime.now(UTC))
    written = upsert_changed(spark, settings, ANNOTATIONS, rows, f"{staged}/annotations")
    done = read_table(spark, settings, ANNOTATIONS).where(F.col("build") == build)
    counts = done.agg(F.count(F.lit(1)).alias("n"), F.count("clinvar_significance").alias("clinvar"),
                      F.count("gnomad_af").alias("gnomad"),
                      F.count(F.when(F.size("genes") > 0, 1)).alias("in_genes")).collect()[0]
    result.rows_read = result.rows_accepted = counts.n
    result.details.update(variants=counts.n, clinvar_matches=counts.clinvar, gnomad_matches=counts.gnomad,
                          in_genes=counts.in_genes, annotations_written=written,
                          releases={k: v.release if v else None for k, v in sources.items()})
    return written


# --- cohort statistics ---------------------------------------------------------------------


def provinces(spark: SparkSession, settings: Settings) -> DataFrame:
    """center_id -> its provincial center, from the center registry."""
    network = registry(settings)
    pairs = [(c, network.ancestor(c, "provincial")) for c in sorted(network.centers)]
    return spark.createDataFrame(pairs, "center_id string, province string")


def carrier_counts(genotypes: DataFrame) -> DataFrame:
    """Per (variant, source file): carriers by genotype class, allele counts, missing calls."""
    missing = F.size("gt") - F.size(F.array_remove("gt", -1))
    diploid = (F.size("gt") == 2) & (missing == 0)
    g = genotypes.select(
        "variant_id", "source_checksum", "alt_count", (F.size("gt") - missing).alias("called"),
        (missing > 0).cast("long").alias("missing"),
        (diploid & (F.col("alt_count") == 1)).cast("long").alias("het"),
        (diploid & (F.col("alt_count") == 2)).cast("long").alias("hom"))
    return g.groupBy("variant_id", "source_checksum").agg(
        F.count(F.lit(1)).alias("carriers"), F.sum("het").alias("het"), F.sum("hom").alias("hom"),
        F.sum("alt_count").cast("long").alias("ac"), F.sum("called").cast("long").alias("called"),
        F.sum("missing").alias("missing"))


def file_samples(spark: SparkSession, settings: Settings) -> DataFrame:
    """Per source file: its center and how many of its samples are linked to a person."""
    names = read_table(spark, settings, "bronze.vcf_headers").select(
        "source_checksum", "center_id", F.explode("samples").alias("sample_id"))
    linked = read_table(spark, settings, "silver.samples").select("center_id", "sample_id").distinct()
    return names.join(linked, ["center_id", "sample_id"]).groupBy("source_checksum", "center_id").agg(
        F.count(F.lit(1)).alias("n_samples"))


def coverage(spark: SparkSession, settings: Settings, variants: DataFrame, carriers: DataFrame) -> DataFrame:
    """(variant, source file) for every cleaned file that reports the site: a record at its
    position, or a carrier of it (an indel left-aligned away from its record's position)."""
    cleaned = (read_table(spark, settings, "ops.ingest_runs")
               .where((F.col("job") == CLEANED_BY) & (F.col("status") == "succeeded"))
               .select(F.explode("input_checksums").alias("source_checksum")).distinct())
    records = (read_table(spark, settings, "bronze.vcf_variants").select("source_checksum", "contig", "pos")
               .join(cleaned, "source_checksum", "left_semi").distinct())
    at_position = variants.join(records, ["contig", "pos"]).select("variant_id", "source_checksum")
    return at_position.union(carriers.select("variant_id", "source_checksum")).distinct()


def scoped_counts(per_file: DataFrame, province: DataFrame) -> DataFrame:
    """Sum the per-file counts over all files ('all') and over each province's files."""
    f = per_file.join(province, "center_id", "left")
    scoped = f.withColumn("scope", F.lit("all")).unionByName(
        f.where(F.col("province").isNotNull()).withColumn("scope", F.col("province")))
    s = scoped.groupBy("variant_id", "scope").agg(
        F.count(F.lit(1)).alias("files"), F.sum("n_samples").alias("n_samples"),
        F.sum("hom_ref").alias("n_hom_ref"), F.sum("het").alias("n_het"), F.sum("hom").alias("n_hom_alt"),
        F.sum(F.col("carriers") - F.col("het") - F.col("hom")).alias("n_other"),
        F.sum("ac").alias("ac"), F.sum("an").alias("an"), F.sum("missing").alias("missing"))
    return (s.withColumn("af", F.when(F.col("an") > 0, F.col("ac") / F.col("an")))
            .withColumn("call_rate", F.when(F.col("n_samples") > 0,
                                            (F.col("n_samples") - F.col("missing")) / F.col("n_samples")))
            .drop("missing"))


def _with_hwe(batches):
    for b in batches:
        p = hwe_exact_p(b.column("n_hom_ref").to_numpy(zero_copy_only=False),
                        b.column("n_het").to_numpy(zero_copy_only=False),
                        b.column("n_hom_alt").to_numpy(zero_copy_only=False))
        yield pa.RecordBatch.from_arrays([*b.columns, pa.array(p, mask=np.isnan(p))],
                                         names=[*b.schema.names, "hwe_p"])


def cohort_stats(spark: SparkSession, settings: Settings, result: JobResult, staged: str) -> int:
    """silver.variant_stats: AC, AN, AF, call rate and HWE p per site, overall and per province.

    silver.genotypes holds non-reference calls only, so a file's other samples are counted as
    homozygous reference at every site the file reports, as a multi-sample VCF means them.
    """
    variants = read_table(spark, settings, "silver.variants").select("variant_id", "contig", "pos")
    genotypes = read_table(spark, settings, "silver.genotypes")
    carriers = carrier_counts(genotypes)
    per_file = (coverage(spark, settings, variants, carriers)
                .join(file_samples(spark, settings), "source_checksum")
                .join(carriers, ["variant_id", "source_checksum"], "left")
                .fillna(0, subset=["carriers", "het", "hom", "ac", "called", "missing"]))
    hom_ref = F.greatest(F.col("n_samples") - F.col("carriers"), F.lit(0))
    per_file = per_file.withColumn("hom_ref", hom_ref).withColumn("an", 2 * hom_ref + F.col("called"))
    counts = scoped_counts(per_file, provinces(spark, settings)).join(variants, "variant_id")
    schema = T.StructType([*counts.schema.fields, T.StructField("hwe_p", T.DoubleType())])
    rows = with_row_meta(counts.mapInArrow(_with_hwe, schema), STATS, result.run_id, datetime.now(UTC))
    written = upsert_changed(spark, settings, STATS, rows, f"{staged}/stats")
    result.details["stats_written"] = written
    return written


def run(spark: SparkSession, settings: Settings, gtf: str | None = None,
        clinvar: str | list[str] | None = None, gnomad: str | list[str] | None = None,
        reference: str | None = None, build: str = "GRCh38",
        gtf_release: str | None = None, clinvar_release: str | None = None,
        gnomad_release: str | None = None, stats: bool = True) -> JobResult:
    """Annotate the ``build`` sites of silver.variants and recompute the cohort statistics.

    ``gtf``, ``clinvar`` and ``gnomad`` name files (gnomAD: one or more, e.g. per chromosome, or
    a folder); a source not given uses its latest registered release. ``reference`` (FASTA with
    .fai) left-aligns the ClinVar and gnomAD alleles as clean_variants did silver's.
    """
    given = {"gtf": gtf, "clinvar": clinvar, "gnomad": gnomad}
    releases = {"gtf": gtf_release, "clinvar": clinvar_release, "gnomad": gnomad_release}
    params = {**given, "reference": reference, "build": build, "releases": releases, "stats": stats}
    with track_run(spark, settings, JOB, params) as result:
        staged = f"{settings.lake_root}/_staging/annotate/{result.run_id}"
        clock, seconds = time.perf_counter(), result.details.setdefault("seconds", {})

        def lap(step: str) -> None:
            nonlocal clock
            seconds[step], clock = round(time.perf_counter() - clock, 2), time.perf_counter()

        try:
            sources = load_sources(spark, settings, given, releases, reference, build, result,
                                   f"{staged}/sources")
            result.inputs = sorted(result.per_input)
            lap("sources")
            written = annotations(spark, settings, sources, build, result, staged)
            lap("annotations")
            if stats:
                written += cohort_stats(spark, settings, result, staged)
                lap("stats")
            result.rows_written = written
        finally:
            staging.clear(f"{settings.lake_root}/_staging/annotate", result.run_id)
    return result


def _args(p) -> None:
    p.add_argument("--gtf", help="GENCODE/Ensembl GTF or GFF3 (plain or gzipped)")
    p.add_argument("--clinvar", help="ClinVar VCF (clinvar.vcf.gz with its .tbi)")
    p.add_argument("--gnomad", nargs="+", help="gnomAD sites VCF(s) or a folder of them")
    p.add_argument("--reference", help="FASTA (with .fai) to left-align ClinVar/gnomAD alleles")
    p.add_argument("--build", default="GRCh38", help="which silver.variants build to annotate")
    for s in ("gtf", "clinvar", "gnomad"):
        p.add_argument(f"--{s}-release", dest=f"{s}_release", help=f"{s} release when the file does not say")
    p.add_argument("--no-stats", dest="stats", action="store_false", help="skip silver.variant_stats")


if __name__ == "__main__":
    main_for(run, _args, __doc__)
