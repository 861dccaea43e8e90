"""The demo population and its feeds, without running the pipeline: diseases where they were
meant to go, pharmacogene diplotypes that the matcher calls back from the VCF, prescriptions for
the persons meant to get them, and every file readable by the parser the project reads it with."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import timedelta

import pysam
import pytest

from connectors import pharmcat
from connectors.clinical_records import Source
from connectors.hl7 import split_messages
from omicslake import demo_feeds, demo_imaging, demo_references
from omicslake import demo_population as dp
from omicslake import person_population as pp
from omicslake.demo_data import make_population_vcf, write_manifest
from omicslake.diplotypes import Call, call_gene

KEY = b"demo-test-key-" + b"0" * 32
DEFS = pharmcat.load_all()


@pytest.fixture(scope="module")
def demo() -> dp.DemoPopulation:
    return dp.build()


def events(demo: dp.DemoPopulation, kind: str, code: str | None = None) -> dict[int, list[dp.Event]]:
    out = defaultdict(list)
    for e in demo.events:
        if e.kind == kind and (code is None or e.code.startswith(code)):
            out[e.person].append(e)
    return out


def test_same_seed_same_population_and_events(demo):
    again = dp.build()
    assert again.events == demo.events and again.carriers == demo.carriers
    assert again.diseases == demo.diseases
    assert again.pgx == demo.pgx and again.pgx_no_calls == demo.pgx_no_calls


def test_diseases_go_to_sequenced_adults_and_carriers_to_their_disease(demo):
    sequenced = set(demo.sequenced())
    for name in ("stroke", "hboc", "lung", "t2d", "t1d"):
        persons = demo.diseases[name]
        assert len(persons) == dp.SIZES[name] and set(persons) <= sequenced, name
        assert all(demo.pop.persons[p].birth <= dp.ADULT_BORN_BY for p in persons), name
    assert all(demo.pop.persons[p].sex == "F" for p in demo.diseases["hboc"])
    egfr, brca1, brca2 = (set(demo.carriers[s.name]) for s in dp.SITES)
    assert len(egfr) == dp.CARRIERS["lung"] and egfr <= set(demo.diseases["lung"])
    hboc = set(demo.diseases["hboc"])
    assert len((brca1 | brca2) & hboc) == 10 and not brca1 & brca2
    assert len(brca1 - hboc) == dp.CARRIERS["unaffected_brca1"]  # healthy carriers
    groups = [set(v) for k, v in demo.diseases.items()]
    assert sum(map(len, groups)) == len(set().union(*groups))  # disjoint


def test_each_disease_has_the_records_its_cohort_needs(demo):
    dx = events(demo, "diagnosis")
    lung = {p for p, es in dx.items() if any(e.code.startswith("C34") for e in es)}
    assert lung == set(demo.diseases["lung"])
    assert {e.code for p in demo.diseases["hboc"] for e in dx[p]} == {"C50.9", "C56"}
    labs, rx = events(demo, "hba1c"), events(demo, "metformin")
    for p in demo.diseases["t2d"]:
        first = min(e.day for e in dx[p] if e.code == "E11.9")
        raised = [e for e in labs[p] if e.value >= 6.5 and abs((e.day - first).days) <= 365]
        assert 2 <= len(labs[p]) <= 4 and len(raised) >= 2, p
        assert [e.center_id for e in rx[p]] == [pp.PROVINCE] and rx[p][0].code == "A10BA02"
    assert all(5.0 <= e.value <= 5.6 for p in demo.diseases["normal_hba1c"] for e in labs[p])
    excluded = demo.diseases["t1d"][0]  # type 1 first, coded type 2 later: the T2D exclusion
    codes = sorted(dx[excluded], key=lambda e: e.day)
    assert [e.code for e in codes] == ["E10.9", "E11.9"]
    images = events(demo, "imaging")
    stroke = [p for p in demo.diseases["stroke"] if p in images]
    assert len(stroke) == dp.IMAGED["stroke"]
    for p in stroke:
        (d,), (i,) = dx[p], images[p]
        assert d.center_id == i.center_id == pp.CITY and timedelta(0) <= i.day - d.day <= timedelta(days=3)
        assert (i.code, i.body_part) in {("CT", "HEAD"), ("MR", "BRAIN")}
    chest = {(e.code, e.body_part) for p in demo.diseases["lung"] for e in images.get(p, [])}
    assert chest == {("CT", "CHEST")}
    assert all(dp.FIRST_DAY <= e.day <= dp.LAST_DAY for e in demo.events)


def test_hl7_messages_parse_and_map_to_icd10_and_loinc(demo):
    from connectors import hl7_clinical
    from connectors.hl7 import parse

    src = Source(KEY, pp.CITY, "HL7v2", "HIS", None, "c" * 64, "run")
    seen: dict[str, list] = defaultdict(list)
    for center in (pp.COUNTY, pp.CITY):
        messages = demo_feeds.hl7_messages(demo, center)
        for text in messages["dx"] + messages["lab"] + messages["adt"][:5]:
            header, _ = parse(text)  # hl7apy, tolerant, as the listener and the ingest do
            mapped = hl7_clinical.records(text, src, header.control_id, header.trigger_event)
            for table, rows in mapped.items():
                seen[table] += rows
    hl7_dx = [e for e in demo.events if e.kind == "diagnosis" and e.center_id != pp.PROVINCE]
    assert sorted(r["icd10_code"] for r in seen["conditions"]) == sorted(e.code for e in hl7_dx)
    obs = seen["observations"]
    assert obs and {(r["loinc_code"], r["unit"]) for r in obs} == {("4548-4", "%")}
    assert all(r["value_num"] is not None for r in obs) and seen["encounters"]


def test_fhir_bundles_validate_and_map_to_icd10_loinc_and_atc(demo, tmp_path):
    from fhir.resources.R4B.bundle import Bundle

    from connectors import fhir_clinical
    from connectors.fhir import iter_resources, validate

    paths = demo_feeds.write_fhir(demo, tmp_path)
    assert len(paths) == sum(r.fmt == "FHIR" for r in demo.pop.records)
    src = Source(KEY, pp.PROVINCE, "FHIR", "EHR", None, "c" * 64, "run")
    rows: dict[str, list] = defaultdict(list)
    for path in paths:
        data = path.read_bytes()
        Bundle.model_validate(json.loads(data))
        for found in iter_resources(str(path), data):
            validate(found.resource)
            for table, out in fhir_clinical.records(found.resource, src).items():
                rows[table] += out
    prv = [e for e in demo.events if e.center_id == pp.PROVINCE]
    codes = sorted(e.code for e in prv if e.kind == "diagnosis")
    assert sorted(r["icd10_code"] for r in rows["conditions"]) == codes
    drugs = {dp.METFORMIN[0], dp.CLOPIDOGREL[0], dp.CAPECITABINE[0]}
    assert {(r["code_system"], r["code"]) for r in rows["medications"]} == {("ATC", c) for c in drugs}
    assert len(rows["medications"]) == sum(e.code in drugs for e in prv)
    assert {(r["loinc_code"], r["unit"]) for r in rows["observations"]} == {("4548-4", "%")}
    assert len(rows["observations"]) == sum(e.kind == "hba1c" for e in prv)


def test_dicom_studies_read_back_with_the_city_mrn_and_same_bytes(demo, tmp_path):
    import pydicom

    paths = demo_imaging.write_studies(demo, tmp_path / "a")
    studies = demo_imaging.studies(demo)
    assert len(paths) == len(studies) == sum(e.kind == "imaging" for e in demo.events) + 6
    for path, study in zip(paths, studies, strict=True):
        ds = pydicom.dcmread(path)
        assert (ds.PatientID, ds.IssuerOfPatientID) == (study.record.identifier, study.record.authority)
        assert (ds.Modality, ds.BodyPartExamined, ds.StudyDate) == (study.modality, study.body_part,
                                                                     f"{study.day:%Y%m%d}")
    assert {pydicom.dcmread(p).IssuerOfPatientID for p in paths} == {pp.CITY, "EXT-CD"}
    again = demo_imaging.write_studies(demo, tmp_path / "b")
    assert [p.read_bytes() for p in paths] == [p.read_bytes() for p in again]


def test_vcf_calls_the_carriers_and_the_references_annotate_them(demo, tmp_path):
    from connectors.gtf import read_gene_models

    person = demo.sample_person()
    samples = sorted(person)
    carriers = {s: {x for x in samples if person[x] in demo.carriers[s.name]} for s in dp.SITES}
    vcf = make_population_vcf(tmp_path / "NAT.vcf.gz", samples, carriers, 60, seed=1, bad_line=False)
    with pysam.VariantFile(str(vcf)) as fh:
        assert set(fh.header.contigs) == {"chr1", "chr6", "chr7", "chr10", "chr12", "chr13", "chr17", "chr22"}
        for site in dp.SITES:
            (rec,) = list(fh.fetch(site.contig, site.pos - 1, site.pos))
            het = {s for s in samples if rec.samples[s]["GT"] == (0, 1)}
            assert (rec.ref, rec.alts) == (site.ref, (site.alt,)) and het == carriers[site] != set()
    clinvar = demo_references.write_clinvar(tmp_path / "clinvar.vcf.gz", demo_references.benign_sites(vcf))
    with pysam.VariantFile(str(clinvar)) as fh:
        sig = {(r.chrom, r.pos): r.info["CLNSIG"][0] for r in fh}
    assert {k for k, v in sig.items() if v == "Pathogenic"} == {(s.contig[3:], s.pos) for s in dp.SITES}
    assert "Benign" in sig.values()
    models = read_gene_models(str(demo_references.write_gtf(tmp_path / "genes.gtf"))).regions.to_pandas()
    for site in dp.SITES:
        hit = models[(models.contig == site.contig) & (models.start <= site.pos) & (models.end >= site.pos)]
        assert set(hit.region_class) == {"CDS"} and set(hit.gene_name) == {site.gene}
    manifest = write_manifest(tmp_path / "m.csv", [(r.extra["sample_id"], r.identifier, r.authority)
                                                   for r in demo.manifest])
    assert manifest.read_text().splitlines()[1].split(",")[2] == pp.PRV_MRN_SYSTEM


def test_feeds_reach_the_listeners_over_the_network(demo, tmp_path):
    from omicslake.demo_send import once, send_dicom, send_mllp

    messages = demo_feeds.hl7_messages(demo, pp.CITY)["dx"][:3]
    assert send_mllp(tmp_path, pp.CITY, messages) == 3
    landed = sorted((tmp_path / "hl7" / pp.CITY).glob("*.hl7"))  # a file holds one commit batch
    got = sorted(m.text.rstrip("\r") for p in landed for m in split_messages(p.read_bytes()))
    assert got == sorted(m.rstrip("\r") for m in messages)
    files = demo_imaging.write_studies(demo, tmp_path / "dcm")[:2]
    assert send_dicom(tmp_path, pp.CITY, files) == 2
    assert len(list((tmp_path / "dicom" / pp.CITY).glob("*.dcm"))) == 2
    marker = tmp_path / "sent.json"
    assert once(marker, lambda: 5) == (5, True) and once(marker, lambda: 9) == (5, False)


# --- pharmacogenes ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pgx_vcf(demo, tmp_path_factory) -> str:
    samples = sorted(demo.sample_person())
    folder = tmp_path_factory.mktemp("pgx")
    first = make_population_vcf(folder / "a.vcf.gz", samples, {}, 30, seed=5, pgx=demo.pgx_plan())
    again = make_population_vcf(folder / "b.vcf.gz", samples, {}, 30, seed=5, pgx=demo.pgx_plan())
    assert first.read_bytes() == again.read_bytes()  # same seed, same bytes
    return str(first)


def vcf_calls(vcf: str, gene: pharmcat.GeneDefinition) -> dict[str, dict[int, Call]]:
    """Each sample's calls at the gene's defining positions, as ``jobs/call_pgx`` reads them (a
    position without a record stays out: a no-call); every position must have one record."""
    out: dict[str, dict[int, Call]] = defaultdict(dict)
    with pysam.VariantFile(vcf) as fh:
        for i, p in enumerate(gene.positions):
            (rec,) = list(fh.fetch(p.contig, p.pos - 1, p.pos))
            assert (rec.pos, rec.ref, rec.alts) == (p.pos, p.ref, p.alts), (gene.gene, p)
            bases = [rec.ref, *rec.alts]
            for s, call in rec.samples.items():
                a1, a2 = (None if g is None else bases[g] for g in call["GT"])
                out[s][i] = Call(a1, a2, call.phased)
    return out


def test_vcf_calls_every_pharmacogene_position_in_every_sample(demo, pgx_vcf):
    plan = demo.pgx_plan()
    assert plan.genes == dp.PGX_GENES and set(plan.diplotypes) == set(demo.sample_person())
    for name in dp.PGX_GENES:
        gene = DEFS[name]
        for sample, calls in vcf_calls(pgx_vcf, gene).items():
            assert len(calls) == len(gene.positions)
            gaps = {gene.positions[i].pos for i, c in calls.items() if not c.called}
            assert gaps == {pos for s, g, pos in plan.no_calls if (s, g) == (sample, name)}


def test_matcher_calls_back_the_planned_diplotypes(demo, pgx_vcf):
    person = demo.sample_person()
    seen: dict[tuple[str, str], int] = defaultdict(int)
    for name in dp.PGX_GENES:
        for sample, calls in vcf_calls(pgx_vcf, DEFS[name]).items():
            want, got = demo.diplotype(person[sample], name), call_gene(DEFS[name], calls)
            assert got.diplotype == want.name, (sample, name, got)
            partial = any(s == sample and g == name for s, g, _ in demo.pgx_plan().no_calls)
            assert got.status == ("partial" if partial else "called"), (sample, name, got.reason)
            assert got.phased == (want.phased and want.allele1 != want.allele2)
            seen[(name, got.phenotype)] += 1
    assert seen[("CYP2C19", "Intermediate Metabolizer")] + seen[("CYP2C19", "Poor Metabolizer")] == 8
    assert seen[("CYP2C19", "Rapid Metabolizer")] == 3
    assert seen[("DPYD", "Intermediate Metabolizer")] == 3 and seen[("TPMT", "Intermediate Metabolizer")] == 2
    assert seen[("SLCO1B1", "Decreased Function")] == 2 and seen[("CYP2C9", "Intermediate Metabolizer")] == 2
    assert any(d.phased for by_person in demo.pgx.values() for d in by_person.values())


def test_prescriptions_go_to_genotyped_patients_at_the_province(demo, tmp_path):
    """Clopidogrel for 5 CYP2C19 IM/PM and 2 normal metabolizers among the stroke patients,
    capecitabine for 2 DPYD IM and 1 normal breast cancer patient, each in the Bundle of the
    provincial Patient whose MRN the person's manifest row names."""
    paths = demo_feeds.write_fhir(demo, tmp_path)
    by_id = {r.identifier: r for r in demo.pop.records if r.fmt == "FHIR"}
    mrn = {r.person: r.identifier for r in demo.manifest}
    got: dict[str, list[int]] = defaultdict(list)
    for path in paths:
        bundle = json.loads(path.read_text())
        patient = by_id[bundle["id"].removeprefix("bundle-")]
        for entry in bundle["entry"]:
            res = entry["resource"]
            if res["resourceType"] == "MedicationRequest":
                (coding,) = res["medicationCodeableConcept"]["coding"]
                assert coding["system"] == "http://www.whocc.no/atc"
                got[coding["code"]].append(patient.person)
                if coding["code"] != dp.METFORMIN[0]:  # the sample's person is this Patient
                    assert patient.extra["mrn"] == mrn[patient.person]
    phenotypes = {drug: sorted(DEFS[gene].phenotypes[tuple(sorted((d.allele1, d.allele2)))][0]
                               for d in (demo.diplotype(p, gene) for p in got[drug[0]]))
                  for drug, gene in ((dp.CLOPIDOGREL, "CYP2C19"), (dp.CAPECITABINE, "DPYD"))}
    assert phenotypes[dp.CLOPIDOGREL] == ["Intermediate Metabolizer"] * 4 + ["Normal Metabolizer"] * 2 + [
        "Poor Metabolizer"]
    assert phenotypes[dp.CAPECITABINE] == ["Intermediate Metabolizer"] * 2 + ["Normal Metabolizer"]
    assert set(got[dp.CLOPIDOGREL[0]]) <= set(demo.diseases["stroke"])
    breast = {e.person for e in demo.events if e.code == "C50.9"}
    assert set(got[dp.CAPECITABINE[0]]) <= breast
    assert sorted(got[dp.METFORMIN[0]]) == demo.diseases["t2d"]
