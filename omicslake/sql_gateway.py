"""The one SQL gateway for center principals: parse, check, rewrite to the principal's rows.

A query is parsed with sqlglot (Spark dialect) and must be one SELECT (or set operation) over
registered ``layer.table`` names. Each table is replaced by a subquery that keeps only the rows
of the principal's subtree of the network (the table contract's ``row_scope`` says how), and
the query that runs is regenerated from the tree, so comments, case and quoting cannot smuggle
anything past the check. Spark Connect (``omicslake serve``) bypasses all of this: it is the
admin endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from omicslake.errors import OmicslakeError
from omicslake.tiers import Network
from schemas import get_table

ROLES = ("uploader", "analyst", "admin")
ADMIN_LAYERS = ("bronze", "quarantine", "ops")
FILE_SOURCES = ("delta", "parquet", "csv", "json", "orc", "text", "avro", "binaryfile", "xml", "jdbc")
DENIED_FUNCTIONS = ("read_files", "reflect", "java_method", "try_reflect", "input_file_name",
                    "input_file_block_start", "input_file_block_length")


class QueryRefused(OmicslakeError):
    """The gateway will not run this query for this principal."""


@dataclass(frozen=True)
class Principal:
    """A center and a role: who a query or an upload acts for."""

    center_id: str
    role: str = "analyst"

    @classmethod
    def parse(cls, text: str) -> Principal:
        """``CENTER`` or ``CENTER:ROLE`` (role analyst by default)."""
        center, _, role = text.partition(":")
        role = role or "analyst"
        if role not in ROLES:
            raise QueryRefused(f"role {role!r} is not one of {', '.join(ROLES)}")
        return cls(center, role)

    def __str__(self) -> str:
        return f"{self.center_id}:{self.role}"


@dataclass(frozen=True)
class ScopedQuery:
    sql: str
    tables: tuple[str, ...]


def scope_query(query: str, principal: Principal, network: Network) -> ScopedQuery:
    """The query as it runs for ``principal``, and the tables it reads; QueryRefused says why not."""
    if principal.center_id not in network:
        raise QueryRefused(f"center {principal.center_id!r} is not in the registry")
    if principal.role == "uploader":
        raise QueryRefused(f"{principal}: uploaders cannot query; ask for an analyst token")
    statement = _one_select(query)
    ctes = {c.alias_or_name.lower() for c in statement.find_all(exp.CTE)}
    for fn in statement.find_all(exp.Anonymous):
        if fn.name.lower() in DENIED_FUNCTIONS:
            raise QueryRefused(f"function {fn.name}() reads files or calls the JVM: not allowed")
    tables = [t for t in statement.find_all(exp.Table) if _check_table(t, ctes, principal)]
    visible = None if network.centers[principal.center_id].parent_id is None else \
        sorted(network.visible_centers(principal.center_id))
    for table in tables:
        _restrict(table, visible)
    names = tuple(sorted({f"{t.db}.{t.name}".lower() for t in tables}))
    return ScopedQuery(statement.sql(dialect="spark", comments=False), names)


def _one_select(query: str) -> exp.Expression:
    try:
        statements = [s for s in sqlglot.parse(query, read="spark") if s is not None]
    except sqlglot.errors.SqlglotError as exc:
        raise QueryRefused(f"cannot parse the query: {str(exc).splitlines()[0]}") from None
    if len(statements) != 1:
        raise QueryRefused(f"one statement per query, got {len(statements)}")
    statement = statements[0]
    if not isinstance(statement, exp.Query):
        raise QueryRefused(f"only SELECT queries are allowed, got {statement.key.upper()}")
    return statement


def _check_table(table: exp.Table, ctes: set[str], principal: Principal) -> bool:
    """Whether ``table`` is a registered table to restrict (False: a CTE of the query)."""
    if not isinstance(table.this, exp.Identifier):
        raise QueryRefused(f"table functions are not allowed: {table.this.sql(dialect='spark')}")
    layer, name = table.db.lower(), table.name.lower()
    if table.catalog or layer in FILE_SOURCES:
        raise QueryRefused(f"path and catalog references are not allowed: {table.sql(dialect='spark')}; "
                           "name tables as layer.table")
    if not layer:
        if name in ctes:
            return False
        raise QueryRefused(f"unknown table {table.name!r}: name tables as layer.table (silver.genotypes)")
    try:
        contract = get_table(f"{layer}.{name}")
    except KeyError:
        raise QueryRefused(f"unknown table {layer}.{name}: `omicslake tables` lists them") from None
    admins_only = layer in ADMIN_LAYERS or contract.row_scope.kind == "admin"
    if admins_only and principal.role != "admin":
        raise QueryRefused(f"{layer}.{name} is for admins only ({principal} asked)")
    return True


def _restrict(table: exp.Table, visible: list[str] | None) -> None:
    """Replace ``table`` by ``(SELECT * FROM table WHERE <its rows of the subtree>) AS alias``."""
    scope = get_table(f"{table.db}.{table.name}".lower()).row_scope
    source = exp.table_(table.name.lower(), db=table.db.lower())
    if visible is None or scope.kind in ("shared", "admin"):
        predicate = None
    else:
        ids = [exp.Literal.string(c) for c in visible]
        column = exp.column(scope.column)
        if scope.kind == "center":
            predicate = column.isin(*ids)
        elif scope.kind == "centers":
            predicate = exp.func("arrays_overlap", column, exp.Array(expressions=ids))
        else:  # "scope_or_all"
            predicate = exp.or_(column.eq(exp.Literal.string("all")), column.isin(*ids))
    select = exp.select("*").from_(source)
    if predicate is not None:
        select = select.where(predicate)
    table.replace(select.subquery(table.alias_or_name))
