"""Ingest FHIR R4 Bundles and bulk-export NDJSON into ``bronze.fhir_resources``.

Resources are read and validated (fhir.resources, R4B models) once, in Spark tasks; a large
NDJSON file is cut at line starts so every core validates part of it. The valid resources are
staged, then upserted by (type, id) on ``meta.lastUpdated``: a newer version replaces the
stored one, an older or equal one never does, and within one batch only the newest version of
each resource is kept. Invalid JSON and resources that fail validation go to
``quarantine.fhir`` with file, location (line N, entry N or offset N) and reason; the rest of
the batch lands.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from omicslake.ingest import Feed, Parsed, Piece, Staged, chunked, line_pieces, run_feed, whole_file
from omicslake.quarantine import Rejected
from omicslake.runs import JobResult, main_for
from omicslake.settings import Settings
from omicslake.writes import count_rows, merge_new

JOB = "ingest_fhir"
SUFFIXES = (".json", ".ndjson", ".jsonl")
NDJSON = (".ndjson", ".jsonl")
CHUNK = 5000
_LINE = re.compile(r"^line (\d+)")


def resource_rows(piece: Piece) -> Iterator[dict | Rejected]:
    """A bronze row (without provenance) or a ``Rejected`` for each resource of a piece.

    A resource fhir.resources rejects is quarantined with its reason; any other failure to map
    one is quarantined naming the exception, and one that stops the reading of the file
    quarantines the rest of it as a single reject, after the resources already read.
    """
    from connectors.fhir import iter_resources

    where = "file"
    try:
        for found in iter_resources(piece.path, piece.read()):
            if piece.first_line != 1:
                found.location = _LINE.sub(lambda m: f"line {int(m[1]) + piece.first_line - 1}",
                                           found.location)
            where = found.location
            yield _resource_row(found)
    except Exception as exc:
        yield Rejected(f"cannot read the file after {where}: {type(exc).__name__}: {exc}")


def _resource_row(found) -> dict | Rejected:
    from connectors.fhir import validate

    reason = found.error
    if reason is None:
        try:
            rtype, rid, updated, version = validate(found.resource)
            return {"resource_type": rtype, "resource_id": rid, "last_updated": updated,
                    "version_id": version, "raw_json": found.raw, "location": found.location}
        except ValueError as exc:
            reason = str(exc)
        except Exception as exc:
            reason = f"cannot map resource: {type(exc).__name__}: {exc}"
    return Rejected(reason, found.location, found.raw, _line(found.location))


def _line(location: str) -> int | None:
    m = _LINE.match(location)
    return int(m[1]) if m else None


def parse_piece(piece: Piece, params: dict) -> Iterator[Parsed]:
    """Resources of one piece, in chunks of ``CHUNK`` so a task never holds a whole file."""
    yield from chunked(resource_rows(piece), "bronze.fhir_resources", CHUNK)


def pieces(path: str, checksum: str) -> list[Piece]:
    """NDJSON is cut at line starts; a Bundle or single resource is read whole."""
    return line_pieces(path, checksum) if path.endswith(NDJSON) else whole_file(path, checksum)


def newest_per_resource(df: DataFrame) -> DataFrame:
    """One row per (type, id) in a batch: the latest lastUpdated (missing counts as oldest)."""
    w = Window.partitionBy("resource_type", "resource_id").orderBy(
        F.col("last_updated").desc_nulls_last(), F.col("source_uri").desc(), F.col("location").desc())
    return df.withColumn("_rank", F.row_number().over(w)).where("_rank = 1").drop("_rank")


NEWER = "s.last_updated IS NOT NULL AND (t.last_updated IS NULL OR s.last_updated > t.last_updated)"


def upsert(spark: SparkSession, settings: Settings, staged: Staged, feed: Feed, result: JobResult) -> int:
    """The commit: MERGE the staged resources, newest version wins; returns the rows written."""
    df = staged.frame("bronze.fhir_resources")
    if df is None:
        return 0
    merge_new(spark, settings, newest_per_resource(df), "bronze.fhir_resources", update_when=NEWER)
    written = count_rows(spark, settings, "bronze.fhir_resources", F.col("ingest_run_id") == result.run_id)
    result.details["newest_versions_written"] = written
    return written


FEED = Feed(JOB, SUFFIXES, landed_in=("bronze.fhir_resources", "quarantine.fhir"),
            quarantine="quarantine.fhir", outputs=("bronze.fhir_resources",), parse=parse_piece,
            pieces=pieces, commit=upsert)


def run(spark: SparkSession, settings: Settings, paths: list[str], center_id: str) -> JobResult:
    """Ingest FHIR files of one center; returns read = accepted + quarantined resources."""
    return run_feed(spark, settings, FEED, paths, center_id)


def _args(p) -> None:
    p.add_argument("paths", nargs="+", help="FHIR Bundle JSON / NDJSON files or folders")
    p.add_argument("--center", dest="center_id", required=True, help="sending center id")


if __name__ == "__main__":
    main_for(run, _args, __doc__)
