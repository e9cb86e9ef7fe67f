"""What online learning rules learn is a parameter, as in NengoDL (`nengo_cuda.
parameters.LearnedParameters`): ``sim.data`` shows it, runs with
``stateful=False``, ``reset(include_trainable=False)`` and predict's minibatches
keep it, ``save_params``/``load_params`` carry it; Nengo's weights probe is the
oracle for its values."""

import warnings
import numpy as np
import nengo
import pytest
from nengo.exceptions import SimulationError

import nengo_cuda
from nengo_cuda.backends import select


def pes_network(seed=0):
    """NengoDL's test_online_learning_reset network, with a weights probe."""
    with nengo.Network(seed=seed) as net:
        stim = nengo.Node([1.0])
        ens = nengo.Ensemble(10, 1)
        out = nengo.Node(size_in=1)
        conn = nengo.Connection(ens, out, learning_rule_type=nengo.PES(1))
        nengo.Connection(stim, conn.learning_rule)
        nengo.Connection(stim, ens)
        weights = nengo.Probe(conn, "weights")
    return net, stim, conn, weights


DEVICE = "cpu"  # the backend `simulator` makes (set by the `device` fixture)


@pytest.fixture(params=["cpu", "cuda-emulator", pytest.param("cuda", marks=pytest.mark.skipif(
    not select.cuda_status()[0], reason=f"no CUDA: {select.cuda_status()[1]}"))], autouse=True)
def device(request):
    """Every test on the CPU backend, the CUDA backend's host emulator and a
    GPU when there is one (device pools go back to the host pools between
    runs; benchmarks/gpu_check.py runs the GPU ones)."""
    global DEVICE
    DEVICE = request.param
    yield request.param
    DEVICE = "cpu"


def simulator(net, **kwargs):
    return nengo_cuda.Simulator(net, dtype="float64", progress_bar=False, device=DEVICE,
                                **kwargs)


def test_data_shows_learned_weights_as_nengo_probes_them():
    net, _, conn, weights = pes_network()
    with simulator(net) as sim, nengo.Simulator(net, progress_bar=False) as ref:
        assert ("Cuda" in type(sim.backend).__name__) == (DEVICE != "cpu")
        built = np.array(sim.data[conn].weights)
        sim.run_steps(50)
        ref.run_steps(50)
        np.testing.assert_allclose(sim.data[conn].weights, ref.data[weights][-1],
                                   rtol=0, atol=1e-12)
        assert not np.allclose(sim.data[conn].weights, built)
    # after close, the built ones (Nengo's; NengoDL's, which warns)
    with pytest.warns(UserWarning, match="after simulator is closed"):
        np.testing.assert_array_equal(sim.data[conn].weights, built)
    with simulator(net) as unused:
        pass
    with warnings.catch_warnings():  # no warning where nothing changed
        warnings.simplefilter("error")
        np.testing.assert_array_equal(unused.data[conn].weights, built)


def test_data_shows_each_trials_learned_values():
    """With a minibatch_size, each trial learns on its own: sim.data gives all
    trials' weights and Voja encoders (a leading minibatch axis, as NengoDL's),
    each Nengo's for that trial's input; without one, trial 0's as before."""
    with nengo.Network(seed=0) as net:
        u = nengo.Node([0.0, 0.0])
        ens = nengo.Ensemble(12, 2)
        voja = nengo.Connection(u, ens, learning_rule_type=nengo.Voja(learning_rate=1e-1))
        out = nengo.Node(size_in=2)
        pes = nengo.Connection(ens, out, learning_rule_type=nengo.PES(learning_rate=1e-3))
        nengo.Connection(u, pes.learning_rule, transform=-1)
        encoders = nengo.Probe(voja.learning_rule, "scaled_encoders")
        weights = nengo.Probe(pes, "weights")
    inputs = [[0.5, -0.3], [-0.5, 0.9], [0.1, 0.0]]
    refs = []
    for value in inputs:
        u.output = value
        with nengo.Simulator(net, progress_bar=False) as ref:
            ref.run_steps(30)
        refs.append((ref.data[encoders][-1], ref.data[weights][-1], ref.data[ens]))
    u.output = [0.0, 0.0]
    data = {u: np.repeat(np.array(inputs)[:, None, :], 30, axis=1)}
    with simulator(net, minibatch_size=3) as sim:
        sim.run_steps(30, data=data)
        e, w = sim.data[ens], sim.data[pes].weights
        assert w.shape == (3, 2, 12) and e.scaled_encoders.shape == (3, 12, 2)
        assert e.gain.shape == e.max_rates.shape == (3, 12)
        for trial, (ref_encoders, ref_weights, built) in enumerate(refs):
            np.testing.assert_allclose(e.scaled_encoders[trial], ref_encoders, atol=1e-12)
            np.testing.assert_allclose(w[trial], ref_weights, atol=1e-12)
            np.testing.assert_allclose(e.gain[trial, :, None] * e.encoders[trial] / ens.radius,
                                       ref_encoders, atol=1e-12)
            assert not np.allclose(e.gain[trial], built.gain)
    u.output = inputs[1]
    with simulator(net) as sim:
        sim.run_steps(30)
        np.testing.assert_allclose(sim.data[pes].weights, refs[1][1], atol=1e-12)


def test_learned_values_have_the_minibatch_axis_before_they_move():
    """NengoDL's shapes: with a minibatch_size, a learning connection's weights
    and Voja's encoders are per trial from the start (before any step, and
    where the error stays zero), not only once they differ from the build."""
    with nengo.Network(seed=0) as net:
        u = nengo.Node([0.5, -0.5])
        ens = nengo.Ensemble(11, 2)
        nengo.Connection(u, ens, learning_rule_type=nengo.Voja(learning_rate=0))
        pes = nengo.Connection(ens, nengo.Node(size_in=2), learning_rule_type=nengo.PES())
        nengo.Connection(nengo.Node([0, 0]), pes.learning_rule)
    with simulator(net, minibatch_size=3) as sim:
        built = sim.data.raw[pes].weights
        for steps in (0, 10):
            sim.run_steps(steps)
            assert sim.data[pes].weights.shape == (3, 2, 11)
            np.testing.assert_array_equal(sim.data[pes].weights, np.repeat(built[None], 3, 0))
            assert sim.data[ens].encoders.shape == (3, 11, 2)
            np.testing.assert_allclose(sim.data[ens].gain, np.repeat(
                sim.data.raw[ens].gain[None], 3, 0), rtol=1e-6)
    with simulator(net) as sim:
        assert sim.data[pes].weights.shape == (2, 11)
        assert sim.data[ens] is sim.data.raw[ens]  # (unchanged: Nengo's own)


def test_voja_encoders_of_a_generic_neuron_type_per_trial():
    """Izhikevich's max rates and intercepts come from Nengo's generic method,
    which takes one population: sim.data gives them per trial, each trial's
    as Nengo computes it for that trial's gain and bias."""
    with nengo.Network(seed=2) as net:
        ens = nengo.Ensemble(8, 1, neuron_type=nengo.Izhikevich())
        nengo.Connection(nengo.Node([0.5]), ens, learning_rule_type=nengo.Voja())
    with simulator(net, minibatch_size=2) as sim:
        sim.run_steps(5)
        data = sim.data[ens]
        assert data.max_rates.shape == data.intercepts.shape == (2, 8)
        bias = np.broadcast_to(data.bias, data.gain.shape)  # (Voja moves no bias)
        for trial in range(2):
            rates, intercepts = ens.neuron_type.max_rates_intercepts(data.gain[trial],
                                                                     bias[trial])
            np.testing.assert_array_equal(data.max_rates[trial], rates)
            np.testing.assert_array_equal(data.intercepts[trial], intercepts)


def test_voja_encoders_in_data():
    with nengo.Network(seed=1) as net:
        stim = nengo.Node([0.5, -0.5])
        ens = nengo.Ensemble(12, 2)
        conn = nengo.Connection(stim, ens, learning_rule_type=nengo.Voja(learning_rate=1e-1))
        probe = nengo.Probe(conn.learning_rule, "scaled_encoders")
    with simulator(net) as sim, nengo.Simulator(net, progress_bar=False) as ref:
        sim.run_steps(40)
        ref.run_steps(40)
        np.testing.assert_allclose(sim.data[ens].scaled_encoders, ref.data[probe][-1],
                                   rtol=0, atol=1e-12)
        assert not np.allclose(sim.data[ens].scaled_encoders, ref.data[ens].scaled_encoders)


def test_online_learning_reset(tmp_path):
    """NengoDL 3.6's test_learning_rules.py::test_online_learning_reset."""
    net, _, conn, _ = pes_network()
    with simulator(net) as sim:
        w0 = np.array(sim.data[conn].weights)
        sim.run(0.1, stateful=False)
        w1 = np.array(sim.data[conn].weights)
        sim.save_params(tmp_path / "tmp")
        assert not np.allclose(w0, w1)
        sim.reset(include_trainable=False)
        np.testing.assert_array_equal(sim.data[conn].weights, w1)
        sim.reset(include_trainable=True)
        np.testing.assert_array_equal(sim.data[conn].weights, w0)
    with simulator(net) as sim:
        assert not np.allclose(w1, sim.data[conn].weights)
        sim.load_params(tmp_path / "tmp")
        np.testing.assert_array_equal(sim.data[conn].weights, w1)


def test_stateful_false_runs_keep_learning():
    """A stateful=False run returns the state to where it was, but the next run
    learns on from its weights: two such runs learn what one run learns from
    the same start twice."""
    net, _, conn, weights = pes_network()
    with simulator(net) as sim:
        sim.run_steps(30, stateful=False)
        after_one = np.array(sim.data[conn].weights)
        assert sim.n_steps == 0
        sim.run_steps(30, stateful=False)
        first_of_second = sim.data[weights][30]
    with simulator(net) as ref:
        ref.run_steps(30)
        np.testing.assert_array_equal(after_one, ref.data[conn].weights)
        # the second run starts from the learned weights in the initial state:
        # its first step equals the first step of a run that starts there
        ref.reset(include_trainable=False)
        ref.run_steps(1)
        np.testing.assert_array_equal(first_of_second, ref.data[weights][0])


def test_configured_stateless_runs_keep_learning():
    net, _, conn, weights = pes_network()
    with net:
        nengo_cuda.configure_settings(stateful=False)
    with simulator(net) as sim:
        sim.run_steps(20)
        learned = np.array(sim.data[conn].weights)
        sim.run_steps(20)
        assert not np.allclose(sim.data[weights][20], sim.data[weights][0])
        np.testing.assert_array_equal(sim.data[weights][19], learned)


def test_each_trial_learns_its_own_and_save_load_keeps_them(tmp_path):
    net, stim, conn, weights = pes_network()
    feed = np.linspace(-1, 1, 3)[:, None, None] * np.ones((3, 25, 1))
    with simulator(net, minibatch_size=3) as sim:
        sim.run_steps(25, data={stim: feed})
        learned = np.array(sim.data[weights][:, -1])
        assert not np.allclose(learned[0], learned[2])
        sim.save_params(tmp_path / "three")
    with simulator(net, minibatch_size=3) as sim:
        sim.load_params(tmp_path / "three")
        sim.reset(include_trainable=False)
        sim.run_steps(1, data={stim: feed[:, :1]})
        again = sim.data[weights][:, 0]
    with simulator(net, minibatch_size=3) as ref:
        ref.run_steps(25, data={stim: feed})
        ref.reset(include_trainable=False)
        ref.run_steps(1, data={stim: feed[:, :1]})
        np.testing.assert_array_equal(again, ref.data[weights][:, 0])
    with simulator(net, minibatch_size=2) as other:
        with pytest.raises(SimulationError, match="learned .* 3 trial"):
            other.load_params(tmp_path / "three")


def test_one_trials_learning_loads_into_every_trial(tmp_path):
    net, _, conn, weights = pes_network()
    with simulator(net) as sim:
        sim.run_steps(25)
        sim.save_params(tmp_path / "one")
        sim.reset(include_trainable=False)
        sim.run_steps(1)
        expected = sim.data[weights][0]
    with simulator(net, minibatch_size=2) as sim:
        sim.load_params(tmp_path / "one")
        sim.run_steps(1)
        for trial in range(2):
            np.testing.assert_array_equal(sim.data[weights][trial, 0], expected)


def test_predict_learns_through_its_minibatches():
    pytest.importorskip("tensorflow")
    net, stim, conn, weights = pes_network()
    x = np.ones((4, 10, 1))
    with simulator(net, minibatch_size=2) as sim:
        out = sim.predict({stim: x})
        # the second minibatch starts from the state of the first's start, but
        # with the weights that the first learned
        assert not np.allclose(out[weights][2, 0], out[weights][0, 0])
        learned = sim.data[conn].weights  # (each trial's: the last minibatch's items)
        np.testing.assert_array_equal(learned.reshape(2, -1), out[weights][2:, -1])
    with simulator(net, minibatch_size=2) as ref:
        ref.run_steps(10, data={stim: x[:2]})
        ref.reset(include_trainable=False)
        ref.run_steps(10, data={stim: x[2:]})
        np.testing.assert_array_equal(out[weights][2:], ref.data[weights].reshape(2, 10, -1))
