"""Seeded randomness: every draw in scenegen goes through these helpers.

FORMAT 2: a numpy Generator(PCG64(seed)) and only `.random()` draws, so the stream of
numbers, and therefore every scene, is fixed by the seed and the documented draw order.
"""

import hashlib

import numpy as np


def h(text: str) -> int:
    """First 6 bytes of SHA-256 of `text`, big-endian: a 48-bit integer, exact in JSON."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:6], "big")


def generator(seed: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(seed))


def uniform(g: np.random.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(g.random())


def index(g: np.random.Generator, k: int) -> int:
    """A uniform choice among k items: floor(u * k)."""
    return int(g.random() * k)
