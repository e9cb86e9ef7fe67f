"""The instruction-splitting team (csrc/cpu/team.h, parallel.h): in a run of
the plain step loop (minibatch 1, or a minibatch with Python callbacks too
small for the segmented loop) large instructions split their work over
threads that spin between jobs.  Every iteration of a job runs exactly once,
errors reach the caller, and a split run gives exactly the numbers of a
serial one (float32 and float64), also for runs nested in a callback and in
a forked process."""

import os
import time

import nengo
import numpy as np
import pytest

import nengo_cuda
from nengo_cuda import _native
from forking import run_forked
from networks import mixed_network
from nengo_cuda.testing import forced_splitting, no_splitting, split_policy

THREADS = _native.team_counters()["threads"]
needs_threads = pytest.mark.skipif(THREADS < 2, reason="one thread: nothing to split")


@pytest.mark.parametrize("dynamic", [False, True])
@pytest.mark.parametrize("n", [0, 1, 2, 7, 64, 1001])
def test_every_iteration_runs_once(n, dynamic):
    with forced_splitting():
        visits, modes_ok = _native.team_selftest(n, jobs=20, dynamic=dynamic)
    assert visits == [1] * n
    assert modes_ok


@needs_threads
def test_workers_take_part_in_the_runs_floating_point_mode():
    """Jobs of 64 iterations of 2 us: the workers claim chunks, and run them
    flushing denormals as the caller's float32 run does (fp_mode.h).

    A worker that the machine does not run for a while (a busy or shared
    host: seen in CI under the sanitizers, and with other jobs on the 2
    cores) makes the team run the rest of the jobs serially, as team.h
    intends; so up to five tries, of which one should hand all 200 jobs to
    the team; on a host too busy for that, the workers must at least have
    taken part in some."""
    first = _native.team_counters()
    for _ in range(5):
        before = _native.team_counters()
        with forced_splitting():
            visits, modes_ok = _native.team_selftest(64, jobs=200, spin_ns=2000)
        after = _native.team_counters()
        assert visits == [1] * 64
        assert modes_ok
        if after["jobs"] - before["jobs"] == 200:
            assert after["worker_chunks"] > before["worker_chunks"]
            return
    assert after["jobs"] > first["jobs"]
    assert after["worker_chunks"] > first["worker_chunks"]


def test_threads_grow_with_the_work():
    min_work = 1 << 17
    with split_policy(min_work=min_work):
        assert _native.split_ways(min_work - 1) == 1
        assert _native.split_ways(min_work) == 2
        assert _native.split_ways(10 * min_work) == 20


@needs_threads
def test_sleeping_workers_wake_for_the_next_job():
    """After 10 ms without jobs the workers sleep (team.h, kSpinMicros); the
    next jobs wake them.  (On a loaded machine a woken worker may get no CPU
    before the caller has done all 50 jobs itself, 6 ms: each round tries
    again, after another sleep, up to 20 times.)"""
    with forced_splitting():
        for _ in range(3):
            for _attempt in range(20):
                time.sleep(0.01)
                before = _native.team_counters()["worker_chunks"]
                visits, _ = _native.team_selftest(64, jobs=50, spin_ns=2000)
                assert visits == [1] * 64
                if _native.team_counters()["worker_chunks"] > before:
                    break
            else:
                pytest.fail("no worker took a chunk after sleeping, in 20 tries")


@needs_threads
def test_work_for_one_thread_is_not_handed_out():
    before = _native.team_counters()
    with forced_splitting():
        visits, _ = _native.team_selftest(100, jobs=5, ways=1)
        assert visits == [1] * 100
        assert _native.team_counters()["jobs"] == before["jobs"]
        visits, _ = _native.team_selftest(100, jobs=5, ways=2)
        assert visits == [1] * 100
        assert _native.team_counters()["jobs"] == before["jobs"] + 5


def test_an_error_in_a_job_reaches_the_caller_after_the_job():
    with forced_splitting():
        with pytest.raises(RuntimeError, match="iteration 333"):
            _native.team_selftest(1000, jobs=3, throw_at=333)
        # the team is free and whole again
        assert _native.team_selftest(1000, jobs=3)[0] == [1] * 1000


def split_network():
    """mixed_network (LIF and adaptive neurons, PES, white noise, sparse and
    dense transforms, probes) with a 1500-neuron ensemble, whose update
    splits into several segments even at minibatch 1."""
    net, stim, probes = mixed_network()
    with net:
        big = nengo.Ensemble(1500, 2, seed=5)
        nengo.Connection(stim, big)
        nengo.Connection(big, big, synapse=0.05, transform=0.5)
        probes += [nengo.Probe(big, synapse=0.01), nengo.Probe(big.neurons)]
    return net, stim, probes


def run(dtype, minibatch_size=1, callback=False, steps=150):
    net, stim, probes = split_network()
    if callback:
        with net:
            fn = nengo.Node(lambda t: np.sin(8 * t))
            nengo.Connection(fn, net.ensembles[0][0])
    data = np.linspace(-1, 1, minibatch_size * steps * 2).reshape(minibatch_size, steps, 2)
    with nengo_cuda.Simulator(net, progress_bar=False, dtype=dtype, seed=3,
                              minibatch_size=minibatch_size) as sim:
        assert sim.backend.native.trial_team_size(steps) == 1  # the plain loop
        assert sim.backend.native.segmented_team_size(steps) == 1
        sim.run_steps(steps, data={stim: data})
        return [sim.data[p].copy() for p in probes]


@needs_threads
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("minibatch_size, callback", [(1, False), (1, True), (3, True)])
def test_split_runs_equal_serial_runs(dtype, minibatch_size, callback):
    with no_splitting():
        serial = run(dtype, minibatch_size, callback)
    # Each run must equal the serial one; repeated until a worker took part
    # (the scheduler may keep a just-woken worker off the cores for a short run).
    for _ in range(5):
        before = _native.team_counters()
        with forced_splitting():
            split = run(dtype, minibatch_size, callback)
        after = _native.team_counters()
        assert after["jobs"] > before["jobs"]
        for a, b in zip(split, serial):
            np.testing.assert_array_equal(a, b)
        if after["worker_chunks"] > before["worker_chunks"]:
            break
    else:
        pytest.fail("no worker ran a chunk in 5 runs")


def test_split_float64_run_equals_nengo():
    net, stim, probes = split_network()
    with nengo.Simulator(net, progress_bar=False, seed=3) as ref:
        ref.run_steps(100)
    with forced_splitting(), nengo_cuda.Simulator(net, progress_bar=False, dtype="float64",
                                                  seed=3) as sim:
        sim.run_steps(100)
    for p in probes:
        np.testing.assert_allclose(sim.data[p], ref.data[p], rtol=1e-9, atol=1e-12)


def run_alone(net, probes, steps):
    with nengo_cuda.Simulator(net, progress_bar=False, dtype="float64", seed=3) as sim:
        sim.run_steps(steps)
        return [sim.data[p].copy() for p in probes]


@needs_threads
def test_a_run_nested_in_a_callback_gets_the_numbers_of_a_run_alone():
    """A Node whose function runs another simulator while the outer run holds
    the team (the inner run splits on the same thread's team)."""
    inner_net, _, inner_probes = split_network()
    with no_splitting():
        alone = run_alone(inner_net, inner_probes, 20)
    inner_results = []

    def run_inner(t):
        if not inner_results:
            inner_results.append(run_alone(inner_net, inner_probes, 20))
        return 0.0

    outer_net, _, _ = split_network()
    with outer_net:
        nengo.Node(run_inner)
    before = _native.team_counters()
    with forced_splitting():
        with nengo_cuda.Simulator(outer_net, progress_bar=False, dtype="float64") as outer:
            outer.run_steps(5)
    assert _native.team_counters()["jobs"] > before["jobs"]
    for a, b in zip(inner_results[0], alone):
        np.testing.assert_array_equal(a, b)


@needs_threads
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_process_runs_without_the_parents_workers():
    with forced_splitting():
        parent = run("float64", steps=30)  # the team's threads exist now
        # the child: no worker threads; its runs must not wait for them
        child = run_forked(lambda: run("float64", steps=30))
    for a, b in zip(child, parent):
        np.testing.assert_array_equal(a, b)
