"""Table maintenance: compact small files, Z-order the genomic tables, vacuum and checkpoint.

Every ingest, MERGE and run record adds files, so a table fed daily ends up as thousands of
small files that slow every scan and every log replay. Per table, in this order, each step
committing at most once and nothing when there is nothing to do:

1. Cited tables (``gold.cohort`` and ``gold.cohort_<name>_features``, whose versions
   ``gold.cohort_versions`` records for papers) first get ``CITED_PROPERTIES``: a log retention
   of 100 years, since log cleanup (delta-rs, after a checkpoint) would otherwise drop the
   commits an old version is rebuilt from and VERSION AS OF would fail after 30 days; and no
   checkpoints, since Sail 0.7.2 cannot time-travel to a version between two checkpoints
   (``Missing commit file: expected version 0, found N-1``; delta-rs reads it fine) and writes
   one every 10 commits by default. So cited tables are not checkpointed here either.
2. Optimize. Tables in ``ZORDER`` are Z-ordered, but only in the partitions that got small
   files since the last run (a Z-order rewrites every file of a partition it is given).
   Partition columns cannot be Z-order columns (delta-rs refuses them, and within a partition
   they are constant), so ``contig`` is left to the partitioning and ``pos`` orders the files
   inside it. Every other table is compacted (delta-rs bins small files per partition).
3. Vacuum: files no longer referenced and older than the retention (168 h unless forced; see
   ``delta_ops.check_retention``). For cited tables, the files of every cited version are kept
   (delta-rs ``keep_versions``); an engine whose VACUUM cannot keep versions (delta-spark SQL)
   does not vacuum them at all. The files are listed first, so a table with nothing to delete
   gets no VACUUM START/END commits.
4. Checkpoint (not cited tables), so readers replay one Parquet file, not every JSON commit.

Each commit that loses a race with another writer is run again (``writes.retry_on_conflict``).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from omicslake.catalog import lake_tables, read_table
from omicslake.delta_ops import MIN_RETENTION_HOURS, PartitionFilter, adapter, check_retention
from omicslake.errors import OmicslakeError
from omicslake.runs import JobResult, main_for, track_run
from omicslake.settings import Settings
from omicslake.writes import retry_on_conflict
from schemas import COHORT_FEATURES, get_table

JOB = "maintain_tables"
STEPS = ("optimize", "vacuum", "checkpoint")
# Region queries (contig + pos range) and one-person queries (person_id) on genotypes.
ZORDER: dict[str, tuple[str, ...]] = {
    "silver.variants": ("pos",),
    "silver.genotypes": ("pos", "person_id"),
}
SMALL_FILE_BYTES = 32 * 1024 * 1024  # delta-rs writes optimized files of up to 100 MiB
CITED_PROPERTIES = {
    "delta.logRetentionDuration": "interval 36500 days",
    "delta.checkpointInterval": "1000000000",  # lift once Sail time-travels past checkpoints
}

log = logging.getLogger(__name__)


def cited_versions(spark: SparkSession, settings: Settings, table: str) -> list[int] | None:
    """Versions of ``table`` that ``gold.cohort_versions`` cites; None if it cites none of it."""
    if table == "gold.cohort":
        column, which = "version", F.lit(True)
    elif m := COHORT_FEATURES.match(table):
        column, which = "features_version", F.col("name") == m.group(1)
    else:
        return None
    rows = (read_table(spark, settings, "gold.cohort_versions")
            .where(which & F.col(column).isNotNull()).select(column).distinct().collect())
    return sorted(int(r[0]) for r in rows)


def zorder_filters(files: list[tuple[dict[str, Any], int]], partition_by: list[str],
                   small_bytes: int = SMALL_FILE_BYTES) -> list[list[PartitionFilter]]:
    """One filter list per Z-order commit, covering exactly the partitions that hold two or more
    small files (new data since the last run); ``[[]]`` means the whole table, ``[]`` nothing.

    Partitions are grouped on all but their last column, which is matched with ``in``: one
    commit per contig for genotypes rather than one per contig and person bucket.
    """
    small = Counter(tuple(p.get(c) for c in partition_by) for p, size in files if size < small_bytes)
    dirty = [key for key, n in small.items() if n >= 2]
    if not dirty:
        return []
    if not partition_by or any(v is None for key in dirty for v in key):
        return [[]]  # delta-rs filters cannot name a null partition value
    groups: dict[tuple, list[str]] = defaultdict(list)
    for key in sorted(dirty, key=lambda k: tuple(map(str, k))):
        groups[key[:-1]].append(str(key[-1]))
    lead, last = partition_by[:-1], partition_by[-1]
    return [[(c, "=", str(v)) for c, v in zip(lead, head, strict=True)] + [(last, "in", values)]
            for head, values in groups.items()]


def _files_moved(metrics: dict[str, Any]) -> tuple[int, int]:
    m = metrics.get("metrics", metrics)  # delta-spark nests them; delta-rs does not
    return int(m.get("numFilesRemoved") or 0), int(m.get("numFilesAdded") or 0)


def optimize_table(ad, name: str, partition_by: list[str],
                   zorder: tuple[str, ...] | None, whole: bool) -> dict[str, Any]:
    """Compact, or Z-order the partitions with new small files (every partition if ``whole``)."""
    if not zorder:
        removed, added = _files_moved(retry_on_conflict(lambda: ad.optimize(name), f"OPTIMIZE {name}"))
        return {"optimize_files_removed": removed, "optimize_files_added": added}
    clash = sorted(set(zorder) & set(partition_by))
    if clash:
        raise OmicslakeError(f"{name}: {clash} are partition columns and cannot be Z-order columns "
                             f"(partitioned by {partition_by})")
    groups = [[]] if whole else zorder_filters(ad.files(name), partition_by)
    removed = added = 0
    for filters in groups:
        metrics = retry_on_conflict(lambda f=filters: ad.optimize(name, list(zorder), f or None),
                                    f"Z-order {name}")
        moved = _files_moved(metrics)
        removed, added = removed + moved[0], added + moved[1]
    return {"zorder_by": ",".join(zorder), "zorder_commits": len(groups),
            "optimize_files_removed": removed, "optimize_files_added": added}


def vacuum_table(ad, name: str, hours: int, force: bool, dry_run: bool,
                 cited: list[int] | None) -> dict[str, Any]:
    """Delete unreferenced files older than ``hours``, sparing every cited version's files."""
    if cited is not None and not ad.keeps_versions:
        return {"vacuum": "skipped: cited versions, and this engine's VACUUM cannot keep them"}
    keep = cited or None
    listed = ad.vacuum(name, hours, dry_run=True, keep_versions=keep)
    if dry_run or not listed:
        return {"vacuum_files": len(listed), "vacuum": "dry run" if dry_run else "nothing to remove"}
    removed = retry_on_conflict(
        lambda: ad.vacuum(name, hours, dry_run=False, force=force, keep_versions=keep), f"VACUUM {name}")
    kept = f", kept versions {keep}" if keep else ""
    return {"vacuum_files": len(removed), "vacuum": f"removed (retention {hours} h{kept})"}


def maintain_table(spark: SparkSession, settings: Settings, ad, name: str, steps: tuple[str, ...],
                   retention_hours: int, force: bool, dry_run: bool,
                   zorder: tuple[str, ...] | None = None) -> dict[str, Any]:
    """All steps on one table; returns file counts and sizes before and after, and what ran."""
    try:
        before = ad.info(name)
    except OmicslakeError as exc:  # not created yet: nothing to maintain
        return {"status": f"skipped: {exc}"}
    report: dict[str, Any] = {"files_before": before.files, "bytes_before": before.size_bytes,
                              "version_before": before.version}
    cited = cited_versions(spark, settings, name)
    commits = bool({"optimize", "checkpoint"} & set(steps)) or ("vacuum" in steps and not dry_run)
    if cited is not None and commits and retry_on_conflict(
            lambda: ad.set_properties(name, CITED_PROPERTIES), f"protect {name}"):
        report["cited_properties"] = "set"
    if "optimize" in steps:
        report |= optimize_table(ad, name, before.partition_by, zorder or ZORDER.get(name),
                                 whole=zorder is not None)
    if "vacuum" in steps:
        report |= vacuum_table(ad, name, retention_hours, force, dry_run, cited)
    if "checkpoint" in steps:
        report["checkpoint"] = "skipped: cited versions" if cited is not None else "written"
        if cited is None:
            ad.checkpoint(name)
    after = ad.info(name)
    return report | {"files_after": after.files, "bytes_after": after.size_bytes,
                     "version_after": after.version, "rows": after.rows}


def describe(name: str, r: dict[str, Any]) -> str:
    """One line per table: file count and size before and after, and what was done."""
    if "files_after" not in r:
        return f"{name}: {r.get('status')}"
    text = (f"{name}: {r['files_before']} files {_size(r['bytes_before'])} -> {r['files_after']} "
            f"files {_size(r['bytes_after'])} (v{r['version_before']} -> v{r['version_after']})")
    if "zorder_by" in r:
        text += f"; Z-order by {r['zorder_by']} in {r['zorder_commits']} commit(s)"
    if "vacuum" in r:
        text += f"; vacuum: {r.get('vacuum_files', 0)} file(s) {r['vacuum']}"
    return text


def _size(n: float) -> str:
    unit = "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            break
        n /= 1024
    return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"


def run(spark: SparkSession, settings: Settings, tables: list[str] | None = None,
        retention_hours: int = MIN_RETENTION_HOURS, force: bool = False, dry_run: bool = False,
        steps: tuple[str, ...] | list[str] = STEPS, zorder: list[str] | None = None) -> JobResult:
    """Maintain the named tables (every lake table when none are named).

    ``zorder`` names Z-order columns for the named tables and rewrites them whole (the daily run
    leaves it unset: ``ZORDER`` tables, partitions with new files only).
    """
    names = list(tables) if tables else [t.full_name for t in lake_tables(settings)]
    for name in names:
        try:
            get_table(name)
        except KeyError as exc:
            raise OmicslakeError(str(exc.args[0])) from None
    if bad := sorted(set(steps) - set(STEPS)):
        raise OmicslakeError(f"unknown maintenance step(s) {bad}; steps are {', '.join(STEPS)}")
    if "vacuum" in steps and not dry_run:
        check_retention(retention_hours, force)  # before anything is touched
    params = {"tables": names, "retention_hours": retention_hours, "force": force,
              "dry_run": dry_run, "steps": list(steps), "zorder": zorder}
    ad = adapter(settings, spark)
    with track_run(spark, settings, JOB, params) as result:
        for name in names:
            report = maintain_table(spark, settings, ad, name, tuple(steps), retention_hours, force,
                                    dry_run, tuple(zorder) if zorder else None)
            result.details[name] = report
            result.per_input[name] = {k: v for k, v in report.items() if type(v) is int}
            log.info("%s", describe(name, report))
        result.inputs = names
    return result


def _args(p) -> None:
    p.add_argument("tables", nargs="*", help="layer.table names (default: every lake table)")
    p.add_argument("--retention-hours", type=int, default=MIN_RETENTION_HOURS,
                   help=f"vacuum files unreferenced for this long (at least {MIN_RETENTION_HOURS})")
    p.add_argument("--force", action="store_true", help="allow a retention below the floor")
    p.add_argument("--dry-run", action="store_true", help="vacuum only lists the files")


if __name__ == "__main__":
    main_for(run, _args, __doc__)
