"""Behaviour NengoDL 3.6's own test suite checks (test_tensor_node.py,
test_simulator.py::test_io_names) that nengo_cuda got wrong."""

import warnings

import nengo
import numpy as np
import pytest
from nengo.exceptions import ValidationError

import nengo_cuda

tf = pytest.importorskip("tensorflow")


def test_keras_layer_always_gets_a_training_flag():
    # NengoDL calls a TensorNode's Keras layer with training=False (run/predict) or
    # True (fit), never None: a layer may branch on it or assert it
    seen = []

    class Flagged(tf.keras.layers.Layer):
        def build(self, shape):
            self.w = self.add_weight(shape=(), initializer="ones", name="w")

        def call(self, x, training=None):
            seen.append(training)
            tf.debugging.assert_equal(tf.cast(training, tf.bool), False)
            return x * self.w

    with nengo.Network() as net:
        node = nengo_cuda.TensorNode(Flagged(), shape_in=(1,), shape_out=(1,),
                                     pass_time=False)
        nengo.Connection(nengo.Node([2]), node, synapse=None)
        p = nengo.Probe(node)

    with nengo_cuda.Simulator(net, progress_bar=False) as sim:
        sim.run_steps(3)
    assert None not in seen
    assert np.allclose(sim.data[p], 2)


@pytest.mark.parametrize("arg", ["shape_in", "shape_out"])
def test_tensor_node_shape_must_be_ints(arg):
    with nengo.Network():
        inp = nengo.Node([0])
        with pytest.raises(ValidationError, match="must be an int"):
            nengo_cuda.TensorNode(lambda x: x, pass_time=False,
                                  **{"shape_in": (1,), arg: (None, 1)})
        with pytest.raises(ValidationError, match="must be an int"):
            nengo_cuda.Layer(lambda x: x)(inp, **{arg: (None, 1)})


def test_tensor_layer_is_deprecated_layer():
    with nengo.Network() as net:
        inp = nengo.Node([1])
        with pytest.warns(DeprecationWarning, match="nengo_dl.Layer instead"):
            out = nengo_cuda.tensor_layer(inp, lambda x: x + 1, transform=2)
        assert isinstance(out, nengo_cuda.TensorNode)
        p = nengo.Probe(out)

    with nengo_cuda.Simulator(net, progress_bar=False) as sim:
        sim.run_steps(2)
    assert np.allclose(sim.data[p], 3)


def test_io_names_count_repeats_regardless_of_case():
    # NengoDL's Keras input/output names come from TensorFlow, which counts
    # repeated names case-insensitively
    with nengo.Network() as net:
        nodes = [nengo.Node([0]), nengo.Node([0]), nengo.Node([0], label="aa"),
                 nengo.Node([0], label="aa"), nengo.Node([0], label="Aa"),
                 nengo.Node([0], label="aA"), nengo.Node([0])]
        probes = [nengo.Probe(n, label=None if n.label is None else "p_" + n.label)
                  for n in nodes]

    with nengo_cuda.Simulator(net, progress_bar=False) as sim:
        assert [sim.get_name(n) for n in nodes] == [
            "node", "node_1", "aa", "aa_1", "Aa_2", "aA_3", "node_2"]
        assert [sim.get_name(p) for p in probes] == [
            "probe", "probe_1", "p_aa", "p_aa_1", "p_Aa_2", "p_aA_3", "probe_2"]
        # NengoDL's keras_model names its inputs and outputs so (test_io_names)
        assert sim.keras_model.input_names == [
            "node", "node_1", "aa", "aa_1", "Aa_2", "aA_3", "node_2", "n_steps"]
        assert sim.keras_model.output_names == [
            "probe", "probe_1", "p_aa", "p_aa_1", "p_Aa_2", "p_aA_3", "probe_2", "steps_run"]
        # the names work as data keys
        out = sim.predict({"Aa_2": np.ones((1, 2, 1))})
        assert np.allclose(out[probes[4]], 1)
        assert np.allclose(out[probes[3]], 0)


def test_keras_weight_regularization_counts_in_fit_and_evaluate():
    """A TensorNode's Keras layer with a kernel_regularizer: fit minimises
    loss + regularization and evaluate's "loss" includes it, as in Keras (and
    so NengoDL, whose Simulator is a Keras model): the trained weights equal a
    Keras model's trained on the same data."""
    rng = np.random.RandomState(0)
    x = rng.uniform(-1, 1, (4, 1, 3)).astype(np.float32)
    y = rng.uniform(-1, 1, (4, 1, 2)).astype(np.float32)
    init = rng.uniform(-1, 1, (3, 2)).astype(np.float32)

    def dense():
        return tf.keras.layers.Dense(
            2, use_bias=False, kernel_regularizer=tf.keras.regularizers.L2(0.3),
            kernel_initializer=tf.keras.initializers.Constant(init))

    keras_layer = dense()
    inp = tf.keras.Input((3,))
    model = tf.keras.Model(inp, keras_layer(inp))
    model.compile(tf.keras.optimizers.SGD(0.1), loss="mse")
    model.fit(x[:, 0], y[:, 0], batch_size=4, epochs=3, shuffle=False, verbose=0)

    with nengo.Network() as net:
        a = nengo.Node(np.zeros(3))
        layer = nengo_cuda.Layer(dense())(a)
        p = nengo.Probe(layer)
    with nengo_cuda.Simulator(net, minibatch_size=4, progress_bar=False) as sim:
        sim.compile(tf.keras.optimizers.SGD(0.1), loss={p: "mse"})
        out = sim.predict({a: x})[p]
        result = sim.evaluate({a: x}, {p: y})
        mse = np.mean((out - y) ** 2)
        np.testing.assert_allclose(result["probe_loss"], mse, rtol=1e-5)
        np.testing.assert_allclose(result["loss"], mse + 0.3 * np.sum(init ** 2), rtol=1e-5)
        sim.fit({a: x}, {p: y}, epochs=3, verbose=0)
        trained = sim._trainer()._keras_variables()[0].numpy()
    np.testing.assert_allclose(trained, keras_layer.kernel.numpy(), rtol=1e-5, atol=1e-6)


def test_one_step_runs_through_synapses_warn():
    """NengoDL warns when fit, predict or evaluate run one step through synaptic
    filters (their outputs start from zero, so a single step cannot show the
    trained values), unless the run is stateful (earlier runs filled them)."""
    def net_with(synapse):
        with nengo.Network(seed=0) as net:
            a = nengo.Node(np.zeros(1))
            ens = nengo.Ensemble(10, 1, neuron_type=nengo.RectifiedLinear())
            nengo.Connection(a, ens, synapse=synapse)
            p = nengo.Probe(ens)
        return net, a, p

    for synapse, warns in ((0.005, True), (None, False)):
        net, a, p = net_with(synapse)
        with nengo_cuda.Simulator(net, progress_bar=False) as sim:
            sim.compile(tf.keras.optimizers.SGD(0.0), loss="mse")
            with warnings.catch_warnings(record=True) as seen:
                warnings.simplefilter("always")
                for steps in (1, 3):
                    x, y = {a: np.zeros((1, steps, 1))}, {p: np.zeros((1, steps, 1))}
                    sim.fit(x, y, verbose=0)
                    sim.predict(x)
                    sim.evaluate(x, y)
                    sim.fit(x, y, verbose=0, stateful=True)
                    sim.predict(x, stateful=True)
                    sim.predict_on_batch(x)  # (NengoDL's: stateful as the simulator)
            found = [str(w.message).split(":")[0] for w in seen
                     if "synaptic filters" in str(w.message)]
            assert found == (["fit", "predict", "evaluate"] if warns else []), synapse


def test_tensorflow_random_ops_follow_the_simulator_seed():
    # NengoDL seeds TensorFlow's global generator with the simulator's seed
    with nengo.Network() as net:
        node = nengo_cuda.TensorNode(lambda t: tf.random.uniform((1, 2)), shape_out=(2,))
        p = nengo.Probe(node)

    def first_steps(seed):
        with nengo_cuda.Simulator(net, seed=seed, progress_bar=False) as sim:
            sim.run_steps(3)
            first = sim.data[p].copy()
            sim.reset()
            sim.run_steps(3)
            assert np.array_equal(sim.data[p], first)  # reset starts the stream again
        return first

    a = first_steps(5)
    tf.random.uniform((3,))  # (other TensorFlow work between simulators)
    assert np.array_equal(first_steps(5), a)
    assert not np.array_equal(first_steps(6), a)
    assert len(np.unique(a)) == a.size  # a stream, not one value repeated


def test_converted_dense_layer_is_nengo_dls_network():
    """A Dense layer into neurons keeps its bias in the neurons (NengoDL's
    conversion), so the converted network has the objects a user would build by
    hand, and with the same seed the same spiking initial states: the same
    spikes (NengoDL's test_activation_swap)."""
    n = 20
    inp = x = tf.keras.Input(shape=(n,))
    x = tf.keras.layers.Activation(tf.nn.relu)(x)
    x = tf.keras.layers.Dense(n, activation=tf.nn.relu,
                              kernel_initializer=tf.initializers.constant(np.eye(n)),
                              bias_initializer=tf.initializers.constant(0.5))(x)
    model = tf.keras.Model(inp, x)
    conv = nengo_cuda.Converter(model, allow_fallback=False,
                                swap_activations={tf.nn.relu: nengo.SpikingRectifiedLinear()})
    assert len(conv.net.all_connections) == 2  # no connection for the bias
    dense = conv.layers[x]
    assert conv.net.config[dense].trainable

    with nengo.Network(seed=3) as net:
        net.config[nengo.Ensemble].neuron_type = nengo.SpikingRectifiedLinear()
        net.config[nengo.Ensemble].gain = nengo.dists.Choice([1])
        net.config[nengo.Connection].synapse = None
        node = nengo.Node(np.zeros(n))
        ens0 = nengo.Ensemble(n, 1, bias=nengo.dists.Choice([0]))
        nengo.Connection(node, ens0.neurons)
        ens1 = nengo.Ensemble(n, 1, bias=nengo.dists.Choice([0.5]))
        nengo.Connection(ens0.neurons, ens1.neurons)
        p = nengo.Probe(ens1.neurons)
    conv.net.seed = 3
    x_in = np.random.RandomState(0).uniform(0, 300, size=(2, 30, n))
    with nengo_cuda.Simulator(net, minibatch_size=2, progress_bar=False) as sim0:
        ref = sim0.predict(x_in)[p]
    with nengo_cuda.Simulator(conv.net, minibatch_size=2, progress_bar=False) as sim1:
        out = sim1.predict(x_in)[conv.outputs[x]]
    assert np.count_nonzero(ref) > 100
    assert np.array_equal(ref, out)
    assert conv.verify(training=True, inputs=[x_in[:, 0]])


def test_converted_bias_of_any_shape():
    # Keras keeps a bias initialized from a (1, 1) constant as a (1, 1) array
    inp = tf.keras.Input(shape=(1,))
    out = tf.keras.layers.Dense(1, activation=tf.nn.relu,
                                bias_initializer=tf.initializers.constant([[50]]))(inp)
    conv = nengo_cuda.Converter(tf.keras.Model(inp, out), scale_firing_rates=2)
    with nengo_cuda.Simulator(conv.net, progress_bar=False) as sim:
        assert np.array_equal(sim.data[conv.layers[out].ensemble].bias, [100])


def test_building_runs_no_step_of_a_stateful_layer():
    """NengoDL builds its Keras model symbolically: a layer that changes a
    variable when it runs (a counter) first runs in the simulation's first
    step (the build's check and the layer's build ran it eagerly once: the
    steps gave 2, 3, 4), and reset returns it to that."""
    class Counter(tf.keras.layers.Layer):
        def build(self, shape):
            self.count = self.add_weight(shape=(), initializer="zeros", trainable=False,
                                         name="count")

        def call(self, t):
            self.count.assign_add(1.0)
            return tf.reshape(self.count, (1, 1))

    with nengo.Network() as net:
        node = nengo_cuda.TensorNode(Counter(), shape_in=None, shape_out=(1,), pass_time=True)
        p = nengo.Probe(node)
    with nengo_cuda.Simulator(net, progress_bar=False) as sim:
        sim.run_steps(3)
        np.testing.assert_array_equal(sim.data[p].ravel(), [1, 2, 3])
        sim.reset()
        sim.run_steps(3)
        np.testing.assert_array_equal(sim.data[p].ravel(), [1, 2, 3])
