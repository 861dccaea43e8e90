"""One allele normaliser for every table that is matched on alleles.

``silver.variants`` (``jobs.clean_variants``) and the annotation sources (ClinVar, gnomAD in
``jobs.annotate_variants``) go through the same left-align-and-trim as ``bcftools norm -f``
(``connectors.reference``), so an indel written differently by two callers still matches.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F


def variant_id(build: Column, contig: Column, pos: Column, ref: Column, alt: Column) -> Column:
    return F.concat_ws(":", F.coalesce(build, F.lit("NA")), contig, pos.cast("string"), ref, alt)


NORM_SCHEMA = ("contig string, pos long, ref string, alt_allele string, n_pos long, n_ref string, "
               "n_alt string, problem string")


def _left_align_batches(reference: str):
    def run(batches):
        import pyarrow as pa

        from connectors.reference import Reference, left_align

        fa = Reference(reference)  # one handle per task: pysam's FASTA handle is not thread-safe
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

    ``split`` has ``build, contig, pos, ref, alt_allele``. Only distinct multi-base alleles go
    through Python; SNVs are already normal. Returns the normalised rows (``variant_id``
    recomputed) and the sites that could not be checked (REF mismatch, unknown contig).
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
