#!/usr/bin/env bash
# Runs schemathesis against a live capsnet-serve (the shipped weights, an API key set) for a
# bounded time, every check enabled; exits non-zero on any failure. Usage: scripts/contract-test.sh [seconds]
set -euo pipefail
BIN=${BIN:-.venv/bin}
SECONDS_BUDGET=${1:-120}
PORT=${CAPSNET_PORT:-8765}
KEY=contract-test-key
CAPSNET_API_KEY=$KEY CAPSNET_PORT=$PORT CAPSNET_LOG_LEVEL=warning "$BIN/capsnet-serve" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 120); do
    curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break
    sleep 1
done
"$BIN/schemathesis" run "http://127.0.0.1:$PORT/openapi.json" -H "X-API-Key: $KEY" \
    --checks all --max-examples 25 --max-time "$SECONDS_BUDGET" --request-timeout 20 --workers 1
