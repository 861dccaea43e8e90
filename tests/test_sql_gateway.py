"""The SQL gateway: one SELECT over registered tables, cut to the principal's subtree."""

import pytest

from omicslake.sql_gateway import Principal, QueryRefused, scope_query
from omicslake.tiers import demo_network

NET = demo_network()
SOUTH = {"PRV-S", "CTY-S1", "CTY-S2", "CNT-S1A", "CNT-S1B", "CNT-S2A"}


@pytest.mark.parametrize(
    "query, reason",
    [
        ("SELECT * FROM delta.`/lake/silver/samples`", "path and catalog references"),
        ("SELECT * FROM parquet.`s3://bucket/x.parquet`", "path and catalog references"),
        ("SELECT * FROM spark_catalog.silver.samples", "path and catalog references"),
        ("SELECT * FROM read_files('/etc/passwd')", "reads files"),
        ("SELECT * FROM range(10)", "table functions"),
        ("SELECT reflect('java.lang.System', 'exit', 0)", "reads files or calls the JVM"),
        ("SELECT input_file_name() FROM silver.samples", "reads files or calls the JVM"),
        ("SELECT * FROM silver.samples; DROP TABLE silver.samples", "one statement per query"),
        ("DROP TABLE silver.samples", "only SELECT"),
        ("INSERT INTO silver.samples SELECT * FROM silver.samples", "only SELECT"),
        ("CREATE TABLE x AS SELECT * FROM silver.samples", "only SELECT"),
        ("SELECT * FROM samples", "unknown table 'samples'"),
        ("SELECT * FROM silver.nope", "unknown table silver.nope"),
        ("SELECT sample_id FROM silver.samples UNION SELECT source_uri FROM bronze.vcf_headers", "admins"),
        ("SELECT * FROM (SELECT * FROM quarantine.vcf) q", "admins only"),
        ("WITH samples AS (SELECT * FROM ops.audit_log) SELECT * FROM samples", "admins only"),
        ("SeLeCt * FrOm BrOnZe.Vcf_Headers", "admins only"),
        ("SELECT * FROM /* silver.samples */ bronze.vcf_headers -- silver.samples", "admins only"),
        ("SELECT * FROM silver.person_link_review", "admins only"),
        ("SELECT * FROM silver.samples WHERE", "cannot parse"),
    ],
)
def test_escape_attempts_are_refused(query, reason):
    with pytest.raises(QueryRefused, match=reason):
        scope_query(query, Principal("PRV-S"), NET)


def test_roles_and_unknown_centers():
    with pytest.raises(QueryRefused, match="uploaders cannot query"):
        scope_query("SELECT 1", Principal.parse("PRV-S:uploader"), NET)
    with pytest.raises(QueryRefused, match="role 'root'"):
        Principal.parse("PRV-S:root")
    with pytest.raises(QueryRefused, match="not in the registry"):
        scope_query("SELECT 1", Principal("CTY01"), NET)
    assert scope_query("SELECT * FROM bronze.vcf_headers", Principal.parse("PRV-S:admin"), NET).tables == (
        "bronze.vcf_headers",)


def test_the_rewrite_names_only_the_subtree():
    county = scope_query("SELECT * FROM silver.genotypes g", Principal("CNT-S1A"), NET)
    assert "IN ('CNT-S1A')" in county.sql and county.tables == ("silver.genotypes",)
    national = scope_query("SELECT * FROM silver.genotypes", Principal("NAT"), NET)
    assert "WHERE" not in national.sql
    shared = scope_query("SELECT * FROM silver.variant_annotations", Principal("CNT-S1A"), NET)
    assert "WHERE" not in shared.sql


def test_cohort_tables_are_scoped_to_the_subtree():
    county = Principal("CNT-S1A")
    for table in ("gold.cohort", "gold.cohort_t2d_hba1c_features"):
        assert "IN ('CNT-S1A')" in scope_query(f"SELECT * FROM {table}", county, NET).sql
    stats = scope_query("SELECT * FROM gold.cohort_inclusion_stats", county, NET).sql
    assert "'all'" in stats and "'CNT-S1A'" in stats
    for shared in ("gold.cohort_versions", "gold.cohort_definition"):
        assert "WHERE" not in scope_query(f"SELECT * FROM {shared}", county, NET).sql


def _rows(spark, settings):
    from omicslake.writes import append
    from schemas import get_table

    contract = get_table("silver.samples")
    rows = [{c: None for c in contract.column_names} | {
        "center_id": center, "sample_id": f"{center}-S{i}", "person_id": f"P-{center}-{i}",
        "source_person_id": f"P-{center}-{i}", "source_checksum": "x"}
        for center in sorted(NET.centers) for i in range(2)]
    append(spark.createDataFrame(rows, contract.spark_schema()), settings, "silver.samples")


def _centers(spark, query: str, principal: str) -> dict[str, int]:
    scoped = scope_query(query, Principal.parse(principal), NET)
    return {r[0]: r[1] for r in spark.sql(scoped.sql).collect()}


def test_each_principal_sees_its_subtree_on_the_engine(fresh_lake):
    spark, settings = fresh_lake
    _rows(spark, settings)
    q = "SELECT center_id, count(*) AS n FROM silver.samples GROUP BY center_id"
    assert _centers(spark, q, "CNT-S1A") == {"CNT-S1A": 2}
    assert _centers(spark, q, "PRV-S") == {c: 2 for c in SOUTH}
    assert _centers(spark, q, "NAT") == {c: 2 for c in NET.centers}
    # a CTE named like the table, a subquery in FROM, a self-join: still the subtree only
    cte = ("WITH `silver.samples` AS (SELECT * FROM silver.samples) "
           "SELECT center_id, count(*) FROM `silver.samples` GROUP BY center_id")
    assert _centers(spark, cte, "CTY-S1") == {"CTY-S1": 2, "CNT-S1A": 2, "CNT-S1B": 2}
    sub = "SELECT center_id, count(*) FROM (SELECT * FROM silver.samples) t GROUP BY center_id"
    assert set(_centers(spark, sub, "CTY-S2")) == {"CTY-S2", "CNT-S2A"}
    join = ("SELECT a.center_id, count(*) FROM silver.samples a JOIN silver.samples b "
            "ON a.sample_id <> b.sample_id GROUP BY a.center_id")
    assert set(_centers(spark, join, "CNT-N1A")) == {"CNT-N1A"}


def test_the_audit_log_refuses_deletes_and_updates(fresh_lake):
    from omicslake.audit import audit
    from omicslake.catalog import path_ref

    spark, settings = fresh_lake
    audit(spark, settings, "query", "sql", {"query": "SELECT 1"})
    audit(spark, settings, "query", "sql", {"query": "SELECT 2"})  # appends still work
    for statement in (f"DELETE FROM {path_ref(settings, 'ops.audit_log')} WHERE action = 'query'",
                      f"UPDATE {path_ref(settings, 'ops.audit_log')} SET outcome = 'ok'"):
        with pytest.raises(Exception, match="append-only"):
            spark.sql(statement).collect()
    assert spark.read.format("delta").load(f"{settings.lake_root}/ops/audit_log").count() == 2
