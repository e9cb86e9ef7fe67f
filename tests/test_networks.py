"""Whole networks against nengo.Simulator (the oracle), in both dtypes and batched."""

import nengo
import numpy as np
import pytest

import nengo_cuda
from networks import NETWORKS

# float32 vs Nengo's float64 (see docs/precision.md): rounding is ~1e-7, but a
# spiking neuron whose voltage lands within rounding of threshold may spike one
# step earlier or later.  Each such spike moves a filtered decoded output by
# about decoder/tau (a few 1e-3 here) and an integrator keeps it; measured worst
# case over these networks is 0.0101 (integrator, 1 s), so we allow 0.03.
FLOAT32_ATOL = 0.03


def _reference(net, probes, t=1.0):
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run(t)
        return [ref.data[p] for p in probes]


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_float64_matches_nengo(name):
    net, probes = NETWORKS[name]()
    expected = _reference(net, probes)
    with nengo_cuda.Simulator(net, dtype="float64", progress_bar=False) as sim:
        sim.run(1.0)
        for p, e in zip(probes, expected):
            assert sim.data[p].shape == e.shape
            np.testing.assert_allclose(sim.data[p], e, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_float32_close_to_nengo(name):
    net, probes = NETWORKS[name]()
    expected = _reference(net, probes)
    with nengo_cuda.Simulator(net, progress_bar=False) as sim:
        assert sim.dtype == np.float32  # the default, as in NengoDL
        sim.run(1.0)
        for p, e in zip(probes, expected):
            if p.attr in ("output", "decoded_output") and p.synapse is not None:
                np.testing.assert_allclose(sim.data[p], e, atol=FLOAT32_ATOL)
            # spikes and voltages may diverge after a single flipped spike; the
            # decoded outputs above are the meaningful comparison


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_merged_equals_unmerged(dtype):
    """Merging operators into groups changes nothing but speed."""
    from nengo_cuda.planner import plan

    net, probes = NETWORKS["slices"]()
    results = []
    for merge in (True, False):
        with nengo_cuda.Simulator(net, dtype=dtype, progress_bar=False) as sim:
            sim._plan = plan(sim.step_order, sim.dg, sim.layout, merge=merge)
            sim.backend = type(sim.backend)(sim._plan.program, sim.layout, sim.dt)
            sim.reset()
            sim.run(0.3)
            results.append([sim.data[p].copy() for p in probes])
            n_instr = len(sim.program)
        if merge:
            merged_count = n_instr
    assert merged_count < n_instr
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-5 if dtype == "float32" else 1e-12,
                                   atol=1e-5 if dtype == "float32" else 1e-12)


def test_minibatch_trials_are_independent():
    """Each trial of a minibatch equals a single-trial run with that trial's input."""
    net, (inpt_p, outpt_p) = NETWORKS["tutorial"]()
    n_steps, k = 300, 3
    ramps = np.linspace(0.5, 1, k)[:, None, None] * np.linspace(-1, 1, n_steps)[None, :, None]
    with nengo_cuda.Simulator(net, minibatch_size=k, dtype="float64", progress_bar=False) as sim:
        sim.run_steps(n_steps, data={net.inpt: ramps})
        batched = sim.data[outpt_p]
        assert batched.shape == (k, n_steps, 1)
        np.testing.assert_array_equal(sim.data[inpt_p], ramps)
    for i in range(k):
        with nengo_cuda.Simulator(net, dtype="float64", progress_bar=False) as sim:
            sim.run_steps(n_steps, data={net.inpt: ramps[i : i + 1]})
            np.testing.assert_allclose(batched[i], sim.data[outpt_p], rtol=1e-12, atol=1e-12)


def test_minibatch_processes_differ_between_trials():
    net, (inpt_p, outpt_p) = NETWORKS["tutorial"]()
    expected = _reference(net, [inpt_p, outpt_p], t=0.5)
    with nengo_cuda.Simulator(net, minibatch_size=3, dtype="float64", progress_bar=False) as sim:
        sim.run(0.5)
        x = sim.data[inpt_p]
    assert x.shape == (3, 500, 1)
    # trial 0 uses the simulator's seed, exactly like nengo.Simulator
    np.testing.assert_allclose(x[0], expected[0], atol=1e-12)
    assert not np.allclose(x[0], x[1]) and not np.allclose(x[1], x[2])


def test_data_replaces_constant_and_process_nodes():
    with nengo.Network(seed=4) as net:
        const = nengo.Node([0.5])
        noisy = nengo.Node(nengo.processes.WhiteNoise())
        out = nengo.Node(size_in=2)
        nengo.Connection(const, out[0], synapse=None)
        nengo.Connection(noisy, out[1], synapse=None)
        p = nengo.Probe(out)
    values = np.random.RandomState(0).randn(2, 20, 1)
    with nengo_cuda.Simulator(net, minibatch_size=2, dtype="float64", progress_bar=False) as sim:
        sim.run_steps(20, data={const: values, noisy: -values})
        np.testing.assert_array_equal(sim.data[p][..., 0], values[..., 0])
        np.testing.assert_array_equal(sim.data[p][..., 1], -values[..., 0])
        # without data, the Nodes produce their own output again
        sim.run_steps(5)
        np.testing.assert_array_equal(sim.data[p][:, 20:, 0], 0.5)
        assert np.all(sim.data[p][:, 20:, 1] != 0)
