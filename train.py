"""``python train.py [key=value ...]``: the entry point; the command is affectgpt/apps/train.py."""

import sys

from affectgpt.apps.cli import run
from affectgpt.apps.train import TRAIN, main

if __name__ == "__main__":
    sys.exit(run(TRAIN, main))
