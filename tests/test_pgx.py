"""Pharmacogenomics: PharmCAT definitions, diplotype calls from hand-made VCFs (phased,
unphased, a missing defining position), CPIC recommendations and medication alerts."""

from __future__ import annotations

from datetime import datetime

import pysam
import pytest
from lakes import own_lake
from pyspark.sql import functions as F

from connectors.pharmcat import load_all
from omicslake.diplotypes import IUPAC, Call, call_gene

DEFS = load_all()
# sample: {gene: (allele1, allele2, phased)}
TRUTH = {
    "S1": {"CYP2C19": ("*1", "*2", False)},
    "S2": {"CYP2C19": ("*2", "*17", True), "DPYD": ("Reference", "c.1905+1G>A (*2A)", False)},
    "S3": {"TPMT": ("*1", "*3A", False), "CYP2C19": ("*1", "*1", False)},
    "S4": {"CYP2C19": ("*1", "*2", False)},  # with rs3758581 not called (./.)
}
GENES = ("CYP2C19", "DPYD", "TPMT")
DEFAULT = {"CYP2C19": "*1", "DPYD": "Reference", "TPMT": "*1"}
NO_CALL = ("S4", 94842866)


def _base(defined: str, ref: str) -> str:
    return (ref if ref in IUPAC[defined] else IUPAC[defined][0]) if defined in IUPAC else defined


def haplotypes(gene: str, a: str, b: str) -> tuple[list[str], list[str]]:
    g = DEFS[gene]
    named = {x.name: x for x in g.alleles}
    return (
        [_base(v, p.ref) for v, p in zip(g.filled(named[a]), g.positions, strict=True)],
        [_base(v, p.ref) for v, p in zip(g.filled(named[b]), g.positions, strict=True)],
    )


def write_vcf(path) -> str:
    samples = sorted(TRUTH)
    lines = [
        "##fileformat=VCFv4.2",
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        *(f"##contig=<ID={c}>" for c in ("chr1", "chr6", "chr10")),
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(samples),
    ]
    records = []
    for gene in GENES:
        g = DEFS[gene]
        per_sample = {}
        for s in samples:
            a, b, phased = TRUTH[s].get(gene, (DEFAULT[gene], DEFAULT[gene], False))
            per_sample[s] = (*haplotypes(gene, a, b), "|" if phased else "/")
        for i, p in enumerate(g.positions):
            bases = [p.ref, *p.alts]
            gts = []
            for s in samples:
                h1, h2, sep = per_sample[s]
                gts.append(
                    "./." if (s, p.pos) == NO_CALL else f"{bases.index(h1[i])}{sep}{bases.index(h2[i])}"
                )
            records.append(
                (
                    p.contig,
                    p.pos,
                    f"{p.contig}\t{p.pos}\t{p.rsid or '.'}\t{p.ref}\t{','.join(p.alts)}"
                    f"\t50\tPASS\t.\tGT\t" + "\t".join(gts),
                )
            )
    order = {"chr1": 0, "chr6": 1, "chr10": 2}
    records.sort(key=lambda r: (order[r[0]], r[1]))
    path.write_text("\n".join(lines + [r[2] for r in records]) + "\n")
    return pysam.tabix_index(str(path), preset="vcf", force=True)


def test_matcher_on_definitions_alone():
    g = DEFS["CYP2C19"]
    h1, h2 = haplotypes("CYP2C19", "*2", "*17")
    calls = {i: Call(a, b, True) for i, (a, b) in enumerate(zip(h1, h2, strict=True))}
    d = call_gene(g, calls)
    assert (d.diplotype, d.phenotype, d.status, d.phased) == (
        "*2/*17",
        "Intermediate Metabolizer",
        "called",
        True,
    )
    assert call_gene(g, {}).reason == f"no call at any of the {len(g.positions)} defining positions"
    wrong = {i: Call("N", "N") for i in range(len(g.positions))}
    assert call_gene(g, wrong).status == "uncallable"


@pytest.fixture(scope="module")
def pgx_lake(tmp_path_factory):
    from jobs import call_pgx, ingest_vcf
    from omicslake.writes import append
    from schemas import get_table

    tmp = tmp_path_factory.mktemp("pgx")
    vcf = write_vcf(tmp / "pgx.vcf")
    manifest = tmp / "manifest.csv"
    manifest.write_text("sample_id,patient_id\n" + "".join(f"{s},MRN-{s}\n" for s in sorted(TRUTH)))
    with own_lake(tmp / "home") as (spark, settings):
        ingest_vcf.run(spark, settings, [vcf], "PRV-N", str(manifest))
        person = {
            r.sample_id: r.person_id
            for r in spark.read.format("delta").load(f"{settings.lake_root}/silver/samples").collect()
        }
        contract = get_table("silver.medications")
        meds = [
            {c: None for c in contract.column_names}
            | {
                "medication_id": f"M{k}",
                "person_id": person[s],
                "kind": "request",
                "code": code,
                "code_system": system,
                "center_id": "PRV-N",
                "source_format": "FHIR",
                "source_system": "t",
                "source_record": f"r{k}",
                "source_checksum": "x",
                "ingest_run_id": "r",
                "updated_at": datetime(2026, 1, 1),
                "start_time": datetime(2026, 1, 2),
            }
            for k, (s, code, system) in enumerate(
                [("S1", "B01AC04", "ATC"), ("S3", "32968", "RxNorm"), ("S2", "194000", "RxNorm")]
            )
        ]
        append(spark.createDataFrame(meds, contract.spark_schema()), settings, "silver.medications")
        first = call_pgx.run(spark, settings)
        yield spark, settings, person, first


def _calls(spark, settings) -> dict[tuple[str, str], object]:
    rows = spark.read.format("delta").load(f"{settings.lake_root}/silver/pgx_diplotypes").collect()
    return {(r.person_id, r.gene): r for r in rows}


def test_known_diplotypes_are_called(pgx_lake):
    spark, settings, person, result = pgx_lake
    calls = _calls(spark, settings)
    for sample, genes in TRUTH.items():
        for gene, (a, b, phased) in genes.items():
            r = calls[(person[sample], gene)]
            assert r.diplotype == f"{a}/{b}"  # TRUTH lists each pair in PharmCAT's order
            if sample != "S4":
                assert r.status == "called" and r.phased == phased and r.missing_positions == []
    s1 = calls[(person["S1"], "CYP2C19")]
    assert (s1.phenotype, s1.positions_called, s1.positions_total) == ("Intermediate Metabolizer", 35, 35)
    dpyd = calls[(person["S2"], "DPYD")]
    assert (dpyd.phenotype, dpyd.activity_score) == ("Intermediate Metabolizer", "1.0")
    assert calls[(person["S3"], "TPMT")].phenotype == "Intermediate Metabolizer"
    assert calls[(person["S1"], "DPYD")].diplotype == "Reference/Reference"


def test_missing_position_is_a_no_call_not_reference(pgx_lake):
    spark, settings, person, _ = pgx_lake
    s4 = _calls(spark, settings)[(person["S4"], "CYP2C19")]
    assert s4.status == "partial" and s4.missing_positions == ["rs3758581"] and s4.positions_called == 34
    assert s4.alternatives == ["*2/*38"]  # without rs3758581, *1 and *38 cannot be told apart
    assert s4.phenotype == "Intermediate Metabolizer"


def test_genes_without_calls_say_why(pgx_lake):
    spark, settings, person, result = pgx_lake
    r = _calls(spark, settings)[(person["S1"], "CYP2C9")]
    assert r.status == "uncallable" and r.reason.startswith("no call at any of the")
    assert any(
        line.startswith("CYP2C9 uncallable x4: no call at any") for line in result.details["not_called"]
    )


def test_recommendations_and_alerts(pgx_lake):
    spark, settings, person, result = pgx_lake
    recs = spark.read.format("delta").load(f"{settings.lake_root}/gold/pgx_recommendations")
    clop = {r.person_id: r for r in recs.where(F.col("drug") == "clopidogrel").collect()}
    assert clop[person["S1"]].actionable and "prasugrel or ticagrelor" in clop[person["S1"]].recommendation
    assert not clop[person["S3"]].actionable  # *1/*1 normal metabolizer
    assert "cpicpgx.org" in clop[person["S1"]].url
    alerts = spark.read.format("delta").load(f"{settings.lake_root}/gold/medication_alerts").collect()
    # S1 (CYP2C19 IM) on clopidogrel (ATC) and S2 (DPYD IM) on capecitabine (RxNorm); S3 (NM) is fine
    assert sorted((a.person_id, a.drug, a.gene) for a in alerts) == sorted(
        [(person["S1"], "clopidogrel", "CYP2C19"), (person["S2"], "capecitabine", "DPYD")]
    )


def test_rerun_changes_nothing(pgx_lake):
    from jobs import call_pgx

    spark, settings, _, first = pgx_lake
    before = sorted((r.person_id, r.gene, r.diplotype, r.run_id) for r in _calls(spark, settings).values())
    again = call_pgx.run(spark, settings)
    after = sorted((r.person_id, r.gene, r.diplotype, r.run_id) for r in _calls(spark, settings).values())
    assert after == before  # unchanged rows keep the run that made them
    assert "silver.pgx_alleles loaded" not in again.details  # the release is loaded once
    sources = (
        spark.read.format("delta")
        .load(f"{settings.lake_root}/ops/reference_sources")
        .where(F.col("source") == "pharmcat")
        .collect()
    )
    assert len(sources) == 1 and sources[0].release.startswith("pharmcat@")


def test_cli_show_by_sample(pgx_lake):
    import json

    from click.testing import CliRunner

    from omicslake.cli import main

    spark, settings, person, _ = pgx_lake
    out = CliRunner().invoke(main, ["pgx", "show", "--sample", "S1", "--json"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    found = json.loads(out.output.splitlines()[-1])
    assert found["person_id"] == person["S1"] and found["samples"] == ["S1"]
    genes = {g["gene"]: g for g in found["genes"]}
    assert genes["CYP2C19"]["diplotype"] == "*1/*2" and genes["CYP2C9"]["status"] == "uncallable"
    assert [a["drug"] for a in found["alerts"]] == ["clopidogrel"]
    text = CliRunner().invoke(main, ["pgx", "show", person["S1"]]).output
    assert "ALERT  clopidogrel" in text and "ACTION clopidogrel (CYP2C19 Intermediate Metabolizer)" in text
    both = CliRunner().invoke(main, ["pgx", "show", "P1", "--sample", "S1"])
    assert both.exit_code == 2 and "one of them" in both.output


def test_split_multiallelic_records_merge_and_real_conflicts_do_not():
    from jobs.call_pgx import observed

    g = DEFS["TPMT"]
    i = next(k for k, p in enumerate(g.positions) if len(p.alts) > 1)
    p = g.positions[i]
    row = {"pos": p.pos, "phased": False, "sample_id": "S", "center_id": "C"}
    split = [{**row, "a1": p.ref, "a2": p.ref}, {**row, "a1": p.ref, "a2": p.alts[1]}]  # bcftools norm -m-
    calls, _, _ = observed(g, split)
    assert (calls[i].a1, calls[i].a2) == (p.ref, p.alts[1])
    other = [{**row, "a1": p.ref, "a2": p.alts[0], "sample_id": "T"}]
    calls, samples, _ = observed(g, split + other)  # two samples disagree: a no-call, never a guess
    assert i not in calls and samples == {"S", "T"}
