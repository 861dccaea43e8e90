"""FHIR NDJSON read at ingest speed: a line at a time, each parsed once, raw JSON as received."""

from __future__ import annotations

import json

from connectors import fhir
from connectors.fhir import iter_resources, validate


def _patient(pid: str, family: str = "王") -> dict:
    return {"resourceType": "Patient", "id": pid, "meta": {"lastUpdated": "2026-03-01T08:00:00Z"},
            "name": [{"family": family, "given": ["芳"]}]}


def test_an_ndjson_line_is_its_resources_raw_json_and_is_parsed_once(monkeypatch):
    lines = [json.dumps(_patient("p1"), ensure_ascii=False), json.dumps(_patient("p2"), indent=None)]
    data = ("\n".join(lines) + "\n").encode()
    calls = []
    loads = json.loads
    monkeypatch.setattr(fhir.json, "loads", lambda s, *a, **k: calls.append(s) or loads(s, *a, **k))
    found = list(iter_resources("export.ndjson", data))
    assert [f.raw for f in found] == lines  # as received: UTF-8 names stay, no re-serialisation
    assert len(calls) == 2
    assert [validate(f.resource)[:2] for f in found] == [("Patient", "p1"), ("Patient", "p2")]


def test_lines_end_at_newline_only_as_the_ingest_counts_them():
    """CRLF, a BOM, blank lines and U+2028 inside a JSON string (valid JSON, and a line break
    to str.splitlines) keep every resource whole and every line number right."""
    odd = json.dumps(_patient("p2", "A\u2028B"), ensure_ascii=False)
    data = ("\ufeff" + json.dumps(_patient("p1")) + "\r\n\r\n" + odd + "\r\n{broken\n"
            + json.dumps(_patient("p3"))).encode()
    found = list(iter_resources("export.ndjson", data))
    assert [(f.location, f.error is None) for f in found] == [
        ("line 1", True), ("line 3", True), ("line 4", False), ("line 5", True)]
    assert found[1].resource["name"][0]["family"] == "A\u2028B" and found[1].raw == odd
    assert "invalid JSON" in found[2].error


def test_a_bundle_line_and_a_single_resource_file_are_written_compactly():
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": _patient("p1")}]}
    found = list(iter_resources("b.ndjson", (json.dumps(bundle, indent=2).replace("\n", "") + "\n").encode()))
    assert [(f.location, f.raw) for f in found] == [
        ("line 1, entry 1", json.dumps(_patient("p1"), separators=(",", ":")))]
    single = list(iter_resources("p.json", json.dumps(_patient("p9"), indent=2).encode()))
    assert single[0].raw == json.dumps(_patient("p9"), separators=(",", ":"))
