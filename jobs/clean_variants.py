"""Bronze VCF records to ``silver.variants`` (biallelic sites) and ``silver.genotypes``.

Multiallelic records are split one row per ALT, as ``bcftools norm -m-any`` does: in the split
genotype the other ALT alleles become REF (0) and AD keeps REF and this ALT. Only sources not
yet cleaned (by a succeeded run of this job) are processed, and writes MERGE on the
contract keys, so re-runs add nothing.
"""

from __future__ import annotations

import logging

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.common import main_for
from jobs.ingest_vcf import calls_staging_root, clear_staging, staged_calls
from omicslake.catalog import path_ref, read_table
from omicslake.runs import JobResult, track_run
from omicslake.settings import Settings
from omicslake.writes import append, count_where, merge_new

JOB = "clean_variants"
log = logging.getLogger(__name__)


def variant_id(build: Column, contig: Column, pos: Column, ref: Column, alt: Column) -> Column:
    return F.concat_ws(":", F.coalesce(build, F.lit("NA")), contig, pos.cast("string"), ref, alt)


def split_alleles(records: DataFrame) -> DataFrame:
    """One row per (record, ALT) with ``alt_index`` (1-based); symbolic ALTs are left out."""
    exploded = records.select("*", F.posexplode("alt").alias("alt_pos", "alt_allele"))
    return (
        exploded.withColumn("alt_index", F.col("alt_pos") + 1)
        .where(~F.col("alt_allele").startswith("<") & (F.col("alt_allele") != "*"))
        .withColumn("variant_id", variant_id(F.col("build"), F.col("contig"), F.col("pos"),
                                             F.col("ref"), F.col("alt_allele")))
    )


NORM_SCHEMA = ("contig string, pos long, ref string, alt_allele string, n_pos long, n_ref string, "
               "n_alt string, problem string")


def _left_align_batches(reference: str):
    def run(batches):
        import pyarrow as pa

        from connectors.reference import left_align, open_reference

        fa = open_reference(reference)
        for batch in batches:
            rows = batch.to_pylist()
            for r in rows:
                r["n_pos"], r["n_ref"], r["n_alt"], r["problem"] = left_align(
                    fa, r["contig"], r["pos"], r["ref"], r["alt_allele"])
            yield pa.RecordBatch.from_pylist(rows, schema=pa.schema([
                ("contig", pa.string()), ("pos", pa.int64()), ("ref", pa.string()),
                ("alt_allele", pa.string()), ("n_pos", pa.int64()), ("n_ref", pa.string()),
                ("n_alt", pa.string()), ("problem", pa.string())]))
    return run


def normalise_alleles(split: DataFrame, reference: str) -> tuple[DataFrame, DataFrame]:
    """Left-align and trim split alleles against ``reference`` (``bcftools norm -f``).

    Only distinct multi-base alleles go through Python; SNVs are already normal. Returns the
    normalised rows and the sites that could not be checked (REF mismatch, unknown contig).
    """
    keys = ["contig", "pos", "ref", "alt_allele"]
    candidates = (split.select(*keys).where((F.length("ref") > 1) | (F.length("alt_allele") > 1))
                  .dropDuplicates(keys))
    mapped = candidates.mapInArrow(_left_align_batches(reference), NORM_SCHEMA)
    joined = split.join(mapped, keys, "left")
    out = (
        joined.withColumn("pos", F.coalesce("n_pos", "pos"))
        .withColumn("ref", F.coalesce("n_ref", "ref"))
        .withColumn("alt_allele", F.coalesce("n_alt", "alt_allele"))
        .withColumn("variant_id", variant_id(F.col("build"), F.col("contig"), F.col("pos"),
                                             F.col("ref"), F.col("alt_allele")))
        .drop("n_pos", "n_ref", "n_alt", "problem")
    )
    return out, mapped.where(F.col("problem").isNotNull())


def sites(split: DataFrame) -> DataFrame:
    return split.select(
        "variant_id", F.coalesce("build", F.lit("NA")).alias("build"), "contig", "pos", "ref",
        F.col("alt_allele").alias("alt"), F.col("id").alias("rsid"),
        F.col("ingest_run_id").alias("first_seen_run_id"),
    ).dropDuplicates(["variant_id"])


def split_genotypes(split: DataFrame) -> DataFrame:
    """Per-sample calls for each split ALT, recoded to 0/1 alleles; non-reference calls only."""
    carriers = F.filter("genotypes", lambda c: F.exists(c["gt"], lambda a: a > 0))
    g = split.select(
        "variant_id", "contig", "pos", "alt_index", "center_id", "source_checksum",
        "ingest_run_id", F.explode(carriers).alias("g"),
    )
    i = F.col("alt_index")
    # Sail cannot read an outer column inside a lambda, so the ALT index rides along per element.
    pairs = F.arrays_zip(F.col("g.gt").alias("a"), F.array_repeat(i, F.size("g.gt")).alias("k"))
    gt = F.transform(
        pairs, lambda x: F.when(x["a"] < 0, -1).when(x["a"] == x["k"], 1).otherwise(0)
    )
    ad = F.when(
        F.col("g.ad").isNotNull() & (F.size("g.ad") > i),
        F.array(F.element_at("g.ad", 1), F.element_at("g.ad", i + 1)),
    )
    return (
        g.select(
            "variant_id", "contig", "pos", "center_id", "source_checksum", "ingest_run_id",
            F.col("g.sample_index").alias("sample_index"), gt.alias("gt"),
            F.col("g.phased").alias("phased"), F.col("g.dp").alias("dp"),
            F.col("g.gq").alias("gq"), ad.alias("ad"),
        )
        .withColumn("alt_count", F.size(F.filter("gt", lambda a: a == 1)))
        .where(F.col("alt_count") > 0)
    )


def sample_names(headers: DataFrame) -> DataFrame:
    """(source_checksum, sample_index, sample_id) from the stored VCF headers."""
    return headers.select("source_checksum", F.posexplode("samples").alias("sample_index", "sample_id"))


def name_samples(genotypes: DataFrame, names: DataFrame) -> DataFrame:
    return genotypes.join(names, ["source_checksum", "sample_index"], "inner").drop("sample_index")


def link_persons(genotypes: DataFrame, samples: DataFrame) -> DataFrame:
    s = samples.select("center_id", "sample_id", "person_id")
    return (genotypes.join(s, ["center_id", "sample_id"], "inner")
            .withColumn("person_bucket", F.substring("person_id", 2, 1)))  # P + hex digest


def _in(column: str, values: list[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def batch_samples(spark: SparkSession, settings: Settings, todo: list[str]) -> list[tuple[str, list[str]]]:
    """(center, sample names) of each source, from bronze.vcf_headers."""
    rows = spark.sql(
        f"SELECT center_id, samples FROM {path_ref(settings, 'bronze.vcf_headers')} "
        f"WHERE {_in('source_checksum', todo)}"
    ).collect()
    return [(r.center_id, list(r.samples)) for r in rows if r.samples]


GENOTYPES_PER_SLICE = 8_000_000  # bronze genotypes exploded per engine-path slice
STAGED_ROWS_PER_COMMIT = 2_000_000  # staged calls per write; bounds the partitioning shuffle


def needs_merge(spark: SparkSession, settings: Settings, todo: list[str]) -> bool:
    """Whether calls of these sources (or of their samples) may already be in silver.

    Normally none are, and the calls are appended, which never rewrites existing files. An
    interrupted earlier run, or a new file that re-sends samples already in silver, makes the
    write a MERGE on the contract keys instead, which skips what is there.
    """
    return bool(count_where(spark, settings, "silver.genotypes", _in("source_checksum", todo))) or any(
        count_where(spark, settings, "silver.genotypes",
                    f"center_id = {center!r} AND {_in('sample_id', samples)}")
        for center, samples in batch_samples(spark, settings, todo)
    )


def plan_slices(spark: SparkSession, settings: Settings, todo: list[str], n_samples: int) -> list[str]:
    """Position ranges of about GENOTYPES_PER_SLICE calls each, so memory does not grow with
    the batch: each slice is exploded, linked and written on its own."""
    rows = spark.sql(
        f"SELECT contig, min(pos) AS lo, max(pos) AS hi, count(*) AS n FROM "
        f"{path_ref(settings, 'bronze.vcf_variants')} WHERE {_in('source_checksum', todo)} GROUP BY contig"
    ).collect()
    per = max(1, GENOTYPES_PER_SLICE // max(1, n_samples))
    out = []
    for r in sorted(rows, key=lambda r: r.contig):
        k = max(1, -(-r.n // per))
        step = (r.hi - r.lo) // k + 1
        out += [f"contig = {r.contig!r} AND pos >= {r.lo + i * step} AND pos < {r.lo + (i + 1) * step}"
                for i in range(k)]
    return out


def pending_checksums(spark: SparkSession, settings: Settings) -> list[str]:
    q = f"""
        SELECT DISTINCT source_checksum AS c FROM {path_ref(settings, 'bronze.vcf_variants')}
        WHERE source_checksum NOT IN (
            SELECT explode(input_checksums) FROM {path_ref(settings, 'ops.ingest_runs')}
            WHERE job = '{JOB}' AND status = 'succeeded')
    """
    return sorted(r.c for r in spark.sql(q).collect())


def _groups(files: list[str]) -> list[list[str]]:
    """Staged files in groups of about STAGED_ROWS_PER_COMMIT rows (read from their footers)."""
    import pyarrow.parquet as pq
    from pyarrow import fs as pafs

    groups, current, rows = [], [], 0
    for f in files:
        fs, path = pafs.FileSystem.from_uri(f)
        n = pq.ParquetFile(path, filesystem=fs).metadata.num_rows
        if current and rows + n > STAGED_ROWS_PER_COMMIT:
            groups.append(current)
            current, rows = [], 0
        current.append(f)
        rows += n
    return [*groups, current] if current else groups


def write_from_bronze(spark: SparkSession, settings: Settings, bronze: DataFrame, todo: list[str],
                      reference: str | None, write, result: JobResult) -> None:
    """The engine path: explode bronze genotypes slice by slice (any source, any engine)."""
    samples = read_table(spark, settings, "silver.samples")
    names = sample_names(read_table(spark, settings, "bronze.vcf_headers")
                         .where(F.col("source_checksum").isin(todo)))
    n_samples = max((len(x) for _, x in batch_samples(spark, settings, todo)), default=1)
    slices = plan_slices(spark, settings, todo, n_samples)
    for i, where in enumerate(slices, start=1):
        log.info("genotypes slice %d/%d: %s", i, len(slices), where)
        part = split_alleles(bronze.where(where))
        if reference:
            part, _ = normalise_alleles(part, reference)
        write(link_persons(name_samples(split_genotypes(part), names), samples))
    result.details["slices"] = len(slices)


def run(spark: SparkSession, settings: Settings, reference: str | None = None) -> JobResult:
    """Clean every bronze source not yet in silver; ``reference`` left-aligns indels."""
    with track_run(spark, settings, JOB, {"reference": reference}) as result:
        todo = pending_checksums(spark, settings)
        result.checksums = todo
        result.inputs = todo
        if not todo:
            return result
        bronze = read_table(spark, settings, "bronze.vcf_variants").where(
            F.col("source_checksum").isin(todo)
        )
        split = split_alleles(bronze)
        if reference:
            split, problems = normalise_alleles(split, reference)
            result.details["unnormalised_sites"] = problems.count()
        before_v = read_table(spark, settings, "silver.variants").count()
        merge_new(spark, settings, sites(split), "silver.variants")
        new_v = read_table(spark, settings, "silver.variants").count() - before_v
        merge = needs_merge(spark, settings, todo)
        write = (lambda df: merge_new(spark, settings, df, "silver.genotypes")) if merge else (
            lambda df: append(df, settings, "silver.genotypes"))
        staged = {} if reference else {c: f for c in todo if (f := staged_calls(settings, c)) is not None}
        for i, files in enumerate(_groups([f for c in staged for f in staged[c]]), start=1):
            log.info("staged calls, group %d: %d file(s)", i, len(files))
            write(spark.read.parquet(*files))
        rest = [c for c in todo if c not in staged]
        if rest:
            write_from_bronze(spark, settings, bronze.where(F.col("source_checksum").isin(rest)), rest,
                              reference, write, result)
        for c in todo:
            clear_staging(settings, c, calls_staging_root(settings))
        result.details["staged_sources"] = len(staged)
        new_g = count_where(spark, settings, "silver.genotypes", _in("source_checksum", todo))
        result.rows_read = count_where(spark, settings, "bronze.vcf_variants", _in("source_checksum", todo))
        result.rows_accepted = result.rows_read
        result.rows_written = new_v + new_g
        result.details.update(new_variants=new_v, new_genotypes=new_g, sources=len(todo))
    return result


if __name__ == "__main__":
    main_for(run, lambda p: p.add_argument("--reference", help="FASTA (with .fai) to left-align indels"),
             __doc__)
