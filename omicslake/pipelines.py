"""The pipelines, decided once: which job follows which, and which tables are checked after them.

The CLI's commands and the DAGs' tasks both go through this module. The CLI runs a pipeline in
one process (``genomics``: VCF ingest, then ``clean_variants``; ``clinical``: HL7 or FHIR
ingest, then ``build_clinical`` for the runs that landed rows; each then, when asked, the
quality gate of the tables it wrote). A DAG runs each step as its own task, through
``omicslake.airflow_support.run_job`` and so ``run_step``, and checks the tables of each gate
between them (``gate_tables``: the contracts in ``schemas/tables.py`` name the gate that
checks each table).

An entry point: with the CLI, the Airflow support and the demo, the only modules that import
jobs (import-linter contracts in pyproject.toml).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from omicslake.errors import InputError
from schemas import gate_tables

if TYPE_CHECKING:  # DAG files import this module: the engine is imported by the tasks
    from pyspark.sql import SparkSession

    from omicslake.runs import JobResult
    from omicslake.settings import Settings

# the quality gates (schemas: ``Table.gate``) after the ingest steps the CLI runs; the DAGs also
# check genomics.runs, imaging, curation.persons|annotations|kg and cohorts.gold
GENOMICS_GATES = ("genomics.silver",)
CLINICAL_GATES = ("clinical.bronze", "clinical.silver")
CLINICAL_INGEST = {"hl7": "ingest_hl7", "fhir": "ingest_fhir"}
_FEED_NAMES = {"hl7": "HL7", "fhir": "FHIR"}

Progress = Callable[[str], AbstractContextManager]  # one step's label -> shown while it runs
OnResult = Callable[["JobResult"], None]  # each step's result, as soon as it is known
OnCheck = Callable[[str, dict], None]  # each quality gate's summary: (gate, summary)


def _quiet(_label: str) -> AbstractContextManager:
    return nullcontext()


def _ignore(*_args: Any) -> None:
    return None


def run_step(spark: SparkSession, settings: Settings, job: str, **params: Any) -> JobResult:
    """Run one job, ``jobs.<job>.run(spark, settings, **params)``.

    Args:
        job: a job module named in ``jobs.__all__``, e.g. ``"clean_variants"``.
        params: the job's keyword parameters.

    Returns:
        The job's counts.

    Example:
        >>> run_step(spark, settings, "clean_variants", reference=None)  # doctest: +SKIP
    """
    import jobs

    if job not in jobs.__all__:
        raise InputError(f"no job {job!r}; jobs: {', '.join(jobs.__all__)}")
    return importlib.import_module(f"jobs.{job}").run(spark, settings, **params)


def check(spark: SparkSession, settings: Settings, gate: str) -> dict[str, Any]:
    """Validate the tables of one quality gate with their Great Expectations suites.

    Args:
        gate: a gate named by the table contracts, e.g. ``"genomics.silver"``.

    Returns:
        The summary of ``quality.checks.check_tables``.
    """
    from quality.checks import check_tables

    return check_tables(spark, settings, gate_tables(gate))


def landed_run_ids(results: Iterable[JobResult | dict[str, Any]]) -> list[str]:
    """The ingest runs whose bronze rows ``build_clinical`` maps: those that succeeded and
    wrote rows (a run that skipped its inputs, or only met older versions, left nothing new).

    Args:
        results: ingest results, as ``JobResult`` or its ``to_dict()`` (a DAG task's XCom).

    Returns:
        Their run ids, in order.

    Example:
        >>> landed_run_ids([{"run_id": "a", "status": "succeeded", "rows_accepted": 2, "rows_written": 2},
        ...                 {"run_id": "b", "status": "skipped", "rows_accepted": 0, "rows_written": 0}])
        ['a']
    """
    out = []
    for r in results:
        row = r if isinstance(r, dict) else r.to_dict()
        if row["status"] == "succeeded" and row["rows_accepted"] and row["rows_written"]:
            out.append(row["run_id"])
    return out


def genomics(spark: SparkSession, settings: Settings, paths: list[str], center_id: str, manifest: str,
             build: str | None = None, reference: str | None = None, *, quality: bool = False,
             progress: Progress = _quiet, on_result: OnResult = _ignore,
             on_check: OnCheck = _ignore) -> list[JobResult]:
    """VCF ingest, then ``clean_variants`` into silver, then (``quality``) the genomics gates.

    A file that cannot be ingested (``InputError``) does not stop the others: what landed is
    cleaned, then the error is raised.

    Args:
        paths: VCF/BCF/gVCF files or folders of one center.
        center_id: the sending center.
        manifest: its sample manifest.
        build: the reference build when the headers do not say it.
        reference: a FASTA that left-aligns indels in silver.
        quality: also validate the tables of ``GENOMICS_GATES`` (``QualityError`` when a critical
            expectation fails).
        progress: shows each step while it runs; ``on_result`` receives each step's result,
            ``on_check`` each gate's summary.

    Returns:
        The results of the steps that ran, in order.
    """
    results, failure = [], None
    with progress(f"ingesting {len(paths)} path(s)"):
        try:
            results.append(run_step(spark, settings, "ingest_vcf", paths=list(paths), center_id=center_id,
                                    manifest=manifest, build=build))
            on_result(results[-1])
        except InputError as exc:  # the other files landed; clean them, then report
            failure = exc
    with progress("cleaning into silver"):
        results.append(run_step(spark, settings, "clean_variants", reference=reference))
    on_result(results[-1])
    if failure:
        raise failure
    if quality:
        _check(spark, settings, GENOMICS_GATES, progress, on_check)
    return results


def clinical(spark: SparkSession, settings: Settings, feed: str, paths: list[str], center_id: str, *,
             quality: bool = False, progress: Progress = _quiet, on_result: OnResult = _ignore,
             on_check: OnCheck = _ignore) -> list[JobResult]:
    """HL7 v2 or FHIR ingest into bronze, then ``build_clinical`` into the silver clinical model
    when the run landed rows, then (``quality``) the clinical gates.

    Args:
        feed: ``hl7`` or ``fhir``.
        paths: files or folders of one center (for HL7, also its MLLP landing zone).
        center_id: the sending center.
        quality: also validate the tables of ``CLINICAL_GATES`` (``QualityError`` when a critical
            expectation fails).
        progress: shows each step while it runs; ``on_result`` receives each step's result,
            ``on_check`` each gate's summary.

    Returns:
        The results of the steps that ran, in order.
    """
    with progress(f"ingesting {_FEED_NAMES[feed]} from {len(paths)} path(s)"):
        ingested = run_step(spark, settings, CLINICAL_INGEST[feed], paths=list(paths), center_id=center_id)
    on_result(ingested)
    results = [ingested]
    run_ids = landed_run_ids(results)
    if run_ids:
        with progress("building silver clinical tables"):
            results.append(run_step(spark, settings, "build_clinical", run_ids=run_ids))
        on_result(results[-1])
    if quality:
        _check(spark, settings, CLINICAL_GATES, progress, on_check)
    return results


def _check(spark: SparkSession, settings: Settings, gates: tuple[str, ...], progress: Progress,
           on_check: OnCheck) -> None:
    """Validate each gate of a pipeline in turn, as its DAG does between steps."""
    for gate in gates:
        with progress(f"validating {gate} ({len(gate_tables(gate))} table(s))"):
            summary = check(spark, settings, gate)
        on_check(gate, summary)
