"""Keras's ``steps_per_epoch``, ``validation_steps`` and ``steps`` in ``fit``,
``evaluate`` and ``predict`` (NengoDL passed them to Keras): which minibatches
each epoch and each run takes, checked against Keras 3 training the same model
(converted with `nengo_cuda.Converter`)."""

import warnings

import nengo
import numpy as np
import pytest

import nengo_cuda
from nengo_cuda.training.epochs import ArrayEpochs, SourceEpochs

tf = pytest.importorskip("tensorflow")
keras = tf.keras

from keras_models import two_dense  # noqa: E402 (needs TensorFlow)

MB = 4
N = 20  # 5 minibatches


def _model(seed=0):
    return two_dense((3,), seed)


def _data(n=N, seed=1):
    rng = np.random.RandomState(seed)
    return rng.uniform(-1, 1, (n, 3)), rng.uniform(-1, 1, (n, 2))


def _keras_fit(x, y, **kwargs):
    model = _model()
    model.compile(optimizer=keras.optimizers.SGD(0.3), loss="mse")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(x, y, verbose=0, **kwargs)
    ran_out = sum("ran out of data" in str(w.message) for w in caught)
    return model, history.history, ran_out


def _ours_fit(x, y, source=None, **kwargs):
    model = _model()
    conv = nengo_cuda.Converter(model)
    inp, p = conv.inputs[model.inputs[0]], conv.outputs[model.outputs[0]]
    sim = nengo_cuda.Simulator(conv.net, minibatch_size=MB, progress_bar=False)
    sim.compile(tf.optimizers.SGD(0.3), loss="mse")
    if callable(kwargs.get("validation_data")):
        kwargs["validation_data"] = kwargs["validation_data"](inp, p)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if source is not None:
            history = sim.fit(source(inp, p), verbose=0, **kwargs)
        else:
            history = sim.fit({inp: x[:, None]}, {p: y[:, None]}, verbose=0, **kwargs)
    ran_out = sum("ran out" in str(w.message) for w in caught)
    return sim, inp, p, history.history, ran_out


@pytest.mark.parametrize("steps_per_epoch", [2, 3, 5, 7])
def test_steps_per_epoch_as_keras(steps_per_epoch):
    """Epochs continue one pass over the data; a pass that runs out ends its
    epoch early (with a warning), the next epoch starts a new pass."""
    x, y = _data()
    kwargs = dict(epochs=4, shuffle=False, steps_per_epoch=steps_per_epoch)
    model, theirs, their_warnings = _keras_fit(x, y, batch_size=MB, **kwargs)
    sim, inp, p, ours, our_warnings = _ours_fit(x, y, **kwargs)
    with sim:
        np.testing.assert_allclose(ours["loss"], theirs["loss"], rtol=2e-4)
        assert our_warnings == their_warnings
        got = sim.predict({inp: x[:, None]})[p][:, 0]
    np.testing.assert_allclose(got, model.predict(x, verbose=0), atol=2e-5)


def test_validation_steps_and_evaluate_steps_take_the_first_minibatches():
    x, y = _data()
    kwargs = dict(epochs=2, shuffle=False, validation_steps=2)
    model, theirs, _ = _keras_fit(x[:12], y[:12], batch_size=MB,
                                  validation_data=(x[12:], y[12:]), **kwargs)
    sim, inp, p, ours, _ = _ours_fit(
        x[:12], y[:12], validation_data=lambda inp, p: ({inp: x[12:, None]}, {p: y[12:, None]}),
        **kwargs)
    with sim:
        np.testing.assert_allclose(ours["val_loss"], theirs["val_loss"], rtol=2e-4)
        # evaluate and predict: the first minibatches
        for steps in (1, 2):
            expected = model.evaluate(x, y, batch_size=MB, steps=steps, verbose=0)
            got = sim.evaluate({inp: x[:, None]}, {p: y[:, None]}, steps=steps)["loss"]
            np.testing.assert_allclose(got, expected, rtol=2e-4)
            out = sim.predict({inp: x[:, None]}, steps=steps)[p]
            assert out.shape == (steps * MB, 1, 2)
        with pytest.warns(UserWarning, match="steps=9, but the data holds 5 minibatches"):
            assert sim.predict({inp: x[:, None]}, steps=9)[p].shape == (N, 1, 2)
        for bad in (0, -1, 1.5, True):
            with pytest.raises(nengo.exceptions.ValidationError, match="positive integer"):
                sim.evaluate({inp: x[:, None]}, {p: y[:, None]}, steps=bad)
            with pytest.raises(nengo.exceptions.ValidationError, match="positive integer"):
                sim.fit({inp: x[:, None]}, {p: y[:, None]}, steps_per_epoch=bad)


@pytest.mark.parametrize("kind", ["generator", "dataset"])
def test_sources_are_read_an_epoch_at_a_time(kind):
    """With steps_per_epoch, every epoch trains on the next batches of a
    generator or Dataset (an endless generator gives new data every epoch), in
    their order (Keras ignores shuffle for them); a Dataset that runs out
    starts over, a generator that runs out ends training."""
    x, y = _data()

    def keras_source():
        if kind == "dataset":
            return tf.data.Dataset.from_tensor_slices((x, y)).batch(MB)
        return ((x[i : i + MB], y[i : i + MB]) for i in range(0, N, MB))

    def our_source(inp, p):
        if kind == "dataset":
            return tf.data.Dataset.from_tensor_slices(
                ({inp.label: x[:, None]}, {"probe": y[:, None]})).batch(MB)
        return (({inp: x[i : i + MB, None]}, {p: y[i : i + MB, None]})
                for i in range(0, N, MB))

    # 5 batches: epochs train on 0 1 | 2 3 | 4 (ran out) | a new pass: 0 1 of a
    # Dataset; an exhausted generator has nothing more (Keras 3.15 replays the 2
    # batches it peeked at to find the data's shapes: an artefact, not followed)
    kwargs = dict(epochs=4, steps_per_epoch=2)
    model = _model()
    model.compile(optimizer=keras.optimizers.SGD(0.3), loss="mse")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = model.fit(keras_source(), verbose=0, steps_per_epoch=2,
                           epochs=4 if kind == "dataset" else 3).history
    sim, inp, p, ours, ran_out = _ours_fit(x, y, source=our_source, **kwargs)
    with sim:
        np.testing.assert_allclose(ours["loss"], theirs["loss"], rtol=2e-4)
        assert ran_out == (1 if kind == "dataset" else 2)
        got = sim.predict({inp: x[:, None]})[p][:, 0]
    np.testing.assert_allclose(got, model.predict(x, verbose=0), atol=2e-5)


def test_array_epochs_continue_one_pass():
    """The index rows themselves: 5 minibatches of 2, 3 per epoch, shuffled."""
    epochs = ArrayEpochs(10, 2, 3, shuffle=True, rng=np.random.RandomState(0))
    first = np.random.RandomState(0).permutation(10).reshape(5, 2)
    rows, ran_out = epochs.next_epoch()
    np.testing.assert_array_equal(rows, first[:3])
    assert not ran_out
    rows, ran_out = epochs.next_epoch()
    np.testing.assert_array_equal(rows, first[3:])
    assert ran_out
    rows, _ = epochs.next_epoch()
    assert not np.array_equal(rows, first[:3])  # a new permutation
    assert sorted(rows.ravel()) != sorted(first[3:].ravel())


def test_source_epochs_start_over_when_a_pass_ended_with_an_epoch():
    data = [1, 2, 3, 4]
    epochs = SourceEpochs(data, 2)
    assert [epochs.next_epoch() for _ in range(3)] == [([1, 2], False), ([3, 4], False),
                                                       ([1, 2], False)]
    once = SourceEpochs(iter(data), 3)
    assert [once.next_epoch() for _ in range(3)] == [([1, 2, 3], False), ([4], True),
                                                     ([], True)]


def test_epochs_of_a_generator_must_match_the_first():
    x, y = _data()
    model = _model()
    conv = nengo_cuda.Converter(model)
    inp, p = conv.inputs[model.inputs[0]], conv.outputs[model.outputs[0]]

    def batches():
        yield {inp: x[:MB, None]}, {p: y[:MB, None]}
        yield {inp: np.repeat(x[:MB, None], 2, axis=1)}, {p: np.repeat(y[:MB, None], 2, axis=1)}

    with nengo_cuda.Simulator(conv.net, minibatch_size=MB, progress_bar=False) as sim:
        sim.compile(tf.optimizers.SGD(0.3), loss="mse")
        with pytest.raises(nengo.exceptions.ValidationError, match="epoch 2 differ"):
            sim.fit(batches(), steps_per_epoch=1, epochs=2, verbose=0)
