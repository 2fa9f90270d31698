"""The render-device choice: a pure function over fake device lists, and its use in bpy.

The bpy tests plant a stale device entry in the Cycles preferences (as a preferences file
saved on another machine carries), which the device code must never take for a GPU.
"""

import pytest
from scenegen_addon.blender.compat import CyclesDevice
from scenegen_addon.blender.render import RenderSettings, choose_device, configure

CPU = CyclesDevice("CPU", "CPU", "AMD EPYC 7763")
# two GPUs of one model: only their Cycles ids tell them apart
CUDA = [CyclesDevice("CUDA", "CUDA_NVIDIA A100-SXM4-80GB_0000:07:00", "NVIDIA A100-SXM4-80GB"),
        CyclesDevice("CUDA", "CUDA_NVIDIA A100-SXM4-80GB_0000:0f:00", "NVIDIA A100-SXM4-80GB")]
OPTIX = [CyclesDevice("OPTIX", d.id + "_OptiX", d.name) for d in CUDA]
HIP = CyclesDevice("HIP", "HIP_AMD Radeon PRO W7900_0000:03:00", "AMD Radeon PRO W7900")
STALE_ID = "CUDA_NVIDIA A100-SXM4-80GB_0000:65:00_OptiX"


def ids(devices) -> list[str]:
    return [d.id for d in devices]


def test_auto_prefers_optix_then_cuda_then_cpu():
    kind, chosen = choose_device([CPU, *CUDA, *OPTIX])
    assert kind == "OPTIX" and ids(chosen) == ["CUDA_NVIDIA A100-SXM4-80GB_0000:07:00_OptiX",
                                               "CUDA_NVIDIA A100-SXM4-80GB_0000:0f:00_OptiX"]
    kind, chosen = choose_device([CPU, *CUDA])
    assert kind == "CUDA" and ids(chosen) == [
        "CUDA_NVIDIA A100-SXM4-80GB_0000:07:00", "CUDA_NVIDIA A100-SXM4-80GB_0000:0f:00"]
    assert choose_device([CPU, HIP]) == ("CPU", [CPU])
    assert choose_device([CPU]) == ("CPU", [CPU])


def test_gpu_takes_the_best_gpu_present():
    assert choose_device([CPU, *CUDA, *OPTIX], "GPU")[0] == "OPTIX"
    assert choose_device([CPU, HIP], "GPU") == ("HIP", [HIP])
    with pytest.raises(RuntimeError, match="GPU was asked for.*CPU: AMD EPYC 7763"):
        choose_device([CPU], "GPU")


def test_explicit_choice_is_taken_as_asked():
    assert choose_device([CPU, *CUDA, *OPTIX], "CUDA") == ("CUDA", CUDA)
    assert choose_device([CPU, *OPTIX], "CPU") == ("CPU", [CPU])
    assert choose_device([CPU, HIP], "HIP") == ("HIP", [HIP])


def test_missing_gpu_fails_naming_what_is_there():
    with pytest.raises(RuntimeError) as err:
        choose_device([CPU, *CUDA], "OPTIX")
    assert str(err.value) == (
        "render device OPTIX was asked for but is not here (found CPU: AMD EPYC 7763, "
        "CUDA: NVIDIA A100-SXM4-80GB, CUDA: NVIDIA A100-SXM4-80GB)")
    with pytest.raises(RuntimeError, match="CUDA.*not here.*CPU: AMD EPYC 7763"):
        choose_device([CPU], "CUDA")


def test_unknown_device_name_is_a_value_error():
    with pytest.raises(ValueError, match="device 'cuda' is unknown: allowed are AUTO, GPU, CPU"):
        choose_device([CPU], "cuda")


# --- real bpy -----------------------------------------------------------------------------

def _prefs():
    import bpy

    return bpy.context.preferences.addons["cycles"].preferences


@pytest.fixture
def stale_optix(empty_file):
    """An enabled OPTIX entry for a GPU this machine lacks, as a saved preferences file holds.

    Removed afterwards: the preferences outlive read_homefile for the whole session.
    """
    from scenegen_addon.blender import compat

    prefs = _prefs()
    entry = prefs.devices.add()  # the collection takes add()/remove() like any other
    entry.type, entry.id, entry.name, entry.use = "OPTIX", STALE_ID, "NVIDIA A100-SXM4-80GB", True
    compat.list_devices.cache_clear()
    yield prefs
    where = [k for k, e in enumerate(prefs.devices) if e.id == STALE_ID]
    for k in reversed(where):
        prefs.devices.remove(k)
    compat.list_devices.cache_clear()
    prefs.compute_device_type = "NONE"


def test_configure_records_the_device_and_never_falls_back(empty_file):
    """On this machine: CPU works and is recorded; an absent GPU raises, no silent CPU."""
    from scenegen_addon.blender import compat

    bpy = empty_file
    scene = bpy.data.scenes.new("device_test")
    available = compat.list_devices()
    assert available is compat.list_devices()  # once per process
    cpus = [d for d in available if d.type == "CPU"]
    assert len(cpus) == 1 and cpus[0].id == "CPU" and cpus[0].name
    info = configure(scene, RenderSettings(96, 64, 2, device="CPU"))
    assert info == {"device": "CPU", "device_name": cpus[0].name}
    assert scene.cycles.device == "CPU" and not scene.cycles.denoising_use_gpu
    assert _prefs().compute_device_type == "NONE"
    if any(d.type == "OPTIX" for d in available):
        pytest.skip("this machine has an OptiX GPU")
    with pytest.raises(RuntimeError, match="OPTIX"):
        configure(scene, RenderSettings(96, 64, 2, device="OPTIX"))


def test_a_stale_saved_optix_entry_is_never_taken_for_a_gpu(stale_optix):
    """The issue: that entry made the name-based code "choose" OPTIX and render on the CPU."""
    import bpy
    from scenegen_addon.blender import compat

    prefs = stale_optix
    assert ("OPTIX", STALE_ID, True) in [(e.type, e.id, e.use) for e in prefs.devices]
    if prefs.get_devices_for_type("OPTIX"):
        pytest.skip("this machine has an OptiX GPU")
    assert [d.type for d in compat.list_devices()] == ["CPU"]
    scene = bpy.data.scenes.new("stale_device")
    cpu = compat.list_devices()[0].name
    for requested in ("OPTIX", "GPU"):
        with pytest.raises(RuntimeError) as err:
            configure(scene, RenderSettings(16, 12, 1, device=requested))
        assert str(err.value) == (f"render device {requested} was asked for but is not here "
                                  f"(found CPU: {cpu})")
    assert configure(scene, RenderSettings(16, 12, 1, device="AUTO"))["device"] == "CPU"


def test_enabling_a_device_cycles_lacks_is_refused(stale_optix, empty_file):
    """use_devices checks Cycles' own device list and has_active_device(), by id."""
    from scenegen_addon.blender import compat

    prefs = stale_optix
    if prefs.get_devices_for_type("OPTIX"):
        pytest.skip("this machine has an OptiX GPU")
    scene = empty_file.data.scenes.new("stale_device")
    with pytest.raises(RuntimeError) as err:
        compat.use_devices(scene, "OPTIX", [STALE_ID])
    assert str(err.value) == (f"Cycles finds no OPTIX device with id {STALE_ID} (its OPTIX "
                              "devices: none); refusing to render on the CPU instead")
    with pytest.raises(RuntimeError) as err:
        compat.use_devices(scene, "OPTIX", [])
    assert str(err.value) == ("Cycles reports no active OPTIX device after enabling none; "
                              "refusing to render on the CPU instead")
    # every entry not asked for is off, the CPU and the stale one included
    assert {e.type for e in prefs.devices} >= {"CPU", "OPTIX"}
    assert [e.use for e in prefs.devices] == [False] * len(prefs.devices)
    assert not prefs.has_active_device() and scene.cycles.device == "CPU"


def test_cpu_rendering_still_works(stale_optix, empty_file, tmp_path):
    bpy = empty_file
    scene = bpy.data.scenes.new("cpu_render")
    info = configure(scene, RenderSettings(16, 12, 1, device="CPU"))
    camera = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
    scene.collection.objects.link(camera)
    scene.camera = camera
    scene.render.filepath = str(tmp_path / "cpu.png")
    assert bpy.ops.render.render(write_still=True, scene=scene.name) == {"FINISHED"}
    image = bpy.data.images.load(str(tmp_path / "cpu.png"))
    assert tuple(image.size) == (16, 12)
    assert info["device"] == "CPU" and stale_optix.compute_device_type == "NONE"


def test_build_scene_with_an_absent_gpu_leaves_nothing(empty_file):
    from blender_specs import EIGHT, make_scene
    from scenegen_addon.blender import compat, scene

    if any(d.type == "CUDA" for d in compat.list_devices()):
        pytest.skip("this machine has a CUDA GPU")
    with pytest.raises(RuntimeError, match="CUDA.*not here"):
        scene.build_scene(make_scene("train_00001", EIGHT), RenderSettings(96, 64, 2, "CUDA"))
    bpy = empty_file
    assert [s.name for s in bpy.data.scenes] == ["Scene"] and len(bpy.data.objects) == 0
