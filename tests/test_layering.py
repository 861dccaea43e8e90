"""The package layout the import-linter contracts (pyproject.toml) rely on stays accurate: every
omicslake module is either core or listed as not core, and each package's ``__all__`` names
what it holds."""

from __future__ import annotations

import tomllib
from pathlib import Path

import connectors
import jobs
import omicslake

ROOT = Path(__file__).resolve().parent.parent


def _modules(package: str) -> set[str]:
    return {p.stem for p in (ROOT / package).glob("*.py") if p.stem != "__init__"}


def _contracts() -> dict[str, dict]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {c["id"]: c for c in config["contracts"]}


def test_every_omicslake_module_is_core_or_listed_as_not_core():
    contracts = _contracts()
    core = {m.removeprefix("omicslake.") for m in contracts["core"]["source_modules"]}
    not_core = {m.removeprefix("omicslake.") for m in contracts["core"]["forbidden_modules"]
                if m.startswith("omicslake.")}
    connectors_may_not = {m.removeprefix("omicslake.") for m in contracts["connectors"]["forbidden_modules"]
                          if m.startswith("omicslake.")}
    assert core == set(omicslake.CORE)
    assert not core & not_core
    assert core | not_core == _modules("omicslake"), "add the new module to one of the two lists"
    assert connectors_may_not == not_core


def test_package_exports_name_their_modules():
    assert set(jobs.__all__) == _modules("jobs")
    assert set(connectors.__all__) == _modules("connectors")
    assert set(omicslake.__all__) == {"connect", "__version__", *omicslake.CORE}
