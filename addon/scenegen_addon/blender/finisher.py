"""A scene's post-processing in a background thread, one scene behind the renders.

A Cycles render releases the GIL, so pipeline.finish_scene of scene k (masks, constraints,
writing: no bpy) runs while scene k+1 renders. At most one scene is pending, so memory
stays bounded. finish_scene writes the scene record last, so a crash at any moment leaves
the scene without metadata (incomplete), never looking complete.
"""

import threading


class FinishFailed(Exception):
    """The post-processing of `scene_id` raised `cause`."""

    def __init__(self, scene_id: str, cause: BaseException):
        super().__init__(f"{scene_id}: {type(cause).__name__}: {cause}")
        self.scene_id, self.cause = scene_id, cause


class Finisher:
    """Runs one job at a time in a thread. A job's failure is raised by the next call of
    submit() or wait(), or, with `on_error`, handed to on_error(FinishFailed) in the thread
    at once (the worker, which may sit idle after the job, reports it without delay)."""

    def __init__(self, on_error=None):
        self._thread: threading.Thread | None = None
        self._error: FinishFailed | None = None
        self._on_error = on_error
        self._pending: str | None = None

    def submit(self, scene_id: str, job, done) -> None:
        """Wait for the previous job (raising its failure), then run `done(job())` in a
        thread; the scene is pending until job() has returned (its record is written)."""
        self.wait()

        def run():
            try:
                result = job()
                self._pending = None
                done(result)
            except BaseException as exc:  # kept for the main thread, never lost
                error = FinishFailed(scene_id, exc)
                if self._on_error is None:
                    self._error = error
                else:
                    self._on_error(error)

        self._pending = scene_id
        self._thread = threading.Thread(target=run, name=f"finish {scene_id}", daemon=True)
        self._thread.start()

    def pending(self) -> str | None:
        """The scene whose job has not returned yet (not written), if any."""
        return self._pending

    def wait(self) -> None:
        """Block until no job is pending; raise FinishFailed if the last one failed."""
        if self._thread is not None:
            self._thread.join()
            self._thread = self._pending = None
        error, self._error = self._error, None
        if error is not None:
            raise error
