"""One function over many tasks on a process pool, results in task order: the validator's
scene checks and the exports' questions.

Spawned processes (the caller may have loaded bpy or threads, which do not survive a fork
well) that ignore SIGINT: a Ctrl-C in a terminal reaches the whole process group, and only
the caller should answer it, not every child with its own traceback. Leaving the loop early
(an exception, a signal the caller turns into one) terminates the processes at once instead
of waiting for the remaining tasks.
"""

import multiprocessing
import signal
from collections.abc import Callable, Iterable, Iterator


def _ignore_interrupt() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def ordered_map(function: Callable, tasks: list, jobs: int) -> Iterator:
    """function(task) for each task, in order, on `jobs` processes (here for 1 job or a
    single task); `function` must be a module-level function, picklable with its tasks."""
    if jobs < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    if jobs == 1 or len(tasks) < 2:
        yield from map(function, tasks)
        return
    processes = min(jobs, len(tasks))
    with multiprocessing.get_context("spawn").Pool(processes, _ignore_interrupt) as pool:
        yield from pool.imap(function, tasks, chunksize=chunk_size(len(tasks), processes))


def chunk_size(n_tasks: int, processes: int) -> int:
    """About four chunks per process: few round trips, yet an even finish."""
    return max(1, n_tasks // processes // 4)


def counted(results: Iterable, total: int, progress: Callable[[int, int], None] | None
            ) -> Iterator:
    """The results, calling progress(number done so far, total) after each."""
    for done, result in enumerate(results, 1):
        yield result
        if progress is not None:
            progress(done, total)
