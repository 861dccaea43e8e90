"""Cohort definitions (YAML, validated with line numbers) and their materialisation on the
engine: index events, windows, inclusion/exclusion, attrition, features, versions."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import pytest
from lakes import own_lake
from pyspark.sql import functions as F

from omicslake.cohort_definitions import CohortDefinitionError, load_all, parse_definition
from omicslake.settings import SHIPPED_COHORTS

T2D = (SHIPPED_COHORTS / "t2d_hba1c.yaml").read_text()


# --- definitions ---------------------------------------------------------------------------


def test_shipped_definitions_validate_with_unique_ids():
    loaded = {d.name: d.definition for d in load_all()}
    assert {"lung_cancer_egfr", "hboc_brca", "t2d_hba1c", "stroke_imaging"} <= set(loaded)
    assert loaded["hboc_brca"].genes == ["BRCA1", "BRCA2"]
    assert loaded["t2d_hba1c"].lab_codes == ["4548-4"]
    assert len({d.id for d in loaded.values()}) == len(loaded)


@pytest.mark.parametrize(
    ("change", "line", "words"),
    [
        (("loinc: 4548-4", "loinc: 4548"), 18, "inclusion.0.lab.loinc: '4548' is not a LOINC code"),
        (('unit: "%"', 'unit: "%"\n      snomed: 44054006'), 21, "inclusion.0.lab.snomed: unknown field"),
        (("icd10: [E10]", "icd9: [250]"), 26, "exclusion.0.diagnosis.icd9: unknown field"),
        (('unit: "%"', "unit: furlong"), 20, "'furlong' is not a UCUM unit"),
        (("min_count: 2", "min_count: 0"), 22, "min_count: Input should be greater than or equal to 1"),
        (
            ("window: {start_days: -365, end_days: 365}", "window: {start_days: 30, end_days: 1}"),
            21,
            "start_days 30 is after end_days 1",
        ),
        (
            ("diagnosis:\n    icd10: [E11]", "genomic:\n    genes: [TCF7L2]"),
            11,
            "the index event needs a date",
        ),
        (("fixed_days: 730", "fixed_days: 730\n  end_of_observation: true"), 28, "exactly one end strategy"),
    ],
)
def test_invalid_definition_names_its_line(change, line, words):
    old, new = change
    assert old in T2D
    with pytest.raises(CohortDefinitionError) as err:
        parse_definition(T2D.replace(old, new), "t2d_hba1c.yaml")
    assert f"t2d_hba1c.yaml line {line}: " in str(err.value)
    assert words in str(err.value)


def test_checksum_follows_meaning_not_comments():
    a = parse_definition(T2D, "a").checksum()
    assert parse_definition("# another comment\n" + T2D, "b").checksum() == a
    assert parse_definition(T2D.replace("min: 6.5", "min: 7.0"), "c").checksum() != a


# --- materialisation -----------------------------------------------------------------------

TS = datetime(2025, 1, 1)


def _rows(table: str, rows: list[dict]) -> list[dict]:
    from schemas import get_table

    defaults = {
        "source_format": "FHIR",
        "source_system": "test",
        "source_checksum": "x",
        "ingest_run_id": "r",
        "updated_at": TS,
        "event_time": TS,
    }
    names = get_table(table).column_names
    return [{c: r.get(c, defaults.get(c)) for c in names} for r in rows]


def seed(spark, settings, table: str, rows: list[dict]) -> None:
    from omicslake.writes import append
    from schemas import get_table

    append(spark.createDataFrame(_rows(table, rows), get_table(table).spark_schema()), settings, table)


def _when(d: str) -> datetime:
    return datetime.fromisoformat(d)


def seed_population(spark, settings) -> None:
    people = {  # person: (center, sex, birth_year)
        "P1": ("CNT-S1A", "M", 1960),
        "P2": ("PRV-N", "F", 1970),
        "P3": ("CTY-S1", "F", 1975),
        "P4": ("PRV-N", "M", 1955),
        "P5": ("PRV-N", "F", 1950),
        "P6": ("PRV-N", "M", 1980),
        "P7": ("CTY-S1", "M", 1945),
        "P8": ("CTY-S1", "F", 1948),
        "P9": ("CNT-S1A", "M", 2012),
    }
    seed(
        spark,
        settings,
        "silver.patient_identities",
        [
            {
                "identity_id": f"I{p}",
                "person_id": f"S{p}",
                "center_id": c,
                "assigning_authority": c,
                "identifier_key": p,
                "is_primary": True,
                "sex": s,
                "birth_year": y,
            }
            for p, (c, s, y) in people.items()
        ],
    )
    seed(
        spark,
        settings,
        "silver.person_links",
        [
            {
                "identity_id": f"I{p}",
                "person_id": p,
                "source_person_id": f"S{p}",
                "center_id": c,
                "source_format": "FHIR",
                "link_rule": "self",
                "linked_run_id": "r",
                "first_run_id": "r",
                "updated_at": TS,
            }
            for p, (c, _, _) in people.items()
        ],
    )
    conditions = [
        ("P1", "C34.1", "2025-03-01", "CNT-S1A"),
        ("P1", "C34.9", "2025-06-01", "CNT-S1A"),
        ("P2", "C34.1", "2025-02-01", "PRV-N"),
        ("P9", "C34.1", "2025-02-01", "CNT-S1A"),
        ("P4", "E11.9", "2025-01-10", "PRV-N"),
        ("P5", "E11.9", "2025-01-10", "PRV-N"),
        ("P6", "E10.9", "2024-01-10", "PRV-N"),
        ("P6", "E11.9", "2025-01-10", "PRV-N"),
        ("P7", "I63.9", "2025-05-01", "CTY-S1"),
        ("P8", "I63.9", "2025-05-01", "CTY-S1"),
        ("P3", "C50.9", "2025-04-01", "CTY-S1"),
    ]
    seed(
        spark,
        settings,
        "silver.conditions",
        [
            {
                "condition_id": f"C{k}",
                "person_id": p,
                "center_id": c,
                "code": code,
                "code_system": "ICD-10",
                "icd10_code": code,
                "onset_time": _when(d),
            }
            for k, (p, code, d, c) in enumerate(conditions)
        ],
    )
    labs = [
        ("P4", 7.1, "2024-12-01"),
        ("P4", 7.5, "2025-06-01"),
        ("P4", 6.9, "2025-09-01"),
        ("P5", 7.0, "2025-02-01"),
        ("P5", 6.1, "2025-05-01"),
        ("P6", 8.0, "2025-01-01"),
        ("P6", 8.2, "2025-03-01"),
    ]
    seed(
        spark,
        settings,
        "silver.observations",
        [
            {
                "observation_id": f"O{k}",
                "person_id": p,
                "center_id": "PRV-N",
                "code": "4548-4",
                "code_system": "LOINC",
                "loinc_code": "4548-4",
                "value_num": v,
                "unit": "%",
                "effective_time": _when(d),
            }
            for k, (p, v, d) in enumerate(labs)
        ],
    )
    seed(
        spark,
        settings,
        "silver.imaging_series",
        [
            {
                "series_instance_uid": f"SE{p}",
                "study_instance_uid": f"ST{p}",
                "person_id": p,
                "center_id": "CTY-S1",
                "modality": "CT",
                "body_part": "HEAD",
                "instance_count": 1,
                "updated_at": TS,
            }
            for p in ("P7", "P8")
        ],
    )
    seed(
        spark,
        settings,
        "silver.imaging_studies",
        [
            {
                "study_instance_uid": "STP7",
                "person_id": "P7",
                "center_id": "CTY-S1",
                "study_date": date(2025, 4, 2),
                "series_count": 1,
                "instance_count": 1,
                "updated_at": TS,
            },
            {
                "study_instance_uid": "STP8",
                "person_id": "P8",
                "center_id": "CTY-S1",
                "study_date": date(2025, 6, 1),
                "series_count": 1,
                "instance_count": 1,
                "updated_at": TS,
            },
        ],
    )
    seed(
        spark,
        settings,
        "silver.imaging_instances",
        [  # P7's study date was shifted back 30 days
            {
                "sop_instance_uid": f"SOP{p}",
                "series_instance_uid": f"SE{p}",
                "study_instance_uid": f"ST{p}",
                "person_id": p,
                "center_id": "CTY-S1",
                "date_shift_days": shift,
                "burned_in_risk": False,
                "deid_uri": "x",
                "updated_at": TS,
            }
            for p, shift in (("P7", 30), ("P8", 0))
        ],
    )
    seed_genomics(spark, settings)


def seed_genomics(spark, settings) -> None:
    egfr = {
        "gene_id": "ENSG00000146648",
        "gene_name": "EGFR",
        "gene_type": "protein_coding",
        "strand": "+",
        "region_class": "CDS",
        "transcript_ids": [],
    }
    brca2 = {**egfr, "gene_id": "ENSG00000139618", "gene_name": "BRCA2"}
    sites = {
        "GRCh38:chr7:55191822:T:G": ("chr7", 55191822, egfr, "Pathogenic", None),
        "GRCh38:chr7:55200000:A:G": ("chr7", 55200000, egfr, "Benign", None),
        "GRCh38:chr13:32340300:G:A": ("chr13", 32340300, brca2, "Pathogenic/Likely_pathogenic", 0.0001),
    }
    seed(
        spark,
        settings,
        "silver.variant_annotations",
        [
            {
                "variant_id": v,
                "build": "GRCh38",
                "contig": c,
                "pos": pos,
                "ref": v.split(":")[3],
                "alt": v.split(":")[4],
                "genes": [gene],
                "clinvar_significance": sig,
                "gnomad_af": af,
                "row_hash": 1,
                "run_id": "r",
                "updated_at": TS,
            }
            for v, (c, pos, gene, sig, af) in sites.items()
        ],
    )
    calls = [
        ("P1", "GRCh38:chr7:55191822:T:G"),
        ("P9", "GRCh38:chr7:55191822:T:G"),
        ("P2", "GRCh38:chr7:55200000:A:G"),
        ("P3", "GRCh38:chr13:32340300:G:A"),
    ]
    seed(
        spark,
        settings,
        "silver.samples",
        [
            {"sample_id": f"X{p}", "person_id": p, "center_id": "NAT", "source_person_id": f"M{p}"}
            for p in ("P1", "P2", "P3", "P9")
        ],
    )
    seed(
        spark,
        settings,
        "silver.genotypes",
        [
            {
                "variant_id": v,
                "person_id": f"M{p}",
                "sample_id": f"X{p}",
                "center_id": "NAT",
                "contig": v.split(":")[1],
                "pos": int(v.split(":")[2]),
                "gt": [0, 1],
                "alt_count": 1,
                "source_checksum": "x",
                "ingest_run_id": "r",
                "person_bucket": "0",
            }
            for p, v in calls
        ],
    )


@pytest.fixture(scope="module")
def cohort_lake(tmp_path_factory):
    from jobs import build_cohorts

    with own_lake(tmp_path_factory.mktemp("cohorts")) as (spark, settings):
        seed_population(spark, settings)
        first = build_cohorts.run(spark, settings)
        yield spark, settings, first


def _members(spark, settings, cohort_id: int, version: int | None = None) -> dict[str, tuple]:
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    rows = reader.load(f"{settings.lake_root}/gold/cohort").where(F.col("cohort_definition_id") == cohort_id)
    return {
        r.subject_id: (str(r.cohort_start_date), str(r.cohort_end_date), r.center_id) for r in rows.collect()
    }


def test_members_follow_every_rule(cohort_lake):
    spark, settings, result = cohort_lake
    assert result.status == "succeeded"
    # lung: P2 carries a benign EGFR variant, P9 is 13 at diagnosis; P1's first diagnosis is the index
    lung = _members(spark, settings, 1)
    assert set(lung) == {"P1"} and lung["P1"][0] == "2025-03-01" and lung["P1"][2] == "CNT-S1A"
    assert lung["P1"][1] == "2025-06-01"  # end_of_observation: the last record of P1
    assert set(_members(spark, settings, 2)) == {"P3"}  # BRCA2 P/LP, rare in gnomAD
    # t2d: P5 has one raised HbA1c, P6 had type 1 diabetes first
    t2d = _members(spark, settings, 3)
    assert set(t2d) == {"P4"} and t2d["P4"][1] == "2027-01-10"  # fixed 730 days
    assert set(_members(spark, settings, 4)) == {"P7"}  # P8's CT is 31 days late; P7's date is unshifted
    assert {n: d["members"] for n, d in result.details.items()} == {
        "hboc_brca": 1,
        "lung_cancer_egfr": 1,
        "stroke_imaging": 1,
        "t2d_hba1c": 1,
    }


def test_attrition_per_rule_center_and_tier(cohort_lake):
    spark, settings, result = cohort_lake
    stats = (
        spark.read.format("delta")
        .load(f"{settings.lake_root}/gold/cohort_inclusion_stats")
        .where(F.col("cohort_definition_id") == 1)
        .collect()
    )
    overall = {r.rule_sequence: (r.rule_kind, r.persons, r.events) for r in stats if r.scope == "all"}
    assert overall == {
        0: ("index", 3, 3),
        1: ("observation", 3, 3),
        2: ("inclusion", 2, 2),
        3: ("inclusion", 1, 1),
    }
    by_center = {(r.rule_sequence, r.center_id): r.persons for r in stats if r.scope == "center"}
    assert by_center[(0, "CNT-S1A")] == 2 and by_center[(0, "PRV-N")] == 1 and (2, "PRV-N") not in by_center
    by_tier = {(r.rule_sequence, r.tier): r.persons for r in stats if r.scope == "tier"}
    assert by_tier[(0, "county")] == 2 and by_tier[(0, "provincial")] == 1 and by_tier[(3, "county")] == 1
    assert {r.version for r in stats} == {result.details["lung_cancer_egfr"]["version"]}


def test_features_one_row_per_member(cohort_lake):
    spark, settings, _ = cohort_lake
    t2d = spark.table("gold.cohort_t2d_hba1c_features").collect()
    assert len(t2d) == 1
    row = t2d[0]
    assert (row.subject_id, row.sex, row.age_at_index, row.tier, row.diagnoses) == (
        "P4",
        "M",
        70,
        "provincial",
        ["E11"],
    )
    assert [(lab.loinc_code, lab.value) for lab in row.latest_labs] == [("4548-4", 6.9)]
    hboc = spark.table("gold.cohort_hboc_brca_features").collect()
    assert [(r.subject_id, r.carrier, r.genotyped) for r in hboc] == [
        ("P3", {"BRCA1": False, "BRCA2": True}, True)
    ]


def test_unchanged_is_skipped_and_a_forced_rebuild_keeps_the_version(cohort_lake):
    from jobs import build_cohorts

    spark, settings, first = cohort_lake
    again = build_cohorts.run(spark, settings)
    assert {d["status"] for d in again.details.values()} == {"unchanged"}
    v1 = first.details["hboc_brca"]["version"]  # built first: later cohorts moved the table on
    assert v1 < first.details["t2d_hba1c"]["version"]
    forced = build_cohorts.run(spark, settings, ["hboc_brca"], force=True)
    v2 = forced.details["hboc_brca"]["version"]
    assert forced.details["hboc_brca"]["status"] == "published"
    assert v2 == v1  # the same members: nothing committed, the citation stays the cohort's own version
    versions = (
        spark.read.format("delta")
        .load(f"{settings.lake_root}/gold/cohort_versions")
        .where(F.col("cohort_definition_id") == 2)
        .collect()
    )
    assert [(r.version, r.run_id) for r in versions] == [(v1, forced.run_id)]
    assert set(json.loads(versions[0].inputs_json)) >= {"silver.conditions", "silver.genotypes", "centers"}


def test_new_input_rebuilds_and_old_version_reads_back(cohort_lake):
    from jobs import build_cohorts

    spark, settings, _ = cohort_lake
    before = build_cohorts.last_publication(spark, settings, 3)
    seed(
        spark,
        settings,
        "silver.observations",
        [
            {
                "observation_id": "O-new",
                "person_id": "P5",
                "center_id": "PRV-N",
                "code": "4548-4",
                "code_system": "LOINC",
                "loinc_code": "4548-4",
                "value_num": 7.7,
                "unit": "%",
                "effective_time": _when("2025-08-01"),
            }
        ],
    )
    result = build_cohorts.run(spark, settings, ["t2d_hba1c"])
    after = result.details["t2d_hba1c"]
    assert after["status"] == "published" and after["members"] == 2
    assert set(_members(spark, settings, 3, after["version"])) == {"P4", "P5"}
    assert set(_members(spark, settings, 3, int(before.version))) == {"P4"}  # time travel to the citation


def test_center_scope_limits_index_events(cohort_lake, tmp_path):
    from dataclasses import replace

    from jobs import build_cohorts

    spark, settings, _ = cohort_lake
    text = (SHIPPED_COHORTS / "lung_cancer_egfr.yaml").read_text()
    south = tmp_path / "lung_south.yaml"
    south.write_text(
        text.replace("id: 1", "id: 91")
        .replace("name: lung_cancer_egfr", "name: lung_south")
        .replace("centers: NAT", "centers: PRV-S")
    )
    scoped = replace(settings, cohorts_dir=Path(tmp_path))
    steps = build_cohorts.attrition_steps(spark, scoped, parse_definition(south.read_text(), str(south)))
    index = {r.person_id for r in steps[0].events.collect()}
    assert index == {"P1", "P9"}  # P2's diagnosis is at PRV-N, outside the PRV-S subtree
    bad = parse_definition(south.read_text().replace("centers: PRV-S", "centers: PRV-X"), "x")
    with pytest.raises(CohortDefinitionError, match="PRV-X"):
        build_cohorts.attrition_steps(spark, scoped, bad)


# --- the CLI -------------------------------------------------------------------------------


def omicslake(*args: str) -> str:
    from click.testing import CliRunner

    from omicslake.cli import main

    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_cli_list_show_and_versions(cohort_lake):
    spark, settings, _ = cohort_lake
    listed = {
        json.loads(line)["name"]: json.loads(line)
        for line in omicslake("cohort", "list", "--json").splitlines()
        if line.startswith("{")
    }
    assert listed["stroke_imaging"]["state"] == "current" and listed["stroke_imaging"]["members"] == 1
    shown = [
        json.loads(line)
        for line in omicslake("cohort", "show", "stroke_imaging", "--json").splitlines()
        if line.startswith("{")
    ]
    assert [(r["subject_id"], r["cohort_start_date"], r["cohort_end_date"]) for r in shown] == [
        ("P7", "2025-05-01", "2026-05-01")
    ]
    from click.testing import CliRunner

    from omicslake.cli import main

    missing = CliRunner().invoke(main, ["cohort", "show", "stroke_imaging", "--version", "999"])
    assert missing.exit_code == 2 and "has no version 999 (published: " in missing.output
    unknown = CliRunner().invoke(main, ["cohort", "show", "nope"])
    assert unknown.exit_code == 2 and "no cohort 'nope'" in unknown.output


def test_cli_report_draws_the_published_numbers(cohort_lake, tmp_path):
    import re

    out = tmp_path / "hboc.html"
    printed = omicslake("cohort", "report", "hboc_brca", "--out", str(out))
    assert str(out) in printed
    html = out.read_text()
    assert "cohort hboc_brca, version" in html
    carriers = dict(re.findall(r'data-label="(BRCA[12])"[^>]*data-value="([0-9.]+)"', html))
    assert carriers == {"BRCA1": "0", "BRCA2": "100"}
    assert 'data-label="CTY-S1"' in html and not re.search(r'(src|href)="https?:', html)


def test_a_cited_version_reads_back_past_the_engines_checkpoints(cohort_lake):
    """Sail writes a checkpoint every 10 commits and then cannot time-travel between them;
    `cohort show --version` reads through delta-rs, so a cited version still reads back."""
    from omicslake.cohort_reads import as_of
    from omicslake.writes import append

    spark, settings, _ = cohort_lake
    from jobs import build_cohorts

    cited = build_cohorts.last_publication(spark, settings, 4)
    want = _members(spark, settings, 4)
    for k in range(12):  # other cohorts' commits move the table past a checkpoint
        seed_row = [
            {
                "cohort_definition_id": 99,
                "subject_id": f"X{k}",
                "cohort_start_date": date(2025, 1, 1),
                "cohort_end_date": date(2025, 1, 2),
                "center_id": "NAT",
            }
        ]
        append(
            spark.createDataFrame(
                seed_row,
                "cohort_definition_id long, subject_id string, "
                "cohort_start_date date, cohort_end_date date, center_id string",
            ),
            settings,
            "gold.cohort",
        )
    rows = as_of(spark, settings, "gold.cohort", int(cited.version), 4).collect()
    assert {
        r.subject_id: (str(r.cohort_start_date), str(r.cohort_end_date), r.center_id) for r in rows
    } == want
