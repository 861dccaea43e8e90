"""HL7 v2 and FHIR throughput: MLLP to landing, HL7 files and FHIR NDJSON to bronze + silver.

    python benchmarks/clinical_ingest.py            # HL7 25,000 and 50,000; FHIR 50,000 and 100,000
    python benchmarks/clinical_ingest.py --quick    # HL7 2,000; FHIR 4,000; MLLP 1,000; one size
    python benchmarks/clinical_ingest.py --hl7 10000 --fhir 20000 --mllp 4000   # sizes of your own
    python benchmarks/clinical_ingest.py --ceilings-only                        # the library rows only

Inputs are generated, seeded (same arguments, same bytes), at realistic sizes and shapes:
- HL7 v2: a hospital's mixed feed (ADT^A01/A03/A04/A08/A40 with NK1, AL1, DG1, PR1; ORU^R01 with
  one or two panels of 1-7 OBX, comments and NTE; RDE^O11, OMP^O09 and RAS^O17 pharmacy orders
  and administrations; VXU^V04), v2.3 to v2.5.1, Chinese and pinyin names, escape sequences,
  5,000 patients, one message in 2,000 with a segment no HL7 version defines (quarantined), in
  seven files, one of them holding 40% of the messages (so splitting inside a file matters);
- FHIR R4: a bulk export shaped like Synthea's, one NDJSON file per resource type (Observation
  40%, then Encounter, Procedure, Claim, ExplanationOfBenefit, DiagnosticReport,
  MedicationRequest, DocumentReference, Condition, Immunization, Patient, CarePlan and
  AllergyIntolerance), with US Core profiles, extensions, narrative and base64 notes.

Rows, for each size (one JSON line each, then a table): MLLP -> durable landing (8 senders, each
waiting for its ACK); that landing -> bronze + silver; HL7 files -> bronze + silver; FHIR NDJSON
-> bronze + silver. Each ``omicslake`` command runs as its own process, timed whole, with its
peak RSS (wait4). Two sizes show whether memory stays flat. Measured once in the same run, on
one core (CPU time, so other load on the machine counts less): the library ceilings (hl7apy's
tolerant parse alone, with and without groups, per segment; python-hl7's parse; fhir.resources
validation alone) and the connectors' per-message costs (``hl7.validate``, cold and warm;
``hl7_clinical.records``; FHIR read + validate + silver mapping). Inputs and lakes go to
benchmarks/out/clinical (removed afterwards unless --keep); results to benchmarks/out/clinical.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectors.mllp import END, frame  # noqa: E402
from omicslake.net import free_port, wait_for_port  # noqa: E402

CENTER = "CTY-S1"  # a center of the demo registry: the listener refuses unknown senders
OUT = ROOT / "benchmarks" / "out" / "clinical"


# --- HL7 v2: a hospital's mixed feed ----------------------------------------------------------

FAMILY = (("WANG", "王"), ("LI", "李"), ("ZHANG", "张"), ("LIU", "刘"), ("CHEN", "陈"), ("YANG", "杨"),
          ("HUANG", "黄"), ("ZHAO", "赵"), ("WU", "吴"), ("ZHOU", "周"), ("XU", "徐"), ("OUYANG", "欧阳"))
GIVEN = (("WEI", "伟"), ("FANG", "芳"), ("NA", "娜"), ("MIN", "敏"), ("JING", "静"), ("LEI", "磊"),
         ("QIANG", "强"), ("YAN", "艳"), ("JUN", "军"), ("TAO", "涛"), ("XIAOMING", "晓明"),
         ("LIHUA", "丽华"))
CITIES = (("Hangzhou", "ZJ", "310000"), ("Ningbo", "ZJ", "315000"), ("Wenzhou", "ZJ", "325000"),
          ("Shaoxing", "ZJ", "312000"))
ROADS = ("Wensan", "Xueyuan", "Zhongshan", "Jiefang")
WARDS = (("I", "MED3"), ("I", "CARD"), ("I", "NEURO"), ("O", "ENDO"), ("O", "CLINIC"), ("E", "ER"))
# (panel LOINC, name): [(LOINC, name, UCUM unit, low, high, mean, sd)]
PANELS = {
    ("58410-2", "CBC panel - Blood by Automated count"): [
        ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 12.0, 16.0, 13.5, 1.8),
        ("6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL", 4.0, 11.0, 7.0, 2.5),
        ("789-8", "Erythrocytes [#/volume] in Blood by Automated count", "10*6/uL", 4.2, 5.4, 4.8, 0.5),
        ("4544-3", "Hematocrit [Volume Fraction] of Blood by Automated count", "%", 36.0, 46.0, 41.0, 4.0),
        ("787-2", "MCV [Entitic volume] by Automated count", "fL", 80.0, 100.0, 90.0, 6.0),
        ("777-3", "Platelets [#/volume] in Blood by Automated count", "10*3/uL", 150.0, 400.0, 250.0, 60.0),
    ],
    ("51990-0", "Basic metabolic panel - Blood"): [
        ("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", 70.0, 99.0, 98.0, 25.0),
        ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 0.6, 1.3, 1.0, 0.3),
        ("3094-0", "Urea nitrogen [Mass/volume] in Serum or Plasma", "mg/dL", 7.0, 20.0, 14.0, 5.0),
        ("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", 135.0, 145.0, 140.0, 3.0),
        ("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", 3.5, 5.1, 4.2, 0.4),
        ("2075-0", "Chloride [Moles/volume] in Serum or Plasma", "mmol/L", 98.0, 107.0, 102.0, 3.0),
        ("2028-9", "Carbon dioxide, total [Moles/volume] in Serum or Plasma", "mmol/L", 22.0, 29.0, 25.0,
         2.0),
    ],
    ("57698-3", "Lipid panel with direct LDL - Serum or Plasma"): [
        ("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", 0.0, 200.0, 190.0, 35.0),
        ("2571-8", "Triglyceride [Mass/volume] in Serum or Plasma", "mg/dL", 0.0, 150.0, 140.0, 60.0),
        ("2085-9", "Cholesterol in HDL [Mass/volume] in Serum or Plasma", "mg/dL", 40.0, 60.0, 50.0, 12.0),
        ("18262-6", "Cholesterol in LDL [Mass/volume] in Serum or Plasma by Direct assay", "mg/dL", 0.0,
         130.0, 115.0, 30.0),
    ],
    ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood"): [
        ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", 4.0, 5.6, 6.2, 1.2),
    ],
}
DIAGNOSES = (("E11.9", "Type 2 diabetes mellitus without complications"), ("I10", "Essential hypertension"),
             ("I63.9", "Cerebral infarction, unspecified"), ("C34.90", "Malignant neoplasm of lung"),
             ("J18.9", "Pneumonia, unspecified organism"), ("N18.3", "Chronic kidney disease, stage 3"))
ALLERGIES = (("DA", "7980^Penicillin G^RXNORM", "SV", "Anaphylaxis~Urticaria"),
             ("FA", "227493005^Cashew nuts^SCT", "MO", "41291007^Angioedema^SCT"),
             ("EA", "256277009^Grass pollen^SCT", "MI", "Rhinitis"), ("DA", "^Sulfonamides", "MO", "Rash"))
PROCEDURES = (("02703DZ^Dilation of Coronary Artery, One Artery with Intraluminal Device^I10P", "90"),
              ("93458^Catheter placement in coronary artery for coronary angiography^C4", "30"),
              ("0DTJ4ZZ^Resection of Appendix, Percutaneous Endoscopic Approach^I10P", "60"))
MG, ORAL = "mg^milligram^UCUM", "PO^Oral^HL70162"
DRUGS = (("860975^Metformin hydrochloride 500 MG Oral Tablet^RXNORM", "500", MG, ORAL),
         ("197361^Amlodipine 5 MG Oral Tablet^RXNORM", "5", MG, ORAL),
         ("J01CR02^Amoxicillin and beta-lactamase inhibitor^WC", "1.2", "g^gram^UCUM",
          "IV^Intravenous^HL70162"),
         ("617314^Atorvastatin 10 MG Oral Tablet^RXNORM", "10", MG, ORAL),
         ("309362^Clopidogrel 75 MG Oral Tablet^RXNORM", "75", MG, ORAL))
VACCINES = (("140^Influenza, seasonal, injectable, preservative free^CVX", "0.5", "PMC^Sanofi Pasteur^MVX"),
            ("08^Hep B, adolescent or pediatric^CVX", "0.5", "MSD^Merck and Co., Inc.^MVX"),
            ("03^MMR^CVX", "0.5", "MSD^Merck and Co., Inc.^MVX"),
            ("208^COVID-19, mRNA, LNP-S, PF, 30 mcg/0.3 mL dose^CVX", "0.3", "PFR^Pfizer, Inc^MVX"))
# (kind, weight, versions it is sent in); TQ1 (pharmacy) exists from v2.5 on
HL7_MIX = (("oru", 36, ("2.5.1", "2.5", "2.4", "2.3")), ("a08", 14, ("2.5.1", "2.5", "2.4")),
           ("a01", 10, ("2.5.1", "2.5", "2.3")), ("a04", 8, ("2.5.1", "2.4")), ("a03", 5, ("2.5.1", "2.5")),
           ("rde", 9, ("2.5.1",)), ("omp", 3, ("2.5.1",)), ("ras", 5, ("2.5.1",)), ("vxu", 6, ("2.5.1",)),
           ("proc", 3, ("2.5.1",)), ("a40", 1, ("2.5.1",)))
TRIGGERS = {"a01": "A01", "a03": "A03", "a04": "A04", "a08": "A08", "proc": "A08", "a40": "A40"}
TYPES = {"oru": "ORU^R01^ORU_R01", "rde": "RDE^O11^RDE_O11", "omp": "OMP^O09^OMP_O09",
         "ras": "RAS^O17^RAS_O17", "vxu": "VXU^V04^VXU_V04", "a40": "ADT^A40^ADT_A39"}
APPS = {"oru": "LIS", "rde": "PHARMSYS", "omp": "CPOE", "ras": "EMAR", "vxu": "IMMREG"}


class Hl7Feed:
    """Messages of one hospital's feed; ``message(i)``, called in order, is the same for the
    same seed."""

    def __init__(self, seed: int = 11, patients: int = 5000):
        self.rng = random.Random(seed)
        self.patients = patients
        self.kinds = [(k, v) for k, w, v in HL7_MIX for _ in range(w)]
        self._pid: dict[int, str] = {}

    def pid(self, p: int) -> str:
        """Patient ``p``'s PID, as the registration desk wrote it (the same in every message)."""
        if p not in self._pid:
            r = random.Random(p)
            (fam, fam_zh), (giv, giv_zh) = r.choice(FAMILY), r.choice(GIVEN)
            city, prov, postal = r.choice(CITIES)
            born = f"{r.randint(1935, 2020)}{r.randint(1, 12):02d}{r.randint(1, 28):02d}"
            ids = f"MRN{p:07d}^^^{CENTER}&1.2.156.112&ISO^MR"
            if r.random() < 0.6:
                ids += f"~3301{r.randint(10**13, 10**14 - 1)}^^^CN-NIC^NNCHN"
            names = f"{fam}^{giv}^^^^^L" + (f"~{fam_zh}^{giv_zh}^^^^^A" if r.random() < 0.7 else "")
            phone = f"^PRN^PH^^^^1{r.randint(3 * 10**9, 9 * 10**9)}" if r.random() < 0.8 else ""
            address = f"{r.randint(1, 300)} {r.choice(ROADS)} Rd^^{city}^{prov}^{postal}^CN"
            self._pid[p] = f"PID|1||{ids}||{names}||{born}|{r.choice('MF')}|||{address}||{phone}"
        return self._pid[p]

    def message(self, i: int) -> str:
        r = self.rng
        kind, versions = r.choice(self.kinds)
        version = r.choice(versions)
        p = r.randrange(self.patients)
        day = 20250101 + (i // 2000) % 28 + 100 * ((i // 56000) % 12)
        when = f"{day}{r.randint(0, 23):02d}{r.randint(0, 59):02d}{r.randint(0, 59):02d}" + (
            "+0800" if version == "2.5.1" else "")
        trigger = TRIGGERS.get(kind)
        mtype = TYPES.get(kind, f"ADT^{trigger}^ADT_A01")
        segs = [f"MSH|^~\\&|{APPS.get(kind, 'HIS')}|{CENTER}-HOSP|OMICSLAKE|NAT|{when}||{mtype}|"
                f"{kind.upper()}{i:09d}|P|{version}|||AL|NE|||UNICODE UTF-8"]
        if trigger:
            segs.append(f"EVN|{trigger}|{when}")
        segs.append(self.pid(p))
        if kind == "a40":
            segs.append(f"MRG|MRN{r.randrange(self.patients):07d}^^^{CENTER}^MR")
            return "\r".join(segs) + "\r"
        if kind != "vxu" or r.random() < 0.3:
            cls, ward = r.choice(WARDS)
            pv1 = ["PV1", "1", cls, f"{ward}^{r.randint(100, 599)}^{r.randint(1, 4)}^{CENTER}-HOSP", "", "",
                   "", f"{r.randint(1000, 9999)}^LI^NA^^^DR"] + [""] * 38
            pv1[10], pv1[19], pv1[44] = ward, f"V{p:07d}-{day}^^^{CENTER}^VN", when
            if kind == "a03":
                pv1[45] = when
            segs.append("|".join(pv1))
        getattr(self, f"_{'adt' if kind in TRIGGERS else kind}")(r, segs, i, kind, when)
        if i % 2000 == 1999:  # a site's own mistake: a segment no HL7 version defines
            segs.append("XYZ|not a segment hl7apy knows")
        return "\r".join(segs) + "\r"

    def _adt(self, r: random.Random, segs: list[str], i: int, kind: str, when: str) -> None:
        if kind == "a01" and r.random() < 0.5:
            segs.append(f"NK1|1|{r.choice(FAMILY)[0]}^{r.choice(GIVEN)[0]}|SPO^Spouse^HL70063||"
                        f"^PRN^PH^^^^1{r.randint(3 * 10**9, 9 * 10**9)}")
        for k in range(r.choice((0, 0, 1, 2, 3)) if kind != "proc" else 1):
            code, text = r.choice(DIAGNOSES)
            segs.append(f"DG1|{k + 1}||{code}^{text}^I10||{when}|{r.choice('AFW')}")
        for k in range(r.choice((0, 0, 0, 1, 2)) if kind in ("a01", "a04") else 0):
            cat, code, severity, reaction = r.choice(ALLERGIES)
            segs.append(f"AL1|{k + 1}|{cat}|{code}|{severity}|{reaction}|20150410")
        for k in range(r.randint(1, 3) if kind == "proc" else 0):
            code, minutes = r.choice(PROCEDURES)
            segs.append(f"PR1|{k + 1}||{code}||{when}|P|{minutes}")

    def _oru(self, r: random.Random, segs: list[str], i: int, kind: str, when: str) -> None:
        for k in range(r.choice((1, 1, 2))):
            (panel, panel_name), tests = r.choice(list(PANELS.items()))
            order = f"ORD{i}-{k}"
            segs.append(f"ORC|RE|{order}^HIS|FIL{i}-{k}^LIS")
            obr = ["OBR", str(k + 1), f"{order}^HIS", f"FIL{i}-{k}^LIS", f"{panel}^{panel_name}^LN"]
            obr += [""] * 21
            obr[7], obr[22], obr[24], obr[25] = when, when, "LAB", "F"
            segs.append("|".join(obr))
            for n, (loinc, name, unit, low, high, mean, sd) in enumerate(tests, 1):
                value = max(0.1, r.gauss(mean, sd))
                flag = "H" if value > high else "L" if value < low else "N"
                segs.append(f"OBX|{n}|NM|{loinc}^{name}^LN||{value:.1f}|{unit}^{unit}^UCUM|"
                            f"{low:g}-{high:g}|{flag}|||F|||{when}")
            if r.random() < 0.2:
                segs.append(f"OBX|{len(tests) + 1}|ST|8251-1^Service comment^LN||Fasting \\S\\ verified"
                            f"\\E\\ok, sample {r.randint(1, 9)} of 9||||||F")
            if r.random() < 0.15:
                segs.append("NTE|1|L|Result checked \\T\\ released by the laboratory")

    def _rde(self, r: random.Random, segs: list[str], i: int, kind: str, when: str) -> None:
        for k in range(r.choice((1, 1, 2, 3))):
            drug, dose, unit, route = r.choice(DRUGS)
            status = r.choice(("IP", "SC", "CM", "DC"))
            segs.append(f"ORC|NW|ORD{i}-{k}^HIS|RX{i}-{k}^PHARMSYS||{status}||||{when}|||"
                        f"{r.randint(1000, 9999)}^WANG^JUN^^^DR")
            segs.append(f"TQ1|1||Q12H^Every 12 hours^HL70335||||{when}")
            if kind == "omp":
                segs.append(f"RXO|{drug}|{dose}||{unit}|TAB^Tablet^HL70292")
            else:
                segs.append(f"RXE|1^Q12H^^{when}^^R|{drug}|{dose}||{unit}|TAB^Tablet^HL70292||||14|"
                            "TAB^Tablet^HL70292|0")
            segs.append(f"RXR|{route}")

    _omp = _rde

    def _ras(self, r: random.Random, segs: list[str], i: int, kind: str, when: str) -> None:
        for k in range(r.choice((1, 2))):
            drug, dose, unit, route = r.choice(DRUGS)
            segs.append(f"ORC|RE|ORD{i}-{k}^HIS|RX{i}-{k}^PHARMSYS||IP")
            segs.append(f"RXA|1|{k + 1}|{when}|{when}|{drug}|{dose}|{unit}|TAB^Tablet^HL70292"
                        "||||||||||||CP|A")
            segs.append(f"RXR|{route}")

    def _vxu(self, r: random.Random, segs: list[str], i: int, kind: str, when: str) -> None:
        segs.append(f"NK1|1|{r.choice(FAMILY)[0]}^{r.choice(GIVEN)[0]}^^^^^L|MTH^Mother^HL70063")
        for k in range(r.choice((1, 1, 2, 3))):
            vaccine, dose, mvx = r.choice(VACCINES)
            segs.append(f"ORC|RE||IZ-{i}-{k}^NDA")
            segs.append(f"RXA|0|1|{when}|{when}|{vaccine}|{dose}|mL^MilliLiter^UCUM||00^New immunization "
                        f"record^NIP001||||||L{r.randint(10**5, 10**6)}|20271231|{mvx}|||CP|A")
            segs.append("RXR|C28161^Intramuscular^NCIT|LD^Left Deltoid^HL70163")
            segs.append("OBX|1|CE|64994-7^Vaccine funding program eligibility category^LN|1|V02^VFC "
                        f"eligible^HL70064||||||F|||{when[:8]}")


def write_hl7(folder: Path, n: int, seed: int = 11) -> list[Path]:
    """``n`` messages in seven files, one with 40% of them, six with 10% each (CR between
    segments, LF after each message, as HIS exports are written)."""
    folder.mkdir(parents=True, exist_ok=True)
    feed = Hl7Feed(seed)
    sizes = [n * 4 // 10] + [n // 10] * 6
    sizes[0] += n - sum(sizes)
    paths, i = [], 0
    for k, size in enumerate(sizes):
        path = folder / (f"{CENTER}-export-large.hl7" if k == 0 else f"{CENTER}-day{k}.hl7")
        with open(path, "w", encoding="utf-8", newline="") as fh:
            for _ in range(size):
                fh.write(feed.message(i) + "\n")
                i += 1
        paths.append(path)
    return paths


# --- FHIR R4: a Synthea-shaped bulk export ---------------------------------------------------

SYNTHEA = "http://synthetichealth.github.io/synthea"
US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition"
SCT, LOINC, UCUM = "http://snomed.info/sct", "http://loinc.org", "http://unitsofmeasure.org"
RXNORM, CVX = "http://www.nlm.nih.gov/research/umls/rxnorm", "http://hl7.org/fhir/sid/cvx"
TERM = "http://terminology.hl7.org/CodeSystem"
XHTML = '<div xmlns="http://www.w3.org/1999/xhtml">'
BLUEBUTTON = "https://bluebutton.cms.gov/resources"
# resource type -> share of the export, roughly Synthea's
FHIR_MIX = {"Observation": 40, "Encounter": 8, "Procedure": 8, "Claim": 8, "ExplanationOfBenefit": 8,
            "DiagnosticReport": 6, "MedicationRequest": 5, "DocumentReference": 4, "Condition": 4,
            "Immunization": 3, "Patient": 2, "CarePlan": 2, "AllergyIntolerance": 2}
VITALS = (("8302-2", "Body Height", "cm", 165.0, 12.0), ("29463-7", "Body Weight", "kg", 68.0, 14.0),
          ("39156-5", "Body mass index (BMI) [Ratio]", "kg/m2", 24.0, 4.0),
          ("8867-4", "Heart rate", "/min", 75.0, 12.0), ("9279-1", "Respiratory rate", "/min", 15.0, 2.0),
          ("72514-3", "Pain severity - 0-10 verbal numeric rating [Score] - Reported", "{score}", 2.0, 2.0))
LABS = [t for tests in PANELS.values() for t in tests]
_KIND_IDS: dict[str, str] = {}


def _cc(system: str, code: str, display: str) -> dict:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def _ref(kind: str, rid: str, display: str | None = None) -> dict:
    return {"reference": f"{kind}/{rid}", **({"display": display} if display else {})}


def _qty(value: float, unit: str) -> dict:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def _money(value: float) -> dict:
    return {"value": round(value, 2), "currency": "CNY"}


def rid(kind: str, i: int) -> str:
    """A UUID-shaped logical id, the same for the same type and number."""
    prefix = _KIND_IDS.get(kind) or _KIND_IDS.setdefault(kind, f"{zlib.crc32(kind.encode()):08x}")
    return f"{prefix}-{i >> 48 & 0xFFFF:04x}-4{i >> 36 & 0xFFF:03x}-8000-{i & 0xFFFFFFFFF:012x}"


class FhirExport:
    """Resources of a bulk export of ``n`` resources; ``resource(kind, i)``, called in order, is
    the same for the same seed. References point at the export's own Patients and Encounters."""

    def __init__(self, n: int, seed: int = 11):
        self.rng = random.Random(seed)
        self.n = n
        self.patients = max(1, n * FHIR_MIX["Patient"] // 100)
        self.encounters = max(1, n * FHIR_MIX["Encounter"] // 100)
        self.hospital = _ref("Organization", rid("Organization", 1), "CTY-S1 HOSPITAL")
        self.ward = _ref("Location", rid("Location", 1), "CTY-S1 HOSPITAL")

    def when(self) -> str:
        r = self.rng.random
        return (f"20{10 + int(r() * 16)}-{1 + int(r() * 12):02d}-{1 + int(r() * 28):02d}T{int(r() * 24):02d}:"
                f"{int(r() * 60):02d}:{int(r() * 60):02d}+08:00")

    def doctor(self) -> dict:
        return _ref("Practitioner", rid("Practitioner", int(self.rng.random() * 50)), "Dr. Li Na")

    def resource(self, kind: str, i: int) -> dict:
        r = self.rng
        res = {"resourceType": kind, "id": rid(kind, i),
               "meta": {"profile": [f"{US_CORE}/us-core-{kind.lower()}"],
                        "lastUpdated": f"2026-0{1 + int(r.random() * 9)}-{10 + int(r.random() * 18)}T08:"
                                       f"{10 + int(r.random() * 50)}:00.000+00:00"}}
        subject = _ref("Patient", rid("Patient", int(r.random() * self.patients)))
        encounter = _ref("Encounter", rid("Encounter", int(r.random() * self.encounters)))
        res.update(getattr(self, f"_{kind}")(r, i, subject, encounter, self.when()))
        return res

    def _Patient(self, r, i, subject, encounter, when) -> dict:
        (fam, fam_zh), (giv, giv_zh) = r.choice(FAMILY), r.choice(GIVEN)
        city, prov, postal = r.choice(CITIES)
        geo = [{"url": "latitude", "valueDecimal": 30.2 + r.random()},
               {"url": "longitude", "valueDecimal": 120.1 + r.random()}]
        return {
            "id": rid("Patient", i),
            "text": {"status": "generated",
                     "div": f'{XHTML}Generated by <a href="{SYNTHEA}">Synthea</a></div>'},
            "extension": [
                {"url": f"{US_CORE}/us-core-birthsex", "valueCode": r.choice("MF")},
                {"url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace",
                 "valueAddress": {"city": city, "state": prov, "country": "CN"}},
                {"url": f"{SYNTHEA}/disability-adjusted-life-years",
                 "valueDecimal": round(r.random() * 3, 6)}],
            "identifier": [
                {"system": "https://github.com/synthetichealth/synthea", "value": rid("Patient", i)},
                {"type": _cc(f"{TERM}/v2-0203", "MR", "Medical Record Number"),
                 "system": "http://hospital.smarthealthit.org", "value": f"MRN{i:07d}"},
                {"type": _cc(f"{TERM}/v2-0203", "NNCHN", "National Person Identifier"),
                 "system": "urn:oid:2.16.156", "value": f"3301{r.randint(10**13, 10**14 - 1)}"}],
            "name": [{"use": "official", "family": fam_zh, "given": [giv_zh]},
                     {"use": "usual", "family": fam.title(), "given": [giv.title()]}],
            "telecom": [{"system": "phone", "value": f"1{r.randint(3 * 10**9, 9 * 10**9)}", "use": "mobile"}],
            "gender": r.choice(("male", "female")),
            "birthDate": f"19{r.randint(30, 99)}-0{r.randint(1, 9)}-1{r.randint(0, 9)}",
            "address": [{"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/geolocation",
                                        "extension": geo}],
                         "line": [f"{r.randint(1, 999)} Wensan Rd"], "city": city, "state": prov,
                         "postalCode": postal, "country": "CN"}],
            "maritalStatus": _cc(f"{TERM}/v3-MaritalStatus", "M", "Married"),
            "multipleBirthBoolean": False,
            "communication": [{"language": _cc("urn:ietf:bcp:47", "zh-CN", "Chinese (China)")}]}

    def _Encounter(self, r, i, subject, encounter, when) -> dict:
        return {
            "id": rid("Encounter", i), "status": "finished",
            "class": {"system": f"{TERM}/v3-ActCode", "code": r.choice(("AMB", "AMB", "IMP", "EMER"))},
            "type": [_cc(SCT, "185349003", "Encounter for check up (procedure)")], "subject": subject,
            "participant": [{"type": [_cc(f"{TERM}/v3-ParticipationType", "PPRF", "primary performer")],
                             "period": {"start": when, "end": when}, "individual": self.doctor()}],
            "period": {"start": when, "end": when}, "location": [{"location": self.ward}],
            "serviceProvider": self.hospital}

    def _Observation(self, r, i, subject, encounter, when) -> dict:
        if r.random() < 0.5:
            (code, name, unit, mean, sd), low, category = r.choice(VITALS), None, "vital-signs"
        else:
            code, name, unit, low, high, mean, sd = r.choice(LABS)
            category = "laboratory"
        out = {"status": "final",
               "category": [_cc(f"{TERM}/observation-category", category, category.title())],
               "code": _cc(LOINC, code, name), "subject": subject, "encounter": encounter,
               "effectiveDateTime": when, "issued": when.replace("+08:00", ".000+08:00"),
               "valueQuantity": _qty(round(max(0.1, r.gauss(mean, sd)), 2), unit)}
        if low is not None:
            out["referenceRange"] = [{"low": _qty(low, unit), "high": _qty(high, unit)}]
        if r.random() < 0.05:  # a blood pressure panel
            del out["valueQuantity"]
            out["code"] = _cc(LOINC, "85354-9", "Blood pressure panel with all children optional")
            out["component"] = [
                {"code": _cc(LOINC, "8462-4", "Diastolic Blood Pressure"),
                 "valueQuantity": _qty(r.randint(60, 95), "mm[Hg]")},
                {"code": _cc(LOINC, "8480-6", "Systolic Blood Pressure"),
                 "valueQuantity": _qty(r.randint(100, 160), "mm[Hg]")}]
        return out

    def _Condition(self, r, i, subject, encounter, when) -> dict:
        code, text = r.choice(DIAGNOSES)
        return {"clinicalStatus": _cc(f"{TERM}/condition-clinical", "active", "Active"),
                "verificationStatus": _cc(f"{TERM}/condition-ver-status", "confirmed", "Confirmed"),
                "category": [_cc(f"{TERM}/condition-category", "encounter-diagnosis", "Encounter Diagnosis")],
                "code": _cc("http://hl7.org/fhir/sid/icd-10", code, text), "subject": subject,
                "encounter": encounter, "onsetDateTime": when, "recordedDate": when}

    def _Procedure(self, r, i, subject, encounter, when) -> dict:
        return {"status": "completed", "code": _cc(SCT, "430193006", "Medication Reconciliation (procedure)"),
                "subject": subject, "encounter": encounter, "performedPeriod": {"start": when, "end": when},
                "location": self.ward}

    def _MedicationRequest(self, r, i, subject, encounter, when) -> dict:
        dosage = {"sequence": 1, "text": "500 mg twice daily",
                  "timing": {"repeat": {"frequency": 2, "period": 1.0, "periodUnit": "d"}},
                  "asNeededBoolean": False,
                  "doseAndRate": [{"type": _cc(f"{TERM}/dose-rate-type", "ordered", "Ordered"),
                                   "doseQuantity": _qty(500, "mg")}]}
        return {"status": r.choice(("active", "stopped", "completed")), "intent": "order",
                "medicationCodeableConcept": _cc(RXNORM, "860975", "24 HR Metformin hydrochloride 500 MG "
                                                 "Extended Release Oral Tablet"),
                "subject": subject, "encounter": encounter, "authoredOn": when, "requester": self.doctor(),
                "dosageInstruction": [dosage]}

    def _DiagnosticReport(self, r, i, subject, encounter, when) -> dict:
        results = [_ref("Observation", rid("Observation", int(r.random() * self.n)), t[1])
                   for t in r.sample(LABS, 5)]
        return {"status": "final", "category": [_cc(f"{TERM}/v2-0074", "LAB", "Laboratory")],
                "code": _cc(LOINC, "51990-0", "Basic metabolic panel - Blood"), "subject": subject,
                "encounter": encounter, "effectiveDateTime": when, "issued": when,
                "performer": [self.hospital],
                "result": results}

    def _Immunization(self, r, i, subject, encounter, when) -> dict:
        return {"status": "completed",
                "vaccineCode": _cc(CVX, "140", "Influenza, seasonal, injectable, preservative free"),
                "patient": subject, "encounter": encounter, "occurrenceDateTime": when, "primarySource": True,
                "lotNumber": f"L{r.randint(10**5, 10**6)}", "doseQuantity": _qty(0.5, "mL")}

    def _AllergyIntolerance(self, r, i, subject, encounter, when) -> dict:
        return {"clinicalStatus": _cc(f"{TERM}/allergyintolerance-clinical", "active", "Active"),
                "verificationStatus": _cc(f"{TERM}/allergyintolerance-verification", "confirmed",
                                          "Confirmed"),
                "type": "allergy", "category": ["food"], "criticality": "low",
                "code": _cc(SCT, "91935009", "Allergy to peanuts"), "patient": subject, "recordedDate": when,
                "reaction": [{"manifestation": [_cc(SCT, "247472004", "Wheal (finding)")],
                              "severity": "mild"}]}

    def _CarePlan(self, r, i, subject, encounter, when) -> dict:
        return {"text": {"status": "generated",
                         "div": f"{XHTML}Care Plan for Diabetes self management plan.</div>"},
                "status": "active", "intent": "order",
                "category": [_cc(SCT, "698360004", "Diabetes self management plan")],
                "subject": subject, "encounter": encounter, "period": {"start": when},
                "activity": [{"detail": {"code": _cc(SCT, "160670007", "Diabetic diet"),
                                         "status": "in-progress", "location": self.ward}}]}

    def _DocumentReference(self, r, i, subject, encounter, when) -> dict:
        note = (f"{when[:10]}\n\n# Chief Complaint\nNo complaints.\n\n# History of Present Illness\n"
                f"Patient is a {r.randint(20, 90)} year-old with diabetes. " * 6).encode()
        return {"status": "current", "type": _cc(LOINC, "34117-2", "History and physical note"),
                "category": [_cc("http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category",
                                 "clinical-note", "Clinical Note")],
                "subject": subject, "date": when.replace("+08:00", ".000+08:00"), "author": [self.doctor()],
                "content": [{"attachment": {"contentType": "text/plain; charset=utf-8",
                                            "data": base64.b64encode(note).decode()},
                             "format": {"system": "http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode",
                                        "code": "urn:ihe:iti:xds:2017:mimeTypeSufficient",
                                        "display": "mimeType Sufficient"}}],
                "context": {"encounter": [encounter], "period": {"start": when, "end": when}}}

    def _Claim(self, r, i, subject, encounter, when) -> dict:
        return {**self._billing(r, "Claim", subject, encounter, when),
                "priority": _cc(f"{TERM}/processpriority", "normal", "Normal"),
                "total": _money(r.random() * 2000)}

    def _ExplanationOfBenefit(self, r, i, subject, encounter, when) -> dict:
        return {**self._billing(r, "ExplanationOfBenefit", subject, encounter, when),
                "outcome": "complete", "insurer": {"display": "NCMS"},
                "claim": _ref("Claim", rid("Claim", i)),
                "total": [{"category": _cc(f"{TERM}/adjudication", "submitted", "Submitted Amount"),
                           "amount": _money(r.random() * 2000)}],
                "payment": {"amount": _money(r.random() * 1000)}}

    def _billing(self, r, kind: str, subject, encounter, when) -> dict:
        """What a Claim and its ExplanationOfBenefit share: 1-4 items, the insurance, the period."""
        items = []
        for k in range(r.randint(1, 4)):
            item = {"sequence": k + 1, "productOrService": _cc(SCT, "185349003", "Encounter for check up"),
                    "encounter": [encounter]}
            if kind == "Claim":
                item["net"] = _money(r.random() * 500)
            else:
                item.update({"servicedPeriod": {"start": when, "end": when},
                             "locationCodeableConcept": _cc("urn:oid:2.16.156", "330106", "Xihu"),
                             "adjudication": [{"category": _cc(f"{BLUEBUTTON}/codesystem/adjudication",
                                                               f"{BLUEBUTTON}/variables/line_coinsrnc_amt",
                                                               "Line Beneficiary Coinsurance Amount"),
                                               "amount": _money(r.random() * 100)}]})
            items.append(item)
        return {"status": "active", "type": _cc(f"{TERM}/claim-type", "professional", "Professional"),
                "use": "claim", "patient": subject, "billablePeriod": {"start": when, "end": when},
                "created": when, "provider": self.hospital,
                "insurance": [{"focal": True, **({"sequence": 1} if kind == "Claim" else {}),
                               "coverage": {"display": "NCMS"}}],
                "item": items}


def fhir_counts(n: int) -> dict[str, int]:
    total = sum(FHIR_MIX.values())
    counts = {k: n * w // total for k, w in FHIR_MIX.items()}
    counts["Observation"] += n - sum(counts.values())
    return counts


def write_fhir(folder: Path, n: int, seed: int = 11) -> list[Path]:
    """A bulk export of ``n`` resources, one NDJSON file per resource type, in the proportions
    of ``FHIR_MIX`` (Observation.ndjson the largest)."""
    folder.mkdir(parents=True, exist_ok=True)
    export = FhirExport(n, seed)
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    paths = []
    for kind, count in fhir_counts(n).items():
        path = folder / f"{kind}.ndjson"
        with open(path, "w", encoding="utf-8") as fh:
            fh.writelines(dumps(export.resource(kind, i)) + "\n" for i in range(count))
        paths.append(path)
    return paths


# --- library ceilings and connector costs, one core --------------------------------------------

def per_core(fn, items, repeat: int = 1) -> dict:
    """Items per CPU second of ``fn`` over ``items`` (process CPU time: other load on the machine
    slows it less than wall time), and milliseconds per item."""
    start = time.process_time()
    for _ in range(repeat):
        for x in items:
            fn(x)
    seconds = (time.process_time() - start) / (repeat * len(items))
    return {"ms": round(seconds * 1000, 3), "per_s": round(1 / seconds)}


def hl7_ceilings(hl7apy_sample: int, stream: int) -> dict:
    """hl7apy and python-hl7 alone, and the connectors, per message on one core."""
    import hl7 as python_hl7
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.parser import get_message_info, parse_message, parse_segment

    import connectors.hl7 as hl7
    from connectors import hl7_clinical
    from connectors.clinical_records import Source

    feed = Hl7Feed(seed=29)
    messages = [feed.message(i) for i in range(stream)]
    sample = [m for m in messages if "XYZ|" not in m][:hl7apy_sample]
    prepared = [hl7.for_hl7apy(m, hl7.check_header(m).version) for m in sample]
    tolerant = VALIDATION_LEVEL.TOLERANT

    def segments(text: str) -> None:
        chars, _, version = get_message_info(text)
        for s in text.split("\r"):
            if s:
                parse_segment(s, version, chars, tolerant)

    for text in prepared[:5]:  # hl7apy loads its structure modules on first use
        parse_message(text, validation_level=tolerant, find_groups=True)
    out = {
        "hl7apy_parse_find_groups_true": per_core(
            lambda t: parse_message(t, validation_level=tolerant, find_groups=True), prepared),
        "hl7apy_parse_find_groups_false": per_core(
            lambda t: parse_message(t, validation_level=tolerant, find_groups=False), prepared),
        "hl7apy_parse_segment_each": per_core(segments, prepared),
        "python_hl7_parse": per_core(python_hl7.parse, sample, 5),
        "check_header": per_core(hl7.check_header, sample, 20),
    }
    for cache in (hl7._SEGMENT_VERDICTS, hl7._MESSAGE_LAYOUTS, hl7._MESSAGE_REFUSALS):
        cache.clear()

    def validate(m: str) -> None:
        with contextlib.suppress(hl7.HL7Error):
            hl7.validate(m)

    out[f"connector_validate_cold_first_{stream}"] = per_core(validate, messages)
    out["connector_validate_warm"] = per_core(validate, messages[: min(stream, 5000)], 2)
    src = Source(b"k" * 32, CENTER, "HL7v2", "HL7v2", datetime(2026, 1, 1), "0" * 64, "bench")
    headers = [hl7.check_header(m) for m in messages]
    pairs = list(zip(messages, headers, strict=True))
    out[f"connector_silver_records_first_{stream}"] = per_core(
        lambda p: hl7_clinical.records(p[0], src, p[1].control_id, p[1].trigger_event), pairs)
    segments_per_message = sum(m.count("\r") for m in messages) / len(messages)
    out["messages_sampled"] = {"hl7apy": len(sample), "connector": len(messages),
                               "segments_per_message": round(segments_per_message, 1)}
    return out


def fhir_ceilings(sample_size: int) -> dict:
    """fhir.resources validation alone, and the connector (read + validate + silver mapping),
    per resource on one core, on the export's mix of types."""
    from fhir.resources.R4B import get_fhir_model_class

    from connectors import fhir, fhir_clinical
    from connectors.clinical_records import Source

    export = FhirExport(100_000, seed=29)
    resources = [export.resource(kind, i) for kind, count in fhir_counts(sample_size).items()
                 for i in range(count)]
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    data = "".join(dumps(r) + "\n" for r in resources).encode()
    for r in resources:  # fhir.resources builds each type's model on first use
        get_fhir_model_class(r["resourceType"]).model_validate(r)
    src = Source(b"k" * 32, CENTER, "FHIR", "FHIR", datetime(2026, 1, 1), "0" * 64, "bench")
    out = {"fhir_resources_validation": per_core(
        lambda r: get_fhir_model_class(r["resourceType"]).model_validate(r), resources)}
    start = time.process_time()
    found = list(fhir.iter_resources("bench.ndjson", data))
    read = time.process_time() - start
    start = time.process_time()
    for f in found:
        fhir.validate(f.resource)
    validated = time.process_time() - start
    start = time.process_time()
    for f in found:
        fhir_clinical.records(json.loads(f.raw), src)
    mapped = time.process_time() - start
    n = len(found)
    out.update({
        "connector_read_iter_resources": {"ms": round(read / n * 1000, 3), "per_s": round(n / read)},
        "connector_validate": {"ms": round(validated / n * 1000, 3), "per_s": round(n / validated)},
        "connector_silver_records": {"ms": round(mapped / n * 1000, 3), "per_s": round(n / mapped)},
        "connector_total": {"ms": round((read + validated + mapped) / n * 1000, 3),
                            "per_s": round(n / (read + validated + mapped))},
        "resources_sampled": n, "bytes_per_resource": len(data) // n})
    return out


# --- end to end: the omicslake commands, each its own process ---------------------------------

def reap(proc: subprocess.Popen) -> tuple[int, float]:
    """Wait for a child: its exit status and peak RSS in MB (wait4, its reaped children included)."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss / 1024


def run_cli(home: Path, *args: str) -> dict:
    env = {**os.environ, "OMICSLAKE_HOME": str(home), "RUST_LOG": "error"}
    start = time.perf_counter()
    with open(home.parent / f"{home.name}-{args[0]}.log", "a") as log:
        proc = subprocess.Popen([sys.executable, "-m", "omicslake.cli", *args], env=env, stdout=log,
                                stderr=log)
        code, rss = reap(proc)
    if code:
        raise SystemExit(f"omicslake {' '.join(args)} failed ({code}); see {log.name}")
    return {"s": round(time.perf_counter() - start, 2), "peak_rss_mb": round(rss)}


def bench_mllp(home: Path, messages: list[str], senders: int) -> dict:
    """Senders each send their share over one connection, waiting for each ACK."""
    port = free_port()
    env = {**os.environ, "OMICSLAKE_HOME": str(home), "RUST_LOG": "error"}
    proc = subprocess.Popen([sys.executable, "-m", "omicslake.cli", "mllp", "--port", str(port),
                             "--center", CENTER], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_for_port(port, 60)
    acks: dict[str, int] = {}
    lock = threading.Lock()

    def sender(k: int) -> None:
        mine = [frame(m) for m in messages[k::senders]]
        codes: dict[str, int] = {}
        with socket.create_connection(("127.0.0.1", port)) as s:
            f = s.makefile("rb")
            for payload in mine:
                s.sendall(payload)
                buf = b""
                while not buf.endswith(END + b"\r"):
                    chunk = f.read1(4096)
                    if not chunk:
                        raise ConnectionError("the listener closed the connection")
                    buf += chunk
                code = buf.split(b"\rMSA|", 1)[1][:2].decode()
                codes[code] = codes.get(code, 0) + 1
        with lock:
            for code, n in codes.items():
                acks[code] = acks.get(code, 0) + n

    start = time.perf_counter()
    threads = [threading.Thread(target=sender, args=(k,)) for k in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    proc.send_signal(signal.SIGTERM)
    _, rss = reap(proc)
    return {"messages": len(messages), "senders": senders, "s": round(seconds, 2),
            "msgs_per_s": round(len(messages) / seconds), "acks": acks, "peak_rss_mb": round(rss)}


def bench_size(work: Path, hl7_n: int, fhir_n: int, mllp_n: int, senders: int) -> dict:
    out: dict = {"hl7_messages": hl7_n, "fhir_resources": fhir_n}
    start = time.perf_counter()
    hl7_files = write_hl7(work / "hl7", hl7_n)
    out["generate_hl7_s"] = round(time.perf_counter() - start, 1)
    start = time.perf_counter()
    write_fhir(work / "fhir", fhir_n)
    out["generate_fhir_s"] = round(time.perf_counter() - start, 1)
    out["hl7_input_mb"] = round(sum(p.stat().st_size for p in hl7_files) / 2**20, 1)
    out["fhir_input_mb"] = round(sum(p.stat().st_size for p in (work / "fhir").iterdir()) / 2**20, 1)

    if mllp_n:
        feed = Hl7Feed(seed=41)
        home = work / "lake-mllp"
        run_cli(home, "tables")
        out["mllp_to_landing"] = bench_mllp(home, [feed.message(i) for i in range(mllp_n)], senders)
        landing = home / "state" / "landing" / "hl7" / CENTER
        row = run_cli(home, "ingest", "hl7", str(landing), "--center", CENTER)
        out["landing_to_bronze_silver"] = {**row, "msgs_per_s": round(mllp_n / row["s"])}

    home = work / "lake-hl7"
    run_cli(home, "tables")
    row = run_cli(home, "ingest", "hl7", str(work / "hl7"), "--center", CENTER)
    out["hl7_files_to_bronze_silver"] = {**row, "msgs_per_s": round(hl7_n / row["s"])}

    home = work / "lake-fhir"
    run_cli(home, "tables")
    row = run_cli(home, "ingest", "fhir", str(work / "fhir"), "--center", CENTER)
    out["fhir_ndjson_to_bronze_silver"] = {**row, "resources_per_s": round(fhir_n / row["s"])}
    return out


def table(ceilings: dict, sizes: list[dict]) -> str:
    lines = ["", "library ceilings and connector costs, one core (ms per item, items per CPU second):"]
    for feed in ("hl7", "fhir"):
        for name, v in ceilings.get(feed, {}).items():
            if isinstance(v, dict) and "ms" in v:
                lines.append(f"  {feed:5s} {name:45s} {v['ms']:9.3f} ms {v['per_s']:>10,}/s")
    for s in sizes:
        lines.append(f"end to end, {s['hl7_messages']:,} HL7 messages / {s['fhir_resources']:,} FHIR "
                     f"resources (whole command, {os.cpu_count()} cores):")
        for key, unit in (("mllp_to_landing", "msgs_per_s"), ("landing_to_bronze_silver", "msgs_per_s"),
                          ("hl7_files_to_bronze_silver", "msgs_per_s"),
                          ("fhir_ndjson_to_bronze_silver", "resources_per_s")):
            if key in s:
                row = s[key]
                extra = (f" ({row['messages']:,} msgs, {row['senders']} senders)"
                         if key == "mllp_to_landing" else "")
                lines.append(f"  {key:32s} {row[unit]:>8,} {unit.replace('_per_s', '/s'):12s} "
                             f"{row['s']:8.1f} s  peak RSS {row['peak_rss_mb']:>5} MB{extra}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hl7", type=int, action="append", help="HL7 messages (give twice for two sizes)")
    ap.add_argument("--fhir", type=int, action="append", help="FHIR resources (as many sizes as --hl7)")
    ap.add_argument("--mllp", type=int, action="append", help="messages sent over MLLP (0: no MLLP row)")
    ap.add_argument("--senders", type=int, default=8)
    ap.add_argument("--quick", action="store_true", help="small inputs, one size: a smoke run")
    ap.add_argument("--ceilings-only", action="store_true", help="only the one-core library rows")
    ap.add_argument("--keep", action="store_true", help="keep inputs and lakes in benchmarks/out/clinical")
    args = ap.parse_args()
    if args.quick:
        hl7_sizes, fhir_sizes, mllp_sizes, sample, stream, fhir_sample = [2000], [4000], [1000], 40, 2000, 600
    else:
        hl7_sizes = args.hl7 or [25_000, 50_000]
        fhir_sizes = args.fhir or [n * 2 for n in hl7_sizes]
        mllp_sizes = args.mllp or [n * 2 // 5 for n in hl7_sizes]
        sample, stream, fhir_sample = 200, 20_000, 3000
    if not len(hl7_sizes) == len(fhir_sizes) == len(mllp_sizes):
        ap.error("give --hl7, --fhir and --mllp the same number of times")
    OUT.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    results: dict = {"started": stamp, "cpus": os.cpu_count()}

    results["ceilings"] = {"hl7": hl7_ceilings(sample, stream), "fhir": fhir_ceilings(fhir_sample),
                           "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    print(json.dumps({"ceilings": results["ceilings"]}), flush=True)
    results["sizes"] = []
    if not args.ceilings_only:
        for hl7_n, fhir_n, mllp_n in zip(hl7_sizes, fhir_sizes, mllp_sizes, strict=True):
            work = OUT / f"run-{stamp}-{hl7_n}"
            try:
                results["sizes"].append(bench_size(work, hl7_n, fhir_n, mllp_n, args.senders))
            finally:
                if not args.keep:
                    shutil.rmtree(work, ignore_errors=True)
            print(json.dumps(results["sizes"][-1]), flush=True)
    (OUT / f"results-{stamp}.json").write_text(json.dumps(results, indent=1) + "\n")
    print(table(results["ceilings"], results["sizes"]))


if __name__ == "__main__":
    main()
