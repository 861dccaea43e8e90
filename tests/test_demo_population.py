"""The demo population and its feeds, without running the pipeline: diseases where they were
meant to go, and every file readable by the parser the project reads it with."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import timedelta

import pysam
import pytest

from connectors.clinical_records import Source
from omicslake import demo_feeds, demo_imaging, demo_references
from omicslake import demo_population as dp
from omicslake import person_population as pp
from omicslake.demo_data import make_population_vcf, write_manifest

KEY = b"demo-test-key-" + b"0" * 32


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
    assert {(r["code_system"], r["code"]) for r in rows["medications"]} == {("ATC", "A10BA02")}
    assert len(rows["medications"]) == len(demo.diseases["t2d"])
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
        assert set(fh.header.contigs) == {"chr1", "chr7", "chr13", "chr17", "chr22"}
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
    landed = sorted((tmp_path / "hl7" / pp.CITY).glob("*.hl7"))
    assert sorted(p.read_bytes().decode() for p in landed) == sorted(messages)
    files = demo_imaging.write_studies(demo, tmp_path / "dcm")[:2]
    assert send_dicom(tmp_path, pp.CITY, files) == 2
    assert len(list((tmp_path / "dicom" / pp.CITY).glob("*.dcm"))) == 2
    marker = tmp_path / "sent.json"
    assert once(marker, lambda: 5) == (5, True) and once(marker, lambda: 9) == (5, False)
