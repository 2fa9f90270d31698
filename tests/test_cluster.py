"""`build.py --ray`: the build on a real Ray runtime (a local instance, or a cluster of
nodes on this machine made with ray.cluster_utils.Cluster, each node with its own CPU), with
real workers (the bpy module) rendering the tiny plan of tests/test_launcher.py.

"The same output" is tests/same_output.py's, against the same plan built by the local pool.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from scenegen_addon.core import layout, presets
from scenegen_addon.launcher import gpus, node, shared
from scenegen_addon.launcher.lock import FolderLock

from tests import same_output
from tests.test_launcher import (
    SCENE_IDS,
    TINY,
    build,
    complete,
    doctor_figures,
    environ,
    expected_layout,
    pid_alive,
    start,
    wait_for,
)

pytest.importorskip("ray", reason="the optional dependency: pip install -e '.[ray]'")
cluster_utils = pytest.importorskip("ray.cluster_utils")

# .scenegen/ of a Ray run holds the run's token and the cluster log as well
RAY_FILES = {".scenegen/cluster_token", ".scenegen/logs/cluster.log"}


def ray_env(**extra) -> dict:
    """The launcher tests' environment; the test clusters, on this machine only, run
    without Ray's token authentication (its token file is shared by every Ray on it)."""
    return environ(RAY_AUTH_MODE="disabled", **extra)


@contextmanager
def running(out, *args, env=None):
    """A build started in the background, stopped (SIGTERM) if the test fails."""
    proc = start(out, *args, env=env or ray_env())
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.communicate(timeout=120)


def cluster_log(out) -> str:
    path = Path(out) / ".scenegen" / "logs" / "cluster.log"
    return path.read_text() if path.exists() else ""


def done_on(out) -> dict[str, list[str]]:
    """scene id -> the node ids (first 8 digits) that reported it done, in order."""
    found: dict[str, list[str]] = {}
    for sid, node_id in re.findall(r" (\S+) scene_done: worker \d+ on node \S+ \((\w+),",
                                   cluster_log(out)):
        found.setdefault(sid, []).append(node_id)
    return found


def started_pids(out) -> set[int]:
    """The worker processes and the actor processes of every actor of the run."""
    log = cluster_log(out)
    pids = {int(p) for p in re.findall(r"worker process (\d+) started", log)}
    return pids | {int(p) for p in re.findall(r"actor pid (\d+)", log)}


@contextmanager
def environment(env: dict):
    """os.environ as `env` for the processes started inside (a node's raylet and its
    actors inherit it)."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


# --- the parts without Ray ---------------------------------------------------------------

def test_the_shared_folder_check_reads_the_token_back(tmp_path):
    out = tmp_path / "data"
    (out / ".scenegen").mkdir(parents=True)
    never = shared.folder_problem(out, "0123abcd")
    assert never == (f"{out}/.scenegen/cluster_token does not exist here: the output folder is "
                     "not shared with the driver at this path")
    token = shared.write_token(out)
    assert re.fullmatch(r"[0-9a-f]{32}", token)
    assert shared.folder_problem(out, token) is None
    other = shared.folder_problem(out, "0123abcd")
    assert other.endswith("holds another run's token: this is another folder than the "
                          "driver's at the same path")


def test_an_actor_takes_the_gpu_ray_gave_it_by_uuid():
    smi = ("GPU 0: Fake A (UUID: GPU-aaaa)\nGPU 1: Fake B (UUID: GPU-bbbb)\n"
           "GPU 2: Fake C (UUID: GPU-cccc)\n  MIG 3g.40gb     Device  0: (UUID: MIG-c0)\n"
           "  MIG 3g.40gb     Device  1: (UUID: MIG-c1)\n")
    one = gpus.decide(smi, ["/dev/nvidia0"], "1", cuda_device_order="PCI_BUS_ID")
    assert node.pick_device(one, 0).env() == {"CUDA_VISIBLE_DEVICES": "GPU-bbbb",
                                              "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    migs = gpus.decide(smi, ["/dev/nvidia0"], "2", cuda_device_order="PCI_BUS_ID")
    # a MIG-enabled GPU: its slices, spread by slot
    assert [node.pick_device(migs, slot).uuid for slot in range(3)] == ["MIG-c0", "MIG-c1",
                                                                        "MIG-c0"]
    with pytest.raises(node.Unusable, match="Ray gave this actor a GPU, but none is visible"):
        node.pick_device(gpus.decide(None, [], None), 0)


def test_gpu_slots_follow_the_clusters_gpus():
    from scenegen_addon.launcher import cluster

    assert [(s.gpu, s.share) for s in cluster.gpu_slots(3, None, 2)] == [
        (0, 0.5), (0, 0.5), (1, 0.5), (1, 0.5), (2, 0.5), (2, 0.5)]
    assert len(cluster.gpu_slots(8, 2, 1)) == 2  # --n-gpus 2 of 8
    assert len(cluster.gpu_slots(1, 4, 1)) == 1  # the other 3 when GPUs join
    assert cluster.gpu_slots(0, None, 1) == []
    assert len({s.gpu_uuid for s in cluster.gpu_slots(4, None, 3)}) == 4


def test_the_doctors_figures_are_not_used_under_ray(tmp_path):
    """The doctor measured the driver's machine; a Ray run's workers are the cluster's, so
    its estimate is the built-in one even when the figures match the run's settings."""
    cache = tmp_path / "cache"
    doctor_figures(cache, 360.0)
    run = build(tmp_path / "data", *TINY, "--plan-only", "--ray",
                env=ray_env(XDG_CACHE_HOME=str(cache)))
    assert run.returncode == 0, run.stderr
    assert "scenegen: rendering on the CPU: 1 Ray actor(s)" in run.stdout
    assert "doctor's figures" not in run.stdout
    assert "estimated time 30m00s" not in run.stdout  # what the figures would give


# --- a local Ray instance -------------------------------------------------------------------

@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The tiny plan built by the local pool."""
    out = tmp_path_factory.mktemp("local") / "data"
    run = build(out, "--workers", "2", *TINY)
    assert run.returncode == 0, run.stderr
    return out


def test_a_local_ray_run_gives_the_same_output_as_the_local_pool(reference, tmp_path):
    """Also recycles each worker after 2 scenes: a new actor takes the old one's CPU."""
    out = tmp_path / "data"
    run = build(out, "--workers", "2", "--recycle-after", "2", *TINY, "--ray", env=ray_env())
    assert run.returncode == 0, run.stderr
    assert len(re.findall(r"worker process \d+ started", cluster_log(out))) >= 3
    assert "scenegen: rendering on the CPU: 2 Ray actor(s) on a local Ray instance" in run.stdout
    assert same_output.differences(out, reference) == []
    assert files_of(out) == expected_layout(SCENE_IDS, n_logs=2) | RAY_FILES
    assert sorted(done_on(out)) == sorted(SCENE_IDS)  # each scene done once, by one worker
    assert all(len(nodes) == 1 for nodes in done_on(out).values())
    assert "every actor of this run was stopped" in cluster_log(out)
    assert not any(pid_alive(p) for p in started_pids(out))
    FolderLock(out / ".scenegen" / "lock").acquire()  # the driver held it, and let it go


def files_of(out) -> set[str]:
    return {p.relative_to(out).as_posix() for p in Path(out).rglob("*") if p.is_file()}


@pytest.mark.heavy
def test_an_actor_killed_mid_scene_has_its_scene_rerun(reference, tmp_path):
    """The worker hangs on test_comp_00000 the first time (the marker), so the scene is in
    flight for sure when its actor is killed with ray.kill."""
    out, marker = tmp_path / "data", tmp_path / "hung"
    env = ray_env(SCENEGEN_TEST_FAULT=f"hang:test_comp_00000:{marker}")
    with running(out, "--workers", "2", *TINY, "--ray", env=env) as proc:
        wait_for(marker.exists, timeout=300, what="the hanging scene")
        log = cluster_log(out)
        address = re.search(r"\(GCS (\S+), namespace (\w+)\)", log)
        name = re.findall(r"\((scenegen-\S+)\) on node [^:]+: \{\"cmd\": \"render\", "
                          r"\"scene_id\": \"test_comp_00000\"\}", log)
        assert address and len(name) == 1, log
        kill = ("import ray, sys; ray.init(address=sys.argv[1], namespace=sys.argv[2]); "
                "ray.kill(ray.get_actor(sys.argv[3])); ray.shutdown()")
        subprocess.run([sys.executable, "-c", kill, address.group(1), address.group(2),
                        name[0]], check=True, capture_output=True, timeout=120, env=ray_env())
        _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert re.search(r"scene test_comp_00000: its Ray actor died on node \S+ \(\w+, \S+\) "
                     r"\(\w+Error\); rerun 1/3", stderr), stderr
    assert same_output.differences(out, reference) == []
    assert sorted(done_on(out)) == sorted(SCENE_IDS)


# --- a cluster of two nodes on this machine -------------------------------------------------

@pytest.fixture(scope="module")
def two_nodes():
    """A head and a worker node, one CPU each, so each runs one CPU actor; their processes
    get the tests' environment (no blender on PATH: the bpy module)."""
    with environment(ray_env()):
        cluster = cluster_utils.Cluster(
            initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
        worker = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster, worker
    cluster.shutdown()


@pytest.mark.heavy
def test_ctrl_c_on_the_driver_stops_every_actor_and_worker_and_a_rerun_resumes(
        reference, two_nodes, tmp_path):
    cluster, _ = two_nodes
    out = tmp_path / "data"

    def both_working():
        log = cluster_log(out)
        nodes = set(re.findall(r"worker process \d+ started on node \S+ \((\w+),", log))
        return len(nodes) == 2 and complete(out)

    with running(out, "--workers", "2", *TINY, "--ray", cluster.address) as proc:
        wait_for(both_working, timeout=300, what="a worker on each node, and a scene done")
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "stopped by SIGINT" in stderr
    pids = started_pids(out)
    assert len(pids) == 4  # two actors, two workers
    assert not any(pid_alive(p) for p in pids)
    incomplete = [s for s in SCENE_IDS if s not in complete(out)]
    assert incomplete and layout.partial_files(out, incomplete) == []
    progress = json.loads((out / ".scenegen" / "progress.json").read_text())
    assert progress["state"] == "failed" and "SIGINT" in progress["message"]

    kept = complete(out)
    rerun = build(out, "--workers", "2", *TINY, "--ray", cluster.address,
                  env=ray_env())
    assert rerun.returncode == 0, rerun.stderr
    assert f"{5 - len(kept)} to render, {len(kept)} already complete" in rerun.stdout
    assert same_output.differences(out, reference) == []


@pytest.mark.heavy
def test_two_nodes_share_the_work_and_a_removed_node_loses_no_scene(
        reference, two_nodes, tmp_path):
    cluster, worker_node = two_nodes
    out = tmp_path / "data"
    removed = worker_node.node_id[:8]
    with running(out, "--workers", "2", *TINY, "--ray", cluster.address) as proc:
        wait_for(lambda: any(removed in nodes for nodes in done_on(out).values()),
                 timeout=300, what="a scene done on the worker node")
        cluster.remove_node(worker_node)
        _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    done = done_on(out)
    assert sorted(done) == sorted(SCENE_IDS)  # none lost
    assert all(len(nodes) == 1 for nodes in done.values())  # none done twice
    assert {nodes[0] for nodes in done.values()} == {removed, cluster.head_node.node_id[:8]}
    assert re.search(r"scene \w+: its Ray actor died on node \S+ \(" + removed, stderr), stderr
    assert same_output.differences(out, reference) == []


def test_ray_without_the_package_is_a_refusal(tmp_path):
    """ray is imported only under --ray, and its absence there is exit 2 with the fix."""
    code = ("import sys; sys.modules['ray'] = None; from scenegen_addon.launcher import build; "
            "sys.exit(build.main(sys.argv[1:]))")
    run = subprocess.run([sys.executable, "-c", code, "--output", str(tmp_path / "data"),
                          *TINY, "--ray"], capture_output=True, text=True, env=ray_env(),
                         timeout=120)
    assert run.returncode == 2, run.stderr
    assert 'pip install -e ".[ray]" in the scenegen checkout' in run.stderr
    assert not (tmp_path / "data").exists()
    plain = subprocess.run([sys.executable, "-c", code, "--help"], capture_output=True,
                           text=True, env=ray_env(), timeout=120)
    assert plain.returncode == 0 and "--ray [ADDRESS]" in plain.stdout


@pytest.mark.parametrize("args, message", [
    (["--n-gpus", "0", "--workers-per-gpu", "2"], "--workers-per-gpu needs GPUs"),
    (["--workers", "2"], "--workers is for CPU rendering (--n-gpus 0)"),
])
def test_ray_refuses_a_worker_count_that_does_not_apply_before_connecting(
        tmp_path, args, message):
    """The same refusals as the local pool's, before any cluster is contacted (the address
    is not even one ray.init takes)."""
    tiny = [a for a in TINY if a not in ("--n-gpus", "0")]
    run = build(tmp_path / "data", *tiny, *args, "--ray", "notanaddress", env=ray_env())
    assert run.returncode == 2, run.stderr
    assert message in run.stderr
    assert not (tmp_path / "data").exists()


def test_an_address_where_no_cluster_answers_is_given_up_with_rays_reason(tmp_path):
    """Nothing listens at 127.0.0.1:1: one attempt (Ray makes 20 unless told), then exit 2
    with Ray's own reason. Ray's own timeouts (about 40 s per attempt by default) are
    shortened here to keep the test short; with 20 attempts it takes minutes even so."""
    started = time.monotonic()
    run = build(tmp_path / "data", *TINY, "--ray", "127.0.0.1:1", timeout=600,
                env=ray_env(RAY_py_gcs_connect_timeout_s="2",
                            RAY_gcs_rpc_server_connect_timeout_s="1"))
    assert run.returncode == 2, run.stderr
    assert ("cannot connect to the Ray cluster at 127.0.0.1:1: Failed to connect to Ray "
            "cluster at") in run.stderr
    assert time.monotonic() - started < 60
    assert not (tmp_path / "data").exists()


# --- heavier: nodes that join, and nodes that cannot see the folder (run with -m slow) -------

TEN = [a if a != "1" else "2" for a in TINY]  # 2 scenes per split
TEN_IDS = [f"{split}_{i:05d}" for split in presets.SPLITS for i in (0, 1)]


@pytest.fixture(scope="module")
def reference_ten(tmp_path_factory):
    out = tmp_path_factory.mktemp("local10") / "data"
    run = build(out, "--workers", "2", *TEN)
    assert run.returncode == 0, run.stderr
    return out


@pytest.mark.slow
def test_a_node_that_joins_mid_run_gets_work(reference_ten, tmp_path):
    """One node with room for one actor of two: the second waits until a node joins."""
    with environment(ray_env()):
        cluster = cluster_utils.Cluster(
            initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        out = tmp_path / "data"
        head = cluster.head_node.node_id[:8]
        with running(out, "--workers", "2", *TEN, "--ray", cluster.address) as proc:
            wait_for(lambda: any(head in nodes for nodes in done_on(out).values()),
                     timeout=300, what="a scene done on the head node")
            with environment(ray_env()):
                joined = cluster.add_node(num_cpus=1).node_id[:8]
            _, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr
        done = done_on(out)
        assert sorted(done) == sorted(TEN_IDS) and all(len(n) == 1 for n in done.values())
        assert joined in {nodes[0] for nodes in done.values()}, cluster_log(out)
        assert same_output.differences(out, reference_ten) == []
    finally:
        cluster.shutdown()


@contextmanager
def blind_node(address: str, hidden: Path):
    """A node joined with `ray start` in a mount namespace of its own where `hidden` is an
    empty tmpfs: the output folder below it does not exist there."""
    script = (f"mount -t tmpfs tmpfs {hidden} && exec {Path(sys.executable).parent}/ray start "
              f"--address={address} --num-cpus=1 --block")
    proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                            env=ray_env(), start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.communicate(timeout=60)


def alive_nodes(cluster) -> int:
    return len(cluster.global_state._live_node_ids())


def needs_unshare():
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("needs unshare -m (root) to hide the folder from a node")


@pytest.mark.slow
@pytest.mark.parametrize("head_cpus", [1, 0])
def test_a_node_that_cannot_see_the_folder_is_not_used(reference, tmp_path, head_cpus):
    """With a head that renders too, the run goes on without the blind node; when the blind
    node is the only one with room, the run stops with a clear error (exit 5)."""
    needs_unshare()
    with environment(ray_env()):
        cluster = cluster_utils.Cluster(initialize_head=True, head_node_args={
            "num_cpus": head_cpus, "include_dashboard": False})
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    out, head = hidden / "data", cluster.head_node.node_id[:8]
    try:
        with blind_node(cluster.address, hidden):
            wait_for(lambda: alive_nodes(cluster) == 2, timeout=120, what="the blind node")
            run = build(out, "--workers", "2", *TINY, "--ray", cluster.address, env=ray_env())
    finally:
        cluster.shutdown()
    said = (rf"node \S+ \((\w+), \S+\) is not used: cannot see the output folder: "
            rf"{out}/.scenegen/cluster_token does not exist here")
    assert re.search(said, run.stderr), run.stderr
    if head_cpus:
        assert run.returncode == 0, run.stderr
        assert same_output.differences(out, reference) == []
        assert {nodes[0] for nodes in done_on(out).values()} == {head}
    else:
        assert run.returncode == 5, run.stderr
        assert re.search(r"no node of the Ray cluster at \S+ can render for this run: node "
                         r"\w+: cannot see the output folder", run.stderr), run.stderr
        assert complete(out) == []


@pytest.mark.slow
def test_each_gpu_actor_pins_its_worker_to_the_gpu_ray_gave_it(tmp_path):
    """A node that tells Ray it has 2 GPUs and whose nvidia-smi lists two (fake ones): each
    actor finds the GPU of its own CUDA_VISIBLE_DEVICES and starts its worker on exactly it,
    by UUID; without a real GPU the worker then fails loudly and the run stops (exit 5)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: Fake A (UUID: GPU-aaaa)'\n"
                   "echo 'GPU 1: Fake A (UUID: GPU-bbbb)'\n")
    smi.chmod(0o755)
    env = ray_env(PATH=f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin")
    with environment(env):
        cluster = cluster_utils.Cluster(initialize_head=True, head_node_args={
            "num_cpus": 1, "num_gpus": 2, "include_dashboard": False})
    try:
        out = tmp_path / "data"
        args = [a for a in TINY if a not in ("--n-gpus", "0")]
        run = build(out, *args, "--ray", cluster.address, env=env)
    finally:
        cluster.shutdown()
    assert run.returncode == 5, run.stderr
    assert "rendering on GPUs: 2 Ray actor(s), 1 per GPU" in run.stdout
    assert "workers keep failing to start" in run.stderr
    logs = [(out / ".scenegen" / "logs" / f"worker_{k}.log").read_text() for k in range(2)]
    pinned = {re.search(r"\(GPU \d Fake A \((GPU-\w+)\)\): .* --device GPU ", log).group(1)
              for log in logs}
    assert pinned == {"GPU-aaaa", "GPU-bbbb"}  # one GPU each, by UUID
    assert all("device GPU was asked for but this worker sees none" in log for log in logs)


def test_the_slurm_script_of_the_cluster_guide_is_valid_bash(tmp_path):
    text = (Path(__file__).resolve().parent.parent / "docs" / "CLUSTER.md").read_text()
    script = re.search(r"```bash\n(#!/bin/bash\n#SBATCH.*?)```", text, re.DOTALL).group(1)
    assert "--ray auto" in script and '"$RAY" start --head' in script
    (tmp_path / "scenegen.sbatch").write_text(script)
    check = subprocess.run(["bash", "-n", str(tmp_path / "scenegen.sbatch")],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
