"""Keras's and NengoDL's conventions in compile/evaluate/predict: metric and
loss names chosen by shapes, data given as arrays instead of dicts, the
Converter's unlabelled output probes."""

import logging
import warnings

import numpy as np
import nengo
import pytest

tf = pytest.importorskip("tensorflow")

import nengo_cuda  # noqa: E402


def _passthrough(size):
    """An input Node straight into a probed output Node: outputs == inputs."""
    with nengo.Network() as net:
        inp = nengo.Node(np.zeros(size))
        out = nengo.Node(size_in=size)
        nengo.Connection(inp, out, synapse=None)
        p = nengo.Probe(out)
    return net, inp, p


def _expected_accuracy(y_true, y_pred):
    """Keras's accuracy for these shapes, in NumPy."""
    if y_pred.shape[-1] == 1:
        return np.mean((y_pred > 0.5) == (y_true > 0.5))
    if y_true.shape[-1] == 1:
        return np.mean(y_pred.argmax(-1) == y_true[..., 0])
    return np.mean(y_pred.argmax(-1) == y_true.argmax(-1))


@pytest.mark.parametrize("kind", ["binary", "sparse", "categorical"])
@pytest.mark.parametrize("name", ["accuracy", "acc"])
def test_accuracy_by_shapes(kind, name):
    rng = np.random.RandomState(1)
    n, classes = 16, 1 if kind == "binary" else 4
    x = rng.uniform(0, 1, (n, 2, classes))
    labels = rng.randint(0, max(classes, 2), (n, 2))
    y = {"binary": labels[..., None].astype(float),
         "sparse": labels[..., None].astype(float),
         "categorical": np.eye(classes)[labels % classes]}[kind]
    x[:n // 2, :, :] = y[:n // 2] if kind != "sparse" else np.eye(classes)[labels[:n // 2]]
    net, inp, p = _passthrough(classes)
    with nengo_cuda.Simulator(net, minibatch_size=4, progress_bar=False) as sim:
        sim.compile(loss={p: lambda y_true, y_pred: tf.zeros(())}, metrics=[name])
        result = sim.evaluate({inp: x}, {p: y})
    expected = _expected_accuracy(y, x)
    assert 0.5 <= expected < 1  # the rows copied from the targets are right, the others not all
    np.testing.assert_allclose(result[f"probe_{name}"], expected, rtol=1e-6)


@pytest.mark.parametrize("kind", ["binary", "sparse", "categorical"])
def test_crossentropy_by_shapes(kind):
    rng = np.random.RandomState(2)
    n, classes = 8, 1 if kind == "binary" else 3
    x = rng.uniform(0.05, 0.95, (n, 1, classes))
    if kind != "binary":
        x /= x.sum(-1, keepdims=True)
    labels = rng.randint(0, max(classes, 2), (n, 1))
    y = np.eye(classes)[labels] if kind == "categorical" else labels[..., None].astype(float)
    if kind == "binary":
        expected = -np.mean(y * np.log(x) + (1 - y) * np.log(1 - x))
    else:
        expected = -np.mean(np.log(np.take_along_axis(x, labels[..., None], -1)))
    net, inp, p = _passthrough(classes)
    with nengo_cuda.Simulator(net, minibatch_size=4, progress_bar=False) as sim:
        for name in ("crossentropy", "ce"):
            sim.compile(loss={p: name})
            np.testing.assert_allclose(sim.evaluate({inp: x}, {p: y})["loss"], expected,
                                       rtol=1e-4)


def test_arrays_go_to_input_nodes_in_network_order():
    """Data as an array (or a list) goes to the input Nodes in the network's
    ``all_nodes`` order, as NengoDL zips it; a count that differs warns, and a
    Node without data keeps its own output."""
    with nengo.Network() as net:
        with nengo.Network():
            inner = nengo.Node([10.0])
        first = nengo.Node([0.0, 0.0])
        const = nengo.Node([1.0])
        out = nengo.Node(size_in=2)
        nengo.Connection(first, out, synapse=None)
        nengo.Connection(const, out, transform=[[1], [1]], synapse=None)
        nengo.Connection(inner, out, transform=[[1], [0]], synapse=None)
        p = nengo.Probe(out)
    x = np.arange(8.0).reshape(2, 2, 2)
    with nengo_cuda.Simulator(net, minibatch_size=2, progress_bar=False) as sim:
        with pytest.warns(UserWarning,
                          match=r"number of input arrays \(1\) does not match number of Nodes \(3"):
            bare = sim.predict(x)[p]
        np.testing.assert_allclose(bare, x + [11.0, 1.0])  # first <- x; const, inner kept
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            listed = sim.predict([x, np.full((2, 2, 1), 3.0), np.zeros((2, 2, 1))])[p]
            sim.compile(loss="mse")  # one target array for the one probe
            loss = sim.evaluate([x, np.zeros((2, 2, 1)), np.zeros((2, 2, 1))], x)["loss"]
        np.testing.assert_allclose(listed, x + 3.0)
        np.testing.assert_allclose(loss, 0.0)
        with pytest.warns(UserWarning, match=r"number of target arrays \(2\) does not match number of Probes \(1"):
            sim.evaluate([x, np.zeros((2, 2, 1)), np.zeros((2, 2, 1))], [x, x])


def test_converter_output_probes_like_nengo_dl():
    """A converted model: an unlabelled output probe (evaluate's keys
    "probe_loss", "probe_accuracy"), the model's input the first Node (bare
    arrays go to it, not to the bias Node), the synapse on a neuron output."""
    rng = np.random.RandomState(0)
    inp = tf.keras.Input((4,))
    hidden = tf.keras.layers.Dense(6, activation=tf.nn.relu)(inp)
    out = tf.keras.layers.Dense(3)(hidden)
    model = tf.keras.Model(inp, out)
    conv = nengo_cuda.Converter(model)
    probe = conv.outputs[out]
    assert probe.label is None and probe.synapse is None
    assert conv.net.nodes[0] is conv.inputs[inp]
    x = rng.uniform(-1, 1, (8, 1, 4)).astype(np.float32)
    y = rng.randint(0, 3, (8, 1, 1)).astype(np.float32)
    logits = model(x[:, 0]).numpy()
    with nengo_cuda.Simulator(conv.net, minibatch_size=4, progress_bar=False) as sim:
        sim.compile(loss=tf.losses.SparseCategoricalCrossentropy(from_logits=True),
                    metrics=["accuracy"])
        with pytest.warns(UserWarning, match="input array"):
            result = sim.evaluate(x, y, verbose=0)
    assert set(result) == {"loss", "probe_loss", "probe_accuracy"}
    np.testing.assert_allclose(result["probe_accuracy"],
                               np.mean(logits.argmax(-1) == y[:, 0, 0]), rtol=1e-6)
    expected = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y[:, 0], logits)
    np.testing.assert_allclose(result["probe_loss"], float(expected), rtol=1e-4)

    spiking = nengo_cuda.Converter(tf.keras.Model(inp, hidden), synapse=0.005,
                                   swap_activations={tf.nn.relu: nengo.SpikingRectifiedLinear()})
    assert spiking.outputs[hidden].synapse == nengo.Lowpass(0.005)


def test_fit_prints_epochs_by_default(capsys):
    """Keras's ``verbose="auto"``: a line per epoch unless ``verbose=0``."""
    net, inp, p = _passthrough(1)
    with net:
        out = nengo_cuda.Layer(tf.keras.layers.Dense(1))(inp)
        q = nengo.Probe(out)
    x = np.ones((4, 1, 1))
    with nengo_cuda.Simulator(net, minibatch_size=4, progress_bar=False) as sim:
        sim.compile(tf.keras.optimizers.SGD(0.1), loss={q: "mse"})
        sim.fit({inp: x}, {q: x}, epochs=2)
        printed = capsys.readouterr().out
        assert "epoch 1/2: probe_1_loss:" in printed and "epoch 2/2: probe_1_loss:" in printed
        sim.fit({inp: x}, {q: x}, epochs=2, verbose=0)
        assert "epoch" not in capsys.readouterr().out


def test_evaluate_and_predict_print_by_default(capsys):
    """Keras's ``verbose="auto"`` (NengoDL passes it on): evaluate prints its
    results, predict that it ran, unless ``verbose=0``; the nengo2 ``loss``
    and ``predict_on_batch`` print nothing (as Keras's predict_on_batch)."""
    net, inp, p = _passthrough(1)
    x = np.full((4, 1, 1), 0.5)
    with nengo_cuda.Simulator(net, minibatch_size=2, progress_bar=False) as sim:
        sim.compile(loss={p: "mse"})
        result = sim.evaluate({inp: x}, {p: np.zeros_like(x)})
        printed = capsys.readouterr().out
        assert printed == f"evaluate: probe_loss: {result['probe_loss']:.6g}, loss: 0.25\n"
        sim.predict({inp: x})
        assert capsys.readouterr().out.startswith("predict: 2 minibatches of 2 x 1 steps, ")
        sim.evaluate({inp: x}, {p: np.zeros_like(x)}, verbose=0)
        sim.predict({inp: x}, verbose=0)
        sim.predict_on_batch({inp: x[:2]})
        sim.loss({inp: x, p: np.zeros_like(x)})
        assert capsys.readouterr().out == ""


def test_compile_lists_and_default_optimizer():
    """Keras's compile: lists of losses and loss weights per output (the model's
    probes in order), RMSprop when no optimizer is given, Keras's execution
    arguments (run_eagerly, NengoDL passes them on) taken; fit runs (and warns)
    when nothing is trainable, as NengoDL's does."""
    with nengo.Network() as net:
        inp = nengo.Node(np.zeros(1))
        a = nengo.Probe(inp)
        b = nengo.Probe(inp)
    x = np.ones((4, 2, 1))
    with nengo_cuda.Simulator(net, minibatch_size=2, progress_bar=False) as sim:
        sim.compile(loss=["mse", tf.losses.mae], loss_weights=[0.5, 2.0])
        assert isinstance(sim._trainer().optimizer, tf.keras.optimizers.RMSprop)
        result = sim.evaluate(x, {a: np.zeros((4, 2, 1)), b: np.full((4, 2, 1), 3.0)})
        np.testing.assert_allclose(
            [result["probe_loss"], result["probe_1_loss"], result["loss"]],
            [1.0, 2.0, 0.5 * 1.0 + 2.0 * 2.0], rtol=1e-6)
        with pytest.raises(nengo.exceptions.ValidationError, match="one entry per probe"):
            sim.compile(loss=["mse"])
        sim.compile(loss="mse", run_eagerly=True, steps_per_execution=2, jit_compile=False)
        with pytest.raises(TypeError, match=r"unexpected keyword arguments \['not_keras'\]"):
            sim.compile(loss="mse", not_keras=1)
        with pytest.warns(UserWarning, match="no parameters are trainable"):
            history = sim.fit(x, {a: np.zeros((4, 2, 1))}, epochs=2, verbose=0)
        assert history.history["loss"] == [1.0, 1.0]


def test_run_steps_data_as_arrays():
    """NengoDL's run_steps(data=array or list): the input Nodes in order."""
    with nengo.Network() as net:
        u = nengo.Node([0.0])
        v = nengo.Node([5.0])
        out = nengo.Node(size_in=1)
        nengo.Connection(u, out, synapse=None)
        nengo.Connection(v, out, transform=10, synapse=None)
        p = nengo.Probe(out)
    with nengo_cuda.Simulator(net, minibatch_size=2, progress_bar=False) as sim:
        with pytest.warns(UserWarning, match=r"number of data arrays \(1\) does not match number of Nodes \(2"):
            sim.run_steps(3, data=np.ones((2, 3, 1)))
        np.testing.assert_allclose(sim.data[p][:, -1], [[51.0], [51.0]])
        sim.run_steps(1, data=[np.full((2, 1, 1), 2.0), np.zeros((2, 1, 1))])
        np.testing.assert_allclose(sim.data[p][:, -1], [[2.0], [2.0]])
        with pytest.raises(nengo.exceptions.ValidationError, match="got int"):
            sim.run_steps(1, data=3)


def test_regularize_ignores_its_targets():
    x = tf.constant(np.arange(12.0).reshape(2, 2, 3))
    expected = np.mean(np.linalg.norm(x.numpy(), axis=2))
    reg = nengo_cuda.losses.Regularize()
    np.testing.assert_allclose(float(reg(None, x)), expected, rtol=1e-6)
    net, inp, p = _passthrough(3)
    with nengo_cuda.Simulator(net, minibatch_size=2, progress_bar=False) as sim:
        sim.compile(loss={p: reg})  # targets of any size: ignored
        np.testing.assert_allclose(sim.evaluate({inp: x.numpy()}, {p: np.zeros((2, 2, 1))})["loss"],
                                   expected, rtol=1e-6)
    np.testing.assert_allclose(float(reg(tf.ones_like(x), x)), expected, rtol=1e-6)


def test_nengo_dl2_mse_skips_nan_targets():
    """NengoDL 2's objectives.mse: a scalar, NaN targets no error (the migration
    guide asserts ``mse(zeros, nan) == 0``; it gave one value per item).  Given
    to compile, it counts per item (sample weights apply), targets second."""
    outputs = tf.constant([[[1.0, 2.0]], [[3.0, 4.0]]])
    targets = np.array([[[np.nan, 0.0]], [[3.0, np.nan]]])
    assert nengo_cuda.objectives is nengo_cuda.obj
    assert nengo_cuda.obj.mse(outputs, targets).numpy() == pytest.approx(1.0)
    assert nengo_cuda.objectives.mse(np.zeros((2, 3)), np.ones((2, 3)) * np.nan) == 0
    net, inp, p = _passthrough(2)
    with nengo_cuda.Simulator(net, minibatch_size=2, progress_bar=False) as sim:
        sim.compile(loss=nengo_cuda.obj.mse)
        x = outputs.numpy()
        assert sim.evaluate({inp: x}, {p: targets})["loss"] == pytest.approx(1.0)
        weighted = sim.evaluate({inp: x}, {p: targets}, sample_weight=np.array([3.0, 1.0]))
        assert weighted["loss"] == pytest.approx((3 * 2.0 + 1 * 0.0) / 2)  # (Keras's mean)


def test_compiled_mse_is_keras_mse_with_nan_targets():
    """compile's "mse" is Keras's (NengoDL 3 passes it on): a NaN target makes
    the loss and the "mse" metric NaN, as Keras's, where NengoDL 2's objective
    and nan_mse count it as no error (it was counted so here, a quietly
    biased loss)."""
    net, inp, p = _passthrough(2)
    x = np.ones((2, 3, 2))
    y = np.zeros((2, 3, 2))
    with nengo_cuda.Simulator(net, minibatch_size=2, progress_bar=False) as sim:
        sim.compile(loss="mse", metrics=["mse"])
        assert sim.evaluate({inp: x}, {p: y})["loss"] == pytest.approx(1.0)
        y[0, 1, 0] = np.nan
        result = sim.evaluate({inp: x}, {p: y})
        assert np.isnan(result["loss"]) and np.isnan(result["probe_mse"])
        keras_mse = tf.keras.losses.MeanSquaredError()(y, x).numpy()
        assert np.isnan(keras_mse)
        sim.compile(loss=nengo_cuda.losses.nan_mse)
        assert sim.evaluate({inp: x}, {p: y})["loss"] == pytest.approx(11 / 12)


def test_datasets_and_generators_as_data():
    """Keras's/NengoDL's other data forms: a tf.data.Dataset of (x, y) batches
    (NengoDL's "n_steps" input ignored), a generator (of 1-tuples of the inputs
    and n_steps, in predict), validation from a dataset;
    the same results as the arrays."""
    rng = np.random.RandomState(3)
    x = rng.uniform(-1, 1, (8, 3, 2))
    y = x[:, :, :1] * 2
    with nengo.Network(seed=1) as net:
        inp = nengo.Node(np.zeros(2))
        ens = nengo.Ensemble(10, 1, neuron_type=nengo.RectifiedLinear())
        nengo.Connection(inp[0], ens, synapse=None)
        p = nengo.Probe(ens, synapse=None)

    def dataset():
        feeds = {"node": x, "n_steps": np.full((8, 1), 3)}
        return tf.data.Dataset.from_tensor_slices((feeds, {"probe": y})).batch(4)

    def generator():
        for i in range(0, 8, 4):
            yield {inp: x[i:i + 4]}, {p: y[i:i + 4]}

    def positional():
        # NengoDL's test_predict: 1-tuples of (inputs in Node order, n_steps)
        for i in range(0, 8, 4):
            yield ((x[i:i + 4], np.full((4, 1), 3, dtype=np.int32)),)

    results = []
    for data in ("arrays", "dataset", "generator"):
        with nengo_cuda.Simulator(net, minibatch_size=4, progress_bar=False) as sim:
            sim.compile(tf.optimizers.SGD(0.01), loss="mse")
            if data == "arrays":
                h = sim.fit({inp: x}, {p: y}, epochs=2, verbose=0,
                            validation_data=({inp: x}, {p: y}))
                ev = sim.evaluate({inp: x}, {p: y})["loss"]
                pr = sim.predict({inp: x})[p]
            else:
                source = dataset if data == "dataset" else generator
                h = sim.fit(source(), epochs=2, verbose=0, validation_data=dataset())
                ev = sim.evaluate(source())["loss"]
                pr = sim.predict(source())[p]
            results.append((h.history["loss"] + h.history["val_loss"], ev, pr))
            if data == "arrays":
                with warnings.catch_warnings():
                    warnings.simplefilter("error")  # (n_steps is no input to warn about)
                    np.testing.assert_allclose(sim.predict(positional(), steps=2)[p], pr,
                                               rtol=1e-6)
    for other in results[1:]:
        np.testing.assert_allclose(other[0], results[0][0], rtol=1e-6)
        np.testing.assert_allclose(other[1], results[0][1], rtol=1e-6)
        np.testing.assert_allclose(other[2], results[0][2], rtol=1e-6)
    with nengo_cuda.Simulator(net, minibatch_size=4, progress_bar=False) as sim:
        sim.compile(tf.optimizers.SGD(0.01), loss="mse")
        with pytest.raises(nengo.exceptions.ValidationError, match="y must be None"):
            sim.fit(dataset(), {p: y})


def test_nengo_dl2_outputs_only_objective():
    """NengoDL 2: an objective of one argument (the outputs) needs no targets."""
    net, inp, p = _passthrough(2)
    x = np.random.RandomState(0).uniform(-1, 1, (4, 3, 2))
    with nengo_cuda.Simulator(net, minibatch_size=2, progress_bar=False) as sim:
        penalty = sim.loss({inp: x}, objective={p: lambda out: tf.reduce_mean(out ** 2)})
        np.testing.assert_allclose(penalty, np.mean(x ** 2), rtol=1e-6)
        both = sim.loss({inp: x, p: np.zeros_like(x)},
                        objective={p: lambda out, target: tf.reduce_mean((out - target) ** 2)})
        np.testing.assert_allclose(both, np.mean(x ** 2), rtol=1e-6)


def test_own_loss_takes_targets_of_other_step_counts():
    """NengoDL checks the step count of inputs only: a target may have other
    steps "as long as it matches what the loss expects" (here the last step);
    a built-in dense loss takes one target per output step, or one for all
    steps (broadcast, as NengoDL's test_training_arg fits)."""
    with nengo.Network(seed=0) as net:
        inp = nengo.Node(np.zeros(1))
        ens = nengo.Ensemble(20, 1, neuron_type=nengo.RectifiedLinear())
        nengo.Connection(inp, ens)
        p = nengo.Probe(ens)

    def last_step_mse(y_true, y_pred):
        return tf.reduce_mean((y_true[:, -1] - y_pred[:, -1]) ** 2)

    x = np.random.RandomState(0).uniform(-1, 1, (8, 5, 1))
    y = {p: x[:, -1:] ** 2}
    with nengo_cuda.Simulator(net, minibatch_size=4, dtype="float64", progress_bar=False) as sim:
        sim.compile(tf.keras.optimizers.SGD(0.01), loss={p: last_step_mse})
        out = sim.predict({inp: x})[p]
        loss = sim.evaluate({inp: x}, y, verbose=0)["loss"]
        np.testing.assert_allclose(loss, np.mean((out[:, -1] - y[p][:, -1]) ** 2), rtol=1e-10)
        sim.fit({inp: x}, y, epochs=2, verbose=0)
        sim.compile(tf.keras.optimizers.SGD(0.01), loss={p: "mse"})
        out = sim.predict({inp: x})[p]
        np.testing.assert_allclose(sim.evaluate({inp: x}, y, verbose=0)["loss"],
                                   np.mean((out - y[p]) ** 2), rtol=1e-10)
        np.testing.assert_allclose(sim.evaluate(n_steps=5, y={p: np.ones((8, 1, 1))},
                                                verbose=0)["loss"],
                                   np.mean((sim.predict(n_steps=5)[p] - 1) ** 2), rtol=1e-10)
        with pytest.raises(nengo.exceptions.ValidationError, match="has 3 steps; expected 5"):
            sim.evaluate({inp: x}, {p: x[:, :3]}, verbose=0)


def test_input_steps_must_divide_by_unroll_simulation():
    """NengoDL checks that the steps of fit/evaluate/predict's input data are a
    multiple of unroll_simulation (run_steps instead rounds up, with a warning)."""
    net, inp, p = _passthrough(1)
    with nengo_cuda.Simulator(net, unroll_simulation=2, progress_bar=False) as sim:
        x, y = np.ones((1, 3, 1)), np.ones((1, 3, 1))
        # (NengoDL's test_train_errors: the data's error comes before compile's)
        with pytest.raises(nengo.exceptions.ValidationError, match="evenly divisible"):
            sim.fit({inp: x}, {p: y}, verbose=0)
        with pytest.raises(nengo.exceptions.SimulationError, match="compile"):
            sim.fit({inp: np.ones((1, 4, 1))}, {p: np.ones((1, 4, 1))}, verbose=0)
        sim.compile(tf.optimizers.SGD(0.0), loss="mse")
        for call in (lambda: sim.fit({inp: x}, {p: y}, verbose=0),
                     lambda: sim.evaluate({inp: x}, {p: y}, verbose=0),
                     lambda: sim.predict({inp: x})):
            with pytest.raises(nengo.exceptions.ValidationError,
                               match=r"input data \(3\) must be evenly divisible by "
                                     r"unroll_simulation \(2\)"):
                call()
        np.testing.assert_array_equal(sim.predict({inp: np.ones((1, 4, 1))})[p], 1.0)


def test_nengo_dl_error_phrases(caplog):
    """NengoDL's tests match these phrases of its messages; ours keep them."""
    net, inp, p = _passthrough(1)
    with nengo_cuda.Simulator(net, minibatch_size=2, progress_bar=False) as sim:
        with pytest.raises(nengo.exceptions.ValidationError, match="does not match expected size"):
            sim.run_steps(3, data={inp: np.ones((1, 3, 1))})
        sim.compile(tf.optimizers.SGD(0.0), loss="mse")
        with pytest.raises(nengo.exceptions.ValidationError, match="does not match expected size"):
            sim.fit({inp: np.ones((2, 4, 1))}, {p: np.ones((4, 4, 1))}, verbose=0)
        with pytest.raises(nengo.exceptions.ValidationError, match="from a different network"):
            sim.get_name(nengo.Node([0], add_to_container=False))
        with caplog.at_level(logging.INFO, logger="nengo_cuda.simulator"):
            nengo_cuda.Simulator(net, progress_bar=False).close()
        assert "Running on CPU" in caplog.text
    for name, call in [("fit", lambda: sim.fit({inp: np.ones((2, 4, 1))}, {p: np.ones((2, 4, 1))})),
                       ("evaluate", lambda: sim.evaluate({inp: np.ones((2, 4, 1))},
                                                         {p: np.ones((2, 4, 1))})),
                       ("predict", lambda: sim.predict({inp: np.ones((2, 4, 1))}))]:
        with pytest.raises(nengo.exceptions.SimulatorClosed, match=f"call {name}"):
            call()


@pytest.mark.parametrize("n_steps", [5.5, 5.0, "5", -1])
def test_n_steps_must_be_a_whole_number_of_steps(n_steps):
    """predict/evaluate/forward take ``n_steps`` as run_steps takes ``steps``
    (NengoDL's NumPy calls raise TypeError for 5.5 and "5"; int() made 5.5
    five steps)."""
    net, inp, p = _passthrough(1)
    error = nengo.exceptions.ValidationError if n_steps == -1 else TypeError
    with nengo_cuda.Simulator(net, progress_bar=False) as sim:
        sim.compile(loss="mse")
        for call in (lambda: sim.predict(n_steps=n_steps),
                     lambda: sim.predict({inp: np.ones((1, 5, 1))}, n_steps=n_steps),
                     lambda: sim.evaluate(y={p: np.ones((1, 5, 1))}, n_steps=n_steps),
                     lambda: sim.run_steps(n_steps)):
            with pytest.raises(error, match=r"n?_?steps: (must be an integer|Must be non-neg)"):
                call()
        assert sim.n_steps == 0


@pytest.mark.parametrize("learning_phase", [None, True])
def test_predict_sparse_weights_probe(learning_phase):
    """predict gives a Sparse transform's weights probe as values, as any
    probe: (batch, steps, size), the dense matrix at each step; run_steps in
    training mode records it as a native run does (sim.data: copies of the
    matrix)."""
    with nengo.Network(seed=1) as net:
        u = nengo.Node([1.0, 2.0, 3.0])
        a = nengo.Node(size_in=3)
        transform = nengo.Sparse((3, 3), indices=[[0, 1], [2, 2]], init=[2.0, 3.0])
        conn = nengo.Connection(u, a, transform=transform)
        weights, output = nengo.Probe(conn, "weights"), nengo.Probe(a)
        if learning_phase:
            nengo_cuda.configure_settings(learning_phase=True)
    dense = np.array([[0, 2, 0], [0, 0, 0], [0, 0, 3]], dtype=np.float32)
    with nengo_cuda.Simulator(net, minibatch_size=2, progress_bar=False) as sim:
        out = sim.predict(n_steps=4)
        assert out[weights].shape == (2, 4, 9) and out[output].shape == (2, 4, 3)
        assert np.array_equal(out[weights], np.broadcast_to(dense.ravel(), (2, 4, 9)))
        sim.run_steps(3)
        assert sim.data[weights].shape == (2, 3)
        assert all(np.array_equal(m.toarray(), dense) for m in sim.data[weights].ravel())


def test_sample_every_probes_give_every_step_to_keras():
    """As NengoDL's Keras model: predict gives a probe with sample_every at
    every step, and fit/evaluate take targets of every step; sim.data (runs)
    keeps Nengo's sampling."""
    x = np.random.RandomState(0).rand(4, 10, 2)
    with nengo.Network(seed=0) as net:
        inp = nengo.Node(np.zeros(2))
        ens = nengo.Ensemble(20, 2, neuron_type=nengo.LIFRate())
        out = nengo.Node(size_in=1)
        nengo.Connection(inp, ens)
        nengo.Connection(ens, out, function=lambda v: v[0] * v[1])
        sampled, every = nengo.Probe(out, sample_every=0.002), nengo.Probe(out)
    with nengo_cuda.Simulator(net, minibatch_size=2, dtype="float64", progress_bar=False) as sim:
        predicted = sim.predict({inp: x})
        assert predicted[sampled].shape == (4, 10, 1)
        np.testing.assert_array_equal(predicted[sampled], predicted[every])
        sim.compile(optimizer=tf.optimizers.SGD(0.0), loss={sampled: "mse"})
        target = np.zeros((4, 10, 1))
        loss = sim.evaluate({inp: x}, {sampled: target}, verbose=0)["loss"]
        np.testing.assert_allclose(loss, np.mean(predicted[every] ** 2), rtol=1e-6)
        sim.fit({inp: x}, {sampled: target}, verbose=0)
        sim.run_steps(10, data={inp: x[:2]})
        assert sim.data[sampled].shape == (2, 5, 1)
        np.testing.assert_array_equal(sim.data[sampled], sim.data[every][:, 1::2])


def test_minibatch_size_attribute_is_nengo_dls():
    """sim.minibatch_size is 1 where it was not given (NengoDL's), so code like
    np.ones((sim.minibatch_size, n, d)) ports; probe data keeps Nengo's shapes."""
    net, inp, p = _passthrough(2)
    with nengo_cuda.Simulator(net, progress_bar=False) as sim:
        assert sim.minibatch_size == 1
        x = np.ones((sim.minibatch_size, 3, 2))
        sim.run_steps(3, data={inp: x})
        assert sim.data[p].shape == (3, 2)
        assert sim.predict({inp: x})[p].shape == (1, 3, 2)
    with nengo_cuda.Simulator(net, minibatch_size=1, progress_bar=False) as sim:
        sim.run_steps(3)
        assert sim.minibatch_size == 1 and sim.data[p].shape == (1, 3, 2)


def test_names_and_n_steps_input_in_data_dicts():
    """run_steps takes input Nodes by name as predict does; a dict may hold
    NengoDL's "n_steps" input (its Keras model's), which must agree with the
    data's steps; target errors name y."""
    net, inp, p = _passthrough(2)
    inp.label = "stim"
    x = np.random.RandomState(1).rand(2, 3, 2)
    with nengo_cuda.Simulator(net, minibatch_size=2, progress_bar=False) as sim:
        assert sim.get_name(inp) == "stim"
        sim.run_steps(3, data={"stim": x})
        np.testing.assert_allclose(sim.data[p], x, rtol=1e-6)
        with pytest.raises(nengo.exceptions.ValidationError, match="'stimulus' is not a Node"):
            sim.run_steps(3, data={"stimulus": x})
        steps = np.full((2, 1), 3)
        predicted = sim.predict({"stim": x, "n_steps": steps})[p]
        np.testing.assert_allclose(predicted, x, rtol=1e-6)
        sim.compile(loss={p: "mse"})
        loss = sim.evaluate({"stim": x, "n_steps": steps}, {p: x}, verbose=0)["loss"]
        assert loss < 1e-10
        with pytest.raises(nengo.exceptions.ValidationError, match="does not match the steps"):
            sim.predict({"stim": x, "n_steps": np.full((2, 1), 4)})
        with pytest.raises(nengo.exceptions.ValidationError, match="only NengoDL's"):
            sim.predict({"n_steps": steps})
        with pytest.raises(nengo.exceptions.ValidationError, match="^y: data for .* size 3"):
            sim.evaluate({"stim": x}, {p: np.zeros((2, 3, 3))}, verbose=0)


def _two_probes():
    """An input into q's Node, and twice that into p's: (net, input, p, q)."""
    with nengo.Network(seed=0) as net:
        inp = nengo.Node(np.zeros(1))
        mid, out = nengo.Node(size_in=1), nengo.Node(size_in=1)
        nengo.Connection(inp, mid, synapse=None)
        nengo.Connection(mid, out, transform=2.0, synapse=None)
        p, q = nengo.Probe(out, label="p"), nengo.Probe(mid, label="q")
    return net, inp, p, q


def test_metrics_without_a_loss_and_none_losses():
    """As Keras: compile(loss={p: "mse", q: None}) gives q no loss, and a probe
    without a loss may have metrics, which its targets serve (in evaluate and
    fit); targets for a probe with neither serve nothing (Keras skips an
    output without a loss)."""
    net, inp, p, q = _two_probes()
    x = np.random.RandomState(2).rand(4, 5, 1)
    with nengo_cuda.Simulator(net, minibatch_size=2, progress_bar=False) as sim:
        sim.compile(optimizer=tf.optimizers.SGD(0.0), loss={p: "mse", q: None},
                    metrics={q: "mae"})
        result = sim.evaluate({inp: x}, {p: x, q: np.zeros_like(x)}, verbose=0)
        assert set(result) == {"loss", "p_loss", "q_mae"}
        np.testing.assert_allclose(result["p_loss"], np.mean(x ** 2), rtol=1e-5)
        np.testing.assert_allclose(result["loss"], result["p_loss"])
        np.testing.assert_allclose(result["q_mae"], np.mean(x), rtol=1e-5)
        history = sim.fit({inp: x}, {p: x, q: np.zeros_like(x)}, verbose=0).history
        assert set(history) == {"loss", "p_loss", "q_mae"}
        np.testing.assert_allclose(history["q_mae"], [np.mean(x)], rtol=1e-5)
        np.testing.assert_allclose(history["loss"], [np.mean(x ** 2)], rtol=1e-5)
        with pytest.raises(nengo.exceptions.ValidationError, match="none of the probes"):
            sim.fit({inp: x}, {q: x}, verbose=0)
        sim.compile(optimizer=tf.optimizers.SGD(0.0), loss={p: "mse", q: None})
        result = sim.evaluate({inp: x}, {p: x, q: x}, verbose=0)
        assert set(result) == {"loss", "p_loss"}
        np.testing.assert_allclose(result["loss"], np.mean(x ** 2), rtol=1e-5)
        history = sim.fit({inp: x}, {p: x, q: x}, verbose=0).history
        np.testing.assert_allclose(history["loss"], [np.mean(x ** 2)], rtol=1e-5)


def test_a_metrics_list_gives_each_probe_its_metrics_by_position():
    """compile(metrics=[...]) in a model of several probes: one entry (a
    metric or a list of them) per probe, in the model's order, as Keras's
    outputs and NengoDL's compile take it (it gave every probe every metric);
    in a model of one probe, a list is that probe's metrics."""
    net, inp, p, q = _two_probes()
    x = np.random.RandomState(2).rand(4, 5, 1)
    y = {p: np.zeros_like(x), q: np.zeros_like(x)}
    with nengo_cuda.Simulator(net, minibatch_size=2, progress_bar=False) as sim:
        sim.compile(optimizer=tf.optimizers.SGD(0.0), loss="mse", metrics=["mae", "mse"])
        result = sim.evaluate({inp: x}, y, verbose=0)
        assert set(result) == {"loss", "p_loss", "q_loss", "p_mae", "q_mse"}
        np.testing.assert_allclose(result["p_mae"], np.mean(2 * x), rtol=1e-5)
        np.testing.assert_allclose(result["q_mse"], np.mean(x ** 2), rtol=1e-5)
        sim.compile(optimizer=tf.optimizers.SGD(0.0), loss="mse",
                    metrics=[["mae"], ["mse", "mae"]])
        result = sim.evaluate({inp: x}, y, verbose=0)
        assert set(result) == {"loss", "p_loss", "q_loss", "p_mae", "q_mse", "q_mae"}
        with pytest.raises(nengo.exceptions.ValidationError, match="one entry .* per probe"):
            sim.compile(optimizer=tf.optimizers.SGD(0.0), loss="mse",
                        metrics=["mae", "mse", "mae"])
    net, inp, p = _passthrough(1)
    with nengo_cuda.Simulator(net, minibatch_size=2, progress_bar=False) as sim:
        for metrics in (["mae", "mse"], [["mae", "mse"]]):
            sim.compile(optimizer=tf.optimizers.SGD(0.0), loss="mse", metrics=metrics)
            result = sim.evaluate({inp: x}, {p: np.zeros_like(x)}, verbose=0)
            assert set(result) == {"loss", "probe_loss", "probe_mae", "probe_mse"}


def test_predict_of_no_steps_gives_empty_outputs():
    """predict/predict_on_batch of zero steps (n_steps=0, or data of zero
    steps) give (batch, 0, size) arrays, as a run of no steps records none
    (they raised NumPy's "need at least one array to concatenate")."""
    with nengo.Network(seed=0) as net:
        inp = nengo.Node(np.zeros(2))
        a = nengo.Ensemble(20, 2)
        nengo.Connection(inp, a)
        p = nengo.Probe(a)
    with nengo_cuda.Simulator(net, minibatch_size=2, progress_bar=False) as sim:
        assert sim.predict(n_steps=0)[p].shape == (2, 0, 2)
        assert sim.predict(n_steps=0)[p].dtype == np.float32  # (the simulator's)
        assert sim.predict({inp: np.zeros((4, 0, 2))})[p].shape == (4, 0, 2)
        assert sim.predict_on_batch(n_steps=0)[p].shape == (2, 0, 2)
        assert sim.n_steps == 0
