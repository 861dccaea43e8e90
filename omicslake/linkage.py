"""The master person index's model: deterministic keys, a Splink model, constrained clustering
and stable person ids. Python/pandas on the keyed features (no clear values); only the Splink
model may run on Spark (``Backend("spark", ...)``).

A *node* is one source pseudonym (the ``person_id`` a feed gave its records); a node holds one or
more source identities (``silver.patient_identities`` rows). Nodes are linked by
- merges the sources declared (HL7 ADT A40, FHIR Patient.link replaced-by/replaces),
- the same identifier in the same system (``link_key``) or the same valid resident ID, and
- a Fellegi-Sunter model (Splink): u probabilities from random pairs, m by EM, the prior from
  deterministic rules; pairs at or above the match threshold link, pairs between the review and
  match thresholds go to review. One model definition runs on two Splink database APIs: DuckDB in
  this process, or Spark (``omicslake.linkage_spark``, Spark Connect safe); only the CLK Dice SQL
  differs between their dialects.
Probabilistic links never join two groups holding different valid resident IDs, nor a pair whose
names agree on no more than the family name (twins, siblings, parent and child share address,
phone and family name, which the model counts as independent evidence); such pairs go to review.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from connectors.person_features import CLK_BITS

log = logging.getLogger(__name__)

MATCH_THRESHOLD = 0.9
REVIEW_THRESHOLD = 0.5
RULE_RANK = {"hl7_a40": 0, "fhir_link": 1, "national_id": 2, "identifier": 3, "probabilistic": 4}
STRING_FEATURES = ("family_name_key", "given_name_key", "family_pinyin_key", "given_pinyin_key",
                   "given_root_key", "birth_year_key", "birth_month_key", "birth_day_key", "sex",
                   "national_id_key", "address_key", "postal_prefix")
CLK_FEATURES = ("family_clk", "given_clk", "name_clk", "name_char_clk", "address_clk")
LIST_FEATURES = ("phone_keys",)
BACKENDS = ("duckdb", "spark")


@dataclass(frozen=True)
class Edge:
    left: str
    right: str
    rule: str
    match_weight: float | None = None
    match_probability: float | None = None

    @property
    def rank(self) -> tuple:
        return RULE_RANK[self.rule], -(self.match_probability or 1.0)


# --- nodes and deterministic edges -----------------------------------------------------------


def build_nodes(identities: pd.DataFrame) -> pd.DataFrame:
    """One row per source pseudonym: each feature from the newest identity row that has it."""
    named = identities["family_pinyin_key"].notna() | identities["given_pinyin_key"].notna()
    df = identities.assign(_has=named)
    df = df.sort_values(["_has", "event_time"], ascending=[False, False], na_position="last")
    cols = [*STRING_FEATURES, *CLK_FEATURES, *LIST_FEATURES]
    nodes = df.groupby("person_id", sort=True)[cols].first()
    seen = identities.assign(_t=identities["event_time"].fillna(identities["updated_at"]))
    nodes["first_seen"] = seen.groupby("person_id")["_t"].min()
    return nodes.rename_axis("node_id").reset_index()


def deterministic_edges(identities: pd.DataFrame) -> list[Edge]:
    """Declared merges, shared identifiers in one system, shared valid resident IDs."""
    edges = []
    merged = identities[identities["merged_into_person_id"].notna()
                        & (identities["merged_into_person_id"] != identities["person_id"])]
    for r in merged[["person_id", "merged_into_person_id", "source_format"]].drop_duplicates().itertuples():
        rule = "hl7_a40" if r.source_format == "HL7v2" else "fhir_link"
        edges.append(Edge(r.person_id, r.merged_into_person_id, rule))
    for column, rule in (("link_key", "identifier"), ("national_id_key", "national_id")):
        groups = identities[identities[column].notna()].groupby(column)["person_id"].unique()
        for nodes in groups:
            edges += [Edge(nodes[0], other, rule) for other in sorted(nodes[1:])]
    return edges


def merges(edges: list[Edge]) -> list[tuple[str, str]]:
    """(retired source pseudonym, surviving one) of each declared merge."""
    return [(e.left, e.right) for e in edges if e.rule in ("hl7_a40", "fhir_link")]


# --- the Splink model ------------------------------------------------------------------------


def _popcount(column: str, dialect: str) -> str:
    """Set bits of a CLK: a DuckDB BIT string, or a Spark array of 64-bit words."""
    if dialect == "duckdb":
        return f"bit_count({column})"
    return f"aggregate({column}, 0, (n, w) -> n + bit_count(w))"


def _common_bits(left: str, right: str, dialect: str) -> str:
    """Bits set in both CLKs. On Spark, word by word through ``arrays_zip`` (whose struct fields
    take the column names): Sail has no ``zip_with``, its lambdas cannot read outer columns, and
    the same sum written out word by word (no lambda) makes training 5x slower on Sail."""
    if dialect == "duckdb":
        return f"bit_count({left} & {right})"
    return f"aggregate(arrays_zip({left}, {right}), 0, (n, z) -> n + bit_count(z.{left} & z.{right}))"


def _dice(column: str, at: float, dialect: str) -> str:
    """Dice coefficient of two CLKs at least ``at``, in ``dialect`` (``duckdb`` or ``spark``)."""
    if dialect not in BACKENDS:
        raise ValueError(f"unknown SQL dialect {dialect!r}")
    left, right = f"{column}_l", f"{column}_r"
    return (f"({left} IS NOT NULL AND {right} IS NOT NULL AND "
            f"2.0 * {_common_bits(left, right, dialect)} / "
            f"({_popcount(left, dialect)} + {_popcount(right, dialect)}) >= {at})")


def _level(sql: str, label: str, null: bool = False):
    import splink.comparison_level_library as cll

    level = cll.CustomLevel(sql, label_for_charts=label)
    return level.configure(is_null_level=True) if null else level


FAM, GIV = "family_pinyin_key", "given_pinyin_key"
Y, M, D = "birth_year_key", "birth_month_key", "birth_day_key"


def name_levels(dialect: str = "duckdb") -> tuple:
    """(label, SQL) from the most to the least specific; anything else is the last level. The
    labels (and so the gamma values) are the same in every dialect."""
    return (
        ("same characters", "name_char_clk_l IS NOT NULL AND name_char_clk_r IS NOT NULL AND "
                            "family_name_key_l = family_name_key_r AND given_name_key_l = given_name_key_r"),
        ("same pinyin", f"{FAM}_l = {FAM}_r AND {GIV}_l = {GIV}_r"),
        ("given and family swapped", f"{FAM}_l = {GIV}_r AND {GIV}_l = {FAM}_r"),
        ("one part same, other close", f"({FAM}_l = {FAM}_r AND {_dice('given_clk', 0.7, dialect)}) OR "
                                       f"({GIV}_l = {GIV}_r AND {_dice('family_clk', 0.7, dialect)})"),
        ("nickname (same last syllable)", f"{FAM}_l = {FAM}_r AND given_root_key_l = given_root_key_r"),
        ("close (CLK Dice >= 0.85)", _dice("name_clk", 0.85, dialect)),
        ("one part same, other similar, one side in pinyin only",
         "(name_char_clk_l IS NULL OR name_char_clk_r IS NULL) AND "
         f"(({FAM}_l = {FAM}_r AND {_dice('given_clk', 0.5, dialect)}) OR "
         f"({GIV}_l = {GIV}_r AND {_dice('family_clk', 0.5, dialect)}))"),
        ("same family name only", f"{FAM}_l = {FAM}_r"),
    )


NAME_LEVELS = name_levels()
BIRTH_LEVELS = (
    ("same date", f"{Y}_l = {Y}_r AND {M}_l = {M}_r AND {D}_l = {D}_r"),
    ("one field differs", f"({Y}_l = {Y}_r AND {M}_l = {M}_r) OR ({Y}_l = {Y}_r AND {D}_l = {D}_r) OR "
                          f"({M}_l = {M}_r AND {D}_l = {D}_r)"),
    ("day and month transposed", f"{Y}_l = {Y}_r AND {M}_l = {D}_r AND {D}_l = {M}_r"),
    ("same year only", f"{Y}_l = {Y}_r"),
)


def gamma(levels: tuple, label: str) -> int:
    """Splink's comparison vector value of a level: the else level is 0, the first level highest."""
    return len(levels) - [lab for lab, _ in levels].index(label)


def _comparison(name: str, null_sql: str, levels: tuple):
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    return cl.CustomComparison(output_column_name=name, comparison_levels=[
        _level(null_sql, "null", True), *(_level(sql, label) for label, sql in levels), cll.ElseLevel()])


def _name_comparison(dialect: str):
    null = f"({FAM}_l IS NULL AND {GIV}_l IS NULL) OR ({FAM}_r IS NULL AND {GIV}_r IS NULL)"
    return _comparison("name", null, name_levels(dialect))


def _birth_comparison():
    return _comparison("birth_date", f"{Y}_l IS NULL OR {Y}_r IS NULL", BIRTH_LEVELS)


def names_differ(pairs: pd.DataFrame) -> pd.Series:
    """Pairs whose names agree on no more than the family name. Twins, siblings, parent and child
    share address, phone and family name (twins the birth date too), and the model, which takes
    those as independent evidence, cannot tell them from one person: such pairs are never
    linked on a probability, only reviewed."""
    return pairs["gamma_name"].between(0, gamma(NAME_LEVELS, "same family name only"))


def multiple_birth(pairs: pd.DataFrame) -> pd.Series:
    """Of those, pairs born the same day: they also stay apart through third records."""
    return names_differ(pairs) & (pairs["gamma_birth_date"] == gamma(BIRTH_LEVELS, "same date"))


def _other_comparisons(dialect: str) -> list:
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    sex = cl.CustomComparison(output_column_name="sex", comparison_levels=[
        _level("coalesce(sex_l, 'U') IN ('U', 'O') OR coalesce(sex_r, 'U') IN ('U', 'O')", "unknown", True),
        _level("sex_l = sex_r", "same"), cll.ElseLevel()])
    national = cl.CustomComparison(output_column_name="national_id", comparison_levels=[
        _level("national_id_key_l IS NULL OR national_id_key_r IS NULL", "null", True),
        _level("national_id_key_l = national_id_key_r", "same"), cll.ElseLevel()])
    address = cl.CustomComparison(output_column_name="address", comparison_levels=[
        _level("(address_key_l IS NULL OR address_key_r IS NULL) AND "
               "(postal_prefix_l IS NULL OR postal_prefix_r IS NULL)", "null", True),
        _level("address_key_l = address_key_r", "same"),
        _level(_dice("address_clk", 0.8, dialect), "close (CLK Dice >= 0.8)"),
        _level("postal_prefix_l = postal_prefix_r", "same postal area"), cll.ElseLevel()])
    return [sex, national, cl.ArrayIntersectAtSizes("phone_keys", [1]), address]


def settings(dialect: str = "duckdb"):
    """The model: comparisons and the blocking rules that generate candidate pairs."""
    from splink import SettingsCreator, block_on

    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="node_id",
        comparisons=[_name_comparison(dialect), _birth_comparison(), *_other_comparisons(dialect)],
        blocking_rules_to_generate_predictions=[
            block_on("birth_year_key", "birth_month_key", "birth_day_key"),
            block_on("family_pinyin_key", "given_pinyin_key"),
            "l.family_pinyin_key = r.given_pinyin_key AND l.given_pinyin_key = r.family_pinyin_key",
            block_on("family_pinyin_key", "birth_year_key"),
            block_on("given_pinyin_key", "birth_year_key"),
            block_on("phone_keys", arrays_to_explode=["phone_keys"]),
            block_on("address_key"),
            block_on("national_id_key"),
        ],
        retain_matching_columns=True,  # the only way Splink keeps the comparison levels (gamma_*)
        retain_intermediate_calculation_columns=False,
    )


def clk_words(encoded: str | None) -> list[int] | None:
    """A base64 CLK as its 64-bit words (little-endian), the form Spark SQL can Dice."""
    if not isinstance(encoded, str) or not encoded:
        return None
    raw = base64.b64decode(encoded)
    if len(raw) != CLK_BITS // 8:
        raise ValueError(f"a CLK has {CLK_BITS // 8} bytes, not {len(raw)}")
    return np.frombuffer(raw, "<i8").tolist()


def splink_table(nodes: pd.DataFrame, dialect: str = "duckdb") -> pa.Table:
    """The model's input with explicit types (an all-null column still has its type). CLKs stay
    base64 text for DuckDB (cast to BIT there) and become arrays of 64-bit words for Spark."""
    columns = {"node_id": pa.array(nodes["node_id"], pa.string())}
    for c in STRING_FEATURES:
        columns[c] = pa.array(nodes[c].where(nodes[c].notna(), None), pa.string())
    for c in CLK_FEATURES:
        columns[c] = (pa.array([clk_words(v) for v in nodes[c]], pa.list_(pa.int64())) if dialect == "spark"
                      else pa.array(nodes[c].where(nodes[c].notna(), None), pa.string()))
    for c in LIST_FEATURES:
        columns[c] = pa.array([list(v) if v is not None and len(v) else None for v in nodes[c]],
                              pa.list_(pa.string()))
    return pa.table(columns)


@dataclass(frozen=True)
class Backend:
    """Where the Splink model runs: ``duckdb`` in this process, or ``spark`` on ``spark`` (a Spark
    Connect or classic session) through ``linkage_spark.ConnectSparkAPI``, which breaks lineage
    to Parquet under ``staging.folder(staging_root, staging_key)`` and removes it on close."""

    name: str = "duckdb"
    spark: object | None = None
    staging_root: str | None = None
    staging_key: str | None = None

    def __post_init__(self):
        if self.name not in BACKENDS:
            raise ValueError(f"unknown linkage backend {self.name!r} (one of {', '.join(BACKENDS)})")
        if self.name == "spark" and (self.spark is None or not self.staging_root or not self.staging_key):
            raise ValueError("the Spark backend needs a session and a staging folder")


DUCKDB = Backend()


def register(nodes: pd.DataFrame, backend: Backend = DUCKDB):
    """The nodes as a Splink input table of the backend's database. DuckDB: CLKs as BIT strings
    (a Dice is two popcounts). Spark: the Arrow table becomes a DataFrame of the session."""
    if backend.name == "spark":
        from omicslake.linkage_spark import ConnectSparkAPI

        db = ConnectSparkAPI(backend.spark, backend.staging_root, backend.staging_key)
        return db.register(splink_table(nodes, "spark"))
    import duckdb
    from splink import DuckDBAPI

    con = duckdb.connect()
    con.register("nodes_arrow", splink_table(nodes))
    clks = ", ".join(f"CAST(from_base64({c}) AS BIT) AS {c}" for c in CLK_FEATURES)
    others = ", ".join(c for c in ("node_id", *STRING_FEATURES, *LIST_FEATURES))
    con.execute(f"CREATE TABLE person_nodes AS SELECT {others}, {clks} FROM nodes_arrow")
    db = DuckDBAPI(connection=con)
    return db.register("person_nodes")


@dataclass
class Model:
    """A trained linker and what training reported (for the run's details)."""

    linker: object
    db: object = None  # the Splink database API it runs on
    notes: list[str] = field(default_factory=list)
    pairs_scored: int = 0

    def as_dict(self) -> dict:
        return self.linker.misc.save_model_to_json()

    def query(self, sql: str) -> pd.DataFrame:
        """A query on the backend's database, its result on the driver."""
        return self.linker.misc.query_sql(sql, output_type="pandas")

    def close(self) -> None:
        """Release what the backend holds (the Spark backend's views and Parquet staging)."""
        close = getattr(self.db, "close", None)
        if close:
            close()


def train(nodes: pd.DataFrame, seed: int = 42, max_u_pairs: float = 2e6, backend: Backend = DUCKDB) -> Model:
    """u by random sampling, the prior from deterministic rules, m by EM on two blockings. The
    same model on either backend; close the model when done with it."""
    from splink import Linker

    table = register(nodes, backend)
    model = Model(None, table.db_api)
    try:
        model.linker = Linker(table, settings(backend.name), log_level=logging.WARNING)
        _train(model, len(nodes), seed, max_u_pairs, backend.name)
    except BaseException:
        model.close()
        raise
    return model


def _train(model: Model, n: int, seed: int, max_u_pairs: float, dialect: str) -> None:
    from splink import block_on

    linker = model.linker
    try:
        linker.training.estimate_probability_two_random_records_match(
            [block_on("national_id_key"),
             block_on("family_pinyin_key", "given_pinyin_key", "birth_year_key", "birth_month_key",
                      "birth_day_key")], recall=0.7)
    except ValueError as exc:  # too few records for the estimate: keep the default prior
        model.notes.append(f"prior not estimated: {exc}")
    linker.training.estimate_u_using_random_sampling(max_pairs=min(max_u_pairs, n * (n - 1) / 2 + 1),
                                                     seed=seed)
    for rule in (block_on("birth_year_key", "birth_month_key", "birth_day_key"),
                 block_on("family_pinyin_key", "given_pinyin_key")):
        try:
            linker.training.estimate_parameters_using_expectation_maximisation(rule)
        except Exception as exc:  # no pairs under this blocking: the other session trains m
            model.notes.append(f"EM on {rule.get_blocking_rule(dialect).blocking_rule_sql}: {exc}")


def predict(model: Model, review_threshold: float) -> pd.DataFrame:
    """Scored candidate pairs at or above the review threshold, with their comparison levels.
    Only those columns reach the driver (the pairs above the review threshold are few)."""
    blocked = model.linker.inference.compute_blocked_pairs_for_predict()  # predict reuses it
    model.pairs_scored = int(model.query(f"SELECT count(*) AS n FROM {blocked.physical_name}")["n"].iloc[0])
    scored = model.linker.inference.predict(threshold_match_probability=review_threshold,
                                            warning_mode="never")
    gammas = [n for c in scored.columns if (n := c.unquote().name).startswith("gamma_")]
    columns = ", ".join(["node_id_l", "node_id_r", "match_weight", "match_probability", *gammas])
    out = model.query(f"SELECT {columns} FROM {scored.physical_name}")
    return out.sort_values(["match_probability", "node_id_l", "node_id_r"],
                           ascending=[False, True, True], ignore_index=True)


# --- clustering -----------------------------------------------------------------------------


class Clusters:
    """Union-find over nodes that refuses a probabilistic union of two groups that hold different
    valid resident IDs, or a pair that must stay apart (``cannot``)."""

    def __init__(self, nodes: list[str], national_ids: dict[str, set[str]],
                 cannot: list[tuple[str, str]] = ()):
        self.parent = {n: n for n in nodes}
        self.members = {n: {n} for n in nodes}
        self.ids = {n: set(national_ids.get(n, ())) for n in nodes}
        self.cannot: dict[str, set[str]] = defaultdict(set)
        for a, b in cannot:
            self.cannot[a].add(b)
            self.cannot[b].add(a)

    def find(self, n: str) -> str:
        while self.parent[n] != n:
            self.parent[n] = self.parent[self.parent[n]]
            n = self.parent[n]
        return n

    def conflict(self, ra: str, rb: str) -> str | None:
        if self.ids[ra] and self.ids[rb] and self.ids[ra] != self.ids[rb]:
            return "conflicting national ids"
        if self.cannot[ra] & self.members[rb]:
            return "possible multiple birth"
        return None

    def union(self, a: str, b: str, constrained: bool) -> str | None:
        """Join the groups of a and b; returns why it refused, else None."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return None
        why = self.conflict(ra, rb) if constrained else None
        if why:
            return why
        ra, rb = sorted((ra, rb))
        self.parent[rb] = ra
        self.members[ra] |= self.members.pop(rb)
        self.ids[ra] |= self.ids.pop(rb)
        self.cannot[ra] |= self.cannot.pop(rb, set())
        return None

    def groups(self) -> dict[str, list[str]]:
        return {r: sorted(ms) for r, ms in self.members.items()}


@dataclass
class Linkage:
    """Clusters of nodes, the evidence that joined each node, and pairs left to review."""

    groups: dict[str, list[str]]
    evidence: dict[str, Edge]
    review: list[tuple[Edge, str]]


def cluster(nodes: list[str], edges: list[Edge], pairs: pd.DataFrame, national_ids: dict[str, set[str]],
            match_threshold: float) -> Linkage:
    """Deterministic edges always join; probabilistic ones join best first unless they would put
    two resident IDs or a possible multiple birth into one person (those go to review)."""
    scored = "gamma_name" in pairs.columns
    twins = pairs[multiple_birth(pairs)] if scored else pairs.iloc[:0]
    differ = set(pairs.index[names_differ(pairs)]) if scored else set()
    uf = Clusters(nodes, national_ids, list(zip(twins["node_id_l"], twins["node_id_r"], strict=True)))
    accepted, review = [], []
    for e in sorted(edges, key=lambda e: e.rank):
        uf.union(e.left, e.right, constrained=False)
        accepted.append(e)
    for r in pairs.itertuples():
        e = Edge(r.node_id_l, r.node_id_r, "probabilistic", float(r.match_weight), float(r.match_probability))
        if e.match_probability < match_threshold:
            why = "between thresholds"
        else:
            why = "names differ" if r.Index in differ else uf.union(e.left, e.right, constrained=True)
        if why:
            review.append((e, why))
        else:
            accepted.append(e)
    review = [(e, why) for e, why in review if uf.find(e.left) != uf.find(e.right)]
    return Linkage(uf.groups(), strongest_evidence(accepted), review)


def strongest_evidence(accepted: list[Edge]) -> dict[str, Edge]:
    """Per node, the strongest accepted edge touching it (rule rank, then probability)."""
    best: dict[str, Edge] = {}
    for e in sorted(accepted, key=lambda e: e.rank):
        if e.left == e.right:
            continue
        for n in (e.left, e.right):
            best.setdefault(n, e)
    return best


# --- stable person ids ----------------------------------------------------------------------


@dataclass
class Prior:
    """What the index held before this run."""

    person_of: dict[str, str] = field(default_factory=dict)  # source pseudonym -> person id
    status: dict[str, str] = field(default_factory=dict)  # person id -> active | retired
    created: dict[str, str] = field(default_factory=dict)  # person id -> created_at (ISO)


@dataclass
class Assignment:
    person_of: dict[str, str]  # node -> person id
    retired: dict[str, str | None]  # newly retired person id -> person now holding its nodes


def assign_ids(groups: dict[str, list[str]], prior: Prior, first_seen: dict[str, str],
               merge_pairs: list[tuple[str, str]]) -> Assignment:
    """Give each group a person id without renumbering anyone.

    A group keeps the oldest active person id its nodes had, except one that a declared merge
    retired; a group with none takes the id of its founding node (a merge survivor first, then
    the node seen first), so a person seen once keeps its source pseudonym. A person no group
    kept is retired into the group that now holds most of its nodes.
    """
    away = {prior.person_of[o] for o, n in merge_pairs
            if o in prior.person_of and prior.person_of.get(n) != prior.person_of[o]}
    taken = set(prior.status)
    claimed: set[str] = set()
    person_of: dict[str, str] = {}
    for nodes in sorted(groups.values(), key=lambda ns: _group_order(ns, prior, first_seen)):
        kept = [p for p in _candidates(nodes, prior, away) if p not in claimed]
        pid = kept[0] if kept else _mint(nodes, taken, first_seen, merge_pairs)
        claimed.add(pid)
        taken.add(pid)
        person_of.update((n, pid) for n in nodes)
    return Assignment(person_of, _retired(prior, claimed, person_of))


def _candidates(nodes: list[str], prior: Prior, away: set[str]) -> list[str]:
    found = {p for n in nodes if (p := prior.person_of.get(n)) and prior.status.get(p) == "active"}
    return sorted(found - away, key=lambda p: (prior.created.get(p, "~"), p))


def _group_order(nodes: list[str], prior: Prior, first_seen: dict[str, str]) -> tuple:
    created = [prior.created.get(p, "~") for n in nodes if (p := prior.person_of.get(n))]
    return min(created, default="~"), min(first_seen.get(n, "~") for n in nodes), nodes[0]


def _mint(nodes: list[str], taken: set[str], first_seen: dict[str, str],
          merge_pairs: list[tuple[str, str]]) -> str:
    survivors, retired = {n for _, n in merge_pairs}, {o for o, _ in merge_pairs}
    for n in sorted(nodes, key=lambda n: (n not in survivors, n in retired, first_seen.get(n, "~"), n)):
        if n not in taken:
            return n
    return "P" + hashlib.sha256("|".join(sorted(nodes)).encode()).hexdigest()[:31]


def _retired(prior: Prior, claimed: set[str], person_of: dict[str, str]) -> dict[str, str | None]:
    holders: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for node, p in prior.person_of.items():
        if node in person_of:
            holders[p][person_of[node]] += 1
    out = {}
    for p, status in sorted(prior.status.items()):
        if status == "active" and p not in claimed:
            counts = holders.get(p, {})
            out[p] = min(counts, key=lambda q: (-counts[q], q)) if counts else None
    return out


def resolve_chains(merged_into: dict[str, str | None]) -> dict[str, str | None]:
    """Follow retired -> retired -> ... to the person that is active now."""
    out = {}
    for p in merged_into:
        seen, q = {p}, merged_into[p]
        while q in merged_into and q not in seen:
            seen.add(q)
            q = merged_into[q]
        out[p] = q
    return out
