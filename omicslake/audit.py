"""The audit log: every access and change lands in ``ops.audit_log``."""

from __future__ import annotations

import json
import logging
import socket
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

from pyspark.sql import SparkSession

from omicslake.settings import Settings

log = logging.getLogger(__name__)


def event(settings: Settings, action: str, target: str, details: dict[str, Any] | None = None,
          center_id: str | None = None, principal: str | None = None, outcome: str = "ok",
          client: str | None = None) -> dict[str, Any]:
    """One audit row: ``principal`` is who acted (a center:role, else the OS user), ``client``
    where from (an HTTP peer; else this host), ``outcome`` ok | refused | failed."""
    return {
        "event_id": uuid.uuid4().hex,
        "at": datetime.now(UTC).replace(tzinfo=None),
        "principal": principal or settings.principal,
        "center_id": center_id,
        "action": action,
        "target": target,
        "details_json": json.dumps(details or {}, sort_keys=True, default=str),
        "client": client or socket.gethostname(),
        "outcome": outcome,
    }


def write_events(spark: SparkSession, settings: Settings, rows: list[dict[str, Any]]) -> None:
    from omicslake.writes import append
    from schemas import get_table

    if rows:
        append(spark.createDataFrame(rows, get_table("ops.audit_log").spark_schema()), settings,
               "ops.audit_log")


def audit(spark: SparkSession, settings: Settings, action: str, target: str,
          details: dict[str, Any] | None = None, center_id: str | None = None,
          principal: str | None = None, outcome: str = "ok", client: str | None = None) -> None:
    """Append one event now (commands and jobs)."""
    write_events(spark, settings, [event(settings, action, target, details, center_id, principal,
                                         outcome, client)])


class AuditQueue:
    """Events of a busy server, appended together every ``interval`` seconds: one Delta commit
    per batch instead of one per request, and a request never waits on the log."""

    def __init__(self, spark: SparkSession, settings: Settings, interval: float = 1.0,
                 lock: threading.Lock | None = None):
        self.spark, self.settings, self.interval = spark, settings, interval
        self.lock = lock or threading.Lock()
        self._rows: list[dict[str, Any]] = []
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-queue", daemon=True)
        self._thread.start()

    def add(self, action: str, target: str, details: dict[str, Any] | None = None, **kw) -> None:
        with self._guard:
            self._rows.append(event(self.settings, action, target, details, **kw))

    def flush(self) -> None:
        with self._guard:
            rows, self._rows = self._rows, []
        if rows:
            try:
                with self.lock:
                    write_events(self.spark, self.settings, rows)
            except Exception:
                log.exception("could not write %d audit events; they are kept for the next try", len(rows))
                with self._guard:
                    self._rows[:0] = rows

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.flush()
