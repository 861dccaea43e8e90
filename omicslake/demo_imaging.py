"""The city hospital's PACS studies of the demo population, as DICOM Part 10 files.

Each imaging ``Event`` (head CT or brain MR after a stroke, chest CT around a lung cancer
diagnosis) and each study ``person_population`` placed at the city PACS (one from an outside
CD) becomes one single-instance study built on pydicom's small CT/MR test images, with the
person's name, birth date and sex, PatientID = the city MRN and IssuerOfPatientID = its
authority, Modality, BodyPartExamined and the study date. UIDs are derived from the study's
own key, so the same population gives the same bytes (``write_dicom`` of person_population
uses random UIDs, which would land the studies again on every run).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from omicslake import person_population as pp
from omicslake.demo_population import DemoPopulation

TEMPLATES = {"CT": "CT_small.dcm", "MR": "MR_small.dcm"}
DESCRIPTIONS = {("CT", "HEAD"): "CT HEAD WITHOUT CONTRAST", ("MR", "BRAIN"): "MR BRAIN DWI",
                ("CT", "CHEST"): "CT CHEST WITH CONTRAST", ("CT", "ABDOMEN"): "CT ABDOMEN"}


@dataclass(frozen=True)
class Study:
    """One study to send: who (the PACS's patient record), what and when."""

    key: str
    record: pp.Record
    person: pp.Person
    modality: str
    body_part: str
    day: date


def studies(demo: DemoPopulation) -> list[Study]:
    """The imaging events (city registration), then the routine studies of person_population."""
    out = [Study(f"event-{n}", demo.homes[(e.person, pp.CITY)], demo.pop.persons[e.person], e.code,
                 e.body_part, e.day)
           for n, e in enumerate(demo.events) if e.kind == "imaging"]
    rng = random.Random(len(demo.pop.persons))
    for k, r in enumerate(r for r in demo.pop.records if r.fmt == "DICOM"):
        day = date(2025, 1, 6) + timedelta(days=rng.randrange(300))
        out.append(Study(f"routine-{k}", r, demo.pop.persons[r.person], "CT", "ABDOMEN", day))
    return out


def dataset(study: Study):
    """The study's one instance: a test image with this person's header and deterministic UIDs."""
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    def uid(kind: str) -> str:
        return generate_uid(entropy_srcs=["omicslake-demo", study.key, kind])

    ds = pydicom.dcmread(get_testdata_file(TEMPLATES[study.modality]))
    if "OtherPatientIDsSequence" in ds:
        del ds.OtherPatientIDsSequence  # the template's own
    p, r, rng = study.person, study.record, random.Random(study.key)
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = (f"{pp.latin(p.family, rng, surname=True)}^{pp.latin(p.given, rng)}="
                      f"{p.family}^{p.given}")
    ds.PatientID, ds.IssuerOfPatientID = r.identifier, r.authority
    ds.PatientBirthDate, ds.PatientSex = f"{p.birth:%Y%m%d}", p.sex
    ds.StudyInstanceUID, ds.SeriesInstanceUID = uid("study"), uid("series")
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid("instance")
    day = f"{study.day:%Y%m%d}"
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = day
    ds.StudyTime = ds.SeriesTime = "101500"
    ds.Modality, ds.BodyPartExamined = study.modality, study.body_part
    ds.StudyDescription = ds.SeriesDescription = DESCRIPTIONS[(study.modality, study.body_part)]
    ds.AccessionNumber = f"ACC-{study.key}"[:16]
    ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = "1", 1, 1
    ds.InstitutionName = "South City Hospital"
    return ds


def write_studies(demo: DemoPopulation, folder: Path) -> list[Path]:
    """One .dcm per study under ``folder`` (written once; same bytes every time)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for k, study in enumerate(studies(demo)):
        path = folder / f"{k:04d}-{study.key}.dcm"
        if not path.exists():
            dataset(study).save_as(path, enforce_file_format=True)
        out.append(path)
    return out
