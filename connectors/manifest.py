"""Sample manifests (CSV/TSV) that centers upload with their VCFs."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from omicslake.errors import InputError

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
