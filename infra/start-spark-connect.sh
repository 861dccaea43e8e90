#!/usr/bin/env bash
# Start a Spark 4.2 Connect server with Delta on this host (a VM; on Kubernetes use
# infra/k8s/spark-connect.yaml). Clients: OMICSLAKE_ENGINE=remote SPARK_REMOTE=sc://HOST:15002.
# Python UDF / mapInArrow tasks of the jobs run here, so this host's PYSPARK_PYTHON must have the
# locked dependencies and omicslake installed (pip install dist/omicslake-*.whl -r dist/requirements.txt).
set -euo pipefail
: "${SPARK_HOME:?set SPARK_HOME to a Spark 4.2 install}"
exec "$SPARK_HOME/sbin/start-connect-server.sh" \
  --properties-file "$(dirname "$0")/spark-connect-delta.conf" "$@"
