"""Planner: from Nengo's operators to an ordered program of merged groups.

1. Order: Nengo's dependency graph (built and, with ``optimize``, merged by
   Nengo's own optimizer, exactly as ``nengo.Simulator`` does), and its
   topological step order, which also fixes the order of random seeds.
2. Schedule: groups of operators with the same lowering key, in an order
   that respects every dependency (`schedule`: greedy, few groups).  Operators
   in one group are independent, so they may run in any order.
3. Lower: each group becomes native instructions; operators without a kernel
   become callback instructions (`nengo_cuda.fallback.FallbackGroup`).
"""

from collections import Counter

from nengo.builder.processes import SimProcess
from nengo.utils.graphs import toposort
from nengo.utils.simulator import operator_dependency_graph

from . import deferral, fusion, optimizer, random_splits, splitting, zero_inputs
from .build_keys import BuildKeys
from .fallback import FallbackGroup
from .lowering import find_lowering
from .program import Instruction, Program


def order_operators(model, optimize):
    """Nengo's dependency graph, step order and `BuildKeys` (runs Nengo's
    optimizer if asked, with a faster transitive closure:
    `nengo_cuda.optimizer`)."""
    keys = BuildKeys(model.operators, model.sig)
    dg = operator_dependency_graph(model.operators)
    if optimize:
        keys.replace(optimizer.optimize(model, dg))
    step_order = [op for op in toposort(dg) if hasattr(op, "make_step")]
    return dg, step_order, keys


def schedule(dg, step_order, keys):
    """Groups ``[(key, ops)]`` in run order: each group holds operators with the
    same ``keys[op]`` whose predecessors in ``dg`` all ran in earlier groups.

    Greedy: of the operators ready to run, take a key whose group is final
    (every operator of the kind not ready yet depends on the ready ones, so
    waiting would not let it join: all of the kind ready is the usual case),
    then the largest share of its remaining operators ready, ties to the most
    ready, then to the earliest in ``step_order``.  (Preferring the share
    alone ran a population early that a later one, independent of it, could
    have joined: a kind with a final group was left waiting instead.)
    Earliest-stage grouping instead split a kind whenever its operators sat at
    different depths of the graph, and the depths change with the merges of
    Nengo's optimizer (set order): circular convolution got 1 or 2 LIF groups
    from one build to the next.

    Inputs come first whenever all of their kind are ready: the time update,
    then tables of processes (which read only the time).  On the GPU they then
    follow the previous step's filters and probes, small launches that share
    one launch as phases (csrc/cuda/phases.h), rather than sitting alone
    between the step's resets and copies.
    """
    position = {op: i for i, op in enumerate(step_order)}
    waiting = {op: 0 for op in step_order}  # unscheduled predecessors
    for op in step_order:
        for succ in dg.get(op, ()):
            if succ in waiting:
                waiting[succ] += 1
    remaining = Counter(keys[op] for op in step_order)
    ready = [op for op in step_order if waiting[op] == 0]
    done = set()
    groups = []

    def none_could_join(key, ops):
        """Whether every operator of ``key`` not ready yet depends on ``ops``
        (then waiting would not let any of them join this group)."""
        later = remaining[key] - len(ops)
        seen, stack = set(ops), list(ops)
        while stack and later:
            for succ in dg.get(stack.pop(), ()):
                if succ not in seen and succ in waiting and succ not in done:
                    seen.add(succ)
                    stack.append(succ)
                    later -= keys[succ] == key
        return later == 0

    while ready:
        by_key = {}
        for op in sorted(ready, key=position.__getitem__):
            by_key.setdefault(keys[op], []).append(op)
        key = max(by_key, key=lambda k: _rank(k, len(by_key[k]), remaining[k],
                                              none_could_join(k, by_key[k])))
        ops = by_key[key]
        groups.append((key, ops))
        remaining[key] -= len(ops)
        done.update(ops)
        ready = [op for op in ready if keys[op] != key]
        for op in ops:
            for succ in dg.get(op, ()):
                if succ in waiting:
                    waiting[succ] -= 1
                    if waiting[succ] == 0:
                        ready.append(succ)
    if sum(len(ops) for _, ops in groups) != len(step_order):
        raise CycleError("cycle in the operator graph")
    return groups


def _rank(key, ready, remaining, final):
    """`schedule`'s preference for ``key`` with ``ready`` of its ``remaining``
    operators ready: inputs whose kind is all ready (the time update, then
    process tables), then kinds whose group is ``final`` (no operator of the
    kind left out could join it by waiting), then the largest share ready,
    then the most ready."""
    share = ready / remaining
    is_input = {"time_update": 2, "process_table": 1}.get(key[0], 0)
    return (is_input if share == 1 else 0, final, share, ready)


def written_bases(ops):
    """Base signals that some operator sets, increments or updates."""
    return {s.base for op in ops for s in op.sets + op.incs + op.updates}


class Plan:
    """The program plus what the simulator needs to run and reset it."""

    def __init__(self, program, step_order, fallbacks, native_processes):
        self.program = program
        self.step_order = step_order
        self.fallbacks = fallbacks  # list of FallbackGroup
        self.native_processes = native_processes  # SimProcess ops lowered natively
        self.splits = {}  # operator -> its `random_splits.Split`

    def seed_sharers(self, op):
        """The planned operators that take ``op``'s random seed, besides ``op``
        (the white noise of a split FilteredNoise)."""
        split = self.splits.get(op)
        return () if split is None else split.seed_sharers

    def table_part(self, op):
        """The operator whose table holds ``op``'s random numbers (a split
        operator's source), else ``op``."""
        split = self.splits.get(op)
        return op if split is None else split.source

    def original(self, op):
        """The operator of the step order that planned operator ``op`` is a
        part of (a split operator's source's: the split operator)."""
        for original, split in self.splits.items():
            if split.source is op:
                return original
        return op

    def index_of(self, op):
        """Index of the instruction that writes ``op``'s output (a split
        operator's: its consumer's)."""
        split = self.splits.get(op)
        return self.program.index_of(op if split is None else split.consumer)


class CycleError(RuntimeError):
    """The operator graph given to `schedule` has a cycle."""


def plan(step_order, dg, layout, merge=True, isolate=(), fuse=None, keep=(), external=(),
         splits=None, fed=()):
    """Builds the `Plan` for ``step_order`` on ``layout``.

    Random operators in ``splits`` (`random_splits.split_signals`, whose
    drawn signals ``layout`` holds) run as tables and kernels; those in
    ``fed`` (which ``data=`` may replace: input Nodes' producers) get an
    instruction of their own for their kernel part, which a feed switches off.

    Increments by products with always-zero inputs are dropped first
    (`nengo_cuda.zero_inputs`, with `zero_inputs.ENABLED`), even without
    ``merge``.

    Parameters
    ----------
    merge : bool
        Merge operators into groups (False: one instruction each).
    isolate : collection of Operator
        Operators that get an instruction of their own (a callback when they
        have no kernel: TensorNodes, which run for all trials at once).
    fuse : bool, optional
        Fuse constant copies into the products that follow them, and resets
        into the convolutions that follow them (`nengo_cuda.fusion`; default
        `fusion.ENABLED`, never without ``merge``).
    keep : collection of Signal
        Base signals whose values must stay Nengo's between steps (probed
        signals): learning rules that write one keep their delta
        (`nengo_cuda.deferral`, applied with ``merge`` and `deferral.ENABLED`).
    external : collection of Signal
        Base signals written from outside the operators (input nodes' outputs,
        which ``data=`` feeds): never taken for always zero.
    """
    if fuse is None:
        fuse = fusion.ENABLED

    def lowerable(op):
        lowering = find_lowering(op)
        return lowering is not None and lowering.key(op, layout) is not None

    step_order, dg, done = random_splits.split(step_order, dg, splits or {}, lowerable)
    isolate = set(isolate) | {done[op].consumer for op in fed if op in done}
    result = _fused_plan(step_order, dg, layout, merge, isolate, fuse, keep, external,
                         lowerable)
    result.splits = done
    # split processes draw their seeds (in Nengo's order) for their parts
    result.native_processes.extend(op for op in done if isinstance(op, SimProcess))
    return result


def _fused_plan(step_order, dg, layout, merge, isolate, fuse, keep, external, lowerable):
    if zero_inputs.ENABLED:
        step_order, dg = zero_inputs.drop(step_order, dg, external)
    if merge and splitting.ENABLED:
        step_order, dg = splitting.split_elementwise(step_order, dg, lowerable)
    if merge and deferral.ENABLED:
        step_order, dg = deferral.defer(step_order, dg, lowerable, keep)
    if fuse and merge:
        copies = fusion.fusable_groups(step_order, dg, lowerable)
        convs = fusion.settable_convolutions(step_order, dg, lowerable)
        # on a cycle (not seen in practice) the copies alone, then no fusion
        for groups in [copies + convs] + ([copies] if convs and copies else []):
            if groups:
                try:
                    fused_order, fused_dg = fusion.fuse(step_order, dg, groups)
                    return _plan(fused_order, fused_dg, layout, merge, isolate)
                except CycleError:
                    pass
    return _plan(step_order, dg, layout, merge, isolate)


def _plan(step_order, dg, layout, merge, isolate):
    isolate = set(isolate)
    lowerings, keys = {}, {}
    for op in step_order:
        lowering = lowerings[op] = find_lowering(op)
        key = lowering.key(op, layout) if lowering is not None else None
        if key is None:
            key = ("callback", id(op)) if (op in isolate or not merge) else ("callback",)
        elif not merge or op in isolate:
            key = key + (id(op),)
        keys[op] = key

    program = Program()
    fallbacks, native_processes = [], []
    for key, ops in schedule(dg, step_order, keys):
        if key[0] == "callback":
            group = FallbackGroup(ops, before=layout.sync_time)
            fallbacks.append(group)
            program.append(Instruction("callback", ops, callback=group))
        else:
            program.extend(lowerings[ops[0]].lower(ops, layout))
            native_processes.extend(op for op in ops if isinstance(op, SimProcess))
    layout.__dict__.pop("_lowering_memo", None)  # see lowering.common.memoised
    return Plan(program, step_order, fallbacks, native_processes)
