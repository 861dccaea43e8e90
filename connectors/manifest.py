"""Sample manifests (CSV/TSV) that centers upload with their VCFs."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from omicslake.errors import InputError
from omicslake.settings import Settings

REQUIRED = ("sample_id", "patient_id")
OPTIONAL = ("assigning_authority", "specimen", "assay", "build")


@dataclass(frozen=True)
class ManifestRow:
    line: int
    sample_id: str
    patient_id: str
    assigning_authority: str | None
    specimen: str | None
    assay: str | None
    build: str | None


def read_manifest(path: str | Path) -> list[ManifestRow]:
    """Read a CSV or TSV manifest; a missing column or duplicate sample fails the file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"manifest {path}: no such file")
    text = path.read_text(encoding="utf-8-sig")
    dialect = "excel-tab" if "\t" in text.splitlines()[0] else "excel"
    reader = csv.DictReader(text.splitlines(), dialect=dialect)
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise InputError(f"manifest {path}: missing column(s) {missing}; it has {header}")
    rows, seen = [], {}
    for i, raw in enumerate(reader, start=2):
        rec = {k.strip().lower(): (v or "").strip() for k, v in raw.items() if k}
        if not rec.get("sample_id") or not rec.get("patient_id"):
            raise InputError(f"manifest {path}, line {i}: sample_id and patient_id are required")
        if rec["sample_id"] in seen:
            raise InputError(
                f"manifest {path}, line {i}: sample {rec['sample_id']!r} already on line "
                f"{seen[rec['sample_id']]}"
            )
        seen[rec["sample_id"]] = i
        rows.append(ManifestRow(i, rec["sample_id"], rec["patient_id"],
                                *(rec.get(c) or None for c in OPTIONAL)))
    return rows


def check_samples(manifest: list[ManifestRow], vcf_samples: list[str], vcf_path: str,
                  manifest_path: str) -> None:
    """Every VCF sample must be in the manifest, or the input is refused."""
    known = {r.sample_id for r in manifest}
    unknown = [s for s in vcf_samples if s not in known]
    if unknown:
        shown = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise InputError(
            f"{vcf_path}: {len(unknown)} sample(s) are not in manifest {manifest_path}: {shown}"
        )


def persons_of(settings: Settings, rows: list[ManifestRow], center_id: str) -> dict[str, str]:
    """Each sample's person_id: the keyed pseudonym of (assigning authority, patient id)."""
    from omicslake.pseudonym import load_key, person_id

    key = load_key(settings)
    return {r.sample_id: person_id(key, r.assigning_authority or center_id, r.patient_id) for r in rows}


def land_samples(spark, settings: Settings, manifest_path: str, center_id: str, checksum: str,
                 default_build: str | None) -> int:
    """Upsert the manifest's samples into ``silver.samples`` (linked persons resolved to their
    master id); returns how many rows the manifest has."""
    from datetime import UTC, datetime

    from omicslake.persons import to_master
    from omicslake.writes import merge_new
    from schemas import get_table

    rows = read_manifest(manifest_path)
    persons = persons_of(settings, rows, center_id)
    now = datetime.now(UTC).replace(tzinfo=None)
    out = [
        {
            "sample_id": r.sample_id, "person_id": persons[r.sample_id], "center_id": center_id,
            "specimen": r.specimen, "assay": r.assay, "build": r.build or default_build,
            "source_checksum": checksum, "updated_at": now, "source_person_id": persons[r.sample_id],
            "assigning_authority": r.assigning_authority or center_id,
        }
        for r in rows
    ]
    df = spark.createDataFrame(out, get_table("silver.samples").spark_schema())
    merge_new(spark, settings, to_master(spark, settings, df), "silver.samples", update=True)
    return len(out)
