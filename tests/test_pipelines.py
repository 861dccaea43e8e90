"""The pipeline order and the quality gates are decided once (omicslake/pipelines.py and the
table contracts), and the DAGs read them from there."""

from __future__ import annotations

import pytest

from omicslake.airflow_support import DAGS_FOLDER
from omicslake.errors import InputError
from omicslake.pipelines import CLINICAL_GATES, GENOMICS_GATES, landed_run_ids, run_step
from schemas import ALL_TABLES, gate_tables


def test_build_clinical_maps_only_runs_that_landed_rows():
    runs = [{"run_id": "a", "status": "succeeded", "rows_accepted": 3, "rows_written": 3},
            {"run_id": "b", "status": "skipped", "rows_accepted": 0, "rows_written": 0},
            {"run_id": "c", "status": "succeeded", "rows_accepted": 2, "rows_written": 0},
            {"run_id": "d", "status": "succeeded", "rows_accepted": 1, "rows_written": 1}]
    assert landed_run_ids(runs) == ["a", "d"]


def test_every_gate_names_contract_tables_and_the_dags_check_gates():
    gates = {t.gate for t in ALL_TABLES if t.gate}
    assert set(GENOMICS_GATES) | set(CLINICAL_GATES) <= gates
    assert gate_tables("clinical.bronze") == ["bronze.hl7_messages", "bronze.fhir_resources"]
    with pytest.raises(KeyError, match="no table is checked at gate"):
        gate_tables("genomics.nothing")
    checked = set()
    for f in DAGS_FOLDER.glob("*.py"):
        text = f.read_text()
        assert "run_quality([" not in text, f"{f.name}: a check lists its tables; name a gate"
        checked |= {g for g in gates if f'gate_tables("{g}")' in text}
    assert checked == gates  # every gate is checked by a DAG


def test_run_step_runs_only_jobs():
    with pytest.raises(InputError, match="no job 'cohort_events'"):
        run_step(None, None, "cohort_events")
