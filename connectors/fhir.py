"""FHIR R4 input: Bundles (JSON) and bulk-export NDJSON, validated with fhir.resources.

fhir.resources 8.x defaults to R5; its ``R4B`` models are the nearest to R4 it ships, so
resources are validated against those. Each resource comes with where it was found (``line N``
of an NDJSON file, ``entry N`` of a Bundle) so a rejected one can be traced.

NDJSON is read a line at a time (lines end at ``\n``, as the ingest counts them when it cuts a file
into pieces), each line parsed once; a resource's raw JSON is its line as received. Validation
(``validate``) is the cost that stays: call it once per resource, and map silver rows from the
raw JSON without validating again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass
class Found:
    location: str
    raw: str
    resource: dict | None
    error: str | None


def iter_resources(path: str, data: bytes) -> Iterator[Found]:
    """Every resource in a Bundle, a single resource, or an NDJSON file."""
    if path.endswith((".ndjson", ".jsonl")):
        yield from _ndjson(data)
        return
    text = data.decode("utf-8", errors="replace").lstrip("\ufeff")
    stripped = text.strip()
    if "\n{" in stripped and not stripped.startswith("[") and _is_ndjson(stripped):
        yield from _ndjson(data)
        return
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        yield Found(f"offset {exc.pos}", text[:10000], None,
                    f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
        return
    except (ValueError, RecursionError) as exc:
        yield Found("offset 0", text[:10000], None, f"unreadable JSON: {_brief(exc)}")
        return
    yield from _unbundle(obj, "resource", text)


def _ndjson(data: bytes) -> Iterator[Found]:
    """One resource (or Bundle) per line; the whole buffer is never decoded or split at once."""
    start, n, size = 0, 0, len(data)
    if data.startswith(b"\xef\xbb\xbf"):
        start = 3
    while start < size:
        end = data.find(b"\n", start)
        if end < 0:
            end = size
        n += 1
        line = data[start:end].decode("utf-8", errors="replace").strip()
        start = end + 1
        if not line:
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            yield Found(f"line {n}", line, None, f"invalid JSON: {exc.msg} at column {exc.colno}")
            continue
        except (ValueError, RecursionError) as exc:
            yield Found(f"line {n}", line[:10000], None, f"unreadable JSON: {_brief(exc)}")
            continue
        yield from _unbundle(obj, f"line {n}", line, as_received=True)


def _brief(exc: Exception) -> str:
    """Why the json module gave up on text it could tokenise: nesting too deep, a huge number."""
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc).split(";")[0]


def _is_ndjson(text: str) -> bool:
    first = text.split("\n", 1)[0].strip()
    try:
        return isinstance(json.loads(first), dict)
    except (ValueError, RecursionError):
        return False


def _unbundle(obj, location: str, raw: str, as_received: bool = False) -> Iterator[Found]:
    """The resources of ``obj``; a resource that is the whole of ``raw`` (an NDJSON line,
    ``as_received``) keeps it as its raw JSON, the others are written compactly."""
    if not isinstance(obj, dict):
        yield Found(location, raw, None, "not a JSON object")
        return
    if obj.get("resourceType") == "Bundle":
        entries = obj.get("entry") or []
        if not isinstance(entries, list):
            yield Found(location, raw[:10000], None, "Bundle.entry is not an array")
            return
        for i, entry in enumerate(entries, start=1):
            res = entry.get("resource") if isinstance(entry, dict) else None
            where = f"{location}, entry {i}" if location != "resource" else f"entry {i}"
            if not isinstance(res, dict):
                yield Found(where, json.dumps(entry), None, "Bundle entry has no resource")
            else:
                yield Found(where, json.dumps(res, separators=(",", ":")), res, None)
        return
    yield Found(location, raw if as_received else json.dumps(obj, separators=(",", ":")), obj, None)


def validate(resource: dict) -> tuple[str, str, datetime | None, str | None]:
    """(type, id, meta.lastUpdated in UTC, meta.versionId); ValueError with the reason."""
    from fhir.resources.R4B import get_fhir_model_class
    from pydantic import ValidationError

    rtype = resource.get("resourceType")
    if not rtype:
        raise ValueError("no resourceType")
    if not isinstance(rtype, str):
        raise ValueError(f"resourceType is a JSON {type(rtype).__name__}, not a string")
    try:
        model = get_fhir_model_class(rtype)
    except (ValueError, KeyError):
        raise ValueError(f"{rtype} is not a FHIR R4 resource type") from None
    try:
        obj = model.model_validate(resource)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise ValueError(f"invalid {rtype}: {where} {first.get('msg')} "
                         f"({exc.error_count()} problem(s))") from None
    except (TypeError, KeyError, AttributeError, RecursionError) as exc:
        # fhir.resources' own validators trip over some malformed nesting (a contained resource
        # whose resourceType is an object) instead of reporting it; it is still an invalid resource
        raise ValueError(f"invalid {rtype}: fhir.resources cannot validate it "
                         f"({type(exc).__name__}: {exc})") from None
    if not obj.id:
        raise ValueError(f"{rtype} has no id, so it cannot be upserted")
    updated = obj.meta.lastUpdated if obj.meta else None
    return rtype, obj.id, _utc(updated), (obj.meta.versionId if obj.meta else None)


def _utc(value: datetime | None) -> datetime | None:
    """lastUpdated in UTC; an instant that leaves years 1-9999 in UTC (0001-01-01T00:00+01:00) is
    valid FHIR but has no UTC timestamp, so it is NULL (the raw JSON keeps it)."""
    if value is None or value.tzinfo is None:
        return value
    try:
        return value.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:
        return None
