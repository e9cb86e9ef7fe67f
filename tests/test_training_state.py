"""NengoDL 3's simulation-state semantics: ``stateful`` in predict, predict_on_batch,
evaluate, fit and run_steps; ``reset(include_trainable, include_probes,
include_processes)``; and fit's Keras-like History (see docs/training-state.md)."""

import itertools
import warnings

import numpy as np
import pytest
import nengo

import nengo_cuda
from networks import NETWORKS, mixed_network

tf = pytest.importorskip("tensorflow")

DT = 0.001


def _net(output, neuron_type=None, seed=7):
    """input Node -> Ensemble -> decoded Connection -> Ensemble, probed with synapses."""
    with nengo.Network(seed=seed) as net:
        inp = nengo.Node(output, size_out=1)
        a = nengo.Ensemble(12, 1, neuron_type=neuron_type or nengo.LIF())
        b = nengo.Ensemble(10, 1, neuron_type=neuron_type or nengo.LIF())
        nengo.Connection(inp, a, synapse=0.005)
        conn = nengo.Connection(a, b, synapse=0.01, function=lambda x: x ** 2)
        p = nengo.Probe(b, synapse=0.02)
    return net, inp, a, conn, p


def _signal(n_steps, seed=0):
    t = np.arange(1, n_steps + 1) * DT
    phase = np.random.RandomState(seed).uniform(0, 2 * np.pi)
    return np.sin(2 * np.pi * 7 * t + phase)[:, None]


def _from_array(values):
    """A Node output giving ``values[step - 1]`` at time ``step * dt`` (Nengo's)."""
    return lambda t: values[int(round(t / DT)) - 1]


def _nengo_ref(values, neuron_type=None):
    net, _, _, _, p = _net(_from_array(values), neuron_type)
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(len(values))
    return ref.data[p]


def test_predict_stateful_continues_like_nengo():
    """predict(stateful=True) twice = one 100-step Nengo run; stateful=False leaves
    the state (n_steps, time, signals) as it was, and sim.data is never touched."""
    values = _signal(150)
    ref = _nengo_ref(values)
    net, inp, _, _, p = _net(_from_array(values))
    with nengo_cuda.Simulator(net, dtype="float64", progress_bar=False) as sim:
        first = sim.predict(n_steps=50, stateful=True)[p]
        assert sim.n_steps == 50 and sim.time == pytest.approx(0.05)
        second = sim.predict(n_steps=50, stateful=True)[p]
        assert sim.n_steps == 100 and sim.time == pytest.approx(0.1)
        np.testing.assert_allclose(np.concatenate([first, second], axis=1)[0], ref[:100],
                                   atol=1e-9)
        assert len(sim.data[p]) == 0  # predict does not record probe data

        # stateful=False (the default): starts from the current state, keeps it
        state = sim._save_state()
        third = sim.predict(n_steps=50)[p]
        again = sim.predict_on_batch(n_steps=50, stateful=False)[p]
        np.testing.assert_allclose(third[0], ref[100:150], atol=1e-9)
        np.testing.assert_array_equal(again, third)
        assert sim.n_steps == 100 and sim.time == pytest.approx(0.1)
        np.testing.assert_array_equal(sim._save_state()["f"], state["f"])

        # run_steps continues from the same state, and records
        sim.run_steps(50)
        np.testing.assert_allclose(sim.data[p], ref[100:150], atol=1e-9)
        assert sim.n_steps == 150


def test_predict_data_stateful_equals_run_steps():
    """With input data and minibatches: stateful=True runs the minibatches one after
    another (each continuing the last); stateful=False starts each from the state
    at the call."""
    net, inp, _, _, p = _net(np.zeros(1))
    rng = np.random.RandomState(1)
    x = rng.uniform(-1, 1, (2, 30, 1))
    x4 = np.concatenate([x, x])  # two minibatches of the same two items
    with nengo_cuda.Simulator(net, minibatch_size=2, progress_bar=False) as ref:
        ref.run_steps(30, data={inp: x})
        ref.run_steps(30, data={inp: x})
        expected = ref.data[p]
    with nengo_cuda.Simulator(net, minibatch_size=2, progress_bar=False) as sim:
        out = sim.predict({inp: x4}, stateful=True)[p]
        np.testing.assert_allclose(out[:2], expected[:, :30], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out[2:], expected[:, 30:], rtol=1e-5, atol=1e-6)
        assert sim.n_steps == 60

        out = sim.predict({inp: x4})[p]  # both minibatches from the state at step 60
        np.testing.assert_array_equal(out[:2], out[2:])
        assert not np.allclose(out[:2], expected[:, :30], atol=1e-3)
        assert sim.n_steps == 60


def test_evaluate_stateful():
    net, inp, _, _, p = _net(np.zeros(1))
    rng = np.random.RandomState(2)
    x = rng.uniform(-1, 1, (4, 20, 1))
    y = rng.uniform(-1, 1, (4, 20, 1))
    with nengo_cuda.Simulator(net, minibatch_size=2, progress_bar=False) as ref:
        out = ref.predict({inp: x}, stateful=True)[p]
    with nengo_cuda.Simulator(net, minibatch_size=2, progress_bar=False) as sim:
        sim.compile(loss="mse")
        loss = sim.evaluate({inp: x}, {p: y}, stateful=True)["loss"]
        np.testing.assert_allclose(loss, np.mean((out - y) ** 2), rtol=1e-5)
        assert sim.n_steps == 40  # two minibatches of 20 steps
        a = sim.evaluate({inp: x}, {p: y})["loss"]
        b = sim.evaluate({inp: x}, {p: y}, stateful=False)["loss"]
        assert a == b and sim.n_steps == 40
        assert not np.isclose(a, loss, rtol=1e-3)  # from step 40, not from the start


def test_run_steps_stateful_false():
    net, _, _, _, p = _net(_from_array(_signal(100)))
    with nengo_cuda.Simulator(net, progress_bar=False) as sim:
        sim.run_steps(20)
        sim.run_steps(30, stateful=False)
        assert sim.n_steps == 20 and sim.data[p].shape == (50, 1)
        sim.run_steps(30)
        assert sim.n_steps == 50 and sim.data[p].shape == (80, 1)
        np.testing.assert_array_equal(sim.data[p][50:], sim.data[p][20:50])


def test_configured_stateless_ignores_stateful_true():
    net, inp, _, _, p = _net(np.zeros(1))
    with net:
        nengo_cuda.configure_settings(stateful=False)
    x = np.random.RandomState(3).uniform(-1, 1, (1, 20, 1))
    with nengo_cuda.Simulator(net, progress_bar=False) as sim:
        first = sim.predict({inp: x})[p]
        with pytest.warns(UserWarning, match="Ignoring stateful=True"):
            second = sim.predict({inp: x}, stateful=True)[p]
        np.testing.assert_array_equal(first, second)
        assert sim.n_steps == 0


@pytest.mark.parametrize("sim_stateful, func_stateful", [(True, True), (True, False),
                                                         (False, True)])
@pytest.mark.parametrize("func", ("predict_on_batch", "predict", "run_steps"))
def test_stateful(sim_stateful, func_stateful, func):
    """NengoDL 3.6's test_config.py::test_stateful: n_steps advances only when
    both the network and the call are stateful; only predict warns that it
    ignores stateful=True (run_steps and predict_on_batch follow the config)."""
    with nengo.Network() as net:
        nengo_cuda.configure_settings(stateful=sim_stateful)
        ens = nengo.Ensemble(30, 1)
        p = nengo.Probe(ens.neurons, "voltage")
    with nengo_cuda.Simulator(net, progress_bar=False) as sim:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            first = getattr(sim, func)(n_steps=5, stateful=func_stateful)
        assert sim.n_steps == (5 if func_stateful and sim_stateful else 0)
        ignored = any("Ignoring stateful=True" in str(w.message) for w in caught)
        assert ignored == (func == "predict" and func_stateful and not sim_stateful)
        second = getattr(sim, func)(n_steps=5, stateful=func_stateful)
        assert sim.n_steps == (10 if func_stateful and sim_stateful else 0)
        if func == "run_steps":
            first, second = sim.data[p][:5], sim.data[p][5:]
            assert len(sim.data[p]) == 10  # probe data kept in every case
        else:
            first, second = first[p], second[p]
        # a run that is not stateful starts where the one before started
        assert np.array_equal(first, second) == (not (func_stateful and sim_stateful))


def test_fit_stateful():
    """fit continues (stateful=True) or starts from (False) the simulator's state,
    here checked with a learning rate of 0 on a rate network, where training's
    forward pass equals the simulation."""
    neuron = nengo.LIFRate()
    values = _signal(120, seed=4)
    ref = _nengo_ref(values, neuron)
    net, inp, _, _, p = _net(np.zeros(1), neuron)
    x = values[None]
    with nengo_cuda.Simulator(net, dtype="float64", progress_bar=False) as sim:
        sim.compile(tf.keras.optimizers.SGD(0.0), loss="mse")
        target = np.zeros((1, 40, 1))
        sim.run_steps(40, data={inp: x[:, :40]})
        state = sim._save_state()["f"]
        history = sim.fit({inp: x[:, 40:80]}, {p: target}, epochs=2)  # stateful=False
        np.testing.assert_allclose(history.history["loss"],
                                   [np.mean(ref[40:80] ** 2)] * 2, rtol=1e-6)
        assert sim.n_steps == 40
        np.testing.assert_array_equal(sim._save_state()["f"], state)

        sim.fit({inp: x[:, 40:80]}, {p: target}, stateful=True)
        assert sim.n_steps == 80 and sim.time == pytest.approx(0.08)
        out = sim.predict({inp: x[:, 80:]})[p]
        np.testing.assert_allclose(out[0], ref[80:], atol=1e-8)
        sim.run_steps(40, data={inp: x[:, 80:]})
        np.testing.assert_allclose(sim.data[p][40:], ref[80:], atol=1e-8)


def _trained_net():
    with nengo.Network(seed=5) as net:
        inp = nengo.Node(np.zeros(1))
        ens = nengo.Ensemble(10, 1, neuron_type=nengo.RectifiedLinear())
        nengo.Connection(inp, ens, synapse=None)
        dense = tf.keras.layers.Dense(1, kernel_initializer="ones")
        out = nengo_cuda.Layer(dense)(ens)
        p = nengo.Probe(out)
    return net, inp, ens, dense, p


def test_reset_include_trainable():
    """reset() undoes fit (Nengo parameters and Keras layer weights);
    reset(include_trainable=False) keeps it; both return to step 0."""
    net, inp, ens, dense, p = _trained_net()
    x = np.linspace(-1, 1, 8).reshape(8, 1, 1)
    y = 0.5 * x
    with nengo_cuda.Simulator(net, minibatch_size=4, progress_bar=False) as sim:
        enc0 = np.array(sim.signals[sim.model.sig[ens]["encoders"]])
        w0 = dense.kernel.numpy().copy()
        before = sim.predict({inp: x})[p]
        sim.compile(tf.keras.optimizers.Adam(0.01), loss="mse")
        first = sim.fit({inp: x}, {p: y}, epochs=3, shuffle=False).history["loss"]
        trained = sim.predict({inp: x})[p]
        assert not np.allclose(trained, before)
        assert not np.allclose(dense.kernel.numpy(), w0)
        assert not np.allclose(sim.signals[sim.model.sig[ens]["encoders"]], enc0)

        sim.run_steps(1, data={inp: x[:4]})
        sim.reset(include_trainable=False, include_probes=False)
        assert sim.n_steps == 0 and sim.data[p].shape == (4, 1, 1)
        np.testing.assert_array_equal(sim.predict({inp: x})[p], trained)

        sim.reset()
        assert len(sim.data[p][0]) == 0
        np.testing.assert_array_equal(np.array(sim.signals[sim.model.sig[ens]["encoders"]]), enc0)
        np.testing.assert_array_equal(dense.kernel.numpy(), w0)
        np.testing.assert_array_equal(sim.predict({inp: x})[p], before)
        # training restarts from the initial parameters too (a fresh optimizer:
        # reset does not reset the optimizer's own state, as in NengoDL)
        sim.compile(tf.keras.optimizers.Adam(0.01), loss="mse")
        again = sim.fit({inp: x}, {p: y}, epochs=3, shuffle=False).history["loss"]
        np.testing.assert_allclose(again, first, rtol=1e-6)


def test_reset_include_processes():
    with nengo.Network(seed=6) as net:
        noise = nengo.Node(nengo.processes.WhiteNoise(seed=1), size_out=1)
        p = nengo.Probe(noise)
    with nengo_cuda.Simulator(net, progress_bar=False) as sim:
        sim.run_steps(10)
        first = sim.data[p].copy()
        sim.reset(include_processes=False)
        sim.run_steps(10)
        assert not np.allclose(sim.data[p], first)  # the noise stream continued
        sim.reset()
        sim.run_steps(10)
        np.testing.assert_array_equal(sim.data[p], first)

        # stateful=False rewinds the native noise streams with the state
        sim.predict(n_steps=10)
        sim.run_steps(10)
        with nengo.Simulator(net, progress_bar=False) as ref:
            ref.run_steps(20)
        np.testing.assert_allclose(sim.data[p], ref.data[p], rtol=1e-6)


def test_fit_history_names_and_values():
    """History holds, per epoch, evaluate's names: "loss", "<probe>_loss",
    "<probe>_<metric>", with the values of the training forward pass."""
    with nengo.Network(seed=8) as net:
        inp = nengo.Node(np.zeros(1))
        ens = nengo.Ensemble(8, 1, neuron_type=nengo.RectifiedLinear())
        nengo.Connection(inp, ens, synapse=None)
        p_a = nengo.Probe(ens, label="out")
        p_b = nengo.Probe(ens.neurons[:2])
    rng = np.random.RandomState(0)
    x = rng.uniform(-1, 1, (4, 3, 1))
    y = {p_a: rng.uniform(-1, 1, (4, 3, 1)), p_b: rng.uniform(0, 20, (4, 3, 2))}
    with nengo_cuda.Simulator(net, minibatch_size=2, progress_bar=False) as sim:
        out = sim._trainer().forward({inp: x})
        sim.compile(tf.keras.optimizers.SGD(0.0), loss="mse", loss_weights={p_b: 0.5},
                    metrics={"out": ["mae", tf.keras.metrics.MeanSquaredError(name="mse")]})
        history = sim.fit({inp: x}, y, epochs=2)
        evaluated = sim.evaluate({inp: x}, y)
    assert isinstance(history, tf.keras.callbacks.History)
    assert history.epoch == [0, 1]
    assert set(history.history) == set(evaluated) == {
        "loss", "out_loss", "out_mae", "out_mse", "probe_loss"}
    mse = {p: np.mean((out[p] - y[p]) ** 2) for p in y}
    for name, value in [("out_loss", mse[p_a]), ("probe_loss", mse[p_b]),
                        ("loss", mse[p_a] + 0.5 * mse[p_b]), ("out_mse", mse[p_a]),
                        ("out_mae", np.mean(np.abs(out[p_a] - y[p_a])))]:
        np.testing.assert_allclose(history.history[name], [value] * 2, rtol=1e-5, err_msg=name)


def test_stateful_rejects_bad_calls():
    """Bad input still gets clear errors naming the object, whatever ``stateful``."""
    net, inp, _, _, p = _net(np.zeros(1))
    with nengo_cuda.Simulator(net, minibatch_size=2, progress_bar=False) as sim:
        with pytest.raises(nengo.exceptions.ValidationError, match="exactly one minibatch"):
            sim.predict_on_batch({inp: np.zeros((4, 5, 1))}, stateful=True)
        with pytest.raises(nengo.exceptions.ValidationError, match="steps"):
            sim.run_steps(2.5, stateful=False)
        assert sim.n_steps == 0
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            sim.predict({inp: np.zeros((2, 5, 1))}, stateful=True)
        assert sim.n_steps == 5


def _stateful_net(seed=3):
    """Filters, adapting neurons and white noise: state that persists between steps,
    in signals Nengo's optimizer merges (in another order in each build)."""
    with nengo.Network(seed=seed) as net:
        inp = nengo.Node(nengo.processes.WhiteNoise(seed=1), size_out=2)
        a = nengo.Ensemble(12, 2)
        b = nengo.Ensemble(10, 2, neuron_type=nengo.AdaptiveLIF(tau_n=0.05))
        c = nengo.Ensemble(8, 1)
        nengo.Connection(inp, a, synapse=0.005)
        nengo.Connection(a, b, synapse=0.01)
        nengo.Connection(b[0], c, synapse=nengo.Alpha(0.02))
        nengo.Connection(c, a[1], synapse=0.01)
        nengo.Node([0.5])  # an input no operator uses (placed for data=)
        p = nengo.Probe(c, synapse=0.02)
    return net, p


def test_save_params_include_state(tmp_path):
    """NengoDL 3.2's include_state: a loaded state continues the saved run
    (white noise's random stream too) in other builds of the network, whose
    optimizer merged the state signals in other orders; the state of another
    network or minibatch size is refused."""
    net, p = _stateful_net()
    with nengo_cuda.Simulator(net, progress_bar=False) as sim:
        sim.run_steps(40)
        sim.save_params(tmp_path / "with_state", include_state=True)
        sim.save_params(tmp_path / "params_only")
        sim.run_steps(30)
        expected = sim.data[p][40:].copy()
    for _ in range(4):
        with nengo_cuda.Simulator(net, progress_bar=False) as sim:
            sim.load_params(tmp_path / "with_state", include_state=True)
            assert sim.n_steps == 40 and sim.time == pytest.approx(0.04)
            sim.run_steps(30)
            np.testing.assert_allclose(sim.data[p], expected, atol=1e-6)
            with pytest.raises(nengo.exceptions.SimulationError, match="no simulation state"):
                sim.load_params(tmp_path / "params_only", include_state=True)
    with nengo_cuda.Simulator(net, minibatch_size=2, progress_bar=False) as sim:
        sim.load_params(tmp_path / "with_state")  # the parameters load anywhere
        with pytest.raises(nengo.exceptions.SimulationError, match="1 trials.*minibatch_size=2"):
            sim.load_params(tmp_path / "with_state", include_state=True)
        with pytest.warns(DeprecationWarning, match="include_non_trainable"):
            sim.save_params(tmp_path / "old", include_non_trainable=True)  # = include_state
        with pytest.warns(DeprecationWarning):
            sim.load_params(tmp_path / "old", include_non_trainable=True)
        assert sim.n_steps == 0
    other, _ = _stateful_net()
    with other:
        nengo.Ensemble(5, 1)
    with nengo_cuda.Simulator(other, progress_bar=False) as sim:
        with pytest.raises(nengo.exceptions.SimulationError, match="another network"):
            sim.load_params(tmp_path / "with_state", include_state=True)


@pytest.mark.parametrize("name", sorted(NETWORKS) + ["mixed"])
def test_saved_state_continues_in_another_build(name, tmp_path):
    """Every element of the state pools belongs to exactly one saved signal, and a
    fresh build (other merges) that loads the state continues every trial as the
    saved simulator does (learning, adaptation, white noise, state-space filters)."""
    net, probes = mixed_network()[::2] if name == "mixed" else NETWORKS[name]()
    kwargs = dict(minibatch_size=2, dtype="float64", progress_bar=False)
    with nengo_cuda.Simulator(net, **kwargs) as sim:
        sim.run_steps(20)
        sim.save_params(tmp_path / "state", include_state=True)
        io = sim._trainer()
        index = io._state_indices(io._state_signals(written_only=False))
        for pool, size in (("float", sim.layout.f_state), ("int", sim.layout.i_state)):
            np.testing.assert_array_equal(np.bincount(index[pool], minlength=size), 1)
        sim.run_steps(15)
        expected = [sim.data[p][:, -15:] for p in probes if p.sample_every is None]
    with nengo_cuda.Simulator(net, **kwargs) as sim:
        sim.load_params(tmp_path / "state", include_state=True)
        sim.run_steps(15)
        got = [sim.data[p] for p in probes if p.sample_every is None]
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-9, atol=1e-9 * max(1.0, np.abs(e).max()))


def test_saved_state_of_a_network_with_a_tensor_node(tmp_path):
    """A TensorNode's signals start at aligned addresses: the padding before
    them belongs to no signal (save_params refused the state: 'part of the
    float state belongs to no signal')."""
    with nengo.Network(seed=3) as net:
        pre = nengo.Ensemble(29, 2)
        nengo.Connection(nengo.Node([0.5, -0.2]), pre)
        node = nengo_cuda.TensorNode(lambda t, x: tf.sin(x) * 2.0, shape_in=(2,),
                                     pass_time=True)
        nengo.Connection(pre, node, synapse=0.01)
        p = nengo.Probe(node, synapse=0.005)
    kwargs = dict(dtype="float64", progress_bar=False)
    with nengo_cuda.Simulator(net, **kwargs) as sim:
        sim.run_steps(10)
        sim.save_params(tmp_path / "state", include_state=True)
        sim.run_steps(5)
        expected = sim.data[p][-5:]
    with nengo_cuda.Simulator(net, **kwargs) as sim:
        sim.load_params(tmp_path / "state", include_state=True)
        sim.run_steps(5)
        np.testing.assert_allclose(sim.data[p], expected, rtol=1e-12, atol=1e-12)


def test_learning_phase_runs_predict_in_training_mode():
    """configure_settings(learning_phase=True) (NengoDL 3.4): predict and
    evaluate give the rate network's outputs (the training graph's), stateful
    runs continue from where they stop; so does sim.run ("always training
    mode"), recording its probes as a native run would."""
    x = np.tile(np.linspace(-1, 1, 4)[:, None, None], (1, 15, 1))
    net, inp, a, conn, p = _net(np.zeros(1))
    with net:
        nengo_cuda.configure_settings(learning_phase=True)
    with nengo_cuda.Simulator(net, minibatch_size=2, dtype="float64", progress_bar=False) as sim:
        rates = sim._trainer().forward({inp: x}, 15, [p])[p]
        np.testing.assert_allclose(sim.predict({inp: x})[p], rates, atol=1e-12)
        sim.compile(loss="mse")
        mse = np.mean((rates - x) ** 2)
        np.testing.assert_allclose(sim.evaluate({inp: x}, {p: x})["loss"], mse, rtol=1e-10)
        first = sim.predict({inp: x[:2, :5]}, stateful=True)[p]
        rest = sim.predict({inp: x[:2, 5:]}, stateful=True)[p]
        assert sim.n_steps == 15
        np.testing.assert_allclose(np.concatenate([first, rest], axis=1), rates[:2], atol=1e-12)
        sim.reset()
        sim.run_steps(5, data={inp: x[:2, :5]})
        sim.run_steps(10, data={inp: x[:2, 5:]})
        assert sim.n_steps == 15 and sim.time == pytest.approx(0.015)
        np.testing.assert_allclose(sim.data[p], rates[:2], atol=1e-12)
        sim.run_steps(10, data={inp: x[:2, 5:]}, stateful=False)  # data kept, state not
        assert sim.n_steps == 15 and sim.data[p].shape == (2, 25, 1)
    with net:
        sparse = nengo.Probe(a, synapse=0.01, sample_every=0.003)
        last, every = nengo.Probe(a.neurons), nengo.Probe(a.neurons)
        nengo_cuda.configure_settings(keep_history=True)
        net.config[last].keep_history = False
    with nengo_cuda.Simulator(net, minibatch_size=2, dtype="float64", progress_bar=False) as sim:
        full = sim._trainer().forward({inp: x[:2]}, 15, [sparse, every])
        sim.run_steps(7, data={inp: x[:2, :7]})
        sim.run_steps(8, data={inp: x[:2, 7:]})
        np.testing.assert_allclose(sim.data[sparse], full[sparse][:, 2::3], atol=1e-12)
        np.testing.assert_allclose(sim.data[last], full[every][:, [6, 14]], atol=1e-12)
        np.testing.assert_allclose(sim.data[every], full[every], atol=1e-12)
    with net:
        nengo_cuda.configure_settings(learning_phase=None)
    with nengo_cuda.Simulator(net, minibatch_size=2, dtype="float64", progress_bar=False) as sim:
        spiking = sim.predict({inp: x})[p]
    assert not np.allclose(spiking, rates, atol=1e-3)  # LIF spikes by default


def test_learning_phase_false_fits_in_inference_mode():
    """configure_settings(learning_phase=False) (NengoDL: "always inference
    mode, regardless of what function is being called"): fit's forward pass
    spikes, as evaluate's does, and its Keras layers get training=False; the
    readout trains on the spikes (no gradient passes through them)."""
    flags = []

    class Flagged(tf.keras.layers.Layer):
        def call(self, x, training=None):
            flags.append(training)
            return x

    with nengo.Network(seed=3) as net:
        nengo_cuda.configure_settings(learning_phase=False)
        inp = nengo.Node([0.0])
        ens = nengo.Ensemble(20, 1, neuron_type=nengo.LIF())
        nengo.Connection(inp, ens, synapse=None)
        out = nengo.Node(size_in=1)
        readout = nengo.Connection(ens, out, synapse=0.01)
        layer = nengo_cuda.TensorNode(Flagged(), shape_in=(1,), pass_time=False)
        nengo.Connection(out, layer, synapse=None)
        p = nengo.Probe(layer)
    x = np.tile(np.linspace(-0.8, 0.8, 4)[:, None, None], (1, 20, 1))
    with nengo_cuda.Simulator(net, minibatch_size=2, dtype="float64", progress_bar=False) as sim:
        sim.compile(optimizer=tf.optimizers.SGD(0.0), loss="mse")
        spiking = sim.evaluate({inp: x}, {p: -x}, verbose=0)["loss"]
        with pytest.warns(UserWarning, match=r"LIF neurons \(spiking: learning_phase=False\)"):
            fitted = sim.fit({inp: x}, {p: -x}, verbose=0).history["loss"][0]
        assert fitted == pytest.approx(spiking, rel=1e-9)
        assert flags and not any(flags)
        flags.clear()  # (every use of the training graph: check_gradients' too)
        sim._trainer().graph({inp: tf.constant(x[:2, :3])}, 3, [p])
        assert flags and not any(flags)
        before = sim.data[readout].weights
        sim.compile(optimizer=tf.optimizers.Adam(0.002), loss="mse")
        sim.fit({inp: x}, {p: -x}, epochs=20, verbose=0)
        assert not np.allclose(sim.data[readout].weights, before)
        np.testing.assert_array_equal(sim.data[ens].bias, sim.data.raw[ens].bias)
        assert sim.evaluate({inp: x}, {p: -x}, verbose=0)["loss"] < 0.5 * spiking
    with net:
        nengo_cuda.configure_settings(learning_phase=None)
    with nengo_cuda.Simulator(net, minibatch_size=2, dtype="float64", progress_bar=False) as sim:
        sim.compile(optimizer=tf.optimizers.SGD(0.0), loss="mse")
        rates = sim.fit({inp: x}, {p: -x}, verbose=0).history["loss"][0]
        assert rates != pytest.approx(spiking, rel=1e-3)  # (the rate network's)


def test_inference_only_refuses_learning_phase():
    """NengoDL 3.6's test_keras.py::test_learning_phase_warning: the settings
    contradict each other; the Simulator says so when it is built."""
    with nengo.Network() as net:
        nengo_cuda.configure_settings(inference_only=True, learning_phase=True)
        nengo.Probe(nengo.Node([1]))
    with pytest.raises(nengo.exceptions.BuildError, match="inference_only=True"):
        nengo_cuda.Simulator(net, progress_bar=False)
    with net:
        nengo_cuda.configure_settings(learning_phase=False)
    with nengo_cuda.Simulator(net, progress_bar=False) as sim:
        sim.run_steps(2)


def test_params_of_a_network_without_parameters(tmp_path):
    """A network of Nodes has no parameters: its (empty) file still loads."""
    with nengo.Network() as net:
        a = nengo.Node([0.5])
        b = nengo.Node(size_in=1)
        nengo.Connection(a, b, synapse=0.01)
        p = nengo.Probe(b)
    with nengo_cuda.Simulator(net, progress_bar=False) as sim:
        sim.run_steps(5)
        sim.save_params(tmp_path / "nodes", include_state=True)
        sim.run_steps(5)
        expected = sim.data[p][5:]
    with nengo_cuda.Simulator(net, progress_bar=False) as sim:
        sim.load_params(tmp_path / "nodes", include_state=True)
        sim.run_steps(5)
        np.testing.assert_allclose(sim.data[p], expected)


def test_training_graph_calls_an_input_function_once_a_step():
    """In the training graph too (here predict with learning_phase=True), an
    input Node's function is called once a step, its value given to every trial
    (NengoDL's input functions); a Node with an input runs per trial."""
    counter = itertools.count()
    inputs = []
    with nengo.Network(seed=2) as net:
        nengo_cuda.configure_settings(learning_phase=True)
        stim = nengo.Node(lambda t: float(next(counter)))
        with_input = nengo.Node(lambda t, x: inputs.append(float(x[0])) or x, size_in=1)
        nengo.Connection(stim, with_input, synapse=None)
        p = nengo.Probe(stim)
    with nengo_cuda.Simulator(net, minibatch_size=3, progress_bar=False) as sim:
        start = next(counter) + 1
        inputs.clear()
        out = sim.predict(n_steps=4)[p][..., 0]
    expected = np.arange(start, start + 4, dtype=float)
    np.testing.assert_array_equal(out, np.tile(expected, (3, 1)))
    assert next(counter) == start + 4
    assert inputs == np.repeat(expected, 3).tolist()
