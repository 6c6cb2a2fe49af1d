#!/usr/bin/env bash
# `make demo`: the whole loop on the local emulator. Starts an emulator on loopback, then
# validate, plan, apply, a change made behind the tool's back, drift catching it, apply healing
# it, and drift in sync again. Stops the emulator on exit, leaving no process behind.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/.venv/bin
LLMGW=$BIN/llmgw
WORK=$(mktemp -d)
PORT=$("$BIN/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

"$LLMGW" emulator serve --port "$PORT" --ingest-delay 1 >"$WORK/emulator.log" 2>&1 &
EMULATOR=$!
cleanup() { kill "$EMULATOR" 2>/dev/null || true; wait "$EMULATOR" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
for _ in $(seq 1 100); do
  grep -q "listening on" "$WORK/emulator.log" 2>/dev/null && break
  kill -0 "$EMULATOR" 2>/dev/null || { cat "$WORK/emulator.log"; exit 1; }
  sleep 0.1
done

export GENESYS_CLOUD_API_URL="http://127.0.0.1:$PORT"
export GENESYS_CLOUD_CLIENT_ID=emulator-client
export GENESYS_CLOUD_CLIENT_SECRET=emulator-secret
export LLMGW_ENVIRONMENT=demo

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
expect() {  # expect CODE command...: run it, show its exit code, fail the demo on a surprise
  local want=$1; shift
  step "$*"
  set +e; "$@"; local got=$?; set -e
  echo "(exit $got)"
  [ "$got" = "$want" ] || { echo "demo: expected exit $want" >&2; exit 1; }
}

echo "Emulator on $GENESYS_CLOUD_API_URL (log: emulator.log)"
expect 0 "$LLMGW" validate manifests/
expect 2 "$LLMGW" plan manifests/ --detailed-exitcode --out "$WORK/plan.json"
expect 0 "$LLMGW" apply "$WORK/plan.json" --auto-approve --audit-log "$WORK/audit.jsonl"
expect 0 "$LLMGW" plan manifests/ --detailed-exitcode
step "python scripts/out_of_band.py support-agent temperature 1.3"
"$BIN/python" scripts/out_of_band.py support-agent temperature 1.3
expect 2 "$LLMGW" drift manifests/
expect 0 "$LLMGW" apply manifests/ --auto-approve --audit-log "$WORK/audit.jsonl"
expect 0 "$LLMGW" drift manifests/
expect 0 "$LLMGW" audit verify "$WORK/audit.jsonl"
printf '\nDemo complete: validate, plan, apply, drift caught an out-of-band change, apply healed it.\n'
