"""Airflow glue: a throw-away Airflow home under the local state folder, and job tasks.

DAG files stay thin: each task calls ``run_job(job_module, **params)``, which builds the
session for the configured engine, runs the step through ``omicslake.pipelines`` and returns the
job's counts (pushed to XCom); each check calls ``run_quality`` on a quality gate's tables.

Lineage: tasks declare the lake tables they write as ``outlets`` (``lake_assets``); ``run_job``
and ``run_quality`` tell Airflow's hook-lineage collector what the run actually read (the files
it was given, the tables it checked) and wrote, and the OpenLineage provider puts both in the
task's START/COMPLETE events. Events go to ``AIRFLOW_HOME/openlineage.jsonl`` unless
``AIRFLOW__OPENLINEAGE__TRANSPORT`` says otherwise.
"""

from __future__ import annotations

import json
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
# Job parameters that name input files (a folder, a file, or a list of them).
INPUT_PARAMS = ("paths", "vcf", "manifest", "targets", "reference", "gtf", "clinvar", "gnomad")
MAX_LISTED_FILES = 50  # the collector keeps 100 assets; past this, the given paths stand for the files


def airflow_env(settings: Settings) -> dict[str, str]:
    home = settings.airflow_home
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("OMICSLAKE_AIRFLOW_LOG_LEVEL", "WARNING"),
        "GX_ANALYTICS_ENABLED": "False",
        "AIRFLOW__OPENLINEAGE__NAMESPACE": os.environ.get("AIRFLOW__OPENLINEAGE__NAMESPACE", "omicslake"),
        **_lineage_transport(home),
    }


def _lineage_transport(home: Path) -> dict[str, str]:
    """OpenLineage events to ``home/openlineage.jsonl`` (one JSON per line), unless a transport
    is configured already: the provider turns itself off when none is, and a file under the
    throw-away Airflow home is what a local run can read back."""
    configured = any(k.startswith(("AIRFLOW__OPENLINEAGE__TRANSPORT", "AIRFLOW__OPENLINEAGE__CONFIG_PATH",
                                   "OPENLINEAGE_URL", "OPENLINEAGE__TRANSPORT", "OPENLINEAGE_CONFIG"))
                     and v for k, v in os.environ.items())
    if configured:
        return {}
    path = str(home / "openlineage.jsonl")
    return {"AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "file", "log_file_path": path,
                                                           "append": True})}


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


def lake_assets(*tables: str) -> list:
    """Airflow Assets for lake tables, named ``layer.table`` at their storage location
    (``file:///…/lake/silver/x``, ``s3://…``), for the ``outlets``/``inlets`` of DAG tasks: Airflow
    records an asset event per table a task wrote, and OpenLineage names the table as a dataset
    (``file`` through the common-io provider; ``s3`` needs the amazon provider, which the
    official Airflow image carries)."""
    from airflow.sdk import Asset

    from omicslake.catalog import table_uri

    settings = load_settings()
    return [Asset(name=t, uri=_asset_uri(table_uri(settings, t))) for t in tables]


def _asset_uri(location: str) -> str:
    return location if "://" in location else f"file://{Path(location).resolve()}"


def _input_uris(params: dict[str, Any], read: list[str]) -> list[str]:
    """The files a job was given (folders, files, URIs) and, when there are not too many, each
    file it read from them: the inputs its lineage names."""
    given = []
    for key in INPUT_PARAMS:
        value = params.get(key)
        given += [v for v in (value if isinstance(value, list | tuple) else [value]) if isinstance(v, str)]
    listed = read if len(read) <= MAX_LISTED_FILES else []
    # some jobs list what they read by checksum (clean_variants: the bronze sources), not by place
    places = [p for p in [*given, *listed] if "://" in p or Path(p).is_absolute()]
    return list(dict.fromkeys(_asset_uri(p) for p in places))


def report_lineage(inputs: list[str]) -> None:
    """Hand this task's lineage to Airflow's hook-lineage collector: the input URIs plus the
    task's declared inlets and outlets. Why: a TaskFlow task has no OpenLineage extractor, its
    input files are known only at run time, and once the collector holds anything the provider
    reads it instead of the declared inlets/outlets. Outside an Airflow task it does nothing.

    The collector is per process and a worker runs each task in its own; ``dag.test()`` runs
    them all in one, so ``test_dag`` empties it as each task starts (``_fresh_lineage_listener``)."""
    try:
        from airflow.sdk import Asset, get_current_context
        from airflow.sdk.lineage import get_hook_lineage_collector

        task = get_current_context()["task"]
    except Exception:  # not in a task (the CLI, python -m jobs.X), or no Airflow
        return
    collector = get_hook_lineage_collector()
    for uri in inputs:
        collector.add_input_asset(context=task, uri=uri)
    for asset in task.inlets:
        if isinstance(asset, Asset):
            collector.add_input_asset(context=task, uri=asset.uri, name=asset.name)
    for asset in task.outlets:
        if isinstance(asset, Asset):
            collector.add_output_asset(context=task, uri=asset.uri, name=asset.name)


def run_job(module: str, **params: Any) -> dict[str, Any]:
    """Run one pipeline step, ``jobs.<module>.run`` (``omicslake.pipelines.run_step``), on the
    configured engine and return its counts."""
    from omicslake.pipelines import run_step
    from omicslake.session import get_spark

    settings = load_settings()
    result = run_step(get_spark(settings), settings, module, **params)
    print(result.summary(), flush=True)
    report_lineage(_input_uris(params, list(result.inputs)))
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
    report_lineage([asset.uri for asset in lake_assets(*tables)])  # the checks read these tables
    return summary


_fresh_lineage = None  # the listener below, made once: Airflow is imported only after prepare_airflow


def _fresh_lineage_listener():
    """A task listener for ``dag.test()``, which runs every task in one process, where the
    process-wide hook-lineage collector would carry one task's lineage into the events of the
    tasks after it: emptied as each task starts, before OpenLineage reads it (``tryfirst``)."""
    global _fresh_lineage
    if _fresh_lineage is None:
        from airflow.listeners import hookimpl

        class FreshLineage:
            @hookimpl(tryfirst=True)
            def on_task_instance_running(self, previous_state, task_instance) -> None:
                from airflow.sdk.lineage import get_hook_lineage_collector

                get_hook_lineage_collector.cache_clear()

        _fresh_lineage = FreshLineage()
    return _fresh_lineage


def test_dag(dag_id: str, run_conf: dict[str, Any], settings: Settings | None = None):
    """Run a DAG in-process with ``dag.test()``; raise with the failed tasks' names."""
    settings = settings or load_settings()
    prepare_airflow(settings)
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk.listener import get_listener_manager

    get_listener_manager().add_listener(_fresh_lineage_listener())
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
