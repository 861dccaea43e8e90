"""API tokens for center principals: issued once, stored as an argon2id hash, expiring, revocable.

A token reads ``olk_<token_id>_<secret>``: the id finds its row in ``ops.credentials``, the
argon2id hash of the whole token proves it. Only the hash is stored; a lost token is revoked
and a new one issued.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from omicslake.audit import audit
from omicslake.catalog import read_table
from omicslake.errors import OmicslakeError
from omicslake.settings import Settings
from omicslake.sql_gateway import ROLES, Principal
from omicslake.tiers import require_center
from omicslake.writes import append, merge_new
from schemas import get_table

TABLE = "ops.credentials"
TOKEN = re.compile(r"^olk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
DEFAULT_DAYS = 90


class AuthError(OmicslakeError):
    """A token that does not authenticate (HTTP 401); the reason is for the audit log only."""


@dataclass(frozen=True)
class Issued:
    token_id: str
    token: str
    center_id: str
    role: str
    expires_at: datetime


def _hasher():
    from argon2 import PasswordHasher

    return PasswordHasher()


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def issue(spark: SparkSession, settings: Settings, center_id: str, role: str,
          days: int = DEFAULT_DAYS) -> Issued:
    """A new token for ``center_id`` and ``role``; the only time its clear value exists."""
    require_center(settings, center_id)
    if role not in ROLES:
        raise OmicslakeError(f"role {role!r} is not one of {', '.join(ROLES)}")
    if not 1 <= days <= 3650:
        raise OmicslakeError(f"--days {days}: a token lives 1 to 3650 days")
    token_id = secrets.token_hex(6)
    token = f"olk_{token_id}_{secrets.token_urlsafe(32)}"
    now = _now()
    row = {"token_id": token_id, "center_id": center_id, "role": role,
           "token_hash": _hasher().hash(token), "issued_at": now, "expires_at": now + timedelta(days=days),
           "revoked_at": None, "issued_by": settings.principal}
    append(spark.createDataFrame([row], get_table(TABLE).spark_schema()), settings, TABLE)
    audit(spark, settings, "token_issue", token_id, {"role": role, "days": days}, center_id)
    return Issued(token_id, token, center_id, role, row["expires_at"])


def revoke(spark: SparkSession, settings: Settings, token_id: str) -> bool:
    """Revoke a token by id; False when there is no such live token."""
    rows = read_table(spark, settings, TABLE).where(
        (F.col("token_id") == token_id) & F.col("revoked_at").isNull()).collect()
    if not rows:
        return False
    row = rows[0].asDict() | {"revoked_at": _now()}
    merge_new(spark, settings, spark.createDataFrame([row], get_table(TABLE).spark_schema()), TABLE,
              update=True)
    audit(spark, settings, "token_revoke", token_id, {"role": row["role"]}, row["center_id"])
    return True


def tokens(spark: SparkSession, settings: Settings, center_id: str | None = None) -> list[dict]:
    """Every token's metadata (never its hash), newest first."""
    df = read_table(spark, settings, TABLE).drop("token_hash")
    if center_id:
        df = df.where(F.col("center_id") == center_id)
    return [r.asDict() for r in df.orderBy(F.col("issued_at").desc()).collect()]


def authenticate(spark: SparkSession, settings: Settings, token: str | None,
                 now: datetime | None = None) -> Principal:
    """The principal a bearer token stands for; AuthError (missing, malformed, unknown, revoked,
    expired, wrong secret) otherwise. The center must still be in the registry."""
    from argon2.exceptions import VerificationError

    match = TOKEN.match(token or "")
    if not match:
        raise AuthError("missing token" if not token else "malformed token")
    rows = read_table(spark, settings, TABLE).where(F.col("token_id") == match.group(1)).collect()
    if not rows:
        raise AuthError("unknown token")
    row = rows[0]
    try:
        _hasher().verify(row.token_hash, token)
    except VerificationError:
        raise AuthError("wrong token secret") from None
    if row.revoked_at is not None:
        raise AuthError("revoked token")
    if (now or _now()) >= row.expires_at:
        raise AuthError("expired token")
    require_center(settings, row.center_id)
    return Principal(row.center_id, row.role)
