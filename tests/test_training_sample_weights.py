"""``sample_weight`` in ``fit``/``evaluate`` (Keras's, which NengoDL passed
through): checked against Keras training the same model (converted with
`nengo_cuda.Converter`), per item and per item and step."""

import nengo
import numpy as np
import pytest

import nengo_cuda

tf = pytest.importorskip("tensorflow")
keras = tf.keras

from keras_models import two_dense  # noqa: E402 (needs TensorFlow)

MB = 4


def _model(temporal, seed=0):
    return two_dense((5, 3) if temporal else (3,), seed)


def _data(temporal, n=8):
    rng = np.random.RandomState(1)
    lead = (n, 5) if temporal else (n,)
    x, y = rng.uniform(-1, 1, lead + (3,)), rng.uniform(-1, 1, lead + (2,))
    w = rng.uniform(0, 2, lead)
    return x, y, w


def _as_steps(a, temporal):
    return a if temporal else a[:, None]


@pytest.mark.parametrize("temporal", [False, True], ids=["per_item", "per_step"])
def test_fit_and_evaluate_weigh_as_keras(temporal):
    model = _model(temporal)
    conv = nengo_cuda.Converter(model, temporal_model=temporal)
    x, y, w = _data(temporal)
    inp, p = conv.inputs[model.inputs[0]], conv.outputs[model.outputs[0]]
    with nengo_cuda.Simulator(conv.net, minibatch_size=MB, progress_bar=False) as sim:
        sim.compile(tf.optimizers.SGD(0.2), loss="mse", metrics=["mae"],
                    weighted_metrics=["mae", "mse"])
        before = sim.evaluate({inp: _as_steps(x, temporal)}, {p: _as_steps(y, temporal)},
                              sample_weight=w)
        history = sim.fit({inp: _as_steps(x, temporal)}, {p: _as_steps(y, temporal)},
                          sample_weight=w, epochs=3, shuffle=False, verbose=0)
        got = sim.predict({inp: _as_steps(x, temporal)})[p]
    model.compile(optimizer=keras.optimizers.SGD(0.2), loss="mse", metrics=["mae"],
                  weighted_metrics=["mae", "mse"])
    expected_before = model.evaluate(x, y, sample_weight=w, batch_size=MB, verbose=0,
                                     return_dict=True)
    keras_history = model.fit(x, y, sample_weight=w, batch_size=MB, epochs=3,
                              shuffle=False, verbose=0)
    np.testing.assert_allclose(before["loss"], expected_before["loss"], rtol=1e-5)
    # compiled metrics ignore the weights, weighted_metrics take them (Keras's names)
    for name in ("mae", "weighted_mae", "mse"):
        np.testing.assert_allclose(before[f"probe_{name}"], expected_before[name], rtol=1e-5)
    np.testing.assert_allclose(history.history["loss"], keras_history.history["loss"],
                               rtol=1e-4)
    np.testing.assert_allclose(got.reshape(y.shape), model.predict(x, verbose=0), atol=1e-5)
    # the weights matter (an unweighted fit ends elsewhere)
    assert not np.allclose(before["loss"], sim_loss_unweighted(conv, x, y, temporal))


def sim_loss_unweighted(conv, x, y, temporal):
    model = conv.model
    with nengo_cuda.Simulator(conv.net, minibatch_size=MB, progress_bar=False) as sim:
        sim.compile(loss="mse")
        return sim.evaluate({conv.inputs[model.inputs[0]]: _as_steps(x, temporal)},
                            {conv.outputs[model.outputs[0]]: _as_steps(y, temporal)})["loss"]


def test_weights_in_validation_split_data_and_datasets():
    model = _model(False)
    conv = nengo_cuda.Converter(model)
    x, y, w = _data(False, n=16)
    inp, p = conv.inputs[model.inputs[0]], conv.outputs[model.outputs[0]]
    x3, y3 = x[:, None], y[:, None]
    results = []
    for form in ("split", "validation_data", "dataset"):
        with nengo_cuda.Simulator(conv.net, minibatch_size=MB, progress_bar=False) as sim:
            sim.compile(tf.optimizers.SGD(0.1), loss="mse")
            if form == "split":
                h = sim.fit({inp: x3}, {p: y3}, sample_weight={p: w}, validation_split=0.5,
                            shuffle=False, verbose=0)
            elif form == "validation_data":
                h = sim.fit({inp: x3[:8]}, {p: y3[:8]}, sample_weight=w[:8], shuffle=False,
                            validation_data=({inp: x3[8:]}, {p: y3[8:]}, w[8:]), verbose=0)
            else:
                def batches(lo, hi):
                    return tf.data.Dataset.from_tensor_slices(
                        ({inp.label: x3[lo:hi]}, {"probe": y3[lo:hi]}, w[lo:hi])).batch(MB)

                h = sim.fit(batches(0, 8), shuffle=False, validation_data=batches(8, 16),
                            verbose=0)
            results.append((h.history["loss"], h.history["val_loss"]))
            val = sim.evaluate({inp: x3[8:]}, {p: y3[8:]}, sample_weight=w[8:])["loss"]
            assert np.isclose(h.history["val_loss"][-1], val, rtol=1e-6)
    for other in results[1:]:
        np.testing.assert_allclose(other, results[0], rtol=1e-6)


def test_weights_need_values_they_can_weigh():
    model = _model(False)
    conv = nengo_cuda.Converter(model)
    x, y, w = _data(False)
    inp, p = conv.inputs[model.inputs[0]], conv.outputs[model.outputs[0]]
    feeds, targets = {inp: np.repeat(x[:, None], 2, axis=1)}, {p: np.repeat(y[:, None], 2,
                                                                            axis=1)}
    with nengo_cuda.Simulator(conv.net, minibatch_size=MB, progress_bar=False) as sim:
        sim.compile(loss=nengo_cuda.obj.mse)  # NengoDL 2's: one value per item
        sim.evaluate(feeds, targets, sample_weight=w)  # per item: fine
        with pytest.raises(nengo.exceptions.ValidationError, match="per-step sample weights"):
            sim.evaluate(feeds, targets, sample_weight=np.ones((8, 2)))
        sim.compile(loss=lambda y_true, y_pred: tf.reduce_mean(tf.square(y_true - y_pred)))
        with pytest.raises(nengo.exceptions.ValidationError, match="one value for the"):
            sim.evaluate(feeds, targets, sample_weight=w)
        with pytest.raises(nengo.exceptions.ValidationError,
                           match="^sample_weight: .* is not a Probe"):
            sim.evaluate(feeds, targets, sample_weight={inp: w})


@pytest.mark.parametrize("one_hot", [False, True])
def test_class_weight_as_keras(one_hot):
    keras.utils.set_random_seed(2)
    inp = keras.Input((4,))
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(
        keras.layers.Dense(8, activation="relu")(inp)))
    conv = nengo_cuda.Converter(model, allow_fallback=True)  # (softmax: a TensorNode)
    rng = np.random.RandomState(0)
    x, labels = rng.uniform(-1, 1, (8, 4)), rng.randint(0, 3, (8, 1))
    y = np.eye(3)[labels[:, 0]] if one_hot else labels
    loss = "categorical_crossentropy" if one_hot else "sparse_categorical_crossentropy"
    class_weight = {0: 0.5, 2: 3.0}
    n, p = conv.inputs[inp], conv.outputs[model.outputs[0]]
    initial = model.get_weights()
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss=loss)
    theirs = model.fit(x, y, class_weight=class_weight, batch_size=MB, epochs=3,
                       shuffle=False, verbose=0).history["loss"]
    model.set_weights(initial)  # (the TensorNode runs the model's own last layer)
    with nengo_cuda.Simulator(conv.net, minibatch_size=MB, progress_bar=False) as sim:
        sim.compile(tf.optimizers.SGD(0.5), loss=loss)
        ours = sim.fit({n: x[:, None]}, {p: y[:, None]}, class_weight=class_weight,
                       epochs=3, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(ours, theirs, rtol=1e-4)


def test_one_array_weighs_every_probe():
    """One sample_weight array with targets for two probes weighs both, as
    Keras weighs every output with it (it was refused: "give a dict")."""
    rng = np.random.RandomState(2)
    with nengo.Network() as net:
        inp = nengo.Node(np.zeros(3))
        a, b = nengo.Node(size_in=2), nengo.Node(size_in=1)
        nengo.Connection(inp, a, transform=rng.randn(2, 3), synapse=None)
        nengo.Connection(inp, b, transform=rng.randn(1, 3), synapse=None)
        pa, pb = nengo.Probe(a), nengo.Probe(b)
    x, w = rng.randn(8, 1, 3), rng.uniform(0, 2, 8)
    y = {pa: rng.randn(8, 1, 2), pb: rng.randn(8, 1, 1)}
    with nengo_cuda.Simulator(net, minibatch_size=MB, progress_bar=False) as sim:
        sim.compile(loss="mse")
        one = sim.evaluate({inp: x}, y, sample_weight=w)
        each = sim.evaluate({inp: x}, y, sample_weight={pa: w, pb: w})
        plain = sim.evaluate({inp: x}, y)
    assert one == each and one["loss"] != plain["loss"]


@pytest.mark.parametrize("temporal", [False, True], ids=["per_item", "per_step"])
@pytest.mark.parametrize("loss", ["MeanSquaredError", "Huber"])
def test_keras_loss_objects_weigh_as_keras(temporal, loss):
    """A Keras Loss object (NengoDL's tutorials compile one) takes sample
    weights as Keras's ``Loss.__call__`` does: its values per item (and
    step), weighted (it was refused: the object had reduced them already)."""
    model = _model(temporal)
    conv = nengo_cuda.Converter(model, temporal_model=temporal)
    x, y, w = _data(temporal)
    inp, p = conv.inputs[model.inputs[0]], conv.outputs[model.outputs[0]]
    with nengo_cuda.Simulator(conv.net, minibatch_size=MB, progress_bar=False) as sim:
        sim.compile(tf.optimizers.SGD(0.2), loss=getattr(keras.losses, loss)())
        got = sim.evaluate({inp: _as_steps(x, temporal)}, {p: _as_steps(y, temporal)},
                           sample_weight=w)["loss"]
        history = sim.fit({inp: _as_steps(x, temporal)}, {p: _as_steps(y, temporal)},
                          sample_weight=w, epochs=2, shuffle=False, verbose=0)
    model.compile(optimizer=keras.optimizers.SGD(0.2), loss=getattr(keras.losses, loss)())
    expected = model.evaluate(x, y, sample_weight=w, batch_size=MB, verbose=0)
    keras_history = model.fit(x, y, sample_weight=w, batch_size=MB, epochs=2, shuffle=False,
                              verbose=0)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    np.testing.assert_allclose(history.history["loss"], keras_history.history["loss"],
                               rtol=1e-4)
