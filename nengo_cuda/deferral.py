"""Deferral: a learning rule's weight change computed where Nengo adds it to
the weights, so that it is never stored.

Nengo builds a learning rule as two operators: the rule (`SimPES`, `SimBCM`,
...) sets ``delta``, a matrix of the weights' shape, from a few vectors, and ``Copy(delta, weights, inc=True)`` adds delta to the weights in
the next step, before anything reads them.  So every step writes and reads a
matrix as large as the weights for a change made of vectors (PES with 1000
neurons and 16 dimensions: 16,000 values written and read for 1,016).

Deferred, the rule's place copies the vectors the rule reads (the presynaptic
vector, the per-row vectors) into the first elements of delta, which nothing
else reads, and the copy's place runs the rule's kernel on the saved vectors,
adding each element of the change to the weights (``learning_*`` with
``inc``: ``w += d``, ``d`` rounded to the dtype first, as Nengo's delta is).
The arithmetic is Nengo's, in Nengo's order.  Only PES and BCM, whose change
does not read the weights: Oja and Voja read the weights they change, which
at the copy's place need not be what the rule read a step earlier (a state
restored with the learned weights kept, as ``stateful=False`` runs and
``predict`` do, or parameters loaded between two runs: Nengo's delta then
holds the change made from the weights before).

A rule is deferred when the writers of its delta's base are rules with
kernels, the base's readers are ``Copy(..., inc=True)`` operators that add
whole rows of it to the same rows of a destination of its shape, nothing
probes it (``keep``), and the delta is C-contiguous with room for the saved
vectors (rows x cols >= cols + rows per row vector: PES with one output
dimension has none).  A copy then adds the rows of rules not deferred and runs
the deferred rules' changes.  A deferred delta holds the saved vectors, not
Nengo's delta.

Only the planner sees the new operators; the simulator's step order (random
seeds, training, reset) keeps Nengo's operators.
"""

import copy as copy_module

from nengo.builder.learning_rules import SimBCM, SimOja, SimPES, SimVoja
from nengo.builder.operator import Copy, Operator
from nengo.exceptions import SignalError

from .rewrite import copies_outside, replace_operators
from .views import leading, run

# Planner default; tests and benchmarks turn it off to compare.
ENABLED = True

# What each rule reads: (presynaptic vector, per-row vectors), as operator
# attributes.
SAVED = {
    SimPES: ("pre_filtered", ("error",)),
    SimBCM: ("pre_filtered", ("post_filtered", "theta")),
}
# Rules whose deltas Nengo's optimizer may merge with those of SAVED's (the
# others' rows of a merged delta are copied as before)
_RULES = (SimPES, SimBCM, SimOja, SimVoja)


class DeferredDelta(Operator):
    """``dst += delta``, with delta computed by ``rule`` from the vectors it
    saved one step earlier (see the module's docstring).

    Attributes
    ----------
    rule : SimPES or SimBCM
        The rule reading the saved vectors, with ``dst`` for its ``delta``.
    dst : Signal
        The rows of the weights that the rule changes.
    delta : Signal
        Nengo's delta, which holds the saved vectors instead.
    """

    def __init__(self, rule, dst, delta, tag=None):
        super().__init__(tag=tag)
        self.rule, self.dst, self.delta = rule, dst, delta
        self.sets, self.incs, self.updates = [], [dst], []
        self.reads = [s for s in rule.reads if s is not dst]

    def make_step(self, signals, dt, rng):  # only the native kernels run it
        raise NotImplementedError("DeferredDelta runs only as a native learning kernel")


def _is_delta_copy(op):
    """``Copy(src, dst, inc=True)`` of a 2-D signal into one of its shape."""
    return (type(op) is Copy and op.inc and op.src_slice is None and op.dst_slice is None
            and op.src.ndim == 2 and op.dst.shape == op.src.shape and op.src.size > 0)


def _rows_in(copy, delta):
    """(first, end) rows of ``copy.src`` that ``delta`` is, or None."""
    src = copy.src
    if (delta.elemstrides != src.elemstrides or delta.shape[1] != src.shape[1]
            or src.elemstrides[0] <= 0):
        return None
    first, rest = divmod(delta.elemoffset - src.elemoffset, src.elemstrides[0])
    if rest or first < 0 or first + delta.shape[0] > src.shape[0]:
        return None
    return first, first + delta.shape[0]


def _slots(rule):
    """(signal, slot) pairs: each vector ``rule`` reads and the run of its
    delta's first elements that holds it; None when delta has no room."""
    pre, per_row = SAVED[type(rule)]
    names = (pre,) + per_row
    delta = rule.delta
    try:
        flat = delta.reshape(delta.size)
    except SignalError:  # not contiguous
        return None
    pairs, start = [], 0
    for sig in dict.fromkeys(getattr(rule, name) for name in names):  # each signal once
        if sig.ndim != 1 or start + sig.size > delta.size:
            return None
        pairs.append((sig, run(flat, start, start + sig.size)))
        start += sig.size
    return pairs


def _rebound(rule, mapping):
    """A copy of ``rule`` whose signals ``mapping`` (id -> signal) replaces."""
    new = copy_module.copy(rule)
    for attr in ("sets", "incs", "reads", "updates"):
        setattr(new, attr, [mapping.get(id(s), s) for s in getattr(rule, attr)])
    return new


def _defer_rule(rule, copy, rows, lowerable):
    """(save copies, `DeferredDelta`) for ``rule``, whose delta is ``rows`` of
    ``copy.src``, or None when it cannot be deferred."""
    if not lowerable(rule):
        return None
    dst = leading(copy.dst, *rows)
    slots = _slots(rule)
    if slots is None or not all(sig.size for sig, _ in slots):
        return None
    mapping = {id(sig): slot for sig, slot in slots}
    mapping[id(rule.delta)] = dst
    tag = rule.tag or type(rule).__name__
    saves = [Copy(sig, slot, tag=f"{tag}: save {sig.name}") for sig, slot in slots]
    apply = DeferredDelta(_rebound(rule, mapping), dst, rule.delta,
                          tag=f"{tag}: deferred delta")
    if not (lowerable(apply) and all(lowerable(save) for save in saves)):
        return None
    return saves, apply


def _defer_base(rules, copies, lowerable):
    """Replacements {old operator: new operators} for the rules writing one
    delta base and the copies reading it: each rule that can be deferred is,
    and each copy becomes copies of the other rules' rows and the deferred
    rules' `DeferredDelta` operators."""
    if not copies or not all(_is_delta_copy(c) for c in copies):
        return {}
    new_ops, applies = {}, {copy: [] for copy in copies}
    for rule in rules:
        if type(rule) not in SAVED:
            continue
        found = [(c, rows) for c in copies for rows in [_rows_in(c, rule.delta)] if rows]
        deferred = _defer_rule(rule, *found[0], lowerable) if len(found) == 1 else None
        if deferred is not None:
            new_ops[rule], apply = deferred
            applies[found[0][0]].append((found[0][1], apply))
    for copy, done in applies.items():
        if done:
            new_ops[copy] = copies_outside(copy, [rows for rows, _ in done]) + [
                apply for _, apply in done]
    return new_ops


def defer(step_order, dg, lowerable, keep=()):
    """The step order and dependency graph with every deferrable rule replaced
    by copies that save its vectors, and its delta's copy by `DeferredDelta`
    operators (each at the replaced operator's place, with its dependencies).

    ``lowerable(op)``: whether ``op`` has a native kernel; ``keep``: base
    signals whose values must stay Nengo's (probed signals).
    """
    if not any(type(op) in SAVED for op in step_order):
        return step_order, dg
    kept = {id(base) for base in keep}
    writers, readers = {}, {}  # id(base) -> {operator: None}, in step order
    for op in step_order:
        for sig in op.sets + op.incs + op.updates:
            writers.setdefault(id(sig.base), {})[op] = None
        for sig in op.reads:
            readers.setdefault(id(sig.base), {})[op] = None
    new_ops = {}
    for base_id, ops in writers.items():
        rules = list(ops)
        if base_id in kept or not all(
                isinstance(r, _RULES) and r.sets == [] and r.incs == []
                and len(r.updates) == 1 and id(r.delta.base) == base_id for r in rules):
            continue
        new_ops.update(_defer_base(rules, list(readers.get(base_id, ())), lowerable))
    return replace_operators(step_order, dg, new_ops)
