"""The knowledge graph: built from a small seeded lake, external releases in PrimeKG and Hetionet
formats loaded next to it (never mixed), multi-hop questions on the engine."""

from __future__ import annotations

import gzip
import json
import re
import shutil
from datetime import date, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from lakes import own_lake
from pyspark.sql import functions as F
from test_cohorts import seed, seed_population

from omicslake.errors import InputError

KG = Path(__file__).parent / "data" / "kg"
PRIMEKG = KG / "primekg" / "kg.csv"
HETIONET = sorted(str(p) for p in (KG / "hetionet").iterdir())
DOCS = Path(__file__).parents[1] / "docs" / "querying.md"
TS = datetime(2025, 1, 1)
CYP2C19_STAR2 = "GRCh38:chr10:94781859:G:A"
INTERGENIC = "GRCh38:chr2:1000:C:T"


def seed_more(spark, settings) -> None:
    """On top of the cohort tests' population: a CYP2C19 call ClinVar names by GENEINFO, an
    intergenic unclassified call, prescriptions, CPIC guidance and a published cohort."""
    seed(spark, settings, "silver.variant_annotations", [
        {"variant_id": v, "build": "GRCh38", "contig": v.split(":")[1], "pos": int(v.split(":")[2]),
         "ref": v.split(":")[3], "alt": v.split(":")[4], "genes": [], "clinvar_significance": sig,
         "clinvar_gene_info": info, "row_hash": 1, "run_id": "r", "updated_at": TS}
        for v, sig, info in ((CYP2C19_STAR2, "drug_response", "CYP2C19:1557"), (INTERGENIC, None, None))])
    seed(spark, settings, "silver.genotypes", [
        {"variant_id": v, "person_id": f"M{p}", "sample_id": f"X{p}", "center_id": "NAT",
         "contig": v.split(":")[1], "pos": int(v.split(":")[2]), "gt": [0, 1], "alt_count": 1,
         "source_checksum": "x", "ingest_run_id": "r", "person_bucket": "0"}
        for p, v in (("P1", CYP2C19_STAR2), ("P2", INTERGENIC))])
    seed(spark, settings, "silver.medications", [
        {"medication_id": f"MED{i}", "person_id": p, "center_id": "PRV-N", "kind": "request",
         "code": code, "code_system": system}
        for i, (p, system, code) in enumerate((("P1", "ATC", "B01AC04"), ("P1", "ATC", "B01AC04"),
                                               ("P2", "RxNorm", "32968"), ("P4", "ATC", "A10BA02")))])
    guideline = {"recommendation": "r", "classification": "Strong", "url": "u", "release": "cpic-test"}
    seed(spark, settings, "silver.pgx_guidance", [
        {**guideline, "drug": "clopidogrel", "gene": "CYP2C19", "phenotype": ph,
         "actionable": ph == "Poor Metabolizer", "guideline": "CPIC clopidogrel 2022", "atc": "B01AC04",
         "rxnorm": "32968"}
        for ph in ("Poor Metabolizer", "Normal Metabolizer")] + [
        {**guideline, "drug": "warfarin", "gene": "CYP2C9", "phenotype": "Poor Metabolizer",
         "actionable": True, "guideline": "CPIC warfarin 2017", "atc": "B01AA03", "rxnorm": "11289"}])
    seed(spark, settings, "gold.cohort_definition", [
        {"cohort_definition_id": 1, "name": "lung_cancer_egfr", "title": "t", "definition_text": "x",
         "checksum": "c", "updated_at": TS}])
    seed(spark, settings, "gold.cohort", [
        {"cohort_definition_id": 1, "subject_id": "P1", "cohort_start_date": date(2025, 3, 1),
         "cohort_end_date": date(2025, 6, 1), "center_id": "CNT-S1A"}])


@pytest.fixture(scope="module")
def kg_lake(tmp_path_factory):
    from jobs import build_kg

    with own_lake(tmp_path_factory.mktemp("kg")) as (spark, settings):
        seed_population(spark, settings)
        seed_more(spark, settings)
        built = build_kg.run(spark, settings)
        prime = build_kg.load(spark, settings, "primekg", [str(PRIMEKG)], "2023-test")
        het = build_kg.load(spark, settings, "hetionet", HETIONET, "v1.0-test")
        yield spark, settings, {"built": built, "primekg": prime, "hetionet": het}


def _edges(spark, settings, source=None) -> set[tuple]:
    rows = spark.read.format("delta").load(f"{settings.lake_root}/gold/kg_edges")
    if source:
        rows = rows.where(F.col("source") == source)
    return {(r.src, r.relation, r.dst, r.evidence) for r in rows.collect()}


def _nodes(spark, settings) -> list:
    return spark.read.format("delta").load(f"{settings.lake_root}/gold/kg_nodes").collect()


def test_lake_graph_counts_and_edges(kg_lake):
    spark, settings, runs = kg_lake
    built = runs["built"]
    assert built.status == "succeeded"
    assert built.details["edges"] == {"carries": 5, "clinvar": 4, "cpic_guideline": 2, "diagnosed_with": 10,
                                      "has_imaging_study": 2, "in_gene": 3, "prescribed": 3}
    assert built.details["nodes"] == {"disease": 5, "drug": 3, "gene": 4, "imaging_study": 2, "person": 9,
                                      "variant": 4}
    edges = {e for e in _edges(spark, settings) if not e[0].startswith(("drug:DrugBank", "Compound"))}
    egfr = "variant:GRCh38:chr7:55191822:T:G"
    assert {("person:P1", "carries", egfr, "alt_count=1; calls=1"),
            ("person:P9", "carries", egfr, "alt_count=1; calls=1"),
            (egfr, "in_gene", "gene:EGFR", "CDS"),
            (egfr, "clinvar", "gene:EGFR", "Pathogenic"),
            (f"variant:{CYP2C19_STAR2}", "clinvar", "gene:CYP2C19", "drug_response"),  # from GENEINFO
            ("gene:CYP2C19", "cpic_guideline", "drug:clopidogrel", "CPIC clopidogrel 2022"),
            ("person:P1", "diagnosed_with", "disease:ICD10:C34", "records=2"),  # C34.1 and C34.9
            ("person:P1", "prescribed", "drug:clopidogrel", "records=2"),  # ATC B01AC04 by drugs.csv
            ("person:P2", "prescribed", "drug:clopidogrel", "records=1"),  # RxNorm 32968: the same drug
            ("person:P4", "prescribed", "drug:ATC:A10BA02", "records=1"),  # not in drugs.csv
            ("person:P7", "has_imaging_study", "imaging_study:STP7", None)} <= edges
    assert not any(INTERGENIC in e[2] for e in edges)  # no gene, no ClinVar: links nothing
    genes = {n.node_id: n for n in _nodes(spark, settings)
             if n.type == "gene" and n.source.startswith("silver")}
    assert genes["gene:EGFR"].source_id == "ENSG00000146648"  # the GTF's gene id, not ClinVar's blank
    assert genes["gene:CYP2C9"].source == "silver.pgx_guidance"


def test_persons_appear_only_as_person_id(kg_lake):
    spark, settings, _ = kg_lake
    persons = [n for n in _nodes(spark, settings) if n.type == "person"]
    assert {n.node_id for n in persons} == {f"person:P{i}" for i in range(1, 10)}  # master persons
    assert all(n.name is None and n.node_id == f"person:{n.source_id}" for n in persons)
    values = {v for n in _nodes(spark, settings) for v in n if isinstance(v, str)}
    values |= {v for e in _edges(spark, settings) for v in e if v}
    source_ids = {f"{prefix}P{i}" for prefix in ("M", "S", "IP", "X") for i in range(1, 10)}
    assert not any(re.search(rf"\b{s}\b", v) for v in values for s in source_ids)  # pseudonyms, samples


def test_external_formats_map_to_lake_ids(kg_lake):
    spark, settings, runs = kg_lake
    prime, het = runs["primekg"], runs["hetionet"]
    assert (prime.status, prime.rows_read, prime.details["skipped"]) == ("succeeded", 16, 1)
    assert (prime.details["edges"], prime.details["folded"]) == (8, 7)  # kg.csv lists each edge both ways
    assert "Broken row" in prime.warnings[0]  # the row left out, as read
    assert (het.details["edges"], het.details["skipped"]) == (9, 1)
    assert {("drug:DrugBank:DB00530", "drug_protein", "gene:EGFR", "target"),
            ("drug:clopidogrel", "drug_protein", "gene:CYP2C19", "enzyme"),  # DrugBank name = drugs.csv name
            ("disease:MONDO:0005233", "disease_phenotype_positive", "phenotype:HP:0012735",
             "phenotype present")} <= _edges(spark, settings, "primekg")
    assert {("drug:DrugBank:DB00530", "binds", "gene:EGFR", "CbG"),
            ("gene:EGFR", "interacts", "gene:GRB2", "GiG"),
            ("pharmacologic_class:NDFRT:N0000175605", "includes", "drug:DrugBank:DB00530", "PCiC"),
            ("disease:DOID:3908", "presents", "symptom:MeSH:D003371", "DpS")} <= _edges(
                spark, settings, "hetionet")
    het_nodes = {n.node_id: n for n in _nodes(spark, settings) if n.source == "hetionet"}
    assert len(het_nodes) == 11
    assert het_nodes["gene:BRCA2"].source_id == "NCBIGene:675"  # a node without edges
    names = {n.node_id: n.name for n in _nodes(spark, settings) if n.source == "primekg"}
    assert names["disease:MONDO:0007429"] == 'hereditary breast "and" ovarian cancer syndrome'


def test_release_is_never_mixed_silently(kg_lake, tmp_path):
    from jobs import build_kg

    spark, settings, _ = kg_lake
    again = build_kg.load(spark, settings, "primekg", [str(PRIMEKG)], "2023-test")
    assert again.status == "skipped"
    with pytest.raises(InputError, match="already loaded as release '2023-test'"):
        build_kg.load(spark, settings, "primekg", [str(PRIMEKG)], "other-name")
    changed = tmp_path / "kg.csv"
    shutil.copy(PRIMEKG, changed)
    with open(changed, "a") as fh:
        fh.write("drug_protein,target,14104,DB01259,drug,Lapatinib,DrugBank,1500,1956,gene/protein,EGFR,NCBI\n")
    with pytest.raises(InputError, match="already loaded from other content.*--replace"):
        build_kg.load(spark, settings, "primekg", [str(changed)], "2023-test")
    assert len(_edges(spark, settings, "primekg")) == 8  # untouched
    replaced = build_kg.load(spark, settings, "primekg", [str(changed)], "2023-test", replace=True)
    assert replaced.details["edges"] == 9
    registered = [r for r in build_kg.releases(spark, settings) if r.source == "primekg"]
    assert [(r.release, r.records) for r in registered] == [("2023-test", 9)]
    with pytest.raises(InputError, match="not a PrimeKG kg.csv"):
        build_kg.load(spark, settings, "primekg", [HETIONET[0]], "bad")


def test_rebuild_keeps_external_releases(kg_lake):
    from jobs import build_kg

    spark, settings, runs = kg_lake
    before = _edges(spark, settings, "hetionet")
    rebuilt = build_kg.run(spark, settings)
    assert rebuilt.details == runs["built"].details
    assert _edges(spark, settings, "hetionet") == before
    lake = spark.read.format("delta").load(f"{settings.lake_root}/gold/kg_edges").where(
        F.col("source").startswith("silver."))
    assert {r.release for r in lake.select("release").distinct().collect()} == {rebuilt.run_id}


def omicslake(*args: str, code: int = 0) -> str:
    from omicslake.cli import main

    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == code, result.output
    return result.output


def _json(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_neighbors_one_and_two_hops(kg_lake):
    one = _json(omicslake("kg", "neighbors", "gene:EGFR", "--relation", "in_gene", "--json"))
    assert {(e["hop"], e["to"], e["relation"]) for e in one} == {
        (1, "variant:GRCh38:chr7:55191822:T:G", "in_gene"),
        (1, "variant:GRCh38:chr7:55200000:A:G", "in_gene")}
    two = _json(omicslake("kg", "neighbors", "gene:CYP2C19", "--hops", "2", "--relation", "clinvar",
                          "--relation", "carries", "--json"))
    assert [(e["hop"], e["to"], e["node"]["type"]) for e in two] == [
        (1, f"variant:{CYP2C19_STAR2}", "variant"), (2, "person:P1", "person")]
    drugs = _json(omicslake("kg", "neighbors", "gene:EGFR", "--relation", "drug_protein", "--json"))
    assert {e["to"] for e in drugs} == {  # PrimeKG's latest release only: Lapatinib came with the replacement
        "drug:DrugBank:DB00530", "drug:DrugBank:DB00317", "drug:DrugBank:DB01259"}
    text = omicslake("kg", "neighbors", "person:P1", "--hops", "2", "--relation", "carries",
                     "--relation", "cpic_guideline", "--relation", "prescribed")
    assert "hop 1  person:P1 -[prescribed]-> drug:clopidogrel" in text
    assert "hop 2  gene:CYP2C19 -[cpic_guideline]-> drug:clopidogrel" in text  # the drug's pharmacogene
    assert "hop 2  person:P2 -[prescribed]-> drug:clopidogrel" in text  # another patient on the same drug
    assert "hop 2  person:P9 -[carries]-> variant:GRCh38:chr7:55191822:T:G" in text


def test_neighbors_caps_the_frontier_and_names_releases(kg_lake):
    out = omicslake("kg", "neighbors", "person:P1", "--max-edges", "2", code=2)
    assert "hop 1 from 1 node(s) reaches more than 2 edges" in out
    out = omicslake("kg", "neighbors", "gene:NOPE", code=2)
    assert "no node 'gene:NOPE'" in out
    out = omicslake("kg", "neighbors", "gene:EGFR", "--release", "v9", code=2)
    assert "no loaded graph release v9" in out
    only_het = _json(omicslake("kg", "neighbors", "gene:EGFR", "--release", "v1.0-test", "--json"))
    assert {e["source"] for e in only_het} == {"hetionet", "silver.variant_annotations"}


def test_documented_sql_runs(kg_lake):
    spark, _, _ = kg_lake
    section = DOCS.read_text().split("## Knowledge graph: multi-hop questions", 1)[1]
    (query,) = re.findall(r"```sql\n(.*?)```", section, re.S)
    rows = spark.sql(query).collect()
    found = {(r.gene, r.drug, r.relation, r.evidence, r.source, r.carriers) for r in rows}
    assert ("gene:EGFR", "drug:DrugBank:DB00530", "drug_protein", "target", "primekg", 1) in found
    assert ("gene:EGFR", "drug:DrugBank:DB00530", "binds", "CbG", "hetionet", 1) in found
    assert {r.gene for r in rows} == {"gene:EGFR"}  # P1's CYP2C19 call is drug_response, not pathogenic


def test_hetionet_gz_header_is_read(tmp_path):
    from connectors.kg_formats import header

    edges = next(p for p in HETIONET if p.endswith(".gz"))
    assert header(edges, "\t") == ["source", "metaedge", "target"]
    plain = tmp_path / "edges.sif"
    plain.write_bytes(gzip.decompress(Path(edges).read_bytes()))
    assert header(str(plain), "\t") == ["source", "metaedge", "target"]
