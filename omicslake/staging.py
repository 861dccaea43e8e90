"""Files that Spark tasks write next to the lake for the driver to commit after the main write.

Sail does not cache a DataFrame, so a task that must produce two outputs (accepted rows and
rejects, or bronze rows and derived calls) writes the second one here, one Parquet file per
task, published by rename so a retried task replaces its own file. ``pyarrow.fs`` makes the
same code work on a folder, S3 or HDFS.
"""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from omicslake.errors import StorageError

HDFS_NEEDS = (
    "{uri}: pyarrow reaches HDFS through libhdfs, which needs a Hadoop client on this host: "
    "JAVA_HOME (a JVM), ARROW_LIBHDFS_DIR (the folder of libhdfs.so, else HADOOP_HOME/lib/native) "
    "and CLASSPATH=$(hadoop classpath --glob). Sail and delta-rs reach HDFS without them, but "
    "staging, curated DICOM copies and thumbnails go through pyarrow. ({err})"
)


def filesystem(uri: str):
    """``(pyarrow FileSystem, path)`` of ``uri``: a folder, S3 (AWS_* variables) or HDFS.

    pyarrow's HDFS error is a page of dlopen attempts; say instead what the host lacks.
    """
    try:
        return pafs.FileSystem.from_uri(uri)
    except OSError as exc:
        if urlparse(uri).scheme not in ("hdfs", "viewfs"):
            raise
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise StorageError(HDFS_NEEDS.format(uri=uri, err=first)) from exc


def folder(root_uri: str, key: str) -> str:
    return f"{root_uri.rstrip('/')}/{key}"


def write_table(root_uri: str, key: str, name: str, table: pa.Table) -> None:
    fs, root = filesystem(root_uri)
    target = f"{root}/{key}"
    fs.create_dir(target, recursive=True)
    tmp = f"{target}/.{name}.{uuid.uuid4().hex[:8]}.tmp"  # a re-run of the same task may overlap
    pq.write_table(table, tmp, filesystem=fs)
    fs.move(tmp, f"{target}/{name}")


class _Writers:
    """Parquet writers of one task, one file per table, appended to as rows come in."""

    def __init__(self, root_uri: str, key: str, name: str):
        self.fs, self.root = filesystem(root_uri)
        self.key, self.name = key, name
        self.open: dict[str, tuple[pq.ParquetWriter, str, str]] = {}

    def write(self, table: str, schema: pa.Schema, rows: list[dict]) -> None:
        if table not in self.open:
            target = f"{self.root}/{self.key}/{table}"
            self.fs.create_dir(target, recursive=True)
            tmp = f"{target}/.{self.name}.{uuid.uuid4().hex[:8]}.tmp"
            self.open[table] = (pq.ParquetWriter(tmp, schema, filesystem=self.fs), tmp, target)
        self.open[table][0].write_table(pa.Table.from_pylist(rows, schema=schema))

    def publish(self) -> None:
        for writer, tmp, target in self.open.values():
            writer.close()
            self.fs.move(tmp, f"{target}/{self.name}.parquet")

    def discard(self) -> None:
        for writer, tmp, _ in self.open.values():
            writer.close()
            self.fs.delete_file(tmp)


@contextmanager
def writers(root_uri: str, key: str, name: str):
    """Stage rows of several tables from one task under ``key/<table>/<name>.parquet``, each
    published by rename when the block ends, so a retried task replaces its own files and a
    failed one leaves none."""
    out = _Writers(root_uri, key, name)
    try:
        yield out
    except BaseException:
        out.discard()
        raise
    out.publish()


def _published(root_uri: str, key: str) -> list:
    fs, root = filesystem(root_uri)
    infos = fs.get_file_info(pafs.FileSelector(f"{root}/{key}", allow_not_found=True))
    return sorted((i for i in infos if i.base_name.endswith(".parquet") and not i.base_name.startswith(".")),
                  key=lambda i: i.base_name)


def files(root_uri: str, key: str) -> list[str]:
    """URIs of the published Parquet files under ``key`` (temp files are not listed)."""
    return [f"{folder(root_uri, key)}/{i.base_name}" for i in _published(root_uri, key)]


def read(root_uri: str, key: str) -> pa.Table | None:
    fs, _ = filesystem(root_uri)
    paths = [i.path for i in _published(root_uri, key)]
    return pa.concat_tables([pq.read_table(p, filesystem=fs) for p in paths]) if paths else None


def mark_done(root_uri: str, key: str, text: str) -> None:
    fs, root = filesystem(root_uri)
    fs.create_dir(f"{root}/{key}", recursive=True)
    with fs.open_output_stream(f"{root}/{key}/_SUCCESS") as out:
        out.write(text.encode())


def is_done(root_uri: str, key: str) -> bool:
    fs, root = filesystem(root_uri)
    return fs.get_file_info(f"{root}/{key}/_SUCCESS").type != pafs.FileType.NotFound


def clear(root_uri: str, key: str) -> None:
    fs, root = filesystem(root_uri)
    if fs.get_file_info(f"{root}/{key}").type != pafs.FileType.NotFound:
        fs.delete_dir(f"{root}/{key}")


def has_rows(uri: str) -> bool:
    """Whether a staged folder holds a non-empty Parquet file: an engine may write no file at
    all for an empty DataFrame (Sail does), so the folder alone proves nothing."""
    fs, path = filesystem(uri)
    found = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    return any(f.base_name.endswith(".parquet") and f.size for f in found)


def materialise(spark, df, uri: str):
    """Write ``df`` to Parquet at ``uri`` and read it back: cuts a long lineage (Sail caches
    nothing) and gives MERGE a plain source. An empty result reads back as an empty frame of
    the same schema."""
    df.write.mode("overwrite").parquet(uri)
    if has_rows(uri):
        return spark.read.schema(df.schema).parquet(uri)
    return spark.createDataFrame([], df.schema)
