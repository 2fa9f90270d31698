"""The same bytes on every CPU (issue 11).

Three things choose code per CPU at run time and can move the last bit of a float64:
OpenBLAS kernels (`@`, dot, linalg), numpy's SIMD loops (transcendental ufuncs, float
reductions) and glibc's libm variants behind `math` (FMA or not). Here:
1. a scan of every core module's source, and of the dataset wing's question makers, for
   those operations, naming file and line;
2. `exact`'s angles against decimal references, and its scalar and array paths agreeing;
3. the proof: a handful of scenes sampled, gated and recorded (masks painted from the
   silhouettes, back to front) in subprocesses under other OpenBLAS kernels, numpy SIMD
   levels and libm variants, compared by SHA-256.
`python tests/test_determinism.py --digests` prints this environment's digests, one a line
(to diff two interpreters or machines; PYTHONPATH=addon:.); --probe prints them as JSON.
"""

import ast
import hashlib
import json
import math
import os
import pathlib
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal, localcontext

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "addon" / "scenegen_addon"
CORE = PACKAGE / "core"
# Beside the core: the reader code that decides which questions (and extraction prompts)
# exist and how objects are named.
DATASET_DECIDERS = [PACKAGE / "dataset" / name for name in (
    "questions.py", "describe.py", "candidates.py", "margins.py", "balance.py", "wording.py",
    "blind.py", "extraction_prompts.py")]

# ------------------------------------------------------------------ 1. the source scan

BLAS = "a BLAS kernel chosen per CPU"
SIMD_SUM = "summation order depends on the SIMD width"
SIMD_UFUNC = "a SIMD loop chosen per CPU"
LIBM = "glibc picks an FMA or plain variant per CPU"
NUMPY_BANNED = {
    **dict.fromkeys(
        ("dot", "matmul", "einsum", "inner", "tensordot", "vdot", "convolve", "correlate"), BLAS
    ),
    **dict.fromkeys(
        ("sum", "mean", "average", "std", "var", "prod", "trace", "nansum", "nanmean",
         "nanprod", "nanstd", "nanvar"),
        SIMD_SUM,
    ),
    **dict.fromkeys(
        ("sin", "cos", "tan", "arcsin", "arccos", "arctan", "arctan2", "sinh", "cosh", "tanh",
         "arcsinh", "arccosh", "arctanh", "exp", "exp2", "expm1", "log", "log2", "log10",
         "log1p", "power", "float_power", "hypot", "cbrt", "logaddexp", "logaddexp2", "sinc",
         "angle"),
        SIMD_UFUNC,
    ),
}
NUMPY_BANNED_MODULES = {"linalg": BLAS, "fft": SIMD_UFUNC}
MATH_BANNED = dict.fromkeys(
    ("sin", "cos", "tan", "asin", "acos", "atan", "atan2", "sinh", "cosh", "tanh", "asinh",
     "acosh", "atanh", "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "pow", "hypot",
     "dist", "cbrt", "erf", "erfc", "gamma", "lgamma"),
    LIBM,
)
ARRAY_METHODS = {"dot": BLAS, **dict.fromkeys(("sum", "mean", "std", "var", "prod", "trace"),
                                              SIMD_SUM)}


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> dotted origin, from the module's imports ('np' -> 'numpy')."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                local = a.asname or a.name.split(".")[0]
                names[local] = a.name if a.asname else local
        elif isinstance(node, ast.ImportFrom):  # relative ones keep their dots: never numpy
            module = "." * node.level + (f"{node.module}." if node.module else "")
            for a in node.names:
                names[a.asname or a.name] = f"{module}{a.name}"
    return names


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or node.id not in aliases:
        return None
    return ".".join([aliases[node.id], *reversed(parts)])


def _why_banned(dotted: str) -> str | None:
    parts = dotted.split(".")
    if parts[0] == "numpy" and len(parts) >= 2:
        if parts[1] in NUMPY_BANNED_MODULES:
            return NUMPY_BANNED_MODULES[parts[1]]
        if len(parts) == 2 and parts[1] in NUMPY_BANNED:
            return NUMPY_BANNED[parts[1]]
        if len(parts) == 3 and parts[2] == "reduce":  # np.add.reduce and friends
            return SIMD_SUM
    if parts[0] == "math" and len(parts) == 2:
        return MATH_BANNED.get(parts[1])
    return None


class _Scanner(ast.NodeVisitor):
    """Collects (line, function, what, why) for each CPU-dependent operation."""

    def __init__(self, aliases: dict[str, str]):
        self.aliases, self.scope, self.hits = aliases, [], []

    def hit(self, node, what: str, why: str) -> None:
        self.hits.append((node.lineno, ".".join(self.scope), what, why))

    def visit_FunctionDef(self, node):
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    visit_AsyncFunctionDef = visit_ClassDef = visit_FunctionDef

    def visit_BinOp(self, node):
        self._operator(node, node.op)
        self.generic_visit(node)

    def visit_AugAssign(self, node):
        self._operator(node, node.op)
        self.generic_visit(node)

    def _operator(self, node, op) -> None:
        if isinstance(op, ast.MatMult):
            self.hit(node, "the @ operator", BLAS)
        elif isinstance(op, ast.Pow):
            self.hit(node, "the ** operator", "libm pow or numpy power: " + LIBM)

    def visit_ImportFrom(self, node):
        for a in node.names:
            why = node.module and not node.level and _why_banned(f"{node.module}.{a.name}")
            if why or (node.module or "").startswith(("numpy.linalg", "numpy.fft")):
                self.hit(node, f"from {node.module} import {a.name}", why or BLAS)

    def visit_Attribute(self, node):
        dotted = _dotted(node, self.aliases)
        why = dotted and _why_banned(dotted)
        if why:
            self.hit(node, dotted, why)
            return  # one report for np.linalg.norm, not one per part
        self.generic_visit(node)

    def visit_Name(self, node):
        dotted = self.aliases.get(node.id)
        why = dotted and "." in dotted and _why_banned(dotted)
        if why:
            self.hit(node, dotted, why)

    def visit_Call(self, node):
        func = node.func
        if (
            isinstance(func, ast.Attribute)
            and func.attr in ARRAY_METHODS
            and _dotted(func.value, self.aliases) is None
        ):
            self.hit(node, f"the .{func.attr}() method", ARRAY_METHODS[func.attr])
        self.generic_visit(node)


def scan(source: str, filename: str) -> list[str]:
    """'file:line: what (why)' for each CPU-dependent operation."""
    tree = ast.parse(source, filename)
    scanner = _Scanner(_aliases(tree))
    scanner.visit(tree)
    hits = sorted(set(scanner.hits))
    return [f"{filename}:{line}: {what} ({why})" for line, _, what, why in hits]


def test_core_and_the_question_makers_use_no_cpu_dependent_arithmetic():
    modules = sorted(CORE.rglob("*.py")) + DATASET_DECIDERS
    assert len(modules) >= 15 and all(path.is_file() for path in DATASET_DECIDERS)
    problems = []
    for path in modules:
        problems += scan(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    assert not problems, "use core/exact.py or plain float arithmetic:\n" + "\n".join(problems)


def test_the_scan_names_file_and_line_of_each_kind():
    source = "\n".join(
        [
            "import math",  # 1
            "import numpy as np",  # 2
            "from numpy.linalg import norm",  # 3
            "from math import atan2 as a2",  # 4
            "x = np.ones(3) @ np.ones(3)",  # 5
            "y = np.linalg.inv(np.eye(3))",  # 6
            "z = np.arctan2(1.0, 2.0) + math.sin(0.5)",  # 7
            "w = np.ones(4).sum() + np.add.reduce([1.0]) + np.mean([2.0])",  # 8
            "v = a2(1.0, 2.0) + 2.0 ** 0.5 + np.ones(2).dot(np.ones(2))",  # 9
            "ok = np.sqrt(2.0) + math.sqrt(2.0) + np.degrees(1.0) + math.floor(2.5)",  # 10
            "ok2 = np.cumsum([1.0, 2.0])[-1] + math.fsum([0.1, 0.2]) + sum([1.0, 2.0])",  # 11
        ]
    )
    found = [p.split(": ", 1) for p in scan(source, "core/demo.py")]
    lines = [int(place.rsplit(":", 1)[1]) for place, _ in found]
    assert lines == [3, 4, 5, 6, 7, 7, 8, 8, 8, 9, 9, 9]
    whats = [what.split(" (")[0] for _, what in found]
    assert whats == [
        "from numpy.linalg import norm",
        "from math import atan2",
        "the @ operator",
        "numpy.linalg.inv",
        "math.sin",
        "numpy.arctan2",
        "numpy.add.reduce",
        "numpy.mean",
        "the .sum() method",
        "math.atan2",
        "the ** operator",
        "the .dot() method",
    ]


def test_numpy_degrees_and_radians_are_one_multiplication():
    # The scan lets them through for this reason: x * constant is correctly rounded.
    x = np.random.default_rng(7).normal(size=200_000) * 1000.0
    assert np.array_equal(np.degrees(x), x * (180.0 / math.pi))
    assert np.array_equal(np.radians(x), x * (math.pi / 180.0))


# ------------------------------------------------------------------ 2. exact's angles


def _pi() -> Decimal:
    """pi from Machin's formula, 16 atan(1/5) - 4 atan(1/239), at the context's precision."""
    return 16 * _atan_series(Decimal(1) / 5) - 4 * _atan_series(Decimal(1) / 239)


def _atan_series(x: Decimal) -> Decimal:
    total, term, k = Decimal(0), x, 0
    while abs(term) > Decimal(10) ** -45:
        total += term / (2 * k + 1)
        term = -term * x * x
        k += 1
    return total


def _cos_sin_reference(degrees: float) -> tuple[float, float]:
    with localcontext() as ctx:
        ctx.prec = 50
        pi = _pi()
        x = Decimal(degrees) % 360 * pi / 180
        cos, sin, term, k = Decimal(0), Decimal(0), Decimal(1), 0
        while k < 4 or abs(term) > Decimal(10) ** -45:
            signed = term if k % 4 < 2 else -term
            if k % 2:
                sin += signed
            else:
                cos += signed
            k += 1
            term = term * x / k
        return float(cos), float(sin)


def _atan2_reference(y: float, x: float) -> float:
    with localcontext() as ctx:
        ctx.prec = 50
        pi = _pi()
        dy, dx = Decimal(y), Decimal(x)
        if dx == 0:
            return math.copysign(90.0, y) if y else 0.0
        t = abs(dy / dx)
        for _ in range(4):  # atan t = 2 atan(t / (1 + sqrt(1 + t^2))), four times
            t = t / (1 + (1 + t * t).sqrt())
        angle = 16 * _atan_series(t)
        if dx < 0:
            angle = pi - angle
        return float((-angle if dy < 0 else angle) * 180 / pi)


def _ulps(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    return np.abs(got - want) / np.spacing(np.abs(want))


def test_sines_and_cosines_of_degrees_within_one_ulp():
    from scenegen_addon.core import exact

    rng = np.random.default_rng(3)
    degrees = np.concatenate([rng.uniform(-720.0, 720.0, 600), np.arange(-360.0, 360.0, 7.5)])
    cos, sin = exact.cos_sin_deg_array(degrees)
    want = np.array([_cos_sin_reference(float(d)) for d in degrees])
    for got, ref in ((cos, want[:, 0]), (sin, want[:, 1])):
        exact_zero = np.abs(ref) < 1e-30  # the reference's pi has 50 digits, not infinitely many
        assert np.all(got[exact_zero] == 0.0)  # multiples of 90: exactly 0 (and +0.0)
        assert not np.any(np.signbit(got[exact_zero]))
        assert _ulps(got[~exact_zero], ref[~exact_zero]).max() <= 1.0
    scalar = [exact.cos_sin_deg(float(d)) for d in degrees]
    assert scalar == list(zip(cos.tolist(), sin.tolist(), strict=True))


def test_atan2_in_degrees_within_two_ulps():
    from scenegen_addon.core import exact

    rng = np.random.default_rng(4)
    y, x = rng.normal(size=(2, 800)) * rng.choice([1e-3, 1.0, 1e3], size=(2, 800))
    got = exact.atan2_deg_array(y, x)
    want = np.array([_atan2_reference(float(a), float(b)) for a, b in zip(y, x, strict=True)])
    assert _ulps(got, want).max() <= 2.0
    assert [exact.atan2_deg(float(a), float(b)) for a, b in zip(y, x, strict=True)] == got.tolist()
    # the axes and diagonals come out exact; the zero vector is 0 (FORMAT 6.4's degenerate case)
    cases = {(0, 1): 0.0, (1, 1): 45.0, (1, 0): 90.0, (1, -1): 135.0, (0, -1): 180.0,
             (-1, -1): -135.0, (-1, 0): -90.0, (-1, 1): -45.0, (0, 0): 0.0}
    for (a, b), angle in cases.items():
        assert exact.atan2_deg(float(a), float(b)) == angle
        assert exact.atan2_deg_array(float(a), float(b)) == angle


def test_vector_helpers_sum_in_written_order():
    from scenegen_addon.core import exact

    a = np.array([[1e16, 1.0, -1e16], [0.5, 0.25, 0.125]])
    # left to right: (1e16 + 1) - 1e16 = 0 in float64; a pairwise or FMA sum could give 1
    assert exact.dot(a, np.ones(3)).tolist() == [0.0, 0.875]
    assert exact.total([1e16, 1.0, -1e16]).tolist() == 0.0
    assert exact.norm([3.0, 4.0]) == 5.0
    assert exact.cross([1.0, 0.0, 0.0], [0.0, 1.0, 0.0]).tolist() == [0.0, 0.0, 1.0]
    rows = np.array([[0.0, 1.0, 0.0], [2.0, 0.0, 0.0]])
    assert exact.transform([[1.0, 2.0, 3.0]], rows).tolist() == [[2.0, 2.0]]
    with pytest.raises(ValueError, match="last axes differ"):
        exact.dot([1.0, 2.0], [1.0, 2.0, 3.0])


# ------------------------------------------------------------------ 3. the sweep

GLOBAL_SEED = 42
FIXED_SCENES = ("train_00000", "val_00003", "test_iid_00006", "test_hard_00005")
RENDER = {"engine": "CYCLES", "samples": 64, "device": "CPU", "device_name": "probe",
          "blender_version": "5.0.1", "seconds": 0.0}
OVERRIDES = ("OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES", "GLIBC_TUNABLES")
GLIBC_NO_FMA = "glibc.cpu.hwcaps=-AVX2_Usable,-FMA_Usable,-AVX2,-FMA"
LIBM_CANARY = [0.1 * k + 0.05 for k in range(2000)]


def _scenes():
    from scenegen_addon.core import plan, presets

    entries = plan.build_plan(presets.size_counts("tiny"), GLOBAL_SEED)
    fifteen = next(e for e in entries if e.split == "test_comp" and e.n_objects == 15)
    return [e for e in entries if e.scene_id in FIXED_SCENES] + [fifteen]


def _blas_core() -> str:
    """OpenBLAS's kernel name, read from the library numpy loaded ('?' if not found)."""
    import ctypes
    import glob

    for lib in glob.glob(os.path.join(os.path.dirname(np.__file__) + ".libs", "*openblas*")):
        dll = ctypes.CDLL(lib)
        for name in ("scipy_openblas_get_corename64_", "openblas_get_corename64_",
                     "openblas_get_corename"):
            getter = getattr(dll, name, None)
            if getter is not None:
                getter.restype = ctypes.c_char_p
                return getter().decode()
    return "?"


def _numpy_features() -> dict[str, bool]:
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # numpy 1.x
        from numpy.core._multiarray_umath import __cpu_features__
    return dict(__cpu_features__)


def probe() -> dict:
    """Digests of everything the core computes from the seeds of a few scenes, and what
    this process runs on."""
    from scenegen_addon.core import camera, png, presets, records, sampling, shapes, visibility

    from tests.gt_scenes import paint_mask

    def sha(*chunks) -> str:
        h = hashlib.sha256()
        for chunk in chunks:
            h.update(chunk if isinstance(chunk, bytes) else json.dumps(chunk).encode())
        return h.hexdigest()

    out = {"meshes": sha(*(shapes.mesh(s).vertices.tobytes() for s in shapes.SHAPES))}
    views = camera.rig(*presets.CANONICAL_RESOLUTION)
    for entry in _scenes():
        scene = sampling.sample_scene(entry, GLOBAL_SEED)
        gate = visibility.gate(scene.objects)
        masks = [paint_mask(scene, view) for view in views]
        record = records.scene_record(scene, views, masks, RENDER)
        out[f"{scene.scene_id} spec"] = sha(scene.to_dict())
        out[f"{scene.scene_id} gate"] = sha(gate.fractions.tobytes(), gate.in_frame.tobytes())
        out[f"{scene.scene_id} masks"] = sha(*(png.encode_png16(m) for m in masks))
        out[f"{scene.scene_id} record"] = sha(record)
    libm = sha(*(math.sin(x) for x in LIBM_CANARY))
    return {"digests": out, "blas": _blas_core(), "numpy": _numpy_features(), "libm": libm}


def _disable(features: dict[str, bool], prefixes: tuple[str, ...]) -> str:
    """NPY_DISABLE_CPU_FEATURES naming every dispatch target this numpy finds on this CPU
    that starts with one of `prefixes` (numpy 2 groups them as X86_V3/X86_V4)."""
    try:
        from numpy._core._multiarray_umath import __cpu_baseline__, __cpu_dispatch__
    except ImportError:
        from numpy.core._multiarray_umath import __cpu_baseline__, __cpu_dispatch__
    return " ".join(
        f for f in __cpu_dispatch__
        if f.startswith(prefixes) and features.get(f) and f not in __cpu_baseline__
    )


def environments() -> dict[str, dict[str, str]]:
    """name -> the overrides of one run; 'default' has none."""
    features = _numpy_features()
    envs = {"default": {}}
    for core in ("Prescott", "Haswell", "SkylakeX", "Zen"):
        envs[f"openblas-{core}"] = {"OPENBLAS_CORETYPE": core}
    no_avx512 = _disable(features, ("AVX512", "X86_V4"))
    if no_avx512:
        envs["numpy-no-avx512"] = {"NPY_DISABLE_CPU_FEATURES": no_avx512}
    no_avx2 = _disable(features, ("AVX512", "X86_V4", "X86_V3", "AVX2", "FMA3"))
    if no_avx2 != no_avx512:
        envs["numpy-no-avx2-fma"] = {"NPY_DISABLE_CPU_FEATURES": no_avx2}
    if sys.platform.startswith("linux"):
        envs["libm-no-fma"] = {"GLIBC_TUNABLES": GLIBC_NO_FMA}
        envs["old-cpu"] = {  # all three at once, as on a CPU from before 2013
            "OPENBLAS_CORETYPE": "Prescott",
            "GLIBC_TUNABLES": GLIBC_NO_FMA,
            **({"NPY_DISABLE_CPU_FEATURES": no_avx2} if no_avx2 else {}),
        }
    return envs


def _run(overrides: dict[str, str]) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in OVERRIDES}
    env.update(overrides)
    env["OPENBLAS_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "addon"), str(ROOT)])
    done = subprocess.run(
        [sys.executable, __file__, "--probe"], env=env, cwd=ROOT, capture_output=True,
        text=True, timeout=300,
    )
    assert done.returncode == 0, f"probe under {overrides} failed:\n{done.stderr[-3000:]}"
    return json.loads(done.stdout)


def test_same_digests_under_every_kernel_simd_level_and_libm_variant():
    envs = environments()
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip(envs, pool.map(_run, envs.values()), strict=True))
    base = results["default"]
    assert len(base["digests"]) == 1 + 4 * (len(FIXED_SCENES) + 1)  # meshes; 4 per scene
    # the overrides took effect, else the comparison proves nothing
    blas = {results[n]["blas"] for n in envs if n.startswith("openblas-")}
    assert "?" in blas or len(blas) >= 2, blas
    for name, overrides in envs.items():
        off = overrides.get("NPY_DISABLE_CPU_FEATURES", "").split()
        assert not any(results[name]["numpy"].get(f) for f in off), (name, off)
    if "libm-no-fma" in envs and base["numpy"].get("FMA3"):
        assert results["libm-no-fma"]["libm"] != base["libm"]  # glibc really switched variant
    differing = [
        f"{name} ({envs[name]}): " + ", ".join(
            key for key, digest in result["digests"].items() if digest != base["digests"][key]
        )
        for name, result in results.items()
        if result["digests"] != base["digests"]
    ]
    assert not differing, "differ from the default environment:\n" + "\n".join(differing)


if __name__ == "__main__" and sys.argv[1:] == ["--probe"]:
    print(json.dumps(probe()))
elif __name__ == "__main__" and sys.argv[1:] == ["--digests"]:  # one line each, for diff
    print("\n".join(f"{key}: {digest}" for key, digest in probe()["digests"].items()))
