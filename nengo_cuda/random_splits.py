"""Random operators split into numbers Python draws ahead and a kernel.

Two kinds of Nengo operator draw random numbers from a generator at every
step and compute with them.  For the planner each becomes two operators: a
``process_table`` column that holds the numbers (drawn a run ahead from the
same generator, so the same stream: `nengo_cuda.lowering.process_tables`)
written into a signal of its own each step, and an operator with a kernel
that reads that signal.  No step then goes back to Python.

- `nengo.processes.FilteredNoise` (and BrownNoise, its subclass): its step
  draws ``x = dist.sample(n=1, d)[0]``, scales it by ``1 / sqrt(dt)`` when
  ``scale``, and returns its synapse's step of ``x`` (state ``X``).
  `WhiteNoise` draws and scales exactly so, from the same generator, where
  the samples are float64 (Gaussian and Uniform: others stay callbacks), so::

      SimProcess(FilteredNoise(synapse, dist, scale), None, y, t, mode, {"X": X})
  ->  SimProcess(WhiteNoise(dist, scale), None, noise, t, "set")   # table
      SimProcess(synapse, noise, y, t, mode, {"X": X})             # lti kernel

  The white noise takes the original's seed (`Split.seed_sharers`).  A
  callback of Nengo's step took most of a step: 14 us against 5 us here.
- `nengo.StochasticSpiking` neurons: the step computes ``n + f = dt * J``
  (whole and fractional part; ``|J|`` for types with negative rates), draws
  ``u = rng.random_sample(size)`` from the operator's own generator
  (``state_extra["rng"]``, which Nengo never rewinds), and emits
  ``amplitude / dt * (n + (u < f))`` (times ``sign(J)``)::

      SimNeurons(StochasticSpiking, J, y, {"rng": rng})
  ->  SimProcess(NeuronUniforms(rng), None, u, t, "set")          # table
      SimNeurons(StochasticSpiking, J, y, {"uniform": u})          # kernel

The drawn signals are made before the layout is (`split_signals`); they are
scratch, written before they are read in every step (pickles leave them
out).  A split happens only where both parts have kernels, and only the
planner sees it: the simulator's step order (random seeds, training, reset)
keeps Nengo's operators.  Where ``data=`` feeds a split Node, its table draws
nothing and its kernel part, alone in its instruction, is switched off: it
does not step, as NengoDL does not step a fed Node.  float64 simulators use
the very numbers Nengo uses; float32 ones round them to float32 first (as
they round white noise; a uniform number within float32's rounding of its
neuron's fraction may then spike where Nengo's float32 does not).
"""

import numpy as np
from nengo.builder.neurons import SimNeurons
from nengo.builder.processes import SimProcess
from nengo.builder.signal import Signal
from nengo.neurons import StochasticSpiking
from nengo.processes import FilteredNoise, WhiteNoise

from .lowering.process_tables import NeuronUniforms, elementwise_float64
from .lowering.processes import FILTER_TYPES

# Planner default; tests turn it off to compare.
ENABLED = True


class Split:
    """One random operator as the table of its numbers and a kernel operator.

    Attributes
    ----------
    op : Operator
        Nengo's operator.
    drawn : Signal
        The numbers of a step, which the kernel operator reads.
    source : SimProcess
        Writes ``drawn`` from the table at each step.
    consumer : Operator
        Computes the operator's outputs from ``drawn`` (with a kernel).
    seed_sharers : tuple
        Operators that take ``op``'s random seed (drawn in Nengo's order).
    """

    def __init__(self, op, drawn, source, consumer, seed_sharers=()):
        self.op, self.drawn, self.source, self.consumer = op, drawn, source, consumer
        self.seed_sharers = seed_sharers


def _filtered_noise(op, time):
    """FilteredNoise's white noise and filter, or None: Nengo's step (exact
    type, or a subclass such as BrownNoise that keeps it) of a linear filter."""
    if type(op) is not SimProcess or op.input is not None or set(op.state) != {"X"}:
        return None
    process = op.process
    if not (isinstance(process, FilteredNoise)
            and type(process).make_step is FilteredNoise.make_step
            and type(process).make_state is FilteredNoise.make_state
            and type(process.synapse) in FILTER_TYPES and op.output.ndim == 1
            and elementwise_float64(process.dist)):
        return None
    noise = Signal(np.zeros(op.output.size), name=f"{op.output.name}.white_noise")
    white = SimProcess(WhiteNoise(dist=process.dist, scale=process.scale, seed=process.seed),
                       None, noise, op.t, mode="set", tag=f"{op.tag}.white_noise")
    synapse = SimProcess(process.synapse, noise, op.output, op.t, mode=op.mode,
                         state=op.state, tag=f"{op.tag}.filter")
    return Split(op, noise, white, synapse, seed_sharers=(white,))


def _stochastic_spiking(op, time):
    """StochasticSpiking's uniform numbers and spikes, or None (exact type:
    a subclass may step otherwise)."""
    if type(op) is not SimNeurons or type(op.neurons) is not StochasticSpiking:
        return None
    if set(op.state_extra) != {"rng"} or op.state or time is None:
        return None
    uniform = Signal(np.zeros(op.J.size), name=f"{op.output.name}.uniform")
    uniforms = SimProcess(NeuronUniforms(op), None, uniform, time, mode="set",
                          tag=f"{op.tag}.uniforms")
    spikes = SimNeurons(op.neurons, op.J, op.output, state={"uniform": uniform},
                        tag=f"{op.tag}.spikes")
    return Split(op, uniform, uniforms, spikes)


def split_signals(step_order, time):
    """``{operator: Split}`` for the operators that may split (``time``: the
    model's time signal); their drawn signals must be in the planner's layout."""
    if not ENABLED:
        return {}
    splits = {}
    for op in step_order:
        for make in (_filtered_noise, _stochastic_spiking):
            split = make(op, time)
            if split is not None:
                splits[op] = split
    return splits


def split(step_order, dg, splits, lowerable):
    """The step order and dependency graph with each operator of ``splits``
    whose two parts both have a kernel (``lowerable``) replaced by them, and
    the splits made.

    The consumer takes the operator's place in the graph (its predecessors and
    successors).  The source reads only the time: it follows the operators
    that write the time (the time update) and precedes the consumer, so it can
    join the step's other tables.
    """
    done = {op: s for op, s in splits.items()
            if op in dg and lowerable(s.source) and lowerable(s.consumer)}
    if not done:
        return step_order, dg, {}
    order = []
    for op in step_order:
        order.extend([done[op].source, done[op].consumer] if op in done else [op])
    new_dg = {}
    for op, succs in dg.items():
        if op in done:
            op = done[op].consumer
        hit = [s for s in succs if s in done]
        if hit:
            succs = (set(succs) - set(hit)) | {done[s].consumer for s in hit}
        new_dg[op] = succs
    times = {s.source.t.base for s in done.values()}
    writers = [op for op in dg if op not in done and _writes(op, times)]
    for op in writers:
        new_dg[op] = set(new_dg.get(op, ())) | {
            s.source for s in done.values() if _writes(op, {s.source.t.base})}
    for s in done.values():
        new_dg[s.source] = {s.consumer}
    return order, new_dg, done


def _writes(op, bases):
    """Whether ``op`` writes elements of one of ``bases``."""
    return any(s.base in bases for s in op.sets + op.incs + op.updates)
