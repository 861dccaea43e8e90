"""Typed table contracts: the one place a column list is declared.

A contract names a table (``layer.name``), its columns with Spark types, its partitioning and
its keys. Jobs build DataFrames with ``Table.conform``; the catalog creates Delta tables from
``Table.spark_schema``; quality suites derive not-null and uniqueness checks from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyspark.sql import types as T

LAYERS = ("bronze", "silver", "gold", "quarantine", "ops")


@dataclass(frozen=True)
class Column:
    name: str
    dtype: T.DataType
    required: bool = False
    doc: str = ""


SCOPE_KINDS = ("center", "centers", "scope_or_all", "shared", "admin")


@dataclass(frozen=True)
class RowScope:
    """Which rows of a table a center's analyst sees through the SQL gateway: ``center`` (its
    ``column`` names a center of the subtree), ``centers`` (an array column overlaps the
    subtree), ``scope_or_all`` (``column`` is 'all' or a center of the subtree), ``shared``
    (every row: site-level knowledge, no person) or ``admin`` (admins only)."""

    kind: str
    column: str | None = None


@dataclass(frozen=True)
class Table:
    layer: str
    name: str
    columns: tuple[Column, ...]
    doc: str
    partition_by: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict, compare=False, hash=False)
    access: RowScope | None = None
    append_only: bool = False  # Delta refuses any commit that removes rows (delta.appendOnly)
    # The quality gate that validates the table between pipeline steps, ``<pipeline>.<stage>``
    # (omicslake/pipelines.py, the DAGs); None: only ``omicslake quality`` checks it.
    gate: str | None = None

    def __post_init__(self) -> None:
        if self.layer not in LAYERS:
            raise ValueError(f"{self.layer}.{self.name}: unknown layer {self.layer!r}")
        names = [c.name for c in self.columns]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"{self.full_name}: duplicate columns {sorted(dupes)}")
        for col in (*self.partition_by, *self.keys):
            if col not in names:
                raise ValueError(f"{self.full_name}: key/partition column {col!r} not declared")
        scope = self.row_scope
        if scope.kind not in SCOPE_KINDS or (scope.column is not None and scope.column not in names):
            raise ValueError(f"{self.full_name}: bad row scope {scope}")

    @property
    def row_scope(self) -> RowScope:
        """Declared, or by the center_id column when the table has one, else admins only."""
        if self.access is not None:
            return self.access
        return RowScope("center", "center_id") if "center_id" in self.column_names else RowScope("admin")

    @property
    def full_name(self) -> str:
        return f"{self.layer}.{self.name}"

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    def spark_schema(self) -> T.StructType:
        # Columns stay nullable in storage so every engine writes them; ``required`` is
        # enforced by the quality suites instead.
        return T.StructType([T.StructField(c.name, c.dtype, True) for c in self.columns])

    def arrow_schema(self):
        """The same schema in Arrow (timestamps in UTC), for rows built in Python tasks."""
        from pyspark.sql.pandas.types import to_arrow_schema

        return to_arrow_schema(self.spark_schema(), timezone="UTC")

    def conform(self, df):
        """Select exactly the contract's columns, cast to its types, in its order."""
        missing = [c.name for c in self.columns if c.name not in df.columns]
        if missing:
            raise ValueError(f"{self.full_name}: DataFrame lacks columns {missing}")
        from pyspark.sql import functions as F

        return df.select(*[F.col(c.name).cast(c.dtype).alias(c.name) for c in self.columns])


def col(name: str, dtype: T.DataType, required: bool = False, doc: str = "") -> Column:
    return Column(name, dtype, required, doc)


STRING = T.StringType()
LONG = T.LongType()
INT = T.IntegerType()
DOUBLE = T.DoubleType()
BOOL = T.BooleanType()
DATE = T.DateType()
TIMESTAMP = T.TimestampType()

PROVENANCE = (
    col("center_id", STRING, True, "center that sent the record"),
    col("source_uri", STRING, True, "file or message the record came from"),
    col("source_checksum", STRING, True, "sha256 of the source file"),
    col("ingest_run_id", STRING, True, "ops.ingest_runs.run_id of the run that wrote it"),
    col("ingested_at", TIMESTAMP, True),
)


def bronze(name: str, columns: tuple[Column, ...], doc: str, **kw) -> Table:
    """A bronze table: parsed columns plus provenance on every row."""
    return Table("bronze", name, (*columns, *PROVENANCE), doc, **kw)


QUARANTINE_COLUMNS = (
    col("center_id", STRING, True),
    col("source_uri", STRING, True),
    col("source_checksum", STRING, True),
    col("location", STRING, True, "line N, offset N or message control id"),
    col("line", LONG, doc="1-based line number when the source is text"),
    col("reason", STRING, True),
    col("raw", STRING, doc="the rejected text, as received"),
    col("ingest_run_id", STRING, True),
    col("quarantined_at", TIMESTAMP, True),
)


def quarantine(name: str, doc: str) -> Table:
    """Every quarantine table has the same shape, so one writer serves them all."""
    return Table(
        "quarantine", name, QUARANTINE_COLUMNS, doc, keys=("source_checksum", "location")
    )
