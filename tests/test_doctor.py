"""The doctor: its pure parts on fake inputs, then one real CPU probe at a tiny size."""

import subprocess
import sys
from pathlib import Path

import pytest

from headless import doctor

ROOT = Path(__file__).resolve().parent.parent


def test_eta_table_adds_the_devices_rates():
    # two devices at 10 s per scene: 720 scenes per hour together
    rows = {r["size"]: r for r in doctor.eta_table([10.0, 10.0])}
    assert rows["tiny"] == {"size": "tiny", "scenes": 40, "seconds": pytest.approx(200.0)}
    assert rows["small"]["scenes"] == 1520 and rows["small"]["seconds"] == pytest.approx(7600.0)
    assert rows["large"]["scenes"] == 152000
    assert rows["large"]["seconds"] == pytest.approx(760000.0)
    # one at 20 s and one at 5 s: 180 + 720 = 900 scenes per hour
    assert doctor.eta_table([20.0, 5.0])[0]["seconds"] == pytest.approx(40 / 900 * 3600)
    for bad in ([], [0.0], [3.0, -1.0]):
        with pytest.raises(ValueError, match="seconds_per_scene"):
            doctor.eta_table(bad)


def test_probe_lines_ignore_blender_noise():
    out = ("Blender 5.0.1 (hash x)\nRead prefs\nSCENEGEN_DOCTOR {\"a\": 1}\n"
           "Fra:1 Mem:12M | Rendering\nSCENEGEN_DOCTOR {\"b\": [2]}\nBlender quit\n")
    assert doctor.probe_lines(out) == [{"a": 1}, {"b": [2]}]


def test_find_blender_order(monkeypatch):
    monkeypatch.setattr(doctor.shutil, "which", lambda name: "/usr/bin/blender")
    assert doctor.find_blender("/opt/b/blender", {"BLENDER": "/env/blender"}) == "/opt/b/blender"
    assert doctor.find_blender(None, {"BLENDER": "/env/blender"}) == "/env/blender"
    assert doctor.find_blender(None, {}) == "/usr/bin/blender"
    monkeypatch.setattr(doctor.shutil, "which", lambda name: None)
    assert doctor.find_blender(None, {}) is None


def test_probe_command():
    args = doctor.probe_args("draft", 96, 64, 2, 1, "CPU")
    assert args == ["--quality", "draft", "--width", "96", "--height", "64", "--samples", "2",
                    "--scenes", "1", "--device", "CPU"]
    exe = doctor.probe_command("/b/blender", args)
    assert exe[:7] == ["/b/blender", "-b", "--factory-startup", "--python-exit-code", "1",
                       "--python", str(ROOT / "headless/doctor.py")]
    assert exe[7:9] == ["--", "--probe"] and exe[9:] == args
    assert doctor.probe_command(None, args) == [sys.executable, str(ROOT / "headless/doctor.py"),
                                                "--probe", *args]


def fake_result(device, seconds):
    return {"blender_version": "5.0.1", "devices": [["OPTIX", "RTX"], ["CPU", "Xeon"]],
            "device": device, "device_name": "RTX" if device != "CPU" else "Xeon",
            "warmup_seconds": 95.0, "seconds_per_scene": seconds, "n_objects": [7, 5]}


def test_one_probe_per_gpu(monkeypatch, capsys):
    calls = []

    def run_probe(blender, args, gpu, timeout):
        calls.append((gpu, args[-1]))
        return fake_result("OPTIX", {"3": 10.0, "5": 20.0}[gpu])

    monkeypatch.setattr(doctor, "gpu_list", lambda: ["3", "5"])
    monkeypatch.setattr(doctor, "run_probe", run_probe)
    assert doctor.main(["--quality", "high"]) == 0
    assert sorted(calls) == [("3", "AUTO"), ("5", "AUTO")]
    text = capsys.readouterr().out
    assert "GPU 3: Cycles sees OPTIX RTX, CPU Xeon" in text
    assert "warm-up 95.0 s, 20.0 s per scene (7, 5 objects)" in text
    assert "ETA at --quality high (1024x768, 512 samples) on 2 device(s)" in text
    assert "--size tiny         40 scenes  4m27s" in text  # 40 / 540 h


def test_gpu_probe_that_finds_no_gpu_fails(monkeypatch, capsys):
    monkeypatch.setattr(doctor, "gpu_list", lambda: ["0"])
    monkeypatch.setattr(doctor, "run_probe", lambda *a: fake_result("CPU", 30.0))
    assert doctor.main([]) == 1
    assert "GPU 0: FAILED: Cycles found no GPU on it" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--blender", "/no/such/blender"], "--blender /no/such/blender does not exist"),
    (["--quality", "ultra"], "invalid choice: 'ultra'"),
    (["--resolution", "960x320"], "wider than 3:2"),
    (["--n-gpus", "1"], "--n-gpus 1: 0 GPU(s) visible"),
])
def test_bad_arguments(monkeypatch, capsys, argv, message):
    monkeypatch.setattr(doctor, "gpu_list", lambda: [])
    with pytest.raises(SystemExit) as exc:
        doctor.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("blender", [None, str(ROOT / "tests/blender")])
def test_real_cpu_probe(blender):
    """The embedded bpy module, and a Blender executable (tests/blender), at 96x64."""
    cmd = [sys.executable, str(ROOT / "headless/doctor.py"), "--quality", "draft",
           "--resolution", "96x64", "--samples", "2", "--scenes", "1", "--n-gpus", "0"]
    if blender:
        cmd += ["--blender", blender]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert "Blender 5.0.1" in lines
    assert any(line.startswith("  renders on CPU (") and " s per scene (" in line
               for line in lines)
    assert "ETA at --quality draft (96x64, 2 samples) on 1 device(s) working together:" in lines
    assert [line.split()[1] for line in lines if line.startswith("  --size ")] == [
        "tiny", "small", "medium", "large"]
