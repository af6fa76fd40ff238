"""``python demo.py checkpoint=DIR ...``: the entry point; the command is affectgpt/apps/demo.py."""

import sys

from affectgpt.apps.cli import run
from affectgpt.apps.demo import DEMO, serve

if __name__ == "__main__":
    sys.exit(run(DEMO, serve))
