"""`get_nengo_params` and `freeze_params`: trained parameters back into Nengo
objects, so that `nengo.Simulator` runs the trained network."""

import numpy as np
import nengo
import pytest

tf = pytest.importorskip("tensorflow")

import nengo_cuda  # noqa: E402


def _net():
    """Every kind of connection get_nengo_params handles: no weights (Node ->
    Ensemble), a transform into neurons (scaled by the gain when built), decoded,
    Sparse, Dense from neurons, and config max_rates (ignored once frozen)."""
    with nengo.Network(seed=2) as net:
        net.config[nengo.Ensemble].max_rates = nengo.dists.Choice([150])
        inp = nengo.Node(np.zeros(2))
        a = nengo.Ensemble(20, 2, neuron_type=nengo.LIFRate(), label="a")
        b = nengo.Ensemble(15, 1, neuron_type=nengo.RectifiedLinear(), radius=2, label="b")
        out = nengo.Node(size_in=3)
        plain = nengo.Connection(inp, a, synapse=None)
        to_neurons = nengo.Connection(inp, b.neurons, transform=np.full((15, 2), 0.1),
                                      synapse=None)
        decoded = nengo.Connection(a, b, function=lambda x: x[0] * x[1], synapse=0.005)
        sparse = nengo.Connection(b.neurons, out[:2], synapse=None, transform=nengo.Sparse(
            (2, 15), indices=[[0, 1], [1, 4], [0, 7], [1, 9]], init=[0.01, -0.02, 0.01, 0.02]))
        dense = nengo.Connection(a.neurons, out[2], transform=np.full((1, 20), 1e-3),
                                 synapse=0.01)
        p = nengo.Probe(out)
    return net, inp, p, (plain, to_neurons, decoded, sparse, dense)


def _inputs(n=8, steps=20):
    rng = np.random.RandomState(0)
    return np.tile(rng.uniform(-1, 1, (n, 1, 2)), (1, steps, 1))


def test_freeze_untrained_changes_nothing():
    net, inp, p, _ = _net()
    inp.output = [0.5, -0.3]  # into b.neurons too: scaled by b's gain when built
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(30)
    with nengo_cuda.Simulator(net, dtype="float64", progress_bar=False) as sim:
        sim.freeze_params(net)
    with nengo.Simulator(net, progress_bar=False) as frozen:
        frozen.run_steps(30)
    np.testing.assert_allclose(frozen.data[p], ref.data[p], atol=1e-12)


def test_freeze_trained_runs_in_nengo():
    net, inp, p, conns = _net()
    x = _inputs()
    y = np.zeros((len(x), x.shape[1], 3))
    with nengo_cuda.Simulator(net, minibatch_size=4, dtype="float64",
                              progress_bar=False) as sim:
        sim.compile(tf.optimizers.Adam(1e-3), loss="mse")
        before = sim.evaluate({inp: x}, {p: y})["loss"]
        sim.fit({inp: x}, {p: y}, epochs=10, verbose=0)
        after = sim.evaluate({inp: x}, {p: y})["loss"]
        trained = sim.predict({inp: x})[p]
        params = sim.get_nengo_params(list(conns))
        assert params[0] == {"transform": None}
        assert isinstance(params[3]["transform"], nengo.Sparse)
        a, b = net.ensembles
        assert sim.get_nengo_params(b.neurons).keys() == sim.get_nengo_params(b).keys()
        scaled, bias, weights = sim.data.get_params(
            (b, "scaled_encoders"), (b.neurons, "bias"), (conns[4], "weights"))
        np.testing.assert_array_equal(scaled, sim.data[b].scaled_encoders)
        np.testing.assert_array_equal(bias, sim.data[b].bias)
        np.testing.assert_array_equal(weights, sim.data[conns[4]].weights)
        assert not np.allclose(weights, 1e-3)  # trained
        sim.freeze_params(net)
    assert after < 0.7 * before
    for i in (0, 5):
        net.nodes[0].output = x[i, 0]
        with nengo.Simulator(net, progress_bar=False) as ref:
            ref.run_steps(x.shape[1])
        np.testing.assert_allclose(ref.data[p], trained[i], atol=1e-8)


def test_get_and_freeze_refuse_other_objects():
    net, inp, p, conns = _net()
    with nengo_cuda.Simulator(net, progress_bar=False) as sim:
        with pytest.raises(nengo.exceptions.ValidationError, match="not an Ensemble"):
            sim.get_nengo_params(p)
        with pytest.raises(TypeError, match="no parameters"):
            sim.freeze_params(p)
        with pytest.raises(nengo.exceptions.ValidationError, match="not part of the network"):
            sim.freeze_params(nengo.Ensemble(3, 1, add_to_container=False))
        # (a KeyError of the built model's dicts, naming no argument)
        for other in (nengo.Ensemble(3, 1, add_to_container=False),
                      nengo.Connection(inp, net.ensembles[0], add_to_container=False)):
            with pytest.raises(KeyError, match="get_nengo_params: not an object of the net"):
                sim.get_nengo_params(other)
        named = sim.get_nengo_params(net.ensembles, as_dict=True)
        assert set(named) == {"a", "b"}
        net.ensembles[1].label = "a"
        with pytest.raises(nengo.exceptions.ValidationError, match="not unique"):
            sim.get_nengo_params(net.ensembles, as_dict=True)



def test_full_weight_matrix_is_refused_whole():
    """A connection with a weights=True solver into an Ensemble has weights
    that Nengo builds as encoders x transform x decoders, which a trained
    matrix has no parameters for: get_nengo_params says so, and freeze_params
    changes nothing (not the ensembles frozen before it)."""
    with nengo.Network(seed=2) as net:
        a = nengo.Ensemble(20, 2, neuron_type=nengo.LIFRate())
        b = nengo.Ensemble(15, 2, neuron_type=nengo.LIFRate())
        conn = nengo.Connection(a, b, solver=nengo.solvers.LstsqL2(weights=True))
    with nengo_cuda.Simulator(net, progress_bar=False) as sim:
        with pytest.raises(nengo.exceptions.ValidationError, match="full weight matrix"):
            sim.get_nengo_params(conn)
        with pytest.raises(nengo.exceptions.ValidationError, match="full weight matrix"):
            sim.freeze_params(net)
    assert a.gain is None and a.encoders is nengo.Ensemble.encoders.default
    assert isinstance(conn.solver, nengo.solvers.LstsqL2) and conn.solver.weights
    with nengo.Simulator(net, progress_bar=False):
        pass  # builds as before


def test_freeze_params_undoes_its_writes_when_one_fails(monkeypatch):
    """A parameter that Nengo refuses as it is written (planted: a transform of
    the wrong shape) leaves every object as it was."""
    from nengo_cuda.training.parameter_io import ParameterIO

    net, inp, p, conns = _net()
    made = ParameterIO._nengo_params

    def planted(self, obj):
        return {"transform": np.ones((7, 7))} if obj is conns[2] else made(self, obj)

    monkeypatch.setattr(ParameterIO, "_nengo_params", planted)
    before = [(e.gain, e.bias, e.encoders) for e in net.ensembles]
    with nengo_cuda.Simulator(net, progress_bar=False) as sim:
        with pytest.raises(nengo.exceptions.ValidationError, match="Shape of initial value"):
            sim.freeze_params(net)
    assert [(e.gain, e.bias, e.encoders) for e in net.ensembles] == before
    assert conns[2].transform is not None and conns[2].solver.weights is False
    with nengo.Simulator(net, progress_bar=False):
        pass  # builds as before

def _merged_bias_build(net, **kwargs):
    """A build of ``net`` in which Nengo's optimizer merged the first ensemble's
    bias into a state base (one merged Copy reading biases and a synapse's
    output: most builds of the tutorial network)."""
    for _ in range(8):
        sim = nengo_cuda.Simulator(net, seed=1, dtype="float64", progress_bar=False, **kwargs)
        if not sim.layout.is_shared(sim.model.sig[net.ensembles[0].neurons]["bias"]):
            return sim
        sim.close()
    pytest.fail("no build merged the bias into a state base")


def test_parameters_merged_into_state_train_save_and_reset(tmp_path):
    """Biases that Nengo's optimizer merged into a state base train, save, load
    and survive reset(include_trainable=False) as in a build without merges."""
    from networks import tutorial

    net, probes = tutorial()
    inp, out_p = net.nodes[0], probes[1]
    ens = net.ensembles[0]
    x = np.random.RandomState(0).uniform(-1, 1, (8, 5, 1))

    def train(sim):
        sim.compile(tf.optimizers.Adam(1e-3), loss="mse")
        sim.fit({inp: x}, {out_p: x ** 2}, epochs=3, verbose=0)
        return sim.predict({inp: x})[out_p]

    with nengo_cuda.Simulator(net, seed=1, dtype="float64", optimize=False, minibatch_size=4,
                              progress_bar=False) as ref:
        built_bias = ref.data[ens].bias.copy()
        expected = train(ref)
        trained_bias = ref.data[ens].bias.copy()
    assert not np.allclose(trained_bias, built_bias)
    with _merged_bias_build(net, minibatch_size=4) as sim:
        np.testing.assert_allclose(train(sim), expected, atol=1e-10)
        np.testing.assert_allclose(sim.data[ens].bias, trained_bias, atol=1e-12)
        sim.save_params(tmp_path / "trained")
        sim.reset(include_trainable=False)
        np.testing.assert_allclose(sim.predict({inp: x})[out_p], expected, atol=1e-10)
        sim.reset()
        np.testing.assert_allclose(sim.data[ens].bias, built_bias, atol=1e-12)
    with nengo_cuda.Simulator(net, seed=1, dtype="float64", optimize=False, minibatch_size=4,
                              progress_bar=False) as other:
        other.load_params(tmp_path / "trained")  # the same keys in a build without merges
        np.testing.assert_allclose(other.predict({inp: x})[out_p], expected, atol=1e-10)
