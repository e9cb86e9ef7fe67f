"""Signal layout: every Nengo signal gets an address in a few flat buffers.

Two pools hold the signals' values:

- the *float pool*, in the simulator's dtype (float32 or float64);
- the *int pool* (int64), for integer signals such as the step counter.

Each pool is laid out as ``[shared | trial 0 state | trial 1 state | ...]``.
A base signal that no operator writes (encoders, decoders, constants) is
*shared*: one copy serves every trial of a minibatch.  Every other base signal
is *state* and gets one copy per trial.  An address ``a`` names element ``a``
of the shared block when ``a < n_shared``, else element ``a - n_shared`` of
each trial's state block (see ``csrc/cpu/program.h``).

Views (sliced signals) get no memory of their own: their addresses are computed
from their base's address, offset and strides, exactly as Nengo's
``SignalDict`` builds NumPy views.  Signals that fit neither pool (sparse
matrices, other dtypes) stay Python objects, reachable only by callbacks.
"""

import os

import numpy as np
from nengo.builder.signal import Signal, SignalDict
from nengo.exceptions import BuildError, SignalError

FLOAT, INT, OTHER = "float", "int", "other"


def _pool_kind(base):
    if base.sparse:
        return OTHER
    kind = np.dtype(base.dtype).kind
    if kind == "f":
        return FLOAT
    if kind in "iub":
        return INT
    return OTHER


ALIGN_BYTES = 64  # TensorFlow's EIGEN_MAX_ALIGN_BYTES


def aligned_zeros(n, dtype, align=ALIGN_BYTES):
    """np.zeros(n, dtype) whose data starts at an ``align``-byte boundary."""
    dtype = np.dtype(dtype)
    raw = np.zeros(n * dtype.itemsize + align, dtype=np.uint8)
    start = -raw.ctypes.data % align
    return raw[start : start + n * dtype.itemsize].view(dtype)


class SignalLayout:
    """Assigns each base signal to a pool, a region (shared/state) and an offset.

    Parameters
    ----------
    signals : iterable of Signal
        All signals used by the model's operators and probes.
    written : set of Signal
        Base signals that some operator (or run-time input) writes.
    dtype : np.dtype
        The float pool's dtype.
    n_trials : int
        Number of independent trials (the minibatch size).
    dt : float, optional
        The simulator's time step (lowerings whose parameters depend on it,
        such as discretised filters, need it; None: they fall back).
    """

    def __init__(self, signals, written, dtype, n_trials, dt=None, align=()):
        """``align``: bases placed at ALIGN_BYTES boundaries (in every trial; the
        pools start at one), e.g. TensorNode inputs that TensorFlow reads in
        place (its kernels require that alignment)."""
        self.dtype = np.dtype(dtype)
        self.n_trials = n_trials
        self.dt = dt
        bases = {}
        for sig in signals:
            bases.setdefault(sig.base, None)
        self.bases = list(bases)

        # base -> (pool kind, is_shared, offset within its region)
        self.placement = {}
        sizes = {(FLOAT, True): 0, (FLOAT, False): 0, (INT, True): 0, (INT, False): 0}
        for base in self.bases:
            pool = _pool_kind(base)
            if pool == OTHER:
                self.placement[base] = (OTHER, base not in written, None)
                continue
            shared = base not in written
            if base in align and pool == FLOAT:
                sizes[pool, shared] = self._round_up(sizes[pool, shared])
            self.placement[base] = (pool, shared, sizes[pool, shared])
            sizes[pool, shared] += base.size
        if any(b in align for b in self.bases):  # region starts aligned too
            sizes[FLOAT, True] = self._round_up(sizes[FLOAT, True])
            sizes[FLOAT, False] = self._round_up(sizes[FLOAT, False])
        self.f_shared = sizes[FLOAT, True]
        self.f_state = sizes[FLOAT, False]
        self.i_shared = sizes[INT, True]
        self.i_state = sizes[INT, False]

        n_float = self.f_shared + n_trials * self.f_state
        n_int = self.i_shared + n_trials * self.i_state
        check_memory(n_float * self.dtype.itemsize + n_int * 8, self)
        try:
            self.fbuf = aligned_zeros(n_float, self.dtype)
            self.ibuf = np.zeros(n_int, dtype=np.int64)
        except MemoryError:
            raise BuildError(f"nengo_cuda could not allocate {self._describe()}") from None
        self._other = {}  # base -> objects for OTHER signals (one, or one per trial)
        # Counts writes (possible writes) of the float pool's shared region by
        # Python: a native program re-reads its copies of shared signals (packed
        # weights) when it changed since its last run.  Views of Nengo-readonly
        # signals in the signal dicts are read-only, so every write of one goes
        # through base_array, writable or reset.  Direct writes into fbuf's
        # shared part must call touch_shared.
        self.shared_version = 0
        self.signal_dicts = [self._make_signal_dict(t) for t in range(n_trials)]
        self.reset()

    def _round_up(self, n):
        step = ALIGN_BYTES // self.dtype.itemsize
        return -(-n // step) * step

    def _describe(self):
        return (
            f"the signal buffers: {self.f_shared} shared + {self.n_trials} trial(s) x "
            f"{self.f_state} state {self.dtype.name} values, {self.i_shared} + "
            f"{self.n_trials} x {self.i_state} int64 values"
        )

    def native_args(self):
        """The pools and their shape, as every native program takes them first:
        (fbuf, f_shared, f_state, ibuf, i_shared, i_state, n_trials)."""
        return (self.fbuf, self.f_shared, self.f_state, self.ibuf, self.i_shared,
                self.i_state, self.n_trials)

    def touch_shared(self):
        """Records a write into the shared part of ``fbuf`` (see shared_version)."""
        self.shared_version += 1

    def release(self):
        """Drops the pools (after `Simulator.close`); the layout is unusable afterwards."""
        self.fbuf = self.ibuf = None
        self._other = {}
        for signals in self.signal_dicts:
            dict.clear(signals)
        self.signal_dicts = []

    # -- addresses ---------------------------------------------------------
    def pool_of(self, sig):
        return self.placement[sig.base][0]

    def is_shared(self, sig):
        return self.placement[sig.base][1]

    def base_address(self, base):
        """Address of the first element of a base signal in its pool."""
        pool, shared, offset = self.placement[base]
        if pool == OTHER:
            raise SignalError(f"{base} has no address (sparse or non-numeric signal)")
        n_shared = self.f_shared if pool == FLOAT else self.i_shared
        return offset if shared else n_shared + offset

    def address(self, sig):
        """Address of a signal's first element (its element at index 0...0)."""
        return self.base_address(sig.base) + (sig.elemoffset if sig.is_view else 0)

    def state_elements(self, pool):
        """The elements of a trial's state region in ``pool`` that belong to a
        base (the others are padding), as an index array."""
        ranges = [np.arange(start, start + base.size)
                  for base, (p, shared, start) in self.placement.items()
                  if p == pool and not shared]
        return np.concatenate(ranges) if ranges else np.zeros(0, np.int64)

    def state_base_at(self, offset):
        """The float state base holding element ``offset`` of a trial's state
        region (None: padding); for messages."""
        for base, (pool, shared, start) in self.placement.items():
            if pool == FLOAT and not shared and start <= offset < start + base.size:
                return base
        return None

    def strides(self, sig):
        """A signal's strides in elements."""
        if sig.is_view:
            return tuple(sig.elemstrides)
        return tuple(s // sig.itemsize for s in sig.initial_value.strides)

    def addresses(self, sig):
        """Addresses of every element of ``sig``, as an int64 array of ``sig.shape``."""
        addr = np.asarray(self.address(sig), dtype=np.int64)
        for n, s in zip(sig.shape, self.strides(sig)):
            addr = addr[..., None] + np.arange(n, dtype=np.int64) * s
        return addr

    # -- memory ------------------------------------------------------------
    def _region(self, pool, shared, trial):
        if pool == FLOAT:
            buf, n_shared, n_state = self.fbuf, self.f_shared, self.f_state
        else:
            buf, n_shared, n_state = self.ibuf, self.i_shared, self.i_state
        if shared:
            return buf[:n_shared]
        start = n_shared + trial * n_state
        return buf[start : start + n_state]

    def base_array(self, base, trial):
        """The NumPy array holding ``base`` for ``trial`` (a view into a pool).

        Writable: a float base of the shared region counts as changed (see
        `shared_version`), since the caller may write it."""
        pool, shared, offset = self.placement[base]
        if pool == OTHER:
            return self._other[base][0 if shared else trial]
        if shared and pool == FLOAT:
            self.shared_version += 1
        region = self._region(pool, shared, trial)
        return region[offset : offset + base.size].reshape(base.shape)

    def writable(self, sig, trial=0):
        """A writable array of ``sig`` for ``trial`` (our own writes of
        parameters and initial values, also of Nengo-readonly signals)."""
        base = self.base_array(sig.base, trial)
        return signal_view(base, sig) if sig.is_view else base

    def _make_signal_dict(self, trial):
        signals = LayoutSignalDict(self, trial)
        for base in self.bases:
            if self.placement[base][0] != OTHER:
                array = self.base_array(base, trial)
                if base.readonly:
                    # as in Nengo's SignalDict; kernels keep copies of such
                    # signals (packed weights) that only our own writes renew
                    array.setflags(write=False)
                dict.__setitem__(signals, base, array)
        return signals

    def use_exact_time(self, time, step, dt):
        """Gives Python callbacks ``time`` as float64 ``step * dt``, as Nengo computes it.

        In float32 simulations the time signal in the float pool is rounded
        (0.501 becomes 0.50099998); Node functions and processes that compute
        indices from ``t`` would then be off by a step.  Callbacks instead see a
        float64 copy, refreshed by `sync_time` before they run.  Native kernels
        keep reading the pool's time.
        """
        if self.dtype == np.float64 or time.is_view or self.pool_of(step) != INT:
            return
        self._time = time
        self._time_dt = dt
        addr, n = self.address(step), self.n_trials
        # every trial's step counter, and every trial's time as one array, so
        # that a sync is one vectorised multiply (callbacks run it every step)
        self._steps = (slice(addr, addr + 1) if addr < self.i_shared else
                       slice(addr, addr + (n - 1) * self.i_state + 1, self.i_state))
        self._times = np.zeros(n, dtype=np.float64)
        for t, signals in enumerate(self.signal_dicts):
            dict.__setitem__(signals, time, self._times[t : t + 1].reshape(()))
        self._step_addr = addr
        # one trial: Python's int * float, the same float64 product without
        # NumPy's call overhead (0.8 of a 3.2 us callback with one Node)
        self.sync_time = self._sync_one_time if n == 1 else self._sync_time

    sync_time = None  # set by use_exact_time

    def _sync_time(self):
        np.multiply(self.ibuf[self._steps], self._time_dt, out=self._times)

    def _sync_one_time(self):
        self._times[0] = int(self.ibuf[self._step_addr]) * self._time_dt

    def reset(self):
        """Writes every signal's initial value into the buffers."""
        self.shared_version += 1
        for base in self.bases:
            pool, shared, _ = self.placement[base]
            if pool == OTHER:
                # fresh objects (one per trial when written), re-entered in the dicts
                n_copies = 1 if shared else self.n_trials
                self._other[base] = [_copy_initial(base) for _ in range(n_copies)]
                for trial, signals in enumerate(self.signal_dicts):
                    dict.__setitem__(signals, base, self.base_array(base, trial))
                    for key in [k for k in dict.keys(signals) if k.base is base and k is not base]:
                        dict.__delitem__(signals, key)  # stale views of the old object
                continue
            for trial in range(1 if shared else self.n_trials):
                self.base_array(base, trial)[...] = base.initial_value
        if self.sync_time is not None:
            self.sync_time()


def available_memory():
    """Bytes of memory available to new allocations (None when unknown)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def format_bytes(n):
    if n < 1024:
        return f"{n} bytes"
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        n /= 1024
        if n < 1024:
            break
    return f"{n:.4g} {unit}"


def check_memory(n_bytes, layout):
    """Raises a BuildError before allocating more than the available memory."""
    available = available_memory()
    if available is not None and n_bytes > available:
        raise BuildError(
            f"nengo_cuda needs {format_bytes(n_bytes)} for {layout._describe()}; only "
            f"{format_bytes(available)} of memory is available (reduce minibatch_size "
            "or the model's size)"
        )


def _copy_initial(base):
    value = base.initial_value
    if hasattr(value, "allocate"):  # nengo.transforms.SparseMatrix
        # (a copy: `allocate` returns one cached matrix, and training and
        # load_params write these values, `SparseParameters`)
        matrix = value.allocate().copy()
        # (read-only, as Nengo allocates it; a dense array where Nengo runs without scipy)
        (matrix.data if hasattr(matrix, "tocsr") else matrix).setflags(write=False)
        return matrix
    return value.copy()


def signal_view(base_array, sig):
    """The elements of view signal ``sig`` in ``base_array`` (its base's array;
    read-only when that is)."""
    itemsize = base_array.itemsize
    return np.ndarray(
        buffer=base_array,
        dtype=base_array.dtype,
        shape=sig.shape,
        offset=sig.elemoffset * itemsize,
        strides=tuple(s * itemsize for s in sig.elemstrides),
    )


class LayoutSignalDict(SignalDict):
    """A `nengo.builder.signal.SignalDict` whose arrays live in a layout's pools.

    Nengo's operators' ``make_step`` functions run unchanged on it, reading and
    writing our buffers in place; views are built in the pool's dtype.
    """

    def __init__(self, layout, trial):
        super().__init__()
        self.layout = layout
        self.trial = trial

    def __getitem__(self, key):
        try:
            return dict.__getitem__(self, key)
        except KeyError:
            if not (isinstance(key, Signal) and key.is_view):
                raise
        view = signal_view(dict.__getitem__(self, key.base), key)
        dict.__setitem__(self, key, view)
        return view

    def init(self, signal):
        raise SignalError("signals are laid out by nengo_cuda; they cannot be added")

    def reset(self, signal):
        if not signal.readonly:
            self[signal] = signal.initial_value
