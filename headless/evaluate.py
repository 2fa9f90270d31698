"""Score a model on an export, run one, or write a human-baseline sheet:
`python headless/evaluate.py EXPORT --predictions FILE [--out REPORT_DIR] [--human FILE]`.

Needs no Blender: the evaluation is the add-on's dataset wing, dataset/evaluation/ (its
packages: pip install "scenegen[evaluate]"). `--help` lists the options.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "addon"))

from scenegen_addon.dataset.evaluation import cli  # noqa: E402

if __name__ == "__main__":
    sys.exit(cli.main())
