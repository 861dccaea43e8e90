#!/usr/bin/env bash
# Run one job on classic JVM Spark: infra/spark-submit-job.sh jobs/clean_variants.py [ARGS...]
set -euo pipefail
: "${OMICSLAKE_DELTA_JARS:?comma-separated delta-spark + delta-storage jars}"
JOB="$1"; shift
OMICSLAKE_ENGINE=classic exec spark-submit --jars "$OMICSLAKE_DELTA_JARS" \
  --conf spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension \
  --conf spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog \
  "$JOB" "$@"
