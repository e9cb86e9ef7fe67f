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
"""

import threading

import nengo.builder.optimizer as nengo_optimizer
from nengo.utils.graphs import toposort

_patch = threading.Lock()  # one optimize at a time swaps the functions
nengos_pass = nengo_optimizer.OpMergePass


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


def optimize(model, dg):
    """``nengo.builder.optimizer.optimize(model, dg)``, with `transitive_closure`;
    returns the optimizer's signal replacements (``{signal: its replacement}``,
    a replacement may be replaced again), which Nengo keeps to itself."""
    passes = []

    class RecordedPass(nengos_pass):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            passes.append(self)

    with _patch:
        nengos_closure = nengo_optimizer.transitive_closure
        nengo_optimizer.transitive_closure = transitive_closure
        nengo_optimizer.OpMergePass = RecordedPass
        try:
            nengo_optimizer.optimize(model, dg)
        finally:
            nengo_optimizer.transitive_closure = nengos_closure
            nengo_optimizer.OpMergePass = nengos_pass
    replacements = {}
    for merge_pass in passes:
        replacements.update(merge_pass.sig_replacements)
    return replacements
