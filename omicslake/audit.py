"""The audit log: every access and change lands in ``ops.audit_log``."""

from __future__ import annotations

import json
import socket
import uuid
from datetime import UTC, datetime
from typing import Any

from pyspark.sql import SparkSession

from omicslake.settings import Settings


def audit(spark: SparkSession, settings: Settings, action: str, target: str,
          details: dict[str, Any] | None = None, center_id: str | None = None,
          principal: str | None = None, outcome: str = "ok", client: str | None = None) -> None:
    """Append one event: ``principal`` is who acted (a center:role, else the OS user),
    ``client`` where from (an HTTP peer; else this host), ``outcome`` ok | refused | failed."""
    from omicslake.writes import append
    from schemas import get_table

    row = {
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
    append(spark.createDataFrame([row], get_table("ops.audit_log").spark_schema()), settings,
           "ops.audit_log")
