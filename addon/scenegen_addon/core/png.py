"""A small PNG codec in the standard library and numpy (SPEC 6.3 masks).

Blender's own Python has no Pillow, and the compositor clips a 16-bit PNG's object index
to 1.0, so the 16-bit grayscale masks are written here. The reader decodes the PNGs this
project produces (8- or 16-bit gray, gray+alpha, RGB, RGBA; not interlaced) so that tests
and the validator can check images and masks without extra packages.
"""

import os
import struct
import zlib
from pathlib import Path

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # colour type -> samples per pixel


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def write_atomic(path, data: bytes) -> None:
    """Write bytes under a temporary name in the same folder, then rename (SPEC 1)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def encode_png16(array: np.ndarray) -> bytes:
    """The bytes of a 16-bit grayscale PNG of a (H, W) array; row 0 is the top row."""
    array = np.asarray(array)
    if array.ndim != 2 or array.size == 0:
        raise ValueError(f"array must be a non-empty 2-D (H, W) array, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"array must hold integers 0..65535, got dtype {array.dtype}")
    if array.min() < 0 or array.max() > 0xFFFF:
        raise ValueError("array values must lie in 0..65535")
    height, width = array.shape
    rows = np.zeros((height, 1 + 2 * width), dtype=np.uint8)  # filter byte 0 per row
    rows[:, 1:] = array.astype(">u2").view(np.uint8).reshape(height, 2 * width)
    header = struct.pack(">IIBBBBB", width, height, 16, 0, 0, 0, 0)
    return (
        SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
        + _chunk(b"IEND", b"")
    )


def write_png16(path, array: np.ndarray) -> None:
    """Write a (H, W) integer array as a 16-bit grayscale PNG, atomically."""
    write_atomic(path, encode_png16(array))


def _paeth_row(line: np.ndarray, prior: np.ndarray, bpp: int) -> np.ndarray:
    out = bytearray(line.tobytes())
    up = prior.tobytes()
    for i in range(len(out)):
        a = out[i - bpp] if i >= bpp else 0
        b = up[i]
        c = up[i - bpp] if i >= bpp else 0
        p = a + b - c
        pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
        out[i] = (out[i] + pred) & 0xFF
    return np.frombuffer(bytes(out), dtype=np.uint8)


def _average_row(line: np.ndarray, prior: np.ndarray, bpp: int) -> np.ndarray:
    out = bytearray(line.tobytes())
    up = prior.tobytes()
    for i in range(len(out)):
        a = out[i - bpp] if i >= bpp else 0
        out[i] = (out[i] + ((a + up[i]) >> 1)) & 0xFF
    return np.frombuffer(bytes(out), dtype=np.uint8)


def _unfilter(raw: bytes, height: int, stride: int, bpp: int) -> np.ndarray:
    data = np.frombuffer(raw, dtype=np.uint8)
    if data.size != height * (stride + 1):
        raise ValueError("PNG image data has the wrong length")
    data = data.reshape(height, stride + 1)
    out = np.zeros((height, stride), dtype=np.uint8)
    prior = np.zeros(stride, dtype=np.uint8)
    for y in range(height):
        kind, line = int(data[y, 0]), data[y, 1:]
        if kind == 0:
            row = line.copy()
        elif kind == 1:  # Sub: running sum per byte lane, modulo 256
            lanes = np.zeros(-(-stride // bpp) * bpp, dtype=np.int64)
            lanes[:stride] = line
            row = (np.cumsum(lanes.reshape(-1, bpp), axis=0).reshape(-1)[:stride] % 256).astype(
                np.uint8
            )
        elif kind == 2:
            row = line + prior
        elif kind == 3:
            row = _average_row(line, prior, bpp)
        elif kind == 4:
            row = _paeth_row(line, prior, bpp)
        else:
            raise ValueError(f"unknown PNG filter type {kind}")
        out[y] = row
        prior = row
    return out


def read_png(path) -> np.ndarray:
    """Decode a PNG: (H, W) for gray, (H, W, C) otherwise; uint8 or uint16 by bit depth."""
    blob = Path(path).read_bytes()
    if not blob.startswith(SIGNATURE):
        raise ValueError(f"{path} is not a PNG file")
    pos, idat, header = len(SIGNATURE), [], None
    while pos < len(blob):
        (length,) = struct.unpack(">I", blob[pos : pos + 4])
        kind, data = blob[pos + 4 : pos + 8], blob[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", data)
        elif kind == b"IDAT":
            idat.append(data)
        elif kind == b"IEND":
            break
    if header is None:
        raise ValueError(f"{path} has no IHDR chunk")
    width, height, depth, colour, _, _, interlace = header
    if colour not in CHANNELS or depth not in (8, 16) or interlace:
        raise ValueError(
            f"{path}: unsupported PNG (colour type {colour}, depth {depth}, interlace "
            f"{interlace}); supported are colour types 0, 2, 4, 6 at depth 8 or 16, not interlaced"
        )
    channels, nbytes = CHANNELS[colour], depth // 8
    stride = width * channels * nbytes
    rows = _unfilter(zlib.decompress(b"".join(idat)), height, stride, channels * nbytes)
    pixels = rows.view(">u2").astype(np.uint16) if depth == 16 else rows
    shape = (height, width) if channels == 1 else (height, width, channels)
    return pixels.reshape(shape)


def read_png16(path) -> np.ndarray:
    """Read a 16-bit grayscale PNG (a mask) as a (H, W) uint16 array, row 0 = top."""
    array = read_png(path)
    if array.ndim != 2 or array.dtype != np.uint16:
        raise ValueError(f"{path} is not a 16-bit grayscale PNG")
    return array
