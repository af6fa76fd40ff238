import sys

from affectgpt.eval.cli import main

sys.exit(main())
