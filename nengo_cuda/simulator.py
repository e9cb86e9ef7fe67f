"""`nengo_cuda.Simulator`: a drop-in replacement for `nengo.Simulator`.

Data flow: Nengo's builder builds the model -> `nengo_cuda.planner` orders and
merges its operators -> `nengo_cuda.layout` places signals in flat buffers ->
a backend (`nengo_cuda.backends`) runs the program n steps at a time.

Beyond `nengo.Simulator`, it offers NengoDL's ``minibatch_size`` (independent
trials run together) and ``data=`` (run-time values for input Nodes).
"""

import contextlib
import copy
import logging
import math
import threading
import time
import warnings

import numpy as np
import nengo
import nengo.utils.numpy as npext
from nengo.builder import Model
from nengo.builder.operator import SimPyFunc
from nengo.builder.processes import SimProcess
from nengo.cache import get_default_decoder_cache
from nengo.exceptions import (BuildError, ReadonlyError, SimulationError, SimulatorClosed,
                               ValidationError)
from nengo.utils.progress import NoProgressBar, Progress, ProgressTracker

from . import invalid_values, native_runs, pyfunc, random_splits
from .arguments import (check_data, check_dt, check_dtype, check_positive_int, check_seed,
                        data_or_progress, is_real)
from .backends import select_backend
from .errors import steps_count
from .layout import FLOAT, SignalLayout, available_memory, format_bytes
from .planner import order_operators, plan, written_bases
from .parameters import LearnedParameters, SparseParameters, StateParameters
from .params import current_built
from .probes import (ChunkInFlight, ProbeRecording, SimulationData, SparseRecording,
                     samples_done)
from .tables import TableLoader
from .trial_rngs import trial_generator, trial_rng
from .training.config import get_setting, keep_history, learned_and_set_trainable
from .training.floatx import in_floatx, keras_floatx, restore_floatx, set_floatx
from .training.tensor_node import (host_signals, is_tensor_node, is_tensor_node_op,
                                   not_input_node_reason, run_step, seed_tensorflow)

logger = logging.getLogger(__name__)

# Probe samples kept in one native run (bounds memory in long runs).
_CHUNK_ELEMENTS = 8 * 1024 * 1024
# Probe data of a run from which it is checked against the available memory
_CHECKED_PROBE_BYTES = 1 << 26
# Steps in one native run: bounds the per-step probe masks (about 20 bytes per
# step and probe while they are made) in long runs of small networks.
_CHUNK_STEPS = 1 << 16
# Table values computed ahead for one native run (float64, and copied on their
# way to the backend: WhiteNoise as ensemble noise on 2000 neurons held 260 MB
# at 8 M values; nothing gains from long tables), unless that cuts runs below
# _CHUNK_TABLE_STEPS steps (each run has a fixed cost, a GPU's most)
_CHUNK_TABLE_VALUES = 1 << 21
_CHUNK_TABLE_STEPS = 32
# A run that shows its progress goes in native runs of about _PACE_SECONDS
# each (the progress bar's update interval), the first of _PACE_FIRST_STEPS
# steps: the bar, and `n_steps` read by another thread, move within a long
# chunk (a slow model's bar stood at 0 % for minutes)
_PACE_SECONDS = 0.1
_PACE_FIRST_STEPS = 16


def _probe_buffers(plans, dtype):
    """The output arrays of a run's probes (shapes ``plan[2]``), as views of
    one allocation: the pages of a new array fault in on its first write, and
    NumPy asks for huge pages only for large allocations (each probe's own
    array of a 500-neuron population cost ~2 us a step in page faults)."""
    sizes = [math.prod(plan[2]) for plan in plans]  # (Python's ints: NumPy's cost ~5 us)
    block = np.empty(sum(sizes), dtype)
    buffers, start = [], 0
    for plan, size in zip(plans, sizes):
        buffers.append(block[start : start + size].reshape(plan[2]))
        start += size
    return buffers


def _take_run_lock(sim, action, name):
    """Takes the simulator's run lock without waiting, or raises: ``action``
    (formatted with ``name`` only then: `step()` pays for no message) is what
    could not be done while it runs."""
    if not sim._busy.acquire(blocking=False):
        raise SimulationError(
            f"Cannot {action.format(name)} while it runs (from a Node function it "
            "calls, or from another thread)")


class _Exclusive:
    """`Simulator._exclusive`'s context.  (A class: contextlib's generator form
    costs ~1 us of a `step()`.)"""

    __slots__ = ("sim", "what", "must_be_open")

    def __init__(self, sim, what, must_be_open):
        self.sim, self.what, self.must_be_open = sim, what, must_be_open

    def __enter__(self):
        sim = self.sim
        _take_run_lock(sim, "{} the simulator", self.what)
        session = sim._session
        if session is not None and (self.what == "close"
                                    or session.thread != threading.get_ident()):
            # (the call's own thread may run or reset between its minibatches,
            # from a Keras callback, as NengoDL's; closing would pull its
            # buffers from under it)
            sim._busy.release()
            raise SimulationError(
                f"Cannot {self.what} the simulator during its {session.name} (from a "
                f"callback of it, or from another thread)")
        if self.must_be_open and sim.closed:
            sim._busy.release()
            raise SimulatorClosed(f"Cannot {self.what} the simulator: it was closed")

    def __exit__(self, *exc):
        self.sim._busy.release()


class _Session:
    """`Simulator._session`: a NengoDL method in progress (``fit``, ``predict``,
    ...).  It may run and reset the simulator itself, and so may its callbacks
    between minibatches (an ``evaluate`` at an epoch's end, as NengoDL's); a
    run's Node function calling one, another thread's calls and closing
    meanwhile are refused (a predict inside a Node function's run mixed its
    probe data into ``sim.data``; a close under ``fit`` ended it with a
    TypeError)."""

    __slots__ = ("sim", "name", "thread", "outer")

    def __init__(self, sim, name):
        self.sim, self.name, self.thread = sim, name, threading.get_ident()
        self.outer = None

    def __enter__(self):
        sim = self.sim
        _take_run_lock(sim, "call {} on the simulator", self.name)
        try:
            outer = sim._session
            if outer is not None and outer.thread != self.thread:
                raise SimulationError(
                    f"Cannot call {self.name} during the simulator's {outer.name} in "
                    "another thread")
            self.outer, sim._session = outer, self
        finally:
            sim._busy.release()

    def __exit__(self, *exc):
        self.sim._session = self.outer


def _paced_steps(steps, seconds, limit):
    """Steps of the next native run of a run that shows its progress, after
    one of ``steps`` steps took ``seconds``: about _PACE_SECONDS worth, a power
    of two (few distinct run lengths), at most ``limit``."""
    fit = _PACE_SECONDS * steps / max(seconds, 1e-9)
    return max(1, min(limit, 1 << max(0, int(fit).bit_length() - 1)))


def _warn_learned_and_set_trainable(network):
    """NengoDL's warning, when it builds, for ``trainable=True`` set where an
    online learning rule changes the parameter (`learned_and_set_trainable`)."""
    if get_setting(network, "inference_only"):
        return  # (nothing trains)
    for obj, what in learned_and_set_trainable(network):
        warnings.warn(f"{obj} has a learning rule and is also set to be trainable; its {what} "
                      f"are left to the learning rule (fit does not train them; NengoDL "
                      f"trains them with both)")


def _sampled(start, n, period):
    """Which of steps ``start + 1 .. start + n`` a probe of sampling ``period``
    (in steps) records: Nengo's test, step % period < 1."""
    return np.arange(start + 1, start + n + 1) % period < 1


def process_seed(process, rng):
    """The seed of the generator that Nengo's ``process.get_rng(rng)`` makes,
    drawn from ``rng`` as it draws it.  Most native processes (synapses) never
    use a generator, and making one (seeding a Mersenne twister) costs ~0.1 ms:
    with a minibatch, most of a build; `TableLoader` makes the ones a table needs."""
    return rng.randint(npext.maxint) if process.seed is None else process.seed


class Simulator:
    """Simulates a Nengo network with native kernels.

    Parameters
    ----------
    network : Network or None
        The network to build and simulate (None: ``model`` must be given).
    dt : float
        Time step, in seconds.
    seed : int, optional
        Seed for stochastic operators (default: ``network.seed + 1``, as Nengo).
    model : Model, optional
        A pre-built `nengo.builder.Model`.
    progress_bar : bool or ProgressBar
        As in `nengo.Simulator`.
    optimize : bool
        Run Nengo's operator optimizer, as `nengo.Simulator` does.  Our own
        merging of operators into groups happens either way.
    minibatch_size : int, optional
        Number of independent trials simulated together.  When given, probe data
        has shape ``(minibatch_size, n_steps, size)``; when not, Nengo's shapes
        (``sim.minibatch_size`` is then 1, as in NengoDL).
    device : {None, "cpu", "cuda", "cuda:N", "cuda-emulator"}
        Where to run.  None picks CUDA when a GPU is usable, else the CPU;
        ``"cuda"`` is CuPy's current device.  NengoDL's TensorFlow names work
        too (``"/cpu:0"``, ``"/gpu:N"``); see `nengo_cuda.backends.select`.
    dtype : {"float32", "float64"}, optional
        Precision of the signals.  Default: the network's NengoDL setting
        (``nengo_cuda.configure_settings(dtype=...)``), else float32, as
        NengoDL.  ``float64`` reproduces `nengo.Simulator` to rounding.
    unroll_simulation : int
        NengoDL's: how many steps one TensorFlow loop iteration builds there.
        The native step loop needs no unrolling; as in NengoDL, ``run_steps(n)``
        runs ``n`` rounded up to a multiple of it (with a RuntimeWarning; ``data``
        then needs that many steps), so code written for NengoDL gets the
        probe data it expects.  The default, 1, changes nothing.
    """

    def __init__(
        self,
        network,
        dt=0.001,
        seed=None,
        model=None,
        progress_bar=True,
        optimize=True,
        minibatch_size=None,
        device=None,
        dtype=None,
        unroll_simulation=1,
    ):
        self.closed = True  # until construction succeeds
        self._busy = threading.Lock()  # (held by a run: `_exclusive`)
        self._session = None  # (a NengoDL method in progress: `_Session`)
        self.device = device
        self.progress_bar = progress_bar
        self.optimize = optimize
        if dtype is None:  # NengoDL sets the precision with configure_settings(dtype=...)
            dtype = get_setting(network if network is not None else
                                getattr(model, "toplevel", None), "dtype")
        self.dtype = check_dtype(dtype)
        minibatch_size = check_positive_int(minibatch_size, "minibatch_size")
        # probe data has a trial axis only where minibatch_size was given (else
        # Nengo's shapes); the attribute is NengoDL's, 1 where it was not
        self._minibatched = minibatch_size is not None
        self.minibatch_size = minibatch_size or 1
        self.unroll_simulation = check_positive_int(
            unroll_simulation, "unroll_simulation", or_none=False)
        self.n_trials = self.minibatch_size
        backend_cls = select_backend(device)
        if model is None:
            dt = check_dt(dt)
            model = Model(
                dt=float(dt),
                label=f"{network}, dt={dt:f}",
                decoder_cache=get_default_decoder_cache(),
            )
        self.model = model

        with ProgressTracker(progress_bar, Progress("Building", "Build")) as pt:
            if network is not None:
                self.model.build(network, progress=pt.next_stage("Building", "Build"))
            toplevel = getattr(self.model, "toplevel", None)  # (also a model= built before)
            if toplevel is not None:
                _warn_learned_and_set_trainable(toplevel)
            with pt.next_stage("Building (running optimizer)", "Optimization"):
                self.dg, self._step_order, self._build_keys = order_operators(
                    self.model, optimize)

        self._input_nodes = self._find_input_nodes()
        ops = self._step_order
        written = written_bases(ops) | {sig.base for sig in self._input_nodes.values()}
        signals = [s for op in ops for s in op.all_signals]
        signals += [self.model.sig[p]["in"] for p in self.model.probes]
        signals += list(self._input_nodes.values())
        # random operators as tables and kernels: the drawn numbers' signals
        splits = random_splits.split_signals(ops, self.model.time)
        signals += [split.drawn for split in splits.values()]
        written |= {split.drawn for split in splits.values()}
        self._build_keys.add_parts(splits)
        self._scratch = {split.drawn for split in splits.values()}  # (not pickled)
        # TensorNodes get a callback of their own, run for all trials at once
        # (run_step), which on the CUDA backend works on device memory; TensorFlow
        # reads their inputs in place, at its alignment
        tensor_nodes = {op for op in ops if is_tensor_node_op(op)}
        self.layout = SignalLayout(
            signals, written, self.dtype, self.n_trials, dt=self.dt,
            align={op.x.base for op in tensor_nodes if op.x is not None},
        )
        self.layout.use_exact_time(self.model.time, self.model.step, self.dt)
        # parameters, also those Nengo's optimizer merged into state bases
        self.parameters = StateParameters(self.layout, ops, self._input_nodes.values())
        # what online learning rules change: state that resets keep as parameters
        self.learned = LearnedParameters(self.layout, self.model)
        # input Nodes' callbacks merge with others (one trip to Python for many
        # Nodes); a run whose data feeds one skips it (`FallbackGroup.skipped`)
        self._producers = producers = self._input_producers()
        self._plan = plan(
            ops, self.dg, self.layout, isolate=tensor_nodes,
            keep={self.model.sig[p]["in"].base for p in self.model.probes},
            external={sig.base for sig in self._input_nodes.values()}, splits=splits,
            fed=set(producers.values()),
        )
        for group in self._plan.fallbacks:
            if len(group.ops) == 1 and group.ops[0] in tensor_nodes:
                group.host_signals = host_signals(group.ops[0], self.layout)
        self._feed_positions = {
            node: (self._plan.index_of(op) if op is not None else -1)
            for node, op in producers.items()
        }
        self.backend = backend_cls(self._plan.program, self.layout, self.dt)
        # sparse matrices' values: parameters outside the pools
        self.sparse = SparseParameters(self.layout, self._plan.program, self.backend)
        # (NengoDL logs where it runs so)
        logger.info("Running on %s", {
            "CpuBackend": "CPU", "EmulatedCudaBackend": "CPU (the CUDA backend's emulator)",
        }.get(type(self.backend).__name__, "GPU"))
        self._tables = TableLoader(self._plan.program, self.backend)

        toplevel = getattr(self.model, "toplevel", None)
        self._recordings = {p: self._recording(p, keep_history(toplevel, p))
                            for p in self.model.probes}
        self.data = SimulationData(self.model.params, self._recordings, self._minibatched,
                                   current=self._current_built, live=self._live_chunk)
        # per probe, for every run: its recording, element addresses, sampling
        # period in steps (as Nengo computes it) and values per sample
        self._probe_plan = [
            (rec, self.layout.addresses(self.model.sig[p]["in"]).ravel() if rec.size
             else np.zeros(0, np.int64),
             1 if p.sample_every is None else p.sample_every / self.dt,
             rec.size)
            for p, rec in self._recordings.items()
        ]
        self._every_step = np.ones(0, dtype=np.uint8)  # probe mask: see _probe_plans
        self._plans_of_length = {}  # run length -> probe plans (`_probe_plans`)
        self._has_callbacks = any(instr.callback is not None
                                  for instr in self._plan.program.instructions)
        self._sampling = True  # False: probes record every step (`_every_step_probes`)
        step = self.model.step  # Nengo's step counter, trial 0's (see _step_counter)
        self._step_view = (self.layout.base_array(step.base, 0)
                           if step is not None and step.base in self.layout.placement else None)
        # values each step adds to a run's probe data and tables (bounds chunks)
        self._table_values_per_step = self._tables.values_per_step(self.n_trials)
        self._values_per_step = sum(
            self.n_trials * max(1, size) for _, _, _, size in self._probe_plan
        ) + self._table_values_per_step
        self._chunk = self._chunk_steps()

        if seed is None:
            if network is not None and network.seed is not None:
                seed = network.seed + 1
            else:
                seed = np.random.randint(npext.maxint)
        self._trial_ops = {}  # see _op_for_trial
        # a NaN in the state was reported (`invalid_values`: not again until the
        # state is replaced); the ops that may bring NaN in as data (when needed)
        self._nan_reported, self._nan_sources, self._probe_of = False, None, None
        self._positions = None  # operator -> its place in the step order (when needed)
        self._in_step = self._own_steps = False  # (see _run_own_steps)
        # during a run: a stateful one's steps are counted from the step signal
        # (after its chunk's first, `_chunk_start`); one that is not shows the
        # (n_steps, time) it started from (see n_steps)
        self._counting, self._chunk_start, self._shown = False, 0, None
        # during a native run: (its thread, first step, steps, {id(recording):
        # ChunkInFlight}) (see _live_chunk)
        self._in_flight = None
        # configure_settings(stateful=False): every run starts from the initial state
        toplevel = getattr(self.model, "toplevel", None)
        self.stateful = get_setting(toplevel, "stateful", True)
        # (read once, as NengoDL reads its settings when it builds)
        self._learning_phase = get_setting(toplevel, "learning_phase") is True
        self._use_loop = get_setting(toplevel, "use_loop", True) is not False
        if get_setting(toplevel, "inference_only") and self._learning_phase:
            raise BuildError(  # (NengoDL's TensorGraph refuses so)
                f"{toplevel} is configured with inference_only=True and learning_phase=True: "
                "a model built for inference only cannot run in training mode")
        self.closed = False
        self._keras_init = None
        with keras_floatx(self.dtype):  # (NengoDL builds its Keras model so)
            try:
                self._keras_initial()  # the TensorNodes' Keras weights now, for reset()
                self.reset(seed=seed)  # (calls each TensorNode once: its output checked)
            except BaseException:
                self.close()  # (a failed build frees what it made)
                raise

    # -- construction helpers ---------------------------------------------------
    def _recording(self, probe, keep):
        """The recording of ``probe``'s samples (``keep``: NengoDL's keep_history)."""
        sig = self.model.sig[probe]["in"]
        if sig.sparse:  # (a copy of the matrix now: training and load_params change it)
            return SparseRecording(lambda: self.layout.base_array(sig.base, 0).astype(self.dtype),
                                   sig.shape, self.n_trials, keep_history=keep)
        if self.layout.pool_of(sig) != FLOAT:
            raise BuildError(f"{probe}: nengo_cuda can only probe float and sparse signals "
                             f"(got {sig})")
        return ProbeRecording(sig.shape, self.n_trials, keep_history=keep)

    def _find_input_nodes(self):
        """Input Nodes (size_in == 0, TensorNodes excepted) -> their output
        signal; `data` can replace them.

        In the network's ``all_nodes`` order (NengoDL's: data given as a list
        goes to the Nodes in this order).  A TensorNode without input computes
        its output (from the time): as in NengoDL, it is no input Node, so data
        neither replaces it nor takes its place in that order."""
        toplevel = getattr(self.model, "toplevel", None)
        order = {} if toplevel is None else {n: i for i, n in enumerate(toplevel.all_nodes)}
        nodes = [
            obj for obj in self.model.sig
            if isinstance(obj, nengo.Node)
            and obj.size_in == 0
            and not is_tensor_node(obj)
            and self.model.sig[obj].get("out") is not None
        ]
        nodes.sort(key=lambda n: order.get(n, len(order)))
        return {obj: self.model.sig[obj]["out"] for obj in nodes}

    def _input_producers(self):
        """Input Node -> the operator that writes its output (None for constants)."""
        producers = {}
        for node, sig in self._input_nodes.items():
            producers[node] = next(
                (
                    op
                    for op in self._step_order
                    if any(s.base is sig.base and s.may_share_memory(sig) for s in op.sets + op.incs + op.updates)
                ),
                None,
            )
        return producers

    # -- pickling (as nengo.Simulator: the model, non-constant signals, probe data;
    # and the parameters, which training or load_params may have changed) --
    def __getstate__(self):
        with self._exclusive("pickle", must_be_open=False):  # (not a half-run state)
            return self._pickled_state()

    def _pickled_state(self):
        if not self.closed:
            self._pull_assigned()
        signals = [
            {
                base: self.layout.base_array(base, t).copy()
                for base in self.layout.bases
                if not base.readonly and not base.sparse and base not in self._scratch
            }
            if not self.closed
            else {}  # closed: the buffers are gone, as nengo.Simulator's signals
            for t in range(self.n_trials)
        ]
        probe_data = {p: rec.array(minibatched=True) for p, rec in self._recordings.items()}
        return {
            "model": self.model,
            "signals": signals,
            "probe_data": probe_data,
            "dt": self.dt,
            "seed": self.seed,
            "progress_bar": self.progress_bar,
            "optimize": self.optimize,
            "closed": self.closed,
            "minibatch_size": self.minibatch_size if self._minibatched else None,
            "device": self.device,
            "dtype": self.dtype.name,
            "unroll_simulation": self.unroll_simulation,
            "n_steps": self._n_steps,
            "parameters": {} if self.closed else self._changed_shared_bases(),
            "kept_parameters": self.parameters.kept(),
            "sparse_parameters": {} if self.closed else self.sparse.changed(),
        }

    def __setstate__(self, state):
        self.__init__(
            network=None,
            model=state["model"],
            dt=state["dt"],
            seed=state["seed"],
            progress_bar=state["progress_bar"],
            optimize=False,  # the pickled model is already optimized
            minibatch_size=state["minibatch_size"],
            device=state["device"],
            dtype=state["dtype"],
            unroll_simulation=state["unroll_simulation"],
        )
        for base, value in state["parameters"].items():
            self.layout.base_array(base, 0)[...] = value
        self.parameters.keep(state["kept_parameters"])
        for sig, values in state["sparse_parameters"].items():
            self.sparse.write(sig, values)
        for trial, values in enumerate(state["signals"]):
            for base, value in values.items():
                self.layout.base_array(base, trial)[...] = value
        for probe, data in state["probe_data"].items():
            self._recordings[probe].load(data, self.dtype)
        self._n_steps = state["n_steps"]
        self._time = self._n_steps * self.dt
        self.optimize = state["optimize"]
        if state["closed"]:
            self.close()

    # -- Nengo's read-only properties ---------------------------------------------
    def __del__(self):
        if not getattr(self, "closed", True):
            warnings.warn(
                f"Simulator with model={self.model} was deallocated while open. Please "
                "close simulators manually to ensure resources are properly freed.",
                ResourceWarning,
            )

    def __enter__(self):
        """As NengoDL: Keras's floatx is the simulator's dtype inside the block."""
        if self.closed:
            raise SimulatorClosed("Cannot re-open after simulator is closed")
        self._floatx_before = set_floatx(self.dtype)
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        restore_floatx(getattr(self, "_floatx_before", None))
        self._floatx_before = None
        self.close()

    @property
    def dt(self):
        """(float) The time step of the simulator."""
        return self.model.dt

    @dt.setter
    def dt(self, dummy):
        raise ReadonlyError(attr="dt", obj=self)

    @property
    def n_steps(self):
        """(int) The current time step of the simulator.  During a run (read
        by a Node's function or another thread): the steps done so far, as
        Nengo's, which counts a step when its probes have recorded."""
        shown = self._shown
        if shown is not None:  # (a run that is not stateful: as before it)
            return shown[0]
        if self._counting:
            # the step signal counts the step in progress; in a chunk's first
            # step, n_steps is as the chunk found it (also after a failed step,
            # which the signal counted and Nengo's n_steps not)
            done = self._step_counter() - 1
            if done > self._chunk_start:
                return max(self._n_steps, done)
        return self._n_steps

    @property
    def time(self):
        """(float) The current time of the simulator (during a run: of `n_steps`)."""
        shown = self._shown
        if shown is not None:
            return shown[1]
        if self._counting:
            return self.n_steps * self.dt
        return self._time

    @property
    def step_order(self):
        """(list) The operators, in the order Nengo would run them."""
        return self._step_order

    @property
    def program(self):
        """The planned `nengo_cuda.program.Program`."""
        return self._plan.program

    @property
    def signals(self):
        """Signal -> array (trial 0's values; live views into the native buffers)."""
        if self.closed:
            return None
        self._pull_assigned()
        return self.layout.signal_dicts[0]

    def _pull_assigned(self):
        """Takes the user's assignments to the training variables into the
        simulation (see `nengo_cuda.training.graph.TrainingGraph.pull_assignments`)."""
        training = getattr(self, "_training", None)
        if training is not None and training._graph is not None:
            training._graph.pull_assignments()

    # -- lifecycle ---------------------------------------------------------------
    def close(self):
        """Closes the simulator; running it afterwards raises `SimulatorClosed`."""
        if not self.closed:
            with self._exclusive("close", must_be_open=False):
                if not self.closed:  # (another thread's close came first)
                    self._close()
                    self.closed = True  # (before a waiting run sees the lock free)

    def _close(self):
        # sim.data gives the built values afterwards (Nengo's; NengoDL's,
        # which warns where the live ones are gone: `_current_built`)
        self._changed_parameters = self._parameters_changed()
        self.backend.close()
        # free the signal buffers: drop every view into them
        for group in self._plan.fallbacks:
            group.steps = []
        self.process_seeds = {}
        self._step_view = None
        self.layout.release()

    def _changed_shared_bases(self):
        """``{base: its values}`` of the shared float bases (the parameters)
        whose values differ from their built ones (trained, loaded)."""
        layout, changed = self.layout, {}
        for base, (pool, shared, _) in layout.placement.items():
            if shared and pool == FLOAT:
                value = layout.base_array(base, 0)
                if not np.array_equal(value, np.asarray(base.initial_value, self.dtype)):
                    changed[base] = value.copy()
        return changed

    def _parameters_changed(self):
        """Whether a parameter (trained, loaded, learned online) now differs
        from its built value."""
        self._pull_assigned()
        layout = self.layout
        if self._changed_shared_bases() or self.parameters.kept() or self.sparse.changed():
            return True
        return any(
            not np.array_equal(layout.signal_dicts[trial][sig],
                               np.asarray(sig.initial_value, self.dtype))
            for sig in self.learned.signals.values() for trial in range(self.n_trials))

    def _current_built(self, obj, built):
        """``sim.data[obj]`` for a built object: see `nengo_cuda.params`; after
        `close`, the built one."""
        if not self.closed:
            return current_built(obj, built, self.model.sig, self._parameter_value)
        if (getattr(self, "_changed_parameters", False)
                and isinstance(obj, (nengo.Ensemble, nengo.Connection))):
            warnings.warn(  # (NengoDL's words)
                "Checking parameters after simulator is closed; cannot fetch live "
                "values, so the initial values will be returned.", UserWarning, stacklevel=3)
        return built

    def _parameter_value(self, sig):
        """A parameter signal's current value, or None for a signal that is not
        a parameter here (not laid out, simulation state, sparse).  What online
        learning rules learned differs per trial: with a ``minibatch_size``,
        all trials' (a leading minibatch axis, as NengoDL's), else trial 0's."""
        layout = self.layout
        if sig is not None and sig.sparse:  # (a changed one: a SparseMatrix of its values now)
            return self.sparse.current(sig)
        learned = self.learned.is_learned(sig)
        if not (learned or self.parameters.is_parameter(sig)):
            return None
        self._pull_assigned()
        if learned and self._minibatched:
            return np.stack([layout.signal_dicts[t][sig] for t in range(self.n_trials)])
        return np.array(layout.signal_dicts[0][sig])

    def clear_probes(self):
        """Clears all probe histories (from a Node's function during a run:
        the samples up to the step in progress, as Nengo's; during predict or
        evaluate, the data sim.data shows meanwhile: `_show_saved_recordings`)."""
        for rec in self.data.recordings.values():
            live = self._live_chunk(rec)
            if live is not None:
                live[0].delete(slice(None), live[1])
            rec.clear()
        self.data.reset()

    @in_floatx
    def reset(self, seed=None, include_trainable=True, include_probes=True,
              include_processes=True):
        """Resets the simulator to its initial conditions (NengoDL 3's ``reset``).

        The simulation state (signals, ``n_steps``, ``time``) always returns to
        the initial conditions.  ``seed`` (if given) becomes the simulator's seed.

        include_trainable : bool
            Also undo training: the parameters (encoders, biases, weights, also
            those online learning rules changed) return to their built values
            and the TensorNodes' Keras layer weights to their values when this
            Simulator was made.  False keeps all of them.
        include_probes : bool
            Also clear the probe data.
        include_processes : bool
            Also restart the processes and Node callbacks (their step functions
            and random streams, drawn from the seed as Nengo does).
        """
        if self.closed:
            raise SimulatorClosed("Cannot reset closed Simulator.")
        with self._exclusive("reset"):
            self._reset(seed, include_trainable, include_probes, include_processes)

    def _reset(self, seed, include_trainable, include_probes, include_processes):
        if seed is not None:
            self.seed = check_seed(seed)
        layout = self.layout
        shared = None if include_trainable else layout.fbuf[: layout.f_shared].copy()
        learned = None if include_trainable else self.learned.values()
        sparse = None if include_trainable else self.sparse.changed()
        layout.reset()
        self._nan_reported = False
        self.sparse.after_reset(sparse)
        if shared is not None:
            layout.fbuf[: layout.f_shared] = shared
            layout.touch_shared()
            self.parameters.rewrite()
            self.learned.write(learned)
        else:
            self.parameters.forget()
        if include_processes or not hasattr(self, "process_seeds"):
            self._make_steps()
        if include_probes:
            self.clear_probes()
        self._n_steps = 0
        self._time = 0.0
        self._ran = False  # (no run since the processes' step functions were made)
        if include_trainable:
            for var, value in self._keras_initial():
                var.assign(value)
            training = getattr(self, "_training", None)
            if training is not None and training._graph is not None:
                training._graph.reload()

    def soft_reset(self, include_trainable=False, include_probes=False):
        """NengoDL 2's ``soft_reset`` (deprecated there too): ``reset`` that keeps
        the processes' random streams running and, by default, the training
        and the probe data."""
        warnings.warn(
            "Simulator.soft_reset is deprecated, use Simulator.reset(include_trainable="
            "False, include_probes=False, include_processes=False) instead",
            DeprecationWarning,
        )
        self.reset(include_trainable=include_trainable, include_probes=include_probes,
                   include_processes=False)

    def _keras_initial(self):
        """[(variable, value when this Simulator was made)] of the TensorNodes'
        Keras layers (empty without TensorNodes; see `reset`)."""
        if getattr(self, "_keras_init", None) is None:
            from .training.tensor_node import is_tensor_node_func, require_eager  # noqa: PLC0415

            found = {}
            for op in self._step_order:
                fn = getattr(op, "fn", None)
                if is_tensor_node_func(fn):
                    require_eager()
                    fn.build_layer(self.n_trials)  # (NengoDL's shapes: the minibatch)
                    for var in fn.variables():
                        found.setdefault(id(var), (var, np.array(var.numpy())))
            self._keras_init = list(found.values())
        return self._keras_init

    # -- the simulation state (NengoDL's ``stateful``) ------------------------
    def _save_state(self):
        """The simulation state: state signals, step count, time, and the native
        processes' random streams (not the parameters, not probe data)."""
        layout = self.layout
        return {
            "f": layout.fbuf[layout.f_shared :].copy(),
            "i": layout.ibuf[layout.i_shared :].copy(),
            "tables": self._tables.get_state(),
            "nan_reported": self._nan_reported,  # (its NaN is in this state)
            "n_steps": self._n_steps,
            "time": self._time,
        }

    def _restore_state(self, state, keep_learned=True):
        """Returns to a `_save_state` state; ``keep_learned``: with what online
        learning rules learned since (NengoDL's parameters, `LearnedParameters`)."""
        layout = self.layout
        learned = self.learned.values() if keep_learned else None
        layout.fbuf[layout.f_shared :] = state["f"]
        if learned is not None:
            self.learned.write(learned)
        layout.ibuf[layout.i_shared :] = state["i"]
        if layout.sync_time is not None:
            layout.sync_time()
        self._tables.set_state(state["tables"])
        self._nan_reported = state.get("nan_reported", False)
        self._n_steps = state["n_steps"]
        self._time = state["time"]

    def _show_saved_recordings(self):
        """While predict or evaluate run (recording into the recordings), sim.data
        shows copies of the recordings as they were, which code called
        meanwhile (a Node's function, a Keras callback) reads, deletes from
        or clears; `_restore_shown_recordings` takes them back."""
        self.data.show({p: rec.copy() for p, rec in self._recordings.items()})

    def _restore_shown_recordings(self):
        for p, rec in self._recordings.items():
            rec.take(self.data.recordings[p])
        self.data.show(self._recordings)

    def _step_counter(self):
        """Nengo's step counter now (it restarts at 0 in runs that are not stateful)."""
        return self._n_steps if self._step_view is None else int(self._step_view)

    def _set_step_count(self, n_steps):
        """Sets ``n_steps``/``time`` and the model's step and time signals."""
        layout = self.layout
        for sig, value in ((self.model.step, n_steps), (self.model.time, n_steps * self.dt)):
            if sig is not None and sig.base in layout.placement:
                for trial in range(self.n_trials):
                    layout.base_array(sig.base, trial)[...] = value
        if self.layout.sync_time is not None:
            self.layout.sync_time()
        self._n_steps = int(n_steps)
        self._time = self._n_steps * self.dt

    def _restart(self):
        """The initial state (signals, step functions, processes: as after `reset`)
        with the parameters (shared signals, possibly trained) and what online
        learning rules learned (NengoDL's parameters) kept, and probe data
        unchanged (configure_settings(stateful=False))."""
        layout = self.layout
        shared = layout.fbuf[: layout.f_shared].copy()
        learned, sparse = self.learned.values(), self.sparse.changed()
        layout.reset()
        self._nan_reported = False
        layout.fbuf[: layout.f_shared] = shared
        layout.touch_shared()
        self.parameters.rewrite()
        self.learned.write(learned)
        self.sparse.after_reset(sparse)
        self._make_steps()

    def _make_steps(self):
        """Makes the callbacks' step functions, drawing seeds in Nengo's order."""
        owner = {id(op): group for group in self._plan.fallbacks for op in group.ops}
        native_processes = {id(op) for op in self._plan.native_processes}
        steps = {}
        self.process_seeds = {}
        for trial in range(self.n_trials):
            rng = trial_rng(self.seed, trial)
            if trial == 0:
                # Nengo's sim.rng: RandomState(seed), which made the step functions
                self.rng = rng
            signals = self.layout.signal_dicts[trial]
            for op in self._step_order:
                if is_tensor_node_op(op):
                    continue  # one step for all trials, below (draws no seeds)
                if id(op) in owner:
                    op_t = self._op_for_trial(op, trial)
                    if type(op) is SimProcess:
                        # its seed, for the training graph's copy of the process
                        # (`training.host_process`); make_step draws it again
                        drawn = rng.get_state()
                        self.process_seeds[op, trial] = process_seed(op.process, rng)
                        rng.set_state(drawn)
                    if type(op_t) is not SimPyFunc:
                        steps[id(op), trial] = op_t.make_step(signals, self.dt, rng)
                    elif trial == 0 or op.x is not None:
                        steps[id(op), trial] = pyfunc.make_step(op_t, signals)
                    else:  # (an input Node: its function is called once a step)
                        steps[id(op), trial] = pyfunc.make_trial_step(
                            op, self.layout.signal_dicts[0], signals)
                elif id(op) in native_processes:
                    # Keep the seed sequence identical to Nengo's.
                    seed = self.process_seeds[op, trial] = process_seed(op.process, rng)
                    for sharer in self._plan.seed_sharers(op):
                        self.process_seeds[sharer, trial] = seed
        tensor_steps = []
        for group in self._plan.fallbacks:
            if len(group.ops) == 1 and is_tensor_node_op(group.ops[0]):
                on_device = (
                    group.host_signals is not None and hasattr(self.backend, "device_arrays")
                )
                group.steps = [[run_step(group.ops[0], self.layout, self.backend, on_device)]]
                tensor_steps.append(group.steps[0][0])
                continue
            group.steps = [
                [steps[id(op), t] for op in group.ops] for t in range(self.n_trials)
            ]
        if not getattr(self, "_tensor_nodes_checked", False):
            # NengoDL calls each TensorNode's function once as it builds the model:
            # an output of the wrong shape or dtype fails here, not in a later run
            # (called in the mode runs use: training with learning_phase=True)
            for step in tensor_steps:
                step.check(self._learning_phase)
            self._tensor_nodes_checked = True
        if any(is_tensor_node_op(group.ops[0]) for group in self._plan.fallbacks):
            # TensorFlow's random ops in TensorNodes follow the simulator's seed,
            # as in NengoDL (which seeds TensorFlow's global generator too); seeded
            # after the check above, whose calls must not advance it
            seed_tensorflow(self.seed)
        self._tables.reset(self.process_seeds, self.n_trials)

    def _op_for_trial(self, op, trial):
        """``op`` for trial 0; for later trials, a copy with its own runtime random state.

        Stochastic neuron types (PoissonSpiking, StochasticSpiking) draw at every
        step from a RandomState that Nengo's builder keeps in ``op.state_extra``;
        trials must not share it.  Made once, so that, like trial 0's (and as in
        `nengo.Simulator`), it is not rewound by `reset`.
        """
        extra = getattr(op, "state_extra", None)
        if trial == 0 or not extra:
            return op
        if not any(isinstance(v, np.random.RandomState) for v in extra.values()):
            return op
        key = (id(op), trial)
        if key not in self._trial_ops:
            op_t = copy.copy(op)
            op_t.state_extra = {
                name: (trial_generator(v, trial) if isinstance(v, np.random.RandomState)
                       else v)
                for name, v in extra.items()
            }
            self._trial_ops[key] = (op, op_t)  # op kept alive: its id stays unique
        return self._trial_ops[key][1]

    # -- running -----------------------------------------------------------------
    def run(self, time_in_seconds, progress_bar=None, data=None, stateful=True):
        """Simulates for ``time_in_seconds`` (rounded to whole steps).

        ``data`` maps input Nodes to arrays of shape ``(trials, n_steps, size_out)``
        that replace the Nodes' output; see `run_steps` for ``stateful``.
        """
        if not is_real(time_in_seconds):
            raise ValidationError(
                f"Must be a number of seconds (got {time_in_seconds!r})", attr="time_in_seconds"
            )
        time_in_seconds = float(time_in_seconds)  # (a Fraction too)
        if time_in_seconds < 0:
            raise ValidationError(
                f"Must be positive (got {time_in_seconds:g})", attr="time_in_seconds"
            )
        if not np.isfinite(time_in_seconds):
            raise ValidationError(
                f"Must be finite (got {time_in_seconds})", attr="time_in_seconds"
            )
        steps = int(np.round(float(time_in_seconds) / self.dt))
        if steps == 0:
            warnings.warn(
                f"{time_in_seconds} results in running for 0 timesteps. Simulator "
                f"still at time {self.time}."
            )
        else:  # (run_steps takes data given as the second positional argument too)
            self.run_steps(steps, progress_bar=progress_bar, data=data, stateful=stateful)

    @in_floatx
    def run_steps(self, steps=None, progress_bar=None, data=None, stateful=True, *,
                  n_steps=None):
        """Simulates for ``steps`` time steps (see `run` for ``data``).

        ``stateful=False`` (NengoDL's argument): the probe data of the run is
        kept, but the simulation state (signals, ``n_steps``, ``time``) returns
        to where it was before the run, so the next run starts from there too;
        what online learning rules learned is kept (as in NengoDL, where it is
        a parameter).

        Nengo's order of arguments is ``(steps, progress_bar)``, NengoDL's
        ``(n_steps, data, progress_bar, stateful)``: a second positional argument
        that is data (a dict, array or list) is taken as ``data``, and
        ``n_steps=`` names ``steps``.
        """
        if n_steps is not None:
            if steps is not None:
                raise ValidationError("give steps or n_steps, not both", attr="n_steps")
            steps = n_steps
        progress_bar, data = data_or_progress(progress_bar, data)
        if self.closed:
            raise SimulatorClosed("Simulator cannot run because it is closed.")
        steps = steps_count(steps)
        training_mode = self._learning_phase
        if self._own_steps:  # (one step of _run_own_steps' run)
            with self._exclusive("run"):
                self._run(steps, self._check_data(data, steps), True, False, training_mode)
            return
        unroll = self.unroll_simulation
        if steps % unroll:
            rounded = -(-steps // unroll) * unroll
            warnings.warn(
                f"Number of steps ({steps}) is not an even multiple of `unroll_simulation` "
                f"({unroll}): the simulation runs for {rounded} steps, as NengoDL's does",
                RuntimeWarning, stacklevel=2)
            steps = rounded
        self._check_unrolled(steps)
        feeds = self._check_data(data, steps)
        if steps == 0:
            return  # (nengo.Simulator's progress tracker raises a ValidationError)
        if type(self).step is not Simulator.step and not self._in_step and stateful \
                and self.stateful and not training_mode:
            self._run_own_steps(steps, feeds)
            return
        self._check_probe_memory(steps)
        with self._exclusive("run"):
            self._run(steps, feeds, stateful, progress_bar, training_mode)

    def _check_probe_memory(self, steps):
        """A MemoryError before a run whose probe data cannot fit in memory
        (``nengo.Simulator``'s grows until the system runs out; NengoDL's fails
        at once)."""
        itemsize = self.dtype.itemsize
        if steps * self._values_per_step * itemsize < _CHECKED_PROBE_BYTES:
            return  # (at most: the check would cost more than step() itself)
        need = sum(self.n_trials * size * itemsize * (steps / max(period, 1))
                   for rec, _, period, size in self._probe_plan if rec.keep_history)
        if need < _CHECKED_PROBE_BYTES:
            return
        available = available_memory()
        if available is not None and need > available:
            raise MemoryError(
                f"a run of {steps} steps would record {format_bytes(need)} of probe data; "
                f"only {format_bytes(available)} of memory is available (run fewer steps, "
                "or probe less: sample_every, fewer probes)")

    def _check_unrolled(self, steps):
        """``configure_settings(use_loop=False)``: NengoDL's model then has
        exactly ``unroll_simulation`` steps, and every run must have as many."""
        if not self._use_loop and steps != self.unroll_simulation:
            raise ValidationError(
                f"When use_loop=False, n_steps ({steps}) must exactly match "
                f"unroll_simulation ({self.unroll_simulation})", attr="n_steps")

    def _exclusive(self, what, must_be_open=True):
        """One run (or reset, close, pickling) at a time: one from inside a run
        (a Node function's) or beside it (another thread's: native steps run
        without the GIL) would change the state under it (and close would free
        its buffers).  ``must_be_open``: another thread may have closed the
        simulator since the caller looked."""
        return _Exclusive(self, what, must_be_open)

    def _run(self, steps, feeds, stateful, progress_bar, training_mode):
        self._pull_assigned()
        if not self.stateful:
            # configure_settings(stateful=False): every run is a stateful=False
            # run from the initial state (NengoDL's: n_steps stays 0)
            stateful = False
            if self._ran:
                self._restart()  # (Python callbacks and random streams too)
        saved = None if stateful else self._save_state()
        self._ran = True
        if progress_bar is None:
            progress_bar = self.progress_bar
        self._counting = stateful and self._step_view is not None
        self._shown = None if stateful else (self._n_steps, self._time)
        try:
            if training_mode:  # NengoDL's learning_phase=True: always training mode
                self._run_training_mode(steps, feeds)
            elif progress_bar is False:  # (sim.step: no tracker to make, ~10 us)
                self._run_chunks(steps, feeds, lambda n: None)
            else:
                progress = Progress("Simulating", "Simulation", steps)
                with ProgressTracker(progress_bar, progress) as pt:
                    paced = not isinstance(pt.progress_bar, NoProgressBar)
                    self._run_chunks(steps, feeds, pt.total_progress.step, paced)
        finally:
            self._counting = False
            if saved is not None:
                self._restore_state(saved)
            self._shown = None

    def _run_training_mode(self, steps, feeds):
        """``run_steps`` under ``configure_settings(learning_phase=True)``: the
        training graph (rate neurons, as ``fit`` computes) continues the
        simulation state for ``steps`` steps; its probe outputs are recorded
        as a native run's (``sample_every``, ``keep_history``); it goes on from
        Nengo's step signal, as `_run_chunk` does."""
        start = self._step_counter()
        outputs = self._trainer().run_training_mode(steps, feeds)
        for (rec, _, period, _), probe in zip(self._probe_plan, self._recordings):
            rec.start_run()
            value = np.asarray(outputs[probe], dtype=self.dtype).reshape(self.n_trials, steps, -1)
            if period != 1:
                value = value[:, _sampled(start, steps, period)]
            rec.append(np.ascontiguousarray(value))
        self.data.reset()

    def _run_chunks(self, steps, feeds, advance, paced=False):
        """``steps`` steps in native runs of at most `_chunk_steps`; ``paced``
        (a progress bar shows): of about _PACE_SECONDS each (`_paced_steps`)."""
        if not self._own_steps:  # (their run started before its first step)
            for rec in self._recordings.values():
                rec.start_run()
        chunk = self._chunk
        size = min(chunk, _PACE_FIRST_STEPS) if paced else chunk
        done = 0
        while done < steps:
            n = min(size, steps - done)
            began = time.perf_counter()
            self._run_chunk(n, {node: d[:, done : done + n] for node, d in feeds.items()})
            done += n
            advance(n)
            if paced:
                size = _paced_steps(n, time.perf_counter() - began, chunk)

    @property
    def unroll(self):
        """NengoDL's name for ``unroll_simulation``."""
        return self.unroll_simulation

    def step(self, **kwargs):
        """Advances the simulator by one step (``kwargs``: as `run_steps`, e.g.
        ``data=``; NengoDL's SPA tutorial steps with data)."""
        kwargs.setdefault("progress_bar", False)
        outer, self._in_step = self._in_step, True
        try:
            self.run_steps(1, **kwargs)
        finally:
            self._in_step = outer

    def _run_own_steps(self, steps, feeds):
        """``run_steps`` of a subclass with its own `step`: one call of it per
        step, as nengo.Simulator's ``run_steps`` makes (nengo_extras'
        RealTimeSimulator paces its steps so).  The steps are one run
        (``unroll_simulation``, ``use_loop`` and ``keep_history`` see the
        run: each step runs one step).  (Runs that are not stateful, or in
        training mode, run as one, without it.)"""
        for rec in self._recordings.values():
            rec.start_run()
        self._own_steps = True
        try:
            for i in range(steps):
                if feeds:
                    self.step(data={node: feed[:, i : i + 1] for node, feed in feeds.items()})
                else:
                    self.step()  # (Nengo's step takes no arguments)
        finally:
            self._own_steps = False

    def _chunk_steps(self):
        """Steps per native run: probe data and process tables of one run stay
        within _CHUNK_ELEMENTS values, its tables within _CHUNK_TABLE_VALUES (see there)."""
        per_step = max(1, self._values_per_step)
        tables = max(1, self._table_values_per_step)
        return max(1, min(_CHUNK_STEPS, _CHUNK_ELEMENTS // per_step,
                          max(_CHUNK_TABLE_STEPS, _CHUNK_TABLE_VALUES // tables)))

    def _check_data(self, data, steps):
        """Validates ``data`` and returns node -> array in the simulator's dtype."""
        return check_data(data, steps, self._input_nodes, self.model, self.n_trials, self.dtype)

    def _run_chunk(self, n, feeds):
        # Nengo's n_steps is its step signal: after a callback raised, the
        # signal counts the failed step too, and the next run goes on from it
        start = self._chunk_start = self._step_counter()
        plans = self._probe_plans(n, start)
        probes = [(addrs, mask, out, rec)
                  for (addrs, mask, _, rec), out in zip(plans, _probe_buffers(plans, self.dtype))]
        native_feeds, disabled, partial = self._native_feeds(feeds) if feeds else ([], (), {})
        with native_runs.native_run(self.backend):  # (stopped at Python's exit)
            for index in disabled:
                self.backend.set_enabled(index, False)
            for index, ops in partial.items():
                self.program.instructions[index].callback.skipped = frozenset(ops)
            self._tables.before_run(
                n, start, {self._plan.table_part(self._producers[node]) for node in feeds})
            # (a probe of no native values, a sparse signal's, only counts samples)
            natives = [p[:3] for p in probes if p[2].shape[2]]
            # (read by callbacks alone, `_live_chunk`; predict and evaluate,
            # which record every step, leave sim.data as it was, as NengoDL's)
            readable = self.backend.probes_each_step
            flight = {id(rec): ChunkInFlight(out, mask, n, readable)
                      for _, mask, out, rec in probes
                      if rec.keep_history} if self._has_callbacks and self._sampling else {}
            failure = None
            try:
                self._in_flight = (threading.get_ident(), start, n, flight)
                # callbacks' NumPy raises where Nengo's would; without callbacks
                # no Python runs in the run (NumPy's error state: ~1.5 us a step())
                with (np.errstate(invalid="raise", divide="ignore") if self._has_callbacks
                      else contextlib.nullcontext()):
                    self.backend.run(n, native_feeds, natives)
            except Exception as error:  # (a callback's: a Node function's, say)
                failure = error
            finally:
                self._in_flight = None
                for chunk in flight.values():
                    chunk.readable = True  # (the run's samples are here now)
                for index in disabled:
                    self.backend.set_enabled(index, True)
                for index in partial:
                    self.program.instructions[index].callback.skipped = frozenset()
                for node in feeds:
                    if self._feed_positions[node] < 0:
                        self._restore_constant(node)
                done = self.backend.steps_done
                self._tables.after_run(done, self._read_in_failed_step(start + done))
                recorded = []
                for addrs, mask, out, rec in probes:
                    chunk = flight.get(id(rec))
                    rows = (chunk.samples(done) if chunk is not None
                            else out[:, : samples_done(out, mask, n, done)])
                    rec.append(rows)
                    recorded.append((rec, rows))
                if done:  # (as Nengo's n_steps: read from the step signal after a step)
                    self._n_steps = start + done
                    self._time = self._n_steps * self.dt
                self.data.reset()
        if failure is not None:
            self._reraise(failure, recorded, start)
        if not self._nan_reported:
            self._check_invalid_values(recorded, start)

    def _reraise(self, failure, recorded, start):
        """Raises a callback's ``failure``; Nengo's FloatingPointError instead
        where the run made a NaN before it: Nengo raises where one is made,
        which a Node function given it (one that returns it: "returned
        non-finite value") comes after.  Where the NaN came in as data
        (`invalid_values.holding_nan`: a warning), the callback's own error
        stands, as in Nengo, which passes such NaN on."""
        if not self._nan_reported:
            try:
                self._check_invalid_values(recorded, start)
            except FloatingPointError as made:
                raise made from failure
        raise failure

    def _live_chunk(self, rec):
        """``(ChunkInFlight, steps done)`` of recording ``rec`` in the native
        run going on, for the thread that runs it (a Node's function, a
        callback): Nengo's probe data grows step by step.  None elsewhere
        (another thread sees the samples of finished native runs; so does a
        callback of the CUDA backend, whose probe buffers come back when a
        run ends: its chunk is not `ChunkInFlight.readable`, but clearing
        there deletes the run's samples so far)."""
        flight = self._in_flight
        if flight is None or flight[0] != threading.get_ident() or self._step_view is None:
            return None
        _, start, n, chunks = flight
        chunk = chunks.get(id(rec))
        if chunk is None:
            return None
        # (the step signal counts the step in progress, whose samples come at its end)
        return chunk, min(n, max(0, self._step_counter() - 1 - start))

    def _probe_plans(self, n, start):
        """Per probe, for a run of ``n`` steps after step ``start``: its element
        addresses, sample mask (uint8 per step), output shape and recording.
        (Where every probe records every step, the plans of a run length are
        kept: a `step()` loop makes them once.)"""
        every_step = not self._sampling or all(plan[2] == 1 for plan in self._probe_plan)
        if every_step and n in self._plans_of_length:
            return self._plans_of_length[n]
        plans = []
        for rec, addrs, period, size in self._probe_plan:
            if period == 1 or not self._sampling:
                if len(self._every_step) < n:
                    self._every_step = np.ones(n, dtype=np.uint8)
                mask, samples = self._every_step[:n], n
            else:
                mask = np.ascontiguousarray(_sampled(start, n, period), dtype=np.uint8)
                samples = int(mask.sum())
            plans.append((addrs, mask, (self.n_trials, samples, size), rec))
        if every_step and (n == 1 or len(self._plans_of_length) < 8):  # (step(), chunks)
            self._plans_of_length[n] = plans
        return plans

    def _native_feeds(self, feeds):
        """``data=``'s arrays as the backend takes them (instruction after which
        each is written, element addresses, values), the instructions switched
        off (all their ops fed), and the callbacks told which of their ops to
        skip (index -> ops)."""
        native_feeds, skipped = [], {}
        for node, values in feeds.items():
            sig = self._input_nodes[node]
            after = self._feed_positions[node]
            instr = self.program.instructions[after] if after >= 0 else None
            if instr is not None and (instr.callback is not None or len(instr.ops) == 1):
                # its producer is switched off; the feed follows (a producer in
                # a larger native instruction runs, and the feed overwrites it)
                skipped.setdefault(after, set()).add(self._producers[node])
            native_feeds.append(
                (after, self.layout.addresses(sig).ravel(), np.ascontiguousarray(values, self.dtype))
            )
        # an instruction with every op fed is switched off (a CUDA graph can
        # then hold the whole step); a callback with some is told which to skip
        instrs = self.program.instructions
        disabled = [i for i, ops in skipped.items() if len(ops) == len(instrs[i].ops)]
        partial = {i: ops for i, ops in skipped.items() if i not in disabled}
        return native_feeds, disabled, partial

    def _check_invalid_values(self, recorded, start):
        """Nengo's FloatingPointError where the run made NaN (`invalid_values`)."""
        if not invalid_values.rows_beyond_state(recorded):
            recorded = []  # (one step: the state holds what the probes recorded)
        elif self._probe_of is None:
            self._probe_of = {id(rec): probe for probe, rec in self._recordings.items()}
        recorded = [(self._probe_of[id(rec)], rows) for rec, rows in recorded]
        where = invalid_values.find_nan(self.layout, recorded, start)
        if where is None:
            return
        self._nan_reported = True
        if self._nan_sources is None:
            self._nan_sources = [op for op in self._step_order
                                 if invalid_values.passes_nan_in(op)]
        # (the run's steps' times: the step counter counts a failed step too)
        times = np.arange(start + 1, self._step_counter() + 1) * self.dt
        invalid_values.report(where, invalid_values.holding_nan(self.layout, self._nan_sources,
                                                                times, self.dt))

    def _read_in_failed_step(self, completed):
        """The table operators whose rows count as used by the step after step
        ``completed``, which failed (Nengo's step counter moved past it: a
        callback raised).  Tables run first here; in Nengo, only the random
        operators before the one that raised (in its step order) had drawn, so
        the next steps draw what Nengo's do.  (Where the program runs a kernel
        on the other side of the failed callback than Nengo's order has it,
        e.g. a split FilteredNoise's filter, that kernel's state after the
        failed step differs from Nengo's, as any native operator's would: a
        lowpass filter's error then decays.)"""
        failed = None
        for group in self._plan.fallbacks:
            if group.failed is not None:
                failed, group.failed = group.failed, None
        if self._step_counter() <= completed:
            return frozenset()
        if self._positions is None:
            self._positions = {op: i for i, op in enumerate(self._step_order)}
        limit = self._positions.get(failed, len(self._positions))  # (unknown: all had)
        return frozenset(op for op in self._tables.ops()
                         if self._positions.get(self._plan.original(op), -1) < limit)

    @contextlib.contextmanager
    def _every_step_probes(self):
        """Runs in this context record every step of every probe, whatever its
        ``sample_every``: ``predict`` and ``evaluate`` give each step, as NengoDL's
        Keras model outputs do (its ``sim.data`` samples, as ours)."""
        self._sampling = False
        try:
            yield
        finally:
            self._sampling = True

    def _restore_constant(self, node):
        """A constant Node fed by `data` outputs its own value again afterwards."""
        sig = self._input_nodes[node]
        for trial in range(self.n_trials):
            self.layout.writable(sig, trial)[...] = sig.initial_value

    def get_name(self, obj):
        """NengoDL's ``sim.get_name``: the name of a Probe or input Node in data,
        ``compile`` and ``evaluate`` dicts (see `nengo_cuda.training.names`)."""
        from .training.names import io_names  # noqa: PLC0415

        if not isinstance(obj, (nengo.Node, nengo.Probe)):
            raise ValidationError(f"{obj} is of an unknown type ({type(obj).__name__}): "
                                  "get_name names input Nodes and Probes", attr="obj")
        for objs, default in ((list(self.model.probes), "probe"),
                              (list(self._input_nodes), "node")):
            if obj in objs:
                return io_names(objs, default)[obj]
        if is_tensor_node(obj) and obj in self.model.sig:
            raise ValidationError(f"{obj} {not_input_node_reason(obj)}", attr="obj")
        raise ValidationError(
            f"{obj} is not an input Node (a nengo.Node with size_in == 0) or a Probe of this "
            "simulator, or is from a different network", attr="obj")

    def trange(self, dt=None, sample_every=None):
        """Times of probed samples (every step, or every ``sample_every``)."""
        if dt is not None:
            if sample_every is not None:
                raise ValidationError(
                    "Cannot specify both `dt` and `sample_every`. Use `sample_every` only.",
                    attr="dt",
                    obj=self,
                )
            warnings.warn("`dt` is deprecated. Use `sample_every` instead.", DeprecationWarning)
            sample_every = dt
        period = 1 if sample_every is None else sample_every / self.dt
        steps = np.arange(1, self.n_steps + 1)
        return self.dt * steps[steps % period < 1]

    # -- training (NengoDL 3's API; nengo_cuda.training.trainer, imports TensorFlow) --
    @property
    def keras_model(self):
        """NengoDL's ``sim.keras_model``: here a stand-in with the Keras model API
        that training uses (weights, ``summary``, ``history``; see
        `nengo_cuda.training.callbacks.FitModel`)."""
        if self.closed:  # (NengoDL's words, as its methods')
            raise SimulatorClosed("Cannot access Simulator.keras_model after Simulator is "
                                  "closed")
        return self._trainer().keras_model

    def _trainer(self):
        if self.closed:
            raise SimulatorClosed("Simulator cannot train because it is closed.")
        if getattr(self, "_training", None) is None:
            from .training.trainer import Trainer  # noqa: PLC0415 - optional TensorFlow

            self._training = Trainer(self)
        return self._training

    def _parameter_io(self):
        """What serves ``save_params``/``load_params``/``get_nengo_params``/
        ``freeze_params`` of an open simulator: the trainer where one exists or
        the network has TensorNodes (their Keras weights are parameters too),
        else a `training.parameter_io.ParameterFiles`, which needs no
        TensorFlow."""
        if getattr(self, "_training", None) is None and not any(
                is_tensor_node_op(op) for op in self.step_order):
            from .training.parameter_io import ParameterFiles  # noqa: PLC0415

            return ParameterFiles(self)
        return self._trainer()


PARAMETER_METHODS = ("save_params", "load_params", "freeze_params", "get_nengo_params")
# they write the simulator's state or read all its parameters at once (run none)
_WRITES_STATE = ("load_params", "freeze_params")
# they run the simulator, minibatch by minibatch (`_Session`)
_SESSIONS = ("fit", "evaluate", "predict", "predict_on_batch", "train", "loss",
             "check_gradients")


def _delegate(name):
    @in_floatx
    def method(self, *args, **kwargs):
        if self.closed:  # (NengoDL's words)
            raise SimulatorClosed(f"Cannot call {name} after simulator is closed")
        owner = self._parameter_io() if name in PARAMETER_METHODS else self._trainer()
        if name in _WRITES_STATE:  # (not beside a run: another thread's, or a Node's)
            with self._exclusive(name):
                return getattr(owner, name)(*args, **kwargs)
        if name in _SESSIONS:
            with _Session(self, name):
                return getattr(owner, name)(*args, **kwargs)
        return getattr(owner, name)(*args, **kwargs)

    method.__name__ = name
    method.__doc__ = f"NengoDL's ``sim.{name}`` (see `nengo_cuda.training.trainer`)."
    return method


for _name in ("compile", "fit", "evaluate", "predict", "predict_on_batch", "train", "loss",
              "save_params", "load_params", "freeze_params", "get_nengo_params",
              "check_gradients"):
    setattr(Simulator, _name, _delegate(_name))
del _name
