"""Ingest VCF/BCF files into ``bronze.vcf_variants``, quarantine bad records, upsert samples.

Each input is identified by its sha256; an input whose checksum already landed is skipped, so
re-running the same files changes nothing. A file is split into chunks (genomic regions when
it is indexed, byte ranges when it is plain text, see ``connectors.vcf_chunks``) and each chunk
is read and parsed by one Spark task (``mapInArrow``); the driver reads only headers and
manifests. Each file is one atomic bronze commit: a file that turns out truncated or corrupt
part-way commits nothing, and the other files still land.

Rejected records are written by the tasks to a staging folder next to the lake, and moved to
``quarantine.vcf`` after the bronze commit, so each file is parsed once.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from datetime import UTC, datetime

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession

from connectors.manifest import check_samples, land_samples, persons_of, read_manifest
from connectors.vcf import VcfHeader, read_header
from connectors.vcf_carriers import calls_staging_root
from connectors.vcf_chunks import Chunk, locate_lines, plan_chunks, read_chunk
from omicslake import staging
from omicslake.checksums import sha256_file
from omicslake.errors import InputError
from omicslake.ingest import Source, expand_inputs, pending
from omicslake.quarantine import Rejected, quarantine_row, quarantine_rows
from omicslake.runs import JobResult, main_for, track_run
from omicslake.session import parallelism
from omicslake.settings import Settings
from omicslake.writes import append, landed_checksums, merge_new
from schemas import get_table

JOB = "ingest_vcf"
VCF_SUFFIXES = (".vcf", ".vcf.gz", ".vcf.bgz", ".bcf")
TASK_SCHEMA = ("path string, checksum string, header_json string, center_id string, run_id string, "
               "chunk_id int, chunk_json string, staging string, persons_json string, calls_staging string, "
               "tally_staging string")
BLOCK_BYTES = 8 << 20


def bronze_arrow_schema() -> pa.Schema:
    return get_table("bronze.vcf_variants").arrow_schema()


def quarantine_arrow_schema() -> pa.Schema:
    return get_table("quarantine.vcf").arrow_schema()


def staging_root(settings: Settings) -> str:
    return f"{settings.lake_root}/_staging/vcf"


def genotypes_arrow_schema() -> pa.Schema:
    return get_table("silver.genotypes").arrow_schema()


def tally_staging_root(settings: Settings) -> str:
    """Per chunk: records per silver destination or set-aside rule, and the header gaps seen."""
    return f"{settings.lake_root}/_staging/vcf_tally"


TALLY_SCHEMA = pa.schema([("kind", pa.string()), ("name", pa.string()), ("records", pa.int64())])


def _blocks(path: str, chunk: Chunk, header_lines: int):
    lines, numbers, size = [], [], 0
    for lineno, line in read_chunk(path, chunk, header_lines):
        lines.append(line)
        numbers.append(lineno)
        size += len(line)
        if size >= BLOCK_BYTES:
            yield lines, numbers
            lines, numbers, size = [], [], 0
    if lines:
        yield lines, numbers


def parse_chunks(batches):
    """mapInArrow body: one chunk per row in, bronze rows out; rejects go to staging."""
    schema = bronze_arrow_schema()
    qschema = quarantine_arrow_schema()
    now = datetime.now(UTC)
    for batch in batches:
        for task in batch.to_pylist():
            try:
                yield from _parse_task(task, schema, qschema, now)
            except InputError:
                raise
            except Exception as exc:  # content no reader path foresaw: the file fails, not the job
                raise InputError(f"{task['path']}: could not be read ({type(exc).__name__}: {exc})") from exc


def _parse_task(task: dict, schema: pa.Schema, qschema: pa.Schema, now: datetime):
    import json
    from collections import Counter

    from connectors.vcf_arrow import parse_lines
    from connectors.vcf_carriers import carrier_rows, record_destinations

    gtype = schema.field("genotypes").type
    header = VcfHeader.from_json(task["header_json"])
    chunk = Chunk(**json.loads(task["chunk_json"]))
    persons = json.loads(task["persons_json"]) if task["persons_json"] else None
    calls = _CallsWriter(task) if persons else None
    rejected, gaps, destinations = [], set(), Counter()
    for lines, numbers in _blocks(task["path"], chunk, header.header_lines):
        cols, kept, rej = parse_lines(lines, numbers, header, gtype, gaps)
        rejected += rej
        n = len(kept)
        if not n:
            continue
        destinations.update(record_destinations(cols))
        if calls is not None:
            calls.write(carrier_rows(cols, header.samples, persons, header.build,
                                     task["center_id"], task["checksum"], task["run_id"]))
        cols.update(
            line=pa.array([numbers[i] for i in kept], pa.int64()),
            build=pa.array([header.build] * n, pa.string()),
            center_id=pa.array([task["center_id"]] * n, pa.string()),
            source_uri=pa.array([task["path"]] * n, pa.string()),
            source_checksum=pa.array([task["checksum"]] * n, pa.string()),
            ingest_run_id=pa.array([task["run_id"]] * n, pa.string()),
            ingested_at=pa.array([now] * n, pa.timestamp("us", tz="UTC")),
        )
        yield pa.RecordBatch.from_arrays([cols[f.name] for f in schema], schema=schema)
    if rejected:
        _stage_rejects(task, rejected, qschema, now)
    _stage_tally(task, destinations, gaps)
    if calls is not None:
        calls.close()


class _CallsWriter:
    """Streams one chunk's carrier rows to a staged Parquet file, published by rename."""

    def __init__(self, task: dict):
        self.task, self.writer, self.schema = task, None, genotypes_arrow_schema()
        self.fs, root = staging.filesystem(task["calls_staging"])
        self.folder = f"{root}/{task['checksum']}"
        self.final = f"{self.folder}/chunk-{task['chunk_id']:05d}.parquet"
        self.tmp = f"{self.folder}/.chunk-{task['chunk_id']:05d}.parquet.tmp"

    def write(self, table: pa.Table | None) -> None:
        import pyarrow.parquet as pq

        if table is None or not table.num_rows:
            return
        table = pa.table([table.column(f.name).cast(f.type) for f in self.schema], schema=self.schema)
        if self.writer is None:
            self.fs.create_dir(self.folder, recursive=True)
            self.writer = pq.ParquetWriter(self.tmp, self.schema, filesystem=self.fs)
        self.writer.write_table(table)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.fs.move(self.tmp, self.final)


def _stage_rejects(task: dict, rejected: list[Rejected], qschema: pa.Schema, now: datetime) -> None:
    unknown = {r.raw for r in rejected if r.line is None}
    lines = locate_lines(task["path"], unknown) if unknown else {}
    prov = {"center_id": task["center_id"], "source_uri": task["path"], "source_checksum": task["checksum"],
            "ingest_run_id": task["run_id"]}
    rows = []
    for r in rejected:
        line = r.line if r.line is not None else lines.get(r.raw)
        where = f"line {line}" if line else "record " + "\t".join(r.raw.split("\t")[:2])
        rows.append(quarantine_row(replace(r, location=where, line=line), prov, now))
    staging.write_table(task["staging"], task["checksum"], f"chunk-{task['chunk_id']:05d}.parquet",
                        pa.Table.from_pylist(rows, schema=qschema))


def _stage_tally(task: dict, destinations, gaps: set[str]) -> None:
    rows = [("destination", k, v) for k, v in destinations.items()] + [("gap", g, 0) for g in gaps]
    staging.write_table(task["tally_staging"], task["checksum"], f"chunk-{task['chunk_id']:05d}.parquet",
                        pa.Table.from_pylist([dict(zip(TALLY_SCHEMA.names, r, strict=True)) for r in rows],
                                             schema=TALLY_SCHEMA))


def staged_tally(settings: Settings, checksum: str) -> tuple[dict[str, int], list[str]]:
    """Records per destination (silver table or set-aside rule) and the header gaps of one source."""
    table = staging.read(tally_staging_root(settings), checksum)
    counts: dict[str, int] = {}
    gaps: set[str] = set()
    for r in table.to_pylist() if table is not None else []:
        if r["kind"] == "gap":
            gaps.add(r["name"])
        else:
            counts[r["name"]] = counts.get(r["name"], 0) + r["records"]
    return dict(sorted(counts.items())), sorted(gaps)


def staged_rejects(settings: Settings, checksum: str) -> pa.Table | None:
    return staging.read(staging_root(settings), checksum)


def clear_staging(settings: Settings, checksum: str, root_uri: str | None = None) -> None:
    staging.clear(root_uri or staging_root(settings), checksum)


def parsed_records(spark: SparkSession, tasks: list[dict]) -> DataFrame:
    plan = spark.createDataFrame(tasks, TASK_SCHEMA).repartition(max(1, len(tasks)), "chunk_id")
    return plan.mapInArrow(parse_chunks, get_table("bronze.vcf_variants").spark_schema())


def _task_error(path: str, exc: Exception) -> InputError:
    """The task's own message (file and reason), not the engine's stack of wrappers."""
    text = str(exc)
    m = re.search(r"InputError: ([^\n]+)", text)
    return InputError(m.group(1) if m else f"{path}: could not be parsed ({text.splitlines()[0][:300]})")


def commit_rejects(spark: SparkSession, settings: Settings, checksum: str) -> int:
    """Move staged rejects of one input into quarantine (once), then clear the staging."""
    staged = staged_rejects(settings, checksum)
    if staged is not None and not landed_checksums(spark, settings, "quarantine.vcf", [checksum]):
        append(spark.createDataFrame(staged), settings, "quarantine.vcf")
    clear_staging(settings, checksum)
    return 0 if staged is None else staged.num_rows


def header_row(header: VcfHeader, path: str, checksum: str, center_id: str, run_id: str,
               records: dict[str, int] | None = None, quarantined: int | None = None,
               gaps: list[str] | None = None) -> dict:
    """The bronze.vcf_headers row; ``records`` (per destination) and ``quarantined`` account for
    every data line of the file, and ``gaps`` are the header gaps read past, once each."""
    import json

    from connectors.vcf_chunks import file_format

    read = None if records is None or quarantined is None else sum(records.values()) + quarantined
    return {
        "warnings": gaps, "records_read": read, "records_quarantined": quarantined,
        "records_by_destination": records,
        "samples": header.samples,
        "contigs": [{"name": k, "length": v} for k, v in header.contigs.items()],
        "build": header.build, "file_format": file_format(path),
        "info_json": json.dumps({k: vars(v) for k, v in header.info.items()}, sort_keys=True),
        "format_json": json.dumps({k: vars(v) for k, v in header.formats.items()}, sort_keys=True),
        "meta": header.meta, "filters": header.filters, "center_id": center_id, "source_uri": path,
        "source_checksum": checksum,
        "ingest_run_id": run_id, "ingested_at": datetime.now(UTC).replace(tzinfo=None),
    }


def record_header(spark: SparkSession, settings: Settings, row: dict) -> None:
    """One row per source in bronze.vcf_headers (MERGE on the checksum: written once)."""
    df = spark.createDataFrame([row], get_table("bronze.vcf_headers").spark_schema())
    merge_new(spark, settings, df, "bronze.vcf_headers")


def ingest_file(spark: SparkSession, settings: Settings, result: JobResult, path: str, checksum: str,
                header: VcfHeader, center_id: str, persons: list[str | None] | None = None) -> None:
    """Parse one file into bronze (one commit); with ``persons`` (from the manifest, per sample
    column) the tasks also stage its non-reference calls for clean_variants."""
    # enough chunks for every core, and small enough that no task holds much of a big file
    target = max(4 * parallelism(spark), -(-os.path.getsize(path) // (16 << 20)))
    chunks = plan_chunks(path, header.contigs, target)
    roots = (staging_root(settings), calls_staging_root(settings), tally_staging_root(settings))
    for root in roots:
        clear_staging(settings, checksum, root)
    tasks = [{"path": path, "checksum": checksum, "header_json": header.to_json(), "center_id": center_id,
              "run_id": result.run_id, "chunk_id": i, "chunk_json": _json(c.to_dict()),
              "staging": staging_root(settings),
              "persons_json": _json(persons) if persons else None,
              "calls_staging": calls_staging_root(settings),
              "tally_staging": tally_staging_root(settings)} for i, c in enumerate(chunks)]
    try:
        append(parsed_records(spark, tasks), settings, "bronze.vcf_variants")
    except Exception as exc:
        for root in roots:
            clear_staging(settings, checksum, root)
        if isinstance(exc, InputError):
            raise
        raise _task_error(path, exc) from exc
    records, gaps = staged_tally(settings, checksum)
    quarantined = commit_rejects(spark, settings, checksum)
    record_header(spark, settings, header_row(header, path, checksum, center_id, result.run_id,
                                              records, quarantined, gaps))
    clear_staging(settings, checksum, tally_staging_root(settings))
    if persons:
        staging.mark_done(calls_staging_root(settings), checksum, result.run_id)
    result.details.setdefault("chunks", {})[path] = len(chunks)
    result.per_input[path] = {"read": sum(records.values()) + quarantined, "quarantined": quarantined,
                              **records}
    for gap in gaps:
        result.warnings.append(f"{path}: {gap}")


def finish_landed(spark: SparkSession, settings: Settings, path: str, checksum: str, build: str | None,
                  center_id: str, run_id: str, in_bronze: bool) -> None:
    """Complete what an interrupted earlier run of a landed source may have left undone."""
    if in_bronze and not landed_checksums(spark, settings, "bronze.vcf_headers", [checksum]):
        row = header_row(read_header(path, build), path, checksum, center_id, run_id)
        record_header(spark, settings, row)
    commit_rejects(spark, settings, checksum)


def _json(d: dict) -> str:
    import json

    return json.dumps(d)


def _manifest_build(manifest: str | None, rows, build: str | None) -> str | None:
    """The build the manifest names when the header does not (one build per manifest)."""
    if build is not None or not rows:
        return build
    builds = {r.build for r in rows if r.build}
    if len(builds) > 1:
        raise InputError(f"manifest {manifest}: samples on different builds {sorted(builds)}; "
                         "send one manifest per build")
    return builds.pop() if builds else None


def _headers(todo: list[Source], build: str | None, manifest: str | None, manifest_rows,
             unreadable: list[tuple[Source, Rejected]], failed: list[str]) -> list[tuple[Source, VcfHeader]]:
    """The header of each pending file; an unreadable one is quarantined, one whose samples the
    manifest does not match fails the run (the batch's own metadata is wrong)."""
    out = []
    for s in todo:
        try:
            header = read_header(s.path, build)
        except InputError as exc:
            unreadable.append((s, Rejected(str(exc))))
            continue
        if manifest_rows is not None:
            try:
                check_samples(manifest_rows, header.samples, s.path, manifest)
            except InputError as exc:
                failed.append(str(exc))
                continue
        out.append((s, header))
    return out


def _quarantine_files(spark: SparkSession, settings: Settings, result: JobResult,
                      unreadable: list[tuple[Source, Rejected]]) -> None:
    prov = {"center_id": result.center_id, "ingest_run_id": result.run_id}
    rows = [quarantine_row(r, {**prov, "source_uri": s.path, "source_checksum": s.checksum})
            for s, r in unreadable]
    quarantine_rows(spark, settings, "quarantine.vcf", rows)
    for s, r in unreadable:
        result.per_input[s.path] = {"read": 1, "quarantined": 1}
        result.warnings.append(f"quarantined whole file: {r.reason}")


def run(spark: SparkSession, settings: Settings, paths: list[str], center_id: str,
        manifest: str | None = None, build: str | None = None) -> JobResult:
    """Ingest VCF/BCF files of one center; returns counts (read = accepted + quarantined)."""
    files = expand_inputs(paths, VCF_SUFFIXES)
    if not files:
        raise InputError(f"no VCF/BCF files found in {paths}")
    params = {"paths": files, "center_id": center_id, "manifest": manifest, "build": build}
    with track_run(spark, settings, JOB, params, center_id) as result:
        manifest_rows = read_manifest(manifest) if manifest else None
        build = _manifest_build(manifest, manifest_rows, build)
        todo = pending(spark, settings, result, files, ("bronze.vcf_variants", "quarantine.vcf"))
        in_bronze = landed_checksums(spark, settings, "bronze.vcf_variants", result.checksums)
        for f, checksum in zip(files, result.checksums, strict=True):
            if f in result.skipped_inputs:
                finish_landed(spark, settings, f, checksum, build, center_id, result.run_id,
                              checksum in in_bronze)
        unreadable: list[tuple[Source, Rejected]] = []
        failed: list[str] = []
        headers = _headers(todo, build, manifest, manifest_rows, unreadable, failed)
        if manifest and (headers or not failed):
            result.details["samples"] = land_samples(spark, settings, manifest, center_id,
                                                     sha256_file(manifest), build)
        persons = persons_of(settings, manifest_rows, center_id) if manifest_rows else {}
        for s, header in headers:
            try:
                ingest_file(spark, settings, result, s.path, s.checksum, header, center_id,
                            [persons.get(x) for x in header.samples] if persons else None)
            except InputError as exc:
                unreadable.append((s, Rejected(str(exc))))
        _quarantine_files(spark, settings, result, unreadable)
        _count(result)
        result.details["files"] = len(headers) - len(unreadable) - len(failed)
        if failed:
            raise InputError("; ".join(failed))
    return result


def _count(result: JobResult) -> None:
    """Counted one way, from what the tasks tallied per file (no scan of the tables after)."""
    result.rows_quarantined = sum(c["quarantined"] for c in result.per_input.values())
    result.rows_read = result.rows_written = sum(c["read"] for c in result.per_input.values())
    result.rows_accepted = result.rows_read - result.rows_quarantined


def _args(p) -> None:
    p.add_argument("paths", nargs="+", help="VCF files or folders")
    p.add_argument("--center", dest="center_id", required=True, help="sending center id")
    p.add_argument("--manifest", help="sample manifest CSV/TSV")
    p.add_argument("--build", help="reference build when the header does not say (GRCh37/GRCh38)")


if __name__ == "__main__":
    main_for(run, _args, __doc__)
