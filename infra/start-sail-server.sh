#!/usr/bin/env bash
# A standalone Sail Spark Connect server (no JVM); clients use OMICSLAKE_ENGINE=remote.
# SAIL_MODE=local-cluster runs a driver and workers on this host; kubernetes-cluster on K8s.
set -euo pipefail
PORT="${1:-50051}"
exec "$(dirname "$0")/../.venv/bin/sail" spark server --ip 0.0.0.0 --port "$PORT"
