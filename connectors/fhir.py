"""FHIR R4 input: Bundles (JSON) and bulk-export NDJSON, validated with fhir.resources.

fhir.resources 8.x defaults to R5; its ``R4B`` models are the nearest to R4 it ships, so
resources are validated against those. Each resource comes with where it was found (``line N``
of an NDJSON file, ``entry N`` of a Bundle) so a rejected one can be traced.
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
    text = data.decode("utf-8", errors="replace").lstrip("\ufeff")
    stripped = text.strip()
    if path.endswith((".ndjson", ".jsonl")) or ("\n{" in stripped and not stripped.startswith("[")
                                                 and _is_ndjson(stripped)):
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                yield Found(f"line {n}", line, None, f"invalid JSON: {exc.msg} at column {exc.colno}")
                continue
            yield from _unbundle(obj, f"line {n}", line)
        return
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        yield Found(f"offset {exc.pos}", text[:10000], None,
                    f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
        return
    yield from _unbundle(obj, "resource", text)


def _is_ndjson(text: str) -> bool:
    first = text.split("\n", 1)[0].strip()
    try:
        return isinstance(json.loads(first), dict)
    except json.JSONDecodeError:
        return False


def _unbundle(obj, location: str, raw: str) -> Iterator[Found]:
    if not isinstance(obj, dict):
        yield Found(location, raw, None, "not a JSON object")
        return
    if obj.get("resourceType") == "Bundle":
        for i, entry in enumerate(obj.get("entry") or [], start=1):
            res = entry.get("resource") if isinstance(entry, dict) else None
            where = f"{location}, entry {i}" if location != "resource" else f"entry {i}"
            if not isinstance(res, dict):
                yield Found(where, json.dumps(entry), None, "Bundle entry has no resource")
            else:
                yield Found(where, json.dumps(res, separators=(",", ":")), res, None)
        return
    yield Found(location, json.dumps(obj, separators=(",", ":")), obj, None)


def validate(resource: dict) -> tuple[str, str, datetime | None, str | None]:
    """(type, id, meta.lastUpdated in UTC, meta.versionId); ValueError with the reason."""
    from fhir.resources.R4B import get_fhir_model_class
    from pydantic import ValidationError

    rtype = resource.get("resourceType")
    if not rtype:
        raise ValueError("no resourceType")
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
    if not obj.id:
        raise ValueError(f"{rtype} has no id, so it cannot be upserted")
    updated = obj.meta.lastUpdated if obj.meta else None
    if updated is not None and updated.tzinfo is not None:
        updated = updated.astimezone(UTC).replace(tzinfo=None)
    return rtype, obj.id, updated, (obj.meta.versionId if obj.meta else None)
