"""nengo_cuda.Converter (NengoDL's Keras -> Nengo converter) against Keras itself.

The oracle is the Keras model: ``Converter.verify`` runs both on the same inputs
(and, with ``training=True``, trains both with SGD first), and the tests below
also compare with ``model.predict`` directly.  float32 simulation against
Keras' float32: sums in different orders differ by a few ulps of the largest
partial sums (values here are O(1) with at most ~100 terms), so 1e-5 absolute.
"""

import warnings
import zlib

import nengo
import numpy as np
import pytest

import nengo_cuda

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

ATOL = 1e-5


@pytest.fixture(autouse=True)
def keras_seed(request):
    """Keras' initial weights from a seed per test, so that every run of a test
    sees the same models (as the `rng` fixture does for NumPy)."""
    keras.utils.set_random_seed(zlib.crc32(request.node.nodeid.encode()) % 2**31)


def _cnn():
    inp = keras.Input((8, 8, 2))
    x = keras.layers.Conv2D(4, 3, activation="relu", padding="same", groups=2)(inp)
    x = keras.layers.AveragePooling2D(2)(x)
    x = keras.layers.Conv2D(6, 3, strides=2, activation="sigmoid")(x)
    y = keras.layers.Flatten()(x)
    y2 = keras.layers.Dense(5, activation="tanh")(y)
    z = keras.layers.Concatenate()([y, y2])
    out = keras.layers.Dense(3)(z)
    return keras.Model(inp, out)


def _x(model, n=3, seed=0):
    return np.random.RandomState(seed).uniform(-1, 1, (n,) + tuple(model.inputs[0].shape[1:]))


def _native(converter):
    """True when no layer fell back to a TensorNode."""
    return not any(isinstance(n, nengo_cuda.TensorNode) for n in converter.net.all_nodes)


def _run(converter, x, steps=1, **kwargs):
    inp = converter.inputs[converter.model.inputs[0]]
    probe = converter.outputs[converter.model.outputs[0]]
    with nengo_cuda.Simulator(converter.net, minibatch_size=len(x), progress_bar=False,
                              **kwargs) as sim:
        out = sim.predict({inp: np.repeat(x.reshape(len(x), 1, -1), steps, axis=1)})
    return out[probe]


def test_cnn_matches_keras():
    model = _cnn()
    conv = nengo_cuda.Converter(model)
    assert _native(conv)
    x = _x(model)
    np.testing.assert_allclose(_run(conv, x)[:, 0], model.predict(x, verbose=0), atol=ATOL)
    assert conv.verify(inputs=[x], atol=ATOL)


def test_cnn_trains_like_keras():
    """Three SGD epochs in Keras and in the converted network end equal: the
    gradients of every Keras parameter agree."""
    model = _cnn()
    conv = nengo_cuda.Converter(model)
    assert conv.verify(training=True, inputs=[_x(model)], atol=ATOL)


def test_verify_finds_a_difference():
    model = _cnn()
    conv = nengo_cuda.Converter(model)
    layer = model.layers[-1]
    layer.bias.assign(layer.bias.numpy() + 0.01)  # after conversion: only Keras changes
    with pytest.raises(ValueError, match=r"does not match output of the Keras model: it "
                                         r"differs by up to 0\.01 \(atol=1e-05, rtol=1e-05;"):
        conv.verify(inputs=[_x(model)], atol=ATOL)


def test_native_network_runs_in_nengo():
    """Without fallbacks the result is a plain Nengo network: nengo.Simulator
    gives what nengo_cuda gives (float64)."""
    model = _cnn()
    conv = nengo_cuda.Converter(model)
    x = _x(model, n=1)
    inp, probe = conv.inputs[model.inputs[0]], conv.outputs[model.outputs[0]]
    inp.output = x.ravel()
    with nengo.Simulator(conv.net, progress_bar=False) as ref:
        ref.step()
    with nengo_cuda.Simulator(conv.net, dtype="float64", progress_bar=False) as sim:
        sim.step()
    np.testing.assert_allclose(sim.data[probe], ref.data[probe], atol=1e-12)
    np.testing.assert_allclose(ref.data[probe][0], model.predict(x, verbose=0)[0], atol=ATOL)


def test_maps_inputs_outputs_layers():
    model = _cnn()
    conv = nengo_cuda.Converter(model)
    assert conv.inputs[model.inputs[0]] is conv.inputs[model.layers[0]]
    assert isinstance(conv.inputs[model.inputs[0]], nengo.Node)
    probe = conv.outputs[model.outputs[0]]
    assert isinstance(probe, nengo.Probe) and conv.outputs[model.layers[-1]] is probe
    assert isinstance(conv.layers[model.layers[1]], nengo.ensemble.Neurons)  # relu conv
    with pytest.raises(KeyError, match="not a tensor or layer"):
        conv.inputs[model.layers[1]]


@pytest.mark.parametrize("inference_only", [False, True])
def test_layer_types(inference_only):
    inp = keras.Input((6, 6, 3))
    a = keras.layers.ZeroPadding2D(((1, 0), (2, 1)))(inp)
    a = keras.layers.Conv2D(4, 3, use_bias=False)(a)
    a = keras.layers.BatchNormalization()(a)
    a = keras.layers.ReLU()(a)
    b = keras.layers.Conv2D(4, 2, strides=2, padding="same")(inp)
    b = keras.layers.LeakyReLU(negative_slope=0.2)(b)
    b = keras.layers.ZeroPadding2D(((1, 1), (1, 2)))(b)
    s = keras.layers.Subtract()([keras.layers.Activation("tanh")(a), a])
    g = keras.layers.GlobalAveragePooling2D()(s)
    d = keras.layers.Dropout(0.3)(keras.layers.Reshape((4 * 6 * 5,))(b))
    m = keras.layers.Average()([keras.layers.Dense(4)(d), g])
    one = keras.layers.Conv1D(2, 3, strides=2)(keras.layers.Reshape((30, 4))(b))
    model = keras.Model(inp, [m, keras.layers.Flatten()(one)])
    (bn,) = [la for la in model.layers if isinstance(la, keras.layers.BatchNormalization)]
    bn.moving_mean.assign(np.arange(4) * 0.1)
    bn.moving_variance.assign(np.arange(1, 5) * 0.5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        conv = nengo_cuda.Converter(model, inference_only=inference_only)
    fallbacks = [str(w.message) for w in caught if "TensorNode" in str(w.message)]
    if inference_only:
        assert _native(conv) and not fallbacks
    else:  # (Dropout too: it acts in training)
        assert sorted("BatchNormalization" in f for f in fallbacks) == [False, True]
        assert any("(Dropout)" in f and "inference_only=True" in f for f in fallbacks)
    assert conv.verify(inputs=[_x(model, n=2)], atol=ATOL)


def test_sequential_with_fallback():
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(4), keras.layers.Softmax()])
    with pytest.warns(UserWarning, match="Softmax.*Falling back to TensorNode"):
        conv = nengo_cuda.Converter(model)
    assert not _native(conv)
    assert conv.verify(inputs=[_x(model)], atol=ATOL)
    assert conv.verify(training=True, inputs=[_x(model)], atol=ATOL)
    # (NengoDL's: the Sequential's equivalent Functional model, of its layers)
    assert type(conv.model).__name__ == "Functional" and conv.model.layers[1:] == model.layers
    assert conv.inputs[conv.model.input] is conv.layers[model.layers[0].input]
    assert conv.outputs[conv.model.output].target is conv.layers[model.layers[-1]]
    # (NengoDL's words first, which code matches; then ours)
    with pytest.raises(TypeError, match=r"^Unable to convert layer 'softmax(_\d+)?' to native "
                                        r"Nengo objects: .*allow_fallback"):
        nengo_cuda.Converter(model, allow_fallback=False)
    # (an activation without a Nengo form: NengoDL's other words)
    elu = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="elu")])
    with pytest.warns(UserWarning, match="'elu'.*; falling back to a TensorNode"):
        nengo_cuda.Converter(elu)


def test_max_pooling():
    inp = keras.Input((6, 6, 2))
    model = keras.Model(inp, keras.layers.Flatten()(keras.layers.MaxPooling2D(2)(inp)))
    with pytest.warns(UserWarning, match="max pooling"):
        conv = nengo_cuda.Converter(model)
    assert conv.verify(inputs=[_x(model)], atol=ATOL)  # the Keras layer as a TensorNode
    avg = nengo_cuda.Converter(model, max_to_avg_pool=True)
    assert _native(avg)
    x = _x(model)
    expected = x.reshape(3, 3, 2, 3, 2, 2).mean(axis=(2, 4)).reshape(3, -1)
    np.testing.assert_allclose(_run(avg, x)[:, 0], expected, atol=ATOL)


def test_shared_weights():
    inp = keras.Input((4,))
    dense = keras.layers.Dense(3)
    model = keras.Model(inp, keras.layers.Add()([dense(inp), dense(-inp)]))
    with pytest.raises(ValueError, match="applied 2 times.*split_shared_weights"):
        nengo_cuda.Converter(model)
    conv = nengo_cuda.Converter(model, split_shared_weights=True)
    assert conv.verify(inputs=[_x(model)], atol=ATOL)
    with pytest.raises(ValueError, match=r"trainable parameters .* \(30\) differs from the "
                                         r"Keras model's \(15\)"):
        conv.verify(training=True, inputs=[_x(model)])


def test_a_layer_called_twice_is_looked_up_by_its_tensors():
    inp = keras.Input((2,))
    relu = keras.layers.ReLU()
    x0, x1 = relu(inp), relu(-inp)
    conv = nengo_cuda.Converter(keras.Model(inp, [x0, x1]))
    with pytest.raises(KeyError, match="'re_lu.*' has been called multiple times"):
        conv.layers[relu]
    with pytest.raises(KeyError, match="called multiple times"):
        conv.outputs[relu]
    assert relu not in conv.layers and x0 in conv.layers  # (as a Mapping's `in`)
    assert conv.layers[x0] is not conv.layers[x1]
    assert conv.outputs[x1].target is conv.layers[x1]


def test_iterating_the_layer_dicts_gives_keys_that_look_up_again():
    """As NengoDL's: each key is a tuple of one tensor reference, in conversion
    order; ``for k in conv.outputs: sim.data[conv.outputs[k]]`` works."""
    inp = keras.Input((1,))
    d0 = keras.layers.Dense(1)(inp)
    d1 = keras.layers.Dense(1, activation="relu")(d0)
    model = keras.Model(inp, [d0, d1])
    conv = nengo_cuda.Converter(model)
    assert len(conv.layers) == 3 and len(conv.outputs) == 2 and len(conv.inputs) == 1
    tensors = [key[0].deref() for key in conv.layers]
    assert [t is x for t, x in zip(tensors, (inp, d0, d1))] == [True] * 3
    assert [conv.layers[key] for key in conv.layers] == [conv.layers[t] for t in tensors]
    assert dict(conv.outputs.items()) == {key: conv.outputs[key] for key in conv.outputs}
    assert all(key in conv.layers for key in conv.layers) and (d1,) not in conv.layers
    with nengo_cuda.Simulator(conv.net, progress_bar=False) as sim:
        sim.run_steps(2)
        assert [sim.data[conv.outputs[key]].shape for key in conv.outputs] == [(2, 1)] * 2


def test_inputs_in_the_models_order():
    """NengoDL fills Converter.inputs in model.inputs' order (data given by
    zipping its values with arrays relies on it), whatever order the layers
    convert in."""
    a, b = keras.Input((2,), name="a"), keras.Input((3,), name="b")
    out = keras.layers.Concatenate()([keras.layers.Dense(2)(b), a])
    conv = nengo_cuda.Converter(keras.Model([a, b], out))
    assert [n.label for n in conv.inputs.values()] == ["a", "b"]
    assert [key[0].deref() for key in conv.inputs] == [a, b]
    # (and Converter.layers in model.layers' order)
    assert [key[0].deref()._keras_history[0] for key in conv.layers] == conv.model.layers


def test_training_check_counts_trainable_parameters():
    inp = keras.Input((4,))
    bn = keras.layers.BatchNormalization()
    model = keras.Model(inp, keras.layers.Dense(2)(bn(inp)))
    conv = nengo_cuda.Converter(model, inference_only=True)  # BatchNormalization: constant
    assert conv.verify(inputs=[_x(model)], atol=ATOL)
    before = [w.copy() for w in model.get_weights()]
    # (NengoDL's: the network is configured inference_only, which fit refuses)
    with pytest.raises(ValueError, match="converted with inference_only=True"):
        conv.verify(training=True, inputs=[_x(model)])
    with nengo_cuda.Simulator(conv.net, progress_bar=False) as sim:
        sim.compile(loss=tf.losses.mse)
        with pytest.raises(nengo.exceptions.SimulationError, match="inference_only=True"):
            sim.fit(_x(model)[:, None], np.zeros((3, 1, 2)))
    with conv.net:
        nengo_cuda.configure_settings(inference_only=False)
    with pytest.raises(ValueError, match=r"\(10\) differs from the Keras model's \(18\)"):
        conv.verify(training=True, inputs=[_x(model)])
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)  # refused before Keras trained


def test_frozen_batch_normalization_converts_for_training():
    """A BatchNormalization with trainable=False is its inference form in Keras
    training too (moving statistics, gamma and beta fixed): a constant affine
    map, native without inference_only, and the layers around it train as in
    Keras.  A trainable one still needs inference_only (or a TensorNode)."""
    inp = keras.Input((4, 3, 2))
    bn = keras.layers.BatchNormalization(axis=1, trainable=False)
    x = keras.layers.Conv2D(2, 2, padding="same", activation="relu")(inp)
    model = keras.Model(inp, keras.layers.Dense(3)(keras.layers.Flatten()(bn(x))))
    bn.moving_mean.assign([0.1, -0.2, 0.3, 0.0])
    bn.moving_variance.assign([0.5, 2.0, 1.5, 1.0])
    bn.gamma.assign([1.5, 0.5, -1.0, 2.0])
    bn.beta.assign([0.2, 0.0, -0.3, 0.1])
    frozen = [w.numpy().copy() for w in bn.weights]
    conv = nengo_cuda.Converter(model, inference_only=False, allow_fallback=False)
    assert _native(conv)
    x = _x(model, n=4)
    assert conv.verify(inputs=[x], atol=ATOL)
    assert conv.verify(training=True, inputs=[x], atol=ATOL)
    for before, w in zip(frozen, bn.weights):  # Keras's training kept them
        np.testing.assert_array_equal(w.numpy(), before)
    bn.trainable = True
    with pytest.raises(TypeError, match=r"'batch_normalization(_\d+)?'.*inference_only=True"):
        nengo_cuda.Converter(model, inference_only=False, allow_fallback=False)


def test_shared_weights_of_a_fallback_layer():
    """A layer that runs as a TensorNode runs a copy of the Keras layer (the
    model's own weights stay as they are): its two applications share the
    copy's weights, as in Keras, and train as one; no split_shared_weights
    needed."""
    inp = keras.Input((4,))
    dense = keras.layers.Dense(3, kernel_regularizer=keras.regularizers.L2(0.1))
    model = keras.Model(inp, keras.layers.Add()([dense(inp), dense(-inp)]))
    with pytest.warns(UserWarning, match="TensorNode"):
        conv = nengo_cuda.Converter(model)
    assert conv.verify(training=True, inputs=[_x(model)], atol=ATOL)


@pytest.mark.parametrize("case", ["dilated", "no neuron type", "fallback, then native",
                                  "native, then fallback"])
def test_shared_weights_of_a_layer_whose_converter_gives_up(case):
    """A layer whose built-in converter gives up (a dilated convolution, an
    activation without a neuron type) runs as a TensorNode: its applications
    share that copy's weights (they were counted as native copies: "applied 2
    times"). An application that could convert natively, before or after one
    that falls back, shares the TensorNode too (a native copy would train
    apart; native first raised "applied 2 times")."""
    layers = keras.layers
    if case == "dilated":
        inp = keras.Input((6, 2))
        shared = layers.Conv1D(2, 2, dilation_rate=2, padding="same")
        second = shared(layers.Activation("tanh")(inp))
    elif case == "no neuron type":
        inp = keras.Input((4,))
        shared = layers.Dense(3, activation="softmax")
        second = shared(layers.Activation("tanh")(inp))
    if case == "fallback, then native":  # on two axes (no native form), then on one
        inp, other = keras.Input((2, 4)), keras.Input((4,))
        shared = layers.Dense(3)
        model = keras.Model([inp, other], [shared(inp), shared(other)])
    elif case == "native, then fallback":
        inp, other = keras.Input((4,)), keras.Input((2, 4))
        shared = layers.Dense(3)
        model = keras.Model([inp, other], [shared(inp), shared(other)])
    else:
        model = keras.Model(inp, layers.Add()([shared(inp), second]))
    with pytest.warns(UserWarning, match="TensorNode") as caught:
        conv = nengo_cuda.Converter(model)
    tensor_nodes = [n for n in conv.net.all_nodes if isinstance(n, nengo_cuda.TensorNode)]
    assert len(tensor_nodes) == 2
    # each application's warning once (not also those of a try that started again)
    said = [str(w.message) for w in caught if "TensorNode" in str(w.message)]
    assert len(said) == 2
    if case == "native, then fallback":
        assert all("has no native form (" in m and "sharing its weights" in m for m in said)
    rng = np.random.RandomState(0)
    x = [rng.uniform(-1, 1, (3,) + tuple(i.shape[1:])) for i in model.inputs]
    assert conv.verify(training=True, inputs=x, atol=ATOL)
    if "then" in case:
        # split_shared_weights: the application that can have a copy of its own gets one
        with pytest.warns(UserWarning, match="TensorNode"):
            split = nengo_cuda.Converter(model, split_shared_weights=True)
        assert sum(isinstance(n, nengo_cuda.TensorNode) for n in split.net.all_nodes) == 1
        assert split.verify(inputs=x, atol=ATOL)


@pytest.mark.parametrize("order", [0, 1, 2])
def test_a_shared_layer_falls_back_whichever_application_cannot_convert(order):
    """Three applications, one without a native form, in each place: all three
    share one TensorNode (the third place raised 'applied 2 times'); made
    inside a network, the conversion adds one network to it (one that started
    again left its first try's there too); each warning is given once, by the
    converter's module (a module filter silences it)."""
    shapes = [(4,), (4,)]
    shapes.insert(order, (2, 4))
    inputs = [keras.Input(s) for s in shapes]
    shared = keras.layers.Dense(3)
    model = keras.Model(inputs, [shared(i) for i in inputs])
    with nengo.Network() as outer:
        with pytest.warns(UserWarning, match="TensorNode") as caught:
            conv = nengo_cuda.Converter(model)
    assert outer.networks == [conv.net]
    assert sum(isinstance(n, nengo_cuda.TensorNode) for n in conv.net.all_nodes) == 3
    assert len([w for w in caught if "TensorNode" in str(w.message)]) == 3
    rng = np.random.RandomState(0)
    x = [rng.uniform(-1, 1, (3,) + s) for s in shapes]
    assert conv.verify(training=True, inputs=x, atol=ATOL)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", module="nengo_cuda")
        nengo_cuda.Converter(model)
    assert not [w for w in seen if "TensorNode" in str(w.message)]


def test_training_leaves_the_keras_model_as_it_was():
    """fit trains the converted network's fallen-back layers, not the Keras
    model's (its TensorNodes shared the model's weights: training changed the
    model's BatchNormalization, and any later conversion of it)."""
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5),
                              keras.layers.BatchNormalization(), keras.layers.Dense(2)])
    before = [w.copy() for w in model.get_weights()]
    with pytest.warns(UserWarning, match="batch_normalization.*TensorNode"):
        conv = nengo_cuda.Converter(model)
    x = _x(model, n=4)
    inp, probe = conv.inputs[model.inputs[0]], conv.outputs[model.outputs[0]]
    with nengo_cuda.Simulator(conv.net, minibatch_size=4, progress_bar=False) as sim:
        sim.compile(optimizer=tf.optimizers.SGD(0.5), loss=tf.losses.mse)
        sim.fit({inp: x[:, None]}, {probe: np.ones((4, 1, 2))}, epochs=2, verbose=0)
        trained = sim.keras_model.get_weights()
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(trained, before))


def test_dropout_runs_as_keras_in_fit_and_as_a_copy_in_simulation(monkeypatch):
    """Dropout (not inference_only) is a TensorNode, so that fit drops out as
    Keras's does; a simulation copies its input (no TensorFlow call a step)."""
    from nengo_cuda.training import tensor_node

    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dropout(0.5), keras.layers.Dense(2)])
    with pytest.warns(UserWarning, match="dropout.*inference_only=True"):
        conv = nengo_cuda.Converter(model)
    assert not _native(conv) and _native(nengo_cuda.Converter(model, inference_only=True))
    x = _x(model, n=4)
    calls = []
    call_tensors = tensor_node._TensorFunc.call_tensors
    monkeypatch.setattr(tensor_node._TensorFunc, "call_tensors",
                        lambda self, *a, **k: calls.append(k) or call_tensors(self, *a, **k))
    inp, probe = conv.inputs[model.inputs[0]], conv.outputs[model.outputs[0]]
    with nengo_cuda.Simulator(conv.net, minibatch_size=4, progress_bar=False) as sim:
        calls.clear()  # (the build traces it once)
        out = sim.predict({inp: np.repeat(x[:, None], 5, axis=1)})[probe]
        assert calls == []
    np.testing.assert_allclose(out[:, -1], model.predict(x, verbose=0), atol=ATOL)
    with nengo_cuda.Simulator(conv.net, minibatch_size=4, progress_bar=False) as sim:
        sim.compile(optimizer=tf.optimizers.SGD(0.0), loss=tf.losses.mse)
        losses = [sim.evaluate({inp: x[:, None]}, {probe: np.zeros((4, 1, 2))})["loss"]]
        tf.random.set_seed(0)
        history = sim.fit({inp: x[:, None]}, {probe: np.zeros((4, 1, 2))}, epochs=3, verbose=0)
    # with no learning, fit's losses vary from epoch to epoch only by dropout
    assert len(set(history.history["loss"] + losses)) > 1


def test_spiking_swap_scales_rates():
    """relu -> SpikingRectifiedLinear with scale_firing_rates and a synapse: the
    filtered spiking output approaches the Keras output (rates are exact for a
    ReLU; the error is the spike count's quantisation over the window)."""
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(20, activation="relu"),
                              keras.layers.Dense(2)])
    scale, synapse = 50, 0.01
    conv = nengo_cuda.Converter(model, swap_activations={tf.nn.relu: nengo.SpikingRectifiedLinear()},
                                scale_firing_rates=scale, synapse=synapse)
    ens = [e for e in conv.net.all_ensembles]
    assert len(ens) == 1 and isinstance(ens[0].neuron_type, nengo.SpikingRectifiedLinear)
    assert ens[0].neuron_type.amplitude == pytest.approx(1 / scale)
    x = _x(model, n=2)
    out = _run(conv, x, steps=2000, dtype="float64")
    expected = model.predict(x, verbose=0)
    mean = out[:, 1000:].mean(axis=1)
    # each neuron's spike count over 1 s is within 1 of rate * 1 s: error <= sum |w| / scale / 1 s
    bound = np.abs(model.layers[1].kernel.numpy()).sum(axis=0) / scale + 1e-3
    assert np.all(np.abs(mean - expected) <= bound)
    # without the swap: rate neurons, exact
    rate = nengo_cuda.Converter(model, scale_firing_rates=scale)
    np.testing.assert_allclose(_run(rate, x)[:, 0], expected, atol=ATOL)


def test_scale_firing_rates_scales_softlif_amplitude():
    """SoftLIFRate takes its amplitude through ``**lif_args``: it was left at 1
    (with a false "no amplitude" warning), so outputs were ``scale`` times too
    large; now its copy has amplitude 1 / scale and its other parameters."""
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6, activation="relu"),
                              keras.layers.Dense(2)])
    softlif = nengo_cuda.SoftLIFRate(sigma=0.5, tau_rc=0.03)
    x = _x(model)
    outs = []
    for neuron_type, amplitude in ((softlif, 0.1),
                                   (nengo_cuda.SoftLIFRate(sigma=0.5, tau_rc=0.03,
                                                           amplitude=10), 1)):
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            conv = nengo_cuda.Converter(model, swap_activations={tf.nn.relu: neuron_type},
                                        scale_firing_rates=10)
        (ens,) = conv.net.all_ensembles
        nt = ens.neuron_type
        assert (nt.amplitude, nt.sigma, nt.tau_rc) == (pytest.approx(amplitude), 0.5, 0.03)
        outs.append(_run(conv, x)[:, 0])
    # the same rates; the output layer's sum of them 10 times smaller
    bias = model.layers[-1].bias.numpy()
    np.testing.assert_allclose(outs[0] - bias, (outs[1] - bias) / 10, rtol=1e-5, atol=1e-6)
    assert softlif.amplitude == 1


def test_scale_firing_rates_without_amplitude_warns():
    """A sigmoid layer under a model-wide scale_firing_rates: converted with the
    gain alone and a warning (as NengoDL), so its output is sigmoid(s * x)."""
    inp = keras.Input((3,))
    model = keras.Model(inp, keras.layers.Dense(2, activation="sigmoid")(
        keras.layers.Dense(4, activation="relu")(inp)))
    with pytest.warns(UserWarning, match="Sigmoid.*no amplitude"):
        conv = nengo_cuda.Converter(model, scale_firing_rates=3)
    x = _x(model)
    hidden = np.maximum(x @ model.layers[1].kernel.numpy() + model.layers[1].bias.numpy(), 0)
    pre = hidden @ model.layers[2].kernel.numpy() + model.layers[2].bias.numpy()
    np.testing.assert_allclose(_run(conv, x)[:, 0], 1 / (1 + np.exp(-3 * pre)), atol=ATOL)


def test_keras_to_snn_workflow(tmp_path):
    """NengoDL's "Keras to SNN" example, small: train the converted rate network
    with a sparse categorical loss (one class index per target), save the
    parameters, convert again with spiking neurons, load them, probe a hidden
    layer by its Keras tensor and classify from the spiking output."""
    rng = np.random.RandomState(0)
    n = 64
    images = rng.uniform(0, 1, (n, 10, 10, 1))
    labels = (images[:, :5].mean(axis=(1, 2, 3)) > images[:, 5:].mean(axis=(1, 2, 3)))
    inp = keras.Input((10, 10, 1))
    conv0 = keras.layers.Conv2D(4, 3, activation=tf.nn.relu)(inp)
    dense = keras.layers.Dense(2)(keras.layers.Flatten()(conv0))
    model = keras.Model(inp, dense)
    x, y = images.reshape(n, 1, -1), labels.astype(np.int32).reshape(n, 1, 1)
    rate = nengo_cuda.Converter(model)
    with nengo_cuda.Simulator(rate.net, minibatch_size=16, progress_bar=False) as sim:
        sim.compile(optimizer=tf.optimizers.Adam(0.01),
                    loss={rate.outputs[dense]: tf.losses.SparseCategoricalCrossentropy(
                        from_logits=True)})
        before = sim.evaluate({rate.inputs[inp]: x}, {rate.outputs[dense]: y})["loss"]
        sim.fit({rate.inputs[inp]: x}, {rate.outputs[dense]: y}, epochs=20)
        after = sim.evaluate({rate.inputs[inp]: x}, {rate.outputs[dense]: y})["loss"]
        logits = sim.predict({rate.inputs[inp]: x})[rate.outputs[dense]][:, 0]
        sim.save_params(tmp_path / "params")
    assert after < 0.7 * before
    spiking = nengo_cuda.Converter(
        model, swap_activations={tf.nn.relu: nengo.SpikingRectifiedLinear()},
        scale_firing_rates=100, synapse=0.01)
    with spiking.net:
        hidden = nengo.Probe(spiking.layers[conv0])
    with nengo_cuda.Simulator(spiking.net, minibatch_size=16, progress_bar=False) as sim:
        sim.load_params(tmp_path / "params")
        out = sim.predict({spiking.inputs[inp]: np.tile(x, (1, 200, 1))})
    assert out[hidden].shape == (n, 200, 8 * 8 * 4)
    spikes = out[hidden] / (1 / 100 / 0.001)  # spikes of amplitude 1 / scale, height 1 / dt
    assert np.allclose(spikes, np.round(spikes), atol=1e-4) and np.round(spikes).max() >= 1
    # the spiking network classifies as the trained rate network does
    agree = (out[spiking.outputs[dense]][:, -50:].mean(axis=1).argmax(-1) == logits.argmax(-1))
    assert agree.mean() > 0.9


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_convolutions_and_resampling(padding):
    inp = keras.Input((7, 6, 3))
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding=padding,
                                     activation="relu")(inp)
    x = keras.layers.Conv2DTranspose(4, 3, strides=2, padding=padding)(x)
    y = keras.layers.Conv1DTranspose(2, 2, strides=3, padding=padding)(
        keras.layers.Reshape((-1, 4))(x))
    z = keras.layers.DepthwiseConv1D(2, strides=2, padding=padding)(y)
    z = keras.layers.Cropping1D((1, 2))(keras.layers.UpSampling1D(3)(z))
    u = keras.layers.Cropping2D(((2, 1), (0, 3)))(keras.layers.UpSampling2D((2, 3))(inp))
    model = keras.Model(inp, [keras.layers.Flatten()(z), keras.layers.Flatten()(u)])
    for layer in model.layers:  # random biases (Keras starts them at zero)
        if getattr(layer, "use_bias", False):
            layer.bias.assign(np.random.RandomState(1).uniform(-1, 1, layer.bias.shape))
    conv = nengo_cuda.Converter(model)
    assert _native(conv)
    assert conv.verify(inputs=[_x(model)], atol=ATOL)
    assert conv.verify(training=True, inputs=[_x(model)], atol=ATOL)


def test_nested_models():
    """A model used as a layer (e.g. a pretrained base) converts layer by layer."""
    base = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, activation="relu"),
                             keras.layers.Dense(4, activation="tanh")])
    inp = keras.Input((6,))
    out = keras.layers.Dense(2)(keras.layers.Concatenate()([base(inp), inp]))
    model = keras.Model(inp, out)
    conv = nengo_cuda.Converter(model)
    assert _native(conv)
    assert len(conv.net.all_ensembles) == 2
    assert conv.verify(inputs=[_x(model)], atol=ATOL)
    assert conv.verify(training=True, inputs=[_x(model)], atol=ATOL)


def test_nested_model_applied_twice():
    """A nested model applied twice counts its layers' applications, not its
    own (NengoDL's ConvertModel has no weights): one of layers that run as
    TensorNodes converts, their weights shared; one of native layers needs
    split_shared_weights, and the error names the layer."""
    sub_in = keras.Input((6, 2))
    dilated = keras.layers.Conv1D(2, 2, dilation_rate=2, padding="same")
    fallback = keras.Model(sub_in, dilated(sub_in), name="fallback")
    sub_in = keras.Input((4,))
    native = keras.Model(sub_in, keras.layers.Dense(2, name="inner")(sub_in), name="native")
    for sub in (fallback, native):
        inp = keras.Input(sub.inputs[0].shape[1:])
        model = keras.Model(inp, keras.layers.Add()([sub(inp), sub(-inp)]))
        if sub is native:
            with pytest.raises(ValueError, match="'inner' is applied 2 times"):
                nengo_cuda.Converter(model)
            continue
        with pytest.warns(UserWarning, match="TensorNode"):
            conv = nengo_cuda.Converter(model)
        assert conv.verify(training=True, inputs=[_x(model)], atol=ATOL)


def test_nested_model_adjusts_input_rank():
    """Keras gives a (10,) tensor to a nested model's (10, 1) input with a
    trailing axis added (and the nested model may be applied again to its own
    outputs); a tensor of another size is refused by name."""
    sub_in = keras.Input((10, 1))
    sub_out = keras.layers.Reshape((10,))(keras.layers.Add()([sub_in, sub_in]))
    sub = keras.Model(sub_in, sub_out, name="sub")
    inp = keras.Input((4,))
    out = sub(sub(keras.layers.Dense(10)(inp)))
    model = keras.Model(inp, out)
    conv = nengo_cuda.Converter(model)
    assert _native(conv)
    assert conv.verify(inputs=[_x(model)], atol=ATOL)

    inp = keras.Input((4,))
    other = keras.Model(inp, keras.layers.Dense(12)(inp))
    with pytest.raises(TypeError, match="nested model 'sub' takes an input of shape"):
        nengo_cuda.Converter(other, allow_fallback=False)._nested(sub, [
            nengo_cuda.converter.layers.Tensor(None, (12,))])


@pytest.mark.parametrize("axis", [1, 2, -1, -2])
def test_concatenate_axes(axis):
    a, b = keras.Input((2, 3)), keras.Input((2, 3))
    model = keras.Model([a, b], keras.layers.Concatenate(axis=axis)([a, b]))
    rng = np.random.RandomState(0)
    conv = nengo_cuda.Converter(model, allow_fallback=False)
    assert conv.verify(inputs=[rng.uniform(-1, 1, (2, 2, 3)), rng.uniform(-1, 1, (2, 2, 3))])


@pytest.mark.parametrize("axis", [0, -2])
def test_concatenate_along_the_batch_is_refused(axis):
    a, b = keras.Input((2,)), keras.Input((2,))
    model = keras.Model([a, b], keras.layers.Concatenate(axis=axis)([a, b]))
    with pytest.raises(TypeError, match="concatenation along the batch axis"):
        nengo_cuda.Converter(model, allow_fallback=False)


def test_two_inputs_two_outputs():
    a, b = keras.Input((3,)), keras.Input((2, 2))
    h = keras.layers.Dense(4, activation="sigmoid")(keras.layers.Concatenate()(
        [a, keras.layers.Flatten()(b)]))
    model = keras.Model([a, b], [keras.layers.Dense(2)(h), keras.layers.Average()([h, h])])
    conv = nengo_cuda.Converter(model)
    assert conv.inputs[a] is not conv.inputs[b]
    rng = np.random.RandomState(3)
    x = [rng.uniform(-1, 1, (4, 3)), rng.uniform(-1, 1, (4, 2, 2))]
    assert conv.verify(inputs=x, atol=ATOL)
    assert conv.verify(training=True, inputs=x, atol=ATOL)


def test_input_that_no_output_needs():
    """Every model input gets its Node (data given for it is taken, as a list
    of arrays in the model's input order), also one no output depends on."""
    a, unused = keras.Input((3,)), keras.Input((2,))
    model = keras.Model([a, unused], keras.layers.Dense(2)(a))
    conv = nengo_cuda.Converter(model)
    assert isinstance(conv.inputs[unused], nengo.Node) and conv.inputs[unused] is not conv.inputs[a]
    rng = np.random.RandomState(3)
    assert conv.verify(inputs=[rng.uniform(-1, 1, (4, 3)), rng.uniform(-1, 1, (4, 2))],
                       atol=ATOL)


def test_unbuilt_model_is_refused():
    model = keras.Sequential([keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="not built"):
        nengo_cuda.Converter(model)


def test_multi_input_fallback_trains():
    """A layer with two inputs and no native form (Multiply) runs as one
    TensorNode; with a Dense after it the whole model trains as in Keras."""
    a = keras.Input((3,))
    h = keras.layers.Dense(4, activation="tanh")(a)
    g = keras.layers.Dense(4, activation="sigmoid")(a)
    model = keras.Model(a, keras.layers.Dense(2)(keras.layers.Multiply()([h, g])))
    with pytest.warns(UserWarning, match="Multiply.*TensorNode"):
        conv = nengo_cuda.Converter(model)
    x = _x(model, n=4)
    assert conv.verify(inputs=[x], atol=ATOL)
    assert conv.verify(training=True, inputs=[x], atol=ATOL)


# -- 3-D layers: Conv3D a 3-D convolution (as NengoDL); the others built from 2-D
# convolutions and index maps, so they run in Nengo too --
def _random_biases(model, seed=1):
    for layer in model.layers:  # (Keras starts biases at zero)
        if getattr(layer, "use_bias", False):
            layer.bias.assign(np.random.RandomState(seed).uniform(-1, 1, layer.bias.shape))


def _runs_in_nengo(conv, x):
    """The converted network in nengo.Simulator (float64) gives the Keras output."""
    model = conv.model
    conv.inputs[model.inputs[0]].output = x.ravel()
    probe = conv.outputs[model.outputs[0]]
    with nengo.Simulator(conv.net, progress_bar=False) as ref:
        ref.step()
    np.testing.assert_allclose(ref.data[probe][0], model.predict(x[None], verbose=0)[0],
                               atol=ATOL)


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_conv3d_layers(padding):
    inp = keras.Input((5, 7, 4, 3))
    x = keras.layers.Conv3D(4, (2, 3, 2), strides=(1, 2, 3), padding=padding,
                            activation="relu")(inp)
    x = keras.layers.Conv3DTranspose(2, (4, 3, 3), strides=(2, 1, 2), padding=padding,
                                     activation="tanh")(x)
    y = keras.layers.Conv3D(6, (3, 2, 2), strides=(2, 3, 1), padding=padding, groups=3)(inp)
    z = keras.layers.Conv3DTranspose(2, 2, strides=3, output_padding=(1, 0, 2))(y)
    model = keras.Model(inp, [keras.layers.Flatten()(x), keras.layers.Flatten()(z)])
    _random_biases(model)
    conv = nengo_cuda.Converter(model)
    assert _native(conv)
    x = _x(model)
    assert conv.verify(inputs=[x], atol=ATOL)
    assert conv.verify(training=True, inputs=[x], atol=ATOL)


def test_3d_resampling_and_pooling():
    inp = keras.Input((5, 7, 4, 3))
    a = keras.layers.AveragePooling3D((2, 3, 2), strides=(1, 2, 2))(inp)
    b = keras.layers.ZeroPadding3D(((1, 0), (2, 1), (0, 2)))(a)
    b = keras.layers.Cropping3D(((0, 1), (1, 2), (1, 0)))(keras.layers.UpSampling3D((2, 1, 3))(b))
    g = keras.layers.GlobalAveragePooling3D()(b)
    k = keras.layers.GlobalAveragePooling3D(keepdims=True)(inp)
    m = keras.layers.MaxPooling3D(2)(inp)
    model = keras.Model(inp, [keras.layers.Flatten()(b), g, keras.layers.Flatten()(k),
                              keras.layers.Flatten()(m)])
    conv = nengo_cuda.Converter(model, max_to_avg_pool=True)
    assert _native(conv)
    x = _x(model)
    expected = model.predict(x, verbose=0)
    # max pooling became average pooling (2 x 2 x 2 windows; odd sizes drop their last)
    expected[3] = x[:, :4, :6].reshape(3, 2, 2, 3, 2, 2, 2, 3).mean(axis=(2, 4, 6)).reshape(3, -1)
    with nengo_cuda.Simulator(conv.net, minibatch_size=3, progress_bar=False) as sim:
        got = sim.predict({conv.inputs[inp]: x.reshape(3, 1, -1)})
    for out, e in zip(model.outputs, expected):
        np.testing.assert_allclose(got[conv.outputs[out]][:, 0], e, atol=ATOL)


def test_3d_channels_first():
    inp = keras.Input((3, 5, 4, 6))
    kw = {"data_format": "channels_first"}
    x = keras.layers.ZeroPadding3D(((1, 0), (0, 1), (2, 1)), **kw)(inp)
    x = keras.layers.Cropping3D(((0, 1), (1, 1), (0, 2)), **kw)(x)
    x = keras.layers.UpSampling3D((1, 2, 1), **kw)(x)
    p = keras.layers.AveragePooling3D((2, 1, 2), **kw)(x)
    g = keras.layers.GlobalAveragePooling3D(**kw)(x)
    c = keras.layers.Conv3D(4, (2, 3, 2), strides=(2, 1, 1), activation="relu", **kw)(inp)
    c = keras.layers.Conv3DTranspose(2, (2, 2, 3), strides=(1, 2, 2), padding="same", **kw)(c)
    model = keras.Model(inp, [keras.layers.Flatten()(p), g, keras.layers.Flatten()(c)])
    _random_biases(model)
    conv = nengo_cuda.Converter(model)
    assert _native(conv)
    assert conv.verify(inputs=[_x(model)], atol=ATOL)
    assert conv.verify(training=True, inputs=[_x(model)], atol=ATOL)


def test_conv3d_is_a_3d_convolution():
    """Conv3D converts to one 3-D nengo.Convolution holding the Keras kernel,
    as NengoDL converts it (NengoDL's test_conv model), simulated natively
    (the restacked 2-D convolution it once was summed in another order, and
    failed that test's verify tolerance by float32 rounding)."""
    inp = keras.Input((16, 4))
    x = keras.layers.Conv1D(filters=8, kernel_size=2, padding="same")(inp)
    x = keras.layers.Conv2D(8, 3, activation="sigmoid")(keras.layers.Reshape((4, 4, 8))(x))
    x = keras.layers.Conv2D(8, 1, strides=2)(keras.layers.Reshape((4, 4, 2))(x))
    layer = keras.layers.Conv3D(filters=32, kernel_size=2)
    model = keras.Model(inp, layer(keras.layers.Reshape((2, 2, 2, 4))(x)))
    conv = nengo_cuda.Converter(model, allow_fallback=False)
    (c3,) = [c for c in conv.net.all_connections if isinstance(c.transform, nengo.Convolution)
             and c.transform.dimensions == 3]
    np.testing.assert_array_equal(c3.transform.init, layer.kernel.numpy())
    assert conv.verify(inputs=[_x(model)], atol=ATOL)
    assert conv.verify(training=True, inputs=[_x(model)], atol=ATOL)


def test_3d_network_runs_in_nengo():
    """Nengo's reference simulator runs only 1-D and 2-D convolutions; the
    converted 3-D layers other than Conv3D use nothing else."""
    inp = keras.Input((4, 5, 3, 2))
    x = keras.layers.Conv3DTranspose(3, 2, padding="same", activation="relu")(inp)
    x = keras.layers.Conv3DTranspose(2, 2, strides=2)(keras.layers.AveragePooling3D(2)(x))
    model = keras.Model(inp, keras.layers.Flatten()(x))
    _random_biases(model)
    conv = nengo_cuda.Converter(model)
    assert _native(conv)
    assert all(c.transform.dimensions <= 2 for c in conv.net.all_connections
               if isinstance(c.transform, nengo.Convolution))
    _runs_in_nengo(conv, _x(model, n=1)[0])


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_global_max_pooling_as_average(dims):
    shape = (5, 4, 3, 2)[-dims - 1:]
    inp = keras.Input(shape)
    layer = getattr(keras.layers, f"GlobalMaxPooling{dims}D")()
    model = keras.Model(inp, layer(inp))
    with pytest.warns(UserWarning, match="max pooling.*TensorNode"):
        nengo_cuda.Converter(model)
    conv = nengo_cuda.Converter(model, max_to_avg_pool=True)
    assert _native(conv)
    x = _x(model)
    np.testing.assert_allclose(_run(conv, x)[:, 0], x.mean(axis=tuple(range(1, dims + 1))),
                               atol=ATOL)


def test_regularized_layers_fall_back_for_training():
    """A kernel regularizer (or constraint) would be dropped by a native form in
    training: the layer runs as a TensorNode, whose Keras weight
    regularization fit counts (NengoDL's unsupported_training_args), so
    training equals Keras's; inference_only=True converts it natively."""
    inp = keras.Input((4,))
    reg = keras.layers.Dense(3, activation="relu", kernel_regularizer=keras.regularizers.L2(0.2),
                             name="reg")
    model = keras.Model(inp, keras.layers.Dense(2, name="plain")(reg(inp)))
    with pytest.warns(UserWarning, match="kernel_regularizer"):
        conv = nengo_cuda.Converter(model)
    assert isinstance(conv.layers[reg.output], nengo_cuda.TensorNode)
    x = np.random.RandomState(0).uniform(-1, 1, (8, 4))
    assert conv.verify(training=True, inputs=[x])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # natively, no fallback warning
        native = nengo_cuda.Converter(model, inference_only=True)
    assert not isinstance(native.layers[reg.output], nengo_cuda.TensorNode)


def test_activity_regularizer_has_no_native_form_for_training():
    """NengoDL's unsupported_training_args include activity_regularizer: a
    layer with one falls back (a warning) or, with allow_fallback=False, is a
    TypeError (it converted natively, silently); inference_only converts it."""
    inp = keras.Input((4,))
    dense = keras.layers.Dense(3, activity_regularizer=keras.regularizers.L2(0.5))
    model = keras.Model(inp, dense(inp))
    with pytest.warns(UserWarning, match="activity_regularizer"):
        conv = nengo_cuda.Converter(model)
    assert isinstance(conv.layers[dense.output], nengo_cuda.TensorNode)
    # (the activity loss is not counted in fit, as in NengoDL: said, not silent)
    for layer in (dense, keras.layers.ActivityRegularization(l2=0.5)):
        with pytest.warns(UserWarning, match="activity regularization is not added to the loss"):
            nengo_cuda.Converter(keras.Model(inp, layer(inp)))
    with pytest.raises(TypeError, match="activity_regularizer"):
        nengo_cuda.Converter(model, allow_fallback=False)
    native = nengo_cuda.Converter(model, allow_fallback=False, inference_only=True)
    assert native.verify(inputs=[_x(model)], atol=ATOL)


def test_verify_trains_each_output_of_a_tensor_output_twice():
    """keras.Model(inp, [y, y]): two outputs, two probes; verify's fit gives
    each its targets, as Keras's loss counts both (one probe got both)."""
    inp = keras.Input((4,))
    y = keras.layers.Dense(3)(inp)
    model = keras.Model(inp, [y, y])
    conv = nengo_cuda.Converter(model)
    assert len(conv.net.probes) == 2
    assert conv.verify(training=True, inputs=[_x(model)], atol=ATOL)


def test_unused_swaps_and_unknown_input_sizes():
    """A swap_activations key that matches nothing warns (a typo would
    otherwise change nothing silently); an input shape with None is a clear
    ValueError, as NengoDL's (a Nengo Node has a fixed size)."""
    inp = keras.Input((3,))
    model = keras.Model(inp, keras.layers.Dense(2, activation="relu")(inp))
    with pytest.warns(UserWarning, match="'sigmoid' matched no activation"):
        conv = nengo_cuda.Converter(model, swap_activations={
            "sigmoid": nengo.LIF(), "relu": nengo.SpikingRectifiedLinear()})
    # NengoDL's swap_activations.unused_keys() (test_swap_activations_key_never_used)
    assert conv.swap_activations.unused_keys() == {"sigmoid"}
    assert conv.swap_activations["relu"] == nengo.SpikingRectifiedLinear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a key that applies does not warn
        conv = nengo_cuda.Converter(model, swap_activations={
            "relu": nengo.SpikingRectifiedLinear()})
    assert conv.swap_activations.unused_keys() == set()
    open_inp = keras.Input((None, 3))
    open_model = keras.Model(open_inp, keras.layers.Dense(2)(open_inp))
    with pytest.raises(ValueError, match="must be fully specified"):
        nengo_cuda.Converter(open_model)


def _keras_and_converted(model, x, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (the fallbacks' warnings)
        conv = nengo_cuda.Converter(model, **kwargs)
    return model.predict(x, verbose=0), _run(conv, x)[:, -1], conv


@pytest.mark.parametrize("layer", ["dense", "activation"])
def test_swap_to_an_activation_without_neuron_type(layer):
    """An activation swapped for one with no neuron type runs as the swapped
    one (NengoDL: a TensorNode of it): the fallback ran the layer with its own
    activation, silently (and the swap counted as used)."""
    inp = keras.Input((4,))
    out = (keras.layers.Dense(4, activation="relu")(inp) if layer == "dense"
           else keras.layers.Activation("relu")(inp))
    model = keras.Model(inp, out)
    x = _x(model, n=5)
    _, got, conv = _keras_and_converted(model, x, swap_activations={
        tf.nn.relu: keras.activations.elu})
    pre = x @ model.layers[1].kernel.numpy() + model.layers[1].bias.numpy() if (
        layer == "dense") else x
    np.testing.assert_allclose(got, keras.activations.elu(pre).numpy(), atol=ATOL)
    assert np.any(pre < -0.1)  # (where elu and relu differ)
    assert conv.swap_activations.unused_keys() == set()
    np.testing.assert_allclose(model.predict(x, verbose=0), np.maximum(pre, 0), atol=ATOL)


def test_user_functions_named_as_keras_activations_are_not_keras_ones():
    """Activations are Keras's by identity (NengoDL's map is keyed by the
    functions): a user's function named ``relu`` or ``tanh`` runs as itself,
    also in a fallback copy (whose config names it "relu")."""

    def relu(x):
        return keras.ops.minimum(keras.ops.relu(x), 0.5)

    def tanh(x):
        return 2.0 * keras.ops.tanh(x)

    for fn in (relu, tanh):
        inp = keras.Input((4,))
        model = keras.Model(inp, keras.layers.Dense(4, activation=fn)(inp))
        x = 3 * _x(model, n=5)
        expected, got, _ = _keras_and_converted(model, x)
        np.testing.assert_allclose(got, expected, atol=ATOL, err_msg=fn.__name__)
    # while Keras's and TensorFlow's own functions, under any of their names, convert
    for fn in (tf.nn.relu, keras.ops.relu, "relu", tf.math.tanh, keras.activations.sigmoid):
        inp = keras.Input((4,))
        model = keras.Model(inp, keras.layers.Dense(4, activation=fn)(inp))
        x = _x(model, n=5)
        expected, got, conv = _keras_and_converted(model, x)
        assert _native(conv), fn
        np.testing.assert_allclose(got, expected, atol=ATOL, err_msg=str(fn))


def test_adapted_normalization_falls_back_with_its_statistics():
    """A fallback copy of an adapted Normalization layer has its mean and
    variance (Keras computes them from the loaded weights: they were the
    build's 0 and 1)."""
    data = np.random.RandomState(2).normal(5, 3, (50, 3)).astype(np.float32)
    norm = keras.layers.Normalization()
    norm.adapt(data)
    inp = keras.Input((3,))
    model = keras.Model(inp, keras.layers.Dense(2)(norm(inp)))
    x = data[:4]
    expected, got, _ = _keras_and_converted(model, x)
    np.testing.assert_allclose(got, expected, atol=1e-4)


@pytest.mark.parametrize("op", ["a + 1.0", "a - 0.5", "1.0 - a", "a * 2.0",
                                "keras.ops.subtract(a, 0.5)", "keras.ops.maximum(a, 0.2)"])
def test_ops_with_constant_operands(op):
    """Keras ops such as ``a + 1.0`` are operations named as layers (``Add``),
    not the merge layer: they fall back to a TensorNode that calls the op as
    the model did, constant included (a merge converter would drop it)."""
    a = keras.Input((4,))
    model = keras.Model(a, keras.layers.Dense(3)(eval(op)))  # noqa: S307 - the listed ops
    with pytest.warns(UserWarning, match="TensorNode"):
        conv = nengo_cuda.Converter(model)
    x = _x(model)
    np.testing.assert_allclose(_run(conv, x)[:, 0], model.predict(x, verbose=0), atol=ATOL)


def test_fallback_calls_with_the_applications_arguments():
    """A layer that falls back runs as the model called it: keyword arguments,
    several positional tensors, a dict of tensors; its weights train."""

    class Scale(keras.layers.Layer):
        def call(self, x, scale=1.0):
            return x * scale

    class Mix(keras.layers.Layer):
        def build(self, x_shape, y_shape):
            self.w = self.add_weight(shape=(4,), initializer="ones")

        def call(self, x, y):
            return x * self.w - y

    class FromDict(keras.layers.Layer):
        def call(self, parts):
            return parts["p"] - 2.0 * parts["q"]

    a, b = keras.Input((4,)), keras.Input((4,))
    scaled = Scale()(a, scale=3.0)
    mixed = Mix()(scaled, b)
    out = keras.layers.Dense(2)(FromDict()({"p": mixed, "q": b}))
    model = keras.Model([a, b], out)
    with pytest.warns(UserWarning, match="TensorNode"):
        conv = nengo_cuda.Converter(model)
    rng = np.random.RandomState(1)
    x = [rng.uniform(-1, 1, (3, 4)), rng.uniform(-1, 1, (3, 4))]
    assert conv.verify(inputs=x, atol=ATOL)
    assert conv.verify(training=True, inputs=x, atol=ATOL)  # Mix's weights train as Keras's


def test_frozen_layers_do_not_train():
    """A Keras layer with trainable=False converts to parameters that fit does
    not train, as Keras's fit does not (its kernel and its bias into neurons)."""
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, activation="relu"),
                              keras.layers.Dense(2)])
    model.layers[0].trainable = False
    conv = nengo_cuda.Converter(model)
    assert _native(conv)
    assert conv.verify(training=True, inputs=[_x(model, n=8)], atol=ATOL)


def test_tensors_that_are_not_floats_pass_between_fallbacks():
    """Signals hold floats: a tensor of another dtype leaves a TensorNode as the
    simulator's float and comes back to its dtype in the next one (a Masking
    layer's bool mask into a recurrent layer, an argmax's ints, an int input
    into an op that needs ints: each failed the build or the op)."""
    inp = keras.Input((5, 3))
    masked = keras.layers.SimpleRNN(4)(keras.layers.Masking(0.0)(inp))
    model = keras.Model(inp, keras.layers.Dense(2)(masked))
    x = np.random.RandomState(0).uniform(-1, 1, (3, 5, 3))
    x[:, 3:] = 0  # (masked steps: the recurrent layer skips them)
    x[1, 1] = 0
    with pytest.warns(UserWarning, match="NotEqual.*TensorNode"):
        conv = nengo_cuda.Converter(model)
    assert conv.verify(inputs=[x], atol=ATOL)
    assert conv.verify(training=True, inputs=[x], atol=ATOL)

    codes = keras.Input((4,), dtype="int32")
    hot = keras.layers.Flatten()(keras.ops.one_hot(codes, 6))
    model = keras.Model(codes, [keras.ops.argmax(hot, axis=-1), keras.layers.Dense(2)(hot)])
    with pytest.warns(UserWarning, match="Argmax.*TensorNode"):
        conv = nengo_cuda.Converter(model)
    assert conv.verify(inputs=[np.random.RandomState(1).randint(0, 6, (3, 4))], atol=ATOL)
