"""The four-tier network of centers and who may see what."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

TIERS = ("national", "provincial", "city", "county")


@dataclass(frozen=True)
class Center:
    center_id: str
    name: str
    tier: str
    parent_id: str | None = None
    region: str | None = None


class Network:
    """A tree of centers; validated so a bad network fails at load, not at query time."""

    def __init__(self, centers: Iterable[Center]):
        self.centers = {c.center_id: c for c in centers}
        self._children: dict[str, list[str]] = {}
        for c in self.centers.values():
            if c.tier not in TIERS:
                raise ValueError(f"center {c.center_id}: tier {c.tier!r} not in {TIERS}")
            if c.parent_id is None:
                if c.tier != "national":
                    raise ValueError(f"center {c.center_id}: only the national center has no parent")
                continue
            parent = self.centers.get(c.parent_id)
            if parent is None:
                raise ValueError(f"center {c.center_id}: parent {c.parent_id!r} is unknown")
            if TIERS.index(parent.tier) >= TIERS.index(c.tier):
                raise ValueError(
                    f"center {c.center_id} ({c.tier}) cannot sit under {parent.center_id} "
                    f"({parent.tier})"
                )
            self._children.setdefault(c.parent_id, []).append(c.center_id)
        roots = [c for c in self.centers.values() if c.parent_id is None]
        if len(roots) != 1:
            raise ValueError(f"the network needs exactly one national root, found {len(roots)}")

    def visible_centers(self, center_id: str) -> set[str]:
        """A principal of ``center_id`` sees that center and every center below it."""
        if center_id not in self.centers:
            raise KeyError(f"unknown center {center_id!r}")
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

    def scope_filter(self, center_id: str, column: str = "center_id") -> str:
        """A SQL predicate restricting rows to what ``center_id`` may see."""
        ids = ", ".join(f"'{c}'" for c in sorted(self.visible_centers(center_id)))
        return f"{column} IN ({ids})"


def demo_network() -> Network:
    """A small network: one national, two provincial, three city and four county centers."""
    c = Center
    return Network(
        [
            c("NAT", "National Precision Medicine Center", "national", None, "national"),
            c("PRV-N", "Northern Provincial Hospital", "provincial", "NAT", "north"),
            c("PRV-S", "Southern Provincial Hospital", "provincial", "NAT", "south"),
            c("CTY-N1", "North City Hospital", "city", "PRV-N", "north"),
            c("CTY-S1", "South City Hospital", "city", "PRV-S", "south"),
            c("CTY-S2", "Harbour City Hospital", "city", "PRV-S", "south"),
            c("CNT-N1A", "Hill County Clinic", "county", "CTY-N1", "north"),
            c("CNT-S1A", "River County Clinic", "county", "CTY-S1", "south"),
            c("CNT-S1B", "Lake County Clinic", "county", "CTY-S1", "south"),
            c("CNT-S2A", "Bay County Clinic", "county", "CTY-S2", "south"),
        ]
    )
