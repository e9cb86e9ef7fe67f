"""NengoSPA models against nengo.Simulator (the oracle).

NengoSPA builds plain Nengo networks (ensemble arrays, circular convolution,
basal ganglia, thalamus, associative memories, Python-function transcoders), so
a user's SPA model must run on nengo_cuda unchanged and give Nengo's numbers.
The whole NengoSPA test suite runs against nengo_cuda with `make test-spa`
(tests/conformance/spa_plugin.py); these tests are the fast oracle
comparison inside our own suite.
"""

import nengo
import numpy as np
import pytest

import nengo_cuda
from test_networks import FLOAT32_ATOL

spa = pytest.importorskip("nengo_spa")

D = 16


def _action_selection():
    """A state, two rules chosen by the basal ganglia and thalamus."""
    vocab = spa.Vocabulary(D, pointer_gen=np.random.RandomState(1))
    vocab.populate("A; B; C; D")
    with spa.Network(seed=2) as model:
        cue = spa.Transcode(lambda t: "A" if t < 0.1 else "B", output_vocab=vocab)
        state = spa.State(vocab)
        out = spa.State(vocab)
        cue >> state
        with spa.ActionSelection():
            spa.ifmax(spa.dot(state, spa.sym.A), spa.sym.C >> out)
            spa.ifmax(spa.dot(state, spa.sym.B), spa.sym.D >> out)
        probes = [
            nengo.Probe(out.output, synapse=0.03),
            nengo.Probe(state.output, synapse=0.03),
        ]
    return model, probes, vocab


def _binding(algebra):
    """Bind two constant pointers and unbind one again (circular convolution, VTB)."""
    vocab = spa.Vocabulary(D, pointer_gen=np.random.RandomState(3), algebra=algebra)
    vocab.populate("X; Y")
    with spa.Network(seed=4) as model:
        a = spa.Transcode("X", output_vocab=vocab)
        b = spa.Transcode("Y", output_vocab=vocab)
        bound = spa.State(vocab, subdimensions=4)
        unbound = spa.State(vocab)
        a * b >> bound
        bound * b.rinv() >> unbound  # right inverse: defined in HRR and VTB
        probes = [
            nengo.Probe(bound.output, synapse=0.03),
            nengo.Probe(unbound.output, synapse=0.03),
        ]
    return model, probes, vocab


def _memory():
    """A recurrent state (feedback 1) and a thresholding associative memory."""
    vocab = spa.Vocabulary(D, pointer_gen=np.random.RandomState(5))
    vocab.populate("P; Q; R")
    with spa.Network(seed=6) as model:
        cue = spa.Transcode(lambda t: "P" if t < 0.05 else "0", output_vocab=vocab)
        memory = spa.State(vocab, feedback=1.0)
        cleanup = spa.ThresholdingAssocMem(0.3, input_vocab=vocab, mapping=vocab.keys())
        cue >> memory
        memory >> cleanup
        probes = [
            nengo.Probe(memory.output, synapse=0.03),
            nengo.Probe(cleanup.output, synapse=0.03),
        ]
    return model, probes, vocab


MODELS = {
    "action_selection": _action_selection,
    "binding_hrr": lambda: _binding(spa.algebras.HrrAlgebra()),
    "binding_vtb": lambda: _binding(spa.algebras.VtbAlgebra()),
    "memory": _memory,
}
T = 0.25


def _reference(model, probes):
    with nengo.Simulator(model, progress_bar=False) as ref:
        ref.run(T)
        return [ref.data[p] for p in probes]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_float64_matches_nengo(name):
    model, probes, _ = MODELS[name]()
    expected = _reference(model, probes)
    with nengo_cuda.Simulator(model, dtype="float64", progress_bar=False) as sim:
        sim.run(T)
        for p, e in zip(probes, expected):
            assert sim.data[p].shape == e.shape
            np.testing.assert_allclose(sim.data[p], e, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_float32_close_to_nengo(name):
    """float32 (the default): decoded outputs within FLOAT32_ATOL of Nengo's (a
    spike moved by a step, see test_networks.py), and the same pointer wins."""
    model, probes, vocab = MODELS[name]()
    expected = _reference(model, probes)
    with nengo_cuda.Simulator(model, progress_bar=False) as sim:
        sim.run(T)
        for p, e in zip(probes, expected):
            np.testing.assert_allclose(sim.data[p], e, atol=FLOAT32_ATOL)
            ours = spa.similarity(sim.data[p][-1], vocab)
            assert np.argmax(ours) == np.argmax(spa.similarity(e[-1], vocab))


def test_action_selection_chooses_the_rule():
    """Not only equal to Nengo: the model does what it says (C while A, then D)."""
    model, probes, vocab = _action_selection()
    with nengo_cuda.Simulator(model, progress_bar=False) as sim:
        sim.run(T)
        t = sim.trange()
        out = sim.data[probes[0]]
    first = spa.similarity(out[(t > 0.07) & (t < 0.1)], vocab).mean(axis=0)
    last = spa.similarity(out[t > 0.22], vocab).mean(axis=0)
    keys = list(vocab.keys())
    assert keys[np.argmax(first)] == "C"
    assert keys[np.argmax(last)] == "D"


def test_minibatch_trials_match_nengo():
    """SPA models have no noise: every trial of a minibatch is Nengo's run."""
    model, probes, _ = _binding(spa.algebras.HrrAlgebra())
    expected = _reference(model, probes)
    with nengo_cuda.Simulator(model, dtype="float64", minibatch_size=3,
                              progress_bar=False) as sim:
        sim.run(T)
        for p, e in zip(probes, expected):
            assert sim.data[p].shape == (3,) + e.shape
            for trial in sim.data[p]:
                np.testing.assert_allclose(trial, e, rtol=1e-9, atol=1e-9)


def test_cuda_emulator_matches_nengo():
    """The CUDA backend's program (on its host emulator) on a SPA model."""
    model, probes, _ = _action_selection()
    expected = _reference(model, probes)
    with nengo_cuda.Simulator(model, dtype="float64", device="cuda-emulator",
                              progress_bar=False) as sim:
        sim.run(T)
        for p, e in zip(probes, expected):
            np.testing.assert_allclose(sim.data[p], e, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", ["action_selection", "memory"])
def test_saved_state_continues_in_a_fresh_build(name, tmp_path):
    """save_params(include_state=True) of an SPA model (bias Nodes that no
    operator reads are placed too) continues in another build."""
    pytest.importorskip("tensorflow")
    model, probes, _ = MODELS[name]()
    with nengo_cuda.Simulator(model, dtype="float64", progress_bar=False) as sim:
        sim.run_steps(100)
        sim.save_params(tmp_path / "state", include_state=True)
        sim.run_steps(50)
        expected = [sim.data[p][-50:] for p in probes]
    with nengo_cuda.Simulator(model, dtype="float64", progress_bar=False) as sim:
        sim.load_params(tmp_path / "state", include_state=True)
        sim.run_steps(50)
        for p, e in zip(probes, expected):
            np.testing.assert_allclose(sim.data[p], e, rtol=1e-9, atol=1e-9)
