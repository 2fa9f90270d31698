"""Draw one scene for people: `python headless/show.py DIR SCENE_ID [--out PNG]`.

The four views in a grid, each object's id at its projected centroid, the mask outlines and
a few relations in words. Needs no Blender: it is the add-on's dataset wing (dataset.show,
dataset.picture).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "addon"))

from scenegen_addon.dataset import show  # noqa: E402

if __name__ == "__main__":
    sys.exit(show.main())
