"""Run single native instructions on hand-made buffers, for kernel unit tests.

`RawProgram` lays out a float pool ``[shared | trial 0 | trial 1 ...]`` like
`nengo_cuda.layout.SignalLayout`, lets a test place arrays in it, adds
instructions by kind, and runs steps.  Outputs are poisoned (NaN) by default so
that elements a kernel forgets to write show up.
"""

import numpy as np

from nengo_cuda import _native

PROGRAMS = {np.float32: _native.ProgramFloat32, np.float64: _native.ProgramFloat64}


class RawProgram:
    def __init__(self, dtype, n_shared, n_state, n_trials=1, dt=0.001, n_int_state=1):
        self.dtype = np.dtype(dtype)
        self.n_shared, self.n_state, self.n_trials = n_shared, n_state, n_trials
        self.fbuf = np.full(n_shared + n_trials * n_state, np.nan, dtype=self.dtype)
        self.ibuf = np.zeros(n_trials * n_int_state, dtype=np.int64)
        self.native = PROGRAMS[self.dtype.type](
            self.fbuf, n_shared, n_state, self.ibuf, 0, n_int_state, n_trials, dt
        )
        self._next = {True: 0, False: 0}

    def alloc(self, n, shared=False):
        """Reserves ``n`` consecutive addresses; returns them as an int64 array."""
        start = self._next[shared]
        self._next[shared] += n
        limit = self.n_shared if shared else self.n_state
        assert self._next[shared] <= limit, "RawProgram too small"
        base = start if shared else self.n_shared + start
        return np.arange(base, base + n, dtype=np.int64)

    def view(self, addrs, trial=0):
        """The memory at ``addrs`` for ``trial`` (a copy)."""
        addrs = np.asarray(addrs)
        mem = np.where(addrs < self.n_shared, addrs, addrs + trial * self.n_state)
        return self.fbuf[mem]

    def write(self, addrs, values, trial=0):
        addrs = np.asarray(addrs)
        mem = np.where(addrs < self.n_shared, addrs, addrs + trial * self.n_state)
        self.fbuf[mem] = values

    def add(self, kind, ints=None, floats=None, scalars=None):
        ints = {k: np.asarray(v, dtype=np.int64).ravel().tolist() for k, v in (ints or {}).items()}
        floats = {k: np.asarray(v, dtype=np.float64).ravel().tolist() for k, v in (floats or {}).items()}
        scalars = {k: float(v) for k, v in (scalars or {}).items()}
        return self.native.add(kind, ints, floats, scalars)

    def run(self, n_steps=1):
        self.native.run(n_steps, [], [])
