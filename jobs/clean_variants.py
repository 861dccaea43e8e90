"""Bronze VCF records to ``silver.variants`` (biallelic sites) and ``silver.genotypes``, their
symbolic and breakend alleles to ``silver.structural_variants``, and reference-only records
(gVCF blocks, ``ALT=.``) to ``silver.reference_blocks`` (``connectors.alleles`` says which).

Multiallelic records are split one row per ALT, as ``bcftools norm -m-any`` does: in the split
genotype the other ALT alleles become REF (0) and AD keeps REF and this ALT. Only sources not
yet cleaned (by a succeeded run of this job) are processed, and writes MERGE on the
contract keys, so re-runs add nothing.
"""

from __future__ import annotations

import logging

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from connectors.alleles import (
    BREAKEND_MATE,
    REFERENCE,
    STRUCTURAL,
    reference_record,
    sequence_allele,
    structural_allele,
)
from connectors.contigs import normalised_contig
from connectors.normalise import normalise_alleles, variant_id
from connectors.vcf_carriers import clear_staged_calls, staged_calls
from omicslake.catalog import read_table
from omicslake.runs import JobResult, main_for, track_run
from omicslake.settings import Settings
from omicslake.writes import append, count_rows, merge_new

JOB = "clean_variants"
log = logging.getLogger(__name__)


def split_alleles(records: DataFrame, keep=sequence_allele) -> DataFrame:
    """One row per (record, ALT) with ``alt_index`` (1-based), for the ALTs ``keep`` accepts:
    sequence alleles by default (symbolic, breakend and ``*`` ALTs are left out)."""
    exploded = records.select("*", F.posexplode("alt").alias("alt_pos", "alt_allele"))
    return (
        exploded.withColumn("alt_index", F.col("alt_pos") + 1)
        .where(keep(F.col("alt_allele")))
        .withColumn("variant_id", variant_id(F.col("build"), F.col("contig"), F.col("pos"),
                                             F.col("ref"), F.col("alt_allele")))
    )


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


def _info(key: str) -> Column:
    return F.get_json_object("info_json", f"$.{key}")


def _per_alt(raw: Column, dtype: str) -> Column:
    """An INFO value for this ALT: element ``alt_index`` of a list (Number=A or .), or the scalar."""
    as_list = F.from_json(raw, f"array<{dtype}>")
    k = F.col("alt_index")
    return F.when(raw.startswith("["), F.when(F.size(as_list) >= k, F.element_at(as_list, k))).otherwise(
        raw.try_cast(dtype))


def _bnd_orientation(alt: Column) -> Column:
    return (F.when(alt.startswith("["), "[p[t").when(alt.startswith("]"), "]p]t")
            .when(alt.endswith("["), "t[p[").when(alt.endswith("]"), "t]p]")
            .when(alt.startswith("."), ".t").when(alt.endswith("."), "t."))


def _svtype(alt: Column) -> Column:
    derived = (F.when(alt.rlike("^<CN[0-9]+>$"), "CNV")
               .when(alt.startswith("<"), F.regexp_extract(alt, "^<([^:>]+)", 1)).otherwise("BND"))
    return F.coalesce(_per_alt(_info("SVTYPE"), "string"), derived)


def sv_id(build: Column, contig: Column, pos: Column, end: Column, ref: Column, alt: Column) -> Column:
    return F.concat_ws(":", F.coalesce(build, F.lit("NA")), contig, pos.cast("string"), end.cast("string"),
                       ref, alt)


def sv_alleles(records: DataFrame) -> DataFrame:
    """One row per symbolic or breakend ALT, keyed by ``variant_id`` = its sv_id."""
    split = split_alleles(records, structural_allele)
    return split.withColumn("variant_id", sv_id(F.col("build"), F.col("contig"), F.col("pos"), F.col("end"),
                                                F.col("ref"), F.col("alt_allele")))


def sv_sites(alleles: DataFrame) -> DataFrame:
    """SV attributes from INFO and from the allele itself (CNn, breakend mate and orientation)."""
    alt = F.col("alt_allele")
    mate_contig = F.regexp_extract(alt, BREAKEND_MATE, 1)
    mate_pos = F.regexp_extract(alt, BREAKEND_MATE, 2)
    return alleles.select(
        F.col("variant_id").alias("sv_id"), F.coalesce("build", F.lit("NA")).alias("build"), "contig",
        "pos", "end", "ref", alt.alias("alt"), F.col("id").alias("vcf_id"), _svtype(alt).alias("svtype"),
        _per_alt(_info("SVLEN"), "bigint").alias("svlen"),
        F.from_json(_info("CIPOS"), "array<int>").alias("cipos"),
        F.from_json(_info("CIEND"), "array<int>").alias("ciend"),
        F.when(alt.rlike("^<CN[0-9]+>$"), F.regexp_extract(alt, "^<CN([0-9]+)>$", 1).cast("int"))
        .alias("allele_cn"),
        _per_alt(_info("MATEID"), "string").alias("mate_id"),
        F.when(mate_contig != "", normalised_contig(mate_contig)).alias("mate_contig"),
        F.when(mate_pos != "", mate_pos.cast("bigint")).alias("mate_pos"),
        _bnd_orientation(alt).alias("bnd_orientation"), "qual", "filter", "center_id", "source_checksum",
        "ingest_run_id",
    ).dropDuplicates(["sv_id", "center_id", "source_checksum"])


CARRIER_FIELDS = ("sample_id", "person_id", "gt", "phased", "gq", "dp")


def structural_variants(records: DataFrame, names: DataFrame, samples: DataFrame) -> DataFrame:
    """silver.structural_variants rows: each SV allele with the persons carrying it."""
    alleles = sv_alleles(records)
    calls = link_persons(name_samples(split_genotypes(alleles), names), samples)
    carriers = calls.groupBy(F.col("variant_id").alias("sv_id"), "center_id", "source_checksum").agg(
        F.sort_array(F.collect_list(F.struct(*CARRIER_FIELDS))).alias("carriers"))
    return sv_sites(alleles).join(carriers, ["sv_id", "center_id", "source_checksum"], "left")


def reference_calls(records: DataFrame, names: DataFrame, samples: DataFrame) -> DataFrame:
    """silver.reference_blocks rows: the samples called homozygous reference on reference-only
    records (every allele 0; a no-call is not reference)."""
    hom_ref = F.filter("genotypes", lambda g: (F.size(g["gt"]) > 0) & F.forall(g["gt"], lambda a: a == 0))
    calls = records.where(reference_record(F.col("alt"))).select(
        "build", "contig", F.col("pos").alias("start"), "end", "center_id", "source_checksum",
        "ingest_run_id", F.explode(hom_ref).alias("g"),
    ).select("*", F.col("g.sample_index").alias("sample_index"), F.col("g.gq").alias("gq"),
             F.col("g.dp").alias("dp")).drop("g")
    return link_persons(name_samples(calls, names), samples)


def sources_with(headers: DataFrame, todo: list[str], destination: str) -> list[str]:
    """Sources whose ingest counted records for ``destination``; sources ingested before the
    count existed are included, so nothing is missed."""
    rows = (headers.where(F.col("source_checksum").isin(todo))
            .select("source_checksum", F.col("records_by_destination")[destination].alias("n"),
                    F.col("records_by_destination").isNull().alias("unknown")).collect())
    return sorted(r.source_checksum for r in rows if r.unknown or (r.n or 0) > 0)


def writer_for(spark: SparkSession, settings: Settings, table: str, sources: list[str]):
    """Append when none of these sources is in ``table`` yet (an interrupted run may have left
    some), else MERGE on the table's keys, which skips what is there."""
    if count_rows(spark, settings, table, F.col("source_checksum").isin(sources)):
        return lambda df: merge_new(spark, settings, df, table)
    return lambda df: append(df, settings, table)


def write_structural_and_reference(spark: SparkSession, settings: Settings, bronze: DataFrame,
                                   todo: list[str], result: JobResult) -> None:
    """The SV and reference-evidence tables, only for sources that have such records."""
    headers = read_table(spark, settings, "bronze.vcf_headers")
    names = sample_names(headers.where(F.col("source_checksum").isin(todo)))
    samples = read_table(spark, settings, "silver.samples")
    sv, ref = sources_with(headers, todo, STRUCTURAL), sources_with(headers, todo, REFERENCE)
    if sv:
        rows = structural_variants(bronze.where(F.col("source_checksum").isin(sv)), names, samples)
        writer_for(spark, settings, STRUCTURAL, sv)(rows)
    if ref:
        write = writer_for(spark, settings, REFERENCE, ref)
        n_samples = max((len(x) for _, x in batch_samples(spark, settings, ref)), default=1)
        for where in plan_slices(spark, settings, ref, n_samples):
            write(reference_calls(bronze.where(F.col("source_checksum").isin(ref)).where(where), names,
                                  samples))
    result.details.update(
        structural_variants=count_rows(spark, settings, STRUCTURAL, F.col("source_checksum").isin(todo)),
        reference_blocks=count_rows(spark, settings, REFERENCE, F.col("source_checksum").isin(todo)))


def batch_samples(spark: SparkSession, settings: Settings, todo: list[str]) -> list[tuple[str, list[str]]]:
    """(center, sample names) of each source, from bronze.vcf_headers."""
    rows = read_table(spark, settings, "bronze.vcf_headers").where(
        F.col("source_checksum").isin(todo)).select("center_id", "samples").collect()
    return [(r.center_id, list(r.samples)) for r in rows if r.samples]


GENOTYPES_PER_SLICE = 8_000_000  # bronze genotypes exploded per engine-path slice
STAGED_ROWS_PER_COMMIT = 2_000_000  # staged calls per write; bounds the partitioning shuffle


def needs_merge(spark: SparkSession, settings: Settings, todo: list[str]) -> bool:
    """Whether calls of these sources (or of their samples) may already be in silver.

    Normally none are, and the calls are appended, which never rewrites existing files. An
    interrupted earlier run, or a new file that re-sends samples already in silver, makes the
    write a MERGE on the contract keys instead, which skips what is there.
    """
    return bool(count_rows(spark, settings, "silver.genotypes", F.col("source_checksum").isin(todo))) or any(
        count_rows(spark, settings, "silver.genotypes",
                   (F.col("center_id") == center) & F.col("sample_id").isin(samples))
        for center, samples in batch_samples(spark, settings, todo)
    )


def plan_slices(spark: SparkSession, settings: Settings, todo: list[str], n_samples: int) -> list[Column]:
    """Position ranges of about GENOTYPES_PER_SLICE calls each, so memory does not grow with
    the batch: each slice is exploded, linked and written on its own."""
    rows = (read_table(spark, settings, "bronze.vcf_variants").where(F.col("source_checksum").isin(todo))
            .groupBy("contig").agg(F.min("pos").alias("lo"), F.max("pos").alias("hi"),
                                   F.count(F.lit(1)).alias("n")).collect())
    per = max(1, GENOTYPES_PER_SLICE // max(1, n_samples))
    out = []
    for r in sorted(rows, key=lambda r: r.contig):
        k = max(1, -(-r.n // per))
        step = (r.hi - r.lo) // k + 1
        out += [(F.col("contig") == r.contig) & (F.col("pos") >= r.lo + i * step)
                & (F.col("pos") < r.lo + (i + 1) * step) for i in range(k)]
    return out


def pending_checksums(spark: SparkSession, settings: Settings) -> list[str]:
    done = (read_table(spark, settings, "ops.ingest_runs")
            .where((F.col("job") == JOB) & (F.col("status") == "succeeded"))
            .select(F.explode("input_checksums").alias("source_checksum")))
    bronze = read_table(spark, settings, "bronze.vcf_variants").select("source_checksum").distinct()
    return sorted(r.source_checksum for r in bronze.join(done, "source_checksum", "left_anti").collect())


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
        write_structural_and_reference(spark, settings, bronze, todo, result)
        for c in todo:
            clear_staged_calls(settings, c)
        result.details["staged_sources"] = len(staged)
        of_batch = F.col("source_checksum").isin(todo)
        new_g = count_rows(spark, settings, "silver.genotypes", of_batch)
        result.rows_read = count_rows(spark, settings, "bronze.vcf_variants", of_batch)
        result.rows_accepted = result.rows_read
        result.rows_written = new_v + new_g
        result.details.update(new_variants=new_v, new_genotypes=new_g, sources=len(todo))
    return result


if __name__ == "__main__":
    main_for(run, lambda p: p.add_argument("--reference", help="FASTA (with .fai) to left-align indels"),
             __doc__)
