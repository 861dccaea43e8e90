#!/usr/bin/env bash
# Run one omicslake job on classic JVM Spark (Kubernetes, YARN or standalone), with Delta Lake:
#   make wheel
#   infra/spark-submit-job.sh --master k8s://https://API:443 --deploy-mode cluster \
#       --conf spark.kubernetes.container.image=REGISTRY/omicslake-spark:0.1.0-spark4.2.0 \
#       jobs/clean_variants.py [JOB ARGS...]
# The job's code reaches the driver and executors as dist/omicslake-*.zip (--py-files: PySpark puts
# only .zip/.egg/.jar on the executors' sys.path, not .whl); their Python must hold the locked
# dependencies (infra/docker/spark.Dockerfile). Delta 4.4.1 is built for Spark 4.2 (delta-spark_4.2).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
PACKAGES="io.delta:delta-spark_4.2_2.13:4.4.1,org.apache.hadoop:hadoop-aws:3.5.0"
PY_FILES="${OMICSLAKE_PY_FILES:-$(ls "$HERE"/../dist/omicslake-*.zip 2>/dev/null | tail -n 1)}"
: "${PY_FILES:?no dist/omicslake-*.zip: run make wheel, or set OMICSLAKE_PY_FILES}"
# --packages puts the Delta jars on the classpath; OMICSLAKE_DELTA_FROM_MAVEN=1 tells the session
# factory they come from Maven (it otherwise looks for them in $SPARK_HOME/jars).
export OMICSLAKE_ENGINE=classic OMICSLAKE_DELTA_FROM_MAVEN=1
exec "${SPARK_HOME:?set SPARK_HOME to a Spark 4.2 install}/bin/spark-submit" \
  --packages "$PACKAGES" \
  --conf spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension \
  --conf spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog \
  --conf spark.hadoop.fs.s3.impl=org.apache.hadoop.fs.s3a.S3AFileSystem \
  --conf spark.jars.ivy=/tmp/.ivy2 \
  --py-files "$PY_FILES" \
  "$@"
