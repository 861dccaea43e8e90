import pytest

from omicslake.errors import QualityError
from quality.checks import check_tables, validate
from schemas import get_table


def _variants(spark, rows):
    return spark.createDataFrame(rows, get_table("silver.variants").spark_schema())


def test_contract_and_table_rules(spark, lake):
    df = _variants(spark, [("v1", "GRCh38", "chr1", 5, "A", "T", None, None),
                           ("v1", "GRCh38", "chr1", 0, "A", "<DEL>", None, None)])
    failed = {(r.expectation, r.column_name): r for r in validate(df, "silver.variants") if not r.success}
    assert failed[("expect_column_values_to_be_unique", "variant_id")].unexpected_count == 2
    assert failed[("expect_column_values_to_be_between", "pos")].unexpected_count == 1
    assert failed[("expect_column_values_to_match_regex", "alt")].critical


def test_critical_failure_names_table_expectation_and_count(fresh_lake):
    spark, s = fresh_lake
    from omicslake.writes import append

    append(_variants(spark, [("v1", "GRCh38", "chr1", 5, "A", "T", None, None),
                             ("v2", "GRCh38", "chr1", 6, "A", "T", None, None),
                             ("v3", "GRCh38", "chr1", 7, "Q", "T", None, None)]), s, "silver.variants")
    with pytest.raises(QualityError) as err:
        check_tables(spark, s, ["silver.variants"])
    msg = str(err.value)
    assert "silver.variants: expect_column_values_to_match_regex on ref failed for 1 of 3 rows" in msg
    stored = spark.sql("SELECT table_name, success, unexpected_count FROM ops.quality_results "
                       "WHERE expectation = 'expect_column_values_to_match_regex' AND column_name = 'ref'"
                       ).collect()
    assert [(r.table_name, r.success, r.unexpected_count) for r in stored] == [("silver.variants", False, 1)]


def test_passing_tables_record_results(fresh_lake):
    spark, s = fresh_lake
    from jobs import register_centers

    register_centers.run(spark, s)
    summary = check_tables(spark, s, ["ops.centers"])
    assert summary["passed"] == summary["expectations"] > 0
    assert spark.table("ops.quality_results").count() == summary["expectations"]
