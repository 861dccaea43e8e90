"""A small client for Airflow's REST API v2: a JWT from ``/auth/token``, DAG listing, pausing,
triggering and reading runs. The center API starts the DAG run of a landed upload with it
(``upload_trigger``), and ``omicslake airflow up|status`` (``omicslake.airflow_local``) checks the
local stack with it.
"""

from __future__ import annotations

import os
from typing import Any

import httpx

from omicslake.errors import OmicslakeError


class AirflowError(OmicslakeError):
    """The local stack could not start or stop, or Airflow refused a request."""


class AirflowClient:
    """Airflow's REST API v2 with a JWT from ``/auth/token``: ``GET`` when every user is an admin
    (the local stack), ``POST`` with ``username``/``password`` otherwise. A 401 fetches a new
    token once (tokens expire)."""

    def __init__(self, url: str, username: str | None = None, password: str | None = None,
                 timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.username, self.password = username, password
        self._http = httpx.Client(base_url=self.url, timeout=timeout)
        self._token: str | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, timeout: float = 30.0) -> AirflowClient | None:
        """``OMICSLAKE_AIRFLOW_URL`` (+ ``OMICSLAKE_AIRFLOW_USERNAME``/``_PASSWORD``), or None."""
        env = os.environ if env is None else env
        url = (env.get("OMICSLAKE_AIRFLOW_URL") or "").strip()
        if not url:
            return None
        return cls(url, env.get("OMICSLAKE_AIRFLOW_USERNAME") or None,
                   env.get("OMICSLAKE_AIRFLOW_PASSWORD") or None, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AirflowClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def token(self) -> str:
        if self._token is None:
            if self.username:
                resp = self._http.post("/auth/token", json={"username": self.username,
                                                            "password": self.password or ""})
            else:
                resp = self._http.get("/auth/token")
            _check(resp, "get a token from /auth/token")
            self._token = resp.json()["access_token"]
        return self._token

    def request(self, method: str, path: str, **kw) -> httpx.Response:
        for attempt in (1, 2):
            resp = self._http.request(method, path, headers={"Authorization": f"Bearer {self.token()}"}, **kw)
            if resp.status_code != 401 or attempt == 2:
                return resp
            self._token = None
        return resp  # pragma: no cover

    def health(self) -> dict[str, Any]:
        resp = self._http.get("/api/v2/monitor/health")
        _check(resp, "read /api/v2/monitor/health")
        return resp.json()

    def dags(self, pattern: str = "omicslake") -> dict[str, dict[str, Any]]:
        resp = self.request("GET", "/api/v2/dags", params={"dag_id_pattern": pattern, "limit": 100})
        _check(resp, "list DAGs")
        return {d["dag_id"]: d for d in resp.json()["dags"]}

    def import_errors(self) -> list[dict[str, Any]]:
        resp = self.request("GET", "/api/v2/importErrors", params={"limit": 100})
        _check(resp, "list import errors")
        return resp.json()["import_errors"]

    def set_paused(self, dag_id: str, paused: bool) -> dict[str, Any]:
        resp = self.request("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": paused})
        _check(resp, f"{'pause' if paused else 'unpause'} {dag_id}")
        return resp.json()

    def trigger(self, dag_id: str, conf: dict[str, Any], run_id: str | None = None,
                note: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"logical_date": None, "conf": conf}
        if run_id:
            body["dag_run_id"] = run_id
        if note:
            body["note"] = note
        resp = self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body)
        _check(resp, f"trigger {dag_id}")
        return resp.json()

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        resp = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
        _check(resp, f"read run {run_id} of {dag_id}")
        return resp.json()

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        resp = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
                            params={"limit": 100})
        _check(resp, f"read the tasks of run {run_id}")
        return resp.json()["task_instances"]


def _check(resp: httpx.Response, what: str) -> None:
    if resp.status_code >= 400:
        try:
            detail = resp.json().get("detail", resp.text)
        except ValueError:
            detail = resp.text
        raise AirflowError(f"Airflow at {resp.request.url.host}:{resp.request.url.port} refused to {what}: "
                           f"HTTP {resp.status_code} {str(detail)[:500]}")
