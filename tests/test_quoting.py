"""Values with quotes and backslashes land and read back unchanged: no SQL text is built from them."""

import subprocess

from inputs import hl7_message
from pyspark.sql import functions as F

ODD = "a'b\"c`d\\e"


def test_odd_sample_id_lands_and_reruns_without_duplicates(fresh_lake, tmp_path):
    from jobs import clean_variants, ingest_vcf

    spark, settings = fresh_lake
    vcf = tmp_path / "odd.vcf"
    vcf.write_text(
        "##fileformat=VCFv4.2\n##contig=<ID=chr1,length=1000>\n"
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
        f"#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t{ODD}\tplain\n"
        "chr1\t100\t.\tA\tG\t50\tPASS\t.\tGT\t0/1\t1/1\n"
        "chr1\t200\t.\tC\tT\t50\tPASS\t.\tGT\t1/1\t0/0\n")
    subprocess.run(["bgzip", "-f", str(vcf)], check=True)
    manifest = tmp_path / "manifest.tsv"
    manifest.write_text(f"sample_id\tpatient_id\n{ODD}\tMRN'1\nplain\tMRN2\n")
    for _ in range(2):
        ingest_vcf.run(spark, settings, [f"{vcf}.gz"], "CNT-S1A", str(manifest))
        clean_variants.run(spark, settings)
    genotypes = spark.read.format("delta").load(f"{settings.lake_root}/silver/genotypes")
    odd = genotypes.where(F.col("sample_id") == ODD).collect()
    assert sorted(r.variant_id.split(":")[2] for r in odd) == ["100", "200"]
    assert genotypes.count() == 3
    samples = spark.read.format("delta").load(f"{settings.lake_root}/silver/samples")
    assert sorted(r.sample_id for r in samples.collect()) == sorted([ODD, "plain"])


def test_odd_hl7_control_id_lands_once(fresh_lake, tmp_path):
    from jobs import build_clinical, ingest_hl7

    spark, settings = fresh_lake
    control = "Q'\"`\\E\\1"  # HL7 writes a backslash as \E\
    path = tmp_path / "odd.hl7"
    path.write_bytes(hl7_message(control))
    for _ in range(2):
        r = ingest_hl7.run(spark, settings, [str(path)], "CNT-S1A")
        build_clinical.run(spark, settings, [r.run_id])
    bronze = spark.read.format("delta").load(f"{settings.lake_root}/bronze/hl7_messages").collect()
    assert len(bronze) == 1 and bronze[0].message_control_id in (control, "Q'\"`\\1")
    observations = spark.read.format("delta").load(f"{settings.lake_root}/silver/observations")
    assert observations.count() > 0
    records = sorted(r.source_record for r in observations.collect())
    assert records and all(r.startswith(bronze[0].message_control_id + " OBX ") for r in records)
    assert len(records) == len(set(records))  # the re-run added no rows
