"""Readers for external biomedical knowledge graphs: PrimeKG's ``kg.csv`` and Hetionet's TSV pair.

Both read on the engine (Spark's CSV reader; ``.gz`` by extension), so a whole PrimeKG (8.1 M
rows) never passes through the driver. Each reader returns *triples*: one row per edge, with
both ends already named in the lake's namespaces (``gene:<HGNC symbol>``, ``drug:<name>`` for
a drug of reference/cpic/drugs.csv, else ``drug:DrugBank:<id>``, ``<type>:<prefix>:<id>`` for
the rest), so an external edge meets the lake's own nodes wherever the two coincide. A row
whose ends cannot be named (a missing id or name, an edge to a node the nodes file lacks)
has a NULL ``src`` or ``dst``; the loader counts and skips it (``raw`` keeps the row as read,
for the warning).

Formats, as published:
- PrimeKG (Chandak, Huang & Zitnik 2023, Harvard Dataverse): ``kg.csv`` with ``relation,
  display_relation, x_index, x_id, x_type, x_name, x_source, y_index, y_id, y_type, y_name,
  y_source``; every undirected edge is listed in both directions (the loader keeps one row per
  edge). MONDO, HPO, GO and UBERON ids are written as bare integers there; they become
  zero-padded CURIEs (MONDO:0005233).
- Hetionet v1.0: ``hetionet-v1.0-nodes.tsv`` (``id, name, kind``; ids like ``Gene::1017``,
  ``Compound::DB00063``, ``Disease::DOID:0050156``) and ``hetionet-v1.0-edges.sif[.gz]``
  (``source, metaedge, target``; metaedges abbreviated: CbG, CtD, GiG, Gr>G ...).
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from omicslake.errors import InputError

EXTERNAL_SOURCES = ("primekg", "hetionet")
TRIPLE_COLUMNS = ("src", "src_type", "src_name", "src_source_id",
                  "dst", "dst_type", "dst_name", "dst_source_id", "relation", "evidence")
NODE_COLUMNS = ("node_id", "type", "name", "source_id")

PRIMEKG_COLUMNS = ("relation", "display_relation", "x_index", "x_id", "x_type", "x_name", "x_source",
                   "y_index", "y_id", "y_type", "y_name", "y_source")
HETIONET_NODES = ("id", "name", "kind")
HETIONET_EDGES = ("source", "metaedge", "target")

# PrimeKG x_source -> CURIE prefix; the ontologies PrimeKG writes as bare integers get padded.
PRIMEKG_PREFIX = {"NCBI": "NCBIGene", "HPO": "HP"}
PADDED = ("MONDO", "HP", "GO", "UBERON")
# Hetionet kinds whose local ids carry no prefix of their own.
HETIONET_PREFIX = {"Side Effect": "UMLS", "Symptom": "MeSH", "Pharmacologic Class": "NDFRT"}
# The 24 metaedges of Hetionet v1.0 (describe/edges/metaedges.tsv): abbreviation -> verb.
METAEDGE_VERBS = {
    "AdG": "downregulates", "AeG": "expresses", "AuG": "upregulates", "CbG": "binds",
    "CcSE": "causes", "CdG": "downregulates", "CpD": "palliates", "CrC": "resembles",
    "CtD": "treats", "CuG": "upregulates", "DaG": "associates", "DdG": "downregulates",
    "DlA": "localizes", "DpS": "presents", "DrD": "resembles", "DuG": "upregulates",
    "GcG": "covaries", "GiG": "interacts", "GpBP": "participates", "GpCC": "participates",
    "GpMF": "participates", "GpPW": "participates", "Gr>G": "regulates", "PCiC": "includes",
}


@dataclass
class Parsed:
    """What a reader found: edges as triples, and nodes the edges may not reach (Hetionet)."""

    triples: DataFrame
    nodes: DataFrame | None
    files: list[str]
    undirected: bool = False  # every edge listed both ways: keep one row per edge


def header(path: str, sep: str) -> list[str]:
    """The first line's column names: a wrong file is refused before the engine reads it."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8", newline="") as fh:
            line = fh.readline()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the header ({exc})") from exc
    return [c.strip().strip('"') for c in line.rstrip("\r\n").split(sep)]


def _drug(name: Column, local: Column, drug_names: list[str]) -> Column:
    """``drug:<name>`` for a drug the lake knows by name (reference/cpic/drugs.csv), else by id."""
    lowered = F.lower(F.trim(name))
    return F.when(lowered.isin(drug_names), F.concat(F.lit("drug:"), lowered)).otherwise(
        F.concat(F.lit("drug:DrugBank:"), local))


# --- PrimeKG ---------------------------------------------------------------------------------


def _primekg_end(side: str, drug_names: list[str]) -> list[Column]:
    """node id, type, name and source id of one end (``x`` or ``y``) of a kg.csv row."""
    raw_type, name, ident = F.col(f"{side}_type"), F.col(f"{side}_name"), F.trim(F.col(f"{side}_id"))
    kind = (F.when(raw_type == "gene/protein", "gene").when(raw_type == "effect/phenotype", "phenotype")
            .otherwise(F.regexp_replace(F.lower(raw_type), "[^a-z0-9]+", "_")))
    prefix = F.col(f"{side}_source")
    for given, curie in PRIMEKG_PREFIX.items():
        prefix = F.when(F.col(f"{side}_source") == given, curie).otherwise(prefix)
    padded = F.when(prefix.isin(*PADDED) & ident.rlike("^[0-9]+$"), F.lpad(ident, 7, "0")).otherwise(ident)
    source_id = F.concat(prefix, F.lit(":"), padded)
    node = (F.when(kind == "gene", F.concat(F.lit("gene:"), name))
            .when(kind == "drug", _drug(name, padded, drug_names))
            .otherwise(F.concat(kind, F.lit(":"), source_id)))
    return [node, kind, name, source_id]


def read_primekg(spark: SparkSession, files: list[str], drug_names: list[str]) -> Parsed:
    """PrimeKG ``kg.csv`` (one file) as triples; relation is PrimeKG's, evidence its display_relation."""
    if len(files) != 1:
        raise InputError(f"PrimeKG is one kg.csv; got {len(files)} files")
    path = files[0]
    missing = [c for c in PRIMEKG_COLUMNS if c not in header(path, ",")]
    if missing:
        raise InputError(f"{path}: not a PrimeKG kg.csv, it lacks columns {missing} "
                         f"(expected {', '.join(PRIMEKG_COLUMNS)})")
    rows = (spark.read.option("header", True).option("quote", '"').option("escape", '"')
            .option("multiLine", False).csv(path))
    ends = [*_primekg_end("x", drug_names), *_primekg_end("y", drug_names)]
    triples = rows.select(*[c.alias(n) for c, n in zip(ends, TRIPLE_COLUMNS[:8], strict=True)],
                          F.col("relation"), F.col("display_relation").alias("evidence"),
                          F.concat_ws(",", *PRIMEKG_COLUMNS).alias("raw"))
    return Parsed(triples, None, [path], undirected=True)


# --- Hetionet --------------------------------------------------------------------------------


def _tsv(spark: SparkSession, path: str) -> DataFrame:
    """A Hetionet TSV: tab separated, no quoting (names hold quotes and commas as they are)."""
    return spark.read.option("header", True).option("sep", "\t").option("quote", "").csv(path)


def hetionet_nodes(rows: DataFrame, drug_names: list[str]) -> DataFrame:
    """``id, name, kind`` -> node_id, type, name, source_id (plus the Hetionet id to join edges on)."""
    kind, name = F.col("kind"), F.col("name")
    local = F.regexp_extract("id", "^[^:]+::(.+)$", 1)
    kind_type = F.regexp_replace(F.lower(kind), "[^a-z0-9]+", "_")
    prefix = F.lit(None).cast("string")
    for given, curie in HETIONET_PREFIX.items():
        prefix = F.when(kind == given, F.lit(curie)).otherwise(prefix)
    source_id = (F.when(kind == "Gene", F.concat(F.lit("NCBIGene:"), local))
                 .when(kind == "Compound", F.concat(F.lit("DrugBank:"), local))
                 .when(local.contains(":"), local)
                 .otherwise(F.concat_ws(":", prefix, local)))
    node = (F.when(kind == "Gene", F.concat(F.lit("gene:"), name))
            .when(kind == "Compound", _drug(name, local, drug_names))
            .otherwise(F.concat(kind_type, F.lit(":"), source_id)))
    node = F.when((local != "") & name.isNotNull(), node)
    node_type = F.when(kind == "Compound", "drug").otherwise(kind_type)
    return rows.select(F.col("id").alias("hetionet_id"), node.alias("node_id"),
                       node_type.alias("type"), name.alias("name"), source_id.alias("source_id"))


def _relation(metaedge: Column) -> Column:
    verbs = F.create_map(*[F.lit(x) for pair in METAEDGE_VERBS.items() for x in pair])
    return F.coalesce(F.element_at(verbs, metaedge), metaedge)


def read_hetionet(spark: SparkSession, files: list[str], drug_names: list[str]) -> Parsed:
    """Hetionet's nodes TSV and edges SIF (either order) as triples; relation is the metaedge's
    verb (binds, treats ...), evidence the metaedge itself (CbG)."""
    kinds = {tuple(header(f, "\t")): f for f in files}
    nodes_file, edges_file = kinds.get(HETIONET_NODES), kinds.get(HETIONET_EDGES)
    if len(files) != 2 or not nodes_file or not edges_file:
        raise InputError("Hetionet is two files: the nodes TSV (id, name, kind) and the edges TSV/SIF "
                         f"(source, metaedge, target); got headers {[list(k) for k in kinds]}")
    nodes = hetionet_nodes(_tsv(spark, nodes_file), drug_names)
    ends = {side: nodes.select(F.col("hetionet_id").alias(f"{side}_hid"),
                               *[F.col(c).alias(f"{side}_{n}") for c, n in
                                 zip(NODE_COLUMNS, ("", "type", "name", "source_id"), strict=True)])
            for side in ("src", "dst")}
    edges = _tsv(spark, edges_file)
    joined = (edges.join(ends["src"], edges.source == F.col("src_hid"), "left")
              .join(ends["dst"], edges.target == F.col("dst_hid"), "left"))
    triples = joined.select(
        F.col("src_").alias("src"), "src_type", "src_name", "src_source_id",
        F.col("dst_").alias("dst"), "dst_type", "dst_name", "dst_source_id",
        _relation(F.col("metaedge")).alias("relation"), F.col("metaedge").alias("evidence"),
        F.concat_ws("\t", *HETIONET_EDGES).alias("raw"))
    return Parsed(triples, nodes.drop("hetionet_id"), [nodes_file, edges_file])


READERS = {"primekg": read_primekg, "hetionet": read_hetionet}


def read(spark: SparkSession, fmt: str, files: list[str], drug_names: list[str]) -> Parsed:
    """Read one external graph release in ``fmt`` (primekg | hetionet)."""
    if fmt not in READERS:
        raise InputError(f"unknown graph format {fmt!r}; known: {', '.join(READERS)}")
    for f in files:
        if not Path(f).is_file():
            raise InputError(f"{f}: no such file")
    return READERS[fmt](spark, [str(Path(f).resolve()) for f in files], sorted(drug_names))
