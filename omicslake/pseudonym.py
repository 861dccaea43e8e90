"""Keyed pseudonyms (HMAC-SHA256) for direct identifiers, computed before silver.

The key comes from ``OMICSLAKE_PSEUDONYM_KEY`` (hex or text) or the file named by
``OMICSLAKE_PSEUDONYM_KEY_FILE``. For the demo and tests a random key is generated once under
the local state folder; production deployments must supply their own, never in the repo.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

from omicslake.errors import SettingsError
from omicslake.settings import Settings

log = logging.getLogger(__name__)


def load_key(settings: Settings, generate: bool = True) -> bytes:
    if os.environ.get("OMICSLAKE_PSEUDONYM_KEY"):
        return os.environ["OMICSLAKE_PSEUDONYM_KEY"].encode()
    path = Path(os.environ.get("OMICSLAKE_PSEUDONYM_KEY_FILE") or settings.state_dir / "pseudonym.key")
    if path.is_file():
        key = path.read_bytes().strip()
        if len(key) < 32:
            raise SettingsError(f"pseudonym key in {path} is shorter than 32 bytes")
        return key
    if not generate:
        raise SettingsError(
            "no pseudonym key: set OMICSLAKE_PSEUDONYM_KEY or OMICSLAKE_PSEUDONYM_KEY_FILE"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    log.warning("generated a local pseudonym key at %s (set OMICSLAKE_PSEUDONYM_KEY in production)", path)
    return key


def pseudonym(key: bytes, value: str, namespace: str = "person") -> str:
    """Stable keyed pseudonym; the namespace keeps person and specimen ids apart."""
    digest = hmac.new(key, f"{namespace}\x1f{value}".encode(), hashlib.sha256).hexdigest()
    return f"{namespace[:1].upper()}{digest[:31]}"


def person_id(key: bytes, assigning_authority: str, identifier: str) -> str:
    """The person pseudonym for a source identifier within its assigning authority."""
    return pseudonym(key, f"{assigning_authority.strip().upper()}|{identifier.strip()}", "person")
