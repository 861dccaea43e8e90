"""The four-tier network of centers, read from the registry file, and who may see what.

The registry is a YAML file (``OMICSLAKE_CENTERS``; the demo's ships as
``omicslake/centers.demo.yaml``). It is the one source of the network: ``ops.centers`` is its
copy for SQL joins, and every ingest, listener and upload checks a center against the file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path

from omicslake.errors import RegistryError
from omicslake.settings import DEMO_REGISTRY, Settings

TIERS = ("national", "provincial", "city", "county")
CENTER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
NULL_TAG = "tag:yaml.org,2002:null"


@dataclass(frozen=True)
class Center:
    center_id: str
    name: str
    tier: str
    parent_id: str | None = None
    region: str | None = None


FIELDS = tuple(f.name for f in fields(Center))
REQUIRED = ("center_id", "name", "tier")


class Network:
    """A tree of centers, validated so a bad registry fails at load, not at query time.

    ``where`` names each center's row (``centers.yaml line 12``), in order, for the errors."""

    def __init__(self, centers: Iterable[Center], where: list[str] | None = None):
        centers = list(centers)
        rows = [f"{w}: " for w in where] if where else [""] * len(centers)
        row_of: dict[str, str] = {}
        self.centers: dict[str, Center] = {}
        for c, at in zip(centers, rows, strict=True):
            if not CENTER_ID.match(c.center_id or ""):
                raise RegistryError(f"{at}center id {c.center_id!r} must be 1-64 letters, digits, '-', "
                                    "'_' or '.', starting with a letter or digit")
            if c.center_id in self.centers:
                raise RegistryError(f"{at}center {c.center_id} is listed twice")
            self.centers[c.center_id] = c
            row_of[c.center_id] = at
        self._children: dict[str, list[str]] = {}
        for c, at in zip(centers, rows, strict=True):
            if c.tier not in TIERS:
                raise RegistryError(f"{at}center {c.center_id}: tier {c.tier!r} not in {TIERS}")
            if c.parent_id is None:
                if c.tier != "national":
                    raise RegistryError(f"{at}center {c.center_id}: only the national center has no parent")
                continue
            parent = self.centers.get(c.parent_id)
            if parent is None:
                raise RegistryError(f"{at}center {c.center_id}: parent {c.parent_id!r} is unknown")
            if TIERS.index(parent.tier) != TIERS.index(c.tier) - 1:
                raise RegistryError(f"{at}center {c.center_id} ({c.tier}) cannot sit under "
                                    f"{parent.center_id} ({parent.tier}): a parent is exactly one tier up")
            self._children.setdefault(c.parent_id, []).append(c.center_id)
        roots = [c.center_id for c in centers if c.parent_id is None]
        if len(roots) != 1:
            raise RegistryError(f"the network needs exactly one national root, found {len(roots)}"
                                + (f": {', '.join(roots)}" if roots else ""))
        unreached = set(self.centers) - self.visible_centers(roots[0])
        if unreached:  # tiers strictly increase downwards, so this is a guard, not a case
            first = sorted(unreached)[0]
            raise RegistryError(f"{row_of[first]}center {first} is on a cycle, not under {roots[0]}")

    def __contains__(self, center_id: str) -> bool:
        return center_id in self.centers

    def visible_centers(self, center_id: str) -> set[str]:
        """A principal of ``center_id`` sees that center and every center below it."""
        if center_id not in self.centers:
            raise RegistryError(f"unknown center {center_id!r}")
        seen, stack = set(), [center_id]
        while stack:
            cid = stack.pop()
            seen.add(cid)
            stack.extend(self._children.get(cid, []))
        return seen

    def ancestor(self, center_id: str, tier: str) -> str | None:
        """The center of ``tier`` above ``center_id`` (itself if it is of that tier); None when
        it sits above that tier (the national center has no province)."""
        cid: str | None = center_id
        while cid is not None:
            center = self.centers[cid]
            if center.tier == tier:
                return cid
            cid = center.parent_id
        return None

    def tree(self) -> list[tuple[int, Center]]:
        """Centers depth first from the root, each with its depth (for listings)."""
        root = next(c for c in self.centers.values() if c.parent_id is None)
        out, stack = [], [(0, root.center_id)]
        while stack:
            depth, cid = stack.pop()
            out.append((depth, self.centers[cid]))
            stack.extend((depth + 1, k) for k in sorted(self._children.get(cid, []), reverse=True))
        return out


def parse_registry(text: str, name: str) -> Network:
    """A network from registry YAML; an error names the file, line and center at fault."""
    import yaml

    try:
        doc = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise RegistryError(f"{name}: not valid YAML: {exc}") from None
    entries = _mapping(doc, name).get("centers") if doc is not None else None
    if not isinstance(entries, yaml.SequenceNode) or not entries.value:
        raise RegistryError(f"{name}: needs a non-empty list under 'centers:'")
    centers, where = [], []
    for node in entries.value:
        line = f"{name} line {node.start_mark.line + 1}"
        if not isinstance(node, yaml.MappingNode):
            raise RegistryError(f"{line}: each center is a mapping of {', '.join(FIELDS)}")
        row = {k: v.value if isinstance(v, yaml.ScalarNode) and v.tag != NULL_TAG else None
               for k, v in _mapping(node, line).items()}
        unknown = sorted(set(row) - set(FIELDS))
        missing = [k for k in REQUIRED if not (row.get(k) or "").strip()]
        if unknown or missing:
            what = "; ".join([*([f"unknown key(s) {', '.join(unknown)}"] if unknown else []),
                              *([f"missing {', '.join(missing)}"] if missing else [])])
            raise RegistryError(f"{line} ({row.get('center_id') or 'no center_id'}): {what}")
        center = Center(**{k: (row.get(k) or "").strip() or None for k in FIELDS})
        where.append(line)
        centers.append(center)
    return Network(centers, where)


def _mapping(node, where: str) -> dict:
    import yaml

    if not isinstance(node, yaml.MappingNode):
        raise RegistryError(f"{where}: expected a mapping")
    return {k.value: v for k, v in node.value}


@lru_cache(maxsize=8)
def _load(path: str, mtime_ns: int) -> Network:
    return parse_registry(Path(path).read_text(encoding="utf-8"), path)


def load_network(path: Path | str) -> Network:
    """The registry at ``path`` (re-read when the file changes)."""
    p = Path(path)
    try:
        return _load(str(p), p.stat().st_mtime_ns)
    except FileNotFoundError:
        raise RegistryError(f"center registry {p} does not exist: set OMICSLAKE_CENTERS to your "
                            f"registry file (the demo's is {DEMO_REGISTRY})") from None


def demo_network() -> Network:
    """The demo network: one national, two provincial, three city and four county centers."""
    return load_network(DEMO_REGISTRY)


def registry(settings: Settings) -> Network:
    """The network the settings point at (OMICSLAKE_CENTERS)."""
    return load_network(settings.centers_file)


def require_center(settings: Settings, center_id: str) -> Center:
    """The center, or an error that says how to register it: every ingest, listener and upload
    calls this before it accepts anything for a center."""
    network = registry(settings)
    if center_id not in network:
        known = ", ".join(sorted(network.centers))
        raise RegistryError(f"center {center_id!r} is not in the registry {settings.centers_file} "
                            f"(known: {known}); add it to that file (OMICSLAKE_CENTERS) first")
    return network.centers[center_id]
