#!/usr/bin/env bash
# The GPU check on a lent GPU machine, in one command from the repository root:
#
#   bash benchmarks/gpu_check.sh [gpu_check.py options, e.g. --budget-s 420 --only 7b-cached-ckpt]
#
# Installs the wheels carried in .whl/ (scripts/make_gpu_wheels.sh; the packages the GPU image
# lacks) into /tmp/site, then runs benchmarks/gpu_check.py with --out "$OUT" (the device tool's
# result folder; benchmarks/results/latest when OUT is unset). Writes there: gpu_check.md (the
# table, also printed on stdout), gpu_check.json, gpu_check.log (progress and warnings), nvidia-smi.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${OUT:-benchmarks/results/latest}"
WHEELS="${WHEELS:-.whl}"  # WHEELS=none: use the installed packages as they are (development machines)
mkdir -p "$OUT_DIR"
if compgen -G "$WHEELS/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl
    export PYTHONPATH="/tmp/site:$PWD"
else
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 WANDB_MODE=disabled TOKENIZERS_PARALLELISM=false
export AFFECTGPT_CACHE="${AFFECTGPT_CACHE:-/tmp/affectgpt-cache}"
nvidia-smi > "$OUT_DIR/nvidia-smi.txt" 2>&1 || true
python3 benchmarks/gpu_check.py --out "$OUT_DIR" "$@" 2> >(tee "$OUT_DIR/gpu_check.log" >&2)
