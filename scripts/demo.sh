#!/usr/bin/env bash
# `make demo`: the main job on the example manifests.
set -euo pipefail
cd "$(dirname "$0")/.."
LLMGW=.venv/bin/llmgw
echo "\$ llmgw validate manifests/"
$LLMGW validate manifests/
