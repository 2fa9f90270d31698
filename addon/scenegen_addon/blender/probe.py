"""One doctor probe, inside Blender (launcher.doctor starts it): on one device, time the
first scene (it loads, or compiles, the kernels) apart from `--scenes` later ones, and with
`--denoise-check` one scene with Cycles' GPU denoiser on and off. Prints one `doctor_result`
event: the timings, or `error` when the device cannot be used.

A probe asked for a GPU enables it and checks it before rendering anything, so a device
without a usable GPU fails in seconds and nothing is ever timed on the CPU in its place.
"""

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import bpy

from ..core import plan, presets, sampling
from ..launcher import protocol
from . import compat, pipeline, render
from . import scene as scene_mod


def setup_device(requested: str):
    """Choose and enable the device before any render. A GPU that is missing or not active
    raises RuntimeError here (render.choose_device, compat.use_devices)."""
    devices = compat.list_devices()
    device, chosen = render.choose_device(devices, requested)
    compat.use_devices(bpy.context.scene, device, [d.id for d in chosen])
    return devices, device, chosen


def gpu_default(devices) -> str | None:
    """The backend that device GPU (a build's `--gpu-backend auto`) takes here; None: none."""
    try:
        return render.choose_device(devices, "GPU")[0]
    except RuntimeError:
        return None


def time_scene(spec, scratch: Path, settings: render.RenderSettings) -> tuple[float, float]:
    """(wall seconds of the whole scene as a worker makes it, seconds inside Cycles)."""
    start = time.perf_counter()
    timings = pipeline.render_scene(spec, scratch, settings)
    return time.perf_counter() - start, timings["render"]


def denoise_check(spec, scratch: Path, settings: render.RenderSettings) -> dict:
    """One scene with denoising_use_gpu on, then off: its seconds (wall, inside Cycles) and
    the value the render scene held. Blender does not say which device OIDN ran on: a GPU
    denoiser that fell back to the CPU shows as two equal times."""
    found = {}
    for name, on_gpu in (("on", True), ("off", False)):
        wall, inside = time_scene(spec, scratch,
                                  dataclasses.replace(settings, denoise_on_gpu=on_gpu))
        held = bool(scene_mod.render_scene().cycles.denoising_use_gpu)
        found[name] = {"seconds": wall, "render_seconds": inside, "denoising_use_gpu": held}
    return found


def probe(args) -> dict:
    """Set up the device, render the first scene and `args.scenes` timed ones; the result."""
    compat.check_version()
    devices, device, chosen = setup_device(args.device)
    settings = render.RenderSettings(args.width, args.height, args.samples, args.device,
                                     presets.quality(args.quality).cycles)
    entries = plan.build_plan({"train": args.scenes + 1}, presets.DEFAULT_SEED)
    specs = [sampling.sample_scene(entry, presets.DEFAULT_SEED) for entry in entries]
    seconds = []
    denoise = None
    with tempfile.TemporaryDirectory(prefix="scenegen_doctor_") as scratch:
        for spec in specs:
            seconds.append(time_scene(spec, Path(scratch), settings)[0])
        if args.denoise_check:
            denoise = denoise_check(specs[1], Path(scratch), settings)
    return {
        "blender_version": bpy.app.version_string,
        "devices": [[d.type, d.name] for d in devices],
        "gpu_default": gpu_default(devices),
        "device": device,
        "device_name": ", ".join(d.name for d in chosen),
        "first_scene_seconds": seconds[0],
        "scene_seconds": seconds[1:],
        "seconds_per_scene": sum(seconds[1:]) / len(seconds[1:]),
        "n_objects": [spec.n_objects for spec in specs[1:]],
        "denoise": denoise,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="run.py doctor-probe")
    for name in ("--width", "--height", "--samples", "--scenes"):
        parser.add_argument(name, type=int, required=True)
    parser.add_argument("--quality", required=True)
    parser.add_argument("--device", required=True, choices=render.DEVICES)
    parser.add_argument("--denoise-check", action="store_true")
    args = parser.parse_args(argv)
    try:
        result = probe(args)
    except RuntimeError as exc:  # the device cannot be used (or a render failed): say why
        print(protocol.event_line(protocol.DOCTOR_RESULT, error=str(exc)), flush=True)
        return 1
    print(protocol.event_line(protocol.DOCTOR_RESULT, **result), flush=True)
    return 0
