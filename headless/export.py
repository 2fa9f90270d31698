"""Export a finished dataset with its questions:
`python headless/export.py DIR --format {hf,vlmevalkit} --out OUT [options]`.

Needs no Blender: the export is the add-on's dataset wing, dataset/exports/ (hf needs the
packages datasets and pyarrow). `--help` lists the options.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "addon"))

from scenegen_addon.dataset.exports import cli  # noqa: E402

if __name__ == "__main__":
    sys.exit(cli.main())
