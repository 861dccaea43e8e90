"""``omicslake demo``: one generated population sent through every feed and every DAG.

One population (``demo_population``) is registered at a county (CNT-S1A, HL7 v2), a city
(CTY-S1, HL7 v2 and its PACS) and the provincial hospital (PRV-N, FHIR R4), and part of it is
sequenced at the national center (NAT). The demo writes its inputs once under
``STATE/demo-data`` (same seed, same bytes), sends the network feeds to the project's own
listeners on loopback (HL7 over MLLP, DICOM by C-STORE) and runs the DAGs with ``dag.test()``:
genomics, clinical, imaging, curation (person linkage, then annotation with generated gene
models and a ClinVar-format file), and the cohorts when ``dags/cohorts.py`` exists. Running it
again ingests nothing twice: files are not rewritten, feeds already sent are not re-sent, and
every input's checksum is already in the lake.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omicslake import person_population as pp
from omicslake.demo_population import SEQ_CENTER, DemoPopulation
from omicslake.settings import Settings

STEPS = 11


@dataclass(frozen=True)
class Inputs:
    """Where the generated files are."""

    vcf: Path
    manifest: Path
    alignments: list[dict]
    hl7_files: dict[str, Path]  # folder per center
    mllp: dict[str, list[str]]  # messages each center sends over MLLP
    fhir: Path
    dicom: list[Path]
    gtf: Path
    clinvar: Path


def demo_alignments(root: Path, center_id: str, sample: str, manifest: Path) -> list[dict]:
    """One BAM (and a target BED) for one sequenced sample."""
    from omicslake.demo_bam import make_bam

    folder = root / "alignments"
    folder.mkdir(parents=True, exist_ok=True)
    bam = folder / f"{sample}.bam"
    if not bam.exists():
        make_bam(folder, sample=sample, n_pairs=1500, seed=7)
    bed = folder / "targets.bed"
    if not bed.exists():
        bed.write_text("chr1\t1000\t9000\nchr2\t500\t4500\n")
    return [{"center_id": center_id, "paths": [str(bam)], "manifest": str(manifest), "targets": str(bed)}]


def genomics_inputs(root: Path, demo: DemoPopulation, sites: int) -> tuple[Path, Path, list[dict]]:
    """The sequencing center's VCF (carriers called at the pathogenic sites), manifest and a BAM."""
    from omicslake.demo_data import make_population_vcf, write_manifest
    from omicslake.demo_population import SITES

    vcf, manifest = root / f"{SEQ_CENTER}.vcf.gz", root / f"{SEQ_CENTER}.manifest.csv"
    samples = sorted(demo.sample_person())
    if not manifest.exists():
        write_manifest(manifest, [(r.extra["sample_id"], r.identifier, r.authority) for r in demo.manifest])
    if not Path(f"{vcf}.tbi").exists():
        person = demo.sample_person()
        carriers = {s: {x for x in samples if person[x] in demo.carriers[s.name]} for s in SITES}
        make_population_vcf(vcf, samples, carriers, sites, seed=2026, pgx=demo.pgx_plan())
    return vcf, manifest, demo_alignments(root, SEQ_CENTER, samples[0], manifest)


def clinical_inputs(root: Path, demo: DemoPopulation) -> tuple[dict[str, Path], dict[str, list[str]]]:
    """HL7: the county sends files; the city sends ADT over MLLP and its lab results as a file."""
    from omicslake.demo_feeds import hl7_messages, write_hl7

    county, city = hl7_messages(demo, pp.COUNTY), hl7_messages(demo, pp.CITY)
    folders = {c: root / "hl7" / c for c in (pp.COUNTY, pp.CITY)}
    write_hl7(folders[pp.COUNTY] / "his-registrations.hl7", county["adt"])
    write_hl7(folders[pp.COUNTY] / "his-diagnoses.hl7", county["dx"])
    write_hl7(folders[pp.COUNTY] / "lis-results.hl7", county["lab"])
    write_hl7(folders[pp.CITY] / "lis-results.hl7", city["lab"])
    return folders, {pp.CITY: city["adt"] + city["dx"]}


def make_inputs(root: Path, demo: DemoPopulation, sites: int) -> Inputs:
    """Every file the demo feeds, written only when missing."""
    from omicslake.demo_feeds import write_fhir
    from omicslake.demo_imaging import write_studies
    from omicslake.demo_references import benign_sites, write_clinvar, write_gtf

    root.mkdir(parents=True, exist_ok=True)
    vcf, manifest, alignments = genomics_inputs(root, demo, sites)
    hl7_files, mllp = clinical_inputs(root, demo)
    fhir = root / "fhir" / pp.PROVINCE
    write_fhir(demo, fhir)
    dicom = write_studies(demo, root / "dicom" / pp.CITY)
    gtf = write_gtf(root / "demo-genes.GRCh38.gtf")
    clinvar = write_clinvar(root / "demo-clinvar.GRCh38.vcf.gz", benign_sites(vcf))
    return Inputs(vcf, manifest, alignments, hl7_files, mllp, fhir, dicom, gtf, clinvar)


def _census(demo: DemoPopulation) -> str:
    groups = ", ".join(f"{k} {len(v)}" for k, v in demo.diseases.items())
    carriers = ", ".join(f"{k} {len(v)}" for k, v in demo.carriers.items())
    return (f"{len(demo.pop.persons)} persons, {len(demo.sample_person())} sequenced; {groups}; "
            f"carriers: {carriers}")


def send_hl7(settings: Settings, root: Path, inputs: Inputs, echo: Callable[[str], None]) -> None:
    """The city's HIS messages over MLLP, once (``root/sent`` remembers)."""
    from omicslake.demo_send import once, send_mllp

    for center, messages in inputs.mllp.items():
        n, now = once(root / "sent" / f"mllp-{center}.json",
                      lambda c=center, m=messages: send_mllp(settings.landing_dir, c, m))
        echo(f"      {center}: {n} message(s) ACKed AA" + ("" if now else " (sent by an earlier run)"))


def send_images(settings: Settings, root: Path, inputs: Inputs, echo: Callable[[str], None]) -> None:
    """The city PACS's studies by C-STORE, once."""
    from omicslake.demo_send import once, send_dicom

    n, now = once(root / "sent" / f"dicom-{pp.CITY}.json",
                  lambda: send_dicom(settings.landing_dir, pp.CITY, inputs.dicom))
    echo(f"      {pp.CITY}: {n} instance(s) stored" + ("" if now else " (sent by an earlier run)"))


def dag_confs(settings: Settings, inputs: Inputs) -> dict[str, dict]:
    """What each DAG run is given (the landing zone folders are where the listeners wrote)."""
    landing = settings.landing_dir
    return {
        "omicslake_genomics": {
            "batches": [{"center_id": SEQ_CENTER, "vcf": str(inputs.vcf), "manifest": str(inputs.manifest)}],
            "alignments": inputs.alignments},
        "omicslake_clinical": {
            "hl7": [{"center_id": pp.COUNTY, "paths": [str(inputs.hl7_files[pp.COUNTY])]},
                    {"center_id": pp.CITY, "paths": [str(landing / "hl7" / pp.CITY),
                                                     str(inputs.hl7_files[pp.CITY])]}],
            "fhir": [{"center_id": pp.PROVINCE, "paths": [str(inputs.fhir)]}], "scan_landing": False},
        # Study dates are shifted per person (the default); cohort rules add the shift back.
        "omicslake_imaging": {"dicom": [{"center_id": pp.CITY, "paths": [str(landing / "dicom" / pp.CITY)]}]},
        "omicslake_curation": {"gtf": str(inputs.gtf), "clinvar": str(inputs.clinvar)},
        "omicslake_cohorts": {},
    }


def table_counts(settings: Settings) -> dict[str, int]:
    """Rows of every table of the lake (the cohort feature tables included)."""
    from omicslake.catalog import lake_tables
    from omicslake.delta_ops import DeltaRsAdapter
    from omicslake.session import get_spark

    tables = lake_tables(settings)
    if settings.engine == "local":
        return {i.name: i.rows for i in (DeltaRsAdapter(settings).info(t.full_name) for t in tables)}
    spark = get_spark(settings)
    return {t.full_name: spark.table(t.full_name).count() for t in tables}


def run_demo(settings: Settings, echo: Callable[[str], None] = print, persons: int = 200,
             sites: int = 300) -> dict[str, Any]:
    """Generate, send and run everything; returns the table row counts and the wall time."""
    from omicslake.airflow_support import test_dag
    from omicslake.demo_population import build

    t0, k = time.perf_counter(), iter(range(1, STEPS + 1))

    def step(text: str) -> None:
        echo(f"[{next(k)}/{STEPS}] {time.perf_counter() - t0:5.0f} s  {text}")

    root = settings.state_dir / "demo-data"
    step(f"generating one population and its feeds in {root}")
    demo = build(persons)
    inputs = make_inputs(root, demo, sites)
    echo(f"      {_census(demo)}")
    confs = dag_confs(settings, inputs)
    step(f"running DAG omicslake_genomics with dag.test() (VCF + manifest from {SEQ_CENTER}, 1 BAM)")
    test_dag("omicslake_genomics", confs["omicslake_genomics"], settings)
    step(f"sending HL7 v2 over MLLP to the loopback listener for {pp.CITY}")
    send_hl7(settings, root, inputs, echo)
    step(f"running DAG omicslake_clinical (HL7: {pp.COUNTY} files, {pp.CITY} MLLP landing + lab file; "
         f"FHIR: {pp.PROVINCE} Bundles)")
    test_dag("omicslake_clinical", confs["omicslake_clinical"], settings)
    step(f"sending DICOM by C-STORE to the loopback Storage SCP for {pp.CITY}")
    send_images(settings, root, inputs, echo)
    step("running DAG omicslake_imaging (study dates shifted per person, PS3.15)")
    test_dag("omicslake_imaging", confs["omicslake_imaging"], settings)
    step("running DAG omicslake_curation (person linkage, then the demo gene models and ClinVar-format file)")
    test_dag("omicslake_curation", confs["omicslake_curation"], settings)
    step("loading a demo drug-target graph (PrimeKG format) next to the lake's knowledge graph")
    load_demo_graph(settings, root)
    step("running DAG omicslake_cohorts")
    test_dag("omicslake_cohorts", confs["omicslake_cohorts"], settings)
    step(f"writing the cohort reports to {settings.state_dir / 'reports'}")
    products = publish_products(settings)
    step("summarising tables")
    return {"tables": table_counts(settings), "seconds": round(time.perf_counter() - t0, 1), **products}


def load_demo_graph(settings: Settings, root: Path) -> None:
    """The external graph the docs' multi-hop query joins with (loaded once per release)."""
    from jobs import build_kg
    from omicslake.demo_references import write_primekg
    from omicslake.session import get_spark

    graph = write_primekg(root / "demo-primekg" / "kg.csv")
    build_kg.load(get_spark(settings), settings, "primekg", [str(graph)], "demo-2026")


def publish_products(settings: Settings) -> dict[str, Any]:
    """Each cohort's size, version and report page, and the medication alerts found."""
    from pyspark.sql import functions as F

    from omicslake.catalog import read_table
    from omicslake.cohort_definitions import load_all
    from omicslake.cohort_reads import publication, report_data
    from omicslake.cohort_report import write_report
    from omicslake.session import get_spark

    spark = get_spark(settings)
    cohorts = {}
    for loaded in load_all(settings.cohorts_dir):
        pub = publication(spark, settings, loaded)
        path = write_report(report_data(spark, settings, loaded, pub),
                            settings.state_dir / "reports" / f"{loaded.name}-v{pub.version}.html")
        cohorts[loaded.name] = {"members": pub.members, "version": pub.version, "report": str(path)}
    alerts = read_table(spark, settings, "gold.medication_alerts").select(
        "drug", "gene", "phenotype", "center_id").orderBy("drug", "center_id").collect()
    called = F.col("status") != "uncallable"
    found = read_table(spark, settings, "silver.pgx_diplotypes").where(called).count()
    return {"cohorts": cohorts, "alerts": [a.asDict() for a in alerts], "pgx_calls": found}
