"""``python -m affectgpt.export checkpoint=DIR output=DIR [merge=true]``: the documented command,
kept at this path; it is :mod:`affectgpt.apps.export`."""

import sys

from affectgpt.apps.export import main

if __name__ == "__main__":
    sys.exit(main())
