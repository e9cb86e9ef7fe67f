"""NengoDL's converter extension API: ``Converter.register`` and ``LayerConverter``.

The custom layers here are converted by user converters written as for
``nengo_dl.Converter`` (``import nengo_cuda as nengo_dl``); the oracle is the
Keras model itself (``verify``: outputs, and outputs after 3 SGD epochs in
both, which checks that the weights the converter marks trainable train as
the Keras weights do).
"""

import warnings
import zlib

import nengo
import numpy as np
import pytest

import nengo_cuda as nengo_dl
from nengo_cuda.converter import LayerConverter

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

ATOL = 1e-5


@pytest.fixture(autouse=True)
def keras_seed(request):
    keras.utils.set_random_seed(zlib.crc32(request.node.nodeid.encode()) % 2**31)


@pytest.fixture(autouse=True)
def registry():
    """Registrations are global (class attribute): each test starts and ends
    with the built-in state."""
    saved = dict(nengo_dl.Converter.converters)
    yield
    nengo_dl.Converter.converters.clear()
    nengo_dl.Converter.converters.update(saved)


class ScaleShift(keras.layers.Layer):
    """``activation(x * w + c)`` elementwise, ``w`` and ``c`` trainable."""

    def __init__(self, activation=None, mode="plain", **kwargs):
        super().__init__(**kwargs)
        self.activation = keras.activations.get(activation)
        self.mode = mode

    def build(self, shape):
        init = keras.initializers.RandomUniform(-1, 1)
        self.w = self.add_weight(shape=shape[1:], initializer=init)
        self.c = self.add_weight(shape=shape[1:], initializer=init)

    def call(self, x):
        return self.activation(x * self.w + self.c)


class ConvertScaleShift(LayerConverter):
    """As a user writes it for NengoDL: the bias through add_nengo_obj, the
    weight as an elementwise transform."""

    has_weights = True
    unsupported_args = [("mode", "plain")]
    calls = []  # node_ids converted

    def convert(self, node_id):
        type(self).calls.append(node_id)
        out = self.add_nengo_obj(node_id, biases=self.layer.c.numpy(),
                                 activation=self.layer.activation)
        self.add_connection(node_id, out, transform=self.layer.w.numpy().ravel(),
                            trainable=True)
        return out


def _register():
    ConvertScaleShift.calls = []
    return nengo_dl.Converter.register(ScaleShift)(ConvertScaleShift)


def _model(activation="relu", mode="plain", layer_cls=ScaleShift):
    inp = keras.Input((3, 2))
    x = layer_cls(activation=activation, mode=mode)(keras.layers.Flatten()(inp))
    return keras.Model(inp, keras.layers.Dense(3)(x))


def _x(model, n=4):
    return np.random.RandomState(0).uniform(-1, 1, (n,) + tuple(model.inputs[0].shape[1:]))


def _fallbacks(caught):
    return [str(w.message) for w in caught if "TensorNode" in str(w.message)]


def _convert(model, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        conv = nengo_dl.Converter(model, **kwargs)
    return conv, _fallbacks(caught)


def _tensor_nodes(conv):
    return [n for n in conv.net.all_nodes if isinstance(n, nengo_dl.TensorNode)]


def _predict(conv, x):
    model = conv.model
    with nengo_dl.Simulator(conv.net, minibatch_size=len(x), progress_bar=False) as sim:
        out = sim.predict({conv.inputs[model.inputs[0]]: x.reshape(len(x), 1, -1)})
    return out[conv.outputs[model.outputs[0]]][:, 0]


@pytest.mark.parametrize("activation", ["relu", "tanh", None])
def test_registered_layer_converts_natively(activation):
    assert _register() is ConvertScaleShift  # the decorator returns the class
    assert nengo_dl.Converter.converters[ScaleShift] is ConvertScaleShift
    model = _model(activation)
    conv, fallbacks = _convert(model)
    assert not fallbacks and not _tensor_nodes(conv)
    assert ConvertScaleShift.calls == [0]
    layer = model.layers[2]
    obj = conv.layers[layer]
    if activation is None:  # linear: a Node, its bias a connection from the constant Node
        assert isinstance(obj, nengo.Node) and not conv.net.all_ensembles
    else:  # neurons whose bias is the layer's c, trainable
        assert isinstance(obj, nengo.ensemble.Neurons)
        np.testing.assert_allclose(obj.ensemble.bias, layer.c.numpy())
    x = _x(model)
    np.testing.assert_allclose(_predict(conv, x), model.predict(x, verbose=0), atol=ATOL)
    assert conv.verify(training=True, inputs=[x], atol=ATOL)


def test_options_apply_to_helper_objects():
    """swap_activations, scale_firing_rates and synapse act on what the
    helpers build as on built-in layers: a rate-equivalent spiking network."""
    _register()
    model = _model("relu")
    scale, synapse = 20.0, 0.005
    conv, _ = _convert(model, swap_activations={tf.nn.relu: nengo.SpikingRectifiedLinear()},
                       scale_firing_rates=scale, synapse=synapse)
    (ens,) = conv.net.all_ensembles
    assert isinstance(ens.neuron_type, nengo.SpikingRectifiedLinear)
    assert ens.neuron_type.amplitude == pytest.approx(1 / scale)
    assert list(ens.gain.options) == [scale]
    np.testing.assert_allclose(ens.bias, scale * model.layers[2].c.numpy())
    out_of_neurons = [c for c in conv.net.all_connections
                      if isinstance(c.pre_obj, nengo.ensemble.Neurons)]
    assert out_of_neurons and all(c.synapse == nengo.Lowpass(synapse) for c in out_of_neurons)
    # with rate neurons the scaling is exact
    rate, _ = _convert(model, scale_firing_rates=scale)
    x = _x(model)
    np.testing.assert_allclose(_predict(rate, x), model.predict(x, verbose=0), atol=ATOL)


def test_convertible_false_falls_back():
    """unsupported_args, a convertible() returning (False, reason) or a bare
    False (NengoDL 3.0): the layer runs as a TensorNode, with a warning."""
    _register()
    model = _model(mode="fancy")
    conv, fallbacks = _convert(model)
    assert len(fallbacks) == 1 and "mode is 'fancy'" in fallbacks[0]
    assert len(_tensor_nodes(conv)) == 1 and ConvertScaleShift.calls == []
    assert conv.verify(inputs=[_x(model)], atol=ATOL)

    class Refuses(ConvertScaleShift):
        @classmethod
        def convertible(cls, layer, converter):
            return False, "not today"

    nengo_dl.Converter.converters[ScaleShift] = Refuses
    conv, fallbacks = _convert(_model())
    assert len(fallbacks) == 1 and "not today" in fallbacks[0] and _tensor_nodes(conv)

    Refuses.convertible = classmethod(lambda cls, layer, converter: False)
    conv, fallbacks = _convert(_model())
    assert len(fallbacks) == 1 and "Refuses.convertible is False" in fallbacks[0]
    with pytest.raises(TypeError, match="allow_fallback"):
        nengo_dl.Converter(_model(), allow_fallback=False)

    Refuses.allow_fallback = False  # the converter's own veto: an error even with fallback
    with pytest.raises(TypeError, match="Unable to convert layer .* to native Nengo objects.*Refuses"):
        nengo_dl.Converter(_model())


def test_unsupported_training_args_waived_for_inference():
    class TrainingOnly(ConvertScaleShift):
        unsupported_args = []
        unsupported_training_args = [("mode", "plain")]

    nengo_dl.Converter.register(ScaleShift)(TrainingOnly)
    model = _model(mode="fancy")
    _, fallbacks = _convert(model)
    assert len(fallbacks) == 1 and "inference_only=True" in fallbacks[0]
    conv, fallbacks = _convert(model, inference_only=True)
    assert not fallbacks and not _tensor_nodes(conv)


def test_override_builtin_warns_and_is_used():
    calls = []

    with pytest.warns(UserWarning, match="already has a converter"):
        @nengo_dl.Converter.register(keras.layers.Dense)
        class MyDense(LayerConverter):
            has_weights = True

            def convert(self, node_id):
                calls.append(self.layer.name)
                kernel, bias = self.layer.kernel.numpy(), self.layer.bias.numpy()
                out = self.add_nengo_obj(node_id, biases=bias, activation=self.layer.activation)
                self.add_connection(node_id, out, transform=kernel.T, trainable=True)
                return out

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, activation="relu"),
                              keras.layers.Dense(2)])
    conv, fallbacks = _convert(model)
    assert not fallbacks and calls == [la.name for la in model.layers]
    (ens,) = conv.net.all_ensembles  # the bias is the ensemble's, not a connection's
    np.testing.assert_allclose(ens.bias, model.layers[0].bias.numpy())
    assert conv.verify(training=True, inputs=[np.ones((3, 4)) * 0.5], atol=ATOL)
    with pytest.warns(UserWarning, match="already has a converter"):  # registered twice
        nengo_dl.Converter.register(keras.layers.Dense)(MyDense)


def test_subclasses_use_a_base_class_registration():
    """Registrations are found along the layer class's MRO; a built-in
    converter only converts its own Keras class, so a Dense subclass (which
    may compute something else) still falls back."""
    _register()

    class Shifted(ScaleShift):
        pass

    model = _model(layer_cls=Shifted)
    conv, fallbacks = _convert(model)
    assert not fallbacks and ConvertScaleShift.calls == [0]
    assert conv.verify(inputs=[_x(model)], atol=ATOL)

    class DoubledDense(keras.layers.Dense):
        def call(self, x):
            return 2 * super().call(x)

    inp = keras.Input((3,))
    model = keras.Model(inp, DoubledDense(2)(inp))
    conv, fallbacks = _convert(model)
    assert len(fallbacks) == 1 and "DoubledDense" in fallbacks[0]
    assert conv.verify(inputs=[np.ones((2, 3))], atol=ATOL)


def test_unknown_activation_falls_back_without_leftovers():
    """An activation without a Nengo form makes add_nengo_obj give up (as
    does a converter raising Unconvertible): the layer becomes one TensorNode
    and nothing the converter built before stays."""
    _register()
    model = _model(activation="softplus")
    conv, fallbacks = _convert(model)
    assert len(fallbacks) == 1 and "softplus" in fallbacks[0]
    assert not conv.net.all_ensembles
    names = [o.label for o in conv.net.all_nodes]
    assert names.count(model.layers[2].name) == 1  # the TensorNode only
    assert conv.verify(inputs=[_x(model)], atol=ATOL)

    class BuildsFirst(ConvertScaleShift):
        def convert(self, node_id):
            scratch = nengo.Node(size_in=6, label="scratch")
            self.add_connection(node_id, scratch)
            self.converter.add_bias(scratch, np.ones(6))  # makes the shared bias Node
            raise nengo_dl.converter.Unconvertible("changed my mind")

    nengo_dl.Converter.converters[ScaleShift] = BuildsFirst
    inp = keras.Input((6,))
    model = keras.Model(inp, keras.layers.Dense(2)(ScaleShift()(inp)))
    conv, fallbacks = _convert(model)
    assert len(fallbacks) == 1 and "changed my mind" in fallbacks[0]
    labels = [o.label for o in conv.net.all_nodes]
    assert "scratch" not in labels and labels.count("bias") == 1  # Dense's bias Node
    assert all(c.post_obj in conv.net.all_nodes for c in conv.net.all_connections)
    assert conv.verify(inputs=[_x(model)], atol=ATOL)


def test_applications_and_shapes():
    """node_id is the application's index: one converter instance builds both
    applications of a shared layer (split_shared_weights), reading each one's
    own inputs; shapes as NengoDL gives them."""
    _register()
    seen = {}

    class Recording(ConvertScaleShift):
        def convert(self, node_id):
            seen[node_id] = (id(self), self.input_shape(node_id), self.output_shape(node_id),
                             self.input_shape(node_id, include_batch=True),
                             self.output_shape(node_id, full_shape=True),
                             self.get_input_obj(node_id))
            return super().convert(node_id)

    nengo_dl.Converter.converters[ScaleShift] = Recording
    inp = keras.Input((4,))
    shared = ScaleShift(activation="tanh")
    a = keras.layers.Dense(4)(inp)
    model = keras.Model(inp, keras.layers.Add()([shared(a), shared(inp)]))
    with pytest.raises(ValueError, match="applied 2 times"):
        nengo_dl.Converter(model)
    seen.clear()
    conv = nengo_dl.Converter(model, split_shared_weights=True)
    assert sorted(seen) == [0, 1] and seen[0][0] == seen[1][0]
    for node_id, src in ((0, conv.layers[a]), (1, conv.inputs[inp])):
        _, shape_in, shape_out, full_in, full_out, obj = seen[node_id]
        assert shape_in == shape_out == (4,) and full_in == full_out == (None, 4)
        assert obj is src
    assert conv.verify(inputs=[_x(model)], atol=ATOL)


class Mix(keras.layers.Layer):
    """``a * alpha + b`` for two inputs, ``alpha`` trainable."""

    def build(self, shapes):
        self.alpha = self.add_weight(shape=shapes[0][1:], initializer="ones")

    def call(self, inputs):
        a, b = inputs
        return a * self.alpha + b


def test_several_inputs():
    @nengo_dl.Converter.register(Mix)
    class ConvertMix(LayerConverter):
        has_weights = True

        def convert(self, node_id):
            assert self.input_shape(node_id) == [(3,), (3,)]
            out = self.add_nengo_obj(node_id)
            self.add_connection(node_id, out, input_idx=0, trainable=True,
                                transform=self.layer.alpha.numpy())
            self.add_connection(node_id, out, input_idx=1)
            return out

    inp = keras.Input((3,))
    h = keras.layers.Dense(3, activation="sigmoid")(inp)
    mix = Mix()
    model = keras.Model(inp, keras.layers.Dense(2)(mix([h, inp])))
    mix.alpha.assign([0.5, -1.0, 2.0])
    conv, fallbacks = _convert(model)
    assert not fallbacks and not _tensor_nodes(conv)
    x = _x(model)
    assert conv.verify(inputs=[x], atol=ATOL)
    assert conv.verify(training=True, inputs=[x], atol=ATOL)


def test_wrong_output_size_is_an_error():
    @nengo_dl.Converter.register(ScaleShift)
    class TooSmall(LayerConverter):
        def convert(self, node_id):
            return nengo.Node(size_in=1)

    with pytest.raises(ValueError, match="TooSmall.convert gave .*size 1.*shape \\(6,\\)"):
        nengo_dl.Converter(_model())


def test_set_trainable_and_history():
    _register()
    model = _model()
    conv, _ = _convert(model)
    with conv.net:
        conn = nengo.Connection(conv.inputs[model.inputs[0]], nengo.Node(size_in=6))
        LayerConverter.set_trainable(conn, False)
    assert conv.net.config[conn].trainable is False
    assert LayerConverter.get_history(model.outputs[0])[0] is model.layers[-1]
