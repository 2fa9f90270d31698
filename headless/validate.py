"""Check a scenegen output folder: `python headless/validate.py DIR [--sample F] [--jobs N]`.

Needs no Blender: the checks are the add-on's pure core (launcher.validate, core.validation).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "addon"))

from scenegen_addon.launcher import validate  # noqa: E402

if __name__ == "__main__":
    sys.exit(validate.main())
