import pytest

from omicslake.session import parallelism


@pytest.mark.engine_matrix
def test_parallelism_follows_the_setting_then_the_engine(spark, monkeypatch):
    import os

    monkeypatch.setenv("OMICSLAKE_PARALLELISM", "7")
    assert parallelism(spark) == 7
    monkeypatch.delenv("OMICSLAKE_PARALLELISM")
    n = parallelism(spark)
    context = getattr(spark, "_sc", None)
    assert n == (context.defaultParallelism if context is not None else os.cpu_count())
