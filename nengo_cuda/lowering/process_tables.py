"""Tables of process outputs that Python computes ahead with Nengo's own code.

A ``process_table`` instruction (``csrc/kernels/process_table.h``) only picks,
at each step, every operator's row of a table.  Each operator is a *column*
of that table, of one of these kinds:

- WhiteSignal (`WhiteSignalColumn`): one whole period, from the trial's process
  rng, computed at reset; the kernel picks row ``round(t / dt) % period``.
- WhiteNoise (`WhiteNoiseColumn`): the trial's samples for the steps of each
  run, drawn from its process rng just before the run; likewise the uniform
  numbers of StochasticSpiking neurons (`UniformsColumn`).
- PresentInput (`PresentInputColumn`): its inputs, one block for all trials,
  loaded at reset; before each run, the row each step presents (a ``rows``
  table: one number a step, not a row of values), by PresentInput's step
  arithmetic at Nengo's float64 times ``step * dt``.
- Piecewise with values only (`TimedColumn`): a function of time alone, so
  one output per step of each run, one block for all trials, computed with
  the process's own step arithmetic at Nengo's times.  (Piecewise with
  callable values stays a Python callback: a user function may have effects,
  and must run when Nengo would run it.)

`ProcessTables` joins the columns of one instruction into the table the kernel
reads: the shared blocks, then, per trial, the others' ``(rows, size)`` blocks.
"""

import inspect
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import nengo
from nengo.dists import Gaussian, Uniform
from nengo.exceptions import BuildError

from ..program import TableSource
from ..trial_rngs import trial_generator


def white_signal_rows(process, dt):
    """Rows of WhiteSignal's periodic signal (as its make_step computes them)."""
    return 2 * int(np.ceil(process.period / dt / 2.0))


def white_signal_period(op, rng, dt):
    """One period of a WhiteSignal op's output, (rows, size), from Nengo's make_step."""
    rows = white_signal_rows(op.process, dt)
    step = op.process.make_step((0,), op.output.shape, dt, rng, {})
    signal = inspect.getclosurevars(step).nonlocals.get("signal")
    if not (isinstance(signal, np.ndarray) and signal.shape == (rows,) + op.output.shape):
        # not the closure we know: ask the step function for each row of one period
        signal = np.array([step(i * dt) for i in range(rows)], dtype=np.float64)
    return signal.reshape(rows, -1)


def elementwise_float64(dist):
    """Whether ``dist`` (exact type) draws float64 samples element by element
    from the generator: Gaussian and continuous Uniform.  Drawing ``n`` rows
    at once then gives the stream of ``n`` draws of a row, and scaling a
    sample in place (FilteredNoise's step) gives what scaling a copy does
    (WhiteNoise's)."""
    return type(dist) is Gaussian or (type(dist) is Uniform and not dist.integer)


def white_noise_samples(process, rng, n, d, dt):
    """The outputs of WhiteNoise's step for the next ``n`` steps, (n, d).

    Nengo samples ``dist.sample(n=1, d=d)`` once per step: distributions
    that draw element by element (`elementwise_float64`) draw all ``n`` rows
    at once, others sample step by step.
    """
    dist = process.dist
    if elementwise_float64(dist):
        x = dist.sample(n=n, d=d, rng=rng)
    else:
        x = np.zeros((n, d))
        for i in range(n):
            x[i] = dist.sample(n=1, d=d, rng=rng)[0]
    x = np.asarray(x, dtype=np.float64)
    if process.scale:
        x *= 1.0 / np.sqrt(dt)  # (in place: Nengo's alpha * x, the same products)
    return x


def step_times(dt, start, n):
    """Nengo's times ``step * dt`` of steps ``start + 1 .. start + n``."""
    return np.arange(start + 1, start + n + 1, dtype=np.int64) * dt


def presented_rows(process, dt, start, n):
    """The rows of ``process.inputs`` (a PresentInput) that steps ``start + 1
    .. start + n`` present: its step's float64 arithmetic on all times at once."""
    times = step_times(dt, start, n)
    i = ((times - dt) / float(process.presentation_time) + 1e-7).astype(np.int64)
    return i % len(process.inputs)


def timed_step(op, dt):
    """The step function of time-only process ``op.process`` (a Piecewise):
    None for zero-order interpolation (`timed_outputs` computes it on all
    times at once), else the process's own, made as Nengo's simulator makes
    it when it is built (so scipy's errors in an interpolation are raised
    then)."""
    process = op.process
    if type(process) is nengo.processes.Piecewise and process.interpolation == "zero":
        return None
    return process.make_step((0,), op.output.shape, dt, None, {})


def timed_outputs(op, dt, start, n, step=None):
    """The outputs of a time-only process for steps ``start + 1 .. start + n``,
    (n, size), at Nengo's times ``step * dt``: zero-order Piecewise's step
    arithmetic on all times at once (the same float64 operations, element by
    element), otherwise its step function ``step`` (`timed_step`) called at
    each time."""
    process = op.process
    times = step_times(dt, start, n)
    if type(process) is nengo.processes.Piecewise and process.interpolation == "zero":
        tp, yp = zip(*sorted(process.data.items()))
        rows = np.concatenate([np.zeros((1, op.output.size)), np.reshape(yp, (len(yp), -1))])
        ti = np.clip(np.searchsorted(tp, times + 0.5 * dt) - 1, -1, len(yp) - 1)
        return rows[ti + 1]  # row 0: before the first breakpoint, zeros
    step = timed_step(op, dt) if step is None else step
    out = np.zeros((n, op.output.size))
    for i, t in enumerate(times):
        out[i] = np.ravel(step(float(t)))
    return out


def is_timed(process):
    """True for Piecewise processes whose output depends on time alone (exact
    type: a subclass may override the step; PresentInput: `PresentInputColumn`)."""
    return type(process) is nengo.processes.Piecewise and not any(
        callable(value) for value in process.data.values()
    )


READ_AHEAD_STEPS = 256  # rows computed at once for short runs (step loops)
READ_AHEAD_VALUES = 1 << 16  # at most, in one table column (all trials)


class ReadAhead:
    """Rows of a function of the step alone, ``rows(start, n)`` (those of steps
    ``start + 1 .. start + n``), computed for ``READ_AHEAD_STEPS`` steps at a
    time when runs are short: ``sim.step()`` in a loop (nengo_gui) computed a
    Piecewise's table, or a PresentInput's row numbers, for every step
    anew, in about the time of the step itself."""

    def __init__(self, rows):
        self.rows = rows
        self.start, self.cached = 0, None

    def __call__(self, start, n):
        if n >= READ_AHEAD_STEPS:
            return self.rows(start, n)
        if self.cached is None or not self.start <= start <= start + n <= \
                self.start + len(self.cached):
            self.start, self.cached = start, self.rows(start, READ_AHEAD_STEPS)
        return self.cached[start - self.start : start - self.start + n]


class WhiteSignalColumn:
    """Each trial's whole period of one WhiteSignal, computed at reset."""

    stepped, shared, indexed = False, False, False

    def __init__(self, op, dt):
        self.op, self.dt = op, dt
        self.period = white_signal_rows(op.process, dt)

    def reset(self, seeds):
        return np.array(
            [white_signal_period(self.op, np.random.RandomState(s), self.dt).ravel()
             for s in seeds]
        )


PARALLEL_VALUES = 1 << 15  # per trial, at least, for `per_trial` to use threads
_POOL = (None, None)  # (process id, ThreadPoolExecutor): a forked child makes its own


def per_trial(fill, n_trials, values):
    """Calls ``fill(trial)`` for every trial, in threads where each draws at
    least PARALLEL_VALUES numbers: NumPy's generators draw arrays without
    holding the GIL, and each trial has its own (with a minibatch, the draws
    of WhiteNoise or StochasticSpiking took 8 times the native step)."""
    global _POOL
    if n_trials < 2 or values < PARALLEL_VALUES:
        for trial in range(n_trials):
            fill(trial)
        return
    pid, pool = _POOL
    if pid != os.getpid():
        pool = ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="nengo_cuda_draws")
        _POOL = (os.getpid(), pool)
    list(pool.map(fill, range(n_trials)))  # (raises what a call raised)


class DrawnColumn:
    """Each trial's draws from its own generator (``rngs``) for the steps of
    the next run, ``draw(rng, n)`` rows at a time.

    Draws for steps that did not run (an interrupted run, or drawn ahead for
    short runs) are kept for the next run, so the stream stays the one Nengo
    would draw.  ``saved``: the generators are part of the simulation state
    (`get_state`: rewound by runs with ``stateful=False``, saved with
    ``save_params``); ``read_ahead``: short runs draw for 256 steps.
    """

    stepped, shared, indexed, period = True, False, False, 0
    saved = read_ahead = True

    def __init__(self, op, dt):
        self.op, self.dt = op, dt
        self.rngs, self.pending = [], np.zeros((0, 0, op.output.size))

    def draw(self, rng, n):
        """The next ``n`` steps' rows from ``rng``, (n, size)."""
        raise NotImplementedError

    def _start(self, rngs):
        self.rngs = rngs
        self.pending = np.zeros((len(rngs), 0, self.op.output.size))
        self.fed = False

    def before_run(self, n_steps, start, fed=False):
        self.fed = fed
        if fed:  # data= replaces the output: nothing drawn (the kernel reads zeros)
            return np.zeros((len(self.rngs), n_steps * self.op.output.size))
        need = n_steps - self.pending.shape[1]
        if need > 0:
            size = self.op.output.size
            if self.read_ahead:  # (within READ_AHEAD_VALUES: the stream is the same)
                need = max(need, min(READ_AHEAD_STEPS,
                                     READ_AHEAD_VALUES // (size * len(self.rngs))))
            have = self.pending.shape[1]
            block = np.empty((len(self.rngs), have + need, size))
            block[:, :have] = self.pending

            def fill(trial):
                block[trial, have:] = self.draw(self.rngs[trial], need)

            per_trial(fill, len(self.rngs), need * size)
            self.pending = block
        return self.pending[:, :n_steps].reshape(len(self.rngs), -1)

    def after_run(self, steps_done):
        if not self.fed:
            self.pending = self.pending[:, steps_done:]

    def get_state(self):
        return [r.get_state() for r in self.rngs], self.pending

    def set_state(self, state):
        states, self.pending = state
        for r, st in zip(self.rngs, states):
            r.set_state(st)


class WhiteNoiseColumn(DrawnColumn):
    """Each trial's samples of one WhiteNoise, from the generator Nengo's
    ``make_step`` would make (the trial's seed, drawn anew at each reset)."""

    def reset(self, seeds):
        self._start([np.random.RandomState(s) for s in seeds])

    def draw(self, rng, n):
        return white_noise_samples(self.op.process, rng, n, self.op.output.size, self.dt)


class NeuronUniforms(nengo.Process):
    """The uniform numbers a StochasticSpiking operator draws at each step
    from its generator (``op.state_extra["rng"]``), as a process: the planner's
    stand-in for that part of the operator (`nengo_cuda.random_splits`)."""

    def __init__(self, neurons_op):
        super().__init__(default_size_in=0, default_size_out=neurons_op.J.size)
        self.rng = neurons_op.state_extra["rng"]

    def generators(self, n_trials):
        """Each trial's generator (`trial_generator`)."""
        return [trial_generator(self.rng, trial) for trial in range(n_trials)]

    def make_step(self, shape_in, shape_out, dt, rng, state):
        generator = self.rng
        return lambda t: generator.random_sample(shape_out)


class UniformsColumn(DrawnColumn):
    """The uniform numbers StochasticSpiking neurons draw at each step,
    ``rng.random_sample(n_neurons)``, from the generator Nengo's builder gave
    their operator (`NeuronUniforms`; a trial's own, `trial_generator`).
    Nengo's reset does not rewind it, so neither does this column's, nor do
    runs with ``stateful=False`` or loaded state (it is not part of NengoDL's
    state either: there a TensorFlow random op).  Trial 0's generator is the
    model's own, which a pickle of the simulator keeps: so no run draws ahead,
    and a run that stops early (a failed step) leaves the generators where
    the steps run left them (drawn again to there).
    """

    saved = read_ahead = False

    def reset(self, seeds):
        if len(self.rngs) != len(seeds):
            self._start(self.op.process.generators(len(seeds)))
            self.drawn_from = None

    def before_run(self, n_steps, start, fed=False):
        # (pending rows are only those of a fed run's: none)
        self.drawn_from = None if fed else [r.get_state() for r in self.rngs]
        return super().before_run(n_steps, start, fed)

    def after_run(self, steps_done):
        super().after_run(steps_done)
        if self.pending.shape[1] and self.drawn_from is not None:
            size = self.op.output.size
            for rng, state in zip(self.rngs, self.drawn_from):
                rng.set_state(state)
                rng.random_sample((steps_done, size))
            self.pending = self.pending[:, :0]

    def draw(self, rng, n):
        return rng.random_sample((n, self.op.output.size))


class TimedColumn:
    """A time-only process's outputs for the steps of the next run, one row
    per step, one block for all trials."""

    stepped, shared, indexed, period = True, True, False, 0
    saved = True  # (no stream: its state is None)

    def __init__(self, op, dt):
        self.op, self.dt = op, dt
        step = timed_step(op, dt)
        self.outputs = ReadAhead(lambda start, n: timed_outputs(op, dt, start, n, step))

    def reset(self, seeds):
        pass

    def before_run(self, n_steps, start, fed=False):
        return self.outputs(start, n_steps).ravel()

    def after_run(self, steps_done):
        pass

    def get_state(self):
        return None

    def set_state(self, state):
        pass


class PresentInputColumn:
    """A PresentInput's inputs, one block for all trials, loaded at reset
    (``period``: minus their number, an indexed block), and before each run
    the row of them that each step presents (`presented_rows`)."""

    stepped, shared, indexed = False, True, True

    def __init__(self, op, dt):
        self.op, self.dt = op, dt
        self.period = -len(op.process.inputs)
        self.presented = ReadAhead(lambda start, n: presented_rows(op.process, dt, start, n))

    def reset(self, seeds):
        inputs = self.op.process.inputs
        return np.asarray(inputs, dtype=np.float64).reshape(len(inputs), -1)

    def rows(self, n_steps, start):
        return self.presented(start, n_steps)


def _column_class(op):
    """The class of ``op``'s table column (a SimProcess with no input), or None."""
    process = op.process
    if type(process) is nengo.processes.WhiteSignal:
        return WhiteSignalColumn
    if type(process) is nengo.processes.WhiteNoise and op.output.ndim == 1:
        return WhiteNoiseColumn
    if type(process) is NeuronUniforms:
        return UniformsColumn
    if type(process) is nengo.processes.PresentInput:
        return PresentInputColumn
    if is_timed(process):
        return TimedColumn
    return None


def has_column(op):
    """Whether `column_for` gives ``op`` a column (without making it: a
    Piecewise's makes its step function)."""
    return _column_class(op) is not None


def column_for(op, dt):
    """The table column of ``op`` (a SimProcess with no input), or None."""
    cls = _column_class(op)
    if cls in (PresentInputColumn, TimedColumn):
        _check_size(op)  # (processes of given values)
    return None if cls is None else cls(op, dt)


def _check_size(op):
    """A process of given values (PresentInput, Piecewise) must give as many
    per step as its output has (e.g. an ensemble's neurons, as its noise);
    Nengo's step fails on an assertion otherwise."""
    size = op.process.default_size_out
    if size != op.output.size:
        raise BuildError(f"{type(op.process).__name__} gives {size} values per step, but "
                         f"its output {op.output} has {op.output.size}")


def _concatenate(arrays, axis=0):
    """``np.concatenate(arrays, axis)``, or the one array itself (no copy)."""
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=axis)


class ProcessTables(TableSource):
    """The table of one ``process_table`` instruction, laid out as
    ``processes::table_layout`` (``csrc/kernels/process_table.h``) reads it:
    the blocks of shared columns (one for all trials), then, per trial, the
    blocks of the others, each in the order of the operators.

    Periodic and indexed blocks are computed at reset.  Without stepped
    columns the table is loaded once, at reset; with them, before every run
    (with the periodic blocks kept from reset).  Indexed columns' rows for
    the steps of a run (``rows``: per step, one number per indexed column)
    are loaded before every run.
    """

    def __init__(self, ops, dt):
        self.columns = [column_for(op, dt) for op in ops]
        self.stepped = [c for c in self.columns if c.stepped]
        self.indexed = [c for c in self.columns if c.indexed]
        self.fixed = {}  # column index -> (trials, period * size), from reset

    @property
    def periods(self):
        """Per operator: rows of its periodic table (0: one row per run step;
        negative: minus the rows of an indexed block)."""
        return [c.period for c in self.columns]

    @property
    def shared(self):
        """Per operator: whether its block serves every trial."""
        return [c.shared for c in self.columns]

    def values_per_step(self, n_trials):
        """Table values each step of a run adds (the simulator bounds runs by it)."""
        return sum(
            c.op.output.size * (1 if c.shared else n_trials) for c in self.stepped
        ) + len(self.indexed)

    def reset(self, seeds):
        self.fixed = {}
        for j, column in enumerate(self.columns):
            block = column.reset([trial[j] for trial in seeds])
            if not column.stepped:
                self.fixed[j] = block
        if self.stepped:
            return {}
        return {"table": self._join(self.fixed)}

    def before_run(self, n_steps, start, fed=frozenset()):
        tables = {}
        if self.indexed:  # (steps, indexed columns), row numbers as float64
            rows = np.stack([c.rows(n_steps, start) for c in self.indexed], axis=1)
            tables["rows"] = rows.astype(np.float64).ravel()
        if not self.stepped:
            return tables
        blocks = dict(self.fixed)
        for j, column in enumerate(self.columns):
            if column.stepped:
                blocks[j] = column.before_run(n_steps, start, column.op in fed)
        tables["table"] = self._join(blocks)
        return tables

    def _join(self, blocks):
        order = range(len(self.columns))
        parts = [np.ravel(blocks[j]) for j in order if self.columns[j].shared]
        trials = [blocks[j] for j in order if not self.columns[j].shared]
        if trials:  # each trial's blocks in turn: (trials, values) side by side
            parts.append(np.ravel(_concatenate(trials, axis=1)))
        # a single part (a PresentInput's rows: MBs a run) is not copied again
        return _concatenate(parts) if parts else np.zeros(0)

    def after_run(self, steps_done, also=frozenset()):
        for column in self.stepped:
            column.after_run(steps_done + (column.op in also))

    def get_state(self):
        return {column.op: column.get_state() for column in self.stepped if column.saved}

    def set_state(self, state):
        for column in self.stepped:
            if column.saved and column.op in state:
                column.set_state(state[column.op])
