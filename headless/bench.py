"""Benchmark the pipeline's overhead: `python headless/bench.py [options]`.

A thin entry point: the benchmark is the add-on's launcher/bench.py; `--help` lists its options.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "addon"))

from scenegen_addon.launcher import bench  # noqa: E402

if __name__ == "__main__":
    sys.exit(bench.main(sys.argv[1:]))
