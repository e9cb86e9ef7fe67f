"""Nengo's operator optimizer, run with a faster transitive closure.

`nengo.builder.optimizer.optimize` merges operators in passes; before each
pass it computes every operator's dependents (the transitive closure of the
dependency graph) with `nengo.utils.graphs.transitive_closure`, which keeps
each as a `FrozenOrderedSet` and hashes each one in Python to share equal
sets: most of the optimizer's time on large models (random network of 200
ensembles: 6.9 of 11 s).  The optimizer uses those sets only as sets
(membership, ``isdisjoint``, copies into sets, ``any``/``all`` over their
members), so built-in frozensets with the same members give it the same
answers and so the same merges; `optimize` runs Nengo's optimizer with
`transitive_closure` below in place of Nengo's, and puts Nengo's back after
(and records the merge pass, for its signal replacements).

Any topological order gives the same closure; `topological_order` finds one
with plain dicts (Nengo's `toposort`, with ordered sets, took 2.1 of the
closures' 3.1 s at 400 ensembles).

One merge Nengo's optimizer makes is wrong, and `optimize` refuses it:
Nengo's `SigMerger.check_views` takes views as sequential when each starts
where the previous one's bytes end (``offset + nbytes``), but the merged view
has the first view's strides, so along the axis view ``k`` lies at ``offset +
(rows before it) * stride``.  The two differ for strided views: ``x[0:1:2]``
and ``x[1:2:2]`` pass Nengo's check, and their merge is ``x[0:3:2]``
(elements 0 and 2, not 0 and 1): Nengo's own simulator then writes the wrong
elements or, where the merged view overruns its base, crashes with NumPy's
"strides is incompatible" ValueError (`sequential_views` refuses both).

And one merge is right for Nengo's simulator but not for training: Nengo
merges distinct 0-d signals of equal value into one, e.g. the weights of two
connections with ``transform=1`` (their `ElementwiseInc` ops merge).  Both
connections then hold one signal, which training would train as one shared
weight (the sum of both gradients), where NengoDL trains each connection's
own; `separate_scalars` refuses it (our planner groups the ops anyway).
"""

import threading

import nengo.builder.optimizer as nengo_optimizer
from nengo.builder.operator import Copy, DotInc
from nengo.utils.graphs import toposort

_patch = threading.Lock()  # one optimize at a time swaps the functions
nengos_pass = nengo_optimizer.OpMergePass
nengos_check_views = nengo_optimizer.SigMerger.check_views
nengos_check_signals = nengo_optimizer.SigMerger.check_signals


def transitive_closure(edges, topo_sorted=None):
    """``{a: frozenset of every vertex reachable from a}`` for a DAG
    ``{a: {b, c}}`` (``b``, ``c`` depend on ``a``); equal sets are one object,
    as in Nengo's version."""
    if topo_sorted is None:
        topo_sorted = topological_order(edges)
    shared, reachable = {}, {}
    for vertex in reversed(topo_sorted):
        successors = edges.get(vertex, ())
        found = set(successors)
        for succ in successors:
            found |= reachable[succ]
        found = frozenset(found)
        reachable[vertex] = shared.setdefault(found, found)
    return reachable


def topological_order(edges):
    """The vertices of a DAG ``{a: {b, c}}`` (and those only named as
    successors), each before its successors (Kahn's algorithm); Nengo's
    `toposort` (and its error) for a graph with a cycle."""
    indegree = dict.fromkeys(edges, 0)
    for successors in edges.values():
        for succ in successors:
            indegree[succ] = indegree.get(succ, 0) + 1
    ready = [v for v, n in indegree.items() if n == 0]
    order = []
    while ready:
        vertex = ready.pop()
        order.append(vertex)
        for succ in edges.get(vertex, ()):
            indegree[succ] -= 1
            if indegree[succ] == 0:
                ready.append(succ)
    return order if len(order) == len(indegree) else toposort(edges)


def sequential_views(signals, axis=0):
    """Nengo's `SigMerger.check_views` (a ValueError when ``signals`` can't be
    merged along ``axis``), and also one when a view does not start where the
    merged view (the first view's strides) puts its first element (see the
    module)."""
    nengos_check_views(signals, axis=axis)
    if signals[0].ndim <= axis:
        return
    stride = signals[0].strides[axis]
    start = signals[0].offset
    for s in signals:
        if s.offset != start:
            raise ValueError("Strided views are not sequential along the merged axis.")
        start += s.shape[axis] * stride


def separate_scalars(signals, axis=0):
    """Nengo's `SigMerger.check_signals`, and also a ValueError for two or
    more 0-d signals (each may be a parameter of its own; see the module)."""
    nengos_check_signals(signals, axis=axis)
    if len(signals) > 1 and signals[0].ndim == 0:
        raise ValueError("0-d signals are kept apart (each may be a trained parameter).")


def never_merges(op):
    """Whether no merge of ``op`` can pass: a `Copy` with indices (Nengo's
    `CopyMerger` refuses them), or an op with a 0-d signal (not a view) that
    its merger would merge, which `separate_scalars` refuses (every Nengo
    merger merges all of an op's signals, except a `DotInc`'s X, which ops
    that share it keep).

    Such ops leave the optimizer's candidates at once: left in, each is
    compared with every op of its kind in every pass, and found unmergeable
    each time.  N connections with ``transform=0.5`` between index lists of
    two Nodes took a quadratic 10 s to build for N = 400: their indexed copies
    were compared pairwise (Nengo too compares them so, when no other merge
    of the pass marks them first; in Nengo's build the connections' scalar
    weights merged, which marked them)."""
    if isinstance(op, Copy) and (op.src_slice is not None or op.dst_slice is not None):
        return True
    signals = (op.A, op.Y) if isinstance(op, DotInc) else op.all_signals
    return any(s.ndim == 0 and not s.is_view for s in signals)


def optimize(model, dg):
    """``nengo.builder.optimizer.optimize(model, dg)``, with `transitive_closure`;
    returns the optimizer's signal replacements (``{signal: its replacement}``,
    a replacement may be replaced again), which Nengo keeps to itself."""
    passes = []

    class RecordedPass(nengos_pass):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.might_merge.difference_update([op for op in self.might_merge if never_merges(op)])
            passes.append(self)

    with _patch:
        nengos_closure = nengo_optimizer.transitive_closure
        nengo_optimizer.transitive_closure = transitive_closure
        nengo_optimizer.OpMergePass = RecordedPass
        nengo_optimizer.SigMerger.check_views = staticmethod(sequential_views)
        nengo_optimizer.SigMerger.check_signals = staticmethod(separate_scalars)
        try:
            nengo_optimizer.optimize(model, dg)
        finally:
            nengo_optimizer.transitive_closure = nengos_closure
            nengo_optimizer.OpMergePass = nengos_pass
            nengo_optimizer.SigMerger.check_views = staticmethod(nengos_check_views)
            nengo_optimizer.SigMerger.check_signals = staticmethod(nengos_check_signals)
    replacements = {}
    for merge_pass in passes:
        replacements.update(merge_pass.sig_replacements)
    return replacements
