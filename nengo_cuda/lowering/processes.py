"""SimProcess lowerings: linear filters, and processes read from tables.

Linear filters (`nengo.LinearFilter`, `nengo.Lowpass`, `nengo.Alpha`) get their
step form and discrete coefficients from Nengo's own ``make_step``, so the
kernels (``csrc/kernels/linear_filter.h``) repeat the arithmetic of the very
Step object Nengo would run.  All stateless and one-state filters of a stage
merge into one ``lti_elementwise`` instruction, all others (``NoD``,
``General``) into one ``lti_state_space`` instruction.  The filter state stays
in the operator's ``state["X"]`` signal.  Triangle synapses (finite impulse
responses) merge into one ``triangle`` instruction (``csrc/kernels/triangle.h``)
that keeps Nengo's state: the sum ``Y``, the ring of taps ``X`` and its
position ``Xi``.

Processes without input whose outputs Python can compute ahead with Nengo's
own code (WhiteSignal, WhiteNoise, PresentInput, Piecewise) merge into one
``process_table`` instruction per time signal, which reads them from a
table of per-trial and shared blocks (`nengo_cuda.lowering.process_tables`).
"""

import numpy as np
import nengo
from nengo.builder.processes import SimProcess
from nengo.synapses import LinearFilter, Triangle

from ..program import Instruction
from .common import all_float, memoised
from .process_tables import ProcessTables, has_column
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


# -- Triangle synapses ----------------------------------------------------------


def _triangle_coefficients(op, layout):
    """(taps, n0, ndiff) of a Triangle SimProcess that the kernel can run, else None."""
    if type(op.process) is not Triangle or layout.dt is None or op.input is None:
        return None
    if set(op.state) != {"Y", "X", "Xi"}:
        return None
    Y, X, Xi = (op.state[name] for name in ("Y", "X", "Xi"))
    shape = op.output.shape
    if not all_float(layout, [op.input, op.output, Y, X, Xi]):
        return None
    if op.input.shape != shape or Y.shape != shape or Xi.size != 1:
        return None
    # Nengo's own coefficients (NumPy scalars of rc's float dtype at this time,
    # as Nengo's step makes them)
    n_taps, n0, ndiff = op.process._get_coefficients(layout.dt)
    if X.shape != (n_taps,) + shape or not _disjoint(layout, [op.input, op.output, Y, X, Xi]):
        return None
    x = layout.addresses(X).ravel()  # the kernel walks the ring as one (n, m) array
    if x.size and not np.array_equal(x, x[0] + np.arange(x.size)):
        return None
    return n_taps, n0, ndiff


def _lower_triangle(ops, layout):
    ints = {name: [] for name in ("n", "m", "X", "Xi", "inc", "wide", "U", "Y", "state")}
    floats = {"n0": [], "ndiff": []}
    for op in ops:
        n_taps, n0, ndiff = _triangle_coefficients(op, layout)
        u, y = _io(op, layout)
        ints["n"].append([n_taps])
        ints["m"].append([y.size])
        ints["X"].append([layout.address(op.state["X"])])
        ints["Xi"].append([layout.address(op.state["Xi"])])
        ints["inc"].append([op.mode == "inc"])
        # float64 coefficients promote `n0 * u` to double (NumPy's rules)
        ints["wide"].append([np.result_type(n0) == np.float64])
        ints["U"].append(u)
        ints["Y"].append(y)
        ints["state"].append(layout.addresses(op.state["Y"]).ravel())
        floats["n0"].append([float(n0)])
        floats["ndiff"].append([float(ndiff)])
    return Instruction(
        "triangle",
        ops,
        ints={k: np.concatenate(v).astype(np.int64) for k, v in ints.items()},
        floats={k: np.concatenate(v) for k, v in floats.items()},
    )


# -- processes read from tables (lowering/process_tables.py) -------------------


def _table_key(op, layout):
    if layout.dt is None or op.input is not None or op.state:
        return None
    if op.output.size == 0:  # (nothing to read: a table of no values; Nengo's step)
        return None
    if not all_float(layout, [op.output, op.t]) or op.t.size != 1:
        return None
    if not has_column(op):
        return None
    return ("process_table", layout.address(op.t))


def _lower_table(ops, layout):
    tables = ProcessTables(ops, layout.dt)
    return Instruction(
        "process_table",
        ops,
        ints={
            "Y": np.concatenate([layout.addresses(op.output).ravel() for op in ops]),
            "m": [op.output.size for op in ops],
            "period": tables.periods,
            "shared": tables.shared,
            "inc": [op.mode == "inc" for op in ops],
        },
        scalars={"time": layout.address(ops[0].t)},
        tables=tables,
    )


@register(SimProcess)
class SimProcessLowering:
    @staticmethod
    def key(op, layout):
        step = _filter_step(op, layout)
        if step is not None:
            return (FILTER_FORMS[type(step)][0],)
        if _triangle_coefficients(op, layout) is not None:
            return ("triangle",)
        return _table_key(op, layout)

    @staticmethod
    def lower(ops, layout):
        if ops[0].input is None:
            return [_lower_table(ops, layout)]
        if type(ops[0].process) is Triangle:
            return [_lower_triangle(ops, layout)]
        steps = [_filter_step(op, layout) for op in ops]
        if FILTER_FORMS[type(steps[0])][0] == "lti_elementwise":
            return [_lower_elementwise(ops, steps, layout)]
        return [_lower_state_space(ops, steps, layout)]
