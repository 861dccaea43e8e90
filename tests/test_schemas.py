import pytest
from pyspark.sql import types as T

from schemas import ALL_TABLES, get_table
from schemas.contract import PROVENANCE, Table, col


def test_names_are_unique_and_layered():
    names = [t.full_name for t in ALL_TABLES]
    assert len(names) == len(set(names))
    assert {t.layer for t in ALL_TABLES} == {"bronze", "silver", "gold", "quarantine", "ops"}


def test_bronze_tables_carry_provenance():
    for t in ALL_TABLES:
        if t.layer == "bronze":
            assert [c.name for c in PROVENANCE] == t.column_names[-len(PROVENANCE):]


def test_cohort_is_omop_shaped():
    assert get_table("gold.cohort").column_names == [  # OMOP's four, then the index event's center
        "cohort_definition_id", "subject_id", "cohort_start_date", "cohort_end_date", "center_id"
    ]


def test_bad_contracts_are_refused():
    with pytest.raises(ValueError, match="not declared"):
        Table("silver", "x", (col("a", T.StringType()),), "x", keys=("b",))
    with pytest.raises(ValueError, match="duplicate"):
        Table("silver", "x", (col("a", T.StringType()), col("a", T.LongType())), "x")
    with pytest.raises(ValueError, match="unknown layer"):
        Table("platinum", "x", (col("a", T.StringType()),), "x")
    with pytest.raises(KeyError, match="unknown table 'silver.nope'"):
        get_table("silver.nope")
