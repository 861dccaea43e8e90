"""Identifiers as link keys: the national resident ID (居民身份证号码, GB 11643) and the keyed
forms an identifier is found by.

The resident ID is recognised by its identifier type (HL7 table 0203 ``NNCHN``, or ``NI`` from a
Chinese authority) or a configured system (``OMICSLAKE_NATIONAL_ID_SYSTEMS``), and checked with
its ISO 7064 MOD 11-2 check digit; a number that fails is never a key. Core: the parsers
(``connectors.person_features``) and the person index reads (``omicslake.persons``) both key
identifiers here.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import date

from omicslake.pseudonym import person_id, pseudonym

NATIONAL_ID_ENV = "OMICSLAKE_NATIONAL_ID_SYSTEMS"
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_CHINESE_AUTHORITY = re.compile(r"(^|[^A-Z0-9])(CN|CHN|PRC)([^A-Z0-9]|$)")
_CHINA_OID_ARC = "2.16.156"  # ISO 3166 156 under joint-iso-itu-t country


@dataclass(frozen=True)
class ResidentId:
    value: str
    birth: date
    sex: str


def parse_resident_id(value: str | None) -> ResidentId | None:
    """An 18-character resident ID with a valid check digit and birth date, else None."""
    v = (value or "").strip().upper()
    if not re.fullmatch(r"\d{17}[\dX]", v):
        return None
    if _ID_CHECK[sum(int(c) * w for c, w in zip(v[:17], _ID_WEIGHTS, strict=True)) % 11] != v[17]:
        return None
    try:
        born = date(int(v[6:10]), int(v[10:12]), int(v[12:14]))
    except ValueError:
        return None
    return ResidentId(v, born, "M" if int(v[16]) % 2 else "F")


def resident_id_check_digit(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character for the first 17 digits."""
    return _ID_CHECK[sum(int(c) * w for c, w in zip(first17, _ID_WEIGHTS, strict=True)) % 11]


def _authority(value: str | None) -> str:
    a = (value or "").strip().upper()
    return a[8:] if a.startswith("URN:OID:") else a


def configured_national_systems() -> set[str]:
    """Authorities/systems that always denote the resident ID (``OMICSLAKE_NATIONAL_ID_SYSTEMS``)."""
    return {_authority(a) for a in os.environ.get(NATIONAL_ID_ENV, "").split(",") if a.strip()}


def is_national_id(authority: str | None, id_type: str | None) -> bool:
    """HL7 0203 ``NNCHN``; ``NI`` assigned by a Chinese authority; or a configured system."""
    kind, auth = (id_type or "").strip().upper(), _authority(authority)
    if kind == "NNCHN" or (auth and auth in configured_national_systems()):
        return True
    china_oid = auth == _CHINA_OID_ARC or auth.startswith(f"{_CHINA_OID_ARC}.")
    return kind == "NI" and bool(_CHINESE_AUTHORITY.search(auth) or china_oid)


def identifier_keys(key: bytes, authority: str, id_type: str | None, value: str) -> dict:
    """Deterministic link keys of one identifier.

    ``link_key`` is the person pseudonym this identifier gives in its own system (so it equals
    the ``person_id`` any feed derives from it); ``national_id_key`` keys a valid resident ID
    whatever authority sent it. An invalid resident ID gets neither.
    """
    national = is_national_id(authority, id_type)
    rid = parse_resident_id(value) if national else None
    return {"link_key": None if national and rid is None else person_id(key, authority, value),
            "national_id_key": pseudonym(key, rid.value, "nationalid") if rid else None,
            "national_id_valid": (rid is not None) if national else None}
