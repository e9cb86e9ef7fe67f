"""SimProcess lowerings: linear filters, WhiteSignal and WhiteNoise.

Linear filters (`nengo.LinearFilter`, `nengo.Lowpass`, `nengo.Alpha`) get their
step form and discrete coefficients from Nengo's own ``make_step``, so the
kernels (``csrc/kernels/linear_filter.h``) repeat the arithmetic of the very
Step object Nengo would run.  All stateless and one-state filters of a stage
merge into one ``lti_elementwise`` instruction, all others (``NoD``,
``General``) into one ``lti_state_space`` instruction.  The filter state stays
in the operator's ``state["X"]`` signal.

WhiteSignal and WhiteNoise read per-trial tables that Python computes from each
operator's process rng with Nengo's own code (`TableSource`): WhiteSignal's
whole periodic signal at reset, WhiteNoise's samples for the steps of each run.
"""

import inspect

import numpy as np
import nengo
from nengo.builder.processes import SimProcess
from nengo.dists import Gaussian, Uniform
from nengo.synapses import LinearFilter

from ..program import Instruction, TableSource
from .common import all_float, memoised
from .registry import register

# Exact process types whose step is LinearFilter's (subclasses may override it).
FILTER_TYPES = tuple(
    cls
    for cls in (LinearFilter, nengo.Lowpass, nengo.Alpha)
    if cls.make_step is LinearFilter.make_step and cls._get_ss is LinearFilter._get_ss
)

# Step class -> (instruction kind, form code of csrc/kernels/linear_filter.h)
FILTER_FORMS = {
    LinearFilter.NoX: ("lti_elementwise", 0),
    LinearFilter.OneX: ("lti_elementwise", 1),
    LinearFilter.OneXScalar: ("lti_elementwise", 2),
    LinearFilter.NoD: ("lti_state_space", 3),
    LinearFilter.General: ("lti_state_space", 4),
}


def _disjoint(layout, signals):
    """True when no two of ``signals`` share an element."""
    addrs = np.concatenate([layout.addresses(s).ravel() for s in signals])
    return len(np.unique(addrs)) == len(addrs)


def _filter_step(op, layout):
    """Nengo's Step object for a linear-filter SimProcess, or None if not lowerable.

    Memoised per layout: ``key`` and ``lower`` both ask, and Nengo's make_step
    (a matrix exponential) dominates the planning time of filter-heavy models.
    """
    return memoised(layout, "filter_step", op, _make_filter_step)


def _make_filter_step(op, layout):
    if type(op.process) not in FILTER_TYPES or layout.dt is None or op.input is None:
        return None
    if set(op.state) != {"X"} or op.input.shape != op.output.shape:
        return None
    X = op.state["X"]
    if not all_float(layout, [op.input, op.output, X]):
        return None
    if X.shape[1:] != op.output.shape or not _disjoint(layout, [op.input, op.output, X]):
        return None
    state = {"X": np.zeros(X.shape)}
    step = op.process.make_step(op.input.shape, op.output.shape, layout.dt, None, state)
    if type(step) not in FILTER_FORMS:
        return None
    if type(step) is LinearFilter.General and op.mode == "inc":
        # Nengo's General step returns shape (1,) + shape, which `output += y`
        # cannot broadcast: the fallback raises Nengo's own error
        return None
    if FILTER_FORMS[type(step)][0] == "lti_state_space":
        # the kernel walks the state as one contiguous (n, m) array
        x = layout.addresses(X).ravel()
        if x.size and not np.array_equal(x, x[0] + np.arange(x.size)):
            return None
    return step


def _io(op, layout):
    return layout.addresses(op.input).ravel(), layout.addresses(op.output).ravel()


def _lower_elementwise(ops, steps, layout):
    ints = {name: [] for name in ("U", "Y", "X", "form", "inc")}
    floats = {"a": [], "b": []}
    for op, step in zip(ops, steps):
        u, y = _io(op, layout)
        form = FILTER_FORMS[type(step)][1]
        no_x = form == FILTER_FORMS[LinearFilter.NoX][1]
        ints["U"].append(u)
        ints["Y"].append(y)
        ints["X"].append(np.full(y.size, -1) if no_x else layout.addresses(op.state["X"]).ravel())
        ints["form"].append(np.full(y.size, form))
        ints["inc"].append(np.full(y.size, op.mode == "inc"))
        floats["a"].append(np.full(y.size, 0.0 if no_x else step.a))
        floats["b"].append(np.full(y.size, step.d if no_x else step.b))
    return Instruction(
        "lti_elementwise",
        ops,
        ints={k: np.concatenate(v) for k, v in ints.items()},
        floats={k: np.concatenate(v) for k, v in floats.items()},
    )


def _lower_state_space(ops, steps, layout):
    ints = {name: [] for name in ("n", "m", "X", "general", "inc", "U", "Y")}
    floats = {name: [] for name in ("A", "B", "C", "D")}
    for op, step in zip(ops, steps):
        u, y = _io(op, layout)
        ints["n"].append(len(step.A))
        ints["m"].append(y.size)
        ints["X"].append(layout.address(op.state["X"]))
        ints["general"].append(type(step) is LinearFilter.General)
        ints["inc"].append(op.mode == "inc")
        ints["U"].append(u)
        ints["Y"].append(y)
        for name in ("A", "B", "C", "D"):
            floats[name].append(np.asarray(getattr(step, name), dtype=np.float64).ravel())
    return Instruction(
        "lti_state_space",
        ops,
        ints={k: np.hstack(v) for k, v in ints.items()},
        floats={k: np.concatenate(v) for k, v in floats.items()},
    )


# -- WhiteSignal and WhiteNoise -------------------------------------------------


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


def white_noise_samples(process, rng, n, d, dt):
    """The outputs of WhiteNoise's step for the next ``n`` steps, (n, d).

    Nengo samples ``dist.sample(n=1, d=d)`` once per step.  Gaussian and
    continuous Uniform draw element by element from the generator, so drawing
    ``n`` rows at once gives the same stream; other distributions sample step by step.
    """
    dist = process.dist
    if type(dist) is Gaussian or (type(dist) is Uniform and not dist.integer):
        x = dist.sample(n=n, d=d, rng=rng)
    else:
        x = np.zeros((n, d))
        for i in range(n):
            x[i] = dist.sample(n=1, d=d, rng=rng)[0]
    alpha = 1.0 / np.sqrt(dt)
    return alpha * x if process.scale else np.asarray(x, dtype=np.float64)


class WhiteSignalTable(TableSource):
    """Each trial's table: every op's whole period, computed at reset."""

    def __init__(self, ops, dt):
        self.ops, self.dt = ops, dt

    def reset(self, rngs):
        def trial_table(trial_rngs):
            ops_rngs = zip(self.ops, trial_rngs)
            periods = [white_signal_period(op, rng, self.dt) for op, rng in ops_rngs]
            return np.concatenate([p.ravel() for p in periods])

        return {"table": np.array([trial_table(r) for r in rngs])}


class WhiteNoiseTable(TableSource):
    """Each trial's table: every op's samples for the steps of the next run.

    Samples drawn for steps that did not run (an interrupted run) are kept for
    the next run, so each op's stream stays the one Nengo would draw.
    """

    def __init__(self, ops, dt):
        self.ops, self.dt = ops, dt
        self.rngs, self.pending = [], []

    def reset(self, rngs):
        self.rngs = rngs
        self.pending = [np.zeros((len(rngs), 0, op.output.size)) for op in self.ops]
        return {}

    def before_run(self, n_steps):
        for j, op in enumerate(self.ops):
            need = n_steps - self.pending[j].shape[1]
            if need > 0:
                new = [
                    white_noise_samples(op.process, r[j], need, op.output.size, self.dt)
                    for r in self.rngs
                ]
                self.pending[j] = np.concatenate([self.pending[j], np.array(new)], axis=1)
        n_trials = len(self.rngs)
        return {
            "table": np.concatenate(
                [p[:, :n_steps].reshape(n_trials, -1) for p in self.pending], axis=1
            )
        }

    def after_run(self, steps_done):
        self.pending = [p[:, steps_done:] for p in self.pending]

    def get_state(self):
        rngs = [[r.get_state() for r in trial] for trial in self.rngs]
        return rngs, list(self.pending)

    def set_state(self, state):
        rngs, pending = state
        for trial, states in zip(self.rngs, rngs):
            for r, st in zip(trial, states):
                r.set_state(st)
        self.pending = list(pending)


TABLE_PROCESSES = {
    nengo.processes.WhiteSignal: WhiteSignalTable,
    nengo.processes.WhiteNoise: WhiteNoiseTable,
}


def _table_key(op, layout):
    source = TABLE_PROCESSES.get(type(op.process))
    if source is None or layout.dt is None or op.input is not None or op.state:
        return None
    if not all_float(layout, [op.output, op.t]) or op.t.size != 1:
        return None
    if source is WhiteNoiseTable and op.output.ndim != 1:
        return None
    return ("process_table", source, layout.address(op.t))


def _lower_table(ops, layout):
    source = TABLE_PROCESSES[type(ops[0].process)]
    periodic = source is WhiteSignalTable
    return Instruction(
        "process_table",
        ops,
        ints={
            "Y": np.concatenate([layout.addresses(op.output).ravel() for op in ops]),
            "m": [op.output.size for op in ops],
            "period": [white_signal_rows(op.process, layout.dt) if periodic else 0 for op in ops],
            "inc": [op.mode == "inc" for op in ops],
        },
        scalars={"time": layout.address(ops[0].t)},
        tables=source(ops, layout.dt),
    )


@register(SimProcess)
class SimProcessLowering:
    @staticmethod
    def key(op, layout):
        step = _filter_step(op, layout)
        if step is not None:
            return (FILTER_FORMS[type(step)][0],)
        return _table_key(op, layout)

    @staticmethod
    def lower(ops, layout):
        if type(ops[0].process) in TABLE_PROCESSES:
            return [_lower_table(ops, layout)]
        steps = [_filter_step(op, layout) for op in ops]
        if FILTER_FORMS[type(steps[0])][0] == "lti_elementwise":
            return [_lower_elementwise(ops, steps, layout)]
        return [_lower_state_space(ops, steps, layout)]
