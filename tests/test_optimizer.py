"""nengo_cuda.optimizer: Nengo's optimizer with a faster transitive closure
gives the same dependents (as sets) as Nengo's, and leaves Nengo as it was."""

import nengo
import nengo.builder.optimizer as nengo_optimizer
import numpy as np
import pytest
from nengo.utils.graphs import transitive_closure as nengos_closure
from nengo.utils.simulator import operator_dependency_graph

from nengo_cuda import optimizer


def random_dag(rng, n, p):
    """``n`` vertices, an edge i -> j (i < j) with probability ``p``, vertices
    named out of order so that no ordering of names is a topological one."""
    names = [f"v{k}" for k in rng.permutation(n)]
    edges = {v: set() for v in names}
    for i in range(n):
        for j in range(i + 1, n):
            if rng.rand() < p:
                edges[names[i]].add(names[j])
    return edges


def assert_same_closure(edges):
    ours, nengos = optimizer.transitive_closure(edges), nengos_closure(edges)
    assert ours.keys() == nengos.keys()
    for v in nengos:
        assert ours[v] == set(nengos[v]), v


@pytest.mark.parametrize("n, p", [(1, 0), (30, 0.0), (40, 0.05), (60, 0.3), (25, 1.0)])
def test_closure_of_random_dags_equals_nengos(n, p, rng):
    assert_same_closure(random_dag(rng, n, p))


def test_topological_order_puts_each_vertex_before_its_successors(rng):
    edges = random_dag(rng, 50, 0.1)
    edges["v0"] = edges["v0"] | {"only a successor"}
    order = optimizer.topological_order(edges)
    assert sorted(order) == sorted(set(edges) | {"only a successor"})
    position = {v: i for i, v in enumerate(order)}
    assert all(position[a] < position[b] for a, succ in edges.items() for b in succ)


def test_topological_order_of_a_cycle_raises_nengos_error():
    with pytest.raises(nengo.exceptions.BuildError, match="cycles"):
        optimizer.topological_order({"a": {"b"}, "b": {"a"}})


def test_closure_shares_equal_sets():
    closure = optimizer.transitive_closure({"a": {"c"}, "b": {"c"}, "c": set()})
    assert closure["a"] is closure["b"] and closure["c"] == frozenset()


def test_closure_of_each_optimizer_pass_equals_nengos(monkeypatch):
    """On a network's own dependency graph, at every pass of the optimizer."""
    with nengo.Network(seed=0) as net:
        ens = [nengo.Ensemble(20, 2) for _ in range(12)]
        stim = nengo.Node([0.1, 0.2])
        nengo.Connection(stim, ens[0])
        rng = np.random.RandomState(1)
        for i, pre in enumerate(ens):
            for j in rng.choice(len(ens), 2, replace=False):
                nengo.Connection(pre, ens[j], transform=rng.uniform(-1, 1, (2, 2)))
        nengo.Probe(ens[-1])
    model = nengo.builder.Model()
    model.build(net)
    passes, ours = [], optimizer.transitive_closure

    def checked(edges, topo_sorted=None):
        closure, nengos = ours(edges, topo_sorted), nengos_closure(edges)
        assert closure.keys() == nengos.keys()
        assert all(closure[v] == set(nengos[v]) for v in nengos)
        passes.append(len(edges))
        return closure

    monkeypatch.setattr(optimizer, "transitive_closure", checked)
    operators = len(model.operators)
    optimizer.optimize(model, operator_dependency_graph(model.operators))
    assert len(passes) > 1 and len(model.operators) < operators  # it merged


def test_optimize_puts_nengos_closure_back(monkeypatch):
    model = nengo.builder.Model()
    with nengo.Network() as net:
        nengo.Ensemble(5, 1)
    model.build(net)
    optimizer.optimize(model, operator_dependency_graph(model.operators))
    assert nengo_optimizer.transitive_closure is nengos_closure

    def fails(model, dg):
        raise RuntimeError("in the optimizer")

    monkeypatch.setattr(nengo_optimizer, "optimize", fails)
    with pytest.raises(RuntimeError, match="in the optimizer"):
        optimizer.optimize(model, {})
    assert nengo_optimizer.transitive_closure is nengos_closure
