"""Splink's Spark backend for the person-linkage model, safe under Spark Connect.

Splink's ``SparkAPI`` assumes a JVM session: it registers Scala UDFs from a jar and, to break
lineage to Parquet, asks ``spark._jsc`` for the checkpoint folder. A Spark Connect session (the
embedded Sail engine, or a cluster's Connect server) has no ``_jsc``, and ``persist`` does
nothing on Sail. ``ConnectSparkAPI`` registers no UDFs (the model uses none), breaks lineage to
Parquet under a staging folder of the lake (``omicslake.staging``) and removes that folder and
its temporary views on ``close()``. The same class works on a classic session.
"""

from __future__ import annotations

import logging

from splink.backends.spark import SparkAPI

from omicslake import staging

log = logging.getLogger(__name__)


class ConnectSparkAPI(SparkAPI):
    """``SparkAPI`` without the JVM: no jar UDFs, lineage broken by Parquet under
    ``staging.folder(staging_root, key)``."""

    def __init__(self, spark, staging_root: str, key: str):
        self.staging_root, self.staging_key = staging_root, key
        self._views: set[str] = set()
        self._wrote_parquet = False
        super().__init__(spark_session=spark, break_lineage_method="parquet",
                         register_udfs_automatically=False)

    @property
    def checkpoint_dir(self) -> str:
        return staging.folder(self.staging_root, self.staging_key)

    def _get_checkpoint_dir_path(self, spark_df) -> str:
        self._wrote_parquet = True  # Splink asks only to write the table there
        return self.checkpoint_dir  # never spark._jsc (absent under Spark Connect)

    def _break_lineage_and_repartition(self, spark_df, templated_name: str, physical_name: str):
        self._wrote_parquet = False
        out = super()._break_lineage_and_repartition(spark_df, templated_name, physical_name)
        if self._wrote_parquet and not out.columns:
            # Sail writes no file for an empty DataFrame, so reading it back has no columns
            out = self.spark.createDataFrame([], spark_df.schema)
        return out

    def _table_registration(self, input, table_name: str) -> None:
        super()._table_registration(input, table_name)
        self._views.add(table_name)

    def _cleanup_for_execute_sql(self, table, templated_name: str, physical_name: str):
        self._views.add(physical_name)
        return super()._cleanup_for_execute_sql(table, templated_name, physical_name)

    def close(self) -> None:
        """Drop the temporary views Splink made in the session and the Parquet it wrote."""
        for view in sorted(self._views):
            try:
                self.spark.catalog.dropTempView(view)
            except Exception as exc:  # a view the session already lost: nothing to release
                log.debug("could not drop view %s: %s", view, exc)
        self._views.clear()
        staging.clear(self.staging_root, self.staging_key)
