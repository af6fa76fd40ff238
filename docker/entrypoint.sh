#!/bin/sh
# Container entry point. A Python script or `-m module` runs under the image's python:
#   docker run IMAGE train.py model=affectgpt-7b ...      ->  python train.py model=affectgpt-7b ...
#   docker run IMAGE -m affectgpt.eval --pred P --gold G  ->  python -m affectgpt.eval ...
# Anything else runs as given (accelerate launch ..., deepspeed ..., pytest, bash).
set -e

case "${1:-}" in
    *.py | -m | -c) exec python "$@" ;;
    "") exec python train.py ;;
esac
exec "$@"
