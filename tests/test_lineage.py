"""OpenLineage events from the DAGs: every job task names the files it read and the lake tables
it wrote, through Airflow's OpenLineage provider (file transport under the Airflow home)."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
from inputs import ct_bytes

from omicslake import airflow_support as af

IMAGING_WRITES = {"bronze.dicom_instances", "quarantine.dicom", "silver.imaging_instances",
                  "silver.imaging_series", "silver.imaging_studies"}
BOOKKEEPING = {"ops.ingest_runs", "ops.audit_log", "ops.quality_results"}  # every run writes them


def _versions(settings) -> dict[str, int]:
    """Delta version of every lake table that exists (delta-rs reads the log, no engine)."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    from omicslake.catalog import lake_tables, table_uri

    out = {}
    for t in lake_tables(settings):
        try:
            out[t.full_name] = DeltaTable(table_uri(settings, t)).version()
        except TableNotFoundError:
            continue
    return out


def _events(path: Path, offset: int) -> list[dict]:
    with open(path, "rb") as fh:
        fh.seek(offset)
        return [json.loads(line) for line in fh.read().decode().splitlines() if line.strip()]


def _names(datasets: list[dict]) -> set[tuple[str, str]]:
    return {(d["namespace"], d["name"]) for d in datasets}


@pytest.mark.slow
def test_imaging_dag_run_emits_its_input_file_and_output_tables(lake, tmp_path):
    """One DICOM through omicslake_imaging with dag.test(): the ingest task's START names the
    tables it writes, its COMPLETE the file it read and those tables; the check task's COMPLETE
    the tables it checked; and the declared outputs cover every table the run committed to."""
    from omicslake.catalog import table_uri

    settings = lake
    af.prepare_airflow(settings)  # before Airflow is imported: it reads its home and DB then
    from airflow.providers.openlineage import conf

    transport = conf.transport()
    assert transport["type"] == "file", transport  # airflow_env's default
    log = Path(transport["log_file_path"])
    offset = log.stat().st_size if log.exists() else 0
    dicom = tmp_path / "in" / "ct.dcm"
    dicom.parent.mkdir()
    dicom.write_bytes(ct_bytes("PAT-LINEAGE"))
    before = _versions(settings)
    af.test_dag("omicslake_imaging", {"dicom": [{"center_id": "CTY-S1", "paths": [str(dicom)]}]}, settings)
    changed = {t for t, v in _versions(settings).items() if v != before.get(t)}

    events = {(e["job"]["name"], e["eventType"]): e for e in _events(log, offset)}
    assert all(e["job"]["namespace"] == "omicslake" for e in events.values())
    tables = {("file", str(Path(table_uri(settings, t)).resolve())) for t in IMAGING_WRITES}
    start = events["omicslake_imaging.ingest", "START"]
    complete = events["omicslake_imaging.ingest", "COMPLETE"]
    assert _names(start["outputs"]) == tables
    assert _names(complete["inputs"]) == {("file", str(dicom.resolve()))}
    assert _names(complete["outputs"]) == tables
    checked = events["omicslake_imaging.check", "COMPLETE"]
    quarantine = ("file", str(Path(table_uri(settings, "quarantine.dicom")).resolve()))
    assert _names(checked["inputs"]) == tables - {quarantine}
    assert not events["omicslake_imaging.check", "START"]["inputs"]  # nothing carried over from ingest
    assert {"bronze.dicom_instances", "silver.imaging_instances"} <= changed
    assert changed - BOOKKEEPING <= IMAGING_WRITES, changed - BOOKKEEPING - IMAGING_WRITES


def test_every_job_task_declares_the_tables_it_writes(settings):
    """Each task that runs a job has outlets, each one a contract table at its lake location.
    Not the maintenance DAG: it rewrites the files of the one table it is mapped over, and
    carries no data from one table to another."""
    af.prepare_airflow(settings)
    from airflow.dag_processing.dagbag import DagBag

    from omicslake.catalog import table_uri
    from schemas import get_table

    bag = DagBag(dag_folder=str(af.DAGS_FOLDER))
    assert not bag.import_errors
    jobs = 0
    for dag in bag.dags.values():
        for task in dag.tasks:
            if dag.dag_id == "omicslake_maintenance" or "run_job(" not in inspect.getsource(
                    task.python_callable):
                continue
            jobs += 1
            assert task.outlets, f"{dag.dag_id}.{task.task_id} declares no outlets"
            for asset in [*task.inlets, *task.outlets]:
                get_table(asset.name)
                assert asset.uri == af._asset_uri(table_uri(settings, asset.name)), asset
    assert jobs >= 12


def test_job_inputs_are_the_given_paths_and_the_files_read(tmp_path):
    folder = tmp_path / "dicom"
    files = [str(folder / f"{i}.dcm") for i in range(3)]
    got = af._input_uris({"paths": [str(folder)], "center_id": "C", "manifest": "s3://b/m.csv"},
                         [*files, "eeac1d3a04cefa8d6f7d2ea6d619827cd01d76c3"])  # a checksum: no place
    assert got == [f"file://{folder}", "s3://b/m.csv", *(f"file://{f}" for f in files)]
    many = [str(folder / f"{i}.dcm") for i in range(500)]
    assert af._input_uris({"paths": [str(folder)]}, many) == [f"file://{folder}"]  # the folder stands in


def test_lineage_goes_to_a_file_under_the_airflow_home_unless_configured(monkeypatch, tmp_path):
    for key in ("AIRFLOW__OPENLINEAGE__TRANSPORT", "OPENLINEAGE_URL", "AIRFLOW__OPENLINEAGE__CONFIG_PATH"):
        monkeypatch.delenv(key, raising=False)
    env = af._lineage_transport(tmp_path)
    assert json.loads(env["AIRFLOW__OPENLINEAGE__TRANSPORT"]) == {
        "type": "file", "log_file_path": str(tmp_path / "openlineage.jsonl"), "append": True}
    monkeypatch.setenv("OPENLINEAGE_URL", "http://marquez:5000")
    assert af._lineage_transport(tmp_path) == {}
