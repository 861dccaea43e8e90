"""Reading the master person index: source pseudonym to master person, and the identity
cross-reference (IHE PIX-like) query. The index itself is built by ``jobs/link_persons.py``."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from omicslake.catalog import read_table
from omicslake.settings import Settings

XREF_COLUMNS = ("identity_id", "source_person_id", "center_id", "source_format", "assigning_authority",
                "identifier_type", "identifier_key", "link_rule", "match_probability")


def to_master(spark: SparkSession, settings: Settings, df: DataFrame, column: str = "person_id") -> DataFrame:
    """``df`` with ``column`` moved from a source pseudonym to its master person, where linked.

    Ingest jobs call this before they write, so a record that arrives after linkage joins its
    person at once; pseudonyms the index does not know yet stay as they are until the next run.
    """
    links = (read_table(spark, settings, "silver.person_links")
             .select(F.col("source_person_id").alias("_mp_source"), F.col("person_id").alias("_mp_master"))
             .distinct())
    return (df.join(links, F.col(column) == F.col("_mp_source"), "left")
              .withColumn(column, F.coalesce(F.col("_mp_master"), F.col(column)))
              .drop("_mp_source", "_mp_master"))


def xref_keys(key: bytes, authority: str, identifier: str, id_type: str | None = None) -> dict:
    """The keyed forms an identifier is found by: in its own system, and, for a resident ID
    (``id_type`` NNCHN, or NI, the default, from a Chinese or configured authority), as one."""
    from omicslake.identifiers import identifier_keys

    return identifier_keys(key, authority, id_type or "NI", identifier)


def xref(spark: SparkSession, settings: Settings, authority: str, identifier: str,
         id_type: str | None = None) -> dict | None:
    """The person an identifier belongs to, and every source identity linked to that person.

    The identifier is keyed with the pseudonym secret before it is looked up; the answer holds
    authorities, types, centers and keyed values only. A retired person is followed to the one
    that holds its identities now. ``None`` when no source has sent this identifier.
    """
    from omicslake.pseudonym import load_key

    keys = xref_keys(load_key(settings, generate=False), authority, identifier, id_type)
    wanted = [(c, v) for c, v in keys.items() if c in ("link_key", "national_id_key") and v]
    if not wanted:
        return None
    hit = F.lit(False)
    for column, value in wanted:
        hit = hit | (F.col(column) == F.lit(value))
    found = read_table(spark, settings, "silver.patient_identities").where(hit).select("identity_id")
    links = read_table(spark, settings, "silver.person_links")
    persons = [r.person_id for r in links.join(found, "identity_id").select("person_id").distinct().collect()]
    if not persons:
        return None
    people = read_table(spark, settings, "silver.persons").where(F.col("person_id").isin(persons)).collect()
    person = sorted(persons)[0]
    status = {p.person_id: p for p in people}
    if person in status and status[person].status == "retired" and status[person].merged_into:
        person = status[person].merged_into
    rows = links.where(F.col("person_id") == person).select(*XREF_COLUMNS).orderBy("center_id", "identity_id")
    return {"person_id": person, "matched_persons": sorted(persons),
            "identities": [r.asDict() for r in rows.collect()]}
