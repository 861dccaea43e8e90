"""API tokens: shown once, stored as an argon2id hash, expiring, revocable; every failure is 401."""

import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest

from omicslake.credentials import AuthError, authenticate, issue, revoke, tokens
from omicslake.errors import RegistryError
from omicslake.sql_gateway import Principal


def test_issue_authenticate_expire_revoke(fresh_lake):
    spark, settings = fresh_lake
    county = issue(spark, settings, "CNT-S1A", "uploader", days=1)
    analyst = issue(spark, settings, "PRV-S", "analyst")
    assert county.token.startswith(f"olk_{county.token_id}_") and county.token != analyst.token
    assert authenticate(spark, settings, county.token) == Principal("CNT-S1A", "uploader")
    assert authenticate(spark, settings, analyst.token) == Principal("PRV-S", "analyst")
    stored = spark.read.format("delta").load(f"{settings.lake_root}/ops/credentials").collect()
    assert all(r.token_hash.startswith("$argon2id$") for r in stored)
    assert not any(county.token in str(r.asDict()) or analyst.token in str(r.asDict()) for r in stored)
    assert "token_hash" not in tokens(spark, settings)[0]

    wrong = county.token[:-4] + ("AAAA" if not county.token.endswith("AAAA") else "BBBB")
    for bad, reason in [(None, "missing"), ("Bearer x", "malformed"), (wrong, "wrong token secret"),
                        (f"olk_{'0' * 12}_{'A' * 43}", "unknown token")]:
        with pytest.raises(AuthError, match=reason):
            authenticate(spark, settings, bad)
    with pytest.raises(AuthError, match="expired"):
        authenticate(spark, settings, county.token, now=county.expires_at + timedelta(seconds=1))

    assert revoke(spark, settings, county.token_id) and not revoke(spark, settings, county.token_id)
    with pytest.raises(AuthError, match="revoked"):
        authenticate(spark, settings, county.token)
    assert authenticate(spark, settings, analyst.token).center_id == "PRV-S"
    actions = {(r.action, r.target) for r in spark.read.format("delta").load(
        f"{settings.lake_root}/ops/audit_log").collect()}
    assert {("token_issue", county.token_id), ("token_revoke", county.token_id)} <= actions
    with pytest.raises(RegistryError, match="CTY01"):
        issue(spark, settings, "CTY01", "analyst")


def test_token_cli_shows_the_token_once(tmp_path):
    env = {**os.environ, "OMICSLAKE_HOME": str(tmp_path)}
    run = [sys.executable, "-m", "omicslake.cli", "centers", "token"]
    out = subprocess.run([*run, "issue", "CTY-S1", "--role", "analyst"], env=env, capture_output=True,
                         text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    secret = out.stdout.strip()
    assert secret.startswith("olk_") and "shown once" in out.stderr
    listed = subprocess.run([*run, "list", "--json"], env=env, capture_output=True, text=True, timeout=180)
    rows = [json.loads(x) for x in listed.stdout.splitlines()]
    assert [(r["center_id"], r["role"], r["revoked_at"]) for r in rows] == [("CTY-S1", "analyst", None)]
    assert secret not in listed.stdout and secret not in listed.stderr
    gone = subprocess.run([*run, "revoke", rows[0]["token_id"]], env=env, capture_output=True, text=True,
                          timeout=180)
    assert gone.returncode == 0 and "revoked" in gone.stdout
