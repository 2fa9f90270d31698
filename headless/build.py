#!/usr/bin/env python3
"""Build a scenegen dataset: `python headless/build.py --output DIR [options]`.

A thin entry point: the launcher is the add-on's bpy-free package launcher/ (build.main);
`--help` lists the options and the exit codes.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "addon"))

from scenegen_addon.launcher import build  # noqa: E402

if __name__ == "__main__":
    sys.exit(build.main(sys.argv[1:]))
