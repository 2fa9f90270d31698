"""GPU discovery and worker assignment on recorded `nvidia-smi -L` and `--query-gpu` outputs,
and refusals of set-ups that would shrink a run. No bpy, no GPU."""

import json
import shutil
import stat
import sys

import pytest
from scenegen_addon.launcher import gpus, kernel_cache, nvidia_smi, pool
from scenegen_addon.launcher.gpus import GpuSetupError, assign, decide

# --- recorded `nvidia-smi -L` outputs ------------------------------------------------------

EIGHT_A100 = """\
GPU 0: NVIDIA A100-SXM4-80GB (UUID: GPU-753f9ec6-e0fb-42ea-9606-fc5b5337b630)
GPU 1: NVIDIA A100-SXM4-80GB (UUID: GPU-9ffbe66c-d9c2-46e7-98cb-f1fa8c0b1492)
GPU 2: NVIDIA A100-SXM4-80GB (UUID: GPU-4227609f-f1e3-4fab-b83d-af60dd0251ff)
GPU 3: NVIDIA A100-SXM4-80GB (UUID: GPU-58c42150-3a19-4a4d-90a6-98224d5644ea)
GPU 4: NVIDIA A100-SXM4-80GB (UUID: GPU-4641bb7d-e36f-4fac-a9be-4c4f639bb73d)
GPU 5: NVIDIA A100-SXM4-80GB (UUID: GPU-1cbdf121-39b3-453d-96d1-4099b0d109b1)
GPU 6: NVIDIA A100-SXM4-80GB (UUID: GPU-7e43bfdf-2d2f-4c03-bb26-d8df58075fbb)
GPU 7: NVIDIA A100-SXM4-80GB (UUID: GPU-c56c4d66-c984-4d83-a7fc-29c4493feddc)
"""
A100 = [
    "GPU-753f9ec6-e0fb-42ea-9606-fc5b5337b630", "GPU-9ffbe66c-d9c2-46e7-98cb-f1fa8c0b1492",
    "GPU-4227609f-f1e3-4fab-b83d-af60dd0251ff", "GPU-58c42150-3a19-4a4d-90a6-98224d5644ea",
    "GPU-4641bb7d-e36f-4fac-a9be-4c4f639bb73d", "GPU-1cbdf121-39b3-453d-96d1-4099b0d109b1",
    "GPU-7e43bfdf-2d2f-4c03-bb26-d8df58075fbb", "GPU-c56c4d66-c984-4d83-a7fc-29c4493feddc",
]

# a workstation: a small card driving the displays, two compute cards
DISPLAY_AND_COMPUTE = """\
GPU 0: NVIDIA T400 4GB (UUID: GPU-0783e579-9ed9-4fbb-bc01-093ba86f0be5)
GPU 1: NVIDIA RTX A6000 (UUID: GPU-a4c35b84-365f-41be-b0c3-846ef6723e97)
GPU 2: NVIDIA RTX A6000 (UUID: GPU-6d5ecd23-2dac-4274-9c32-357dc991cf1b)
"""
T400 = "GPU-0783e579-9ed9-4fbb-bc01-093ba86f0be5"
A6000 = ["GPU-a4c35b84-365f-41be-b0c3-846ef6723e97", "GPU-6d5ecd23-2dac-4274-9c32-357dc991cf1b"]

# MIG on GPUs 0 and 2 (three slices, one slice), GPU 1 whole; current drivers' format
MIG_MIXED = """\
GPU 0: NVIDIA A100-SXM4-80GB (UUID: GPU-0a5a68fb-b01f-4ebe-bf59-953aaf51061f)
  MIG 3g.40gb     Device  0: (UUID: MIG-cf4735f2-d73d-4a70-83ff-934d50265707)
  MIG 2g.20gb     Device  1: (UUID: MIG-9b0433f2-d89a-4089-b78c-e9592a31a7c6)
  MIG 1g.10gb     Device  2: (UUID: MIG-8996f215-919a-4347-91fb-fc60d4b0f251)
GPU 1: NVIDIA A100-SXM4-80GB (UUID: GPU-b931141d-b232-41b8-bce0-7875dc1b7dc1)
GPU 2: NVIDIA A100-SXM4-80GB (UUID: GPU-aa292c19-6915-4e0d-8f96-7badb04ef491)
  MIG 7g.80gb     Device  0: (UUID: MIG-a5fdc1d6-4f2a-4999-8eca-695343a2be5e)
"""
MIG0 = ["MIG-cf4735f2-d73d-4a70-83ff-934d50265707", "MIG-9b0433f2-d89a-4089-b78c-e9592a31a7c6",
        "MIG-8996f215-919a-4347-91fb-fc60d4b0f251"]
WHOLE1 = "GPU-b931141d-b232-41b8-bce0-7875dc1b7dc1"
MIG2 = "MIG-a5fdc1d6-4f2a-4999-8eca-695343a2be5e"

# R450/R460 drivers name a MIG device after its GPU, GPU instance and compute instance
MIG_OLD_DRIVER = """\
GPU 0: A100-SXM4-40GB (UUID: GPU-19e82266-5086-44e3-a6c5-a53a68f4d1d9)
  MIG 1g.5gb Device 0: (UUID: MIG-GPU-19e82266-5086-44e3-a6c5-a53a68f4d1d9/7/0)
  MIG 1g.5gb Device 1: (UUID: MIG-GPU-19e82266-5086-44e3-a6c5-a53a68f4d1d9/8/0)
"""

NO_DRIVER = ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
             "Make sure that the latest NVIDIA driver is installed and running.\n\n")
TRUNCATED = EIGHT_A100.splitlines()[0] + "\nGPU 1: NVIDIA A100-SXM4-80GB (UUID: GPU-9ffbe66c-d9\n"
ORPHAN_MIG = "  MIG 1g.10gb     Device  0: (UUID: MIG-8996f215-919a-4347-91fb-fc60d4b0f251)\n"
NODES = ["/dev/nvidia-uvm", "/dev/nvidia0", "/dev/nvidia1", "/dev/nvidiactl"]


def uuids(devices) -> list[str]:
    return [d.uuid for d in devices]


# --- parsing -------------------------------------------------------------------------------

def test_parse_eight_gpus():
    listed = gpus.parse_nvidia_smi(EIGHT_A100)
    assert [g.index for g in listed] == list(range(8))
    assert [g.uuid for g in listed] == A100
    assert {g.name for g in listed} == {"NVIDIA A100-SXM4-80GB"}
    assert all(g.migs == () for g in listed)


def test_parse_mig_slices_under_their_gpu():
    gpu0, gpu1, gpu2 = gpus.parse_nvidia_smi(MIG_MIXED)
    assert [(m.mig_profile, m.mig_device, m.uuid) for m in gpu0.migs] == [
        ("3g.40gb", 0, MIG0[0]), ("2g.20gb", 1, MIG0[1]), ("1g.10gb", 2, MIG0[2])]
    assert {(m.gpu_index, m.gpu_uuid) for m in gpu0.migs} == {
        (0, "GPU-0a5a68fb-b01f-4ebe-bf59-953aaf51061f")}
    assert gpu1.migs == () and uuids(gpu1.devices()) == [WHOLE1]
    assert [(m.gpu_index, m.mig_profile, m.uuid) for m in gpu2.migs] == [(2, "7g.80gb", MIG2)]


def test_parse_old_driver_mig_names():
    (gpu,) = gpus.parse_nvidia_smi(MIG_OLD_DRIVER)
    assert gpu.name == "A100-SXM4-40GB"
    assert [(m.mig_profile, m.mig_device, m.uuid) for m in gpu.migs] == [
        ("1g.5gb", 0, "MIG-GPU-19e82266-5086-44e3-a6c5-a53a68f4d1d9/7/0"),
        ("1g.5gb", 1, "MIG-GPU-19e82266-5086-44e3-a6c5-a53a68f4d1d9/8/0")]


@pytest.mark.parametrize(("output", "says"), [
    (NO_DRIVER, "cannot read line 1 of `nvidia-smi -L`: \"NVIDIA-SMI has failed"),
    ("No devices were found\n", "cannot read line 1 of `nvidia-smi -L`: 'No devices were found'"),
    (TRUNCATED, "cannot read line 2 of `nvidia-smi -L`: 'GPU 1: NVIDIA A100-SXM4-80GB (UUID"),
    (ORPHAN_MIG, "cannot read line 1 of `nvidia-smi -L`: 'MIG 1g.10gb"),
    ("", "`nvidia-smi -L` lists no GPU (it printed 'nothing')"),
    ("\n  \n", "`nvidia-smi -L` lists no GPU (it printed 'nothing')"),
])
def test_garbage_output_raises_unless_the_cpu_was_asked_for(output, says):
    with pytest.raises(GpuSetupError) as err:
        decide(output, NODES, None)
    assert str(err.value).startswith(says)
    assert str(err.value).endswith("or pass --n-gpus 0 to render on the CPU")
    assert decide(output, NODES, None, n_gpus=0).devices == ()


# --- the plain 8-GPU machine ---------------------------------------------------------------

def test_eight_gpus_one_worker_each_by_uuid():
    setup = decide(EIGHT_A100, NODES, None)
    assert setup.note == "8 NVIDIA GPU(s) visible (8x NVIDIA A100-SXM4-80GB)"
    assert setup.gpus == tuple(A100)
    workers = assign(setup)
    assert uuids(workers) == A100
    assert workers[3].env() == {"CUDA_VISIBLE_DEVICES": A100[3],
                                "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    assert gpus.worker_lines(workers)[7] == f"worker 7: GPU 7 NVIDIA A100-SXM4-80GB ({A100[7]})"


def test_workers_per_gpu_and_n_gpus():
    setup = decide(EIGHT_A100, NODES, None)
    assert uuids(assign(setup, None, 2)) == [u for u in A100 for _ in range(2)]
    assert uuids(assign(setup, 3, 2)) == [A100[0], A100[0], A100[1], A100[1], A100[2], A100[2]]
    assert assign(setup, 0, 1) == ()
    for bad in (9, -1):
        with pytest.raises(GpuSetupError, match=rf"--n-gpus {bad}: 8 GPU\(s\) are visible, so "
                                                r"allowed are 0\.\.8"):
            assign(setup, bad)
    with pytest.raises(ValueError, match="workers_per_gpu must be 1 or more, got 0"):
        assign(setup, None, 0)


# --- CUDA_VISIBLE_DEVICES ------------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    ("3,1", [3, 1]),  # the user's order is kept
    (" 2 , 4 ", [2, 4]),
    ("5,5", [5]),  # one device, one entry
    ("GPU-4641bb7d,GPU-9ffbe66c-d9c2-46e7-98cb-f1fa8c0b1492", [4, 1]),  # prefix, full
    ("GPU-C56C4D66", [7]),
])
def test_user_restricted_lists(value, expected):
    setup = decide(EIGHT_A100, NODES, value)
    assert uuids(setup.devices) == [A100[i] for i in expected]
    assert uuids(assign(setup)) == [A100[i] for i in expected]
    assert setup.note == (f"{len(expected)} NVIDIA GPU(s) visible ({len(expected)}x NVIDIA "
                          f"A100-SXM4-80GB), as CUDA_VISIBLE_DEVICES={value!r} allows")


@pytest.mark.parametrize(("value", "entry", "used"), [
    ("0,9,1", "'9'", 1),  # a typo: CUDA would run on GPU 0 alone
    ("0,2,-1,1", "'-1'", 2),  # CUDA's own example of where it stops reading
    ("0,1,x,2", "'x'", 2),
    ("6,8,0", "'8'", 1),  # out of range is invalid too
    ("1,GPU-,2", "'GPU-'", 1),  # a prefix naming several GPUs is invalid
])
def test_a_cuda_visible_devices_entry_naming_no_gpu_is_refused(value, entry, used):
    """An entry that names no GPU, anywhere in the list: refused, naming the entry, never a
    quietly smaller run; the build turns it into exit 2 (test_launcher)."""
    with pytest.raises(GpuSetupError) as err:
        decide(EIGHT_A100, NODES, value)
    assert str(err.value) == (
        f"CUDA_VISIBLE_DEVICES={value!r}: its entry {entry} names no GPU of the 8 that "
        "`nvidia-smi -L` lists, and CUDA stops reading at such an entry: the run would use "
        f"{used} device(s) instead of the ones you listed. Fix: correct or remove {entry}, "
        "unset it to use every GPU, or set it to the GPUs to use (indices 0, 1, 2, 3, 4, 5, 6, "
        "7, or the GPU-/MIG- UUIDs `nvidia-smi -L` prints); or pass --n-gpus 0 to render on "
        "the CPU")
    assert decide(EIGHT_A100, NODES, value, n_gpus=0).devices == ()


def test_more_gpus_than_the_user_allows_names_the_range():
    setup = decide(EIGHT_A100, NODES, "2,3")
    with pytest.raises(GpuSetupError, match=r"--n-gpus 3: 2 GPU\(s\) are visible, so allowed "
                                            r"are 0\.\.2 \(2 NVIDIA GPU"):
        assign(setup, 3)


@pytest.mark.parametrize("value", ["", "  "])
def test_empty_cuda_visible_devices_with_gpus_listed_raises(value):
    with pytest.raises(GpuSetupError) as err:
        decide(EIGHT_A100, NODES, value)
    assert str(err.value).startswith(
        "CUDA_VISIBLE_DEVICES is set but empty, which hides every GPU, while `nvidia-smi -L` "
        "lists 8 GPU(s). Fix: unset it to use every GPU")
    assert "indices 0, 1, 2, 3, 4, 5, 6, 7" in str(err.value)
    assert decide(EIGHT_A100, NODES, value, n_gpus=0).note == "rendering on the CPU (--n-gpus 0)"


@pytest.mark.parametrize(("value", "first"), [
    ("8", "'8'"), ("-1", "'-1'"), ("gpu0", "'gpu0'"), ("GPU-ffffffff", "'GPU-ffffffff'"),
    ("MIG-cf4735f2-d73d-4a70-83ff-934d50265707", "'MIG-cf4735f2-d73d-4a70-83ff-934d50265707'"),
])
def test_cuda_visible_devices_naming_no_gpu_raises(value, first):
    with pytest.raises(GpuSetupError, match=f"names no GPU of the 8 that `nvidia-smi -L` lists: "
                                            f"CUDA stops at its first entry {first} and sees none"):
        decide(EIGHT_A100, NODES, value)


# --- a display GPU beside compute GPUs ------------------------------------------------------

def test_display_gpu_is_used_unless_the_user_leaves_it_out():
    setup = decide(DISPLAY_AND_COMPUTE, NODES, None)
    assert uuids(assign(setup)) == [T400, *A6000]
    assert setup.note == "3 NVIDIA GPU(s) visible (1x NVIDIA T400 4GB, 2x NVIDIA RTX A6000)"
    by_uuid = decide(DISPLAY_AND_COMPUTE, NODES, "GPU-6d5ecd23,GPU-a4c35b84")
    assert uuids(assign(by_uuid, None, 2)) == [A6000[1], A6000[1], A6000[0], A6000[0]]
    in_bus_order = decide(DISPLAY_AND_COMPUTE, NODES, "1,2", cuda_device_order="PCI_BUS_ID")
    assert uuids(assign(in_bus_order)) == A6000


def test_indices_on_mixed_models_need_the_bus_order():
    """CUDA counts fastest first by default: index 1 need not be nvidia-smi's GPU 1."""
    for order in (None, "FASTEST_FIRST"):
        with pytest.raises(GpuSetupError) as err:
            decide(DISPLAY_AND_COMPUTE, NODES, "1,2", cuda_device_order=order)
        assert str(err.value) == (
            "CUDA_VISIBLE_DEVICES names GPU 1 by index, but this machine mixes NVIDIA RTX "
            "A6000 and NVIDIA T400 4GB and CUDA_DEVICE_ORDER is not PCI_BUS_ID, so CUDA counts "
            "the GPUs fastest first, not in nvidia-smi's order. Fix: set "
            "CUDA_DEVICE_ORDER=PCI_BUS_ID, or name the GPUs by UUID, or pass --n-gpus 0 to "
            "render on the CPU")


# --- MIG ----------------------------------------------------------------------------------

def test_mig_slices_are_the_worker_slots():
    setup = decide(MIG_MIXED, NODES, None)
    assert setup.note == ("3 NVIDIA GPU(s) visible (3x NVIDIA A100-SXM4-80GB), 5 devices, 4 of "
                          "them MIG slices")
    workers = assign(setup)
    assert uuids(workers) == [*MIG0, WHOLE1, MIG2]
    assert workers[1].env() == {"CUDA_VISIBLE_DEVICES": MIG0[1], "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    assert gpus.worker_lines(workers) == [
        f"worker 0: GPU 0 NVIDIA A100-SXM4-80GB, MIG 3g.40gb device 0 ({MIG0[0]})",
        f"worker 1: GPU 0 NVIDIA A100-SXM4-80GB, MIG 2g.20gb device 1 ({MIG0[1]})",
        f"worker 2: GPU 0 NVIDIA A100-SXM4-80GB, MIG 1g.10gb device 2 ({MIG0[2]})",
        f"worker 3: GPU 1 NVIDIA A100-SXM4-80GB ({WHOLE1})",
        f"worker 4: GPU 2 NVIDIA A100-SXM4-80GB, MIG 7g.80gb device 0 ({MIG2})",
    ]


def test_workers_per_gpu_spread_over_slices_first():
    setup = decide(MIG_MIXED, NODES, None)
    # 2 per GPU: the 3-slice GPU still fills every slice once
    assert uuids(assign(setup, None, 2)) == [*MIG0, WHOLE1, WHOLE1, MIG2, MIG2]
    # 4 per GPU: slice 0 of GPU 0 takes the fourth worker
    assert uuids(assign(setup, None, 4)) == [*MIG0, MIG0[0], *[WHOLE1] * 4, *[MIG2] * 4]
    assert uuids(assign(setup, 2, 1)) == [*MIG0, WHOLE1]


def test_mig_restricted_by_mig_uuid_index_and_gpu_uuid():
    by_mig = decide(MIG_MIXED, NODES, f"{MIG0[1]},1")
    assert uuids(assign(by_mig)) == [MIG0[1], WHOLE1]
    assert by_mig.gpus == ("GPU-0a5a68fb-b01f-4ebe-bf59-953aaf51061f", WHOLE1)
    by_index = decide(MIG_MIXED, NODES, "2,0")  # a MIG GPU's index stands for its slices
    assert uuids(assign(by_index)) == [MIG2, *MIG0]
    by_gpu_uuid = decide(MIG_MIXED, NODES, f"GPU-aa292c19,{MIG2},0,{MIG0[2]}")
    assert uuids(by_gpu_uuid.devices) == [MIG2, *MIG0]  # each device once
    old = decide(MIG_OLD_DRIVER, NODES, "MIG-GPU-19e82266-5086-44e3-a6c5-a53a68f4d1d9/8/0")
    assert uuids(assign(old, None, 2)) == ["MIG-GPU-19e82266-5086-44e3-a6c5-a53a68f4d1d9/8/0"] * 2


# --- no nvidia-smi ------------------------------------------------------------------------

def test_no_sign_of_a_gpu_is_the_cpu():
    setup = decide(None, [], None)
    assert setup.devices == ()
    assert setup.note == ("no NVIDIA GPU here (no nvidia-smi on PATH, no /dev/nvidia* devices): "
                          "rendering on the CPU")
    assert assign(setup) == ()
    with pytest.raises(GpuSetupError, match=r"--n-gpus 1: 0 GPU\(s\) are visible, so allowed "
                                            r"are 0\.\.0 \(no NVIDIA GPU here"):
        assign(setup, 1)
    for hidden in ("", "-1"):  # hiding GPUs where there are none is no contradiction
        assert decide(None, [], hidden).note == (
            f"no NVIDIA GPU here (no nvidia-smi, no /dev/nvidia*, CUDA_VISIBLE_DEVICES="
            f"{hidden!r}): rendering on the CPU")


def test_device_nodes_without_nvidia_smi_raise():
    with pytest.raises(GpuSetupError) as err:
        decide(None, NODES, None)
    assert str(err.value) == (
        "NVIDIA device nodes exist (/dev/nvidia-uvm, /dev/nvidia0, /dev/nvidia1, /dev/nvidiactl)"
        " but nvidia-smi is not on PATH, so the GPUs cannot be listed. Fix: install the NVIDIA "
        "driver utilities or add nvidia-smi to PATH, or pass --n-gpus 0 to render on the CPU")
    assert decide(None, NODES, None, n_gpus=0).devices == ()


def test_failing_nvidia_smi_raises_even_without_device_nodes():
    for nodes in ([], NODES):
        with pytest.raises(GpuSetupError, match=r"^`nvidia-smi -L` failed \(exit status 9: "
                                                r"NVIDIA-SMI has failed\)"):
            decide(None, nodes, None, nvidia_smi_failure="exit status 9: NVIDIA-SMI has failed")


def test_cuda_visible_devices_without_any_driver_raises():
    with pytest.raises(GpuSetupError, match=r"^CUDA_VISIBLE_DEVICES='0,1' asks for GPUs, but no "
                                            r"NVIDIA driver is visible here"):
        decide(None, [], "0,1")


# --- the real-machine readers, with a stand-in nvidia-smi on PATH -------------------------

def fake_nvidia_smi(folder, body: str) -> None:
    exe = folder / "nvidia-smi"
    exe.write_text("#!/bin/sh\n" + body + "\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)


def test_run_nvidia_smi_reports_output_absence_and_failure(tmp_path, monkeypatch):
    """PATH holds only the stand-in (shell builtins only), so a real nvidia-smi never runs."""
    sleep = shutil.which("sleep")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert nvidia_smi.run() == (None, None, None)
    fake_nvidia_smi(tmp_path, f"[ \"$1\" = -L ] || exit 2\nprintf '%s' '{EIGHT_A100}'")
    assert nvidia_smi.run() == (EIGHT_A100, None, None)
    setup = gpus.from_machine(None, {"CUDA_VISIBLE_DEVICES": "6,GPU-4227"})
    assert uuids(assign(setup)) == [A100[6], A100[2]]
    assert setup.infos == {} and setup.warning is None  # the query failed (exit 2): unknown
    assert setup.query_warning == (
        "`nvidia-smi --query-gpu` failed (exit status 2): the GPUs' driver, compute mode and "
        "MIG mode are unknown, so a GPU with MIG enabled but no MIG devices is not refused "
        "before its workers start")
    assert gpus.from_machine(0, {}).devices == ()
    fake_nvidia_smi(tmp_path, f'echo "{NO_DRIVER.strip()}"; exit 9')
    assert nvidia_smi.run() == (None, "exit status 9: " + NO_DRIVER.strip(), None)
    with pytest.raises(GpuSetupError, match=r"^`nvidia-smi -L` failed \(exit status 9"):
        gpus.from_machine(None, {})
    fake_nvidia_smi(tmp_path, f"exec {sleep} 30")
    assert nvidia_smi.run(timeout=0.3) == (None, "timed out after 0.3 s", None)


INFOROM = "WARNING: infoROM is corrupted at gpu 0000:41:00.0"


@pytest.mark.parametrize("where", ["stdout", "stderr"])
def test_an_inforom_warning_exit_14_with_every_gpu_listed_is_used(tmp_path, monkeypatch, where):
    """nvidia-smi exits 14 for a corrupted infoROM while listing every GPU (the warning on
    either stream): the GPUs are used and the warning is kept for the launcher to print."""
    monkeypatch.setenv("PATH", str(tmp_path))
    warn = f"echo '{INFOROM}'" + (" >&2" if where == "stderr" else "")
    fake_nvidia_smi(tmp_path, f"[ \"$1\" = -L ] || exit 2\nprintf '%s' '{EIGHT_A100}'\n"
                              f"{warn}\nexit 14")
    answer = nvidia_smi.run()
    assert answer.output.strip() == EIGHT_A100.strip() and answer.failure is None
    assert answer.warning == f"nvidia-smi exited with status 14 (a corrupted infoROM): {INFOROM}"
    setup = gpus.from_machine(None, {})
    assert uuids(assign(setup)) == A100 and setup.warning == answer.warning


def test_an_exit_14_with_a_line_it_cannot_read_or_another_status_is_refused(tmp_path,
                                                                            monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    fake_nvidia_smi(tmp_path, f"printf '%s' '{TRUNCATED}'; echo '{INFOROM}'; exit 14")
    with pytest.raises(GpuSetupError, match=r"^cannot read line 2 of `nvidia-smi -L`"):
        gpus.from_machine(None, {})
    fake_nvidia_smi(tmp_path, f"printf '%s' '{EIGHT_A100}'; exit 15")
    with pytest.raises(GpuSetupError, match=r"^`nvidia-smi -L` failed \(exit status 15"):
        gpus.from_machine(None, {})


# recorded `nvidia-smi --query-gpu=uuid,name,driver_version,compute_mode,mig.mode.current
# --format=csv,noheader` of MIG_MIXED's machine, but GPU 1 has MIG enabled: no instances yet
MIG_QUERY = """\
GPU-0a5a68fb-b01f-4ebe-bf59-953aaf51061f, NVIDIA A100-SXM4-80GB, 550.54.15, Default, Enabled
GPU-b931141d-b232-41b8-bce0-7875dc1b7dc1, NVIDIA A100-SXM4-80GB, 550.54.15, Default, Enabled
GPU-aa292c19-6915-4e0d-8f96-7badb04ef491, NVIDIA A100-SXM4-80GB, 550.54.15, Default, Enabled
"""


def test_a_mig_enabled_gpu_without_instances_is_refused_when_the_run_would_use_it():
    infos = nvidia_smi.parse_query(MIG_QUERY)
    setup = decide(MIG_MIXED, NODES, None, infos=infos)
    message = (f"GPU 1 NVIDIA A100-SXM4-80GB ({WHOLE1}) has MIG enabled but no MIG devices "
               "(`nvidia-smi -L` lists none under it), so no worker could use it. Fix: create "
               "MIG instances (e.g. `sudo nvidia-smi mig -i 1 -cgi <profiles> -C`), or disable "
               "MIG (`sudo nvidia-smi -i 1 -mig 0`, then reset the GPU), or leave the GPU out "
               "(CUDA_VISIBLE_DEVICES, --n-gpus), or pass --n-gpus 0 to render on the CPU")
    with pytest.raises(GpuSetupError) as err:
        assign(setup)
    assert str(err.value) == message
    assert uuids(assign(setup, 1)) == MIG0  # GPU 0 alone: its slices, nothing refused
    left_out = decide(MIG_MIXED, NODES, f"0,{MIG2}", infos=infos)
    assert uuids(assign(left_out)) == [*MIG0, MIG2]
    with pytest.raises(GpuSetupError, match="GPU 1 NVIDIA A100-SXM4-80GB .* has MIG enabled"):
        assign(decide(MIG_MIXED, NODES, "1", infos=infos))
    # MIG disabled, not supported ([N/A]) or unknown (no query answer): a whole GPU
    for mode in ("Disabled", "[N/A]"):
        other = nvidia_smi.parse_query(MIG_QUERY.replace("Enabled", mode))
        assert WHOLE1 in uuids(assign(decide(MIG_MIXED, NODES, None, infos=other)))
    assert WHOLE1 in uuids(assign(decide(MIG_MIXED, NODES, None)))


def test_the_machine_is_asked_for_the_mig_mode(tmp_path, monkeypatch):
    """from_machine asks `nvidia-smi --query-gpu=...,mig.mode.current` (and exit 14 there
    too is read), so the refusal above happens on a real machine."""
    monkeypatch.setenv("PATH", str(tmp_path))
    fake_nvidia_smi(tmp_path, f"""case "$*" in
  -L) printf '%s' '{MIG_MIXED}' ;;
  "--query-gpu=uuid,name,driver_version,compute_mode,mig.mode.current --format=csv,noheader")
    printf '%s' '{MIG_QUERY}'; echo '{INFOROM}'; exit 14 ;;
  *) exit 2 ;;
esac""")
    setup = gpus.from_machine(None, {})
    assert setup.info(WHOLE1) == nvidia_smi.GpuInfo("NVIDIA A100-SXM4-80GB", "550.54.15",
                                                    "Default", "Enabled")
    with pytest.raises(GpuSetupError, match=r"^GPU 1 NVIDIA A100-SXM4-80GB .* MIG enabled"):
        assign(setup)


def test_kernel_caches_go_under_the_given_folder_unless_the_user_set_them():
    env = kernel_cache.cache_env("/out/.scenegen/kernel_cache",
                                 {"OPTIX_CACHE_PATH": "/fast/optix"})
    assert env == {"CUDA_CACHE_PATH": "/out/.scenegen/kernel_cache/cuda",
                   "CUDA_CACHE_MAXSIZE": str(4 * 2**30),
                   "OPTIX_CACHE_MAXSIZE": str(4 * 2**30)}


def test_a_gpu_worker_starts_pinned_by_uuid_with_its_kernel_caches(tmp_path, monkeypatch):
    """The environment a real worker process gets from the pool."""
    for name in ("CUDA_CACHE_PATH", "CUDA_CACHE_MAXSIZE", "OPTIX_CACHE_PATH",
                 "OPTIX_CACHE_MAXSIZE"):
        monkeypatch.delenv(name, raising=False)
    smi = "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-12345678-1111-2222-3333-444455556666)\n"
    device = gpus.assign(gpus.decide(smi, ["/dev/nvidia0"], None))[0]
    dump = tmp_path / "env.json"
    script = "import json, os, sys; open(sys.argv[1], 'w').write(json.dumps(dict(os.environ)))"
    config = pool.Config(
        output=tmp_path, command=[sys.executable, "-c", script, str(dump)], device="GPU",
        devices=[device], scene_timeout=60.0, first_scene_timeout=60.0, recycle_after=10,
        scene_bytes=1)
    worker = pool.Pool(config, [], 1, 0, 1.0, say=print).spawn(0)
    assert worker.proc.wait(timeout=30) == 0
    env = json.loads(dump.read_text())
    assert env["CUDA_VISIBLE_DEVICES"] == "GPU-12345678-1111-2222-3333-444455556666"
    assert env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert env["CUDA_CACHE_PATH"] == str(tmp_path / ".scenegen" / "kernel_cache" / "cuda")
    assert env["OPTIX_CACHE_PATH"] == str(tmp_path / ".scenegen" / "kernel_cache" / "optix")
