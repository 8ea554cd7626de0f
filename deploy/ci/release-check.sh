#!/usr/bin/env bash
# After a promotion: serve the production model of RECIPE, check it answers, load-test it and
# attach the Locust report to the served version in MLflow. `make release-check` runs it; the
# registry workflow (.github/workflows/registry.yml) calls that on a repository_dispatch.
#
# The server answers /ready only once the model is loaded and has passed its smoke test (the
# recipe's sample requests), so "ready" is the smoke test; the load test then sends those
# requests through /predict as a client would, and fails on an SLO breach.
set -euo pipefail
RECIPE=${RECIPE:?set RECIPE}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
LOADTEST_S=${LOADTEST_S:-60}
SLO_P95_MS=${SLO_P95_MS:-500}
MAX_ERROR_RATE=${MAX_ERROR_RATE:-0.01}
REPORT_DIR=${REPORT_DIR:-release-check}
BIN=${BIN:-.venv/bin}
BASE="http://$HOST:$PORT"

mkdir -p "$REPORT_DIR"
# The checked model never retrains itself during the check.
OPSLINE_RETRAIN_POLICY=off "$BIN/opsline" serve "$RECIPE" --host "$HOST" --port "$PORT" \
  >"$REPORT_DIR/serve.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT

for _ in $(seq 180); do
  if curl -fsS "$BASE/ready" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$server" 2>/dev/null; then
    echo "The server for $RECIPE exited before it was ready; its log:" >&2
    cat "$REPORT_DIR/serve.log" >&2
    exit 1
  fi
  sleep 1
done
if ! curl -fsS "$BASE/ready" >/dev/null 2>&1; then
  echo "The server for $RECIPE was not ready after 180 s (log: $REPORT_DIR/serve.log)." >&2
  exit 1
fi
curl -fsS "$BASE/model" >"$REPORT_DIR/model.json"
echo "Serving $(cat "$REPORT_DIR/model.json")"

"$BIN/opsline" loadtest "$RECIPE" --host "$BASE" --duration "$LOADTEST_S" \
  --slo-p95-ms "$SLO_P95_MS" --max-error-rate "$MAX_ERROR_RATE" \
  --out "$REPORT_DIR/loadtest" --attach
