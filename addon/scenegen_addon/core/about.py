"""The package's identity, written once in blender_manifest.toml beside the package's
__init__.py (where Blender's extension system wants it): the extension id, the version and
the oldest supported Blender. Everything else reads them from here."""

import tomllib
from pathlib import Path

MANIFEST = Path(__file__).resolve().parent.parent / "blender_manifest.toml"
_manifest = tomllib.loads(MANIFEST.read_text(encoding="utf-8"))

NAME = "scenegen"
ID = _manifest["id"]
VERSION = _manifest["version"]
MIN_BLENDER = tuple(int(part) for part in _manifest["blender_version_min"].split("."))
# Versions the CI renders with, and versions seen rendering a tiny plan unchanged.
TESTED_BLENDER = ("5.0", "5.2 LTS")
SEEN_WORKING_BLENDER = ("5.3",)
SUPPORTED = (f"Blender {MIN_BLENDER[0]}.{MIN_BLENDER[1]} or newer (tested: "
             f"{', '.join(TESTED_BLENDER)}; seen working: {', '.join(SEEN_WORKING_BLENDER)})")


def blender_supported(version: tuple) -> bool:
    return tuple(version[:3]) >= MIN_BLENDER
