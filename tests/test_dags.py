"""DAG integrity: every DAG imports, has no cycle, and every task has retries and an owner."""

import pytest

from omicslake.airflow_support import DAGS_FOLDER, prepare_airflow


@pytest.fixture(scope="module")
def dagbag(settings):
    prepare_airflow(settings)
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_FOLDER))


def test_dags_import_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "omicslake_genomics" in dagbag.dag_ids


def test_no_cycles(dagbag):
    for dag in dagbag.dags.values():
        order, seen = [], set()
        remaining = {t.task_id: set(t.upstream_task_ids) for t in dag.tasks}
        while remaining:
            ready = [t for t, ups in remaining.items() if ups <= seen]
            assert ready, f"{dag.dag_id}: cycle among {sorted(remaining)}"
            for t in ready:
                seen.add(t)
                order.append(t)
                del remaining[t]
        assert len(order) == len(dag.tasks)


def test_every_task_has_retries_and_owner(dagbag):
    for dag in dagbag.dags.values():
        for task in dag.tasks:
            assert task.retries >= 1, f"{dag.dag_id}.{task.task_id} has no retries"
            assert task.owner and task.owner != "airflow", f"{dag.dag_id}.{task.task_id} has no owner"


def test_dag_files_hold_no_business_logic():
    for f in DAGS_FOLDER.glob("*.py"):
        text = f.read_text()
        for banned in ("spark.sql(", ".write.", "createDataFrame", "pysam"):
            assert banned not in text, f"{f.name} does work itself ({banned}); move it to jobs/"


def test_genomics_dag_order(dagbag):
    dag = dagbag.get_dag("omicslake_genomics")
    assert dag.get_task("clean_variants").upstream_task_ids == {"ingest_vcf"}
    assert dag.get_task("call_pgx").upstream_task_ids == {"check_silver"}
    assert dag.get_task("check_runs").upstream_task_ids == {"call_pgx"}


def test_cohorts_dag_builds_each_definition_one_at_a_time(dagbag):
    dag = dagbag.get_dag("omicslake_cohorts")
    assert dag.get_task("build").upstream_task_ids == {"plan"}
    assert dag.get_task("build").max_active_tis_per_dag == 1
    assert dag.get_task("check_gold").upstream_task_ids == {"build"}


def test_clinical_and_imaging_dag_order(dagbag):
    clinical = dagbag.get_dag("omicslake_clinical")
    ups = clinical.get_task("build_silver").upstream_task_ids
    assert ups >= {"ingest_hl7", "ingest_fhir", "check_bronze"}
    assert clinical.get_task("check_silver").upstream_task_ids == {"build_silver"}
    imaging = dagbag.get_dag("omicslake_imaging")
    assert imaging.get_task("check").upstream_task_ids == {"ingest"}


def test_curation_dag_links_then_annotates(dagbag):
    dag = dagbag.get_dag("omicslake_curation")
    assert dag.get_task("check_persons").upstream_task_ids == {"link_persons"}
    assert dag.get_task("annotate_variants").upstream_task_ids == {"check_persons"}
    assert dag.get_task("check_annotations").upstream_task_ids == {"annotate_variants"}
    assert dag.get_task("call_pgx").upstream_task_ids == {"check_annotations"}
    assert dag.get_task("build_kg").upstream_task_ids == {"call_pgx"}
    assert dag.get_task("check_kg").upstream_task_ids == {"build_kg"}


def test_maintenance_dag_maintains_each_table_in_its_own_task(dagbag, settings):
    from omicslake.catalog import lake_tables

    dag = dagbag.get_dag("omicslake_maintenance")
    assert "0 3 * * *" in str(dag.timetable) and dag.max_active_runs == 1  # nightly, one run
    maintain = dag.get_task("maintain")
    assert maintain.is_mapped and maintain.upstream_task_ids == {"plan"}
    assert maintain.op_kwargs_expand_input.value["table"].operator.task_id == "plan"
    planned = dag.get_task("plan").python_callable()
    assert planned == [t.full_name for t in lake_tables(settings)]  # every table, once each
    assert len(set(planned)) == len(planned) and {"silver.genotypes", "gold.cohort"} <= set(planned)
