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
    """Runs one job at a time in a thread; a job's failure is raised by the next call of
    submit() or wait()."""

    def __init__(self):
        self._thread: threading.Thread | None = None
        self._error: FinishFailed | None = None

    def submit(self, scene_id: str, job, done) -> None:
        """Wait for the previous job (raising its failure), then run `done(job())` in a thread."""
        self.wait()

        def run():
            try:
                done(job())
            except BaseException as exc:  # kept for the main thread, never lost
                self._error = FinishFailed(scene_id, exc)

        self._thread = threading.Thread(target=run, name=f"finish {scene_id}", daemon=True)
        self._thread.start()

    def wait(self) -> None:
        """Block until no job is pending; raise FinishFailed if the last one failed."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        error, self._error = self._error, None
        if error is not None:
            raise error
