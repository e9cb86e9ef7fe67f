"""nengo_cuda.random_splits: FilteredNoise (and BrownNoise) runs as white
noise read from a table and a filter kernel, StochasticSpiking as uniform
numbers read from a table and a spike kernel: no step goes back to Python.

Here: that the split happens where it may and not where it must not, that it
gives Nengo's numbers (float64: to rounding; every trial as the callback that
runs Nengo's own step), that later processes keep Nengo's seeds, and that
reset, saved state, pickles, ``data=`` and failed runs treat the split
operator as the original.
"""

import contextlib
import os
import pickle
import tempfile

import nengo
import numpy as np
import pytest
from nengo.builder.operator import TimeUpdate
from nengo.dists import Gaussian, Uniform
from nengo.processes import BrownNoise, FilteredNoise, WhiteNoise

import nengo_cuda
from nengo_cuda import random_splits
from nengo_cuda.lowering import process_tables
from nengo_cuda.planner import order_operators

from forking import run_forked

NOISES = {  # name -> the process, given its seed
    "lowpass": lambda seed=None: FilteredNoise(seed=seed),
    "alpha": lambda seed=None: FilteredNoise(synapse=nengo.Alpha(0.01), dist=Uniform(-1, 1),
                                             seed=seed),
    "brown": lambda seed=None: BrownNoise(Gaussian(0, 0.3), seed=seed),
    "seeded": lambda seed=None: FilteredNoise(synapse=nengo.Lowpass(0.02), seed=seed or 5),
    "no_state": lambda seed=None: FilteredNoise(synapse=nengo.LinearFilter([2.0], [1.0]),
                                                scale=False, seed=seed),
    # with a direct term and two states: Nengo's General step, which cannot
    # increment a signal (so only as a Node's output, not as Ensemble noise)
    "general": lambda seed=None: FilteredNoise(
        synapse=nengo.LinearFilter([1, 0.5, 0.1], [0.01, 0.2, 1]), seed=seed),
}


def noisy_net(noise, ensemble_noise=True, seed=1):
    """A FilteredNoise Node into an ensemble that has the same noise (seeded:
    Nengo's optimizer orders unseeded ensemble noise differently from build
    to build) on its neurons (an increment), and a WhiteNoise Node built
    after them (its seed follows theirs in Nengo's order)."""
    make = NOISES.get(noise, noise)  # (a name, or a process class)
    with nengo.Network(seed=seed) as net:
        source = nengo.Node(make(), size_out=3)
        ens = nengo.Ensemble(40, 3, noise=make(seed=11) if ensemble_noise else None)
        nengo.Connection(source, ens)
        white = nengo.Node(WhiteNoise(), size_out=2)
        probes = [nengo.Probe(source), nengo.Probe(ens, synapse=0.01),
                  nengo.Probe(ens.neurons), nengo.Probe(white)]
    return net, source, probes


@contextlib.contextmanager
def splits_enabled(enabled):
    """Simulators built inside split random operators (or not: Nengo's step)."""
    old, random_splits.ENABLED = random_splits.ENABLED, enabled
    try:
        yield
    finally:
        random_splits.ENABLED = old


def run(net, probes, steps=(40, 60), enabled=True, **kwargs):
    """Probe data after runs of ``steps``, and the instruction kinds."""
    with splits_enabled(enabled), nengo_cuda.Simulator(net, progress_bar=False,
                                                       **kwargs) as sim:
        for n in steps:
            sim.run_steps(n)
        return [np.array(sim.data[p]) for p in probes], [i.kind for i in sim.program]


@pytest.mark.parametrize("device", ["cpu", "cuda-emulator"])
@pytest.mark.parametrize("name", sorted(NOISES))
def test_split_noise_is_nengos(name, device):
    net, _, probes = noisy_net(name, ensemble_noise=name != "general")
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(100)
    data, kinds = run(net, probes, dtype="float64", device=device)
    assert "callback" not in kinds  # both FilteredNoise operators split
    for p, x in zip(probes, data):
        np.testing.assert_allclose(x, ref.data[p], rtol=1e-12, atol=1e-12, err_msg=str(p))


@pytest.mark.parametrize("name", ["lowpass", "alpha", "brown"])
def test_every_trial_as_nengos_step(name):
    """Each trial of a minibatch draws the noise that the callback running
    Nengo's FilteredNoise step draws for it (its own seed)."""
    net, _, probes = noisy_net(name)
    split, kinds = run(net, probes, dtype="float64", minibatch_size=3)
    whole, whole_kinds = run(net, probes, dtype="float64", minibatch_size=3, enabled=False)
    assert "callback" not in kinds and "callback" in whole_kinds
    for p, x, y in zip(probes, split, whole):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12, err_msg=str(p))
    assert not np.allclose(split[0][0], split[0][1])  # trials differ


def test_float32_within_float32_rounding():
    """float32 rounds the noise to float32 before filtering it (as it rounds
    white noise): within float32's rounding of Nengo's float64."""
    net, _, probes = noisy_net("lowpass", ensemble_noise=False)
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(100)
    data, kinds = run(net, probes[:1], dtype="float32")
    assert "callback" not in kinds
    scale = np.max(np.abs(ref.data[probes[0]]))
    np.testing.assert_allclose(data[0], ref.data[probes[0]], atol=1e-5 * scale)


class OwnStep(FilteredNoise):
    """A subclass with a step of its own (doubled): not Nengo's FilteredNoise step."""

    def make_step(self, shape_in, shape_out, dt, rng, state):
        step = super().make_step(shape_in, shape_out, dt, rng, state)
        return lambda t: 2 * step(t)


def test_subclass_with_its_own_step_runs_it():
    net, _, probes = noisy_net(OwnStep)
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(100)
    data, kinds = run(net, probes, dtype="float64")
    assert "callback" in kinds
    for p, x in zip(probes, data):
        np.testing.assert_allclose(x, ref.data[p], rtol=1e-12, atol=1e-12)


def test_general_filter_as_increment_fails_as_nengo():
    """Nengo's General step returns (1, n): incrementing the neurons' input
    by it fails, and so it does here (the filter falls back to Nengo's step)."""
    with nengo.Network(seed=2) as net:
        nengo.Ensemble(20, 1, noise=NOISES["general"]())
    with pytest.raises(ValueError, match="broadcast"):
        with nengo.Simulator(net, progress_bar=False) as ref:
            ref.run_steps(2)
    with pytest.raises(ValueError, match="broadcast"):
        with nengo_cuda.Simulator(net, dtype="float64", progress_bar=False) as sim:
            sim.run_steps(2)


def test_reset_draws_the_same_noise_again():
    net, _, probes = noisy_net("brown")
    with nengo_cuda.Simulator(net, dtype="float64", progress_bar=False) as sim:
        sim.run_steps(30)
        first = [np.array(sim.data[p]) for p in probes]
        sim.reset()
        sim.run_steps(30)
        for p, x in zip(probes, first):
            np.testing.assert_array_equal(sim.data[p], x)
        sim.reset(seed=9)  # new seeds: new noise
        sim.run_steps(30)
        assert not np.allclose(sim.data[probes[0]], first[0])


def test_saved_state_goes_on_with_the_stream():
    net, _, probes = noisy_net("lowpass")
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(40)
    for p, x in zip(probes, _saved_and_loaded(net, probes)):
        np.testing.assert_allclose(x, ref.data[p][20:], rtol=1e-12, atol=1e-12)


def _saved_and_loaded(net, probes, enabled=True):
    """Probe data of 20 steps run after loading the state saved after 20."""
    with splits_enabled(enabled), tempfile.TemporaryDirectory() as folder:
        with nengo_cuda.Simulator(net, dtype="float64", progress_bar=False) as sim:
            sim.run_steps(20)
            sim.save_params(f"{folder}/state", include_state=True)
        with nengo_cuda.Simulator(net, dtype="float64", progress_bar=False) as sim:
            sim.load_params(f"{folder}/state", include_state=True)
            sim.run_steps(20)
            return [np.array(sim.data[p]) for p in probes]


def test_stochastic_spiking_generators_are_not_state():
    """The neurons' generators are not part of the simulation state (nor in
    NengoDL, where a TensorFlow random op draws): loaded state, and runs with
    ``stateful=False``, leave them going on, as the callback's do."""
    net, probes = stochastic_net()
    for p, x, y in zip(probes, _saved_and_loaded(net, probes),
                       _saved_and_loaded(net, probes, enabled=False)):
        np.testing.assert_array_equal(x, y, err_msg=str(p))
    runs = []
    for enabled in (True, False):
        with splits_enabled(enabled), nengo_cuda.Simulator(net, dtype="float64",
                                                           progress_bar=False) as sim:
            sim.run_steps(10, stateful=False)
            sim.run_steps(10, stateful=False)
            sim.run_steps(10)
            runs.append([np.array(sim.data[p]) for p in probes])
    for x, y in zip(*runs):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(runs[0][0][:10], runs[0][0][10:20])  # (the generator went on)


def test_data_replaces_a_filtered_noise_node():
    net, source, probes = noisy_net("lowpass", ensemble_noise=False)
    values = np.random.RandomState(0).uniform(-1, 1, (2, 25, 3))
    with nengo_cuda.Simulator(net, dtype="float64", minibatch_size=2,
                              progress_bar=False) as sim:
        sim.run_steps(25, data={source: values})
        np.testing.assert_array_equal(sim.data[probes[0]], values)
        sim.run_steps(5)  # not fed: the noise again
        assert not np.allclose(sim.data[probes[0]][:, 25:], values[:, -1:])


def _predecessors(dg):
    preds = {}
    for op, succs in dg.items():
        for succ in succs:
            preds.setdefault(succ, set()).add(op)
    return preds


def test_split_graph():
    """The filter takes the operator's place (its predecessors and
    successors); the white noise follows the time update alone and precedes
    the filter; every other operator keeps its place and its edges."""
    net, _, _ = noisy_net("alpha")
    model = nengo.builder.Model(dt=0.001)
    model.build(net)
    dg, order, _ = order_operators(model, optimize=True)
    splits = random_splits.split_signals(order, model.time)
    assert len(splits) == 2  # the Node's and the ensemble's
    kept, dg_kept, none = random_splits.split(order, dg, splits, lambda op: op not in
                                            [s.consumer for s in splits.values()])
    assert (kept, dg_kept, none) == (order, dg, {})  # a filter without a kernel: no split
    new_order, new_dg, done = random_splits.split(order, dg, splits, lambda op: True)
    assert done == splits
    preds, new_preds = _predecessors(dg), _predecessors(new_dg)
    (time_update,) = [op for op in order if type(op) is TimeUpdate]
    for op, s in done.items():
        i = order.index(op)
        j = i + len([o for o in order[:i] if o in done])  # (each split before adds one)
        assert new_order[j : j + 2] == [s.source, s.consumer]
        assert new_preds[s.source] == {time_update} and new_dg[s.source] == {s.consumer}
        assert new_dg[s.consumer] == dg[op]
        assert new_preds[s.consumer] == preds[op] | {s.source}
        assert op not in new_dg and op not in new_preds and op not in new_order
    others = [op for op in order if op not in done]
    assert [op for op in new_order if op in set(others)] == others
    parts = {s.source for s in done.values()} | {s.consumer for s in done.values()}
    for op in others:
        assert {s for s in new_dg.get(op, ()) if s not in parts} == \
            {s for s in dg.get(op, ()) if s not in done}


def test_unscalable_samples_stay_nengos_step():
    """FilteredNoise scales its samples in place: integer ones fail there (as
    in Nengo), so only float64 distributions split."""
    with nengo.Network(seed=2) as net:
        nengo.Node(FilteredNoise(dist=Uniform(0, 5, integer=True)), size_out=2)
    for simulator in (nengo.Simulator, nengo_cuda.Simulator):
        with pytest.raises(TypeError, match="cast"):
            with simulator(net, progress_bar=False) as sim:
                sim.run_steps(2)


@pytest.mark.parametrize("name", ["lowpass", "brown"])
def test_pickled_simulator_goes_on(name):
    net, _, probes = noisy_net(name)
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(20)
    with nengo_cuda.Simulator(net, dtype="float64", progress_bar=False) as sim:
        sim.run_steps(10)
        again = pickle.loads(pickle.dumps(sim))
    with again:
        again.run_steps(10)  # (its processes start again, as an unpickled nengo.Simulator's)
        for p, copied in zip(probes, again.model.probes):  # (the probes of the model's copy)
            assert copied.attr == p.attr and again.data[copied].shape[0] == 20
            np.testing.assert_allclose(again.data[copied][:10], ref.data[p][:10], rtol=1e-12,
                                       atol=1e-12)


@pytest.mark.parametrize("device", ["cpu", "cuda-emulator"])
@pytest.mark.parametrize("alone", [True, False])
def test_fed_noise_does_not_step(alone, device):
    """A Node that ``data=`` feeds does not step (NengoDL's fed Nodes): its
    noise goes on after the feed where it stopped before it, with its filter's
    state, also when the filter shares an instruction with another's."""
    with nengo.Network(seed=2) as net:
        nodes = [nengo.Node(FilteredNoise(seed=s), size_out=2) for s in ([3] if alone else [3, 4])]
        probe = nengo.Probe(nodes[0])
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(15)
    with nengo_cuda.Simulator(net, dtype="float64", minibatch_size=1, device=device,
                              progress_bar=False) as sim:
        assert "callback" not in [i.kind for i in sim.program]
        sim.run_steps(5)
        sim.run_steps(10, data={nodes[0]: np.ones((1, 10, 2))})
        sim.run_steps(10)
        out = sim.data[probe][0]
    np.testing.assert_array_equal(out[5:15], 1)
    np.testing.assert_allclose(out[:5], ref.data[probe][:5], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out[15:], ref.data[probe][5:], rtol=1e-12, atol=1e-12)


def _fails_once():
    """A Node function that raises once, at the step after t = 10.5 ms, and
    its list of failures (cleared to fail again)."""
    failed = []

    def fail_once(t, x=None):
        if t > 0.0105 and not failed:
            failed.append(t)
            raise RuntimeError("once")
        return 0 if x is None else x

    return fail_once, failed


def _runs_after_failure(net, probes, failed, **kwargs):
    """Per simulator (Nengo's, ours): probe data of a run that fails, then 10 steps."""
    outputs = []
    for simulator in (nengo.Simulator, nengo_cuda.Simulator):
        failed.clear()
        with simulator(net, progress_bar=False,
                       **({} if simulator is nengo.Simulator else kwargs)) as sim:
            with pytest.raises(RuntimeError, match="once"):
                sim.run_steps(20)
            sim.run_steps(10)
            outputs.append([np.array(sim.data[p]) for p in probes])
    return outputs


@pytest.mark.parametrize("device", ["cpu", "cuda-emulator"])
@pytest.mark.parametrize("failing_first", [False, True])
@pytest.mark.parametrize("process", [FilteredNoise(seed=3), WhiteNoise(seed=3)])
def test_failed_step_read_noise_as_nengo(process, failing_first, device):
    """In a step that fails in a callback, Nengo's random operators before the
    one that raised (in its step order) have drawn, the others not: the next
    run goes on from there (here tables run first; ``failing_first``: a Node
    built first, which Nengo steps before the noise)."""
    fail_once, failed = _fails_once()
    with nengo.Network(seed=2) as net:
        if failing_first:
            nengo.Node(fail_once)
        noise = nengo.Node(process, size_out=2)
        if not failing_first:
            nengo.Connection(noise, nengo.Node(fail_once, size_in=2))
        probe = nengo.Probe(noise)
    ref, ours = _runs_after_failure(net, [probe], failed, dtype="float64", device=device)
    np.testing.assert_allclose(ours[0], ref[0], rtol=1e-12, atol=1e-12)


# -- StochasticSpiking ----------------------------------------------------------------

def stochastic_net(seed=3):
    with nengo.Network(seed=seed) as net:
        stim = nengo.Node(np.sin)
        a = nengo.Ensemble(30, 1, neuron_type=nengo.StochasticSpiking(nengo.LIFRate()))
        b = nengo.Ensemble(20, 1, neuron_type=nengo.StochasticSpiking(nengo.Tanh(), amplitude=0.3))
        nengo.Connection(stim, a)
        nengo.Connection(a, b)
        white = nengo.Node(WhiteNoise(), size_out=1)
        probes = [nengo.Probe(a.neurons), nengo.Probe(b.neurons), nengo.Probe(b, synapse=0.01),
                  nengo.Probe(white)]
    return net, probes


@pytest.mark.parametrize("device", ["cpu", "cuda-emulator"])
def test_stochastic_spiking_is_nengos(device):
    """Nengo's spikes, also after a reset (which does not rewind the neurons'
    generators) and across runs of any length (numbers drawn ahead)."""
    net, probes = stochastic_net()
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(30)
        ref.reset()
        ref.step()
        ref.run_steps(60)
    with nengo_cuda.Simulator(net, dtype="float64", device=device, progress_bar=False) as sim:
        assert "neurons_stochastic_spiking" in sim.program.summary()
        sim.run_steps(30)
        sim.reset()
        sim.step()
        sim.run_steps(60)
    for p in probes:
        assert np.any(ref.data[p] != 0)
        np.testing.assert_allclose(sim.data[p], ref.data[p], rtol=1e-12, atol=1e-12)


def test_stochastic_spiking_every_trial_as_nengos_step():
    net, probes = stochastic_net()
    split, kinds = run(net, probes, dtype="float64", minibatch_size=3)
    whole, whole_kinds = run(net, probes, dtype="float64", minibatch_size=3, enabled=False)
    assert "neurons_stochastic_spiking" in kinds
    assert "neurons_stochastic_spiking" not in whole_kinds
    for p, x, y in zip(probes, split, whole):
        np.testing.assert_array_equal(x, y, err_msg=str(p))
    assert not np.array_equal(split[0][0], split[0][1])  # trials differ


# -- draws of many trials in threads (process_tables.per_trial) ------------------------

def _minibatch_draws(steps=30):
    """Probe data of a minibatch of 3 with WhiteNoise, FilteredNoise and
    StochasticSpiking, all drawn ahead per trial."""
    net, probes = stochastic_net()
    with net:
        noisy = nengo.Ensemble(20, 1, noise=WhiteNoise(Gaussian(0, 0.1), seed=4))
        filtered = nengo.Node(FilteredNoise(seed=5), size_out=2)
        probes += [nengo.Probe(noisy.neurons), nengo.Probe(filtered)]
    with nengo_cuda.Simulator(net, dtype="float64", minibatch_size=3,
                              progress_bar=False) as sim:
        sim.run_steps(steps)
        sim.run_steps(steps)
        return [np.array(sim.data[p]) for p in probes]


def test_threaded_draws_are_the_trials_own(monkeypatch):
    """Each trial's numbers are the same whether drawn in threads or not."""
    monkeypatch.setattr(process_tables, "PARALLEL_VALUES", 1 << 40)
    alone = _minibatch_draws()
    calls = []
    per_trial = process_tables.per_trial
    monkeypatch.setattr(process_tables, "PARALLEL_VALUES", 1)
    monkeypatch.setattr(process_tables, "per_trial",
                        lambda *args: calls.append(args[1:]) or per_trial(*args))
    threaded = _minibatch_draws()
    assert calls and all(n == 3 for n, _ in calls)
    assert process_tables._POOL[1] is not None  # (threads were used)
    for a, b in zip(alone, threaded):
        np.testing.assert_array_equal(a, b)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_process_draws_in_its_own_threads(monkeypatch):
    monkeypatch.setattr(process_tables, "PARALLEL_VALUES", 1)
    parent = _minibatch_draws()  # the parent's draw threads exist now
    # the child: without the parent's threads; its draws must not wait for them
    child = run_forked(_minibatch_draws)
    for a, b in zip(child, parent):
        np.testing.assert_array_equal(a, b)


def test_stochastic_spiking_after_a_failed_step():
    """A Node that feeds the neurons raises: in Nengo they had not drawn yet."""
    fail_once, failed = _fails_once()
    with nengo.Network(seed=3) as net:
        stim = nengo.Node(lambda t: fail_once(t) + np.sin(t))
        ens = nengo.Ensemble(8, 1, neuron_type=nengo.StochasticSpiking(nengo.LIFRate()))
        nengo.Connection(stim, ens, synapse=None)
        probe = nengo.Probe(ens.neurons)
    ref, ours = _runs_after_failure(net, [probe], failed, dtype="float64")
    assert np.any(ref[0] != 0)
    np.testing.assert_array_equal(ours[0], ref[0])


def test_pickled_stochastic_spiking_goes_on():
    """A pickle keeps the neurons' generator where the steps run left it."""
    net, probes = stochastic_net()
    outputs = []
    for simulator, kwargs in ((nengo.Simulator, {}), (nengo_cuda.Simulator, {"dtype": "float64"})):
        with simulator(net, progress_bar=False, **kwargs) as sim:
            sim.run_steps(7)
            again = pickle.loads(pickle.dumps(sim))
        with again:
            again.run_steps(10)
            outputs.append([np.array(again.data[p]) for p in again.model.probes])
    for x, y in zip(*outputs):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12)


def test_merged_stochastic_populations_split():
    """Nengo's optimizer merges populations of one StochasticSpiking type
    (into one operator it has no build key for)."""
    neuron_type = nengo.StochasticSpiking(nengo.RectifiedLinear())
    with nengo.Network(seed=3) as net:
        stim = nengo.Node(0.5)
        for _ in range(2):
            nengo.Connection(stim, nengo.Ensemble(10, 1, neuron_type=neuron_type))
    with nengo_cuda.Simulator(net, dtype="float64", progress_bar=False) as sim:
        merged = [op for op in sim.step_order if getattr(op, "neurons", None) is neuron_type]
        assert len(merged) == 1 and merged[0].J.size == 20
        assert "neurons_stochastic_spiking" in sim.program.summary()
        sim.run_steps(5)


def test_saved_state_of_merged_neuron_noise_loads():
    """The drawn noise of ensemble noise on merged neuron inputs is scratch,
    not named state (its view of the merged input differs between builds)."""
    with nengo.Network(seed=2) as net:
        for n in (5, 6):
            nengo.Ensemble(n, 1, noise=FilteredNoise(seed=7))
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(4):
            with nengo_cuda.Simulator(net, dtype="float64", progress_bar=False) as sim:
                sim.run_steps(3)
                sim.save_params(f"{folder}/state", include_state=True)
            with nengo_cuda.Simulator(net, dtype="float64", progress_bar=False) as sim:
                assert "callback" not in [i.kind for i in sim.program]
                sim.load_params(f"{folder}/state", include_state=True)


class FailOnce:
    """A Node function that raises once, after t = 10.5 ms (picklable)."""

    def __init__(self):
        self.failed = False

    def __call__(self, t):
        if t > 0.0105 and not self.failed:
            self.failed = True
            raise RuntimeError("once")
        return np.sin(t)


def test_pickle_after_a_failed_step_keeps_the_generator():
    """The failed step's uniform numbers, drawn for a step whose neurons did
    not run (in Nengo they had not drawn), are drawn again next time: the
    generator that a pickle keeps stays where the steps run left it."""
    with nengo.Network(seed=3) as net:
        stim = nengo.Node(FailOnce())
        ens = nengo.Ensemble(8, 1, neuron_type=nengo.StochasticSpiking(nengo.LIFRate()))
        nengo.Connection(stim, ens, synapse=None)
        nengo.Probe(ens.neurons)
    outputs = []
    for simulator, kwargs in ((nengo.Simulator, {}), (nengo_cuda.Simulator, {"dtype": "float64"})):
        net.nodes[0].output.failed = False
        with simulator(net, progress_bar=False, **kwargs) as sim:
            with pytest.raises(RuntimeError, match="once"):
                sim.run_steps(20)
            again = pickle.loads(pickle.dumps(sim))
        with again:
            again.run_steps(10)
            outputs.append(np.array(again.data[again.model.probes[0]]))
    assert np.any(outputs[0] != 0)
    np.testing.assert_array_equal(outputs[1], outputs[0])


def test_state_of_other_random_operators_is_refused():
    """State saved where an operator ran split does not load where it runs
    as Nengo's step (its stream is not there): a clear error."""
    net, _, probes = noisy_net("lowpass", ensemble_noise=False)
    with tempfile.TemporaryDirectory() as folder:
        with nengo_cuda.Simulator(net, dtype="float64", progress_bar=False) as sim:
            sim.save_params(f"{folder}/state", include_state=True)
        with splits_enabled(False), nengo_cuda.Simulator(net, dtype="float64",
                                                         progress_bar=False) as sim:
            with pytest.raises(nengo.exceptions.SimulationError, match="another network"):
                sim.load_params(f"{folder}/state", include_state=True)
