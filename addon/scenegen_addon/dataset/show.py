"""`headless/show.py DIR SCENE_ID [--out PNG]`: the picture of one scene (dataset.picture).

Reads the scene's metadata, images and masks from any folder holding complete scenes (a
finished build or one still running) and writes the picture, by default to
./<SCENE_ID>.png in the current folder. It never writes inside DIR: a dataset folder holds
exactly the files the plan predicts (FORMAT 1), so a stray picture there would be reported by
the validator.
"""

import argparse
import sys
from pathlib import Path

from ..core import layout, png
from ..launcher import options
from ..launcher.exit_codes import ExitCode
from . import highlights, picture
from .loader import Scene

MAX_SCALE = 4


def parse(argv) -> argparse.Namespace:
    """The arguments, checked before anything is read (options.Refused otherwise)."""
    parser = options.Parser(
        prog="show.py",
        description="Draw one scene's four views with object ids, mask outlines and a few "
                    f"relations. Exit 0 done, {int(ExitCode.REFUSED)} bad arguments.")
    parser.add_argument("dir", metavar="DIR", type=Path, help="a scenegen output folder")
    parser.add_argument("scene_id", metavar="SCENE_ID", help="e.g. train_00000")
    parser.add_argument("--out", metavar="PNG", type=Path,
                        help="the picture to write (default: ./SCENE_ID.png); not inside DIR")
    parser.add_argument("--scale", type=options.whole_number, default=1,
                        help=f"draw each view this many times larger (1..{MAX_SCALE}, default 1)")
    args = parser.parse_args(argv)
    options.in_range(args.scale, "--scale", 1, MAX_SCALE)
    if not args.dir.is_dir():
        parser.error(f"DIR: {args.dir} is not a folder")
    try:
        layout.check_scene_id(args.scene_id)
    except ValueError as err:
        parser.error(f"SCENE_ID: {err}")
    metadata = args.dir / layout.scene_paths(args.scene_id)["metadata"]
    if not metadata.is_file():
        parser.error(f"SCENE_ID: {args.dir} has no complete scene {args.scene_id!r} "
                     f"(no {metadata})")
    args.out = args.out or Path.cwd() / f"{args.scene_id}.png"
    if args.out.resolve().is_relative_to(args.dir.resolve()):
        parser.error(f"--out: {args.out} is inside DIR {args.dir}; write the picture elsewhere")
    if args.out.is_dir():
        parser.error(f"--out: {args.out} is a folder; give a file name such as scene.png")
    return args


def main(argv=None) -> int:
    try:
        args = parse(argv)
    except options.Refused as exc:
        return options.refusal("show.py", exc)
    scene = Scene(args.dir, layout.read_json(args.dir / layout.scene_paths(args.scene_id)[
        "metadata"]))
    drawn = picture.scene_picture(scene, args.scale)
    png.write_png_rgb(args.out, drawn.pixels)
    for line in highlights.relation_lines(scene):
        print(line)
    print(f"wrote {args.out}")
    return int(ExitCode.OK)


if __name__ == "__main__":
    sys.exit(main())
