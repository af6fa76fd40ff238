"""``python infer.py checkpoint=DIR ...``: the entry point; the command is affectgpt/apps/infer.py."""

import sys

from affectgpt.apps.cli import run
from affectgpt.apps.infer import INFER, main

if __name__ == "__main__":
    sys.exit(run(INFER, main))
