"""The readers' ground rules (issue 24, items 2-4): core.files opens only regular files and
never blocks, core.layout.inside keeps every path read from a file inside the dataset,
core.layout.loads parses JSON strictly, and core.png decodes with bounded memory: a PNG bomb
under RLIMIT_AS of 1 GiB is refused, with the loader, the scene picture and an export each
peaking far below it.
"""

import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from scenegen_addon.core import files, layout, merge, png, presets

from tests import fake_dataset

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def deadline(seconds: int):
    """Fail instead of hanging: a blocking open would wait for ever on a FIFO."""
    def expired(signum, frame):
        raise AssertionError(f"blocked for more than {seconds} s")
    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture
def entries(tmp_path):
    """One entry of each kind that is not a regular file, and a hard-linked file."""
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "folder").mkdir()
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "socket"))
    (tmp_path / "target").write_text("outside")
    (tmp_path / "link").symlink_to(tmp_path / "target")
    os.link(tmp_path / "target", tmp_path / "hardlink")
    yield tmp_path
    server.close()


@pytest.mark.parametrize("name, what", [
    ("fifo", "a FIFO"), ("folder", "a folder"), ("socket", "a socket"),
    ("link", "a symbolic link")])
def test_only_regular_files_are_opened_and_nothing_blocks(entries, name, what):
    with deadline(5):
        for flags in (os.O_RDONLY, os.O_WRONLY, os.O_RDWR | os.O_CREAT):
            with pytest.raises(files.NotAFile, match=f"{entries / name} is {what}, not a "):
                files.open_fd(entries / name, flags)
        with pytest.raises(files.NotAFile):
            files.append_text(entries / name)
    assert (entries / "target").read_text() == "outside"


def test_a_file_with_other_names_is_never_appended_to(entries):
    with pytest.raises(files.NotAFile, match="a file with 2 hard links"):
        files.append_text(entries / "hardlink")
    assert (entries / "target").read_text() == "outside"
    assert files.read_bytes(entries / "hardlink") == b"outside"  # reading it is harmless
    with files.append_text(entries / "new.log") as log:
        log.write("line\n")
    assert (entries / "new.log").read_text() == "line\n"


def test_a_read_is_refused_above_its_limit_before_reading(tmp_path):
    (tmp_path / "big").write_bytes(b"x" * 101)
    with pytest.raises(ValueError, match="101 bytes, more than the 100"):
        files.read_bytes(tmp_path / "big", limit=100)


@pytest.mark.parametrize("text, fault", [
    ('{"x": NaN}', "NaN is not a JSON number"),
    ('[-Infinity]', "-Infinity is not a JSON number"),
    ('{"x": [1.5, 1e400]}', "1e400 is too large for a number"),
    ("[1" + "0" * 400 + ".0]", "10{400}.0 is too large for a number"),
    ("[" * 200_000 + "]" * 200_000, "JSON nested too deeply"),
])
def test_json_is_parsed_strictly(text, fault):
    with pytest.raises(ValueError, match=fault):
        layout.loads(text)
    assert layout.loads('{"x": [1e-300, 2.5e+30, -0.0]}') == {"x": [1e-300, 2.5e30, -0.0]}


def test_paths_from_files_stay_inside_the_folder(tmp_path):
    root, outside = tmp_path / "data", tmp_path / "secret"
    (root / "images").mkdir(parents=True)
    (root / "images" / "a.png").write_bytes(b"x")
    outside.mkdir()
    (outside / "rec.json").write_text("{}")
    (root / "linked").symlink_to(outside)
    (root / "images" / "b.png").symlink_to(outside / "rec.json")
    assert layout.inside(root, "images/a.png", "f") == root / "images" / "a.png"
    for rel, fault in [
            ("../secret/rec.json", "has an empty, '.' or '..' component"),
            ("images/../../secret/rec.json", "has an empty, '.' or '..' component"),
            (str(outside / "rec.json"), "is an absolute path"),
            ("linked/rec.json", "is reached through a symbolic link (not followed)"),
            ("images/b.png", "is reached through a symbolic link (not followed)"),
            ("images//a.png", "has an empty"), ("images/c.png", "missing"),
            ("images", "is not a regular file"), (["images/a.png"], "is not a file name"),
            ("", "is not a file name"), ("images/a.png\0", "is not a file name")]:
        with pytest.raises(layout.UnsafePath, match=f"^views\\[2\\].image: .*: {re.escape(fault)}"):
            layout.inside(root, rel, "views[2].image")


# --- bounded PNG decoding --------------------------------------------------------------------

def png_bytes(width: int, height: int, stream: bytes, kind=png.RGB8) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, *kind, 0, 0, 0)
    return (png.SIGNATURE + png._chunk(b"IHDR", header) + png._chunk(b"IDAT", stream)
            + png._chunk(b"IEND", b""))


def zeros_deflated(n_bytes: int) -> bytes:
    """`n_bytes` zero bytes deflated (about a thousandth of it), never held whole."""
    packer, block = zlib.compressobj(9), bytes(2**20)
    parts = [packer.compress(block) for _ in range(n_bytes // len(block))]
    return b"".join(parts) + packer.flush()


def test_the_reader_stops_inflating_at_the_size_its_header_implies(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_bytes(240, 160, zeros_deflated(64 * 2**20)))  # 64 MiB of zeros
    with pytest.raises(ValueError, match="image data inflates to more than the 115360 bytes"):
        png.read_png(path, (240, 160))
    assert png.check_png(path, 240, 160, png.RGB8).startswith("image data inflates to more")
    with pytest.raises(ValueError, match="size 240x160, expected 96x64"):
        png.read_png(path, (96, 64))


def test_a_header_beyond_the_builds_limits_is_refused_before_reading(tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(png_bytes(16384, 21846, b""))
    with pytest.raises(ValueError, match="makes images of 1073774592 bytes .* at most 268435456"):
        png.read_png(path)
    with pytest.raises(ValueError, match="resolution 16384x21846 makes images"):
        presets.check_resolution(16384, 21846)
    path.write_bytes(png_bytes(4, 4, b"\0" * (4 * 2**20)))  # more than a 4x4 PNG can hold
    with pytest.raises(ValueError, match="bytes, more than a 4x4 PNG needs"):
        png.read_png(path)


def test_json_and_pngs_are_read_within_a_limit_even_when_they_grow(tmp_path, monkeypatch):
    """A 3 GiB sparse metadata file is refused at once, not read whole; a file larger than
    fstat said when it was opened (one growing meanwhile, or /proc's) is read no further
    than its limit."""
    big = tmp_path / "metadata.json"
    with open(big, "wb") as f:
        f.truncate(3 << 30)
    with deadline(5), pytest.raises(ValueError, match=f"{3 << 30} bytes, more than the "
                                                      f"{layout.JSON_LIMIT} such a file"):
        layout.read_json(big)
    assert layout.JSON_LIMIT >= 4 * 61 * 2**20  # a `large` build's splits/train.json
    with pytest.raises(ValueError, match="status: grew past 10 bytes while read"):
        files.read_bytes("/proc/self/status", limit=10)  # fstat says 0 bytes
    path = tmp_path / "grown.png"
    path.write_bytes(png_bytes(4, 4, b"\0" * (4 * 2**20)))
    real = os.fstat

    def said_when_opened(fd):  # the size before someone appended 4 MiB
        found = real(fd)
        return os.stat_result((*found[:6], 100, *found[7:]))
    monkeypatch.setattr(os, "fstat", said_when_opened)
    with pytest.raises(ValueError, match=r"grew past \d+ bytes while read, more than a 4x4 PNG"):
        png.read_png(path)


@pytest.mark.parametrize("width, height", [(7, 300), (300, 200)])
def test_tall_images_decode_band_by_band_to_the_same_pixels(tmp_path, width, height,
                                                             monkeypatch):
    """Average and Paeth rows decode in bands of rows (bounded memory): the same pixels for
    any band height, the first row of each band taking the band above as its prior."""
    pixels = np.random.default_rng(3).integers(0, 256, (height, width, 3), dtype=np.uint8)
    pixels[::5] = 7
    for kind in (3, 4):
        path = tmp_path / f"k{kind}.png"
        path.write_bytes(png.encode_png_rgb(pixels, kinds=[kind]))
        assert np.array_equal(png.read_png(path), pixels)
        rows = height // 4  # four bands (and a rest)
        monkeypatch.setattr(png, "BAND_BYTES", 4 * 3 * (rows + 1) * (rows + width + 1))
        assert png._band_rows(height, width, 3) == rows
        assert np.array_equal(png.read_png(path), pixels)
        monkeypatch.undo()


BOMB_CHILD = textwrap.dedent("""
    import resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30))
    from pathlib import Path
    from scenegen_addon.dataset import loader, show
    from scenegen_addon.dataset.exports import cli
    data, out = Path(sys.argv[1]), Path(sys.argv[2])
    for scene_id in ("train_00000", "train_00001"):
        try:
            loader.open_scene(data, scene_id).views[1].image
            print("decoded", scene_id)
        except loader.Unreadable as exc:
            print("refused:", exc)
    print("show", show.main([str(data), "train_00000", "--out", str(out / "p.png")]))
    print("export", cli.main([str(data), "--format", "vlmevalkit", "--out", str(out / "x"),
                              "--jobs", "1"]))
    with open("/proc/self/status") as status:  # VmHWM: this process's own peak (ru_maxrss
        peak = next(line.split()[1] for line in status if line.startswith("VmHWM"))
    print("peak", int(peak) // 1024, "MB")  # keeps the forking parent's from before exec)
""")


def test_a_png_bomb_is_refused_in_bounded_memory(tmp_path):
    """Under RLIMIT_AS 1 GiB: view 1 of train_00000 inflates to 1 GiB under a correct
    240x160 header; view 1 of train_00001 declares 16384x21846 and its record says so too.
    The loader, the scene picture and an export each refuse, peaking under 300 MB."""
    data = tmp_path / "data"
    fake_dataset.make_output(data, {"train": 2})
    merge.merge(data)
    view = "images/multi_view/{}/view_1.png"
    (data / view.format("train_00000")).write_bytes(png_bytes(240, 160, zeros_deflated(2**30)))
    (data / view.format("train_00001")).write_bytes(
        png_bytes(16384, 21846, zeros_deflated(2**24)))
    record = data / layout.scene_paths("train_00001")["metadata"]
    record.write_text(json.dumps({**json.loads(record.read_text()),
                                  "image_size": [16384, 21846]}))
    run = subprocess.run([sys.executable, "-c", BOMB_CHILD, str(data), str(tmp_path)],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": f"{ROOT / 'addon'}:{ROOT}"})
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == (f"refused: view_1 image: '{view.format('train_00000')}': image data "
                        "inflates to more than the 115360 bytes its header implies")
    assert lines[1].startswith("refused: metadata/train_00001.json: not a scene record as "
                               "FORMAT 6 describes it (ValueError('resolution 16384x21846 "
                               "makes images of 1073774592 bytes")
    assert lines[2] == "show 1" and "image data inflates to more" in run.stderr
    assert lines[3] == "export 1"
    assert f"\n  {view.format('train_00000')}: image data inflates to more" in run.stderr
    assert ("\n  metadata/train_00001.json: image_size: resolution 16384x21846 makes images"
            in run.stderr)
    assert int(lines[4].split()[1]) < 300, lines[4]
    assert "Traceback" not in run.stderr
    shutil.rmtree(data)
