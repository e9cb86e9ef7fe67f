"""Lifecycle and long runs: memory stays flat, close() frees, runs join, reset is exact."""

import gc
import os
import pickle
import subprocess
import sys
import textwrap
import warnings
import weakref

import nengo
import numpy as np
import pytest
from nengo.builder import Model

import nengo_cuda

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
# Under `make sanitize`, ASan's allocator (quarantine, shadow memory) sets the
# memory use: the tests run, but their memory bounds are not asserted.
SANITIZED = bool(os.environ.get("NC_SANITIZED"))


def rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def tiny_network():
    """All native but one Node function (a callback)."""
    with nengo.Network(seed=0) as net:
        u = nengo.Node([0.5])
        f = nengo.Node(lambda t: t)
        x = nengo.Node(size_in=2)
        nengo.Connection(u, x[0], synapse=None)
        nengo.Connection(f, x[1], synapse=None)
        probe = nengo.Probe(x)
    return net, probe


def stateful_network():
    """Filters, spiking neurons, learning, a process: state everywhere."""
    with nengo.Network(seed=3) as net:
        stim = nengo.Node(nengo.processes.WhiteSignal(1, 5, rms=0.5))
        a = nengo.Ensemble(30, 1)
        b = nengo.Ensemble(20, 1, neuron_type=nengo.LIFRate())
        nengo.Connection(stim, a)
        conn = nengo.Connection(a, b, learning_rule_type=nengo.PES(1e-3))
        nengo.Connection(b, conn.learning_rule, synapse=0.01)
        nengo.Connection(stim, conn.learning_rule, transform=-1, synapse=0.01)
        probes = [
            nengo.Probe(b, synapse=0.01),
            nengo.Probe(a.neurons, "voltage", sample_every=0.003),
            nengo.Probe(conn, "weights", sample_every=0.01),
        ]
    return net, probes


@linux_only
def test_create_run_close_cycles_keep_memory_flat():
    net, probe = tiny_network()

    def cycle():
        # a fresh Model each time: no decoder cache (its file index is slow and grows)
        with nengo_cuda.Simulator(net, model=Model(dt=0.001), progress_bar=False) as sim:
            sim.run_steps(10)
            assert sim.data[probe].shape == (10, 2)

    for _ in range(100):  # warm-up: allocator pools, caches, lazy imports
        cycle()
    gc.collect()
    before = rss_bytes()
    for _ in range(1000):
        cycle()
    gc.collect()
    growth = rss_bytes() - before
    assert growth < 50e6 or SANITIZED, f"RSS grew by {growth / 1e6:.1f} MB over 1000 cycles"


@pytest.mark.parametrize("minibatch_size", [None, 3])
def test_close_frees_the_buffers(minibatch_size):
    net, probes = stateful_network()
    sim = nengo_cuda.Simulator(net, minibatch_size=minibatch_size, progress_bar=False)
    sim.run_steps(20)
    fbuf, ibuf = weakref.ref(sim.layout.fbuf), weakref.ref(sim.layout.ibuf)
    sim.close()
    gc.collect()
    assert sim.backend.native is None
    assert fbuf() is None and ibuf() is None  # nothing holds the pools any more
    assert sim.signals is None
    assert sim.data[probes[0]].shape[-2] == 20  # probe data stays readable
    sim.close()  # closing twice is fine


@pytest.mark.parametrize("device", ["cpu", "cuda-emulator"])
@pytest.mark.parametrize("with_node", [False, True])
def test_an_unclosed_simulator_is_freed(device, with_node):
    """A simulator dropped without close() goes with the garbage collector,
    its backend and buffers too (the CUDA backend's native program holds
    allocation hooks in C++: they must not hold the backend, or the cycle,
    invisible to the collector, kept its device memory to the end)."""
    net, probes = stateful_network()
    if with_node:
        with net:
            nengo.Node(lambda t, x: x, size_in=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        sim = nengo_cuda.Simulator(net, device=device, progress_bar=False)
        sim.run_steps(5)
        refs = [weakref.ref(x) for x in (sim, sim.backend, sim.layout.fbuf)]
        del sim
        for _ in range(3):  # (a cycle through a finalizer, Simulator.__del__, takes two)
            gc.collect()
    assert [r() is None for r in refs] == [True, True, True]


def test_pickle_closed_simulator():
    """As nengo.Simulator: a closed simulator pickles (without signals) and stays closed."""
    net, probes = stateful_network()
    sim = nengo_cuda.Simulator(net, progress_bar=False)
    sim.run_steps(10)
    sim.close()
    loaded, probe = pickle.loads(pickle.dumps((sim, probes[0])))
    assert loaded.closed and loaded.n_steps == 10
    np.testing.assert_array_equal(loaded.data[probe], sim.data[probes[0]])


@pytest.mark.parametrize("minibatch_size", [None, 2])
def test_runs_concatenate_without_loss(minibatch_size, monkeypatch):
    """Many runs of odd lengths (with tiny probe chunks) equal one run."""
    import nengo_cuda.simulator as simulator

    net, probes = stateful_network()
    kwargs = dict(minibatch_size=minibatch_size, dtype="float64", progress_bar=False)
    with nengo_cuda.Simulator(net, **kwargs) as sim:
        sim.run_steps(200)
        whole = [sim.data[p].copy() for p in probes]
    monkeypatch.setattr(simulator, "_CHUNK_ELEMENTS", 5)
    with nengo_cuda.Simulator(net, **kwargs) as sim:
        for n in [1, 2, 0, 7, 1, 89, 3, 97]:  # 200 steps
            sim.run_steps(n)
            sim.data[probes[1]]  # reading between runs joins the chunks so far
        assert sim.n_steps == 200
        for p, expected in zip(probes, whole):
            np.testing.assert_array_equal(sim.data[p], expected)
        np.testing.assert_allclose(
            sim.trange(sample_every=0.003), 0.003 * np.arange(1, 67), rtol=1e-12
        )


@pytest.mark.parametrize("minibatch_size", [None, 2])
def test_reset_restores_initial_state_exactly(minibatch_size):
    net, probes = stateful_network()
    with nengo_cuda.Simulator(net, minibatch_size=minibatch_size, progress_bar=False) as sim:
        initial = (sim.layout.fbuf.copy(), sim.layout.ibuf.copy())
        sim.run_steps(50)
        first = [sim.data[p].copy() for p in probes]
        assert not np.array_equal(sim.layout.fbuf, initial[0])
        sim.reset()
        np.testing.assert_array_equal(sim.layout.fbuf, initial[0])
        np.testing.assert_array_equal(sim.layout.ibuf, initial[1])
        assert sim.n_steps == 0 and sim.time == 0
        sim.run_steps(30)
        sim.run_steps(20)
        for p, expected in zip(probes, first):
            np.testing.assert_array_equal(sim.data[p], expected)


LONG_RUN = textwrap.dedent(
    """
    import resource, sys
    import nengo, numpy as np, nengo_cuda

    with nengo.Network(seed=0) as net:
        u = nengo.Node([0.5])
        x = nengo.Node(size_in=1)
        nengo.Connection(u, x, synapse=0.01)
        p_every = nengo.Probe(x, sample_every=0.1)
        p_time = nengo.Probe(u, sample_every=0.25)
    n = 1_000_000
    with nengo_cuda.Simulator(net, dtype="float64", progress_bar=False) as sim:
        assert all(i.kind != "callback" for i in sim.program), sim.program.summary()
        sim.run_steps(1000)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        sim.run_steps(n - 1000)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        assert sim.n_steps == n
        # sample_every honoured: one sample every 100 (250) steps, at Nengo's times
        assert sim.data[p_every].shape == (n // 100, 1)
        assert sim.data[p_time].shape == (n // 250, 1)
        assert len(sim.trange(sample_every=0.1)) == n // 100
        np.testing.assert_allclose(sim.data[p_every][-1], 0.5)
        np.testing.assert_allclose(sim.data[p_time], 0.5)
    print((peak - before) / 1e6)
    """
)


@linux_only
def test_million_steps_in_bounded_memory():
    """1e6 steps; kept probe data is small, so the peak RSS barely moves.

    Runs in a fresh process: its peak RSS (ru_maxrss) is this run's alone.
    """
    out = subprocess.run(
        [sys.executable, "-c", LONG_RUN], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    growth_mb = float(out.stdout.split()[-1])
    assert growth_mb < 30 or SANITIZED, f"peak RSS grew by {growth_mb:.1f} MB during 1e6 steps"
