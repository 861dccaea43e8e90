"""What every route of the center API shares: the engine behind it, a short-lived cache, and
turning a request's bearer token into a principal (audited when refused)."""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Any

from fastapi import Request
from pyspark.sql import SparkSession

from omicslake.audit import AuditQueue
from omicslake.credentials import AuthError, authenticate
from omicslake.settings import Settings
from omicslake.sql_gateway import Principal

TOKEN_CACHE_S = 30.0


class TtlCache:
    """Values trusted for ``ttl`` seconds; emptied when it grows past ``max_entries``."""

    def __init__(self, ttl: float, max_entries: int = 10_000):
        self.ttl, self.max_entries = ttl, max_entries
        self._items: dict[Any, tuple[Any, float]] = {}

    def get(self, key: Any) -> Any | None:
        hit = self._items.get(key)
        return hit[0] if hit and time.monotonic() - hit[1] < self.ttl else None

    def put(self, key: Any, value: Any) -> None:
        if len(self._items) > self.max_entries:
            self._items.clear()
        self._items[key] = (value, time.monotonic())


class Engine:
    """The lake's engine for the API: one Spark Connect session used by one request at a time
    (token checks, SQL, receipt and object lookups), and the audit queue that shares its lock."""

    def __init__(self, spark: SparkSession, settings: Settings):
        self.spark, self.settings = spark, settings
        self.lock = threading.Lock()
        self.audit = AuditQueue(spark, settings, lock=self.lock)
        self._tokens = TtlCache(TOKEN_CACHE_S)

    def call(self, fn, *args, **kw):
        with self.lock:
            return fn(self.spark, self.settings, *args, **kw)

    def principal(self, token: str | None) -> Principal:
        """A token's principal; a verified token is trusted for TOKEN_CACHE_S seconds (argon2 is
        slow by design), so a revocation takes effect within that time."""
        key = hashlib.sha256((token or "").encode()).hexdigest()
        principal = self._tokens.get(key)
        if principal is None:
            principal = self.call(authenticate, token)
            self._tokens.put(key, principal)
        return principal

    def login(self, request: Request, authorization: str | None) -> Principal:
        """The principal of ``Authorization: Bearer <token>``; AuthError (audited as a refused
        login) otherwise."""
        scheme, _, token = (authorization or "").partition(" ")
        try:
            return self.principal(token.strip() if scheme.lower() == "bearer" else None)
        except AuthError as exc:
            self.audit.add("login", request.url.path, {"reason": str(exc)}, outcome="refused",
                           client=client_address(request))
            raise


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"
