"""The ingest skeleton every feed shares.

inputs → skip landed → fan out → stage → commit → count → record. A feed supplies a
:class:`Feed`: how to find its files, how to cut one into pieces, how to parse a piece (in the
engine's tasks) and how to commit the staged rows. The skeleton does the rest the same way for
every feed, so a new feed is one connector plus one short job.

Example:
    >>> from omicslake.ingest import line_pieces
    >>> import tempfile, os
    >>> with tempfile.NamedTemporaryFile("wb", suffix=".ndjson", delete=False) as fh:
    ...     _ = fh.write(b'{"a":1}\\n{"a":2}\\n{"a":3}\\n')
    >>> [(p.start, p.end, p.first_line) for p in line_pieces(fh.name, "sha256", 8)]
    [(0, 16, 1), (16, None, 3)]
    >>> os.unlink(fh.name)
"""

from __future__ import annotations

import functools
import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession

from omicslake import staging
from omicslake.checksums import sha256_file
from omicslake.errors import InputError
from omicslake.quarantine import Rejected, quarantine_rows, reject_lines, stage_rejects
from omicslake.runs import JobResult, track_run
from omicslake.session import parallelism
from omicslake.settings import Settings
from omicslake.writes import append, landed_checksums
from schemas import get_table

__all__ = [
    "Feed", "Parsed", "Piece", "Staged", "Source", "append_staged", "chunked", "count_newlines",
    "expand_inputs", "fan_out",
    "line_pieces", "marker_pieces", "pending", "run_feed", "staging_root", "whole_file",
]

PIECE_BYTES = 16 << 20
COUNTS_SCHEMA = "path string, checksum string, start long, rows_json string, quarantined long"


@dataclass(frozen=True)
class Source:
    """One input file and its sha256, which is how the lake knows it already landed."""

    path: str
    checksum: str


@dataclass(frozen=True)
class Piece:
    """The bytes ``[start, end)`` of a source that one task parses (``end`` None: to the end).

    ``first_line`` is the 1-based line number of ``start``, so locations stay file-relative.
    """

    path: str
    checksum: str
    start: int = 0
    end: int | None = None
    first_line: int = 1

    def read(self) -> bytes:
        with open(self.path, "rb") as fh:
            fh.seek(self.start)
            return fh.read(-1 if self.end is None else self.end - self.start)


@dataclass
class Parsed:
    """What a feed's parse yields: rows per output table (no provenance) and rejects."""

    rows: dict[str, list[dict]] = field(default_factory=dict)
    rejected: list[Rejected] = field(default_factory=list)


@dataclass(frozen=True)
class Staged:
    """The rows the tasks of one run staged, for the commit step to read."""

    spark: SparkSession
    root: str
    run_id: str

    def frame(self, table: str) -> DataFrame | None:
        """The staged rows of ``table`` as a DataFrame of its contract, or None if none."""
        found = staging.files(self.root, f"{self.run_id}/{table}")
        if not found:
            return None
        return self.spark.read.schema(get_table(table).spark_schema()).parquet(*found)


def append_staged(spark: SparkSession, settings: Settings, staged: Staged, feed: Feed,
                  result: JobResult) -> int:
    """The default commit: append each output table's staged rows (one commit per table)."""
    written = 0
    for table in feed.outputs:
        df = staged.frame(table)
        if df is not None:
            append(df, settings, table)
            written += result.details.get("staged_rows", {}).get(table, 0)
    return written


def staging_root(settings: Settings, name: str) -> str:
    """Where the tasks of feed ``name`` stage rows, next to the lake (local, S3 or HDFS)."""
    return f"{settings.lake_root}/_staging/{name}"


def chunked(found: Iterable[dict | Rejected], table: str, size: int = 5000) -> Iterator[Parsed]:
    """Group a feed's records (rows of ``table``, or ``Rejected``) into ``Parsed`` chunks of at
    most ``size`` rows, so a task stages as it goes and never holds a whole file."""
    chunk = Parsed()
    for item in found:
        if isinstance(item, Rejected):
            chunk.rejected.append(item)
        else:
            chunk.rows.setdefault(table, []).append(item)
        if len(chunk.rows.get(table, ())) >= size:
            yield chunk
            chunk = Parsed()
    yield chunk


def whole_file(path: str, checksum: str) -> list[Piece]:
    """One piece per file: for formats that cannot be cut (a Bundle, a DICOM file)."""
    return [Piece(path, checksum)]


@dataclass(frozen=True)
class Feed:
    """What one feed supplies to the skeleton.

    Args:
        job: the job name recorded in ``ops.ingest_runs``.
        suffixes: file name endings that folders are searched for.
        landed_in: tables whose ``source_checksum`` marks an input as landed.
        quarantine: the feed's quarantine table.
        outputs: the tables ``parse`` stages rows for; provenance columns are added.
        parse: runs in the engine's tasks: a piece and the job's params to ``Parsed`` chunks.
        pieces: cuts a file into pieces (default: the whole file).
        commit: moves the staged rows into the lake; returns the rows written.
    """

    job: str
    suffixes: tuple[str, ...]
    landed_in: tuple[str, ...]
    quarantine: str
    outputs: tuple[str, ...]
    parse: Callable[[Piece, dict], Iterable[Parsed]]
    pieces: Callable[[str, str], list[Piece]] = whole_file
    commit: Callable[[SparkSession, Settings, Staged, Feed, JobResult], int] = append_staged

    @property
    def name(self) -> str:
        return self.job.removeprefix("ingest_")


def expand_inputs(paths: list[str], suffixes: tuple[str, ...]) -> list[str]:
    """Files as given, and the matching files inside any folder given, each once.

    A path that does not exist is a mistake in the command, not a bad input, so it stops the
    job before anything is read.
    """
    out: list[str] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            out += sorted(str(f) for f in path.rglob("*") if f.is_file() and f.name.endswith(suffixes))
        elif path.exists():
            out.append(str(path))
        else:
            raise InputError(f"{p}: no such file or folder")
    return list(dict.fromkeys(out))


def pending(spark: SparkSession, settings: Settings, result: JobResult, files: list[str],
            landed_in: Iterable[str]) -> list[Source]:
    """Checksum the inputs, note them on the run, and return those not landed yet."""
    sources = [Source(f, sha256_file(f)) for f in files]
    result.inputs, result.checksums = files, [s.checksum for s in sources]
    landed: set[str] = set()
    for table in landed_in:
        landed |= landed_checksums(spark, settings, table, result.checksums)
    result.skipped_inputs = [s.path for s in sources if s.checksum in landed]
    return [s for s in sources if s.checksum not in landed]


def line_pieces(path: str, checksum: str, piece_bytes: int | None = None) -> list[Piece]:
    """Pieces that start at line starts, each knowing its first line number (NDJSON)."""
    return _cut(path, checksum, piece_bytes or PIECE_BYTES, lambda buf: buf.find(b"\n"), 1)


def marker_pieces(marker: bytes) -> Callable[[str, str], list[Piece]]:
    """Pieces that start where a line begins with ``marker`` (HL7: ``MSH``)."""

    def find(buf: bytes) -> int:
        hits = [i for i in (buf.find(b"\r" + marker), buf.find(b"\n" + marker)) if i >= 0]
        return min(hits) if hits else -1

    return lambda path, checksum, piece_bytes=None: _cut(path, checksum, piece_bytes or PIECE_BYTES, find, 1)


def _cut(path: str, checksum: str, piece_bytes: int, find: Callable[[bytes], int], skip: int) -> list[Piece]:
    """Cut a file near every ``piece_bytes`` at the next boundary ``find`` reports, counting
    newlines on the way so every piece knows its first line number."""
    size = os.path.getsize(path)
    if size <= piece_bytes:
        return [Piece(path, checksum)]
    bounds, lines = [(0, 1)], 1
    with open(path, "rb") as fh:
        pos = 0
        while True:
            target = bounds[-1][0] + piece_bytes
            if target >= size:
                break
            lines += count_newlines(fh, pos, target)
            fh.seek(target)
            at, scanned = -1, b""
            while at < 0:
                more = fh.read(1 << 16)
                if not more:
                    break
                scanned += more
                at = find(scanned)
            if at < 0:
                break
            cut = target + at + skip
            lines += scanned[: at + skip].count(b"\n")
            pos = cut
            bounds.append((cut, lines))
    ends = [b for b, _ in bounds[1:]] + [None]
    return [Piece(path, checksum, b, e, n) for (b, n), e in zip(bounds, ends, strict=True)]


def count_newlines(fh, start: int, end: int) -> int:
    """Newlines in bytes ``[start, end)`` of an open binary file, read 1 MB at a time."""
    fh.seek(start)
    n, left = 0, end - start
    while left > 0:
        block = fh.read(min(left, 1 << 20))
        if not block:
            break
        n += block.count(b"\n")
        left -= len(block)
    return n


def fan_out(spark: SparkSession, tasks: list[dict], schema: str, body, out_schema: str,
            per_task: int = 1) -> DataFrame:
    """``mapInArrow`` over task rows, spread over the engine's parallelism (not the driver's
    cores), at most ``per_task`` rows per task when there are few."""
    n = max(1, min(-(-len(tasks) // per_task), 4 * parallelism(spark)))
    return spark.createDataFrame(tasks, schema).repartition(n).mapInArrow(body, out_schema)


_PIECE_SCHEMA = "path string, checksum string, start long, end long, first_line long"


@functools.cache
def _arrow(table: str) -> tuple[pa.Schema, frozenset[str]]:
    contract = get_table(table)
    return contract.arrow_schema(), frozenset(contract.column_names)


def _task_body(feed: Feed, params: dict, root: str, run_id: str, center_id: str | None):
    """The mapInArrow body: parse each piece, stage its rows and rejects, yield its counts."""

    def body(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for t in batch.to_pylist():
                piece = Piece(t["path"], t["checksum"], t["start"], t["end"], t["first_line"])
                yield pa.RecordBatch.from_pylist([_stage_piece(feed, params, piece, root, run_id, center_id)])

    return body


def _stage_piece(feed: Feed, params: dict, piece: Piece, root: str, run_id: str,
                 center_id: str | None) -> dict:
    now = datetime.now(UTC).replace(tzinfo=None)
    prov = {"center_id": center_id, "source_uri": piece.path, "source_checksum": piece.checksum,
            "ingest_run_id": run_id, "ingested_at": now}
    name = f"{piece.checksum}-{piece.start}"
    counts: Counter = Counter()
    rejected: list[Rejected] = []
    with staging.writers(root, run_id, name) as out:
        try:
            for parsed in feed.parse(piece, params):
                for table, rows in parsed.rows.items():
                    if rows:
                        schema, columns = _arrow(table)
                        extra = {k: v for k, v in prov.items() if k in columns}
                        out.write(table, schema, [{**r, **extra} for r in rows])
                        counts[table] += len(rows)
                rejected += parsed.rejected
        except Exception as exc:  # the rest of the piece is unreadable: one reject says so
            rejected.append(Rejected(f"cannot read the file: {type(exc).__name__}: {exc}"))
        if rejected:
            stage_rejects(out, feed.quarantine, prov, rejected)
    return {"path": piece.path, "checksum": piece.checksum, "start": piece.start,
            "rows_json": json.dumps(dict(counts)), "quarantined": len(rejected)}


def run_feed(spark: SparkSession, settings: Settings, feed: Feed, paths: list[str], center_id: str,
             params: dict | None = None, files: list[str] | None = None) -> JobResult:
    """Ingest ``paths`` of one center through ``feed``; read = accepted + quarantined."""
    files = expand_inputs(paths, feed.suffixes) if files is None else files
    if not files:
        raise InputError(f"no {feed.name.upper()} files "
                         f"({', '.join(feed.suffixes)}) found in {paths}")
    params = dict(params or {})
    with track_run(spark, settings, feed.job, {"paths": paths, "center_id": center_id, **params},
                   center_id) as result:
        todo = pending(spark, settings, result, files, feed.landed_in)
        if todo:
            _ingest(spark, settings, feed, todo, center_id, params, result)
    return result


def _ingest(spark: SparkSession, settings: Settings, feed: Feed, todo: list[Source], center_id: str,
            params: dict, result: JobResult) -> None:
    root = staging_root(settings, feed.name)
    pieces = [asdict(p) for s in todo for p in feed.pieces(s.path, s.checksum)]
    body = _task_body(feed, params, root, result.run_id, center_id)
    try:
        counts = [r.asDict() for r in fan_out(spark, pieces, _PIECE_SCHEMA, body, COUNTS_SCHEMA).collect()]
        _tally(result, counts, feed.outputs[0])
        result.rows_written = feed.commit(spark, settings, Staged(spark, root, result.run_id), feed, result)
        rejects = staging.read(root, f"{result.run_id}/{feed.quarantine}")
        if rejects is not None:
            quarantine_rows(spark, settings, feed.quarantine, rejects)
            result.details["rejected"] = reject_lines(rejects)
    finally:
        staging.clear(root, result.run_id)
    result.details["files"] = len(todo)


def _tally(result: JobResult, counts: list[dict], primary: str) -> None:
    """Counted one way, from what the tasks staged: a record is accepted once it has a row in
    the feed's first output table."""
    staged: Counter = Counter()
    for c in counts:
        staged += Counter(json.loads(c["rows_json"]))
    result.details["staged_rows"] = dict(staged)
    result.rows_accepted = staged[primary]
    result.rows_quarantined = sum(c["quarantined"] for c in counts)
    result.rows_read = result.rows_accepted + result.rows_quarantined
