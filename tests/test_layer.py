"""`nengo_cuda.Layer`: NengoDL 3's Layer, as its spiking-MNIST tutorial uses it."""

import numpy as np
import nengo
import pytest

tf = pytest.importorskip("tensorflow")

import nengo_cuda  # noqa: E402
from nengo_cuda.training.config import trainable_objects  # noqa: E402


def test_neuron_type_layer_is_an_ensemble_as_nengo_runs_it():
    """Layer(neuron_type)(x): the neurons of a new Ensemble, one per input
    element, built with the layer_args; its numbers are Nengo's."""
    lif = nengo.LIF(amplitude=0.01)
    with nengo.Network(seed=3) as net:
        inp = nengo.Node(nengo.processes.WhiteSignal(1.0, high=5, seed=1), size_out=2)
        neurons = nengo_cuda.Layer(lif)(
            inp, transform=np.array([[1.0, -0.5], [0.5, 1.0], [-1.0, 0.25]]),
            max_rates=nengo.dists.Choice([100]), intercepts=nengo.dists.Choice([0]))
        p = nengo.Probe(neurons, synapse=0.01)
    assert isinstance(neurons, nengo.ensemble.Neurons)
    ens = neurons.ensemble
    assert (ens.n_neurons, ens.dimensions, ens.neuron_type) == (3, 1, lif)
    assert ens.max_rates == nengo.dists.Choice([100])
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run(0.3)
    with nengo_cuda.Simulator(net, dtype="float64", progress_bar=False) as sim:
        sim.run(0.3)
    assert np.abs(ref.data[p]).max() > 0.1  # the neurons spike
    np.testing.assert_allclose(sim.data[p], ref.data[p], atol=1e-12)


def test_layer_size_in_from_shape_in_or_transform():
    seen = []

    def record(x):
        seen.append(tuple(x.shape))
        return tf.reshape(x, (x.shape[0], -1))

    with nengo.Network() as net:
        inp = nengo.Node(np.arange(6.0))
        shaped = nengo_cuda.Layer(record)(inp, shape_in=(2, 3))
        projected = nengo_cuda.Layer(tf.identity)(inp, transform=np.ones((4, 6)))
        neurons = nengo_cuda.Layer(nengo.RectifiedLinear())(inp, transform=np.ones((5, 6)))
    assert (shaped.size_in, shaped.shape_in, seen[-1]) == (6, (2, 3), (1, 2, 3))
    assert projected.size_in == 4 and neurons.size_in == 5
    with nengo.Network() as net2:
        inp = nengo.Node(np.zeros(3))
        assert nengo_cuda.Layer(nengo.LIF())(inp).size_in == 3
    del net, net2


def test_layer_args_go_to_the_tensor_node():
    with nengo.Network():
        inp = nengo.Node(np.zeros(2))
        node = nengo_cuda.Layer(tf.keras.layers.Dense(3, name="d3"))(inp)
        named = nengo_cuda.Layer(lambda x: 2 * x)(inp, label="double")
    # (unlabeled without label=, as in NengoDL: not the Keras layer's name)
    assert node.label is None and named.label == "double"
    assert node.tensor_func.name == "d3"
    assert str(nengo_cuda.Layer(nengo.LIF())) == "Layer(LIF())"
    with pytest.raises(nengo.exceptions.ValidationError, match="callable or a nengo NeuronType"):
        nengo_cuda.Layer(3)


@pytest.mark.parametrize("class_default", [None, False])
def test_layer_input_connection_is_not_trainable(class_default):
    """As NengoDL: the Layer's input Connection is marked not trainable; a class
    default the user configured stays for the other Connections."""
    with nengo.Network(seed=0) as net:
        if class_default is not None:
            nengo_cuda.configure_settings(trainable=class_default)
        inp = nengo.Node(np.zeros(2))
        w = np.array([[1.0, 0.5], [-0.5, 1.0], [0.25, -1.0]])
        neurons, layer_conn = nengo_cuda.Layer(nengo.RectifiedLinear())(
            inp, transform=w, return_conn=True)
        out = nengo.Node(size_in=1)
        out_conn = nengo.Connection(neurons, out, transform=np.full((1, 3), 0.01), synapse=None)
        p = nengo.Probe(out)
    trainable = trainable_objects(net)
    assert trainable[layer_conn] is False
    assert trainable[out_conn] is (class_default is None)
    if class_default is not None:
        return
    x = np.random.RandomState(0).uniform(-1, 1, (8, 1, 2))
    with nengo_cuda.Simulator(net, minibatch_size=4, progress_bar=False) as sim:
        sim.compile(tf.keras.optimizers.SGD(1e-4), loss="mse")
        sim.fit({inp: x}, {p: np.ones((8, 1, 1))}, epochs=2)
        np.testing.assert_array_equal(sim.data[layer_conn].weights, w)
        assert not np.allclose(sim.data[out_conn].weights, 0.01)


def test_layer_in_a_subnetwork_is_not_trainable_in_the_outer_config():
    """As NengoDL (Config.context[0]): a Layer made inside a sub-network marks
    its input Connection in the outermost config being built."""
    with nengo.Network() as net:
        inp = nengo.Node(np.arange(3.0))
        with nengo.Network():
            _, conn = nengo_cuda.Layer(tf.identity)(inp, return_conn=True)
    assert net.config[conn].trainable is False
    assert trainable_objects(net)[conn] is False


def _accuracy(y_true, y_pred):
    return tf.metrics.sparse_categorical_accuracy(y_true[:, -1], y_pred[:, -1])


def test_spiking_classifier_tutorial_pattern():
    """NengoDL's spiking-MNIST tutorial in small: Keras layers and neuron
    Layers, a custom accuracy on one class index per step, fit with a sparse
    loss, evaluate and predict."""
    rng = np.random.RandomState(0)
    n_items, n_steps, mb = 32, 5, 8
    labels = rng.randint(0, 3, size=n_items)
    images = (rng.uniform(0, 0.2, (n_items, 6 * 6)) +
              np.eye(3)[labels].repeat(12, axis=1)).astype(np.float32)
    tf.keras.utils.set_random_seed(0)
    with nengo.Network(seed=0) as net:
        net.config[nengo.Ensemble].max_rates = nengo.dists.Choice([100])
        net.config[nengo.Ensemble].intercepts = nengo.dists.Choice([0])
        net.config[nengo.Connection].synapse = None
        nengo_cuda.configure_settings(stateful=False)
        inp = nengo.Node(np.zeros(6 * 6))
        x = nengo_cuda.Layer(tf.keras.layers.Conv2D(filters=4, kernel_size=3))(
            inp, shape_in=(6, 6, 1))
        x = nengo_cuda.Layer(nengo.LIF(amplitude=0.01))(x)
        out = nengo_cuda.Layer(tf.keras.layers.Dense(units=3))(x)
        out_p = nengo.Probe(out, label="out_p")
        out_p_filt = nengo.Probe(out, synapse=0.01, label="out_p_filt")
    train_x = images[:, None, :]
    train_y = labels[:, None, None].astype(np.float32)
    test_x = np.tile(train_x, (1, n_steps, 1))
    test_y = np.tile(train_y, (1, n_steps, 1))
    with nengo_cuda.Simulator(net, minibatch_size=mb, progress_bar=False) as sim:
        sim.compile(loss={out_p_filt: _accuracy})
        before = sim.evaluate(test_x, {out_p_filt: test_y}, verbose=0)["loss"]
        predicted = sim.predict(test_x)[out_p_filt]
        assert predicted.shape == (n_items, n_steps, 3)
        # the custom loss saw one class index per step: the accuracy of the predictions
        np.testing.assert_allclose(before, np.mean(predicted[:, -1].argmax(-1) == labels))

        sim.compile(optimizer=tf.optimizers.Adam(0.01),
                    loss={out_p: tf.losses.SparseCategoricalCrossentropy(from_logits=True)})
        history = sim.fit(train_x, {out_p: train_y}, epochs=30)
        assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
        sim.compile(loss={out_p_filt: _accuracy})
        after = sim.evaluate(test_x, {out_p_filt: test_y}, verbose=0)["loss"]
    print(f"accuracy {before:.3f} -> {after:.3f}")
    assert after > max(before, 0.8)


def test_dense_loss_targets_must_match_the_probe():
    """A built-in dense loss would broadcast a size-1 target: refused, while the
    user's own loss decides what its targets are."""
    with nengo.Network() as net:
        inp = nengo.Node(np.zeros(2))
        out = nengo_cuda.Layer(tf.keras.layers.Dense(2))(inp)
        p = nengo.Probe(out)
    x = np.zeros((4, 1, 2))
    with nengo_cuda.Simulator(net, minibatch_size=4, progress_bar=False) as sim:
        for loss in ("mse", tf.keras.losses.MeanSquaredError(), nengo_cuda.obj.mse):
            sim.compile(loss={p: loss})
            with pytest.raises(nengo.exceptions.ValidationError, match="has size 1; expected 2"):
                sim.evaluate({inp: x}, {p: np.zeros((4, 1, 1))})
        sim.compile(loss={p: lambda y_true, y_pred: tf.reduce_mean(y_pred) + y_true[0, 0, 0]})
        assert sim.evaluate({inp: x}, {p: np.full((4, 1, 1), 2.0)})["loss"] == pytest.approx(2.0)


def test_keras_layers_get_training():
    """As NengoDL: a TensorNode's Keras layer runs with training=True in fit
    (Dropout drops) and False in sim.run/predict (Dropout passes x through)."""
    seen = []

    class Probe(tf.keras.layers.Layer):
        def __init__(self):
            super().__init__()
            self.dropout = tf.keras.layers.Dropout(0.5)

        def call(self, x, training=None):
            seen.append(training)
            return self.dropout(x, training=training)

    with nengo.Network(seed=0) as net:
        inp = nengo.Node(np.ones(20))
        out = nengo_cuda.Layer(Probe())(inp)
        dense = nengo_cuda.Layer(tf.keras.layers.Dense(1, use_bias=False))(out)
        p_out, p_dense = nengo.Probe(out), nengo.Probe(dense)
    x = np.ones((2, 1, 20))
    with nengo_cuda.Simulator(net, minibatch_size=2, progress_bar=False) as sim:
        np.testing.assert_array_equal(sim.predict({inp: x})[p_out], x)  # no dropout
        assert seen[-1] is False
        sim.compile(tf.optimizers.SGD(0.0), loss={p_dense: "mse"})
        seen.clear()
        sim.fit({inp: x}, {p_dense: np.zeros((2, 1, 1))}, epochs=1, verbose=0)
        assert True in seen and False not in seen
        dropped = sim._trainer().graph({inp: tf.constant(x)}, 1, [p_out])[p_out].numpy()
    assert set(np.unique(dropped)) == {0.0, 2.0}  # Dropout(0.5) in training: 0 or x / 0.5


def test_dropout_copies_its_input_but_not_a_subclass_that_drops_always():
    """A Keras Dropout in a simulation is its input, copied without calling
    TensorFlow; a subclass may act otherwise (Monte Carlo dropout drops at
    inference too), so it is called as any layer."""

    class AlwaysDrop(tf.keras.layers.Dropout):
        def call(self, inputs, training=None):
            return super().call(inputs, training=True)

    with nengo.Network(seed=0) as net:
        inp = nengo.Node(np.ones(50))
        probes = [nengo.Probe(nengo_cuda.Layer(layer)(inp))
                  for layer in (tf.keras.layers.Dropout(0.5), AlwaysDrop(0.5))]
    with nengo_cuda.Simulator(net, progress_bar=False) as sim:
        sim.run_steps(2)
        plain, always = (sim.data[p] for p in probes)
    np.testing.assert_array_equal(plain, np.ones((2, 50)))
    assert set(np.unique(always)) == {0.0, 2.0}


def test_keras_layer_with_time_and_any_batch_shape():
    """A Keras layer with pass_time=True gets [t, x] (NengoDL's call); a function's
    output shape is inferred whatever its first axis."""

    class AddTime(tf.keras.layers.Layer):
        def call(self, inputs):
            t, x = inputs
            return x + t

    with nengo.Network() as net:
        inp = nengo.Node([1.0, 2.0])
        node = nengo_cuda.TensorNode(AddTime(), shape_in=(2,), pass_time=True)
        nengo.Connection(inp, node, synapse=None)
        p = nengo.Probe(node)
    with nengo.Network():
        const = nengo_cuda.TensorNode(lambda t: tf.zeros((5, 3)) + t, pass_time=True)
    assert const.shape_out == (3,)
    with nengo_cuda.Simulator(net, progress_bar=False) as sim:
        sim.run_steps(2)
    np.testing.assert_allclose(sim.data[p], [[1.001, 2.001], [1.002, 2.002]], rtol=1e-6)
