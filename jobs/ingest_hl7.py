"""Ingest HL7 v2 files (or the MLLP landing zone) into ``bronze.hl7_messages``.

Files are cut into pieces at message starts (``MSH`` at the start of a line), so one large file
is parsed on every core, and each piece is parsed in a Spark task with hl7apy in tolerant mode.
A message that cannot be accepted (not HL7, unsupported version, no control id, hl7apy cannot
parse it) goes to ``quarantine.hl7`` with its file, byte offset, control id and reason, and the
rest of the file lands. A file whose sha256 already landed is skipped, so re-running over the
same files, or the same landing zone, adds nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

from pyspark.sql import SparkSession

from omicslake.ingest import Feed, Parsed, Piece, chunked, marker_pieces, run_feed
from omicslake.quarantine import Rejected
from omicslake.runs import JobResult, main_for
from omicslake.settings import Settings

JOB = "ingest_hl7"
SUFFIXES = (".hl7", ".HL7", ".txt", ".er7", ".msg")
CHUNK = 2000


def message_rows(data: bytes, offset: int = 0) -> Iterator[dict | Rejected]:
    """A bronze row (without provenance) or a ``Rejected`` for each message in ``data``.

    A message hl7apy rejects is quarantined with its reason; one whose mapping fails in any
    other way (an MSH-7 whose UTC time falls before year 1) is quarantined too, naming the
    exception, and the rest of the file still lands. ``offset`` is where ``data`` starts in
    its file, so locations stay file-relative.
    """
    from connectors.hl7 import HL7Error, split_messages

    for m in split_messages(data):
        try:
            yield _message_row(m.text, offset + m.offset)
        except Exception as exc:
            reason = str(exc) if isinstance(exc, HL7Error) else (
                f"cannot map message: {type(exc).__name__}: {exc}")
            cid = exc.control_id if isinstance(exc, HL7Error) else _control_id(m.text)
            where = f"offset {offset + m.offset}" + (f", control id {cid}" if cid else "")
            yield Rejected(reason, where, m.text)


def _message_row(text: str, offset: int) -> dict:
    from connectors.hl7 import hl7_timestamp, parse

    h, _ = parse(text)
    return {
        "message_control_id": h.control_id, "message_type": h.message_type,
        "trigger_event": h.trigger_event, "message_structure": h.structure, "version": h.version,
        "sending_application": h.sending_application, "sending_facility": h.sending_facility,
        "receiving_application": h.receiving_application, "receiving_facility": h.receiving_facility,
        "message_time": hl7_timestamp(h.message_datetime), "segments": h.segments, "raw": text,
        "byte_offset": offset,
    }


def _control_id(text: str) -> str | None:
    from connectors.hl7 import HL7Error, read_header

    try:
        return read_header(text).control_id
    except HL7Error:
        return None


def parse_piece(piece: Piece, params: dict) -> Iterator[Parsed]:
    """Messages of one piece, in chunks of ``CHUNK`` so a task never holds a whole file."""
    try:
        data = piece.read()
    except OSError as exc:
        yield Parsed(rejected=[Rejected(f"cannot read: {exc}")])
        return
    yield from chunked(message_rows(data, piece.start), "bronze.hl7_messages", CHUNK)


FEED = Feed(JOB, SUFFIXES, landed_in=("bronze.hl7_messages", "quarantine.hl7"), quarantine="quarantine.hl7",
            outputs=("bronze.hl7_messages",), parse=parse_piece, pieces=marker_pieces(b"MSH"))


def run(spark: SparkSession, settings: Settings, paths: list[str], center_id: str) -> JobResult:
    """Ingest HL7 v2 files of one center (files, folders or the MLLP landing zone)."""
    return run_feed(spark, settings, FEED, paths, center_id)


def _args(p) -> None:
    p.add_argument("paths", nargs="+", help="HL7 files, folders, or the landing zone")
    p.add_argument("--center", dest="center_id", required=True, help="sending center id")


if __name__ == "__main__":
    main_for(run, _args, __doc__)
