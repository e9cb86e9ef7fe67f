"""The floating-point mode of CPU runs (csrc/cpu/fp_mode.h): float32 runs treat
denormal numbers as zero, float64 runs keep them (as Nengo), and Python code,
in callbacks and after a run, sees the caller's own mode."""

import numpy as np
import nengo
import pytest

import nengo_cuda

TINY32 = np.finfo(np.float32).tiny


def decaying_network(callback=True):
    """A pulse through a lowpass: its value decays by exp(-dt / tau) a step,
    into the denormal range of float32 after ~430 steps (of float64 after
    ~3500); with a Python callback that records what its arithmetic gives."""
    seen = []

    def watch(t):
        # a denormal result in float32 arithmetic, in the callback's mode
        seen.append(float(np.float32(TINY32) * np.float32(0.25)))
        return 0.0

    with nengo.Network(seed=0) as net:
        pulse = nengo.Node(nengo.processes.Piecewise({0: [1.0], 0.002: [0.0]}))
        out = nengo.Node(size_in=1)
        nengo.Connection(pulse, out, synapse=nengo.Lowpass(0.005))
        if callback:
            nengo.Node(watch)
        probe = nengo.Probe(out)
    return net, probe, seen


def test_float32_runs_flush_denormals():
    net, probe, seen = decaying_network()
    with nengo_cuda.Simulator(net, progress_bar=False, dtype="float32") as sim:
        sim.run_steps(600)
    x = np.abs(sim.data[probe][:, 0])
    assert np.all((x == 0) | (x >= TINY32))  # no denormal was stored
    assert x[100] > 0 and x[-1] == 0  # it decayed past the normal range to zero
    assert seen and all(v > 0 for v in seen)  # callbacks kept denormals
    assert np.float32(TINY32) * np.float32(0.25) > 0  # and so does Python after the run


def test_float64_runs_keep_denormals_as_nengo():
    net, probe, _ = decaying_network()
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(3700)
    with nengo_cuda.Simulator(net, progress_bar=False, dtype="float64") as sim:
        sim.run_steps(3700)
    tiny64 = np.finfo(np.float64).tiny
    denormal = (ref.data[probe] != 0) & (np.abs(ref.data[probe]) < tiny64)
    assert denormal.any()  # Nengo's run reached them
    np.testing.assert_array_equal(sim.data[probe], ref.data[probe])


@pytest.mark.parametrize("callback", [False, True])
def test_threads_of_a_float32_run_flush_denormals(callback):
    """Every thread of a trial-parallel (no callback) or segmented run is in
    the run's mode."""
    net, probe, _ = decaying_network(callback)
    with nengo_cuda.Simulator(net, progress_bar=False, dtype="float32",
                              minibatch_size=4) as sim:
        sim.backend.native.set_trial_threads(2)
        sim.run_steps(600)
    x = np.abs(sim.data[probe])
    assert np.all((x == 0) | (x >= TINY32))
    assert np.all(x[:, -1] == 0)
