"""Table contracts. ``get_table("silver.variants")`` returns the contract by name."""

import re

from schemas.contract import Column, Table
from schemas.tables import ALL_TABLES, cohort_features

_BY_NAME = {t.full_name: t for t in ALL_TABLES}
COHORT_FEATURES = re.compile(r"^gold\.cohort_([a-z][a-z0-9_]{0,47})_features$")


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


__all__ = ["ALL_TABLES", "COHORT_FEATURES", "Column", "Table", "cohort_features", "get_table"]
