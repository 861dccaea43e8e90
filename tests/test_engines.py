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
