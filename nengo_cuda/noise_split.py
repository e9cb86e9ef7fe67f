"""Filtered noise: a `nengo.processes.FilteredNoise` runs as white noise and a
filter, both native.

Nengo's FilteredNoise step draws ``x = dist.sample(n=1, d)[0]`` from the
process's generator, scales it by ``1 / sqrt(dt)`` when ``scale``, and returns
its synapse's step of ``x``; the synapse's state is the operator's ``X``.
`WhiteNoise` draws and scales exactly so (the same generator, the same
stream), and a `LinearFilter` SimProcess steps its input with the same state.
So the operator

    SimProcess(FilteredNoise(synapse, dist, scale), None, y, t, mode, {"X": X})

becomes, for the planner,

    SimProcess(WhiteNoise(dist, scale), None, noise, t, "set")      # a table
    SimProcess(synapse, noise, y, t, mode, {"X": X})              # lti kernel

where ``noise`` is a signal of its own (`noise_signals` makes it before the
layout is made).  The white noise reads the table that Python fills ahead
(`nengo_cuda.lowering.process_tables`), the filter is the kernel of every
synapse: no step goes back to Python (a callback per step took most of the
step: 78,000 steps/s, white noise alone 183,000).  The noise is the float64
value Nengo filters in float64 simulators (float32 ones round it to float32
first, as they round white noise).

The split happens only where both kernels take their part, and only the
planner sees it: the simulator's step order (random seeds, training, reset)
keeps Nengo's operator, whose seed the white noise takes
(`nengo_cuda.planner.Plan.seed_sharers`).
"""

import numpy as np
from nengo.builder.processes import SimProcess
from nengo.builder.signal import Signal
from nengo.processes import FilteredNoise, WhiteNoise

from .lowering.processes import FILTER_TYPES

# Planner default; tests turn it off to compare.
ENABLED = True


def splittable(op):
    """Whether ``op`` runs Nengo's FilteredNoise step (exact type, or a
    subclass such as BrownNoise that keeps its step) with a linear filter."""
    if type(op) is not SimProcess or op.input is not None or set(op.state) != {"X"}:
        return False
    process = op.process
    return (isinstance(process, FilteredNoise)
            and type(process).make_step is FilteredNoise.make_step
            and type(process).make_state is FilteredNoise.make_state
            and type(process.synapse) in FILTER_TYPES
            and op.output.ndim == 1)


class NoiseSplit:
    """One FilteredNoise operator as its white noise and its filter.

    Attributes
    ----------
    op : SimProcess
        The FilteredNoise operator.
    noise : Signal
        The white noise, which the filter reads.
    white, filter : SimProcess
        The operators that draw ``noise`` and filter it into the output.
    """

    def __init__(self, op):
        process = op.process
        self.op = op
        self.noise = Signal(np.zeros(op.output.size), name=f"{op.output.name}.white_noise")
        self.white = SimProcess(
            WhiteNoise(dist=process.dist, scale=process.scale, seed=process.seed),
            None, self.noise, op.t, mode="set", tag=f"{op.tag}.white_noise")
        self.filter = SimProcess(
            process.synapse, self.noise, op.output, op.t, mode=op.mode,
            state=op.state, tag=f"{op.tag}.filter")


def noise_signals(step_order):
    """``{operator: NoiseSplit}`` for the FilteredNoise operators that may
    split (their noise signals must be in the layout the planner gets)."""
    if not ENABLED:
        return {}
    return {op: NoiseSplit(op) for op in step_order if splittable(op)}


def split(step_order, dg, splits, lowerable):
    """The step order and dependency graph with each operator of ``splits``
    whose two parts both have a kernel (``lowerable``) replaced by them, and
    the operators replaced.

    The filter takes the operator's place in the graph (its predecessors and
    successors).  The white noise reads only the time: it follows the
    operator's predecessors that write the time (the time update) and
    precedes the filter, so it can join the step's other tables.
    """
    done = {op: s for op, s in splits.items()
            if op in dg and lowerable(s.white) and lowerable(s.filter)}
    if not done:
        return step_order, dg, {}
    order = []
    for op in step_order:
        order.extend([done[op].white, done[op].filter] if op in done else [op])
    new_dg = {}
    for op, succs in dg.items():
        if op in done:
            op = done[op].filter
        hit = [s for s in succs if s in done]
        if hit:
            succs = set(succs) - set(hit)
            for s in hit:
                succs.add(done[s].filter)
                if _writes(op, s.t):
                    succs.add(done[s].white)
        new_dg[op] = succs
    for s in done.values():
        new_dg.setdefault(s.white, set()).add(s.filter)
    return order, new_dg, done


def _writes(op, sig):
    """Whether ``op`` writes elements of ``sig``'s base."""
    return any(s.base is sig.base for s in op.sets + op.incs + op.updates)
