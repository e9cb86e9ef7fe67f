"""nengo_cuda.noise_split: FilteredNoise (and BrownNoise) runs as white noise
read from a table and a filter kernel, with no step back to Python.

Here: that the split happens where it may and not where it must not, that it
gives Nengo's numbers (float64: to rounding; every trial as the callback that
runs Nengo's own step), that later processes keep Nengo's seeds, and that
reset, saved state and ``data=`` treat the split operator as the original.
"""

import tempfile

import nengo
import numpy as np
import pytest
from nengo.builder.operator import TimeUpdate
from nengo.dists import Gaussian, Uniform
from nengo.processes import BrownNoise, FilteredNoise, WhiteNoise

import nengo_cuda
from nengo_cuda import noise_split
from nengo_cuda.planner import order_operators

NOISES = {
    "lowpass": FilteredNoise(),
    "alpha": FilteredNoise(synapse=nengo.Alpha(0.01), dist=Uniform(-1, 1)),
    "brown": BrownNoise(Gaussian(0, 0.3)),
    "seeded": FilteredNoise(synapse=nengo.Lowpass(0.02), seed=5),
    "no_state": FilteredNoise(synapse=nengo.LinearFilter([2.0], [1.0]), scale=False),
    # with a direct term and two states: Nengo's General step, which cannot
    # increment a signal (so only as a Node's output, not as Ensemble noise)
    "general": FilteredNoise(synapse=nengo.LinearFilter([1, 0.5, 0.1], [0.01, 0.2, 1])),
}


def noisy_net(noise, ensemble_noise=True, seed=1):
    """A FilteredNoise Node into an ensemble that has the same noise on its
    neurons (an increment), and a WhiteNoise Node built after them (its seed
    follows theirs in Nengo's order)."""
    with nengo.Network(seed=seed) as net:
        source = nengo.Node(noise, size_out=3)
        ens = nengo.Ensemble(40, 3, noise=noise if ensemble_noise else None)
        nengo.Connection(source, ens)
        white = nengo.Node(WhiteNoise(), size_out=2)
        probes = [nengo.Probe(source), nengo.Probe(ens, synapse=0.01),
                  nengo.Probe(ens.neurons), nengo.Probe(white)]
    return net, source, probes


def run(net, probes, steps=(40, 60), enabled=True, **kwargs):
    """Probe data after runs of ``steps``, and the instruction kinds."""
    old, noise_split.ENABLED = noise_split.ENABLED, enabled
    try:
        with nengo_cuda.Simulator(net, progress_bar=False, **kwargs) as sim:
            for n in steps:
                sim.run_steps(n)
            return [np.array(sim.data[p]) for p in probes], [i.kind for i in sim.program]
    finally:
        noise_split.ENABLED = old


@pytest.mark.parametrize("device", ["cpu", "cuda-emulator"])
@pytest.mark.parametrize("name", sorted(NOISES))
def test_split_noise_is_nengos(name, device):
    net, _, probes = noisy_net(NOISES[name], ensemble_noise=name != "general")
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
    net, _, probes = noisy_net(NOISES[name])
    split, kinds = run(net, probes, dtype="float64", minibatch_size=3)
    whole, whole_kinds = run(net, probes, dtype="float64", minibatch_size=3, enabled=False)
    assert "callback" not in kinds and "callback" in whole_kinds
    for p, x, y in zip(probes, split, whole):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12, err_msg=str(p))
    assert not np.allclose(split[0][0], split[0][1])  # trials differ


def test_float32_within_float32_rounding():
    """float32 rounds the noise to float32 before filtering it (as it rounds
    white noise): within float32's rounding of Nengo's float64."""
    net, _, probes = noisy_net(NOISES["lowpass"], ensemble_noise=False)
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
    net, _, probes = noisy_net(OwnStep())
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
        nengo.Ensemble(20, 1, noise=NOISES["general"])
    with pytest.raises(ValueError, match="broadcast"):
        with nengo.Simulator(net, progress_bar=False) as ref:
            ref.run_steps(2)
    with pytest.raises(ValueError, match="broadcast"):
        with nengo_cuda.Simulator(net, dtype="float64", progress_bar=False) as sim:
            sim.run_steps(2)


def test_reset_draws_the_same_noise_again():
    net, _, probes = noisy_net(NOISES["brown"])
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
    net, _, probes = noisy_net(NOISES["lowpass"])
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(40)
    with tempfile.TemporaryDirectory() as folder:
        with nengo_cuda.Simulator(net, dtype="float64", progress_bar=False) as sim:
            sim.run_steps(20)
            sim.save_params(f"{folder}/state", include_state=True)
        with nengo_cuda.Simulator(net, dtype="float64", progress_bar=False) as sim:
            sim.load_params(f"{folder}/state", include_state=True)
            sim.run_steps(20)
            for p in probes:
                np.testing.assert_allclose(sim.data[p], ref.data[p][20:], rtol=1e-12,
                                           atol=1e-12)


def test_data_replaces_a_filtered_noise_node():
    net, source, probes = noisy_net(NOISES["lowpass"], ensemble_noise=False)
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
    net, _, _ = noisy_net(NOISES["alpha"])
    model = nengo.builder.Model(dt=0.001)
    model.build(net)
    dg, order, _ = order_operators(model, optimize=True)
    splits = noise_split.noise_signals(order)
    assert len(splits) == 2  # the Node's and the ensemble's
    kept, dg_kept, none = noise_split.split(order, dg, splits, lambda op: op not in
                                            [s.filter for s in splits.values()])
    assert (kept, dg_kept, none) == (order, dg, {})  # a filter without a kernel: no split
    new_order, new_dg, done = noise_split.split(order, dg, splits, lambda op: True)
    assert done == splits
    preds, new_preds = _predecessors(dg), _predecessors(new_dg)
    (time_update,) = [op for op in order if type(op) is TimeUpdate]
    for op, s in done.items():
        i = order.index(op)
        j = i + len([o for o in order[:i] if o in done])  # (each split before adds one)
        assert new_order[j : j + 2] == [s.white, s.filter]
        assert new_preds[s.white] == {time_update} and new_dg[s.white] == {s.filter}
        assert new_dg[s.filter] == dg[op]
        assert new_preds[s.filter] == preds[op] | {s.white}
        assert op not in new_dg and op not in new_preds and op not in new_order
    others = [op for op in order if op not in done]
    assert [op for op in new_order if op in set(others)] == others
    parts = {s.white for s in done.values()} | {s.filter for s in done.values()}
    for op in others:
        assert {s for s in new_dg.get(op, ()) if s not in parts} == \
            {s for s in dg.get(op, ()) if s not in done}
