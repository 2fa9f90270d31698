"""The doctor: its pure parts on recorded outputs and fake device lists, the whole command on
fake probes (the choices it records: backend and start order), real probes that must fail
fast where there is no GPU, and one real CPU probe at a tiny size whose figures the
launcher's estimate reads back."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from scenegen_addon.launcher import doctor, estimate, gpus, nvidia_smi
from scenegen_addon.launcher import doctor_report as report

ROOT = Path(__file__).resolve().parent.parent

# --- pure parts ------------------------------------------------------------------------------


def test_eta_table_adds_the_devices_rates():
    # two devices at 10 s per scene: 720 scenes per hour together
    rows = {r["size"]: r for r in report.eta_table([10.0, 10.0])}
    assert rows["tiny"] == {"size": "tiny", "scenes": 40, "seconds": pytest.approx(200.0)}
    assert rows["small"]["scenes"] == 1520 and rows["small"]["seconds"] == pytest.approx(7600.0)
    assert rows["large"]["scenes"] == 152000
    assert rows["large"]["seconds"] == pytest.approx(760000.0)
    # one at 20 s and one at 5 s: 180 + 720 = 900 scenes per hour
    assert report.eta_table([20.0, 5.0])[0]["seconds"] == pytest.approx(40 / 900 * 3600)
    for bad in ([], [0.0], [3.0, -1.0]):
        with pytest.raises(ValueError, match="seconds_per_scene"):
            report.eta_table(bad)


def test_probe_command():
    args = doctor.probe_args("draft", 96, 64, 2, 1, "CPU")
    assert args == ["--quality", "draft", "--width", "96", "--height", "64", "--samples", "2",
                    "--scenes", "1", "--device", "CPU"]
    assert doctor.probe_args("draft", 96, 64, 2, 1, "OPTIX", True)[-3:] == [
        "--device", "OPTIX", "--denoise-check"]
    run = str(ROOT / "addon/scenegen_addon/scripts/run.py")
    assert doctor.probe_command("/b/blender", args) == [
        "/b/blender", "-b", "--factory-startup", "--python-exit-code", "1", "--python", run,
        "--", "doctor-probe", *args]
    assert doctor.probe_command(None, args) == [sys.executable, run, "doctor-probe", *args]


# recorded `nvidia-smi --query-gpu=uuid,name,driver_version,compute_mode,mig.mode.current
# --format=csv,noheader`: an A100, an A100 in MIG mode and exclusive, a card without MIG
QUERY = (
    "GPU-0000aaaa-1111-2222-3333-444455556666, NVIDIA A100-SXM4-80GB, 535.104.05, Default, "
    "Disabled\n"
    "GPU-1111bbbb-1111-2222-3333-444455556666, NVIDIA A100-SXM4-80GB, 535.104.05, "
    "Exclusive_Process, Enabled\n"
    "GPU-2222cccc-1111-2222-3333-444455556666, NVIDIA GeForce RTX 4090, 550.54.14, Default, "
    "[N/A]\n")


def test_parse_gpu_query():
    infos = nvidia_smi.parse_query(QUERY)
    assert list(infos) == ["GPU-0000aaaa-1111-2222-3333-444455556666",
                           "GPU-1111bbbb-1111-2222-3333-444455556666",
                           "GPU-2222cccc-1111-2222-3333-444455556666"]
    assert infos["GPU-0000aaaa-1111-2222-3333-444455556666"] == nvidia_smi.GpuInfo(
        "NVIDIA A100-SXM4-80GB", "535.104.05", "Default", "Disabled")
    assert infos["GPU-1111bbbb-1111-2222-3333-444455556666"].compute_mode == "Exclusive_Process"
    assert infos["GPU-1111bbbb-1111-2222-3333-444455556666"].mig_mode == "Enabled"
    assert infos["GPU-2222cccc-1111-2222-3333-444455556666"].mig_mode == "N/A"
    # nothing, or lines it cannot read: no GPU known, never an error
    assert nvidia_smi.parse_query(None) == {}
    assert nvidia_smi.parse_query("NVIDIA-SMI has failed\nGPU-x, only, three\n") == {}
    assert nvidia_smi.GpuInfo() == nvidia_smi.GpuInfo("unknown", "unknown", "unknown", "unknown")


def test_query_gpus_without_or_with_a_failing_nvidia_smi(monkeypatch):
    monkeypatch.setattr(nvidia_smi.shutil, "which", lambda name: None)
    assert nvidia_smi.query() == ({}, None)
    monkeypatch.setattr(nvidia_smi.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    seen = []

    def failing(command, **kwargs):
        seen.append(command)
        return subprocess.CompletedProcess(command, 9, "", "NVIDIA-SMI has failed")

    monkeypatch.setattr(nvidia_smi.subprocess, "run", failing)
    assert nvidia_smi.query() == ({}, "exit status 9: NVIDIA-SMI has failed")
    assert seen == [["/usr/bin/nvidia-smi",
                     "--query-gpu=uuid,name,driver_version,compute_mode,mig.mode.current",
                     "--format=csv,noheader"]]


def result(device="OPTIX", first=95.0, scenes=(12.0, 12.0), start=4.0, denoise=None,
           listed=("OPTIX", "CUDA")):
    """A probe's result as run_probe returns it (wall_seconds added)."""
    wall = first + sum(scenes) + start + sum(d["seconds"] for d in (denoise or {}).values())
    return {"blender_version": "5.2.3 LTS",
            "devices": [[kind, "NVIDIA A100"] for kind in listed] + [["CPU", "Xeon"]],
            "gpu_default": listed[0], "device": device, "device_name": "NVIDIA A100",
            "first_scene_seconds": first, "scene_seconds": list(scenes),
            "seconds_per_scene": sum(scenes) / len(scenes), "n_objects": [7, 5],
            "denoise": denoise, "wall_seconds": wall}


DENOISE = {"on": {"seconds": 11.0, "render_seconds": 10.0, "denoising_use_gpu": True},
           "off": {"seconds": 14.5, "render_seconds": 13.5, "denoising_use_gpu": False}}


def test_start_kernel_load_and_cache_verdicts():
    cold, warm = result(first=95.0), result(first=14.0, denoise=DENOISE)
    assert report.start_seconds(cold) == pytest.approx(4.0)
    assert report.start_seconds(warm) == pytest.approx(4.0)  # the denoise scenes are renders
    assert report.kernel_load(cold) == pytest.approx(83.0)
    assert report.kernel_load(result(first=10.0)) == 0.0
    assert report.cache_verdict(cold, warm) == "the kernel cache works"
    assert (report.cache_verdict(cold, result(first=80.0))
            == "it compiled again: the kernel cache is not kept")
    assert report.cache_verdict(result(first=20.0), result(first=20.0)).startswith(
        "the cold process compiled little")


def test_denoise_verdicts():
    assert report.denoise_verdict(DENOISE) == "the GPU denoiser saves 3.5 s"
    same = {"on": {**DENOISE["on"], "render_seconds": 13.4}, "off": DENOISE["off"]}
    assert report.denoise_verdict(same).startswith("no faster with it on: OIDN may have run")
    stuck = {"on": {**DENOISE["on"], "denoising_use_gpu": False}, "off": DENOISE["off"]}
    assert report.denoise_verdict(stuck) == "the setting did not take"


# --- the command on fake GPUs and fake probes ---------------------------------------------

SMI = ("GPU 0: NVIDIA A100 (UUID: GPU-0000aaaa-1111-2222-3333-444455556666)\n"
       "GPU 1: NVIDIA A100 (UUID: GPU-1111bbbb-1111-2222-3333-444455556666)\n")
SMI_QUERY = ("GPU-0000aaaa-1111-2222-3333-444455556666, NVIDIA A100, 535.104.05, Default, "
             "Disabled\n"
             "GPU-1111bbbb-1111-2222-3333-444455556666, NVIDIA A100, 535.104.05, Default, "
             "Disabled\n")


def two_gpus(n_gpus=None):
    return list(gpus.assign(gpus.decide(SMI, ["/dev/nvidia0"], None), n_gpus))


def machine(query=SMI_QUERY, n_gpus=None, smi=SMI):
    """doctor.gpu_list on a machine whose nvidia-smi prints SMI and `query`."""
    setup = gpus.decide(smi, ["/dev/nvidia0"], None, infos=nvidia_smi.parse_query(query))
    return setup, list(gpus.assign(setup, n_gpus))


class FakeProbes:
    """Answers run_probe per GPU and stage as recorded timings would: GPU 0 renders a scene
    in 12 s alone and 20 s beside a second worker, GPU 1 in 14 s and 22 s; the first OptiX
    processes, both at once, compile for 83-88 s, the second finds the cache; CUDA takes
    `cuda` s per scene. A cold process alone on the machine (its own empty caches) compiles
    for `alone` s."""

    def __init__(self, fail=None, cuda=15.0, alone=60.0):
        self.calls, self.fail, self.lock, self.seen = [], fail or {}, threading.Lock(), {}
        self.cuda, self.alone, self.caches = cuda, alone, []

    def __call__(self, blender, args, env, timeout):
        device = args[args.index("--device") + 1]
        uuid = env["CUDA_VISIBLE_DEVICES"]
        group = uuid, device == "CUDA"  # the asked backend's processes, counted in order
        with self.lock:
            n = self.seen[group] = self.seen.get(group, 0) + 1
            self.calls.append((uuid, device, n, "--denoise-check" in args, dict(env)))
            cache = env.get("CUDA_CACHE_PATH")
            self.caches += [cache] if cache not in self.caches else []
        if (uuid, device, n) in self.fail:
            raise doctor.ProbeFailed(self.fail[uuid, device, n])
        slow = uuid.startswith("GPU-1111")
        alone = 14.0 if slow else 12.0
        if device == "CUDA":
            return result("CUDA", 60.0, (self.cuda, self.cuda))
        if cache != self.caches[0]:  # stage 5: alone, with new empty caches
            return result("OPTIX", self.alone, (alone, alone))
        if n == 1:  # cold
            return result("OPTIX", 100.0 if slow else 95.0, (alone, alone))
        if n == 2:  # second cold, with the denoiser check
            return result("OPTIX", 14.0, (alone, alone), denoise=DENOISE)
        return result("OPTIX", 16.0, ((22.0 if slow else 20.0),) * 2, start=5.0)  # the pair


def run_fake(monkeypatch, tmp_path, argv, probes, query=SMI_QUERY, gpu_list=None):
    monkeypatch.setattr(doctor, "gpu_list", gpu_list or (lambda n: machine(query, n)))
    monkeypatch.setattr(doctor, "run_probe", probes)
    for name in ("CUDA_CACHE_PATH", "OPTIX_CACHE_PATH", "CUDA_CACHE_MAXSIZE",
                 "OPTIX_CACHE_MAXSIZE"):
        monkeypatch.delenv(name, raising=False)
    return doctor.main(argv + ["--out", str(tmp_path / "doctor.json")])


def test_a_failed_gpu_query_is_said_as_a_warning(monkeypatch, tmp_path, capsys):
    """Before: nothing said, so the refusal of a MIG-enabled GPU without MIG devices could
    not happen unnoticed."""
    def failed_query(n_gpus):
        setup, devices = machine(None, n_gpus)
        return dataclasses.replace(setup, query_warning="the query failed"), devices

    assert run_fake(monkeypatch, tmp_path, [], FakeProbes(), gpu_list=failed_query) == 0
    assert "warning: the query failed\n" in capsys.readouterr().out


def test_every_question_answered_per_gpu(monkeypatch, tmp_path, capsys):
    probes = FakeProbes()
    assert run_fake(monkeypatch, tmp_path, ["--quality", "high"], probes) == 0
    g0, g1 = two_gpus()
    # per GPU: cold, second cold (with the denoiser check), two at once, CUDA; on the
    # model's first GPU a cold process alone; the GPU backend asked for (never AUTO), each
    # probe pinned to its GPU by UUID
    for g, alone in ((g0, [("OPTIX", 5, False)]), (g1, [])):
        mine = [(device, n, check) for uuid, device, n, check, _ in probes.calls
                if uuid == g.uuid]
        assert sorted(mine) == [("CUDA", 1, False), ("GPU", 1, False), ("OPTIX", 2, True),
                                ("OPTIX", 3, False), ("OPTIX", 4, False), *alone]
    # stages 1-4 share one kernel cache folder (kernel_cache.cache_env), the cold process
    # alone gets a new one: both in --out's folder, both removed at the end
    shared, fresh = (Path(c).parent for c in probes.caches)
    assert [env["CUDA_CACHE_PATH"] for _, _, n, _, env in probes.calls if n == 5] == [
        str(fresh / "cuda")]
    for folder in (shared, fresh):
        assert folder.parent == tmp_path and folder.name.startswith("doctor_kernel_cache_")
        assert not folder.exists()
    assert {env["OPTIX_CACHE_PATH"] for _, _, n, _, env in probes.calls if n != 5} == {
        str(shared / "optix")}
    folder = shared
    out = capsys.readouterr().out
    assert f"kernel caches: CUDA_CACHE_PATH={folder / 'cuda'}, OPTIX_CACHE_PATH=" in out
    lines = out.splitlines()
    start = lines.index(f"{g1.describe()}: driver 535.104.05, compute mode Default, "
                        "MIG Disabled")
    assert lines[start + 1:start + 8] == [
        "  Cycles sees OPTIX NVIDIA A100, CUDA NVIDIA A100, CPU Xeon",
        "  OPTIX (NVIDIA A100), cold process: started in 4.0 s, first scene 100.0 s (kernel "
        "load ~86.0 s), then 14.0 s per scene (7, 5 objects)",
        "  OPTIX, second cold process: first scene 14.0 s (kernel load ~0.0 s): the kernel "
        "cache works",
        "  denoiser: 10.0 s in Cycles per scene with denoising_use_gpu on, 13.5 s off: the GPU "
        "denoiser saves 3.5 s (Blender does not say which device OIDN used)",
        "  2 workers at once: 22.0 and 22.0 s per scene, 327 scenes per hour together "
        "against 257 with 1 worker",
        "  CUDA (NVIDIA A100), one process: first scene 60.0 s, then 15.0 s per scene: "
        "OPTIX is faster (OPTIX 14.0 s, CUDA 15.0 s per scene)",
        "ETA at --quality high (1024x768, 512 samples) on 2 device(s) working together:",
    ]
    start = lines.index(f"{g0.describe()}: driver 535.104.05, compute mode Default, "
                        "MIG Disabled")
    assert lines[start + 7] == (
        "  one cold process alone on the machine, empty caches: its first scene done 64.0 s "
        "after its start (here 99.0 s with every GPU at once)")
    # 1 worker: 300 + 257.1 scenes per hour; 2 workers: 360 + 327.3
    assert ("  --size tiny         40 scenes  4m18s  (2 workers per device: 3m30s)"
            in lines)
    # OptiX 13 s, CUDA 15 s; all at once: 104 s; one first: 64 s, then 18 s
    assert lines[-4:-1] == [
        "NVIDIA A100: --gpu-backend auto takes OPTIX (OPTIX 13.0 s, CUDA 15.0 s per scene; "
        "Cycles' default OPTIX stays unless the other is more than 5% faster)",
        "NVIDIA A100: a build starts one worker first, the others on its cache while the "
        "kernel cache is cold (every GPU's first scene done after 104 s all 2 at once; after "
        "82 s one first: 64 s alone, then 18 s on its cache)",
        "Fastest measured here: --gpu-backend optix, --workers-per-gpu 2"]


def test_figures_file_and_the_estimate_that_reads_it(monkeypatch, tmp_path):
    assert run_fake(monkeypatch, tmp_path, ["--quality", "high"], FakeProbes()) == 0
    figures = json.loads((tmp_path / "doctor.json").read_text())
    assert figures["format"] == "scenegen-doctor/1"
    optix, cuda = figures["entries"]
    setting = {"quality": "high", "width": 1024, "height": 768, "samples": 512}
    assert optix == {
        "kind": "NVIDIA A100", "backend": "OPTIX", **setting, "default": True,
        "seconds_per_scene": {"1": 13.0, "2": 21.0}, "first_scene_seconds": 104.0,
        "cold_start_seconds": 100.0, "warm_start_seconds": 14.0, "devices": 2,
        "blender_version": "5.2.3 LTS", "driver_version": "535.104.05",
        "host": optix["host"], "measured": optix["measured"]}
    assert cuda["backend"] == "CUDA" and cuda["default"] is False
    assert cuda["seconds_per_scene"] == {"1": 15.0} and cuda["first_scene_seconds"] == 64.0
    assert "warm_start_seconds" not in cuda
    # the launcher's side: 1 worker per GPU, 2 per GPU, 3 per GPU (not measured), CUDA
    read = estimate.read_figures(tmp_path / "doctor.json")
    one, two = two_gpus(), [d for d in two_gpus() for _ in (0, 1)]
    assert estimate.from_doctor(read, one, "GPU", "high", 1024, 768, 512) == estimate.Measured(
        13.0, pytest.approx(2 * 3600 / 13.0), 3 * 104.0)
    assert estimate.from_doctor(read, two, "OPTIX", "high", 1024, 768, 512) == (
        estimate.Measured(21.0, pytest.approx(4 * 3600 / 21.0), 3 * 104.0))
    assert estimate.from_doctor(read, one * 3, "GPU", "high", 1024, 768, 512) is None
    assert estimate.from_doctor(read, one, "CUDA", "high", 1024, 768, 512) == (
        estimate.Measured(15.0, pytest.approx(2 * 3600 / 15.0), 3 * 64.0))
    # other settings, another GPU model, the CPU: no figures, so the constants
    assert estimate.from_doctor(read, one, "GPU", "high", 1024, 768, 256) is None
    assert estimate.from_doctor(read, one, "GPU", "normal", 1024, 768, 512) is None
    h100 = [gpus.Device("GPU-9", 0, "GPU-9", "NVIDIA H100")]
    assert estimate.from_doctor(read, h100 + one, "GPU", "high", 1024, 768, 512) is None
    assert estimate.from_doctor(read, [None], "CPU", "high", 1024, 768, 512) is None
    # the choices a build takes for this GPU model
    [choice] = figures["choices"]
    assert choice == {
        "model": "NVIDIA A100", "driver_version": "535.104.05", "blender_version": "5.2.3 LTS",
        "backend": {"default": "OPTIX", "chosen": "OPTIX",
                    "seconds_per_scene": {"OPTIX": 13.0, "CUDA": 15.0}},
        "start_order": {"chosen": "one_first", "gpus": 2, "backend": "OPTIX",
                        "alone_seconds": 64.0, "warm_seconds": 18.0, "one_first_seconds": 82.0,
                        "all_at_once_seconds": 104.0},
        "host": optix["host"], "measured": optix["measured"]}
    # a later run at other settings keeps these entries; the same settings replace them; a
    # GPU model's choices are replaced by its latest measurement
    assert run_fake(monkeypatch, tmp_path, ["--quality", "draft"], FakeProbes()) == 0
    assert run_fake(monkeypatch, tmp_path, ["--quality", "draft"],
                    FakeProbes(cuda=12.0, alone=95.0)) == 0
    kept = json.loads((tmp_path / "doctor.json").read_text())
    assert [(e["backend"], e["quality"]) for e in kept["entries"]] == [
        ("OPTIX", "high"), ("CUDA", "high"), ("OPTIX", "draft"), ("CUDA", "draft")]
    [choice] = kept["choices"]
    assert choice["backend"]["chosen"] == "CUDA"  # 12 s against 13: faster by more than 5%
    assert choice["start_order"]["chosen"] == "all_at_once"  # 99 + 18 s against 104 s


@pytest.mark.parametrize(("cuda", "chosen"), [(12.0, "CUDA"), (12.34, "CUDA"), (12.35, "OPTIX"),
                                              (12.9, "OPTIX"), (15.0, "OPTIX")])
def test_auto_leaves_cycles_default_only_for_a_backend_faster_by_more_than_5_percent(
        monkeypatch, tmp_path, cuda, chosen):
    """OptiX (Cycles' default where it lists it) takes 13 s per scene, the mean over both
    GPUs: CUDA is chosen only below 0.95 x 13 = 12.35 s."""
    assert run_fake(monkeypatch, tmp_path, [], FakeProbes(cuda=cuda)) == 0
    [choice] = estimate.read_figures(tmp_path / "doctor.json")["choices"]
    assert choice["backend"]["seconds_per_scene"] == {"OPTIX": 13.0, "CUDA": cuda}
    assert choice["backend"]["chosen"] == chosen


def test_read_figures_and_its_default_place(tmp_path):
    assert estimate.figures_path({"XDG_CACHE_HOME": "/x/cache"}) == Path(
        "/x/cache/scenegen/doctor.json")
    assert estimate.figures_path({}) == Path.home() / ".cache/scenegen/doctor.json"
    assert estimate.read_figures(tmp_path / "missing.json") is None
    (tmp_path / "bad.json").write_text("{not json")
    assert estimate.read_figures(tmp_path / "bad.json") is None
    (tmp_path / "other.json").write_text('{"format": "something-else/1", "entries": []}')
    assert estimate.read_figures(tmp_path / "other.json") is None


def test_a_gpu_whose_cold_probe_fails_is_left_out(monkeypatch, tmp_path, capsys):
    g0, g1 = two_gpus()
    why = "render device GPU was asked for but is not here (found CPU: Xeon)"
    probes = FakeProbes(fail={(g1.uuid, "GPU", 1): why})
    assert run_fake(monkeypatch, tmp_path, [], probes) == 1
    assert [c[:3] for c in probes.calls if c[0] == g1.uuid] == [(g1.uuid, "GPU", 1)]
    captured = capsys.readouterr()
    assert f"{g1.describe()}: driver 535.104.05, compute mode Default, MIG Disabled\n" \
           f"  probe: FAILED: {why}\n" in captured.out
    assert "on 1 device(s) working together" in captured.out
    assert "Fastest measured here" not in captured.out  # not every GPU was measured
    assert "1 probe(s) failed" in captured.err
    entry = json.loads((tmp_path / "doctor.json").read_text())["entries"][0]
    assert entry["devices"] == 1 and entry["seconds_per_scene"] == {"1": 12.0, "2": 20.0}


def test_exclusive_compute_mode_skips_two_workers(monkeypatch, tmp_path, capsys):
    probes = FakeProbes()
    query = SMI_QUERY.replace("Default", "Exclusive_Process")
    assert run_fake(monkeypatch, tmp_path, [], probes, query=query,
                    gpu_list=lambda n: machine(query, 1)) == 0
    assert sorted(c[1:3] for c in probes.calls) == [("CUDA", 1), ("GPU", 1), ("OPTIX", 2)]
    out = capsys.readouterr().out
    assert ("  2 workers at once: skipped: compute mode Exclusive_Process lets one process at "
            "a time use the GPU (use --workers-per-gpu 1)") in out
    assert "Fastest measured here: --gpu-backend optix, --workers-per-gpu 1" in out
    entry = json.loads((tmp_path / "doctor.json").read_text())["entries"][0]
    assert entry["seconds_per_scene"] == {"1": 12.0}


def test_without_nvidia_smi_facts_are_unknown_and_cuda_only(monkeypatch, tmp_path, capsys):
    def cuda_only(blender, args, env, timeout):
        return result("CUDA", 40.0, (15.0, 15.0), listed=("CUDA",))

    assert run_fake(monkeypatch, tmp_path, ["--gpu-backend", "cuda"], cuda_only, query=None,
                    gpu_list=lambda n: machine(None, 1)) == 0
    out = capsys.readouterr().out
    assert (f"{two_gpus()[0].describe()}: driver unknown, compute mode unknown, MIG unknown"
            in out)
    assert "  OptiX against CUDA: not compared, Cycles lists only CUDA" in out
    assert "Fastest measured here: --gpu-backend cuda, --workers-per-gpu 2" in out


@pytest.mark.parametrize("how", ["--kernel-cache", "CUDA_CACHE_PATH", "one GPU"])
def test_the_start_order_is_compared_only_from_empty_caches_on_two_gpus(monkeypatch, tmp_path,
                                                                        how):
    """A given cache folder or the user's own cache variable may hold kernels, so the cold
    processes were not cold: no stage 5, no start-order choice (the backend choice stays)."""
    probes = FakeProbes()
    argv = ["--kernel-cache", str(tmp_path / "cache")] if how == "--kernel-cache" else []
    assert run_fake(monkeypatch, tmp_path, argv, probes,
                    gpu_list=lambda n: machine(SMI_QUERY, 1 if how == "one GPU" else n)) == 0
    if how == "CUDA_CACHE_PATH":  # run_fake cleared the variables: set one, run again
        monkeypatch.setenv("CUDA_CACHE_PATH", str(tmp_path / "mine"))
        monkeypatch.setattr(doctor, "run_probe", probes := FakeProbes())
        assert doctor.main(["--out", str(tmp_path / "doctor.json")]) == 0
    assert not [c for c in probes.calls if c[2] == 5]
    [choice] = estimate.read_figures(tmp_path / "doctor.json")["choices"]
    assert "start_order" not in choice and choice["backend"]["chosen"] == "OPTIX"


def test_given_kernel_cache_is_kept_and_users_paths_win(monkeypatch, tmp_path, capsys):
    probes = FakeProbes()
    cache = tmp_path / "cache"
    (cache / "cuda").mkdir(parents=True)
    (cache / "cuda" / "index").write_text("x")
    monkeypatch.setattr(doctor, "gpu_list", lambda n: machine(SMI_QUERY, 1))
    monkeypatch.setattr(doctor, "run_probe", probes)
    monkeypatch.setenv("OPTIX_CACHE_PATH", "/mine/optix")
    monkeypatch.delenv("CUDA_CACHE_PATH", raising=False)
    assert doctor.main(["--kernel-cache", str(cache), "--out", str(tmp_path / "d.json")]) == 0
    assert cache.is_dir()
    assert {c[4]["CUDA_CACHE_PATH"] for c in probes.calls} == {str(cache / "cuda")}
    assert all("OPTIX_CACHE_PATH" not in c[4] for c in probes.calls)  # the user's stays
    assert (f"kernel caches: CUDA_CACHE_PATH={cache / 'cuda'}, OPTIX_CACHE_PATH=/mine/optix "
            "(given, 1 file(s) in it at the start)") in capsys.readouterr().out


def test_run_probe_reads_recorded_outputs(monkeypatch):
    outputs = []

    def fake_run(command, env, timeout):
        return outputs.pop(0)

    monkeypatch.setattr(doctor, "run_command", fake_run)
    args = doctor.probe_args("draft", 96, 64, 2, 1, "GPU")
    noise = "Read prefs\nFra:1 Mem:12M | Rendering\n"
    good = result()
    outputs.append(subprocess.CompletedProcess([], 0, noise + "SCENEGEN " + json.dumps(
        {"event": "doctor_result", **{k: v for k, v in good.items() if k != "wall_seconds"}})
        + "\n", ""))
    got = doctor.run_probe(None, args, {}, 60)
    assert got["seconds_per_scene"] == 12.0 and got["wall_seconds"] >= 0
    why = "Cycles reports no active OPTIX device after enabling CUDA_0; refusing to render"
    outputs.append(subprocess.CompletedProcess(
        [], 1, 'SCENEGEN {"event":"doctor_result","error":"' + why + '"}\n', ""))
    with pytest.raises(doctor.ProbeFailed, match="^" + why):
        doctor.run_probe(None, args, {}, 60)
    outputs.append(subprocess.CompletedProcess([], 1, noise, "Traceback\nMemoryError\n"))
    with pytest.raises(doctor.ProbeFailed, match="probe exited with 1:\nTraceback\nMemoryError"):
        doctor.run_probe(None, args, {}, 60)
    cpu = {k: v for k, v in result(device="CPU").items() if k != "wall_seconds"}
    outputs.append(subprocess.CompletedProcess(
        [], 0, "SCENEGEN " + json.dumps({"event": "doctor_result", **cpu}) + "\n", ""))
    with pytest.raises(doctor.ProbeFailed, match="Cycles found no GPU on it"):
        doctor.run_probe(None, args, {}, 60)


SPAWNS_A_CHILD = ("import subprocess, sys, time; child = subprocess.Popen(['sleep', '20']); "
                  "open(sys.argv[1], 'w').write(str(child.pid)); time.sleep(20)")


def gone(pid: int) -> bool:
    """The process has ended (a zombie waiting for its reaper counts)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_a_probe_past_its_timeout_is_killed_with_its_children(monkeypatch, tmp_path):
    """Before: only the probe itself was killed; its children (Blender's) went on."""
    pid_file = tmp_path / "child.pid"
    monkeypatch.setattr(doctor, "probe_command", lambda blender, args: [
        sys.executable, "-c", SPAWNS_A_CHILD, str(pid_file)])
    started = time.monotonic()
    with pytest.raises(doctor.ProbeFailed, match=r"^no result within 0.5 s \(--timeout\)$"):
        doctor.run_probe(None, doctor.probe_args("draft", 96, 64, 2, 1, "CPU"), {}, 0.5)
    assert time.monotonic() - started < 10
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while not gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(child)


def test_a_probe_that_outlives_its_sigkill_is_left_behind_named(monkeypatch):
    kill = os.killpg
    monkeypatch.setattr(os, "killpg", lambda pid, sig: None)  # a kill without effect
    command = [sys.executable, "-c", SPAWNS_A_CHILD, os.devnull]
    with pytest.raises(doctor.ProbeFailed) as exc:
        doctor.run_command(command, dict(os.environ), 0.5, kill_grace=0.2)
    pid = int(str(exc.value).rsplit("PID ", 1)[1].split()[0])
    kill(pid, signal.SIGKILL)  # the test's own clean-up: the real kill
    assert str(exc.value) == (
        "no result within 0.5 s (--timeout); killed, it did not exit within 0.2 s of SIGKILL "
        f"(stuck, e.g. in the GPU driver): PID {pid} left behind")


@pytest.mark.parametrize("argv, message", [
    (["--blender", "/no/such/blender"], "--blender /no/such/blender: no such executable file"),
    (["--quality", "ultra"], "invalid choice: 'ultra'"),
    (["--resolution", "960x320"], "wider than 3:2"),
    (["--n-gpus", "3"], "allowed are 0..2"),
    (["--gpu-backend", "hip"], "invalid choice: 'hip'"),
    (["--scenes", "0"], f"--scenes must be 1..{doctor.MAX_SCENES}, got 0"),
])
def test_bad_arguments(monkeypatch, capsys, argv, message):
    monkeypatch.setattr(doctor, "gpu_list", lambda n: machine(SMI_QUERY, n))
    assert doctor.main(argv) == 2
    assert message in capsys.readouterr().err


def test_the_doctor_takes_the_builds_blender_and_refuses_what_the_build_refuses(
        monkeypatch, tmp_path, capsys):
    """$BLENDER (tests/blender) runs the probes; an executable that is not a supported
    Blender is refused with exit 2 before any probe, with the build's own message."""
    monkeypatch.setenv("BLENDER", str(ROOT / "tests/blender"))
    seen = []

    def cpu_probe(blender, args, env, timeout):
        seen.append(blender)
        return result("CPU", 3.0, (1.0, 1.0))

    assert run_fake(monkeypatch, tmp_path, ["--n-gpus", "0"], cpu_probe,
                    gpu_list=lambda n: (gpus.decide(None, [], None, n_gpus=0), [])) == 0
    assert seen == [str(ROOT / "tests/blender")]
    old = tmp_path / "old" / "blender"
    old.parent.mkdir()
    old.write_text("#!/bin/sh\necho 'Blender 3.6.0'\n")
    old.chmod(0o755)
    assert run_fake(monkeypatch, tmp_path, ["--blender", str(old)], cpu_probe,
                    gpu_list=machine) == 2
    assert f"--blender {old} is Blender 3.6.0; scenegen supports" in capsys.readouterr().err
    assert len(seen) == 1


# --- real probes ------------------------------------------------------------------------------


def test_real_gpu_probes_fail_fast_without_a_gpu(monkeypatch, tmp_path, capsys):
    """Real probes (the bpy module) on two fake GPUs of this GPU-less machine: each finds no
    GPU device at its setup and fails before rendering; nothing later runs, nothing is timed
    on the CPU, no figures are written."""
    monkeypatch.setattr(doctor, "gpu_list", lambda n: machine(None, n))
    out = tmp_path / "doctor.json"
    assert doctor.main(["--quality", "draft", "--resolution", "96x64", "--samples", "2",
                        "--scenes", "1", "--out", str(out)]) == 1
    text = capsys.readouterr().out
    for g in two_gpus():
        assert (f"{g.describe()}: driver unknown, compute mode unknown, MIG unknown\n"
                "  probe: FAILED: render device GPU was asked for but is not here (found CPU: "
                in text)
    assert "2/4" not in text and "ETA" not in text
    assert not out.exists() and list(tmp_path.iterdir()) == []  # the cache folder went too


def bpy_version() -> str:
    """The version string of the bpy module under test (5.0.1, or 5.2.3 LTS: Blender adds
    the LTS mark)."""
    import bpy

    return bpy.app.version_string


@pytest.mark.parametrize("blender", [
    None, pytest.param(str(ROOT / "tests/blender"), marks=pytest.mark.slow)])
def test_real_cpu_probe(blender, tmp_path):
    """The embedded bpy module, and a Blender executable (tests/blender), at 96x64; the
    launcher's estimate reads the figures it writes."""
    out = tmp_path / "doctor.json"
    cmd = [sys.executable, str(ROOT / "headless/doctor.py"), "--quality", "draft",
           "--resolution", "96x64", "--samples", "2", "--scenes", "1", "--n-gpus", "0",
           "--out", str(out)]
    if blender:
        cmd += ["--blender", blender]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    kind = estimate.device_kind(None)
    assert lines[lines.index(f"Blender {bpy_version()}") + 1] == kind
    assert any(line.startswith("  CPU (") and ", cold process: started in " in line
               and " s per scene (7 objects)" in line for line in lines)
    assert "ETA at --quality draft (96x64, 2 samples) on 1 device(s) working together:" in lines
    assert [line.split()[1] for line in lines if line.startswith("  --size ")] == [
        "tiny", "small", "medium", "large"]
    assert "kernel caches" not in done.stdout and "Fastest" not in done.stdout
    [entry] = json.loads(out.read_text())["entries"]
    assert (entry["kind"], entry["backend"], entry["default"]) == (kind, "CPU", True)
    assert list(entry["seconds_per_scene"]) == ["1"]
    assert entry["first_scene_seconds"] > entry["cold_start_seconds"] > 0
    measured = estimate.from_doctor(estimate.read_figures(out), [None], "CPU", "draft", 96, 64,
                                    2)
    assert measured.worker_seconds == entry["seconds_per_scene"]["1"]
    assert measured.first_scene_allowance == 3 * entry["first_scene_seconds"]
    assert estimate.from_doctor(estimate.read_figures(out), [None, None], "CPU", "draft", 96,
                                64, 2) is None  # 2 CPU workers: not measured


@pytest.mark.slow
def test_real_denoise_check_sets_the_denoiser_device():
    """The probe's denoiser check on the CPU (Cycles denoises there either way): both renders
    ran, with the setting on, then off, on the scene Cycles rendered."""
    got = doctor.run_probe(None, doctor.probe_args("draft", 96, 64, 2, 1, "CPU", True), {}, 300)
    assert got["device"] == "CPU" and got["gpu_default"] is None
    assert got["denoise"]["on"]["denoising_use_gpu"] is True
    assert got["denoise"]["off"]["denoising_use_gpu"] is False
    assert all(got["denoise"][k]["render_seconds"] > 0 for k in ("on", "off"))
    assert report.start_seconds(got) > 0
