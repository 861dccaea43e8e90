import pytest

from omicslake.errors import EngineError
from omicslake.session import classic_session, delta_jars, get_spark
from omicslake.settings import load_settings


def test_classic_without_delta_jars_says_how_to_supply_them(monkeypatch, tmp_path):
    monkeypatch.delenv("OMICSLAKE_DELTA_JARS", raising=False)
    monkeypatch.delenv("OMICSLAKE_DELTA_FROM_MAVEN", raising=False)
    monkeypatch.setenv("SPARK_HOME", str(tmp_path))
    if delta_jars():
        pytest.skip("Delta jars are installed next to Spark here")
    s = load_settings({"OMICSLAKE_HOME": str(tmp_path), "OMICSLAKE_ENGINE": "classic"})
    with pytest.raises(EngineError) as err:
        classic_session(s)
    hints = ("OMICSLAKE_DELTA_JARS", "$SPARK_HOME/jars", "OMICSLAKE_DELTA_FROM_MAVEN",
             "OMICSLAKE_ENGINE=local")
    for hint in hints:
        assert hint in str(err.value)


def test_listed_jars_must_exist(monkeypatch):
    monkeypatch.setenv("OMICSLAKE_DELTA_JARS", "/nope/delta-spark_2.13-4.0.0.jar")
    with pytest.raises(EngineError, match="do not exist"):
        delta_jars()


def test_unreachable_remote_is_a_clear_error(tmp_path):
    s = load_settings({"OMICSLAKE_HOME": str(tmp_path), "OMICSLAKE_ENGINE": "remote",
                       "SPARK_REMOTE": "sc://127.0.0.1:1"})
    with pytest.raises(EngineError, match="cannot reach Spark Connect at SPARK_REMOTE=sc://127.0.0.1:1"):
        get_spark(s)


def test_remote_profile_against_a_standalone_sail_server(tmp_path):
    """OMICSLAKE_ENGINE=remote on a separate `sail spark server` process, as infra/ starts it."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from omicslake.net import free_port, wait_for_port

    if os.environ.get("OMICSLAKE_TEST_ENGINE", "local") != "local":
        pytest.skip("runs with the local suite")
    port = free_port()
    sail = Path(sys.executable).parent / "sail"
    server = subprocess.Popen([str(sail), "spark", "server", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        env = {**os.environ, "OMICSLAKE_HOME": str(tmp_path), "OMICSLAKE_ENGINE": "remote",
               "SPARK_REMOTE": f"sc://127.0.0.1:{port}"}
        run = [sys.executable, "-m", "omicslake.cli"]
        subprocess.run([sys.executable, "-m", "jobs.register_centers"],
                       env=env, check=True, capture_output=True, timeout=120)
        out = subprocess.run([*run, "tables", "--json"], env=env, capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        rows = {d["name"]: d["rows"] for d in map(json.loads, out.stdout.splitlines())}
        assert rows["ops.centers"] == 10 and rows["silver.variants"] == 0
        assert (tmp_path / "lake" / "ops" / "centers" / "_delta_log").is_dir()
    finally:
        server.terminate()
        server.wait(timeout=30)
