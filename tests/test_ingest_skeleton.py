"""The shared ingest skeleton: files cut into pieces parse exactly as the whole file does."""

from __future__ import annotations

import json

import pytest
from inputs import hl7_message

from jobs import ingest_fhir, ingest_hl7
from omicslake import ingest
from omicslake.ingest import Piece, line_pieces, marker_pieces
from omicslake.quarantine import Rejected


def _ndjson(tmp_path, n: int):
    lines = []
    for i in range(n):
        if i % 37 == 5:
            lines.append('{"resourceType": "Observation", "id": broken')
        elif i % 41 == 7:
            lines.append("")
        else:
            lines.append(json.dumps({"resourceType": "Patient", "id": f"p{i}", "gender": "female",
                                     "meta": {"lastUpdated": "2024-01-01T00:00:00Z"}}))
    path = tmp_path / "Patient.ndjson"
    path.write_text("\r\n".join(lines) + "\n")
    return path


def _hl7(tmp_path, n: int):
    parts = []
    for i in range(n):
        parts.append(hl7_message(f"C{i:05d}").replace(b"\r", b"\n" if i % 2 else b"\r"))
        if i % 29 == 3:
            parts.append(b"this line is not an HL7 message\r")
    path = tmp_path / "batch.hl7"
    path.write_bytes(b"".join(parts))
    return path


def test_line_pieces_cover_the_file_at_line_starts_with_their_line_numbers(tmp_path):
    path = _ndjson(tmp_path, 300)
    data = path.read_bytes()
    pieces = line_pieces(str(path), "x", 1000)
    assert len(pieces) > 5
    assert pieces[0].start == 0 and pieces[-1].end is None
    assert all(a.end == b.start for a, b in zip(pieces, pieces[1:], strict=False))
    for p in pieces[1:]:
        assert data[p.start - 1:p.start] == b"\n"
        assert p.first_line == data[:p.start].count(b"\n") + 1


def test_marker_pieces_start_at_an_msh_segment(tmp_path):
    path = _hl7(tmp_path, 120)
    data = path.read_bytes()
    pieces = marker_pieces(b"MSH")(str(path), "x", 2000)
    assert len(pieces) > 5
    assert b"".join(p.read() for p in pieces) == data
    for p in pieces[1:]:
        assert p.read().startswith(b"MSH") and data[p.start - 1:p.start] in (b"\r", b"\n")


def test_hl7_pieces_give_the_same_messages_and_offsets_as_the_whole_file(tmp_path):
    path = _hl7(tmp_path, 120)
    whole = list(ingest_hl7.message_rows(path.read_bytes()))
    pieces = marker_pieces(b"MSH")(str(path), "x", 2000)
    cut = [r for p in pieces for r in ingest_hl7.message_rows(p.read(), p.start)]
    assert len(whole) == 120 + 5
    assert cut == whole
    assert sum(isinstance(r, Rejected) for r in cut) == 5


def test_fhir_pieces_give_the_same_resources_and_line_numbers_as_the_whole_file(tmp_path):
    path = _ndjson(tmp_path, 300)
    whole = list(ingest_fhir.resource_rows(Piece(str(path), "x")))
    cut = [r for p in line_pieces(str(path), "x", 1500) for r in ingest_fhir.resource_rows(p)]
    assert cut == whole
    bad = [r for r in cut if isinstance(r, Rejected)]
    assert [r.line for r in bad] == [i + 1 for i in range(300) if i % 37 == 5]
    assert all(r.location == f"line {r.line}" for r in bad)


@pytest.mark.parametrize("piece_bytes", [1500, 1 << 24])
def test_a_file_cut_into_pieces_lands_once_with_file_relative_locations(fresh_lake, tmp_path, monkeypatch,
                                                                        piece_bytes):
    """Through the real job: the same counts and quarantine locations whether or not the file
    is cut, and a re-run adds nothing."""
    from pyspark.sql import functions as F

    from omicslake.catalog import read_table

    spark, s = fresh_lake
    monkeypatch.setattr(ingest, "PIECE_BYTES", piece_bytes)
    path = _ndjson(tmp_path, 300)
    r = ingest_fhir.run(spark, s, [str(path)], "PRV-N")
    bad = [i + 1 for i in range(300) if i % 37 == 5]
    blank = sum(1 for i in range(300) if i % 41 == 7 and i % 37 != 5)
    assert (r.rows_read, r.rows_quarantined) == (300 - blank, len(bad))
    q = read_table(spark, s, "quarantine.fhir").where(F.col("ingest_run_id") == r.run_id)
    assert sorted(x.line for x in q.select("line").collect()) == bad
    assert read_table(spark, s, "bronze.fhir_resources").count() == 300 - blank - len(bad)
    assert ingest_fhir.run(spark, s, [str(path)], "PRV-N").status == "skipped"


def test_the_docstring_examples_run():
    import doctest

    from omicslake import quarantine

    for module in (ingest, quarantine):
        failed, tried = doctest.testmod(module)
        assert tried and not failed, module.__name__
