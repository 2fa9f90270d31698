"""core.parallel: results in task order for any number of processes, and a Ctrl-C in a
terminal (SIGINT to the whole process group) answered by the caller alone, its processes
stopped at once."""

import operator
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from scenegen_addon.core import parallel

ADDON = Path(__file__).resolve().parents[1] / "addon"

# 40 tasks of 0.25 s on 2 processes (chunks of 5): 5 s in all unless stopped
CALLER = """
import signal, sys, time
from scenegen_addon.core import parallel
if __name__ == "__main__":
    # as in a terminal: a shell that starts a job in the background (the test run itself,
    # say) passes SIGINT on ignored, and Python then keeps it ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        for n, _ in enumerate(parallel.ordered_map(time.sleep, [0.25] * 40, 2)):
            if n == 0:
                print("running", flush=True)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
"""


@pytest.mark.parametrize("jobs", [1, 2, 3])
def test_results_come_in_task_order(jobs):
    tasks = list(range(23))
    assert list(parallel.ordered_map(operator.neg, tasks, jobs)) == [-t for t in tasks]
    assert list(parallel.ordered_map(operator.neg, [], jobs)) == []


def test_jobs_must_be_positive():
    with pytest.raises(ValueError, match="jobs must be a positive integer, got 0"):
        list(parallel.ordered_map(operator.neg, [1, 2], 0))


def test_counted_reports_each_result():
    seen = []
    assert list(parallel.counted("abc", 3, lambda n, total: seen.append((n, total)))) == [
        "a", "b", "c"]
    assert seen == [(1, 3), (2, 3), (3, 3)]


def test_ctrl_c_in_a_terminal_is_answered_by_the_caller_alone(tmp_path):
    """Before, every process of the pool printed its own KeyboardInterrupt traceback."""
    script = tmp_path / "caller.py"
    script.write_text(CALLER)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "PYTHONPATH": str(ADDON)})
    try:
        assert proc.stdout.readline() == "running\n"  # the processes are at work
        sent = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C does
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert (proc.returncode, stdout, stderr) == (0, "interrupted\n", "")
    assert time.monotonic() - sent < 3  # not the 4 s of tasks left
