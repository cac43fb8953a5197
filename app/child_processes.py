"""No process outlives the app.

multiprocessing starts a resource tracker beside the first spawned child that shares a
semaphore (the worker's cancel Event) and never waits for it: it ends only once the app has
ended, as an orphan that stays in the app's process group until init reaps it (`make
dist-test` still saw it a second after the GUI exited). end_child_processes() runs when the
GUI's event loop has returned: it stops any child still running, runs multiprocessing's exit
finalizers now (they unregister the semaphores with the tracker, and would start a new
tracker if it were gone), then stops the tracker and waits for it.
"""
from __future__ import annotations

import multiprocessing
from multiprocessing import resource_tracker, util


def end_child_processes(timeout: float = 5.0) -> None:
    children = multiprocessing.active_children()
    for child in children:
        child.terminate()
    for child in children:
        child.join(timeout)
        if child.is_alive():
            child.kill()
            child.join(timeout)
    # Private hooks (CPython 3.8-3.14); on a Python without them, leave it to atexit.
    exit_function = getattr(util, "_exit_function", None)
    stop_tracker = getattr(resource_tracker._resource_tracker, "_stop", None)
    if exit_function is None or stop_tracker is None or multiprocessing.active_children():
        return
    exit_function()   # what atexit would run; a second call there does nothing
    stop_tracker()    # closes the tracker's pipe, so it exits, and reaps it
