from deltalake import DeltaTable

from omicslake.catalog import ensure_tables, table_uri
from omicslake.delta_ops import DeltaRsAdapter
from omicslake.writes import append, landed_checksums, merge_new
from schemas import ALL_TABLES, get_table


def test_every_table_exists_with_contract_schema_and_partitioning(fresh_lake):
    spark, s = fresh_lake
    for t in ALL_TABLES:
        dt = DeltaTable(table_uri(s, t))
        expected = [c for c in t.column_names if c not in t.partition_by] + list(t.partition_by)
        assert [f.name for f in dt.schema().fields] == expected, t.full_name
        assert list(dt.metadata().partition_columns) == list(t.partition_by), t.full_name
        assert (dt.protocol().min_reader_version, dt.protocol().min_writer_version) == (1, 2)
        assert spark.sql(f"SELECT count(*) AS n FROM {t.full_name}").collect()[0].n == 0


def test_registration_is_per_session_and_repeatable(fresh_lake):
    spark, s = fresh_lake
    ensure_tables(spark, s)  # second call creates nothing new
    assert DeltaTable(table_uri(s, "silver.variants")).version() == 0
    names = {f"{layer}.{r.tableName}" for layer in ("bronze", "silver", "gold", "ops", "quarantine")
             for r in spark.sql(f"SHOW TABLES IN {layer}").collect()}
    assert {t.full_name for t in ALL_TABLES} <= names


def test_merge_new_is_idempotent_and_updates(fresh_lake):
    spark, s = fresh_lake
    schema = get_table("ops.centers").spark_schema()
    df = spark.createDataFrame([("A", "a", "national", None, None), ("B", "b", "city", "A", None)], schema)
    merge_new(spark, s, df, "ops.centers")
    merge_new(spark, s, df, "ops.centers")
    assert spark.table("ops.centers").count() == 2
    renamed = spark.createDataFrame([("B", "b2", "city", "A", None)], schema)
    merge_new(spark, s, renamed, "ops.centers", update=True)
    assert spark.sql("SELECT name FROM ops.centers WHERE center_id = 'B'").collect()[0].name == "b2"


def test_landed_checksums_and_conform(fresh_lake):
    spark, s = fresh_lake
    rows = [{"center_id": "C", "source_uri": "u", "source_checksum": "abc", "location": "line 3",
             "line": 3, "reason": "bad", "raw": "x", "ingest_run_id": "r", "quarantined_at": None}]
    append(spark.createDataFrame(rows, get_table("quarantine.vcf").spark_schema()), s, "quarantine.vcf")
    assert landed_checksums(spark, s, "quarantine.vcf", ["abc", "zzz"]) == {"abc"}


def test_maintenance_adapter(fresh_lake):
    spark, s = fresh_lake
    schema = get_table("ops.centers").spark_schema()
    for i in range(4):
        append(spark.createDataFrame([(f"C{i}", "n", "county", "P", None)], schema), s, "ops.centers")
    ad = DeltaRsAdapter(s)
    assert ad.info("ops.centers").files == 4 and ad.info("ops.centers").rows == 4
    hist = ad.history("ops.centers")
    assert hist[0]["version"] == 4 and hist[-1]["operation"] == "CREATE TABLE"
    metrics = ad.optimize("ops.centers")
    assert metrics["numFilesRemoved"] == 4 and ad.info("ops.centers").files == 1
    assert spark.table("ops.centers").count() == 4
    assert len(ad.vacuum("ops.centers", retention_hours=0, dry_run=True)) == 4
    ad.checkpoint("ops.centers")
    log = DeltaTable(table_uri(s, "ops.centers")).table_uri.removeprefix("file://")
    import glob

    assert glob.glob(f"{log}/_delta_log/*.checkpoint.parquet")
