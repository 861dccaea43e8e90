"""One SparkSession factory for the three engine profiles of DESIGN.md."""

from __future__ import annotations

import glob
import logging
import os
import socket
import threading
from pathlib import Path
from urllib.parse import urlparse

from pyspark.sql import SparkSession

from omicslake.errors import EngineError
from omicslake.settings import Settings

log = logging.getLogger(__name__)

_lock = threading.Lock()
_server = None  # the embedded Sail server, one per process


def start_local_server(port: int = 0, ip: str = "127.0.0.1"):
    """Start (once per process) the embedded Sail Spark Connect server; return (host, port)."""
    global _server
    with _lock:
        if _server is None or port:
            os.environ.setdefault("RUST_LOG", "warn")
            try:
                from pysail.spark import SparkConnectServer
            except ImportError as exc:  # pragma: no cover - dependency is locked
                raise EngineError("pysail is not installed; run `make install`") from exc
            server = SparkConnectServer(ip=ip, port=port)
            server.start(background=True)
            if port:
                return server, server.listening_address
            _server = server
        return _server, _server.listening_address


def delta_jars() -> list[str]:
    """Delta Lake jars found next to Spark, or listed in OMICSLAKE_DELTA_JARS."""
    listed = [j for j in os.environ.get("OMICSLAKE_DELTA_JARS", "").split(",") if j.strip()]
    missing = [j for j in listed if not Path(j).is_file()]
    if missing:
        raise EngineError(f"OMICSLAKE_DELTA_JARS lists files that do not exist: {missing}")
    if listed:
        return listed
    import pyspark

    dirs = [Path(pyspark.__file__).parent / "jars"]
    if os.environ.get("SPARK_HOME"):
        dirs.append(Path(os.environ["SPARK_HOME"]) / "jars")
    found = [j for d in dirs for j in glob.glob(str(d / "delta-spark_*.jar"))]
    return found


def classic_session(settings: Settings, require_delta: bool = True) -> SparkSession:
    """JVM PySpark for spark-submit on YARN/Kubernetes; Delta needs its jars on the classpath."""
    builder = (
        SparkSession.builder.master(settings.spark_master)
        .appName("omicslake")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", os.environ.get("OMICSLAKE_SHUFFLE_PARTITIONS", "8"))
        .config("spark.sql.session.timeZone", "UTC")
    )
    if require_delta:
        jars = delta_jars()
        use_maven = os.environ.get("OMICSLAKE_DELTA_FROM_MAVEN") == "1"
        if not jars and not use_maven:
            raise EngineError(
                "OMICSLAKE_ENGINE=classic needs the Delta Lake jars (delta-spark_2.13 and "
                "delta-storage, version 4.x matching Spark 4.2) and none were found. Supply "
                "them one of three ways: put them in $SPARK_HOME/jars on the cluster; list "
                "them in OMICSLAKE_DELTA_JARS=/path/delta-spark_2.13-4.x.jar,/path/"
                "delta-storage-4.x.jar; or set OMICSLAKE_DELTA_FROM_MAVEN=1 on a machine that "
                "reaches Maven Central. Or use OMICSLAKE_ENGINE=local (no JVM needed)."
            )
        builder = builder.config(
            "spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension"
        ).config(
            "spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog"
        )
        if jars:
            builder = builder.config("spark.jars", ",".join(jars))
        else:
            from delta import configure_spark_with_delta_pip

            builder = configure_spark_with_delta_pip(builder)
    try:
        return builder.getOrCreate()
    except Exception as exc:
        raise EngineError(f"could not start JVM Spark ({settings.spark_master}): {exc}") from exc


def _probe(url: str, timeout: float = 5.0) -> None:
    """Fail fast: the Connect client otherwise retries an unreachable endpoint for minutes."""
    parsed = urlparse(url.replace("sc://", "http://", 1))
    host, port = parsed.hostname or "localhost", parsed.port or 15002
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        raise EngineError(
            f"cannot reach Spark Connect at SPARK_REMOTE={url} ({host}:{port}: {exc.strerror or exc}); "
            "start the server (for example `omicslake serve --port N`) or fix SPARK_REMOTE"
        ) from exc


def get_spark(settings: Settings, register: bool = True) -> SparkSession:
    """Return a session for the configured engine, with every ``layer.table`` registered."""
    if settings.engine == "local":
        _, (_, port) = start_local_server()
        spark = SparkSession.builder.remote(f"sc://127.0.0.1:{port}").getOrCreate()
    elif settings.engine == "remote":
        _probe(settings.spark_remote)
        try:
            spark = SparkSession.builder.remote(settings.spark_remote).getOrCreate()
            spark.sql("SELECT 1").collect()
        except Exception as exc:
            raise EngineError(
                f"cannot reach Spark Connect at SPARK_REMOTE={settings.spark_remote}: {exc}"
            ) from exc
    else:
        spark = classic_session(settings)
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    if register:
        from omicslake.catalog import ensure_tables

        ensure_tables(spark, settings)
    return spark


def parallelism(spark: SparkSession) -> int:
    """Task slots of the engine, for sizing fan-outs: ``OMICSLAKE_PARALLELISM`` when set, else
    ``spark.default.parallelism`` where the engine reports it (classic Spark, a Spark Connect
    cluster), else the cores of this machine, where the embedded Sail engine runs."""
    if os.environ.get("OMICSLAKE_PARALLELISM"):
        return max(1, int(os.environ["OMICSLAKE_PARALLELISM"]))
    try:
        return max(1, int(spark.conf.get("spark.default.parallelism")))
    except Exception:  # Sail and a fresh Connect session do not set it
        pass
    context = getattr(spark, "_sc", None)  # classic sessions only
    if context is not None:
        return max(1, context.defaultParallelism)
    return os.cpu_count() or 2
