"""Table contracts. ``get_table("silver.variants")`` returns the contract by name."""

from schemas.contract import Column, Table
from schemas.tables import ALL_TABLES

_BY_NAME = {t.full_name: t for t in ALL_TABLES}


def get_table(full_name: str) -> Table:
    try:
        return _BY_NAME[full_name]
    except KeyError:
        raise KeyError(
            f"unknown table {full_name!r}; known: {', '.join(sorted(_BY_NAME))}"
        ) from None


__all__ = ["ALL_TABLES", "Column", "Table", "get_table"]
