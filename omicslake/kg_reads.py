"""The knowledge graph read back: loaded external releases and the neighbours of a node, for
``omicslake kg releases|neighbors``. The graph itself is built by ``jobs/build_kg.py``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from connectors.kg_formats import EXTERNAL_SOURCES
from omicslake.catalog import read_table
from omicslake.errors import InputError
from omicslake.settings import Settings

NODES, EDGES, SOURCES = "gold.kg_nodes", "gold.kg_edges", "ops.reference_sources"


@dataclass(frozen=True)
class Release:
    """One registered release of an external graph (a row of ops.reference_sources)."""

    source: str
    release: str
    sha256: str
    records: int
    loaded_at: datetime


def releases(spark: SparkSession, settings: Settings) -> list[Release]:
    """Every loaded external graph release, oldest first."""
    rows = read_table(spark, settings, SOURCES).where(F.col("source").isin(*EXTERNAL_SOURCES)).collect()
    return sorted((Release(r.source, r.release, r.sha256, r.records, r.loaded_at) for r in rows),
                  key=lambda r: (r.source, r.loaded_at))


class FrontierTooLarge(InputError):
    """A hop reaches more edges than the cap: the answer would not fit the driver."""


def current(spark: SparkSession, settings: Settings, table: str, names: list[str] | None = None) -> DataFrame:
    """Rows of ``table`` to query: the lake's own, plus the latest loaded release of each external
    graph, or with ``names`` exactly those releases. A release not yet registered (being loaded,
    or a failed load) is never read."""
    known = releases(spark, settings)
    if names:
        missing = sorted(set(names) - {r.release for r in known})
        if missing:
            listed = ", ".join(f"{r.source}:{r.release}" for r in known) or "none"
            raise InputError(f"no loaded graph release {', '.join(missing)} (loaded: {listed})")
        chosen = {(r.source, r.release) for r in known if r.release in names}
    else:
        chosen = {(r.source, r.release) for r in known if r == max(
            (k for k in known if k.source == r.source), key=lambda k: k.loaded_at)}
    rows = read_table(spark, settings, table)
    keep = ~F.col("source").isin(*EXTERNAL_SOURCES)
    for source, release in sorted(chosen):
        keep = keep | ((F.col("source") == source) & (F.col("release") == release))
    return rows.where(keep)


def _describe(spark: SparkSession, settings: Settings, ids: set[str], names: list[str] | None) -> dict:
    """type, name and source of each node id, the lake's row first when several sources name it."""
    wanted = spark.createDataFrame([(i,) for i in sorted(ids)], "node_id string")
    rank = F.when(F.col("source").isin(*EXTERNAL_SOURCES), 1).otherwise(0)
    rows = (current(spark, settings, NODES, names).join(wanted, "node_id", "left_semi")
            .groupBy("node_id").agg(F.min(F.struct(rank.alias("r"), "source", "type", "name")).alias("b"))
            .select("node_id", "b.type", "b.name", "b.source").collect())
    return {r.node_id: {"type": r.type, "name": r.name, "source": r.source} for r in rows}


def _hop(spark: SparkSession, both: DataFrame, frontier: list[str], seen: set[str], cap: int) -> list:
    """Edges from the frontier to nodes not seen yet: a join and an anti-join on the engine;
    only up to ``cap`` + 1 edges come back, to tell an explosion from an answer."""
    f = spark.createDataFrame([(n,) for n in frontier], "node string")
    old = spark.createDataFrame([(n,) for n in sorted(seen)], "node string")
    step = both.join(f, both["from"] == f["node"], "left_semi")
    step = step.join(old, step["to"] == old["node"], "left_anti")
    return step.limit(cap + 1).collect()


def neighbors(spark: SparkSession, settings: Settings, node: str, hops: int = 1,
              relations: list[str] | None = None, names: list[str] | None = None, cap: int = 5000) -> dict:
    """Nodes within ``hops`` of ``node`` (edges followed both ways), hop by hop as joins on the
    engine; stops with FrontierTooLarge when a hop reaches more than ``cap`` edges."""
    if hops < 1:
        raise InputError("--hops must be 1 or more")
    if node not in _describe(spark, settings, {node}, names):
        raise InputError(f"no node {node!r} in the graph; ids look like person:<person_id>, gene:EGFR, "
                         "variant:GRCh38:chr7:55191822:T:G, disease:ICD10:C34, drug:clopidogrel")
    edges = current(spark, settings, EDGES, names)
    if relations:
        edges = edges.where(F.col("relation").isin(*relations))
    cols = ["src", "dst", "relation", "source", "evidence", "release"]
    both = edges.select(F.col("src").alias("from"), F.col("dst").alias("to"), *cols).unionByName(
        edges.select(F.col("dst").alias("from"), F.col("src").alias("to"), *cols))
    seen, frontier, steps = {node}, [node], []
    for hop in range(1, hops + 1):
        rows = _hop(spark, both, frontier, seen, cap)
        if len(rows) > cap:
            raise FrontierTooLarge(
                f"hop {hop} from {len(frontier)} node(s) reaches more than {cap} edges; narrow it with "
                "--relation or fewer --hops, or raise --max-edges (the answer is collected to this machine)")
        rows.sort(key=lambda r: (r.to, r.relation, r["from"]))
        steps += [{"hop": hop, **r.asDict()} for r in rows]
        frontier = sorted({r.to for r in rows})
        seen |= set(frontier)
        if not frontier:
            break
    info = _describe(spark, settings, seen, names)
    return {"node": node, **info[node], "edges": [{**s, "node": info.get(s["to"], {})} for s in steps]}
