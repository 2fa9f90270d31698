"""Arithmetic that gives the same bits on every CPU, for every value the core stores or
decides a label with (issue 11).

Three things pick code per CPU at run time and can change the last bit of a float64:
numpy's `@`, `dot` and `linalg` (OpenBLAS kernels), numpy's transcendental ufuncs and float
reductions (SIMD loops), and glibc's libm behind the `math` module (FMA or plain variants of
sin, cos, atan2, ...). Only IEEE 754's correctly rounded + - * / and sqrt are the same
everywhere, whatever the vector width, so this module builds what the core needs from them
alone, summed in a written order:
- dot products, norms and cross products over the last axis, left to right;
- sines and cosines of degrees: exact reduction to [-45, 45] degrees, then Taylor series;
- atan2 in degrees: atan of t in [0, 1], as 45 - atan((1 - t) / (1 + t)) above tan 22.5
  degrees, then a Taylor series.
The angles are within 1 (sin, cos) and 2 (atan2) units in the last place of the true values
(tests/test_determinism.py measures it), exact where the answer is a float (cos and sin at
multiples of 90 degrees, atan2 on the axes and diagonals), and, above all, the same bits on
every machine.
"""

import math

import numpy as np

RAD_PER_DEG = math.pi / 180.0
DEG_PER_RAD = 180.0 / math.pi


def _taylor(first: int, terms: int) -> tuple[float, ...]:
    """Coefficients (-1)^k / (first + 2k)! for k = 1..terms (int / int is correctly rounded)."""
    return tuple(
        (-1 if k % 2 else 1) / math.factorial(first + 2 * k) for k in range(1, terms + 1)
    )


_SIN = _taylor(1, 10)  # -1/3!, 1/5!, ..., 1/21!: enough for |x| <= pi/4
_COS = _taylor(0, 10)  # -1/2!, 1/4!, ..., 1/20!
_ATAN = tuple((-1 if k % 2 else 1) / (2 * k + 1) for k in range(1, 22))  # |u| <= tan(pi/8)
TAN_22_5 = 0.41421356237309503  # ~ sqrt(2) - 1: where _atan_unit switches formulas


def _horner(coefficients: tuple[float, ...], z):
    """c0 + z (c1 + z (c2 + ...)): works on floats and arrays alike."""
    total = coefficients[-1]
    for c in coefficients[-2::-1]:
        total = c + z * total
    return total


# ---------------------------------------------------------------- vectors


def dot(a, b):
    """Sum over the last axis of a * b, left to right (a @ b without BLAS)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"last axes differ: {a.shape} and {b.shape}")
    total = a[..., 0] * b[..., 0]
    for k in range(1, a.shape[-1]):
        total = total + a[..., k] * b[..., k]
    return total


def norm(v):
    """Euclidean length over the last axis."""
    return np.sqrt(dot(v, v))


def cross(a, b) -> np.ndarray:
    """Cross product of 3-vectors over the last axis."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return np.stack(
        [
            a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1],
            a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2],
            a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0],
        ],
        axis=-1,
    )


def transform(points, rows) -> np.ndarray:
    """points @ rows.T: column i holds dot(points, rows[i])."""
    points = np.asarray(points, dtype=float)
    return np.stack([dot(points, row) for row in np.asarray(rows, dtype=float)], axis=-1)


def total(terms) -> np.ndarray:
    """Sum over the first axis, first to last: the last running sum of np.add.accumulate,
    which adds in order by definition (np.sum may pair terms per SIMD width)."""
    return np.add.accumulate(np.asarray(terms, dtype=float), axis=0)[-1]


# ---------------------------------------------------------------- angles


def cos_sin_deg(degrees: float) -> tuple[float, float]:
    """(cos, sin) of an angle in degrees; exact at multiples of 90."""
    r = math.fmod(degrees, 360.0)  # exact
    n = math.floor(r / 90.0 + 0.5)  # nearest quadrant
    x = (r - 90.0 * n) * RAD_PER_DEG  # the subtraction is exact; |x| <= pi/4 (+ a rounding)
    z = x * x
    s, c = x + x * z * _horner(_SIN, z), 1.0 + z * _horner(_COS, z)
    # 0.0 - s, not -s: a zero stays +0.0
    return ((c, s), (0.0 - s, c), (0.0 - c, 0.0 - s), (s, 0.0 - c))[n % 4]


def cos_sin_deg_array(degrees) -> tuple[np.ndarray, np.ndarray]:
    """cos_sin_deg over an array, element for element the same bits."""
    r = np.fmod(np.asarray(degrees, dtype=float), 360.0)
    n = np.floor(r / 90.0 + 0.5)
    x = (r - 90.0 * n) * RAD_PER_DEG
    z = x * x
    s, c = x + x * z * _horner(_SIN, z), 1.0 + z * _horner(_COS, z)
    q = n.astype(np.int64) % 4
    cos = np.choose(q, [c, 0.0 - s, 0.0 - c, s])
    sin = np.choose(q, [s, c, 0.0 - s, 0.0 - c])
    return cos, sin


def _atan_series(u):
    """atan(u) in degrees for |u| <= tan(22.5 degrees)."""
    z = u * u
    return (u + u * z * _horner(_ATAN, z)) * DEG_PER_RAD


def _atan_unit(t: float) -> float:
    """atan(t) in degrees for t in [0, 1]; exactly 45 at t = 1."""
    if t <= TAN_22_5:
        return _atan_series(t)
    return 45.0 - _atan_series((1.0 - t) / (1.0 + t))


def _atan_unit_array(t: np.ndarray) -> np.ndarray:
    """_atan_unit over an array."""
    low = t <= TAN_22_5
    return np.where(low, _atan_series(t), 45.0 - _atan_series((1.0 - t) / (1.0 + t)))


def atan2_deg(y: float, x: float) -> float:
    """The angle of (x, y) in degrees, in [-180, 180]; 0 for the zero vector."""
    ay, ax = abs(y), abs(x)
    if ay == 0.0 and ax == 0.0:
        return 0.0
    steep = ay > ax
    angle = _atan_unit(ax / ay if steep else ay / ax)
    if steep:
        angle = 90.0 - angle
    if x < 0:
        angle = 180.0 - angle
    return -angle if y < 0 else angle


def atan2_deg_array(y, x) -> np.ndarray:
    """atan2_deg over arrays, element for element the same bits."""
    y, x = np.broadcast_arrays(np.asarray(y, dtype=float), np.asarray(x, dtype=float))
    ay, ax = np.abs(y), np.abs(x)
    steep = ay > ax
    big, small = np.where(steep, ay, ax), np.where(steep, ax, ay)
    angle = _atan_unit_array(np.where(big > 0, small / np.where(big > 0, big, 1.0), 0.0))
    angle = np.where(steep, 90.0 - angle, angle)
    angle = np.where(x < 0, 180.0 - angle, angle)
    return np.where(y < 0, -angle, angle)
