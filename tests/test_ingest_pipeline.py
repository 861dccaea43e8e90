import pytest

from jobs import build_cohorts, clean_variants, ingest_vcf
from omicslake.demo_data import make_demo_inputs, make_vcf
from omicslake.errors import InputError


def _counts(spark, *tables):
    return {t: spark.table(t).count() for t in tables}


DATA_TABLES = ("bronze.vcf_variants", "quarantine.vcf", "silver.variants", "silver.genotypes",
               "silver.samples", "gold.cohort")


def test_ingest_counts_quarantine_and_idempotency(fresh_lake, tmp_path):
    spark, s = fresh_lake
    b = make_demo_inputs(tmp_path / "in", samples_per_center=4, sites=60)[0]
    r = ingest_vcf.run(spark, s, [str(b.vcf)], b.center_id, str(b.manifest))
    assert (r.rows_read, r.rows_accepted, r.rows_quarantined) == (61, 60, 1)
    assert r.rows_read == r.rows_accepted + r.rows_quarantined
    q = spark.sql("SELECT * FROM quarantine.vcf").collect()[0]
    assert q.source_uri == str(b.vcf) and q.location.startswith("line ") and "REF 'Z'" in q.reason
    assert spark.sql("SELECT count(DISTINCT person_id) AS n FROM silver.samples").collect()[0].n == 4
    c = clean_variants.run(spark, s)
    assert c.details["new_variants"] == spark.table("silver.variants").count() > 60
    build_cohorts.run(spark, s)
    before = _counts(spark, *DATA_TABLES)
    again = ingest_vcf.run(spark, s, [str(b.vcf)], b.center_id, str(b.manifest))
    assert again.status == "skipped" and again.skipped_inputs == [str(b.vcf)]
    assert clean_variants.run(spark, s).status == "succeeded"
    build_cohorts.run(spark, s)
    assert _counts(spark, *DATA_TABLES) == before
    runs = spark.sql("SELECT job, status, rows_read, rows_accepted, rows_quarantined FROM ops.ingest_runs "
                     "WHERE job = 'ingest_vcf' ORDER BY started_at").collect()
    assert [(x.status, x.rows_read, x.rows_quarantined) for x in runs] == [("succeeded", 61, 1),
                                                                           ("skipped", 0, 0)]
    assert spark.sql("SELECT count(*) AS n FROM ops.audit_log WHERE action = 'job'").collect()[0].n >= 5


def test_new_batch_appends_without_rewriting(fresh_lake, tmp_path):
    spark, s = fresh_lake
    b1, b2 = make_demo_inputs(tmp_path / "in", samples_per_center=3, sites=30)[1:3]
    ingest_vcf.run(spark, s, [str(b1.vcf)], b1.center_id, str(b1.manifest))
    clean_variants.run(spark, s)
    n1 = spark.table("silver.genotypes").count()
    ingest_vcf.run(spark, s, [str(b2.vcf)], b2.center_id, str(b2.manifest))
    r = clean_variants.run(spark, s)
    assert r.details["sources"] == 1
    assert spark.table("silver.genotypes").count() == n1 + r.details["new_genotypes"]


def test_manifest_mismatch_fails_and_commits_nothing(fresh_lake, tmp_path):
    spark, s = fresh_lake
    vcf = make_vcf(tmp_path / "x.vcf.gz", ["S1", "S2"], 12, seed=1)
    m = tmp_path / "m.csv"
    m.write_text("sample_id,patient_id\nS1,MRN1\n")
    with pytest.raises(InputError, match="1 sample\\(s\\) are not in manifest"):
        ingest_vcf.run(spark, s, [str(vcf)], "CTY-S1", str(m))
    assert spark.table("bronze.vcf_variants").count() == 0
    failed = spark.sql("SELECT status, error FROM ops.ingest_runs").collect()
    assert failed[0].status == "failed" and "not in manifest" in failed[0].error


def test_truncated_file_commits_nothing(fresh_lake, tmp_path):
    spark, s = fresh_lake
    vcf = make_vcf(tmp_path / "x.vcf.gz", ["S1"], 300, seed=2)
    m = tmp_path / "m.csv"
    m.write_text("sample_id,patient_id\nS1,MRN1\n")
    data = vcf.read_bytes()
    vcf.write_bytes(data[: len(data) // 2])
    result = ingest_vcf.run(spark, s, [str(vcf)], "CTY-S1", str(m))
    assert result.rows_accepted == 0 and result.rows_quarantined == 1
    assert spark.table("bronze.vcf_variants").count() == 0
    q = spark.table("quarantine.vcf").collect()
    assert len(q) == 1 and q[0].location == "file" and "truncated or corrupt" in q[0].reason
