"""Job code on real executors: a Spark standalone cluster on loopback (a master and two worker
JVMs, from the Spark that pyspark ships), the project built as a wheel and shipped with
``--py-files``, and ``infra/cluster_smoke.py`` submitted through the ``classic`` profile.

It proves that the engine-matrix transforms' Python work (pysam left-alignment and the HWE test
in ``mapInArrow``, the contig rule as a Python UDF) ran in Python workers under the executor
JVMs of both workers, with the project's code imported from the shipped zip, and that the rows
equal the embedded Sail engine's. No Delta: the delta-spark jars cannot be downloaded here.
Sail's ``local-cluster`` mode would not do: its workers live in one process.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
import pyspark
import pytest

from omicslake.net import free_port, wait_for_port

pytestmark = pytest.mark.slow

SPARK_HOME = Path(pyspark.__file__).parent
ROOT = Path(__file__).resolve().parent.parent
MASTER = "org.apache.spark.deploy.master.Master"
WORKER = "org.apache.spark.deploy.worker.Worker"


def _smoke_module():
    spec = importlib.util.spec_from_file_location("cluster_smoke", ROOT / "infra" / "cluster_smoke.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _spark_env(root: Path) -> dict[str, str]:
    """Everything on loopback; no REST submission port (it is fixed at 6066 otherwise). The
    in-process Sail session sets SPARK_CONNECT_MODE_ENABLED, which would turn the job's classic
    builder into a Connect client: it is not passed on."""
    inherited = {k: v for k, v in os.environ.items()
                 if k not in ("SPARK_CONNECT_MODE_ENABLED", "SPARK_REMOTE", "SPARK_LOCAL_REMOTE")}
    return {**inherited, "SPARK_HOME": str(SPARK_HOME), "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_PUBLIC_DNS": "127.0.0.1", "SPARK_LOCAL_DIRS": str(root / "local"),
            "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false",
            "SPARK_DAEMON_MEMORY": "256m",
            "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}


def _daemon(root: Path, name: str, cls: str, *args: str) -> subprocess.Popen:
    """One Spark daemon: spark-class execs the JVM, so the Popen pid is the JVM's."""
    log = open(root / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([str(SPARK_HOME / "bin" / "spark-class"), cls, *args], stdout=log,
                            stderr=subprocess.STDOUT, env=_spark_env(root), cwd=root)
    log.close()
    return proc


def _alive_workers(ui: int) -> int:
    try:
        state = httpx.get(f"http://127.0.0.1:{ui}/json/", timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return 0
    return sum(w["state"] == "ALIVE" for w in state["workers"])


def _stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM (a worker kills its executors on the way out), then SIGKILL what is left."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)


@contextmanager
def standalone_cluster(root: Path, workers: int = 2) -> Iterator[dict]:
    """A master and ``workers`` workers (1 core, 1 GB each) on 127.0.0.1, stopped on exit."""
    (root / "local").mkdir(parents=True)
    port, ui = free_port(), free_port()
    url = f"spark://127.0.0.1:{port}"
    master = _daemon(root, "master", MASTER, "--host", "127.0.0.1", "--port", str(port),
                     "--webui-port", str(ui))
    started = [master]
    try:
        wait_for_port(port, timeout=120)
        for i in range(workers):
            started.append(_daemon(root, f"worker{i}", WORKER, "--host", "127.0.0.1", "--webui-port",
                                   str(free_port()), "--cores", "1", "--memory", "1g",
                                   "--work-dir", str(root / f"work{i}"), url))
        deadline = time.monotonic() + 120
        while _alive_workers(ui) < workers:
            dead = [p.args[1] for p in started if p.poll() is not None]
            assert not dead and time.monotonic() < deadline, (
                f"cluster did not come up ({dead or 'timeout'}); see {root}/*.log")
            time.sleep(1)
        yield {"url": url, "master": master, "workers": started[1:], "root": root}
    finally:
        _stop(started[1:])
        _stop([master])


def _py_files(out: Path) -> Path:
    """Build the wheel as a deployment would, and ship it as .zip (PySpark adds only .zip, .egg
    and .jar py-files to the executors' sys.path; a wheel is a zip)."""
    uv = [shutil.which("uv")] if shutil.which("uv") else ["python3", "-m", "uv"]
    subprocess.run([*uv, "build", "--wheel", "--out-dir", str(out)], cwd=ROOT, check=True,
                   capture_output=True, timeout=300)
    [wheel] = out.glob("omicslake-*.whl")
    return Path(shutil.copy(wheel, wheel.with_suffix(".zip")))


def _submit(cluster: dict, py_files: Path, data: Path, out: Path) -> subprocess.CompletedProcess:
    root = cluster["root"]
    env = {**_spark_env(root), "OMICSLAKE_ENGINE": "classic", "OMICSLAKE_SPARK_MASTER": cluster["url"],
           "OMICSLAKE_HOME": str(root / "home"),
           "OMICSLAKE_SHUFFLE_PARTITIONS": "2"}  # one shuffle task per executor: tiny inputs
    cmd = [str(SPARK_HOME / "bin" / "spark-submit"), "--master", cluster["url"], "--py-files", str(py_files),
           "--driver-memory", "768m", "--conf", "spark.executor.memory=512m",
           "--conf", "spark.executor.cores=1", "--conf", "spark.cores.max=2",
           # start only once both executors are registered, so each stage's first wave uses both
           "--conf", "spark.scheduler.minRegisteredResourcesRatio=1.0",
           "--conf", "spark.scheduler.maxRegisteredResourcesWaitingTime=120s",
           str(ROOT / "infra" / "cluster_smoke.py"), "--data", str(data), "--out", str(out)]
    return subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True, timeout=600)


def _stray(pids: set[int], folder: Path, wait: float = 20.0) -> list[str]:
    """Processes of the cluster still alive after it stopped: a recorded pid that is still a JVM
    or Python, or anything whose command line names the cluster's folder. Python workers leave
    when their executor's pipe closes, so give them a moment."""
    deadline = time.monotonic() + wait
    while True:
        left = []
        for p in psutil.process_iter(["pid", "cmdline", "status"]):
            if p.info["status"] == psutil.STATUS_ZOMBIE or p.info["pid"] == os.getpid():
                continue
            cmd = " ".join(p.info["cmdline"] or [])
            ours = p.info["pid"] in pids and ("java" in cmd or "python" in cmd)
            if ours or str(folder) in cmd:
                left.append(f"{p.info['pid']} {cmd[:160]}")
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(1)


def _check_processes(report: dict, worker_pids: set[int], work_dirs: list[Path]) -> set[int]:
    """Every Python task ran under an executor JVM whose parent is one of our worker JVMs, not in
    the driver, with the project's code from the shipped zip; both workers got tasks."""
    driver = report["driver"]
    assert "spark-submit" in [c["role"] for c in driver["chain"]]
    seen_workers, pids = set(), {driver["pid"]}
    for proc in report["processes"]:
        chain = proc["chain"]
        assert driver["pid"] not in [c["pid"] for c in chain], proc
        roles = [c["role"] for c in chain]
        assert roles[-2:] == ["executor", "worker"] and roles[0] == "pyspark-daemon", roles
        assert chain[-1]["pid"] in worker_pids, (chain, worker_pids)
        seen_workers.add(chain[-1]["pid"])
        assert proc["code"].endswith(".zip/jobs/annotate_variants.py"), proc["code"]
        assert any(proc["code"].startswith(str(d)) for d in work_dirs), proc["code"]
        pids |= {c["pid"] for c in chain}
    assert seen_workers == worker_pids, f"only {seen_workers} of {worker_pids} ran Python tasks"
    return pids


def test_transforms_run_in_both_workers_executors_and_match_the_embedded_engine(spark, tmp_path):
    smoke = _smoke_module()
    data, out, times = tmp_path / "data", tmp_path / "report.json", {}
    t = time.perf_counter()
    smoke.make_inputs(data)
    py_files = _py_files(tmp_path / "dist")
    times["build wheel"] = time.perf_counter() - t
    t = time.perf_counter()
    with standalone_cluster(tmp_path / "cluster") as cluster:
        times["start master + 2 workers"] = time.perf_counter() - t
        worker_pids = {p.pid for p in cluster["workers"]}
        t = time.perf_counter()
        done = _submit(cluster, py_files, data, out)
        times["spark-submit"] = time.perf_counter() - t
        assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
        t = time.perf_counter()
    times["stop"] = time.perf_counter() - t
    report = json.loads(out.read_text())
    pids = _check_processes(report, worker_pids, [tmp_path / "cluster" / f"work{i}" for i in range(2)])
    pids |= worker_pids | {cluster["master"].pid}
    assert _stray(pids, tmp_path / "cluster") == []
    t = time.perf_counter()
    expected, _ = smoke.transforms(spark, data)
    times["same transforms on Sail"] = time.perf_counter() - t
    assert report["results"].keys() == expected.keys()
    for name, rows in expected.items():
        assert report["results"][name] == rows, name
    assert len(expected["hwe"]) == 240 and len(expected["left_align_problems"]) == 1
    print("cluster test timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items())
          + f"; transforms inside the job {report['seconds']} s")
