"""A small PNG codec in the standard library and numpy (FORMAT 6.3 masks).

Blender's own Python has no Pillow, and the compositor clips a 16-bit PNG's object index
to 1.0, so the 16-bit grayscale masks are written here (and the 8-bit RGB scene pictures of
dataset.picture). The reader decodes the PNGs this project produces (8- or 16-bit gray,
gray+alpha, RGB, RGBA; not interlaced) so that tests and the validator can check images and
masks without extra packages; check_png is the validator's strict test of one file. Both
walk the container the same way (`walk`).
"""

import math
import os
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from . import files, layout, presets

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # colour type -> samples per pixel
RGB8 = (8, 2)  # (bit depth, colour type) of the images
GRAY16 = (16, 0)  # of the masks and the optional passes' maps


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


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
    layout.write_bytes(path, encode_png16(array))


def _filtered(pixels: np.ndarray, kind: int, bpp: int) -> np.ndarray:
    """Every row of (H, stride) bytes under one PNG filter (0 None .. 4 Paeth), as int16;
    the caller keeps the low byte. Filters read the unfiltered neighbours only, so all rows
    go at once."""
    x = pixels.astype(np.int16)
    a = np.zeros_like(x)  # left
    a[:, bpp:] = x[:, :-bpp]
    b = np.zeros_like(x)  # up
    b[1:] = x[:-1]
    c = np.zeros_like(x)  # up-left
    c[1:, bpp:] = x[:-1, :-bpp]
    if kind == 0:
        return x
    if kind == 1:
        return x - a
    if kind == 2:
        return x - b
    if kind == 3:
        return x - ((a + b) >> 1)
    pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)
    return x - np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def encode_png_rgb(array: np.ndarray, kinds=range(5)) -> bytes:
    """The bytes of an 8-bit RGB PNG of a (H, W, 3) uint8 array; row 0 is the top row.

    The whole image takes the one filter of `kinds` (0 None .. 4 Paeth) that compresses it
    smallest at zlib level 6, then is compressed at level 9 (a tenth of the time for the
    choice; a picture of renders is a sixth smaller under Sub or Paeth than unfiltered).
    """
    array = np.asarray(array)
    if array.ndim != 3 or array.shape[2] != 3 or array.size == 0 or array.dtype != np.uint8:
        raise ValueError(f"array must be a non-empty (H, W, 3) uint8 array, got shape "
                         f"{array.shape} and dtype {array.dtype}")
    height, width, _ = array.shape
    pixels = array.reshape(height, 3 * width)
    best, best_size = b"", None
    for kind in kinds:
        rows = np.empty((height, 1 + 3 * width), dtype=np.uint8)
        rows[:, 0] = kind
        rows[:, 1:] = _filtered(pixels, kind, 3) & 0xFF
        data = rows.tobytes()
        size = len(zlib.compress(data, 6))
        if best_size is None or size < best_size:
            best, best_size = data, size
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(best, 9))
            + _chunk(b"IEND", b""))


def write_png_rgb(path, array: np.ndarray) -> None:
    """Write a (H, W, 3) uint8 array as an 8-bit RGB PNG, atomically."""
    layout.write_bytes(path, encode_png_rgb(array))


def _unfilter_rows(data: np.ndarray, kinds: np.ndarray, bpp: int) -> np.ndarray:
    """Undo filters None, Sub and Up row by row (each row needs only the one above)."""
    height, stride = data.shape
    out = np.zeros((height, stride), dtype=np.uint8)
    prior = np.zeros(stride, dtype=np.uint8)
    for y in range(height):
        kind, line = int(kinds[y]), data[y]
        if kind == 0:
            row = line.copy()
        elif kind == 1:  # Sub: running sum per byte lane, modulo 256
            lanes = np.zeros(-(-stride // bpp) * bpp, dtype=np.int64)
            lanes[:stride] = line
            row = (np.cumsum(lanes.reshape(-1, bpp), axis=0).reshape(-1)[:stride] % 256).astype(
                np.uint8
            )
        else:
            row = line + prior
        out[y] = row
        prior = row
    return out


BAND_BYTES = 1 << 26  # the wavefront's working arrays for one band of rows stay within this


def _band_rows(height: int, width: int, bpp: int) -> int:
    """Rows per band of `_unfilter_wavefront`: the most whose two skewed int16 copies,
    (rows + 1) x (rows + width + 1) x bpp x 2 bytes each, fit BAND_BYTES (at least 1)."""
    budget = BAND_BYTES // (4 * bpp)  # (rows + 1) * (rows + width + 1) <= budget
    b = width + 2
    rows = (math.isqrt(b * b + 4 * (budget - width - 1)) - b) // 2 if budget > width + 1 else 1
    return max(1, min(height, rows))


def _unfilter_wavefront(data: np.ndarray, kinds: np.ndarray, bpp: int) -> np.ndarray:
    """Undo any mix of the five filters, band by band of rows (`_band_rows`: bounded
    memory however tall the image), one anti-diagonal of pixels at a time within a band.

    Average and Paeth make each byte depend on its left, upper and upper-left neighbours,
    so no row can be vectorised; but every pixel of an anti-diagonal depends only on the
    two before it. In a skewed copy (row r, pixel x at column r + x + 1; row 0 is the row
    above the band) an anti-diagonal is one column, so each step is a few numpy operations
    on all rows of the band at once: rows + W steps instead of rows * W * bpp Python
    iterations.
    """
    height, stride = data.shape
    width = stride // bpp
    image = np.empty((height, stride), dtype=np.uint8)
    prior = np.zeros(stride, dtype=np.uint8)
    band = _band_rows(height, width, bpp)
    for top in range(0, height, band):
        rows = min(band, height - top)
        image[top:top + rows] = _wavefront_band(data[top:top + rows], kinds[top:top + rows],
                                                bpp, prior)
        prior = image[top + rows - 1]
    return image


def _wavefront_band(data: np.ndarray, kinds: np.ndarray, bpp: int,
                    prior: np.ndarray) -> np.ndarray:
    """`_unfilter_wavefront` on one band of rows below the unfiltered row `prior`."""
    height, stride = data.shape
    width = stride // bpp
    columns = height + width + 1
    raw = np.zeros((height + 1, columns, bpp), dtype=np.int16)
    out = np.zeros((height + 1, columns, bpp), dtype=np.int16)
    out[0, 1:1 + width] = prior.reshape(width, bpp)
    for y in range(height):
        raw[y + 1, y + 2 : y + 2 + width] = data[y].reshape(width, bpp)
    kind = np.zeros((height + 1, 1), dtype=np.int16)
    kind[1:, 0] = kinds
    paeth, average, up, sub = kind == 4, kind == 3, kind == 2, kind == 1
    for col in range(2, columns):
        lo, hi = max(1, col - width), min(height, col - 1)  # rows whose pixel col-r-1 exists
        rows, above = slice(lo, hi + 1), slice(lo - 1, hi)
        a, b, c = out[rows, col - 1], out[above, col - 1], out[above, col - 2]
        bc, ac = b - c, a - c
        pa, pb, pc = np.abs(bc), np.abs(ac), np.abs(bc + ac)
        pred = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        pred = np.where(paeth[rows], pred, np.where(average[rows], (a + b) >> 1, np.where(
            up[rows], b, np.where(sub[rows], a, 0))))
        np.bitwise_and(raw[rows, col] + pred, 0xFF, out=out[rows, col])
    image = np.empty((height, stride), dtype=np.uint8)
    for y in range(height):
        image[y] = out[y + 1, y + 2 : y + 2 + width].reshape(-1)
    return image


def _unfilter(raw: bytes, height: int, stride: int, bpp: int) -> np.ndarray:
    data = np.frombuffer(raw, dtype=np.uint8)
    if data.size != height * (stride + 1):
        raise ValueError("PNG image data has the wrong length")
    data = data.reshape(height, stride + 1)
    kinds = data[:, 0]
    if kinds.size and int(kinds.max()) > 4:
        raise ValueError(f"unknown PNG filter type {int(kinds.max())}")
    if not np.any(kinds >= 3):
        return _unfilter_rows(data[:, 1:], kinds, bpp)
    return _unfilter_wavefront(data[:, 1:], kinds, bpp)


@dataclass(frozen=True)
class Container:
    """A PNG's chunks as `walk` finds them."""

    header: tuple | None  # IHDR's 7 fields: width, height, bit depth, colour type, ...
    stream: list[bytes]  # the IDAT chunks' data, in order
    fault: str | None  # the container's first fault: a bad CRC, no IEND, ...; None if sound


def walk(blob: bytes) -> Container:
    """One walk of a PNG's chunks: the signature, each chunk's length and CRC up to IEND,
    nothing after it, one valid IHDR. The walk goes on past a bad CRC, so the reader decodes
    what it can while check_png refuses the file."""
    if not blob.startswith(SIGNATURE):
        return Container(None, [], "not a PNG file")
    pos, header, stream, ended, fault = len(SIGNATURE), None, [], False, None
    while pos + 12 <= len(blob) and not ended:
        length, kind = struct.unpack(">I4s", blob[pos:pos + 8])
        body, crc = blob[pos + 8:pos + 8 + length], blob[pos + 8 + length:pos + 12 + length]
        if len(crc) < 4:
            break
        if fault is None and zlib.crc32(kind + body) != struct.unpack(">I", crc)[0]:
            fault = f"bad CRC in chunk {kind.decode('latin-1')}"
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body) if length == 13 else None
        elif kind == b"IDAT":
            stream.append(body)
        ended = kind == b"IEND"
        pos += 12 + length
    if fault is None and not ended:
        fault = "truncated (no IEND chunk)"
    elif fault is None and pos != len(blob):
        fault = f"{len(blob) - pos} bytes after the IEND chunk"
    elif fault is None and header is None:
        fault = "no valid IHDR chunk"
    return Container(header, stream, fault)


HEADER_BYTES = len(SIGNATURE) + 25  # the signature and the IHDR chunk, which comes first


def _header(head: bytes) -> tuple | None:
    """IHDR's 7 fields from a PNG's first HEADER_BYTES bytes; None when they are not there."""
    if len(head) < HEADER_BYTES or head[len(SIGNATURE):16] != struct.pack(">I4s", 13, b"IHDR"):
        return None
    return struct.unpack(">IIBBBBB", head[16:29])


def _read(path, size: tuple[int, int] | None) -> tuple[bytes, tuple]:
    """(the PNG file's bytes, its header), read whole only once its header declares a
    supported image of `size` (when given) within the build's limits (presets: at most
    MAX_RESOLUTION per side, MAX_IMAGE_BYTES of pixels) and the file is no larger than such
    an image can take; ValueError saying why not."""
    with os.fdopen(files.open_fd(path, os.O_RDONLY), "rb") as f:
        head = f.read(HEADER_BYTES)
        header = _header(head)
        if header is None:
            raise ValueError("not a PNG file" if not head.startswith(SIGNATURE)
                             else "no valid IHDR chunk")
        width, height, depth, colour, _, _, interlace = header
        if colour not in CHANNELS or depth not in (8, 16) or interlace:
            raise ValueError(f"unsupported PNG (colour type {colour}, depth {depth}, interlace "
                             f"{interlace}); supported are colour types 0, 2, 4, 6 at depth 8 "
                             "or 16, not interlaced")
        if size is not None and (width, height) != tuple(size):
            raise ValueError(f"size {width}x{height}, expected {size[0]}x{size[1]}")
        if not (0 < width <= presets.MAX_RESOLUTION and 0 < height <= presets.MAX_RESOLUTION):
            raise ValueError(f"size {width}x{height}: sides are 1..{presets.MAX_RESOLUTION}")
        pixel = CHANNELS[colour] * depth // 8
        presets.check_image_bytes(width, height, pixel)
        limit = 2 * height * (1 + width * pixel) + (1 << 20)  # the image data stored, and room
        found = os.fstat(f.fileno()).st_size
        if found > limit:
            raise ValueError(f"{found} bytes, more than a {width}x{height} PNG needs")
        blob = head + f.read(limit + 1 - len(head))
        if len(blob) > limit:
            raise ValueError(f"grew past {limit} bytes while read, more than a "
                             f"{width}x{height} PNG needs")
        return blob, header


def check_png(path, width: int, height: int, kind: tuple[int, int]) -> str | None:
    """Why `path` is not a complete PNG of this size and (bit depth, colour type), e.g.
    RGB8; None if it is.

    Checks every chunk's CRC, that nothing follows IEND, and inflates the whole image stream
    to exactly the size the header implies, with valid filter bytes: a truncated, extended
    or altered file cannot pass. Bounded like read_png.
    """
    try:
        blob, header = _read(path, (width, height))
    except ValueError as exc:
        return str(exc)
    found = walk(blob)
    return (found.fault or _check_header(header, width, height, kind)
            or _check_stream(header, found.stream))


def _check_header(header, width: int, height: int, kind) -> str | None:
    w, h, depth, colour, _, _, interlace = header
    if (w, h) != (width, height):
        return f"size {w}x{h}, expected {width}x{height}"
    if (depth, colour) != kind or interlace:
        return f"bit depth {depth} colour type {colour} interlace {interlace}, expected {kind}"
    return None


def _check_stream(header, stream: list[bytes]) -> str | None:
    w, h, depth, colour = header[:4]
    stride = 1 + w * CHANNELS[colour] * depth // 8
    try:
        raw = _inflate(stream, h * stride)
    except ValueError as exc:
        return str(exc)
    if len(raw) != h * stride:
        return f"image data holds {len(raw)} bytes, expected {h * stride}"
    if max(raw[::stride]) > 4:
        return "invalid filter byte"
    return None


def _inflate(stream: list[bytes], expected: int) -> bytes:
    """The image data inflated in steps that never produce more than `expected` + 1
    bytes: a stream that inflates further (a decompression bomb) is refused there."""
    inflater = zlib.decompressobj()
    out = bytearray()
    try:
        for piece in stream:
            out += inflater.decompress(piece, expected + 1 - len(out))
            if len(out) > expected:
                raise ValueError(f"image data inflates to more than the {expected} bytes its "
                                 "header implies")
    except zlib.error as exc:
        raise ValueError(f"image data does not inflate ({exc})") from None
    if not inflater.eof and len(out) == expected:
        raise ValueError("image data does not end where its header implies")
    if inflater.unused_data:
        raise ValueError("image data goes on after its end")
    return bytes(out)


def read_png(path, size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode a PNG: (H, W) for gray, (H, W, C) otherwise; uint8 or uint16 by bit depth.
    Bounded: the header is checked against `size` (a record's image_size) and the build's
    limits before the file is read whole, and the image data inflates in bounded steps
    (`_read`, `_inflate`); ValueError naming the file otherwise."""
    try:
        blob, header = _read(path, size)
        width, height, depth, colour = header[:4]
        channels, nbytes = CHANNELS[colour], depth // 8
        stride = width * channels * nbytes
        raw = _inflate(walk(blob).stream, height * (stride + 1))
        rows = _unfilter(raw, height, stride, channels * nbytes)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    pixels = rows.view(">u2").astype(np.uint16) if depth == 16 else rows
    shape = (height, width) if channels == 1 else (height, width, channels)
    return pixels.reshape(shape)


def read_png16(path, size: tuple[int, int] | None = None) -> np.ndarray:
    """Read a 16-bit grayscale PNG (a mask) as a (H, W) uint16 array, row 0 = top."""
    array = read_png(path, size)
    if array.ndim != 2 or array.dtype != np.uint16:
        raise ValueError(f"{path} is not a 16-bit grayscale PNG")
    return array
