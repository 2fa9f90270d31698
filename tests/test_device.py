"""The render-device choice: a pure function over fake device lists, and its use in bpy."""

import pytest
from scenegen_addon.blender.render import RenderSettings, choose_device, configure

CPU = ("CPU", "AMD EPYC 7763")
CUDA = [("CUDA", "NVIDIA A100 #0"), ("CUDA", "NVIDIA A100 #1")]
OPTIX = [("OPTIX", "NVIDIA A100 #0"), ("OPTIX", "NVIDIA A100 #1")]


def test_auto_prefers_optix_then_cuda_then_cpu():
    assert choose_device([CPU, *CUDA, *OPTIX]) == ("OPTIX", ["NVIDIA A100 #0", "NVIDIA A100 #1"])
    assert choose_device([CPU, *CUDA]) == ("CUDA", ["NVIDIA A100 #0", "NVIDIA A100 #1"])
    assert choose_device([CPU, ("HIP", "Radeon W7900")]) == ("CPU", ["AMD EPYC 7763"])
    assert choose_device([CPU]) == ("CPU", ["AMD EPYC 7763"])


def test_gpu_takes_the_best_gpu_present():
    assert choose_device([CPU, *CUDA, *OPTIX], "GPU")[0] == "OPTIX"
    hip = ("HIP", "Radeon W7900")
    assert choose_device([CPU, hip], "GPU") == ("HIP", ["Radeon W7900"])
    with pytest.raises(RuntimeError, match="GPU was asked for.*CPU: AMD EPYC 7763"):
        choose_device([CPU], "GPU")


def test_explicit_choice_is_taken_as_asked():
    assert choose_device([CPU, *CUDA, *OPTIX], "CUDA")[0] == "CUDA"
    assert choose_device([CPU, *OPTIX], "CPU") == ("CPU", ["AMD EPYC 7763"])
    assert choose_device([CPU, ("HIP", "Radeon W7900")], "HIP") == ("HIP", ["Radeon W7900"])


def test_missing_gpu_fails_naming_what_is_there():
    with pytest.raises(RuntimeError) as err:
        choose_device([CPU, *CUDA], "OPTIX")
    message = str(err.value)
    assert "OPTIX" in message and "AMD EPYC 7763" in message and "NVIDIA A100 #1" in message
    with pytest.raises(RuntimeError, match="CUDA.*not here.*CPU: AMD EPYC 7763"):
        choose_device([CPU], "CUDA")


def test_unknown_device_name_is_a_value_error():
    with pytest.raises(ValueError, match="device 'cuda' is unknown: allowed are AUTO, GPU, CPU"):
        choose_device([CPU], "cuda")


def test_configure_records_the_device_and_never_falls_back(empty_file):
    """On this machine: CPU works and is recorded; an absent GPU raises, no silent CPU."""
    from scenegen_addon.blender import compat

    bpy = empty_file
    scene = bpy.data.scenes.new("device_test")
    available = compat.list_devices()
    info = configure(scene, RenderSettings(96, 64, 2, device="CPU"))
    cpu_names = [name for kind, name in available if kind == "CPU"]
    assert info == {"device": "CPU", "device_name": ", ".join(cpu_names)}
    assert scene.cycles.device == "CPU" and not scene.cycles.denoising_use_gpu
    if any(kind == "OPTIX" for kind, _ in available):
        pytest.skip("this machine has an OptiX GPU")
    with pytest.raises(RuntimeError, match="OPTIX"):
        configure(scene, RenderSettings(96, 64, 2, device="OPTIX"))


def test_build_scene_with_an_absent_gpu_leaves_nothing(empty_file):
    from blender_specs import EIGHT, make_scene
    from scenegen_addon.blender import compat, scene

    if any(kind == "CUDA" for kind, _ in compat.list_devices()):
        pytest.skip("this machine has a CUDA GPU")
    with pytest.raises(RuntimeError, match="CUDA.*not here"):
        scene.build_scene(make_scene("train_00001", EIGHT), RenderSettings(96, 64, 2, "CUDA"))
    bpy = empty_file
    assert [s.name for s in bpy.data.scenes] == ["Scene"] and len(bpy.data.objects) == 0
