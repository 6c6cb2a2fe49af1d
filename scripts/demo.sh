#!/usr/bin/env bash
# `make demo`: the whole loop on the local emulator. Starts an emulator on loopback, then
# validate, plan, apply, a change made behind the tool's back, drift catching it, apply healing
# it, and drift in sync again; then two rollouts on the emulator's simulated traffic and clock:
# a good version promoted step by step, a bad one rolled back automatically. Stops the emulator
# on exit, leaving no process behind.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/.venv/bin
LLMGW=$BIN/llmgw
WORK=$(mktemp -d)
PORT=$("$BIN/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

"$LLMGW" emulator serve --port "$PORT" --ingest-delay 1 --admin --seed 7 >"$WORK/emulator.log" 2>&1 &
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
# the org's policy rules: their own tests, then the manifests judged for dev and for prod (the
# example splits move traffic without a canary rollout, which the prod rules refuse)
expect 0 "$LLMGW" policy test examples/policies
expect 0 "$LLMGW" validate manifests/ --policies examples/policies --env dev
expect 1 "$LLMGW" validate manifests/ --policies examples/policies --env prod
expect 2 "$LLMGW" plan manifests/ --detailed-exitcode --out "$WORK/plan.json"
expect 0 "$LLMGW" apply "$WORK/plan.json" --auto-approve --audit-log "$WORK/audit.jsonl"
expect 0 "$LLMGW" plan manifests/ --detailed-exitcode
step "python scripts/out_of_band.py support-agent temperature 1.3"
"$BIN/python" scripts/out_of_band.py support-agent temperature 1.3
expect 2 "$LLMGW" drift manifests/
expect 0 "$LLMGW" apply manifests/ --auto-approve --audit-log "$WORK/audit.jsonl"
expect 0 "$LLMGW" drift manifests/
expect 0 "$LLMGW" audit verify "$WORK/audit.jsonl"

# Rollouts: 2.1.0 rolled out from 2.0.0 on healthy traffic, then 2.2.0 with 12 % errors
DEMO="$BIN/python scripts/rollout_demo.py"
advance() {  # advance WANT: move the clock 15 minutes, then the cron job's one run
  step "python scripts/rollout_demo.py clock 15"; $DEMO clock 15
  expect "$1" "$LLMGW" rollout advance "$WORK/rollout" --audit-log "$WORK/audit.jsonl"
}
step "python scripts/rollout_demo.py manifests manifests/ rollout/ 2.0.0 2.1.0"
$DEMO manifests manifests "$WORK/rollout" 2.0.0 2.1.0
expect 0 "$LLMGW" apply "$WORK/rollout" --auto-approve --audit-log "$WORK/audit.jsonl"
step "python scripts/rollout_demo.py traffic 2.0.0=0.01 2.1.0=0.01"
$DEMO traffic 2.0.0=0.01 2.1.0=0.01
advance 0; advance 0; advance 0; advance 0
expect 0 "$LLMGW" drift "$WORK/rollout"   # a rollout in progress is not drift
for _ in 1 2 3 4; do advance 0; done      # the end state: 2.1.0 has all the traffic
step "python scripts/rollout_demo.py manifests manifests/ rollout/ 2.1.0 2.2.0 2.2.0"
$DEMO manifests manifests "$WORK/rollout" 2.1.0 2.2.0 2.2.0
expect 0 "$LLMGW" apply "$WORK/rollout" --auto-approve --audit-log "$WORK/audit.jsonl"
step "python scripts/rollout_demo.py traffic 2.1.0=0.01 2.2.0=0.12"
$DEMO traffic 2.1.0=0.01 2.2.0=0.12
advance 0
advance 2
expect 0 "$LLMGW" plan "$WORK/rollout" --detailed-exitcode
expect 0 "$LLMGW" rollout status "$WORK/rollout" --output markdown
expect 0 "$LLMGW" audit verify "$WORK/audit.jsonl"
printf '\nDemo complete: validate (policies in dev and prod), plan, apply, drift caught an\n'
printf 'out-of-band change, apply healed it; a rollout promoted 2.1.0 step by step, another\n'
printf 'rolled 2.2.0 back and withdrew it.\n'
