"""The trial-parallel CPU loop: threads that each run the whole step loop for
their share of a minibatch's trials, and chunks of trials that run all steps
before the next chunk (csrc/cpu/runner.h), give exactly the results of one
thread stepping all trials together, for every instruction kind that opts in,
with feeds, probes and per-trial tables indexed by the right trial.  So does
the segmented loop of programs with Python callbacks, also when one raises."""

import os

import nengo
import numpy as np
import pytest

import nengo_cuda
from forking import run_forked
from networks import mixed_network

N_TRIALS = 5  # odd: threads get unequal shares


def run(threads, dtype, chunk=N_TRIALS, steps=120):
    net, stim, probes = mixed_network()
    data = np.linspace(-1, 1, N_TRIALS * steps * 2).reshape(N_TRIALS, steps, 2)
    with nengo_cuda.Simulator(net, progress_bar=False, minibatch_size=N_TRIALS, dtype=dtype,
                              seed=7) as sim:
        native = sim.backend.native
        native.set_trial_threads(threads)
        native.set_trial_chunk(chunk)
        team = native.trial_team_size(steps)
        sim.run_steps(steps, data={stim: data})
        sim.run_steps(31, data={stim: data[:, :31]})  # a second run continues
        return team, [sim.data[p].copy() for p in probes]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("threads, chunk", [(2, N_TRIALS), (3, N_TRIALS), (1, 2), (2, 1)])
def test_trial_threads_equal_one_thread(threads, chunk, dtype):
    team1, one = run(1, dtype)
    team, many = run(threads, dtype, chunk)
    assert team1 == 1
    if team == 1 and threads > 1:
        pytest.skip("built without OpenMP: no trial-parallel loop")
    assert team == threads
    for i, (a, b) in enumerate(zip(one, many)):
        assert a.shape[0] == N_TRIALS
        np.testing.assert_array_equal(b, a, err_msg=f"probe {i}")
    # and the trials differ (the data and noise reached the right trials)
    assert not np.allclose(one[0][0], one[0][-1])


def test_callbacks_and_single_trials_use_one_thread():
    """Callbacks: not the trial-parallel loop; the segmented one only with
    enough state per thread (or trial_threads set)."""
    with nengo.Network(seed=0) as net:
        u = nengo.Node(lambda t: np.sin(t))  # a Python callback
        e = nengo.Ensemble(20, 1)
        nengo.Connection(u, e)
    with nengo_cuda.Simulator(net, progress_bar=False, minibatch_size=4) as sim:
        native = sim.backend.native
        assert native.segmented_team_size(10) == 1  # 4 small trials
        native.set_trial_threads(2)
        assert native.trial_team_size(10) == 1
        assert native.segmented_team_size(10) in (1, 2)  # (1: without OpenMP)
    with nengo.Network(seed=0) as net:
        e = nengo.Ensemble(20, 1)
    with nengo_cuda.Simulator(net, progress_bar=False, minibatch_size=1) as sim:
        sim.backend.native.set_trial_threads(2)
        assert sim.backend.native.trial_team_size(10) == 1
        assert sim.backend.native.segmented_team_size(10) == 1


def callback_network():
    """mixed_network with Python callbacks: a function of time into ``a``, and
    a Node function between ``b`` and ``c`` (reads and writes trial state)."""
    net, stim, probes = mixed_network()
    a, b, c = net.ensembles
    with net:
        wave = nengo.Node(lambda t: [np.sin(20 * t), np.cos(15 * t)])
        nengo.Connection(wave, a, transform=0.5)
        squash = nengo.Node(lambda t, x: np.tanh(2 * x), size_in=2)
        nengo.Connection(b, squash, synapse=0.005)
        nengo.Connection(squash[1], c, synapse=0.01)
        probes.append(nengo.Probe(squash))
    return net, stim, probes


def run_segmented(threads, dtype="float64", steps=120, fail_at=None):
    net, stim, probes = callback_network()
    if fail_at is not None:
        with net:
            def fail(t):
                if t > (fail_at - 0.5) * 0.001:
                    raise RuntimeError("callback failed")
                return 0.0
            nengo.Node(fail)
    data = np.linspace(-1, 1, N_TRIALS * steps * 2).reshape(N_TRIALS, steps, 2)
    wave = net.nodes[-2 if fail_at is None else -3]
    assert wave.size_in == 0 and callable(wave.output)
    with nengo_cuda.Simulator(net, progress_bar=False, minibatch_size=N_TRIALS, dtype=dtype,
                              seed=7) as sim:
        native = sim.backend.native
        native.set_trial_threads(threads)
        team = native.segmented_team_size(steps)
        try:
            sim.run_steps(steps, data={stim: data})
            # a second run continues, with the Python input replaced by data
            sim.run_steps(31, data={stim: data[:, :31], wave: -data[:, :31]})
        except RuntimeError as e:
            assert "callback failed" in str(e)
        return team, sim.n_steps, [sim.data[p].copy() for p in probes]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("threads", [2, 3])
def test_segmented_loop_equals_one_thread(threads, dtype):
    """Threads run the instructions between callbacks on their own trials; the
    callbacks run for all trials in between: the results of one thread."""
    team1, steps1, one = run_segmented(1, dtype)
    team, steps, many = run_segmented(threads, dtype)
    assert team1 == 1 and steps1 == steps == 151
    if team == 1:
        pytest.skip("built without OpenMP: no segmented loop")
    assert team == threads
    for i, (a, b) in enumerate(zip(one, many)):
        assert a.shape[0] == N_TRIALS
        np.testing.assert_array_equal(b, a, err_msg=f"probe {i}")
    assert not np.allclose(one[-1][0], one[-1][-1])  # the trials differ


@pytest.mark.parametrize("fail_at", [1, 57])
def test_segmented_loop_stops_at_a_failing_callback(fail_at):
    """A callback that raises stops every thread at the same step: the steps
    done and the probe data are those of one thread."""
    _, steps1, one = run_segmented(1, fail_at=fail_at)
    team, steps, many = run_segmented(2, fail_at=fail_at)
    assert steps1 == steps == fail_at - 1
    for a, b in zip(one, many):
        np.testing.assert_array_equal(b, a)


def test_trial_threads_and_chunks_must_be_non_negative():
    with nengo.Network() as net:
        nengo.Ensemble(5, 1)
    with nengo_cuda.Simulator(net, progress_bar=False, minibatch_size=2) as sim:
        with pytest.raises(ValueError, match="trial_threads"):
            sim.backend.native.set_trial_threads(-1)
        with pytest.raises(ValueError, match="trial_chunk"):
            sim.backend.native.set_trial_chunk(-1)


def test_chunks_keep_large_states_in_cache():
    """Chunks of at least 4 trials; smaller only for states over a few MB."""
    def chunk(n_neurons, minibatch):
        with nengo.Network(seed=0) as net:
            nengo.Ensemble(n_neurons, 1)
        with nengo_cuda.Simulator(net, progress_bar=False, minibatch_size=minibatch) as sim:
            return sim.backend.native.trial_chunk_size()
    assert chunk(100, 32) == 32
    assert chunk(100, 3) == 3
    assert 4 <= chunk(100_000, 32) < 32


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_process_runs_its_trials_on_one_thread():
    """libgomp's threads do not survive fork(): a child of a process that ran
    the trial-parallel loop would wait for them forever in its own (the
    default multiprocessing start on Linux); it runs its trials on one thread."""
    team, parent = run(2, "float64")  # the parent's OpenMP threads exist now
    if team == 1:
        pytest.skip("built without OpenMP: no trial-parallel loop")
    child_team, child = run_forked(lambda: run(2, "float64"), timeout=60)
    assert child_team == 1
    for a, b in zip(child, parent):
        np.testing.assert_array_equal(a, b)


_LATE_IMPORT = """
import multiprocessing, sys

def child(_):
    from nengo_cuda import _native  # (imported only after the fork)
    import nengo_cuda.backends.cpu  # noqa: F401
    return _native.in_forked_child()

if __name__ == "__main__":
    with multiprocessing.get_context(sys.argv[1]).Pool(1) as pool:
        print(pool.map(child, [0])[0])
"""


@pytest.mark.parametrize("method, forked", [("fork", True), ("spawn", False)])
def test_a_child_forked_before_the_import_runs_its_trials_on_one_thread(
        method, forked, tmp_path):
    """A multiprocessing child made by fork that imports nengo_cuda only then
    (the module's fork handler did not see the fork; the parent may have run
    another library's OpenMP pool) is marked as a forked child; a spawned
    child, a fresh process, is not."""
    import subprocess
    import sys

    script = tmp_path / "late_import.py"
    script.write_text(_LATE_IMPORT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, str(script), method], capture_output=True, text=True,
                         timeout=120, env=env, check=True)
    assert out.stdout.strip() == str(forked)
