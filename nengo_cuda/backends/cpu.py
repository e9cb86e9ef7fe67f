"""The CPU backend: the program runs inside the C++ step loop of `_native`."""

import multiprocessing

import numpy as np

from .. import _native
from .native import NativeBackend


def _forked_before_import():
    """Whether this is a child that multiprocessing made by fork (its Process
    object's start method), importing nengo_cuda only now: the module's fork
    handler (csrc/cpu/parallel.h) did not see the fork, and the parent may
    have started an OpenMP pool of another library on the same libgomp, which
    the child's trial-parallel loop would wait for forever.  (A bare
    ``os.fork()`` before the import goes unseen.)"""
    return getattr(multiprocessing.current_process(), "_start_method", None) == "fork"


if _forked_before_import():
    _native.mark_forked_child()

_PROGRAM_CLASSES = {
    np.dtype(np.float32): _native.ProgramFloat32,
    np.dtype(np.float64): _native.ProgramFloat64,
}


class CpuBackend(NativeBackend):
    """Loads a `Program` into a native program over a layout's buffers."""

    name = "cpu"
    # the probes' host arrays hold each step's samples when its step ends
    # (callbacks then see them: `Simulator._live_chunk`)
    probes_each_step = True

    def __init__(self, program, layout, dt):
        self.layout = layout
        cls = _PROGRAM_CLASSES[layout.dtype]
        self.native = cls(*layout.native_args(), dt)
        self._shared_version = None  # the first run reads every shared signal
        for instr in program:
            if instr.is_callback:
                self.native.add_callback(instr.callback)
            else:
                self.native.add(instr.kind, instr.ints, instr.floats, instr.scalars)

    def set_enabled(self, index, enabled):
        self.native.set_enabled(index, enabled)

    def set_table(self, index, name, data):
        """Replaces data table ``name`` of instruction ``index`` (float64 values)."""
        self.native.set_table(index, name, np.ascontiguousarray(data, dtype=np.float64))

    def run(self, n_steps, feeds, probes):
        """Runs ``n_steps``; returns the number of steps completed.

        feeds: list of (after_instruction, addresses, data (trials, n_steps, n))
        probes: list of (addresses, mask (n_steps,) uint8, out (trials, samples, n))
        On an exception, the steps completed before it are kept in ``steps_done``.
        """
        if self.layout.shared_version != self._shared_version:
            self.native.mark_shared_changed()  # re-pack copies of shared signals
            self._shared_version = self.layout.shared_version
        self.native.run(n_steps, feeds, probes)
        return self.native.steps_done

    def close(self):
        self.native = None
