"""nengo_cuda.optimizer: Nengo's optimizer with a faster transitive closure
gives the same dependents (as sets) as Nengo's, and leaves Nengo as it was;
it does not merge strided views out of place (a Nengo bug), nor distinct
scalar weights into one signal (a parameter each, for training)."""

import nengo
import nengo.builder.optimizer as nengo_optimizer
import numpy as np
import pytest
from nengo.utils.graphs import transitive_closure as nengos_closure
from nengo.utils.simulator import operator_dependency_graph

import nengo_cuda
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
    nengos_check_views = nengo_optimizer.SigMerger.check_views
    optimizer.optimize(model, operator_dependency_graph(model.operators))
    assert nengo_optimizer.transitive_closure is nengos_closure
    assert nengo_optimizer.SigMerger.check_views is nengos_check_views

    def fails(model, dg):
        raise RuntimeError("in the optimizer")

    monkeypatch.setattr(nengo_optimizer, "optimize", fails)
    with pytest.raises(RuntimeError, match="in the optimizer"):
        optimizer.optimize(model, {})
    assert nengo_optimizer.transitive_closure is nengos_closure
    assert nengo_optimizer.SigMerger.check_views is nengos_check_views


def test_sequential_views_refuses_strided_views_out_of_place():
    """Views pass when the merged view (the first's strides) holds each at its
    place; Nengo's check passes some that it does not (``offset + nbytes``)."""
    x = nengo.builder.Signal(np.zeros(4), name="x")
    m = nengo.builder.Signal(np.zeros((2, 4)), name="m")
    fine = [[x[0:2], x[2:3]], [m[0:1], m[1:2]]]
    wrong = [[x[0:1:2], x[1:2:2]], [x[1:2:2], x[2:3:2]], [m[0:1, 0:2], m[0:1, 2:4]]]
    for views in fine:
        optimizer.sequential_views(views)
    for views in wrong:
        nengo_optimizer.SigMerger.check_views(views)  # Nengo's: passes
        with pytest.raises(ValueError, match="not sequential"):
            optimizer.sequential_views(views)
    for views in [[x[0:1], x[2:3]], [x[0:1:2], x[2:3:2]]]:  # Nengo's own refusals
        with pytest.raises(ValueError, match="not sequential"):
            optimizer.sequential_views(views)


def _random_slice(rng, size):
    if rng.rand() < 0.3:
        return list(rng.randint(-size, size, rng.randint(1, 4)))
    step = int(rng.choice([1, 2, 3, -1, -2]))
    start = int(rng.randint(0, size))
    stop = int(rng.randint(start + 1, size + 1)) if step > 0 else None
    return slice(start, stop, step)


def _sliced_copies(rng, n_connections):
    """A Node fed by sliced, scaled copies of another (no synapse): its
    values are exact, so any merge out of place shows."""
    with nengo.Network(seed=0) as net:
        src = nengo.Node(rng.uniform(-1, 1, rng.randint(1, 6)))
        dst = nengo.Node(size_in=int(rng.randint(2, 7)))
        for _ in range(n_connections):
            pre = src[_random_slice(rng, src.size_out)]
            post = dst[_random_slice(rng, dst.size_in)]
            if pre.size_out != post.size_in:
                continue
            nengo.Connection(pre, post, synapse=None, transform=float(rng.choice([1, -0.5])))
        probe = nengo.Probe(dst)
    return net, probe


def _probed(sim_cls, net, probe, **kwargs):
    with sim_cls(net, progress_bar=False, **kwargs) as sim:
        sim.run_steps(2)
        return sim.data[probe]


@pytest.mark.parametrize("size", [2, 4])
def test_strided_views_merge_in_place(size):
    """``dst[0:1:2]`` and ``dst[1:2:2]``: Nengo's optimizer merges them to
    ``dst[0:3:2]`` (size 4: the wrong elements; size 2: a crash); ours keeps
    them apart and equals Nengo without its optimizer."""
    with nengo.Network(seed=0) as net:
        src = nengo.Node([1.0, 2.0])
        dst = nengo.Node(size_in=size)
        nengo.Connection(src[0], dst[0:1:2], synapse=None)
        nengo.Connection(src[1], dst[1:2:2], synapse=None)
        probe = nengo.Probe(dst)
    expected = _probed(nengo.Simulator, net, probe, optimize=False)
    assert np.array_equal(expected[-1, :2], [1, 2])
    assert np.array_equal(_probed(nengo_cuda.Simulator, net, probe, optimize=True), expected)


def test_equal_scalar_weights_stay_separate_signals():
    """Two connections with ``transform=1``: Nengo's optimizer merges their
    0-d weights into one signal; ours keeps each its own (training trains
    each), and the simulation still equals Nengo's."""
    with nengo.Network(seed=0) as net:
        a, b = nengo.Node([1.0, 2.0]), nengo.Node([3.0, 4.0])
        c = nengo.Node(size_in=4)
        ca = nengo.Connection(a, c[:2], transform=1, synapse=None)
        cb = nengo.Connection(b, c[2:], transform=1, synapse=None)
        probe = nengo.Probe(c)
    with nengo.Simulator(net, progress_bar=False) as ref:
        assert ref.model.sig[ca]["weights"] is ref.model.sig[cb]["weights"]  # Nengo's merge
        ref.run_steps(2)
    with nengo_cuda.Simulator(net, progress_bar=False, dtype="float64") as sim:
        assert sim.model.sig[ca]["weights"] is not sim.model.sig[cb]["weights"]
        sim.run_steps(2)
        assert np.array_equal(sim.data[probe], ref.data[probe])
    assert nengo_optimizer.SigMerger.check_signals is optimizer.nengos_check_signals


def test_random_sliced_copies_equal_nengo_without_its_optimizer(rng):
    for _ in range(40):
        net, probe = _sliced_copies(rng, int(rng.randint(2, 8)))
        expected = _probed(nengo.Simulator, net, probe, optimize=False)
        ours = _probed(nengo_cuda.Simulator, net, probe, optimize=True, dtype="float64")
        np.testing.assert_allclose(ours, expected, rtol=1e-15, atol=1e-15)


def _indexed_connections(n_connections):
    """Connections between index lists of two Nodes (indexed copies, which
    never merge) with equal scalar weights (which we keep apart)."""
    rng = np.random.RandomState(0)
    with nengo.Network(seed=0) as net:
        a, b = nengo.Node(np.arange(100.0)), nengo.Node(size_in=100)
        for _ in range(n_connections):
            nengo.Connection(a[rng.permutation(100)[:5]], b[rng.permutation(100)[:5]],
                             synapse=None, transform=0.5)
        probe = nengo.Probe(b)
    return net, probe


def _merge_checks(monkeypatch, net, **kwargs):
    """(operators after the optimizer by kind, ``is_mergeable`` calls made)."""
    calls = []
    checked = nengo_optimizer.OpMerger.is_mergeable.__func__
    monkeypatch.setattr(nengo_optimizer.OpMerger, "is_mergeable", classmethod(
        lambda cls, op, tomerge: calls.append(op) or checked(cls, op, tomerge)))
    with nengo_cuda.Simulator(net, progress_bar=False, dtype="float64", **kwargs) as sim:
        kinds = sorted(type(op).__name__ for op in sim.model.operators)
    monkeypatch.undo()
    return kinds, len(calls)


def test_ops_that_never_merge_are_not_compared(monkeypatch):
    """Indexed copies and ops with our separate 0-d weights are no merge
    candidates (each was compared with every other in every pass: quadratic,
    10 s for 400 connections); the optimizer's result is the same."""
    net, probe = _indexed_connections(60)
    kinds, n_checks = _merge_checks(monkeypatch, net)
    monkeypatch.setattr(optimizer, "never_merges", lambda op: False)
    kinds_compared, n_compared = _merge_checks(monkeypatch, net)
    assert kinds == kinds_compared
    assert n_checks < 5 * 60 < 20 * 60 < n_compared
    expected = _probed(nengo.Simulator, net, probe)
    np.testing.assert_array_equal(_probed(nengo_cuda.Simulator, net, probe, dtype="float64"),
                                  expected)
