"""Table contracts: every table's layer, columns and types, partitioning, keys, row scope and
quality gate, declared once (``schemas/tables.py``). ``get_table("silver.variants")`` returns
the contract by name.

The bottom layer: every other package may use it, and it imports nothing from the project
(import-linter contract in pyproject.toml).
"""

import re

from schemas.contract import Column, Table
from schemas.tables import ALL_TABLES, cohort_features

_BY_NAME = {t.full_name: t for t in ALL_TABLES}
_COHORT_NAME = r"[a-z][a-z0-9_]{0,47}"
# A cohort definition's name: it names its features table, gold.cohort_<name>_features.
COHORT_NAME = re.compile(rf"^{_COHORT_NAME}$")
COHORT_FEATURES = re.compile(rf"^gold\.cohort_({_COHORT_NAME})_features$")


def get_table(full_name: str) -> Table:
    """The contract of a table; ``gold.cohort_<name>_features`` tables come from one factory."""
    try:
        return _BY_NAME[full_name]
    except KeyError:
        m = COHORT_FEATURES.match(full_name)
        if m:
            return cohort_features(m.group(1))
        raise KeyError(
            f"unknown table {full_name!r}; known: {', '.join(sorted(_BY_NAME))}"
        ) from None


def gate_tables(gate: str) -> list[str]:
    """The tables one quality gate validates (``Table.gate``), in contract order.

    Args:
        gate: ``<pipeline>.<stage>``, e.g. ``"clinical.bronze"``.

    Returns:
        Their ``layer.table`` names.

    Example:
        >>> gate_tables("clinical.bronze")
        ['bronze.hl7_messages', 'bronze.fhir_resources']
    """
    tables = [t.full_name for t in ALL_TABLES if t.gate == gate]
    if not tables:
        known = sorted({t.gate for t in ALL_TABLES if t.gate})
        raise KeyError(f"no table is checked at gate {gate!r}; gates: {', '.join(known)}")
    return tables


__all__ = ["ALL_TABLES", "COHORT_FEATURES", "COHORT_NAME", "Column", "Table", "cohort_features",
           "gate_tables", "get_table"]
