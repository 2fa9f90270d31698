"""Run one of scenegen's programs from this package's own folder, so an installed extension
needs no source checkout: `python run.py PROGRAM ARGS`, or inside Blender
`blender -b --factory-startup --python run.py -- PROGRAM ARGS`. A real Blender ignores
PYTHONPATH, so the package's parent folder goes on sys.path here."""

import importlib
import sys
from pathlib import Path

PROGRAMS = {
    "build": "scenegen_addon.launcher.build",  # the launcher (the panel's Generate)
    "worker": "scenegen_addon.blender.worker",  # a render worker (started by the launcher)
    "doctor-probe": "scenegen_addon.blender.probe",  # one doctor probe (started by the doctor)
}

if __name__ == "__main__":
    args = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
    if not args or args[0] not in PROGRAMS:
        sys.exit(f"run.py: give a program: {', '.join(PROGRAMS)}")
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    code = importlib.import_module(PROGRAMS[args[0]]).main(args[1:])
    if code:  # a normal end lets Blender finish and clean up its temporary folder
        sys.stdout.flush()
        sys.exit(code)
