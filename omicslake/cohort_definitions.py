"""Cohort definitions: YAML files in ``cohorts/``, validated before anything runs.

A definition is typed (pydantic, unknown keys refused), so a typo or an unknown code system
fails with the file and line at fault instead of an empty cohort. The checksum is taken over
the validated meaning, not the text: a new comment does not make a new cohort version.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from omicslake.errors import OmicslakeError
from omicslake.settings import SHIPPED_COHORTS
from schemas import COHORT_NAME

NAME = COHORT_NAME  # it names gold.cohort_<name>_features (schemas)
ICD10 = re.compile(r"^[A-Z][0-9]{2}(\.?[0-9A-Z]{1,4})?$")
LOINC = re.compile(r"^[0-9]{1,7}-[0-9]$")
ATC = re.compile(r"^[A-Z]([0-9]{2}([A-Z]([A-Z]([0-9]{2})?)?)?)?$")
VARIANT = re.compile(r"^(?:(GRCh3[78]):)?(chr[0-9XYM]{1,2}|[0-9XYM]{1,2}):([0-9]+):([ACGTN]+):([ACGTN]+)$")
CLINVAR = (
    "Pathogenic",
    "Likely_pathogenic",
    "Pathogenic/Likely_pathogenic",
    "Uncertain_significance",
    "Likely_benign",
    "Benign",
    "Benign/Likely_benign",
    "Conflicting_classifications_of_pathogenicity",
    "drug_response",
    "risk_factor",
    "association",
    "protective",
    "Affects",
    "other",
    "not_provided",
)
MODALITIES = (
    "CT",
    "MR",
    "PT",
    "NM",
    "US",
    "CR",
    "DX",
    "MG",
    "XA",
    "RF",
    "OT",
    "SM",
    "RTPLAN",
    "RTSTRUCT",
    "SEG",
)


class CohortDefinitionError(OmicslakeError):
    """A cohort definition that is invalid: names the file and line."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


class Window(Strict):
    """Days relative to the index date; a side left out is unbounded."""

    start_days: int | None = None
    end_days: int | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.start_days is not None and self.end_days is not None and self.start_days > self.end_days:
            raise ValueError(f"start_days {self.start_days} is after end_days {self.end_days}")
        return self


class Diagnosis(Strict):
    icd10: list[str] = Field(min_length=1, description="ICD-10 code prefixes: C34 matches C34.1")

    @field_validator("icd10")
    @classmethod
    def _codes(cls, v: list[str]) -> list[str]:
        return [_matching(ICD10, c.strip().upper(), "an ICD-10 code or prefix (C34, E11.9)") for c in v]


class Lab(Strict):
    loinc: str
    min: float | None = None
    max: float | None = None
    unit: str = Field(description="UCUM code the values are compared in (silver.observations.unit)")

    @field_validator("loinc")
    @classmethod
    def _loinc(cls, v: str) -> str:
        return _matching(LOINC, v.strip(), "a LOINC code (4548-4)")

    @field_validator("unit")
    @classmethod
    def _unit(cls, v: str) -> str:
        from connectors.ucum import KNOWN, to_ucum

        ucum = v.strip() if v.strip() in KNOWN.values() else to_ucum(v)
        if not ucum:
            raise ValueError(
                f"{v!r} is not a UCUM unit the lake maps (connectors/ucum.py), e.g. %, mmol/L, mg/dL"
            )
        return ucum


class Genomic(Strict):
    genes: list[str] | None = Field(None, min_length=1, description="HGNC symbols: a call in any of them")
    variant: str | None = Field(None, description="[build:]contig:pos:ref:alt")
    clinvar: list[Literal[CLINVAR]] | None = None  # type: ignore[valid-type]
    max_af: float | None = Field(None, ge=0, le=1, description="gnomAD AF at most this (absent: rare)")
    build: Literal["GRCh38", "GRCh37"] = "GRCh38"

    @field_validator("variant")
    @classmethod
    def _variant(cls, v: str | None) -> str | None:
        return None if v is None else _matching(VARIANT, v.strip(), "contig:pos:ref:alt (chr7:55191822:T:G)")

    @model_validator(mode="after")
    def _something(self) -> Genomic:
        if not (self.genes or self.variant):
            raise ValueError("a genomic rule needs genes or a variant")
        return self

    @property
    def variant_id(self) -> str | None:
        if not self.variant:
            return None
        build, contig, pos, ref, alt = VARIANT.match(self.variant).groups()
        contig = contig if contig.startswith("chr") else f"chr{contig}"
        return f"{build or self.build}:{contig}:{pos}:{ref}:{alt}"


class Imaging(Strict):
    modality: list[Literal[MODALITIES]] = Field(min_length=1)  # type: ignore[valid-type]
    body_part: list[str] | None = Field(None, description="BodyPartExamined values (HEAD, BRAIN, CHEST)")

    @field_validator("body_part")
    @classmethod
    def _upper(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else [b.strip().upper() for b in v]


class Demographics(Strict):
    age_min: int | None = Field(None, ge=0, le=130)
    age_max: int | None = Field(None, ge=0, le=130)
    sex: list[Literal["M", "F", "O", "U"]] | None = None


class Medication(Strict):
    atc: list[str] | None = Field(None, description="ATC code prefixes: A10 matches A10BA02")
    rxnorm: list[str] | None = Field(None, description="RxNorm concept ids")

    @field_validator("atc")
    @classmethod
    def _atc(cls, v: list[str] | None) -> list[str] | None:
        return (
            None
            if v is None
            else [_matching(ATC, c.strip().upper(), "an ATC code or prefix (A10BA02)") for c in v]
        )

    @model_validator(mode="after")
    def _something(self) -> Medication:
        if not (self.atc or self.rxnorm):
            raise ValueError("a medication rule needs atc or rxnorm codes")
        return self


KINDS = ("diagnosis", "lab", "genomic", "imaging", "demographics", "medication")


class Criterion(Strict):
    """One rule: exactly one kind of evidence, optionally within a window around the index."""

    name: str | None = None
    diagnosis: Diagnosis | None = None
    lab: Lab | None = None
    genomic: Genomic | None = None
    imaging: Imaging | None = None
    demographics: Demographics | None = None
    medication: Medication | None = None
    window: Window | None = None
    min_count: int = Field(1, ge=1, description="at least this many events in the window")

    @model_validator(mode="after")
    def _one_kind(self) -> Criterion:
        given = [k for k in KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"a rule names exactly one of {', '.join(KINDS)} (found {given or 'none'})")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in KINDS if getattr(self, k) is not None)

    @property
    def spec(self) -> Diagnosis | Lab | Genomic | Imaging | Demographics | Medication:
        return getattr(self, self.kind)

    @property
    def label(self) -> str:
        return (
            self.name or f"{self.kind} {json.dumps(self.spec.model_dump(exclude_none=True), sort_keys=True)}"
        )


class Index(Criterion):
    occurrence: Literal["first", "all"] = "first"

    @model_validator(mode="after")
    def _dated(self) -> Index:
        if self.kind in ("genomic", "demographics"):
            raise ValueError(
                f"the index event needs a date; a {self.kind} rule has none (use it as an inclusion rule)"
            )
        if self.window is not None or self.min_count != 1:
            raise ValueError("the index event takes no window or min_count")
        return self


class Observation(Strict):
    prior_days: int = Field(0, ge=0)
    post_days: int = Field(0, ge=0)


class End(Strict):
    fixed_days: int | None = Field(None, ge=0, description="end = index + N days")
    end_of_observation: bool = False

    @model_validator(mode="after")
    def _one(self) -> End:
        if (self.fixed_days is None) == (not self.end_of_observation):
            raise ValueError("give exactly one end strategy: fixed_days: N or end_of_observation: true")
        return self


class Features(Strict):
    labs: list[str] = Field(default_factory=list, description="LOINC codes reported as latest labs")


class CohortDefinition(Strict):
    id: Annotated[int, Field(ge=1)]
    name: str
    title: str
    description: str
    centers: str = Field("NAT", description="root of the center subtree whose index events count")
    index: Index
    observation: Observation = Observation()
    inclusion: list[Criterion] = Field(default_factory=list)
    exclusion: list[Criterion] = Field(default_factory=list)
    end: End
    features: Features = Features()

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _matching(NAME, v, "lower-case letters, digits and '_' (it names gold.cohort_<name>_features)")

    @property
    def rules(self) -> list[tuple[str, Criterion]]:
        return [("inclusion", c) for c in self.inclusion] + [("exclusion", c) for c in self.exclusion]

    @property
    def genes(self) -> list[str]:
        return sorted({g for c in self.inclusion if c.genomic for g in c.genomic.genes or ()})

    @property
    def lab_codes(self) -> list[str]:
        rules = [c.lab.loinc for c in (self.index, *self.inclusion, *self.exclusion) if c.lab]
        return sorted({*rules, *self.features.labs})

    def checksum(self) -> str:
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def _matching(pattern: re.Pattern, value: str, what: str) -> str:
    if not pattern.match(value):
        raise ValueError(f"{value!r} is not {what}")
    return value


@dataclass(frozen=True)
class LoadedDefinition:
    definition: CohortDefinition
    path: Path
    text: str

    @property
    def name(self) -> str:
        return self.definition.name


def parse_definition(text: str, where: str) -> CohortDefinition:
    """Validate one YAML definition; errors name ``where`` and the line of the bad value."""
    import yaml

    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CohortDefinitionError(f"{where}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise CohortDefinitionError(f"{where}: a cohort definition is a mapping (name, index, ...)")
    try:
        return CohortDefinition.model_validate(data)
    except ValidationError as exc:
        lines = [
            f"{where} line {_line_of(node, e['loc'])}: {_path(e['loc'])}: {_message(e)}" for e in exc.errors()
        ]
        raise CohortDefinitionError("\n".join(lines)) from None


def _message(error: dict) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown field (see cohorts/README.md for the fields and code systems)"
    return error["msg"].removeprefix("Value error, ")


def _path(loc: tuple) -> str:
    parts = [
        str(p)
        for p in loc
        if not (isinstance(p, str) and (p.startswith("literal[") or p.startswith("function-")))
    ]
    return ".".join(parts) or "(top)"


def _line_of(node, loc: tuple) -> int:
    """The line of the deepest YAML node the error path reaches (1-based)."""
    import yaml

    line = node.start_mark.line if node is not None else 0
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            hit = next(((k, v) for k, v in node.value if k.value == part), None)
            if hit is None:
                break
            line, node = hit[0].start_mark.line, hit[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line
        else:
            break
    return line + 1


def load_definition(path: Path) -> LoadedDefinition:
    text = path.read_text(encoding="utf-8")
    definition = parse_definition(text, str(path))
    if definition.name != path.stem:
        raise CohortDefinitionError(
            f"{path}: name {definition.name!r} must match the file name {path.stem!r}"
        )
    return LoadedDefinition(definition, path, text)


def load_all(folder: Path = SHIPPED_COHORTS) -> list[LoadedDefinition]:
    """Every ``*.yaml`` definition in ``folder``, with ids and names checked unique."""
    loaded = [load_definition(p) for p in sorted(folder.glob("*.yaml"))]
    seen: dict[int, Path] = {}
    for d in loaded:
        if d.definition.id in seen:
            raise CohortDefinitionError(
                f"{d.path}: id {d.definition.id} is already used by {seen[d.definition.id]}"
            )
        seen[d.definition.id] = d.path
    return loaded


def find(name: str, folder: Path = SHIPPED_COHORTS) -> LoadedDefinition:
    path = folder / f"{name}.yaml"
    if not path.exists():
        known = ", ".join(p.stem for p in sorted(folder.glob("*.yaml"))) or "none"
        raise CohortDefinitionError(f"no cohort {name!r} in {folder} (known: {known})")
    return load_definition(path)
