"""A local Airflow 3 stack for this project's DAGs: api-server, scheduler, dag-processor and
triggerer as background processes on loopback (``omicslake airflow up|down|status``), checked
through the REST API v2 client of ``connectors.airflow_api`` (which the center API also uses to
start a DAG run).

The stack runs against the SQLite metadata DB of ``airflow_support.airflow_env`` with the
LocalExecutor: Airflow 3 has no SequentialExecutor any more (a configured ``SequentialExecutor``
is read as ``LocalExecutor``) and allows the LocalExecutor on SQLite, as ``airflow standalone``
does. Tasks do not open the metadata DB in Airflow 3 (they report through the api-server's
Execution API), so several can run at once; ``parallelism`` caps them, because every task
starts its own embedded engine. Authentication is the SimpleAuthManager with every user an
admin, acceptable only because everything listens on 127.0.0.1: ``GET /auth/token`` hands a
JWT to any local client.

Process ids, start times and the port are kept in ``AIRFLOW_HOME/omicslake-airflow.json``; each
component logs to ``AIRFLOW_HOME/logs/<component>.log``, task logs go where Airflow puts them
(``AIRFLOW_HOME/logs/dag_id=…``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

from connectors.airflow_api import AirflowClient, AirflowError
from omicslake.airflow_support import DAGS_FOLDER, airflow_env, prepare_airflow
from omicslake.settings import Settings

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
STATE_FILE = "omicslake-airflow.json"
HOST = "127.0.0.1"
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"


# --- the local stack -----------------------------------------------------------------------


def expected_dag_ids() -> set[str]:
    """The DAG ids declared in the DAGs folder (``dag_id="…"``)."""
    return {m for f in DAGS_FOLDER.glob("*.py")
            for m in re.findall(r'dag_id\s*=\s*"([A-Za-z0-9_.-]+)"', f.read_text())}


def state_path(settings: Settings) -> Path:
    return settings.airflow_home / STATE_FILE


def log_path(settings: Settings, component: str) -> Path:
    return settings.airflow_home / "logs" / f"{component}.log"


def stack_env(settings: Settings, port: int, parallelism: int) -> dict[str, str]:
    """The environment of every component (and so of every task: the scheduler's LocalExecutor
    passes it on, so tasks see the same OMICSLAKE_* settings as the command that started it)."""
    url = f"http://{HOST}:{port}"
    env = {**os.environ, **airflow_env(settings)}
    env.update({
        "OMICSLAKE_HOME": settings.home,
        "OMICSLAKE_STATE_DIR": str(settings.state_dir),
        "OMICSLAKE_CENTERS": str(settings.centers_file),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("OMICSLAKE_AIRFLOW_LOG_LEVEL", "INFO"),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": str(parallelism),
        "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
        "AIRFLOW__API__HOST": HOST,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": url,
        "AIRFLOW__API__WORKERS": "1",
        "PYTHONUNBUFFERED": "1",
    })
    return env


def _command(component: str, port: int) -> list[str]:
    cmd = [sys.executable, "-m", "airflow", component]
    if component == "api-server":
        cmd += ["--host", HOST, "--port", str(port), "--workers", "1"]
    elif component in ("scheduler", "triggerer"):
        cmd += ["--skip-serve-logs"]  # the api-server reads task logs from the local folder
    return cmd


def read_state(settings: Settings) -> dict[str, Any] | None:
    path = state_path(settings)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        return None


def _process(entry: dict[str, Any]):
    """The psutil.Process of a recorded pid if it is still that process (not a reused pid)."""
    try:
        proc = psutil.Process(entry["pid"])
        if abs(proc.create_time() - entry["create_time"]) > 1.0:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except (psutil.NoSuchProcess, psutil.AccessDenied, KeyError):
        return None


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def start(settings: Settings, port: int = 8080, parallelism: int = 2, timeout: float = 240.0,
          echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Start the four components, wait until the api-server answers, every component heartbeats
    and every DAG of the DAGs folder is parsed; return the recorded state. If the stack is
    already running, return its state unchanged."""
    if parallelism < 1:
        raise AirflowError("parallelism must be at least 1")
    current = read_state(settings)
    if current:
        alive = {name: _process(e) is not None for name, e in current["processes"].items()}
        if all(alive.values()):
            current["already_running"] = True
            return current
        echo(f"a previous stack is partly gone ({', '.join(n for n, a in alive.items() if not a)}); "
             "stopping the rest")
        stop(settings, echo=echo)
    if port == 0:
        port = _free_port()
    if not _port_free(port):
        raise AirflowError(f"port {HOST}:{port} is taken; choose another with --port")
    home = prepare_airflow(settings)  # migrates the SQLite metadata DB once per Airflow version
    (home / "logs").mkdir(parents=True, exist_ok=True)
    env = stack_env(settings, port, parallelism)
    started = datetime.now(UTC)
    procs: dict[str, subprocess.Popen] = {}
    for name in COMPONENTS:
        log = log_path(settings, name)
        with open(log, "ab") as out:
            out.write(f"\n==== omicslake airflow up: {name} at {started.isoformat()} ====\n".encode())
            out.flush()
            procs[name] = subprocess.Popen(_command(name, port), env=env, cwd=str(home),
                                           stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                           start_new_session=True)  # not killed with the terminal
    state = {
        "url": f"http://{HOST}:{port}", "port": port, "airflow_home": str(home),
        "parallelism": parallelism, "executor": "LocalExecutor",
        "started_at": started.isoformat(timespec="seconds"),
        "processes": {name: {"pid": p.pid, "create_time": psutil.Process(p.pid).create_time(),
                             "log": str(log_path(settings, name))} for name, p in procs.items()},
    }
    _write_state(settings, state)
    try:
        _wait_ready(state, procs, started, timeout, echo)
    except BaseException:
        stop(settings, echo=lambda _m: None)
        raise
    return state


def _write_state(settings: Settings, state: dict[str, Any]) -> None:
    path = state_path(settings)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, path)


def _wait_ready(state: dict[str, Any], procs: dict[str, subprocess.Popen], started: datetime,
                timeout: float, echo: Callable[[str], None]) -> None:
    deadline = time.monotonic() + timeout
    expected = expected_dag_ids()
    waiting_for = "the api-server"
    last_said = ""
    with AirflowClient(state["url"], timeout=10) as client:
        while True:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    raise AirflowError(f"the {name} exited with code {proc.returncode} while starting; "
                                       f"its log ({state['processes'][name]['log']}) ends:\n"
                                       f"{_tail(Path(state['processes'][name]['log']))}")
            with suppress(httpx.TransportError):  # until the api-server listens
                waiting_for = _not_ready(client, started, expected) or ""
            if not waiting_for:
                return
            if waiting_for != last_said:
                echo(f"waiting for {waiting_for}")
                last_said = waiting_for
            if time.monotonic() > deadline:
                raise AirflowError(f"Airflow was not ready after {timeout:.0f} s (waiting for "
                                   f"{waiting_for}); logs in {Path(state['airflow_home']) / 'logs'}")
            time.sleep(1.0)


def _not_ready(client: AirflowClient, started: datetime, expected: set[str]) -> str | None:
    """What the stack still waits for, or None when it is ready; DAG import errors raise."""
    try:
        health = client.health()
    except AirflowError as exc:
        return str(exc)
    stale = [c for c in ("scheduler", "dag_processor", "triggerer")
             if health.get(c, {}).get("status") != "healthy"
             or not _after(health[c].get(f"latest_{c}_heartbeat"), started)]
    if stale:
        return f"heartbeats of the {', '.join(stale)}"
    errors = client.import_errors()
    if errors:
        raise AirflowError("DAG import errors:\n" + "\n".join(
            f"{e.get('filename')}: {str(e.get('stack_trace', ''))[-800:]}" for e in errors))
    missing = expected - set(client.dags())
    if missing:
        return f"the DAG processor to parse {', '.join(sorted(missing))}"
    return None


def _after(stamp: str | None, started: datetime) -> bool:
    if not stamp:
        return False
    at = datetime.fromisoformat(stamp)
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at >= started.replace(microsecond=0)


def _tree(entries: dict[str, dict[str, Any]]) -> list:
    """The recorded processes still alive and all their descendants (task processes included)."""
    found = {}
    for entry in entries.values():
        proc = _process(entry)
        if proc is None:
            continue
        found[proc.pid] = proc
        with suppress(psutil.Error):
            for child in proc.children(recursive=True):
                found[child.pid] = child
    return list(found.values())


def stop(settings: Settings, timeout: float = 30.0,
         echo: Callable[[str], None] = print) -> list[str] | None:
    """SIGTERM every component (they stop their own children), wait up to ``timeout`` seconds,
    then SIGKILL whatever is left of their process trees; remove the state file. Returns the
    names of the components that were running (None: no stack was recorded)."""
    state = read_state(settings)
    if not state:
        return None
    entries = state.get("processes", {})
    running = [name for name, e in entries.items() if _process(e) is not None]
    seen = {p.pid: p for p in _tree(entries)}
    for name in running:
        proc = _process(entries[name])
        if proc is not None:
            with suppress(psutil.Error):
                proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen.update({p.pid: p for p in _tree(entries)})  # children started while stopping
        left = [p for p in seen.values() if _alive(p)]
        if not left:
            break
        time.sleep(0.25)
    left = [p for p in seen.values() if _alive(p)]
    if left:
        echo(f"{len(left)} process(es) still running after {timeout:.0f} s: SIGKILL "
             + ", ".join(str(p.pid) for p in left))
        for p in left:
            with suppress(psutil.Error):
                p.kill()
        psutil.wait_procs(left, timeout=10)
    state_path(settings).unlink(missing_ok=True)
    return running


def _alive(proc) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def status(settings: Settings) -> dict[str, Any]:
    """Which components run (by pid), and what the api-server says about their heartbeats."""
    state = read_state(settings)
    if not state:
        return {"running": False, "airflow_home": str(settings.airflow_home)}
    out = {**state, "running": True, "components": {}}
    for name, entry in state["processes"].items():
        out["components"][name] = {"pid": entry["pid"], "alive": _process(entry) is not None,
                                   "log": entry["log"]}
    out["running"] = all(c["alive"] for c in out["components"].values())
    try:
        with AirflowClient(state["url"], timeout=5) as client:
            out["health"] = client.health()
            out["dags"] = {d: {"is_paused": v.get("is_paused")} for d, v in client.dags().items()}
    except (httpx.HTTPError, AirflowError) as exc:
        out["health"] = {"error": str(exc)}
    return out
