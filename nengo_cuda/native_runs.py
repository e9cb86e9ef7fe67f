"""Native runs in progress, stopped before Python exits.

A thread still inside a native run when Python finalizes (a daemon thread, once
the main thread exits) would abort the process: Python 3.11 ends a thread that
asks for the GIL then (the run's signal check, a Node's callback) with a forced
unwind, which C++ ends with ``std::terminate`` in the run's frames.  So an
`atexit` hook asks every run to stop at its next slice boundary (about every
50 ms, as Ctrl-C does) and waits until they have returned; runs that start
after it are refused, and their threads get a moment to end (to print the
run's exception whole).
"""

import atexit
import contextlib
import threading
import time

from nengo.exceptions import SimulationError

_WAIT_SECONDS = 5.0  # (a run that ignores the request keeps Python from exiting no longer)
_JOIN_SECONDS = 1.0  # (for the threads of the stopped runs, all together)

_lock = threading.Lock()
_running = {}  # a native run's token -> (its backend, its thread)
_exiting = False


class native_run:  # noqa: N801 - a context manager used as a function
    """Registers ``backend`` as running for the block (its native run).  (A
    class: contextlib's generator form costs ~2 us, a tenth of a `step()`.)"""

    __slots__ = ("backend",)

    def __init__(self, backend):
        self.backend = backend

    def __enter__(self):
        with _lock:
            if _exiting:
                raise SimulationError("Cannot run the simulator: Python is exiting")
            _running[self] = (self.backend, threading.current_thread())

    def __exit__(self, *exc):
        with _lock:
            del _running[self]


def _still_running():
    with _lock:
        return len(_running) > 0


@atexit.register
def stop_native_runs(wait=_WAIT_SECONDS):
    """Asks every native run to stop and waits (without the GIL) until they
    returned or ``wait`` seconds passed; refuses runs from now on."""
    global _exiting
    with _lock:
        _exiting = True
        runs = list(_running.values())
    for backend, _ in runs:
        with contextlib.suppress(Exception):  # (closed meanwhile: nothing runs)
            backend.request_stop()
    deadline = time.monotonic() + wait
    while _still_running() and time.monotonic() < deadline:
        time.sleep(0.005)
    deadline = time.monotonic() + _JOIN_SECONDS
    for _, thread in runs:
        if thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
