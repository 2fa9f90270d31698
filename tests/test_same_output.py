"""A tiny build is the same output (tests/same_output.py) under other CPUs' numeric kernels:
OpenBLAS kernels and numpy SIMD levels change nothing the launcher or the workers store.
Marked slow (a build per environment); CI runs it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import same_output
from tests.test_determinism import environments

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--scenes-per-split", "1", "--resolution", "48x32", "--samples", "1",
        "--quality", "draft", "--n-gpus", "0", "--yes"]
# Blender's own code is not ours to pin: glibc's libm variants stay out of this comparison.
KERNELS = ("openblas-Prescott", "openblas-Haswell", "openblas-SkylakeX", "numpy-no-avx512",
           "numpy-no-avx2-fma")


def build(out: Path, overrides: dict) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "OPENBLAS_CORETYPE")}
    env.update(overrides)
    done = subprocess.run([sys.executable, str(ROOT / "headless" / "build.py"), "--output",
                           str(out), *TINY], env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "data"
    build(out, {})
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", KERNELS)
def test_a_tiny_build_is_the_same_output_under(name, reference, tmp_path):
    overrides = environments().get(name)
    if overrides is None:
        pytest.skip(f"{name}: this CPU has nothing to switch off")
    build(tmp_path / "data", overrides)
    assert same_output.differences(tmp_path / "data", reference) == []
