"""Check a machine before a long build: `python headless/doctor.py [--blender PATH] [--quality Q]`.

A thin entry point: the doctor is the add-on's launcher/doctor.py; `--help` lists its options.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "addon"))

from scenegen_addon.launcher import doctor  # noqa: E402

if __name__ == "__main__":
    sys.exit(doctor.main(sys.argv[1:]))
