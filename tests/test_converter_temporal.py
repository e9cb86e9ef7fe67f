"""``Converter(temporal_model=True)``: Keras models over (batch, steps, ...)
tensors, one Nengo step per Keras step, checked against Keras itself."""

import warnings

import nengo
import numpy as np
import pytest

import nengo_cuda

tf = pytest.importorskip("tensorflow")
keras = tf.keras

ATOL = 1e-5


def _x(shape, batch=3, seed=0):
    return np.random.RandomState(seed).uniform(-1, 1, (batch,) + shape)


@pytest.mark.parametrize("steps", [None, 6])
def test_per_step_layers_convert_natively(steps):
    a, b = keras.Input((steps, 3)), keras.Input((steps, 2))
    h = keras.layers.Dense(5, activation="relu")(keras.layers.Concatenate()([a, b]))
    h = keras.layers.LeakyReLU(negative_slope=0.1)(keras.layers.Dense(4)(h))
    out = keras.layers.Add()([keras.layers.Dense(4, activation="tanh")(h), h])
    model = keras.Model([a, b], [out, keras.layers.Dense(1)(out)])
    conv = nengo_cuda.Converter(model, temporal_model=True, allow_fallback=False)
    assert conv.inputs[a].size_out == 3  # one step's values
    x = [_x((6, 3)), _x((6, 2), seed=1)]
    assert conv.verify()  # ones: 10 steps, or the model's own number of steps
    assert conv.verify(inputs=x, atol=ATOL)
    assert conv.verify(training=True, inputs=x, atol=ATOL)  # (trains the Keras model)


def test_outputs_follow_the_inputs_step_by_step():
    """Step t's output is the model's output for step t, however the steps vary."""
    inp = keras.Input((None, 2))
    out = keras.layers.Dense(3, activation="sigmoid")(inp)
    model = keras.Model(inp, out)
    conv = nengo_cuda.Converter(model, temporal_model=True)
    x = _x((7, 2), batch=2)
    with nengo_cuda.Simulator(conv.net, minibatch_size=2, progress_bar=False) as sim:
        got = sim.predict({conv.inputs[inp]: x})[conv.outputs[out]]
    np.testing.assert_allclose(got, model.predict(x, verbose=0), atol=ATOL)


def test_spiking_temporal_model():
    """A spiking swap in a temporal model: the filtered spikes follow the
    Keras rates over the steps (the use NengoDL's temporal_model is for)."""
    inp = keras.Input((None, 4))
    model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.Dense(
        16, activation="relu")(inp)))
    conv = nengo_cuda.Converter(
        model, temporal_model=True, scale_firing_rates=100, synapse=0.01,
        swap_activations={tf.nn.relu: nengo.SpikingRectifiedLinear()})
    x = np.tile(_x((1, 4), batch=2), (1, 400, 1))
    with nengo_cuda.Simulator(conv.net, minibatch_size=2, progress_bar=False) as sim:
        got = sim.predict({conv.inputs[inp]: x})[conv.outputs[model.outputs[0]]]
    expected = model.predict(x[:, :1], verbose=0)[:, 0]
    np.testing.assert_allclose(got[:, 200:].mean(axis=1), expected, atol=0.05)


def test_fallback_layers_run_per_step():
    inp = keras.Input((5, 4))
    out = keras.layers.Softmax()(keras.layers.Dense(4)(inp))
    model = keras.Model(inp, out)
    with pytest.warns(UserWarning, match="Softmax.*TensorNode"):
        conv = nengo_cuda.Converter(model, temporal_model=True)
    assert conv.verify(inputs=[_x((5, 4))], atol=ATOL)


def test_batch_normalization_over_a_value_axis():
    inp = keras.Input((4, 3))
    bn = keras.layers.BatchNormalization()
    model = keras.Model(inp, bn(inp))
    bn.moving_mean.assign([0.1, -0.2, 0.3])
    bn.moving_variance.assign([0.5, 2.0, 1.5])
    conv = nengo_cuda.Converter(model, temporal_model=True, inference_only=True,
                                allow_fallback=False)
    assert conv.verify(inputs=[_x((4, 3))], atol=ATOL)


@pytest.mark.parametrize("make, why", [
    (lambda: keras.layers.SimpleRNN(3, return_sequences=True), "mixes time steps"),
    (lambda: keras.layers.Conv1D(3, 3, padding="same"), "mixes time steps"),
    (lambda: keras.layers.Conv1D(3, 3), "changes the time axis"),
    (lambda: keras.layers.Flatten(), "changes the time axis"),
    (lambda: keras.layers.BatchNormalization(axis=1), "treats time steps differently"),
    (lambda: keras.layers.Cropping1D((1, 0)), "changes the time axis"),
])
def test_layers_across_time_are_refused(make, why):
    """Neither natively nor as a TensorNode (which runs one step at a time)."""
    inp = keras.Input((6, 2))
    layer = make()
    out = layer(keras.layers.Dense(2)(inp))
    model = keras.Model(inp, out)
    if isinstance(layer, keras.layers.BatchNormalization):
        layer.moving_variance.assign(np.arange(1, 7) * 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(TypeError, match=f"layer '{layer.name}' .*not one function per "
                                            f"time step: it {why}"):
            nengo_cuda.Converter(model, temporal_model=True, inference_only=True)


def test_concatenation_along_time_is_refused():
    a = keras.Input((3, 2))
    model = keras.Model(a, keras.layers.Concatenate(axis=1)([a, a]))
    with pytest.raises(TypeError, match="changes the time axis"):
        nengo_cuda.Converter(model, temporal_model=True)


def test_input_needs_its_values_shape():
    inp = keras.Input((None, None))
    model = keras.Model(inp, keras.layers.ReLU()(inp))
    with pytest.raises(ValueError, match=r"after the batch and time axes "
                                         r"\(temporal_model=True\) must be fully"):
        nengo_cuda.Converter(model, temporal_model=True)
    inp = keras.Input((None, 3))
    model = keras.Model(inp, keras.layers.ReLU()(inp))
    with pytest.raises(ValueError, match=r"temporal_model=True takes a time axis"):
        nengo_cuda.Converter(model)


def test_extension_shapes_show_the_time_axis():
    seen = {}

    class Doubling(keras.layers.Layer):
        def call(self, x):
            return 2 * x

    @nengo_cuda.Converter.register(Doubling)
    class ConvertDoubling(nengo_cuda.converter.LayerConverter):
        def convert(self, node_id):
            seen["shapes"] = (self.input_shape(node_id), self.output_shape(node_id, True))
            out = self.add_nengo_obj(node_id)
            self.add_connection(node_id, out, transform=2)
            return out

    try:
        inp = keras.Input((None, 3))
        model = keras.Model(inp, Doubling()(inp))
        conv = nengo_cuda.Converter(model, temporal_model=True, allow_fallback=False)
        assert seen["shapes"] == ((3,), (None, None, 3))
        assert conv.verify(inputs=[_x((4, 3))], atol=ATOL)
    finally:
        del nengo_cuda.Converter.converters[Doubling]


# -- TimeDistributed: the wrapped layer on each step --------------------------------
@pytest.mark.parametrize("steps", [None, 5])
def test_time_distributed_layers_convert_natively(steps):
    """TimeDistributed(layer) applies ``layer`` to each step: with the time
    axis as the simulation's steps that is ``layer`` converted as in a model
    without it (NengoDL's test_time_distributed, and activations, channels
    first, a nested model); it trains as in Keras."""
    inp = keras.Input((steps, 8))
    x = keras.layers.TimeDistributed(keras.layers.Dense(16, activation="relu"))(inp)
    x = keras.layers.TimeDistributed(keras.layers.Reshape((4, 4, 1)))(x)
    x = keras.layers.TimeDistributed(keras.layers.Conv2D(2, 3, activation="tanh"))(x)
    z = keras.layers.TimeDistributed(keras.layers.Conv2D(
        3, 2, strides=2, padding="same", data_format="channels_first"))(x)
    inner = keras.Sequential([keras.Input((2, 2, 2)), keras.layers.Flatten(),
                              keras.layers.Dense(3, activation="sigmoid")])
    y = keras.layers.TimeDistributed(inner)(x)
    model = keras.Model(inp, [x, y, z])
    for layer in model.layers + inner.layers:  # (Keras starts biases at zero)
        inner_layer = getattr(layer, "layer", layer)
        if getattr(inner_layer, "use_bias", False):
            inner_layer.bias.assign(np.random.RandomState(1).uniform(
                -1, 1, inner_layer.bias.shape))
    conv = nengo_cuda.Converter(model, temporal_model=True, allow_fallback=False)
    assert not any(isinstance(n, nengo_cuda.TensorNode) for n in conv.net.all_nodes)
    assert conv.inputs[inp].size_out == 8 and conv.outputs[x].size_in == 2 * 2 * 2
    xs = _x((5, 8))
    assert conv.verify(inputs=[xs], atol=ATOL)
    assert conv.verify(training=True, inputs=[xs], atol=ATOL)  # (trains the Keras model)


def test_time_distributed_fallback_runs_the_wrapped_layer_per_step():
    """A wrapped layer without a native form is a TensorNode of the wrapped
    layer, called on one step; the messages name the TimeDistributed layer."""
    inp = keras.Input((4, 3, 2))
    td = keras.layers.TimeDistributed(keras.layers.Softmax(axis=-2), name="td")
    model = keras.Model(inp, td(keras.layers.ReLU()(inp)))
    with pytest.warns(UserWarning, match=r"'softmax(_\d+)?' \(Softmax\) in TimeDistributed "
                                         r"layer 'td'.*TensorNode"):
        conv = nengo_cuda.Converter(model, temporal_model=True)
    assert isinstance(conv.layers[td.output], nengo_cuda.TensorNode)
    assert conv.layers[td.output].size_in == 3 * 2  # one step's values
    assert conv.verify(inputs=[_x((4, 3, 2))], atol=ATOL)
    with pytest.raises(TypeError, match="in TimeDistributed layer 'td'.*allow_fallback"):
        nengo_cuda.Converter(model, temporal_model=True, allow_fallback=False)


def test_time_distributed_fallback_of_a_layer_whose_call_takes_no_mask():
    """The wrapped layer's TensorNode calls it without the wrapper's own
    arguments that its call lacks (Dense's call takes no mask: the build
    failed); shared with a native application, all share it."""
    shared = keras.layers.Dense(3)
    a, c = keras.Input((5, 4)), keras.Input((5, 2, 4))
    td = keras.layers.TimeDistributed(shared)
    for model in (keras.Model(c, td(c)), keras.Model([a, c], [td(a), td(c)])):
        with pytest.warns(UserWarning, match="TensorNode"):
            conv = nengo_cuda.Converter(model, temporal_model=True)
        x = [_x(tuple(i.shape[1:]), seed=k) for k, i in enumerate(model.inputs)]
        assert conv.verify(training=True, inputs=x, atol=1e-4)


def test_time_distributed_scale_firing_rates_and_shared_weights():
    """scale_firing_rates may name the wrapped layer (as NengoDL) or the
    TimeDistributed layer; a wrapped layer applied twice shares its weights
    (split_shared_weights), as any layer."""
    inp = keras.Input((None, 3))
    dense = keras.layers.Dense(4, activation="relu")
    td = keras.layers.TimeDistributed(dense)
    model = keras.Model(inp, td(inp))
    for key in (dense, td):
        conv = nengo_cuda.Converter(model, temporal_model=True, scale_firing_rates={key: 7})
        (ens,) = conv.net.all_ensembles
        assert ens.gain.options[0] == 7 and ens.neuron_type.amplitude == pytest.approx(1 / 7)
    twice = keras.Model(inp, keras.layers.Add()([td(inp), td(keras.layers.ReLU()(inp))]))
    with pytest.raises(ValueError, match=r"in TimeDistributed layer '.*' is applied 2 times"):
        nengo_cuda.Converter(twice, temporal_model=True)
    conv = nengo_cuda.Converter(twice, temporal_model=True, split_shared_weights=True)
    assert conv.verify(inputs=[_x((6, 3))], atol=ATOL)


def test_time_distributed_outside_a_temporal_model_is_a_tensor_node():
    """Outside a temporal model the time axis is a value axis (the wrapped
    layer's weights would be shared along it): not converted natively (NengoDL
    refuses it), but run as a TensorNode with allow_fallback, as Keras runs it."""
    inp = keras.Input((10, 8))
    td = keras.layers.TimeDistributed(keras.layers.Dense(4), name="td")
    model = keras.Model(inp, td(inp))
    with pytest.raises(TypeError, match="layer 'td' \\(TimeDistributed\\): TimeDistributed "
                                        "converts natively only with temporal_model=True"):
        nengo_cuda.Converter(model, allow_fallback=False)
    with pytest.warns(UserWarning, match="td"):
        conv = nengo_cuda.Converter(model)
    assert conv.verify(inputs=[np.random.RandomState(0).uniform(-1, 1, (2, 10, 8))])
    outer = keras.layers.TimeDistributed(keras.layers.TimeDistributed(keras.layers.Dense(2)),
                                         name="outer")
    nested = keras.Model(inp2 := keras.Input((5, 3, 2)), outer(inp2))
    with pytest.raises(TypeError, match="in TimeDistributed layer 'outer': TimeDistributed "
                                        "converts natively only"):
        nengo_cuda.Converter(nested, temporal_model=True, allow_fallback=False)


def test_ops_and_masks_run_per_step():
    """Keras ops (constants among their arguments, bool tensors between them)
    and a Masking layer's mask convert in a temporal model: the per-step check
    calls them as the model did (it gave an op Keras's training flag, which
    ops do not take, dropped their constants and made every input float:
    each was refused as "not one function per time step")."""
    inp = keras.Input((None, 3))
    positive = keras.ops.where(keras.ops.greater(inp, 0.0), inp, 0.5 * inp)
    masked = keras.layers.Masking(0.0)(keras.ops.abs(positive) * 2.0)
    out = keras.layers.TimeDistributed(keras.layers.Dense(2, bias_initializer="ones"))(masked)
    model = keras.Model(inp, out)
    with pytest.warns(UserWarning, match="TensorNode"):
        conv = nengo_cuda.Converter(model, temporal_model=True)
    x = _x((5, 3), batch=4)
    x[:, 3:] = 0  # (masked steps)
    x[1, 1] = 0
    assert conv.verify(inputs=[x], atol=ATOL)
    np.testing.assert_allclose(model.predict(x, verbose=0)[:, 3:], 1.0)  # (Dense(0): its bias)
