"""Nengo's FloatingPointError for NaN values that native kernels make.

`nengo.Simulator` steps under ``np.errstate(invalid="raise")``: an operation
that makes a NaN from numbers (``inf - inf``, ``0 * inf``, a divergent
learning rule's weights) stops the run with NumPy's FloatingPointError.
Native kernels (on a GPU too) cannot raise in the middle of a step, so after
each native run the simulator looks for NaN in the probe data the run
recorded and in every trial's state (all written signals: neuron states,
filters, learned weights), and raises FloatingPointError naming where the
first one is.  The run's steps stand (its probe data and state hold the
NaN), and NaN already reported is not reported again until a reset: NumPy,
too, raises only where a NaN is made, not where one is carried on.  A run
that a callback's error stops (a Node function that returns the NaN it was
given: "returned non-finite value") is checked so too, and raises the
FloatingPointError, the callback's error its cause: Nengo's comes first, at
the operation that made the NaN; where the NaN came in as data (as
above), the callback's own error stands, as Nengo's would.

A NaN can also come in as data, which Nengo passes on without an error: a
Piecewise or PresentInput of NaN values, a distribution sampling from NaN
values, or a process of the user's own returning NaN.  Where such an
operator's output holds a NaN after the run, or its given values held one
at one of the run's steps (`gave_nan`: gone by the run's end), a NaN gives
a RuntimeWarning instead.  (Node functions, TensorNodes and ``data=``
cannot bring NaN: they are refused where they are given.)  Where a made NaN
and a given one meet in one run, the warning stands for both.

A NaN made and gone again within a run, in a signal no probe records at
that step (a probe with ``sample_every``, or none), is not seen: Nengo
raises there.
"""

import nengo
import numpy as np
from nengo.builder.processes import SimProcess

from .user_warnings import warn

# distributions whose samples are finite whatever their (validated) parameters
_FINITE_DISTS = (nengo.dists.Uniform, nengo.dists.Gaussian, nengo.dists.Exponential,
                 nengo.dists.UniformHypersphere, nengo.dists.ScatteredHypersphere,
                 nengo.dists.CosineSimilarity, nengo.dists.SqrtBeta,
                 nengo.dists.SubvectorLength)
# a distribution of given values: the attributes that hold them
_VALUES_OF = {nengo.dists.Choice: ("options",), nengo.dists.Samples: ("samples",),
              nengo.dists.PDF: ("x", "p")}
_NOISE = (nengo.processes.WhiteNoise, nengo.processes.FilteredNoise,
          nengo.processes.BrownNoise)


def _has_nan(values):
    try:
        return bool(np.isnan(np.asarray(values, dtype=float)).any())
    except (TypeError, ValueError):
        return True  # (not numbers: whatever they give may be NaN)


def _may_give_nan(dist):
    if isinstance(dist, _FINITE_DISTS):
        return False
    if type(dist) not in _VALUES_OF:
        return True  # a user's distribution
    return _gives_nan(dist)


def passes_nan_in(op):
    """Whether operator ``op`` may output a NaN that no operation made
    (values given by the user, or a user's own process)."""
    if not isinstance(op, SimProcess):
        return False
    process = op.process
    if isinstance(process, (nengo.synapses.Synapse, nengo.processes.WhiteSignal)):
        return False  # (computed from its input: a NaN there is made)
    if isinstance(process, _NOISE):
        return _may_give_nan(process.dist)
    if isinstance(process, nengo.processes.PresentInput):
        return _has_nan(process.inputs)
    if isinstance(process, nengo.processes.Piecewise):
        return any(callable(v) or _has_nan(v) for v in process.data.values())
    return True  # a user's process


def gave_nan(op, times, dt):
    """Whether operator ``op`` gave NaN as data at one of ``times`` (the run's
    steps' ``t``; ``dt`` the time step), which may be gone from its output by
    the run's end and still be in the signals it fed: a Piecewise or
    PresentInput whose value then held NaN (evaluated again), a noise process
    whose distribution gives NaN with a positive probability.  A user's
    process (or a value that fails to evaluate) is not known: False."""
    if not isinstance(op, SimProcess) or len(times) == 0:
        return False
    process = op.process
    if isinstance(process, _NOISE):
        return _gives_nan(process.dist)
    if isinstance(process, (nengo.processes.Piecewise, nengo.processes.PresentInput)):
        shape_out = op.output.shape
        try:  # (a Piecewise's functions are the user's)
            step = process.make_step((0,), shape_out, dt, None,
                                     process.make_state((0,), shape_out, dt))
            return any(_has_nan(step(t)) for t in times)
        except Exception:  # noqa: BLE001 - not known
            return False
    return False


def _gives_nan(dist):
    """Whether distribution ``dist`` (of given values) samples NaN with a
    positive probability."""
    if isinstance(dist, nengo.dists.Choice):
        options = np.asarray(dist.options, dtype=float).reshape(len(dist.options), -1)
        weights = np.ones(len(options)) if dist.p is None else np.asarray(dist.p)
        return bool(np.any(np.isnan(options).any(axis=1) & (weights > 0)))
    return any(_has_nan(getattr(dist, name)) for name in _VALUES_OF.get(type(dist), ()))


def _first_nan(array):
    """The flat index of ``array``'s first NaN, or None (fast when there is none:
    a max propagates NaN, and is one pass without a temporary)."""
    if array.size == 0:
        return None
    top = array.max()  # (the method: np.max's dispatch costs twice the pass here)
    if top == top:
        return None
    return int(np.flatnonzero(np.isnan(array.ravel()))[0])


def find_nan(layout, recorded, first_step):
    """Where the first NaN of a run is: in ``recorded`` (probe -> this run's
    rows, trials first) or else in the state of ``layout``'s trials; a phrase
    naming it, or None where there is no NaN."""
    for probe, rows in recorded:
        index = _first_nan(rows)
        if index is not None:
            trial, row = np.unravel_index(index, rows.shape)[:2]
            return (f"the data of {probe} (trial {trial}, the run's sample {row + 1}; "
                    f"the run began after step {first_step})")
    state = layout.fbuf[layout.f_shared:]
    index = _first_nan(state)
    if index is None:
        return None
    trial, offset = divmod(index, layout.f_state)
    return f"signal {layout.state_base_at(offset)} (trial {trial}) at the end of the run"


def rows_beyond_state(recorded):
    """Whether probe rows hold steps before the run's last (more than one
    row): else the state holds all they recorded, and `find_nan` need not
    search them."""
    return any(rows.shape[1] > 1 for _, rows in recorded)


def holding_nan(layout, ops, times, dt):
    """The first of ``ops`` whose output holds a NaN now (any trial), else the
    first that `gave_nan` at one of ``times`` (gone by now), or None."""
    for op in ops:
        for trial in range(layout.n_trials):
            if _first_nan(layout.signal_dicts[trial][op.output]) is not None:
                return op
    return next((op for op in ops if gave_nan(op, times, dt)), None)


def report(where, source=None):
    """Raises Nengo's FloatingPointError for the NaN ``where`` (`find_nan`),
    or warns where operator ``source`` (its output holds NaN) may have
    brought it in as data."""
    message = (f"a NaN value appeared in {where}: an invalid operation (such as inf - inf "
               f"or 0 * inf, e.g. from values grown without bound) made it, where "
               f"nengo.Simulator raises FloatingPointError")
    if source is not None:
        warn(f"{message}; or it came in as data: {source.process} outputs NaN (which "
             f"nengo.Simulator passes on)", RuntimeWarning)
        return
    raise FloatingPointError(f"{message} (the run's steps stand, their probe data "
                             f"holding NaN)")
