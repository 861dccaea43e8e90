"""Great Expectations suites per table.

Every suite starts from the table contract (required columns are not null, keys are unique)
and adds the table's own rules. ``meta["critical"]`` marks expectations whose failure stops
the pipeline; the others are recorded in ``ops.quality_results`` as warnings.
"""

from __future__ import annotations

import great_expectations as gx
from great_expectations.expectations import Expectation

from schemas import Table, get_table

E = gx.expectations

DNA = r"^[ACGTN]+$"


def _extra(table: str) -> list[Expectation]:
    rules: dict[str, list[Expectation]] = {
        "bronze.vcf_variants": [
            E.ExpectColumnValuesToBeBetween(column="pos", min_value=1, meta={"critical": True}),
            E.ExpectColumnValuesToMatchRegex(column="ref", regex=DNA, meta={"critical": True}),
        ],
        "silver.variants": [
            E.ExpectColumnValuesToBeBetween(column="pos", min_value=1, meta={"critical": True}),
            E.ExpectColumnValuesToMatchRegex(column="ref", regex=DNA, meta={"critical": True}),
            E.ExpectColumnValuesToMatchRegex(column="alt", regex=DNA, meta={"critical": True}),
            E.ExpectColumnValuesToBeInSet(column="build", value_set=["GRCh37", "GRCh38", "NA"]),
        ],
        "silver.genotypes": [
            E.ExpectColumnValuesToBeBetween(column="alt_count", min_value=1, meta={"critical": True}),
            E.ExpectColumnValuesToBeBetween(column="gq", min_value=0, max_value=99),
            E.ExpectColumnValuesToBeBetween(column="dp", min_value=0),
        ],
        "ops.centers": [
            E.ExpectColumnValuesToBeInSet(
                column="tier", value_set=["national", "provincial", "city", "county"],
                meta={"critical": True},
            ),
        ],
        "ops.ingest_runs": [
            E.ExpectColumnValuesToBeInSet(
                column="status", value_set=["succeeded", "skipped", "failed"], meta={"critical": True}
            ),
        ],
        "gold.cohort": [E.ExpectTableRowCountToBeBetween(min_value=1)],
    }
    return rules.get(table, [])


def contract_expectations(table: Table) -> list[Expectation]:
    critical = table.layer in ("silver", "gold", "ops")
    out: list[Expectation] = [
        E.ExpectColumnValuesToNotBeNull(column=c, meta={"critical": critical})
        for c in table.required_columns
    ]
    if len(table.keys) == 1:
        out.append(E.ExpectColumnValuesToBeUnique(column=table.keys[0], meta={"critical": critical}))
    elif len(table.keys) > 1:
        out.append(E.ExpectCompoundColumnsToBeUnique(column_list=list(table.keys),
                                                     meta={"critical": critical}))
    return out


def suite_for(name: str) -> gx.ExpectationSuite:
    table = get_table(name)
    suite = gx.ExpectationSuite(name=name)
    for exp in [*contract_expectations(table), *_extra(name)]:
        suite.add_expectation(exp)
    return suite
