import pytest

from omicslake.errors import SettingsError
from omicslake.settings import load_settings


def test_defaults_put_lake_and_state_under_home(tmp_path):
    s = load_settings({"OMICSLAKE_HOME": str(tmp_path)})
    assert s.engine == "local"
    assert s.lake_root == f"{tmp_path}/lake"
    assert s.state_dir == tmp_path / "state"
    assert s.is_local_storage


def test_engine_is_checked():
    with pytest.raises(SettingsError, match="OMICSLAKE_ENGINE='sparky'"):
        load_settings({"OMICSLAKE_ENGINE": "sparky"})


def test_remote_needs_spark_remote():
    with pytest.raises(SettingsError, match="SPARK_REMOTE"):
        load_settings({"OMICSLAKE_ENGINE": "remote"})
    with pytest.raises(SettingsError, match="must start with sc://"):
        load_settings({"OMICSLAKE_ENGINE": "remote", "SPARK_REMOTE": "http://x:1"})
    s = load_settings({"OMICSLAKE_ENGINE": "remote", "SPARK_REMOTE": "sc://spark:15002"})
    assert s.spark_remote == "sc://spark:15002"


def test_uri_home_keeps_state_local(tmp_path):
    s = load_settings({"OMICSLAKE_HOME": "s3://lake-bucket/prod/", "OMICSLAKE_STATE_DIR": str(tmp_path)})
    assert s.lake_root == "s3://lake-bucket/prod/lake"
    assert not s.is_local_storage
    assert s.state_dir == tmp_path


def test_bad_scheme_and_missing_bucket():
    with pytest.raises(SettingsError, match="unsupported scheme 'ftp'"):
        load_settings({"OMICSLAKE_HOME": "ftp://host/x"})
    with pytest.raises(SettingsError, match="no bucket"):
        load_settings({"OMICSLAKE_HOME": "s3:///x"})


def test_s3_storage_options_come_from_aws_env(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9999")
    monkeypatch.setenv("AWS_ALLOW_HTTP", "true")
    s = load_settings({"OMICSLAKE_HOME": "s3://b/p"})
    opts = s.storage_options()
    assert opts["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9999"
    assert opts["AWS_ALLOW_HTTP"] == "true"
