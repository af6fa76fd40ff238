#!/usr/bin/env bash
# The users' commands end to end on the lent GPU machine, in one command from the repository root:
#
#   bash benchmarks/gpu_e2e.sh [--only NAME ...]       (on the GPU, with .whl/ carried)
#   WHEELS=none bash benchmarks/gpu_e2e.sh --dry-run   (tiny shapes on CPU: CI rehearses every command)
#
# Installs the wheels carried in .whl/ (scripts/make_gpu_wheels.sh: the packages the GPU image lacks,
# PyAV included, decord left out for the 64 MiB limit) into /tmp/site, then runs benchmarks/gpu_e2e.py
# with --out "$OUT" (the device tool's result folder; benchmarks/results when OUT is unset). Writes
# gpu_e2e.md (the table, also on stdout), gpu_e2e.json, nvidia-smi.txt and the commands' logs.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${OUT:-benchmarks/results}"
WHEELS="${WHEELS:-.whl}"
mkdir -p "$OUT_DIR"
if compgen -G "$WHEELS/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl
    export PYTHONPATH="/tmp/site:$PWD"
    export PATH="/tmp/site/bin:$PATH"
else
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 WANDB_MODE=disabled TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
command -v nvidia-smi > /dev/null && nvidia-smi > "$OUT_DIR/nvidia-smi.txt" 2>&1 || true
PY="${PYTHON:-python3}"
command -v "$PY" > /dev/null || PY=python
exec "$PY" benchmarks/gpu_e2e.py --out "$OUT_DIR" "$@"
