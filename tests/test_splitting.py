"""Splitting: merged element-wise operators cut off the false paths they make."""

import importlib.util
from pathlib import Path

import nengo
import numpy as np
import pytest
from nengo.builder.neurons import SimNeurons
from nengo.builder.operator import Copy, ElementwiseInc
from nengo.builder.signal import Signal
from nengo.utils.simulator import operator_dependency_graph

import nengo_cuda
from nengo_cuda import splitting

# benchmarks/networks.py, under a name of its own (tests/networks.py is another module)
_spec = importlib.util.spec_from_file_location(
    "bench_networks", Path(__file__).resolve().parents[1] / "benchmarks" / "networks.py")
networks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(networks)


def lif(name):
    """A LIF population's operator on new signals (J, output, voltage, refractory time)."""
    sig = {k: Signal(np.zeros(4), name=f"{name}.{k}") for k in ("J", "out", "v", "ref")}
    op = SimNeurons(nengo.LIF(), sig["J"], sig["out"],
                    state={"voltage": sig["v"], "refractory_time": sig["ref"]})
    return op, sig


@pytest.mark.parametrize("merged_kind", ["copy", "elementwise_inc"])
def test_a_merged_operator_no_longer_orders_independent_populations(merged_kind):
    """Population A's output and population B's input pass through one merged
    operator (Nengo's optimizer merges by set order; circular convolution's
    input and output nodes): B then waits for A.  Cut, each piece follows only
    its own population."""
    lif_a, a = lif("a")
    lif_b, b = lif("b")
    src, dst = Signal(np.zeros(8), name="src"), Signal(np.zeros(8), name="dst")
    const = Signal(np.ones(4), name="const", readonly=True)
    if merged_kind == "copy":
        merged = Copy(src, dst)
    else:
        merged = ElementwiseInc(Signal(np.array(0.5), name="w", readonly=True), src, dst)
    ops = [
        Copy(const, a["J"]),             # A's input: a constant
        lif_a,
        Copy(a["out"], src[4:8]),        # A's output into the merged part 2
        Copy(const, src[0:4]),           # the merged part 1's input: no path from A
        merged,
        Copy(dst[0:4], b["J"]),          # part 1 feeds B
        lif_b,
    ]
    if merged_kind == "elementwise_inc":
        ops.insert(4, Copy(Signal(np.zeros(8), name="zero", readonly=True), dst))
    dg = operator_dependency_graph(ops)
    assert lif_b in reachable(dg, lif_a)
    order, split_dg = splitting.split_elementwise(ops, dg)
    assert lif_b not in reachable(split_dg, lif_a)
    assert lif_a not in reachable(split_dg, lif_b)
    pieces = [op for op in order if op not in ops]
    assert merged not in order and [type(p) for p in pieces] == [type(merged)] * 2
    assert [(p.sets + p.incs)[0].size for p in pieces] == [4, 4]
    assert lif_b in reachable(split_dg, pieces[0]) and lif_a not in reachable(split_dg, pieces[1])
    # operators that would run as callbacks (Nengo's own) stay whole
    assert splitting.split_elementwise(ops, dg, lowerable=lambda op: False) == (ops, dg)


def reachable(dg, start):
    seen, stack = set(), [start]
    while stack:
        for succ in dg.get(stack.pop(), ()):
            if succ not in seen:
                seen.add(succ)
                stack.append(succ)
    return seen


@pytest.mark.parametrize("name, params", [
    ("circconv", {"dimensions": 8}),
    ("basal_ganglia", {"dimensions": 4}),
    ("integrator", {"dimensions": 4}),
    ("pes", {}),
])
def test_split_graph_keeps_every_dependency(name, params):
    """Every ordering Nengo's rules demand between the operators after
    splitting (`operator_dependency_graph` of them) follows from the split
    graph; and the networks with merged copies on a path do get cut."""
    net = networks.build(name, **params).net
    with nengo_cuda.Simulator(net, progress_bar=False) as sim:
        order, dg = splitting.split_elementwise(sim.step_order, sim.dg)
    if name in ("circconv", "basal_ganglia"):
        assert len(order) > len(sim.step_order)
    required = operator_dependency_graph(order)
    for op, succs in required.items():
        missing = set(succs) - reachable(dg, op)
        assert not missing, f"{op} must precede {missing}"


@pytest.mark.parametrize("name, params", [
    ("circconv", {"dimensions": 8}),
    ("basal_ganglia", {"dimensions": 4}),
])
def test_split_plans_give_nengos_results(name, params, monkeypatch):
    bench = networks.build(name, **params)
    with nengo.Simulator(bench.net, progress_bar=False) as ref:
        ref.run_steps(200)
    for enabled in (True, False):
        monkeypatch.setattr(splitting, "ENABLED", enabled)
        with nengo_cuda.Simulator(bench.net, dtype="float64", progress_bar=False) as sim:
            sim.run_steps(200)
        np.testing.assert_allclose(sim.data[bench.probe], ref.data[bench.probe],
                                   rtol=1e-9, atol=1e-12)


def test_circular_convolution_runs_one_lif_group():
    """The variance this removes: circular convolution got one LIF instruction
    or two from one build to the next; now one, build after build."""
    for _ in range(6):
        net = networks.build("circconv", dimensions=8).net
        with nengo_cuda.Simulator(net, progress_bar=False) as sim:
            assert sim.program.summary()["neurons_lif"][0] == 1
