#!/usr/bin/env bash
# Start a Spark 4 Connect server with Delta; clients use OMICSLAKE_ENGINE=remote SPARK_REMOTE=sc://HOST:15002
set -euo pipefail
: "${SPARK_HOME:?set SPARK_HOME to a Spark 4.x install with the delta-spark jars in \$SPARK_HOME/jars}"
exec "$SPARK_HOME/sbin/start-connect-server.sh" \
  --properties-file "$(dirname "$0")/spark-connect-delta.conf" "$@"
