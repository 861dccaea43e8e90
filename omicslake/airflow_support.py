"""Airflow glue: a throw-away Airflow home under the local state folder, and job tasks.

DAG files stay thin: each task calls ``run_job(job_module, **params)``, which builds the
session for the configured engine and returns the job's counts (pushed to XCom).
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any

from omicslake.errors import OmicslakeError
from omicslake.settings import Settings, load_settings

DAGS_FOLDER = Path(__file__).resolve().parent.parent / "dags"
# Every omicslake task: a named owner, and retries (a task is safe to re-run: writes are idempotent).
DEFAULT_ARGS = {"owner": "omicslake-data-eng", "retries": 2, "retry_delay": timedelta(seconds=30)}


def airflow_env(settings: Settings) -> dict[str, str]:
    home = settings.airflow_home
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("OMICSLAKE_AIRFLOW_LOG_LEVEL", "WARNING"),
        "GX_ANALYTICS_ENABLED": "False",
    }


def prepare_airflow(settings: Settings, quiet: bool = True) -> Path:
    """Point Airflow at our home and migrate its metadata DB once per Airflow version."""
    env = airflow_env(settings)
    os.environ.update(env)
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    home = settings.airflow_home
    home.mkdir(parents=True, exist_ok=True)
    from importlib.metadata import version

    marker = home / f".migrated-{version('apache-airflow')}"
    if not marker.exists():
        proc = subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"],
            env={**os.environ, **env}, capture_output=quiet, text=True,
        )
        if proc.returncode != 0:
            raise OmicslakeError(
                f"`airflow db migrate` failed in {home}:\n{(proc.stderr or '')[-2000:]}"
            )
        marker.touch()
    return home


def run_job(module: str, **params: Any) -> dict[str, Any]:
    """Run ``jobs.<module>.run`` on the configured engine and return its counts."""
    import importlib

    from omicslake.session import get_spark

    settings = load_settings()
    job = importlib.import_module(f"jobs.{module}")
    result = job.run(get_spark(settings), settings, **params)
    print(result.summary(), flush=True)
    return result.to_dict()


def landing_batches(feed: str) -> list[dict[str, Any]]:
    """One batch per center folder under STATE/landing/<feed>/ (as the listeners write them)."""
    root = load_settings().landing_dir / feed
    if not root.is_dir():
        return []
    return [{"center_id": d.name, "paths": [str(d)]} for d in sorted(root.iterdir())
            if d.is_dir() and any(d.iterdir())]


def run_quality(tables: list[str]) -> dict[str, Any]:
    from omicslake.session import get_spark
    from quality.checks import check_tables

    settings = load_settings()
    summary = check_tables(get_spark(settings), settings, tables)
    print(f"quality {tables}: {summary}", flush=True)
    return summary


def test_dag(dag_id: str, run_conf: dict[str, Any], settings: Settings | None = None):
    """Run a DAG in-process with ``dag.test()``; raise with the failed tasks' names."""
    settings = settings or load_settings()
    prepare_airflow(settings)
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    if bag.import_errors:
        raise OmicslakeError(f"DAG import errors: {bag.import_errors}")
    dag = bag.get_dag(dag_id)
    if dag is None:
        raise OmicslakeError(f"no DAG {dag_id!r} in {DAGS_FOLDER}")
    run = dag.test(run_conf=run_conf)
    state = str(getattr(run.state, "value", run.state))
    if state != "success":
        failed = [ti.task_id for ti in run.get_task_instances()
                  if str(getattr(ti.state, "value", ti.state)) in ("failed", "upstream_failed")]
        raise OmicslakeError(f"DAG {dag_id} ended {state}; failed tasks: {failed or 'see log above'}")
    return run
