"""What a scene's manifest costs at 1024x768: hashing its files (SHA-256) against reading
them, and the resume's cheap check (stat + the last bytes of each file) against --verify.

Files of a normal-quality scene's sizes (images ~0.8 MB each, the single view a hard link,
masks ~20 kB, a 15-object record ~4 MB), incompressible bytes so nothing is cached cheaper
than in life; the page cache is warm in both columns, as right after a scene is written.

    .venv/bin/python benchmarks/bench_checksums.py [--repeats 20]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "addon"))

from scenegen_addon.core import layout, manifest  # noqa: E402

SIZES = {"images": 800_000, "masks": 20_000, "metadata": 4_000_000}
SCENE = "test_comp_00000"


def make_scene(out: Path) -> None:
    paths = layout.scene_paths(SCENE)
    for rel in paths["images"]:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(os.urandom(SIZES["images"] - 12) + manifest.PNG_END)
    (out / paths["image_single"]).parent.mkdir(parents=True, exist_ok=True)
    os.link(out / paths["images"][0], out / paths["image_single"])
    for rel in paths["masks"]:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(os.urandom(SIZES["masks"] - 12) + manifest.PNG_END)
    (out / paths["metadata"]).parent.mkdir(parents=True, exist_ok=True)
    (out / paths["metadata"]).write_bytes(b"{" + os.urandom(SIZES["metadata"] - 2) + b"}")


def timed(job, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        job()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    repeats = parser.parse_args().repeats
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        make_scene(out)
        files = [out / rel for rel in layout.scene_files(SCENE)]
        read = timed(lambda: [f.read_bytes() for f in files], repeats)
        write = timed(lambda: manifest.write(out, SCENE, {}), repeats)
        document = manifest.read(out, SCENE)
        cheap = timed(lambda: manifest.damage(out, SCENE, document), repeats)
        verify = timed(lambda: manifest.damage(out, SCENE, document, verify=True), repeats)
    print(f"one 1024x768 scene, {len(files)} files, median of {repeats}:")
    print(f"  reading its files          {read * 1e3:7.1f} ms  (baseline)")
    print(f"  writing its manifest       {write * 1e3:7.1f} ms  ({write / read:.1f}x reading)")
    print(f"  resume check (size, end)   {cheap * 1e3:7.2f} ms  ({cheap / read:.3f}x reading)")
    print(f"  resume check --verify      {verify * 1e3:7.1f} ms  ({verify / read:.1f}x reading)")


if __name__ == "__main__":
    main()
