"""The CUDA backend: the program runs as CUDA kernels, a step as a CUDA graph.

`CudaBackend` loads the same `Program` as the CPU backend into a native device
program (``csrc/cuda/``).  Device memory comes from CuPy (``pip install
nengo_cuda[cuda]``): the signal pools and every table the native side asks for
through the ``alloc``/``free`` hooks, so ``close()`` returns all of it to CuPy's
pool.  Work is ordered on CuPy's current stream.

The host pools (``layout.fbuf``/``ibuf``) stay the truth between runs, as with
the CPU backend: a run uploads them, runs its steps on the device and downloads
the state and the probe data.  Callback instructions (operators without a
kernel) get the signals they touch copied to the host and back around them.

`EmulatedCudaBackend` runs the very same native program logic and kernel bodies
on the host, with NumPy memory in place of device memory (``device=
"cuda-emulator"``): it tests everything but the CUDA calls on machines without
a GPU, and is slow.
"""

import contextlib
import weakref

import numpy as np

from .. import _native
from ..layout import FLOAT
from .native import NativeBackend

# A callback's float ranges are copied whole when they cover at least this
# fraction of the state, and ranges closer than _GAP elements are merged.
_WHOLE_STATE = 0.5
_GAP = 256


def import_cupy():
    """CuPy, or an ImportError that says how to install it."""
    try:
        import cupy  # noqa: PLC0415
    except ImportError as e:
        raise ImportError(
            "The CUDA backend needs CuPy: pip install 'nengo_cuda[cuda]' "
            f"(cupy-cuda13x) ({e})"
        ) from e
    return cupy


def callback_ranges(instr, layout):
    """Pool ranges (start, length, ...) a callback instruction may read or write.

    Float pool: the state copies (every trial) of the bases its operators use;
    shared signals are never written, so the host copy is current.  Int pool:
    all state (tiny: the step counter, which callbacks read for the time).
    A callback that works on device memory itself (a TensorNode, see
    `nengo_cuda.training.tensor_node.run_step`) names the few signals it needs on
    the host in ``callback.host_signals``.
    """
    needed = getattr(instr.callback, "host_signals", None)
    # such a callback writes device memory: copy exactly its host signals back
    # (merged ranges would overwrite what it wrote with stale host values)
    exact = needed is not None
    if exact:
        bases = {s.base for s in needed}
    else:
        bases = {s.base for op in instr.ops for s in op.all_signals}
    spans = []
    for base in bases:
        pool, shared, offset = layout.placement.get(base, (None, True, None))
        if pool != FLOAT or shared:
            continue
        for t in range(layout.n_trials):
            start = layout.f_shared + t * layout.f_state + offset
            spans.append((start, start + base.size))
    total_state = layout.n_trials * layout.f_state
    f_ranges = []
    if spans:
        spans.sort()
        merged = [list(spans[0])]
        for lo, hi in spans[1:]:
            if lo <= merged[-1][1] + (0 if exact else _GAP):
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        if not exact and sum(hi - lo for lo, hi in merged) >= _WHOLE_STATE * total_state:
            merged = [[layout.f_shared, layout.f_shared + total_state]]
        f_ranges = [v for lo, hi in merged for v in (lo, hi - lo)]
    n_int = layout.n_trials * layout.i_state
    i_ranges = [layout.i_shared, n_int] if n_int else []
    return f_ranges, i_ranges


def _weak_hook(method):
    """``method`` of a backend, for the native program to call, without a
    reference to the backend: the program holds its hooks in C++, where
    Python's garbage collector cannot see a cycle back to the backend (an
    unclosed simulator would keep its device memory until the process ends).
    Called after the backend is gone (only its program's destructor can), it
    does nothing: the backend's arrays owned the memory, and went with it."""
    ref = weakref.WeakMethod(method)

    def hook(*args):
        bound = ref()
        return None if bound is None else bound(*args)

    return hook


class CudaBackend(NativeBackend):
    """Loads a `Program` into a native CUDA program over device copies of the pools."""

    name = "cuda"
    probes_each_step = False  # (the device's buffers reach the host when a run ends)

    def __init__(self, program, layout, dt, device_index=None):
        self.layout = layout
        self._buffers = {}  # device address -> the array that owns the memory
        self.native = None
        self._profiles = None  # a list while `profiling()` is active
        self._init_device(device_index)
        with self._on_device():
            self._load(program, layout, dt)

    def _load(self, program, layout, dt):
        f_pool = self._device_array(layout.fbuf.size, layout.dtype)
        self._f_pool = f_pool
        i_pool = self._device_array(layout.ibuf.size, np.int64)
        classes = self._program_classes()
        self.native = classes[np.dtype(layout.dtype)](
            *layout.native_args(), dt, f_pool, i_pool, _weak_hook(self._alloc),
            _weak_hook(self._free), self._device_id
        )
        self.native.set_stream(self._stream())
        for instr in program:
            if instr.is_callback:
                self.native.add_callback(instr.callback, *callback_ranges(instr, layout))
            else:
                self.native.add(instr.kind, instr.ints, instr.floats, instr.scalars)

    # -- device specifics (overridden by the emulator) ----------------------------
    def _init_device(self, device_index):
        """The program's device: ``device_index``, or CuPy's current device."""
        self._cp = import_cupy()
        if device_index is None:
            device_index = self._cp.cuda.Device().id
        self._device_id = int(device_index)

    def _on_device(self):
        """The program's device made current, for every call that reaches the
        device: allocations, CuPy's current stream (per device) and the native
        program's work must all be on the device the program was built on, even
        when the caller has made another one current (multi-GPU); the caller's
        device is current again afterwards (the native side sets its own)."""
        return self._cp.cuda.Device(self._device_id)

    @staticmethod
    def _program_classes():
        return {
            np.dtype(np.float32): _native.CudaProgramFloat32,
            np.dtype(np.float64): _native.CudaProgramFloat64,
        }

    def _alloc(self, nbytes):
        arr = self._cp.empty(max(int(nbytes), 1), dtype=self._cp.uint8)
        ptr = int(arr.data.ptr)
        self._buffers[ptr] = arr
        return ptr

    def _stream(self):
        return int(self._cp.cuda.get_current_stream().ptr)

    @property
    def array_module(self):
        """The array module of `device_arrays` (CuPy; NumPy in the emulator)."""
        return self._cp

    def device_sync(self):
        """Waits for all work on the device (every stream: TensorFlow's too)."""
        with self._on_device():
            self._cp.cuda.runtime.deviceSynchronize()

    # -- shared ----------------------------------------------------------------------
    def _device_array(self, n, dtype):
        return self._alloc(max(int(n), 1) * np.dtype(dtype).itemsize)

    def device_arrays(self, sig):
        """Per trial, ``sig`` (a contiguous float-pool signal) as an array of its
        shape over the device pool's memory: no copy.  Valid while a callback
        runs (the native program syncs before it and the callback syncs after)."""
        layout = self.layout
        dtype = np.dtype(layout.dtype)
        pool = self._buffers[self._f_pool]
        shared = layout.placement[sig.base][1]
        arrays = []
        for trial in range(1 if shared else layout.n_trials):
            start = layout.address(sig) + (0 if shared else trial * layout.f_state)
            raw = pool[start * dtype.itemsize : (start + sig.size) * dtype.itemsize]
            arrays.append(raw.view(dtype).reshape(sig.shape))
        return arrays * (layout.n_trials if shared else 1)

    def _free(self, ptr):
        self._buffers.pop(int(ptr), None)

    def set_enabled(self, index, enabled):
        self.native.set_enabled(index, enabled)

    def set_table(self, index, name, data):
        """Replaces data table ``name`` of instruction ``index`` (float64 values)."""
        with self._on_device():
            self.native.set_stream(self._stream())
            self.native.set_table(index, name, np.ascontiguousarray(data, dtype=np.float64))

    def set_poison(self, on=True):
        """Fill probe buffers with NaN before each run (unwritten samples show)."""
        self.native.set_poison(on)

    def run(self, n_steps, feeds, probes):
        """Runs ``n_steps``; same arguments and result as `CpuBackend.run`.

        Inside `profiling()`, runs as `profile` does and keeps its result.
        """
        if self._profiles is not None:
            self._profiles.append(self.profile(n_steps, feeds, probes))
            return self.native.steps_done
        with self._on_device():
            self.native.run(n_steps, feeds, probes, self._stream())
        return self.native.steps_done

    def profile(self, n_steps, feeds, probes):
        """Runs ``n_steps`` like `run` (the same steps, state and probe data),
        without graphs, and times each launch group.

        Returns a dict: ``groups`` (in launch order, each with ``instrs``: the
        instruction indices it covers, ``kinds``, ``launches`` per step and
        ``seconds`` summed over the steps; "feed", "probe", "advance" and
        callback groups cover no kernel instruction or a callback), ``idle``
        (enabled instructions that launch nothing), ``steps`` and ``wall_s``
        (host time of the stepping loop).  On the GPU a group's time runs from
        the event recorded after the previous group to the one after it: its
        kernels' device time plus any gap before them, an upper bound per
        kernel; the graph run (`run`) is the real total.
        """
        with self._on_device():
            return dict(self.native.profile(n_steps, feeds, probes, self._stream()))

    @contextlib.contextmanager
    def profiling(self):
        """While active, `run` profiles (see `profile`); yields the list that
        collects one result per run (the Simulator may split a run in chunks)."""
        if self._profiles is not None:
            raise RuntimeError("profiling() is already active")
        self._profiles = []
        try:
            yield self._profiles
        finally:
            self._profiles = None

    def stats(self):
        """Launches per step, steps per graph, ... of the last run (a dict)."""
        return dict(self.native.stats())

    def close(self):
        if self.native is not None:
            with self._on_device():
                self.native.close()
        self.native = None
        self._buffers.clear()


class EmulatedCudaBackend(CudaBackend):
    """`CudaBackend`'s native logic and kernels run on the host (for tests)."""

    name = "cuda-emulator"

    def _init_device(self, device_index):
        self._device_id = 0

    def _on_device(self):
        return contextlib.nullcontext()

    @staticmethod
    def _program_classes():
        return {
            np.dtype(np.float32): _native.EmulatedProgramFloat32,
            np.dtype(np.float64): _native.EmulatedProgramFloat64,
        }

    def _alloc(self, nbytes):
        # poisoned, so reads of memory nothing wrote show up as NaN
        # at a 512-byte boundary, as CuPy's pool allocates
        n = max(int(nbytes), 1)
        raw = np.full(n + 512, 0xFF, dtype=np.uint8)
        start = -raw.ctypes.data % 512
        arr = raw[start : start + n]
        ptr = int(arr.ctypes.data)
        self._buffers[ptr] = arr
        return ptr

    def _stream(self):
        return 0

    @property
    def array_module(self):
        return np

    def device_sync(self):
        pass
