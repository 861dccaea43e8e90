"""Shared fixtures: a throw-away lake and the engine under test.

``OMICSLAKE_TEST_ENGINE=classic`` runs the engine-matrix tests (pure DataFrame transforms) on
JVM Spark without Delta; the default runs everything on the embedded Sail engine.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_HOME = Path(tempfile.mkdtemp(prefix="omicslake-test-"))
os.environ["OMICSLAKE_HOME"] = str(_HOME)
os.environ["OMICSLAKE_ENGINE"] = "local"
os.environ.setdefault("OMICSLAKE_PSEUDONYM_KEY", "test-key-" + "0" * 40)
os.environ.setdefault("RUST_LOG", "warn")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

from lakes import TEST_ENGINE, own_lake  # noqa: E402  (after the environment above)

DATA = Path(__file__).parent / "data"


def pytest_collection_modifyitems(config, items):
    if TEST_ENGINE == "classic":
        skip = pytest.mark.skip(reason="classic run covers only engine_matrix tests")
        for item in items:
            if "engine_matrix" not in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def settings():
    from omicslake.settings import load_settings

    return load_settings()


@pytest.fixture(scope="session")
def spark(settings):
    """The engine under test: Sail (with Delta) or classic JVM Spark (no Delta)."""
    if TEST_ENGINE == "classic":
        from omicslake.session import classic_session

        session = classic_session(settings, require_delta=False)
        yield session
        session.stop()
        return
    from omicslake.session import get_spark

    yield get_spark(settings)


@pytest.fixture(scope="session")
def lake(spark, settings):
    """Delta I/O needs the local engine; the tables are created and registered."""
    if TEST_ENGINE != "local":
        pytest.skip("Delta I/O is tested on the local engine")
    return settings


@pytest.fixture()
def fresh_lake(tmp_path):
    """A lake of its own (own OMICSLAKE_HOME) on the shared embedded engine."""
    with own_lake(tmp_path / "home") as lake:
        yield lake
