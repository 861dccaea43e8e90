"""The rows of ingest_dicom, checked against the contracts in plain Python in the worker processes.

``fits`` must never pass a row pyarrow would refuse (else the task, building the Arrow table,
would fail where one instance should have been quarantined); rows it refuses get pyarrow's own
verdict. The mapped rows of the real corpus all fit, so pyarrow is not needed in the workers.
"""

from __future__ import annotations

import random
import warnings
from datetime import UTC, date, datetime

import pyarrow as pa
import pytest
from test_dicom_golden import CENTER, KEY, NOW, RUN, named_inputs

from connectors.dicom import DicomError, Source
from connectors.dicom_deid import DeidConfig
from jobs.ingest_dicom import STAGED, arrow_schema, fits, map_rows, plain_columns

ODD_VALUES = [None, "", "text", "caf\xe9", "\ud800", b"bytes", 0, 1, -1, 2**31 - 1, 2**31, -(2**31),
              -(2**31) - 1, 2**63, True, False, 1.5, date(2026, 1, 2), datetime(2026, 1, 2, tzinfo=UTC),
              datetime(2026, 1, 2), [1], {"a": 1}]


def _converts(row: dict, schema: pa.Schema) -> bool:
    try:
        pa.RecordBatch.from_pylist([row], schema=schema)
    except Exception:
        return False
    return True


@pytest.mark.parametrize("table", [t for _, t in STAGED])
def test_a_row_that_fits_is_one_pyarrow_converts(table):
    schema = arrow_schema(table)
    columns = plain_columns(schema)
    rnd = random.Random(table)
    fitting = 0
    for _ in range(3000):
        row = {f.name: None for f in schema}
        for f in rnd.sample(list(schema), rnd.randint(1, 3)):  # a few columns set, oddly or not
            row[f.name] = rnd.choice(ODD_VALUES)
        if fits(row, columns):
            assert _converts(row, schema), row
            fitting += 1
    assert 150 < fitting < 2850  # both kinds were tried


def test_every_mapped_row_of_the_corpus_fits():
    cfg = DeidConfig(KEY)
    columns = {name: plain_columns(arrow_schema(table)) for name, table in STAGED}
    mapped = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, data in named_inputs().items():
            try:
                m = map_rows(Source(name, data), cfg, KEY, CENTER, RUN, "/c", "/c", NOW)
            except DicomError:
                continue
            assert fits(m.bronze, columns["bronze"]) and fits(m.silver, columns["silver"]), name
            mapped += 1
    assert mapped > 50
