"""Keras ``fit`` arguments in ``sim.fit``: callbacks, validation_data /
validation_split / validation_freq, initial_epoch, and clear errors for the
arguments that are not supported (see docs/training-state.md, "Keras fit
arguments")."""

import warnings

import numpy as np
import pytest
import nengo

import nengo_cuda

tf = pytest.importorskip("tensorflow")
keras_cb = tf.keras.callbacks


def _net(seed=3):
    """input -> ensemble -> decoded connection -> ensemble -> probe, with
    synapses (so the state matters)."""
    with nengo.Network(seed=seed) as net:
        inp = nengo.Node(np.zeros(1))
        a = nengo.Ensemble(12, 1, neuron_type=nengo.RectifiedLinear())
        b = nengo.Ensemble(10, 1, neuron_type=nengo.RectifiedLinear())
        nengo.Connection(inp, a, synapse=0.005)
        nengo.Connection(a, b, synapse=0.005, function=lambda x: -x)
        p = nengo.Probe(b, label="out", synapse=0.01)
    return net, inp, p


def _data(n=8, steps=5, seed=0):
    rng = np.random.RandomState(seed)
    x = np.tile(rng.uniform(-1, 1, (n, 1, 1)), (1, steps, 1))
    return x, x ** 2


def _sim(net, **kwargs):
    sim = nengo_cuda.Simulator(net, minibatch_size=2, progress_bar=False, **kwargs)
    sim.compile(tf.keras.optimizers.Adam(0.01), loss="mse", metrics=["mae"])
    return sim


def _params(sim):
    """The simulator's trainable parameters (fit writes the trained values
    there): encoders, biases and connection weights, in the network's order."""
    net, sig = sim.model.toplevel, sim.model.sig
    values = []
    for ens in net.all_ensembles:
        values += [sig[ens]["encoders"], sig[ens.neurons]["bias"]]
    values += [sig[conn].get("weights") for conn in net.all_connections]
    return [np.concatenate([np.array(sim.signals[s]).ravel() for s in values if s is not None])]


class Recorder(keras_cb.Callback):
    """Records every hook call: (hook, epoch or batch, a copy of the logs)."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def _rec(self, hook, index=None, logs=None):
        self.calls.append((hook, index, None if logs is None else dict(logs)))

    def on_train_begin(self, logs=None):
        self._rec("train_begin", None, logs)

    def on_train_end(self, logs=None):
        self._rec("train_end", None, logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._rec("epoch_begin", epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._rec("epoch_end", epoch, logs)

    def on_train_batch_begin(self, batch, logs=None):
        self._rec("batch_begin", batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self._rec("batch_end", batch, logs)

    def on_test_begin(self, logs=None):
        self._rec("test_begin", None, logs)

    def on_test_end(self, logs=None):
        self._rec("test_end", None, logs)

    def on_test_batch_end(self, batch, logs=None):
        self._rec("test_batch_end", batch, logs)


def test_callback_protocol():
    """Hooks in Keras 3's order, with fit's log names (val_ ones too), and
    callback.model steering training."""
    net, inp, p = _net()
    x, y = _data(n=4)
    vx, vy = _data(n=2, seed=1)
    rec = Recorder()
    with _sim(net) as sim:
        history = sim.fit({inp: x}, {p: y}, epochs=2, callbacks=[rec],
                          validation_data=({inp: vx}, {p: vy}))
        assert rec.model.simulator is sim
        assert rec.model.stop_training is False
        assert rec.model.history is history
    assert rec.params == {"epochs": 2, "steps": 2, "verbose": 1}  # Keras resolves "auto"
    hooks = [(h, i) for h, i, _ in rec.calls]
    epoch = [("batch_begin", 0), ("batch_end", 0), ("batch_begin", 1), ("batch_end", 1),
             ("test_begin", None), ("test_batch_end", 0), ("test_end", None)]
    assert hooks == ([("train_begin", None), ("epoch_begin", 0)] + epoch + [("epoch_end", 0)]
                     + [("epoch_begin", 1)] + epoch + [("epoch_end", 1), ("train_end", None)])
    names = {"loss", "out_loss", "out_mae"}
    epoch_logs = [logs for h, _, logs in rec.calls if h == "epoch_end"]
    assert set(epoch_logs[0]) == names | {f"val_{n}" for n in names} == set(history.history)
    for name in history.history:
        assert history.history[name] == [logs[name] for logs in epoch_logs]
    batch_logs = [logs for h, _, logs in rec.calls if h == "batch_end"]
    assert set(batch_logs[0]) == names
    # batch logs: running means over the epoch (Keras), so the last is the epoch's
    assert batch_logs[1] == {k: epoch_logs[0][k] for k in names}
    assert batch_logs[0]["loss"] != batch_logs[1]["loss"]
    test_end = [logs for h, _, logs in rec.calls if h == "test_end"]
    assert test_end[0] == {k: epoch_logs[0][f"val_{k}"] for k in names}
    assert rec.calls[-1][2] == epoch_logs[-1]  # on_train_end gets the last epoch's logs


@pytest.mark.parametrize("stateful", [False, True])
def test_batch_hooks_same_training(stateful):
    """With batch hooks fit runs one graph call per minibatch instead of one per
    epoch: the same losses, trained parameters and final state."""
    net, inp, p = _net()
    x, y = _data()
    results = []
    for callbacks in ([], [keras_cb.LambdaCallback(on_train_batch_end=lambda b, logs: None)]):
        with _sim(net) as sim:
            sim.run_steps(3)
            history = sim.fit({inp: x}, {p: y}, epochs=2, stateful=stateful,
                              callbacks=callbacks)
            results.append((history.history, _params(sim), sim.n_steps,
                            sim.predict({inp: x[:2]})[p]))
    (h0, w0, n0, out0), (h1, w1, n1, out1) = results
    assert n0 == n1 == (3 + 2 * 4 * 5 if stateful else 3)
    assert h0.keys() == h1.keys()
    for k in h0:
        np.testing.assert_allclose(h0[k], h1[k], rtol=1e-6, err_msg=k)
    for a, b in zip(w0, w1):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    with _sim(net) as untrained:
        assert not np.array_equal(w0[0], _params(untrained)[0])
    np.testing.assert_allclose(out0, out1, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("stateful", [False, True])
@pytest.mark.parametrize("val_steps", [5, 7])
def test_validation_equals_evaluate(stateful, val_steps):
    """val_* are what evaluate (stateful=False) gives on the validation data with
    the parameters (and, stateful, the state) trained so far; on its own number
    of steps (NengoDL checks validation data on its own: 7 steps validate 5-step
    training; they were refused, after the first epoch, as fit's ``data``)."""
    net, inp, p = _net()
    x, y = _data()
    vx, vy = _data(n=4, steps=val_steps, seed=1)
    with _sim(net) as sim:
        sim.run_steps(4)
        history = sim.fit({inp: x}, {p: y}, epochs=2, stateful=stateful,
                          validation_data=({inp: vx}, {p: vy}))
        n_steps = sim.n_steps
        evaluated = sim.evaluate({inp: vx}, {p: vy})
        assert sim.n_steps == n_steps == (4 + 2 * 4 * 5 if stateful else 4)
    assert history.history["val_loss"][0] != history.history["val_loss"][1]
    for name, value in evaluated.items():
        assert history.history[f"val_{name}"][-1] == pytest.approx(value, rel=1e-6), name


def test_validation_data_errors_name_validation_data():
    net, inp, p = _net()
    x, y = _data()
    vx, _ = _data(n=4, steps=7, seed=1)
    _, vy = _data(n=4, steps=6, seed=1)
    vx7, vy7 = _data(n=4, steps=7, seed=1)
    error = nengo.exceptions.ValidationError
    with _sim(net) as sim:
        with pytest.raises(error, match=r"^validation_data: y: target data .* has 6 steps; "
                                        "expected 7"):
            sim.fit({inp: x}, {p: y}, validation_data=({inp: vx}, {p: vy}))
        # fit's n_steps, where given, holds for the validation inputs too (NengoDL's check)
        with pytest.raises(error, match=r"^validation_data: x: input data .* has 7 steps; "
                                        "expected 5"):
            sim.fit({inp: x}, {p: y}, n_steps=5, validation_data=({inp: vx7}, {p: vy7}))
        with pytest.raises(error, match=r"^validation_data: y: .* is not a Probe"):
            sim.fit({inp: x}, {p: y}, validation_data=({inp: vx7}, {inp: vy7}))
        with pytest.raises(error, match=r"^validation_data: x: 'nope' is not an input Node"):
            sim.fit({inp: x}, {p: y}, validation_data=({"nope": vx7}, {p: vy7}))
        with pytest.raises(error, match=r"^validation_data: y: needs targets"):
            sim.fit({inp: x}, {p: y}, validation_data=({inp: vx7}, {}))
        with pytest.raises(error, match=r"^validation_data: sample_weight: .* not a Probe"):
            sim.fit({inp: x}, {p: y}, validation_data=({inp: vx7}, {p: vy7}, {inp: [1.0] * 4}))
        with pytest.raises(error, match=r"^validation_data: sample_weight: sample_weight for "
                                        r".* has shape \(3,\)"):
            sim.fit({inp: x}, {p: y}, validation_data=({inp: vx7}, {p: vy7}, np.ones(3)))
        with pytest.raises(error, match=r"^validation_data: must be a tuple"):
            sim.fit({inp: x}, {p: y}, validation_data={inp: vx7})
        assert sim.n_steps == 0  # (refused before training)
        # a Dataset's validation runs its own steps whatever fit's n_steps (NengoDL
        # passes it to Keras unchecked)
        dataset = tf.data.Dataset.from_tensor_slices(({inp: vx7}, {p: vy7})).batch(2)
        history = sim.fit({inp: x}, {p: y}, n_steps=5, validation_data=dataset)
        val_loss = history.history["val_loss"][-1]
        assert val_loss == pytest.approx(sim.evaluate({inp: vx7}, {p: vy7})["loss"], rel=1e-6)


def test_validation_split_and_freq():
    """validation_split: the last items (before shuffling), as validation_data;
    both parts must be whole minibatches.  validation_freq as Keras."""
    net, inp, p = _net()
    x, y = _data()
    with _sim(net) as sim:
        split = sim.fit({inp: x}, {p: y}, epochs=2, validation_split=0.25).history
    with _sim(net) as sim:
        data = sim.fit({inp: x[:6]}, {p: y[:6]}, epochs=2,
                       validation_data=({inp: x[6:]}, {p: y[6:]})).history
    assert split.keys() == data.keys() and "val_out_mae" in split
    for k in split:
        np.testing.assert_allclose(split[k], data[k], rtol=1e-6, err_msg=k)
    with _sim(net) as sim:
        with pytest.raises(nengo.exceptions.ValidationError, match="multiples of the minib"):
            sim.fit({inp: x}, {p: y}, validation_split=0.3)
        history = sim.fit({inp: x}, {p: y}, epochs=4, validation_split=0.5,
                          validation_freq=2)
        assert len(history.history["loss"]) == 4
        assert len(history.history["val_loss"]) == 2
        history = sim.fit({inp: x}, {p: y}, epochs=4, validation_split=0.5,
                          validation_freq=[1, 2, 3])
        assert len(history.history["val_loss"]) == 3


def test_early_stopping():
    net, inp, p = _net()
    x, y = _data()
    with _sim(net) as sim:
        sim.compile(tf.keras.optimizers.SGD(0.0), loss="mse")  # nothing improves
        stop = keras_cb.EarlyStopping(monitor="val_loss", patience=2)
        history = sim.fit({inp: x}, {p: y}, epochs=10, validation_split=0.25,
                          callbacks=[stop])
        assert history.epoch == [0, 1, 2]
        assert stop.stopped_epoch == 2


def test_early_stopping_restores_best_weights():
    """restore_best_weights: the parameters after the best epoch (here the first:
    mode="max" on a falling loss) end up in the simulator."""
    net, inp, p = _net()
    x, y = _data()
    with _sim(net) as sim:
        sim.fit({inp: x}, {p: y}, epochs=1, shuffle=False)
        after_one = _params(sim)
        expected = sim.evaluate({inp: x}, {p: y})
    with _sim(net) as sim:
        stop = keras_cb.EarlyStopping(monitor="loss", mode="max", patience=1,
                                      restore_best_weights=True)
        history = sim.fit({inp: x}, {p: y}, epochs=10, shuffle=False, callbacks=[stop])
        assert history.epoch == [0, 1]
        assert history.history["loss"][1] < history.history["loss"][0]
        for a, b in zip(_params(sim), after_one):
            np.testing.assert_allclose(a, b, rtol=1e-6)
        assert sim.evaluate({inp: x}, {p: y}) == pytest.approx(expected, rel=1e-6)


def test_stop_training_mid_epoch():
    """stop_training set in on_train_batch_end stops after that minibatch (as
    Keras): the parameters are those of the minibatches run."""
    net, inp, p = _net()
    x, y = _data()
    with _sim(net) as sim:
        sim.fit({inp: x[:4]}, {p: y[:4]}, epochs=1, shuffle=False)
        two_batches = _params(sim)
    batches = []

    def on_batch_end(batch, logs=None):
        batches.append(batch)
        if batch == 1:
            stopper.model.stop_training = True

    stopper = keras_cb.LambdaCallback(on_train_batch_end=on_batch_end)
    with _sim(net) as sim:
        history = sim.fit({inp: x}, {p: y}, epochs=3, shuffle=False, callbacks=[stopper])
        assert batches == [0, 1]
        assert history.epoch == [0]
        for a, b in zip(_params(sim), two_batches):
            np.testing.assert_allclose(a, b, rtol=1e-6)


def test_stop_training_from_epoch_begin():
    """Set before an epoch's first minibatch, Keras still runs that minibatch."""
    net, inp, p = _net()
    x, y = _data()
    calls = []

    def on_epoch_begin(epoch, logs):
        calls.append(epoch)
        stopper.model.stop_training = True

    stopper = keras_cb.LambdaCallback(on_epoch_begin=on_epoch_begin)
    with _sim(net) as sim:
        w0 = _params(sim)
        history = sim.fit({inp: x}, {p: y}, epochs=3, shuffle=False, callbacks=[stopper])
        assert calls == [0] and history.epoch == [0]
        assert not np.array_equal(w0[0], _params(sim)[0])
    with _sim(net) as sim:
        sim.fit({inp: x[:2]}, {p: y[:2]}, epochs=1, shuffle=False)
        one_batch = _params(sim)
    with _sim(net) as sim:
        sim.fit({inp: x}, {p: y}, epochs=3, shuffle=False, callbacks=[stopper])
        np.testing.assert_allclose(_params(sim)[0], one_batch[0], rtol=1e-6)


def test_learning_rate_scheduler_and_logs():
    """Callbacks may change the optimizer's learning rate between epochs (the
    traced training step reads it); what they add to the logs is in History."""
    net, inp, p = _net()
    x, y = _data()
    with _sim(net) as sim:
        w0 = _params(sim)
        sched = keras_cb.LearningRateScheduler(lambda epoch, lr: 0.01 if epoch == 0 else 0.0)
        history = sim.fit({inp: x}, {p: y}, epochs=1, callbacks=[sched])
        w1 = _params(sim)
        assert not np.array_equal(w0[0], w1[0])
        history = sim.fit({inp: x}, {p: y}, epochs=3, initial_epoch=1, callbacks=[sched])
        assert history.epoch == [1, 2]
        assert history.history["learning_rate"] == [0.0, 0.0]
        for a, b in zip(w1, _params(sim)):
            np.testing.assert_array_equal(a, b)


def test_callbacks_see_current_parameters():
    """During fit the simulator holds the parameters trained so far, so a
    callback can evaluate or save_params (the supported checkpointing)."""
    net, inp, p = _net()
    x, y = _data()
    losses = []
    with _sim(net) as sim:
        before = sim.evaluate({inp: x}, {p: y})["loss"]
        cb = keras_cb.LambdaCallback(
            on_epoch_end=lambda e, logs: losses.append(sim.evaluate({inp: x}, {p: y})["loss"]))
        sim.fit({inp: x}, {p: y}, epochs=2, callbacks=[cb])
        assert losses[0] != before and losses[1] != losses[0]
        assert losses[1] == sim.evaluate({inp: x}, {p: y})["loss"]


def test_unsupported_callbacks(tmp_path):
    net, inp, p = _net()
    x, y = _data()
    with _sim(net) as sim:
        w0 = _params(sim)
        with pytest.raises(nengo.exceptions.ValidationError,
                           match="ModelCheckpoint.*save_weights_only=True"):
            sim.fit({inp: x}, {p: y},
                    callbacks=[keras_cb.ModelCheckpoint(str(tmp_path / "m.keras"))])
        for a, b in zip(w0, _params(sim)):
            np.testing.assert_array_equal(a, b)  # rejected before training

        def save(epoch, logs):
            saver.model.save(str(tmp_path / "m.keras"))

        saver = keras_cb.LambdaCallback(on_epoch_end=save)
        with pytest.raises(nengo.exceptions.SimulationError, match="save_params"):
            sim.fit({inp: x}, {p: y}, callbacks=[saver])

        def layers(epoch, logs):
            return saver.model.layers

        saver = keras_cb.LambdaCallback(on_epoch_end=layers)
        with pytest.raises(AttributeError, match="stand-in that has no 'layers'"):
            sim.fit({inp: x}, {p: y}, callbacks=[saver])
        with pytest.raises(TypeError, match="stand-in that cannot be called"):
            sim.keras_model({inp: x})


def test_model_checkpoint_saves_weights_that_load_weights_restores(tmp_path):
    """ModelCheckpoint(save_weights_only=True) (NengoDL users' checkpointing):
    the best epoch's weights go to the file; load_weights (and set_weights)
    put them back, into the simulation too."""
    net, inp, p = _net()
    x, y = _data()
    path = str(tmp_path / "best.weights.h5")
    with _sim(net) as sim:
        best = []

        def record(epoch, logs):
            if not best or logs["loss"] < best[0]:
                best[:] = [logs["loss"], sim.keras_model.get_weights()]

        sim.fit({inp: x}, {p: y}, epochs=4, verbose=0, callbacks=[
            keras_cb.ModelCheckpoint(path, monitor="loss", save_weights_only=True,
                                     save_best_only=True),
            keras_cb.LambdaCallback(on_epoch_end=record)])
        sim.keras_model.set_weights(best[1])
        expected = sim.predict({inp: x})[p]
        sim.keras_model.set_weights([np.zeros_like(w) for w in best[1]])
        assert not np.allclose(sim.predict({inp: x})[p], expected)  # the simulation sees it
        sim.keras_model.load_weights(path)
        for a, b in zip(sim.keras_model.get_weights(), best[1]):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(sim.predict({inp: x})[p], expected)
        with pytest.raises(nengo.exceptions.SimulationError, match="exists"):
            sim.keras_model.save_weights(path, overwrite=False)
    with _sim(net) as fresh:  # another build (other merges): keyed as save_params
        fresh.keras_model.load_weights(path)
        np.testing.assert_array_equal(fresh.predict({inp: x})[p], expected)
        np.save(tmp_path / "other.npy", np.zeros(3))
        (tmp_path / "text.h5").write_text("not weights")
        for other in ("other.npy", "text.h5"):
            with pytest.raises(nengo.exceptions.SimulationError, match="not written by"):
                fresh.keras_model.load_weights(str(tmp_path / other))
        with pytest.raises(FileNotFoundError):
            fresh.keras_model.load_weights(str(tmp_path / "missing.h5"))
        fresh.save_params(str(tmp_path / "params"))  # (writes params.npz, NengoDL's rule)
        fresh.keras_model.load_weights(str(tmp_path / "params"))


def test_load_weights_skip_mismatch(tmp_path):
    """``load_weights(path, skip_mismatch=True)`` (Keras's): into a network
    with one more ensemble, the saved parameters of the objects both have
    load and the new ensemble keeps its own, with a warning; without it the
    file is refused."""
    net, inp, p = _net()
    x, y = _data()
    path = str(tmp_path / "w.weights.h5")
    with _sim(net) as sim:
        sim.fit({inp: x}, {p: y}, epochs=2, verbose=0)
        sim.keras_model.save_weights(path)
        trained = _params(sim)[0]
    with net:
        extra = nengo.Ensemble(7, 1, neuron_type=nengo.RectifiedLinear())
        into = nengo.Connection(net.all_ensembles[1], extra)
    with _sim(net) as bigger:
        def own():
            return [np.array(bigger.data[extra].scaled_encoders),
                    np.array(bigger.data[extra].bias), np.array(bigger.data[into].weights)]

        built = own()
        with pytest.raises(nengo.exceptions.SimulationError, match="missing"):
            bigger.keras_model.load_weights(path)
        with pytest.warns(UserWarning, match=r"left \d+ of this network's parameters"):
            bigger.keras_model.load_weights(path, skip_mismatch=True)
        for a, b in zip(own(), built):
            np.testing.assert_array_equal(a, b)
        net.ensembles.remove(extra)  # (so _params reads the objects both have)
        net.connections.remove(into)
        np.testing.assert_array_equal(_params(bigger)[0], trained)


def test_assigning_keras_model_weights_reaches_the_simulation(tmp_path):
    """``sim.keras_model.weights[i].assign(...)`` (in NengoDL these are the
    variables the simulation reads): predict, sim.data and save_params see
    the assigned values, as after set_weights of the same values."""
    net, inp, p = _net()
    x, y = _data()
    conn = net.all_connections[1]
    with _sim(net) as sim:
        sim.fit({inp: x}, {p: y}, epochs=1, verbose=0)
        trained = sim.keras_model.get_weights()
        before = sim.predict({inp: x})[p]
        halves = [0.5 * w for w in trained]
        for w, h in zip(sim.keras_model.weights, halves):
            w.assign(h)
        assigned = sim.predict({inp: x})[p]
        assert not np.allclose(assigned, before)
        data_weights = np.array(sim.data[conn].weights)
        sim.save_params(tmp_path / "assigned")
        sim.keras_model.set_weights(trained)
        np.testing.assert_array_equal(sim.predict({inp: x})[p], before)
        sim.keras_model.set_weights(halves)
        np.testing.assert_array_equal(sim.predict({inp: x})[p], assigned)
        sim.keras_model.trainable_weights[0].assign(3 * halves[0])  # another change
        assert not np.allclose(sim.predict({inp: x})[p], assigned)
    with _sim(net) as loaded:  # another build: the saved file holds the assignment
        loaded.load_params(tmp_path / "assigned")
        np.testing.assert_array_equal(loaded.data[conn].weights, data_weights)
        np.testing.assert_array_equal(loaded.predict({inp: x})[p], assigned)
        for w in loaded.keras_model.weights:
            w.assign(2 * w)
        np.testing.assert_array_equal(loaded.data[conn].weights, 2 * data_weights)


def test_reading_weights_without_handing_them_out_costs_runs_nothing():
    """get_weights, count_params and summary give no variable to user code:
    runs afterwards do not compare the variables with the simulator (they
    did, at every sim.step); reading ``weights`` does."""
    net, inp, p = _net()
    with _sim(net) as sim:
        model = sim.keras_model
        model.get_weights()
        model.count_params()
        model.summary(print_fn=lambda text: None)
        model.set_weights(model.get_weights())
        graph = sim._trainer().graph
        assert graph._handed_out is None
        model.weights
        assert graph._handed_out is not None


def test_old_parameter_files_are_refused_by_name(tmp_path):
    """A file whose keys are positions in network.all_objects (nengo_cuda
    before 2026-12-03) is refused with that reason."""
    net, inp, p = _net()
    with _sim(net) as sim:
        sim.save_params(tmp_path / "new")
        with np.load(tmp_path / "new.npz") as f:
            old = {k.replace("ensemble", "").replace("connection", "") if k.startswith(
                "param:") else k: f[k] for k in f.files}
        np.savez(tmp_path / "old.npz", **old)
        with pytest.raises(nengo.exceptions.SimulationError, match="before 2026-12-03"):
            sim.load_params(tmp_path / "old")


def test_nengo_dl_parameter_files_are_refused_by_name(tmp_path):
    """A file of NengoDL's save_params (unnamed arrays in the order of its
    merged variables) is refused as such, with the way over (freeze_params),
    by load_params and by keras_model.load_weights(skip_mismatch=True)."""
    net, inp, p = _net()
    with _sim(net) as sim:
        np.savez_compressed(tmp_path / "dl.npz", np.zeros((10, 2)), np.zeros(10))
        with pytest.raises(nengo.exceptions.SimulationError, match="NengoDL's save_params.*"
                           "freeze_params"):
            sim.load_params(tmp_path / "dl")
        with pytest.raises(nengo.exceptions.SimulationError, match="unnamed arrays"):
            sim.keras_model.load_weights(str(tmp_path / "dl.npz"), skip_mismatch=True)


def test_keras_model_stand_in(capsys):
    """``sim.keras_model`` (NengoDL's): the object callbacks get, with the
    weights fit trains, Keras's counts and summary, and the last fit's History."""
    net, inp, p = _net()
    x, y = _data()
    with net:
        node = nengo_cuda.TensorNode(tf.keras.layers.Dense(3), shape_in=(1,), pass_time=False)
        nengo.Connection(net.ensembles[1], node, synapse=None)
    with _sim(net) as sim:
        model = sim.keras_model
        assert model is sim.keras_model
        n_nengo = sum(int(np.prod(v.shape)) for v in sim._trainer().graph.trainable_variables)
        assert n_nengo > 0
        assert model.count_params() == n_nengo + 3 + 3  # Dense(3) on 1 input: kernel, bias
        assert len(model.trainable_weights) == len(model.weights)
        model.summary()
        printed = capsys.readouterr().out
        assert f"Total params: {n_nengo + 6}" in printed
        assert "Non-trainable params: 0" in printed

        recorder = Recorder()
        history = sim.fit({inp: x}, {p: y}, epochs=2, verbose=0, callbacks=[recorder])
        assert recorder.model is model and model.history is history
        sim.predict({inp: x}, callbacks=[Recorder()])
        assert model.history is history  # predict leaves the History, as Keras does
        before = model.get_weights()
        sim.fit({inp: x}, {p: y}, epochs=1, verbose=0)
        assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
        with pytest.raises(AttributeError, match="stand-in that has no 'layers'"):
            model.layers


@pytest.mark.parametrize("call", ["fit", "predict", "evaluate"])
def test_isolate_state(call):
    """NengoDL's IsolateState: a call given it (stateful=True too) starts every
    minibatch from the state the callback saved and leaves the simulation in
    that state; without it, a stateful call moves the state on."""
    net, inp, p = _net()
    x, y = _data()
    for isolate in (True, False):
        with _sim(net, dtype="float64") as sim:
            sim.compile(tf.keras.optimizers.SGD(0.0), loss="mse")
            sim.run_steps(4, data={inp: x[:2, :4]})
            start = sim._save_state()
            runs = sim.predict({inp: x})[p]  # (each minibatch from the state now)
            callbacks = [nengo_cuda.callbacks.IsolateState(sim)] if isolate else []
            if call == "fit":
                sim.fit({inp: x}, {p: y}, stateful=True, callbacks=callbacks, verbose=0)
            elif call == "predict":
                out = sim.predict({inp: x}, stateful=True, callbacks=callbacks)[p]
                assert np.allclose(out, runs, rtol=1e-12, atol=0) == isolate
            else:
                sim.evaluate({inp: x}, {p: y}, stateful=True, callbacks=callbacks)
            state = sim._save_state()
            assert np.array_equal(state["f"], start["f"]) == isolate
            assert state["n_steps"] == (4 if isolate else 4 + 5 * 4)


def test_isolate_state_made_before_other_runs():
    """NengoDL's IsolateState given to a stateful predict, made before more
    steps ran: the first minibatch starts from the state now, the next ones
    from the callback's, and the call ends in the callback's state."""
    net, inp, p = _net()
    x, _ = _data(n=4)
    with _sim(net, dtype="float64") as sim:
        sim.run_steps(4, data={inp: x[:2, :4]})
        saved = sim._save_state()
        from_saved = sim.predict({inp: x[2:]})[p]
        isolate = nengo_cuda.callbacks.IsolateState(sim)
        sim.run_steps(3, data={inp: x[:2, :3]})
        from_now = sim.predict({inp: x[:2]})[p]
        out = sim.predict({inp: x}, stateful=True, callbacks=[isolate])[p]
        np.testing.assert_allclose(out[:2], from_now, rtol=1e-12)
        np.testing.assert_allclose(out[2:], from_saved, rtol=1e-12)
        assert np.array_equal(sim._save_state()["f"], saved["f"]) and sim.n_steps == 4
        # fit (the training graph carries its state) not asked to be stateful: it
        # ends where it started, as NengoDL's own IsolateState after the user's makes it
        sim.run_steps(3, data={inp: x[:2, :3]})
        before = sim._save_state()
        sim.fit({inp: x}, {p: x}, callbacks=[isolate], verbose=0)
        assert np.array_equal(sim._save_state()["f"], before["f"]) and sim.n_steps == 7


def test_keras_fit_arguments():
    """No Keras argument is silently dropped: supported, warned about (as
    NengoDL), or rejected by name."""
    net, inp, p = _net()
    x, y = _data()
    data = ({inp: x}, {p: y})
    with _sim(net) as sim:
        for kwargs, match in [
            (dict(sample_weight={p: np.ones(7)}), r"sample_weight for .* shape \(7,\)"),
            (dict(sample_weight=np.ones((8, 3))), r"expected \(8,\) .* or \(8, 5\)"),
            (dict(class_weight={0: 1.0}, sample_weight=np.ones(8)), "not both"),
            (dict(steps_per_epoch=0), "steps_per_epoch must be a positive integer"),
            (dict(validation_split=0.5, validation_steps=1.5), "validation_steps must be"),
            (dict(validation_data=(x, y, np.ones(3))), "validation_data: sample_weight"),
            (dict(validation_data=x), "tuple"),
            (dict(validation_freq="2"), "validation_freq"),
        ]:
            with pytest.raises(nengo.exceptions.ValidationError, match=match):
                sim.fit(*data, **kwargs)
        with pytest.raises(TypeError, match="'nonsense'"):
            sim.fit(*data, nonsense=1)
        for steps in (None, 1):  # (Keras: validation_split for arrays only)
            batches = ((x[i:i + 2], y[i:i + 2]) for i in range(0, 8, 2))
            with pytest.raises(nengo.exceptions.ValidationError,
                               match="only supported for tensors or NumPy arrays"):
                sim.fit(batches, validation_split=0.5, steps_per_epoch=steps)
        with pytest.warns(UserWarning, match="ignores batch_size=4"):
            sim.fit(*data, batch_size=4)
        with pytest.warns(UserWarning, match="ignoring workers=4"):  # Keras 2's
            sim.fit(*data, workers=4, verbose=0)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            sim.fit(*data, batch_size=2, steps_per_epoch=4, verbose=0)
            sim.fit(*data, validation_split=0.5, validation_steps=2,
                    validation_batch_size=2)
        assert sim.fit(*data, epochs=2, initial_epoch=2).epoch == []

        # evaluate / predict (callbacks: the test and predict hooks, as Keras)
        hooks = []
        recorder = keras_cb.LambdaCallback(
            on_test_batch_end=lambda i, logs: hooks.append(("test", i, sorted(logs))),
            on_predict_batch_end=lambda i, logs: hooks.append(("predict", i, sorted(logs))))
        result = sim.evaluate(*data, callbacks=[recorder])
        sim.predict({inp: x}, callbacks=[recorder])
        names = sorted(result)
        assert hooks == [("test", i, names) for i in range(4)] + [
            ("predict", i, ["outputs"]) for i in range(4)]
        with pytest.raises(nengo.exceptions.ValidationError, match="steps must be"):
            sim.evaluate(*data, steps=0)
        with pytest.raises(nengo.exceptions.ValidationError, match="sample_weight"):
            sim.evaluate(*data, sample_weight=np.ones(9))
        with pytest.raises(TypeError, match="'nonsense'"):
            sim.predict({inp: x}, nonsense=1)
        with pytest.raises(TypeError, match="'nonsense'"):
            sim.predict_on_batch({inp: x[:2]}, nonsense=1)
        with pytest.warns(UserWarning, match="ignores batch_size=8"):
            sim.predict({inp: x}, batch_size=8)
        assert sim.evaluate(*data, verbose=1, steps=4, return_dict=True).keys() == {
            "loss", "out_loss", "out_mae"}


def test_one_trace_per_signature():
    """fit traces its training function once per simulator, data signature and
    compile: batch hooks (one call per minibatch), validation and later fits
    reuse it; another number of items does not retrace again after the first."""
    net, inp, p = _net()
    x, y = _data(n=8)
    with _sim(net) as sim:
        sim.fit({inp: x}, {p: y})
        (fn,) = sim._trainer()._train_fns.values()
        assert fn.experimental_get_tracing_count() == 1
        sim.fit({inp: x}, {p: y}, epochs=2, validation_data=({inp: x[:2]}, {p: y[:2]}),
                callbacks=[keras_cb.LambdaCallback(on_train_batch_end=lambda b, logs: None)])
        sim.fit({inp: x}, {p: y}, epochs=2)
        assert fn.experimental_get_tracing_count() == 1
        sim.fit({inp: x[:4]}, {p: y[:4]})
        sim.fit({inp: x[:2]}, {p: y[:2]})
        assert fn.experimental_get_tracing_count() == 2


def _events(log_dir):
    """{tag: [(step, value)]} of the summaries in ``log_dir`` (scalars' values,
    histograms' tensors)."""
    from tensorflow.core.util import event_pb2  # noqa: PLC0415

    out = {}
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(str(path)):
            event = event_pb2.Event.FromString(record.numpy())
            for v in event.summary.value:
                out.setdefault(v.tag, []).append((event.step, tf.make_ndarray(v.tensor)))
    return out


def test_tensorboard_logs(tmp_path):
    """Keras's TensorBoard callback in fit: the scalars a Keras fit writes
    (epoch_*, batch_* every update_freq minibatches; validation_* in
    validation/), weight histograms, and NengoDL's NengoSummaries."""
    net, inp, p = _net()
    x, y = _data(n=8)
    vx, vy = _data(n=4, seed=1)
    ens = net.ensembles[0]
    with _sim(net) as sim:
        history = sim.fit({inp: x}, {p: y}, epochs=3, verbose=0,
                          validation_data=({inp: vx}, {p: vy}),
                          callbacks=[keras_cb.TensorBoard(str(tmp_path / "tb"), histogram_freq=1,
                                                          update_freq=1),
                                     nengo_cuda.callbacks.NengoSummaries(
                                         str(tmp_path / "ns"), sim, [ens, ens.neurons])])
        bias = sim.data[ens].bias
    train = _events(tmp_path / "tb" / "train")
    val = _events(tmp_path / "tb" / "validation")
    np.testing.assert_allclose([v for _, v in train["epoch_loss"]], history.history["loss"],
                               rtol=1e-6)
    assert [s for s, _ in train["epoch_loss"]] == [0, 1, 2]
    np.testing.assert_allclose([v for _, v in val["epoch_loss"]], history.history["val_loss"],
                               rtol=1e-6)
    assert len(train["batch_loss"]) == 3 * 8 // 2  # every minibatch (of 2)
    assert any(tag.endswith("/histogram") for tag in train)
    nengo_logs = _events(tmp_path / "ns")
    assert len(nengo_logs) == 2 and all(len(v) == 3 for v in nengo_logs.values())
    assert set(nengo_logs) == {"Ensemble_None_encoders", "Ensemble.neurons_None_bias"}
    biases = nengo_logs["Ensemble.neurons_None_bias"]  # (NengoDL's tags)
    hist = biases[-1][1]  # (bins, 3): left edge, right edge, count
    assert hist[:, 2].sum() == bias.size and hist[0, 0] <= bias.min() <= bias.max() <= hist[-1, 1]


def test_tensorboard_warns_of_what_it_does_not_write(tmp_path):
    """A profile, images, embeddings or steps per second (Keras's, of its
    model's graph) are not written: a warning names those asked for, and the
    scalars are written still; the defaults warn of nothing."""
    net, inp, p = _net()
    x, y = _data(n=4)
    with _sim(net) as sim:
        with pytest.warns(UserWarning, match=r"TensorBoard\(profile_batch, write_images\): "
                                             r"not written"):
            sim.fit({inp: x}, {p: y}, verbose=0, callbacks=[keras_cb.TensorBoard(
                str(tmp_path / "a"), profile_batch=2, write_images=True)])
        assert "epoch_loss" in _events(tmp_path / "a" / "train")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            sim.fit({inp: x}, {p: y}, verbose=0,
                    callbacks=[keras_cb.TensorBoard(str(tmp_path / "b"))])


def test_nengo_summaries_refuses_what_has_no_parameters(tmp_path):
    """NengoDL's checks, when the callback is made: a Connection without
    weights (it failed at the first epoch's end with NumPy's "autodetected
    range of [nan, nan]"), an object that is none of the three."""
    net, inp, p = _net()
    with net:
        plain = nengo.Connection(inp, nengo.Node(size_in=1))  # (NoTransform)
    with _sim(net) as sim:
        with pytest.raises(nengo.exceptions.ValidationError, match="does not have any weights"):
            nengo_cuda.callbacks.NengoSummaries(str(tmp_path), sim, [plain])
        with pytest.raises(nengo.exceptions.ValidationError, match="not an Ensemble, Neurons"):
            nengo_cuda.callbacks.NengoSummaries(str(tmp_path), sim, [p])


@pytest.mark.parametrize("inference_only", [False, True])
def test_keras_model_splits_trainable_and_non_trainable_weights(inference_only):
    """As a Keras model: non_trainable_weights are the weights fit leaves (a
    BatchNormalization's moving statistics); with inference_only (NengoDL's
    test_reuse_vars) nothing is trainable."""
    with nengo.Network(seed=0) as net:
        if inference_only:
            nengo_cuda.configure_settings(inference_only=True)
        inp = nengo.Node(np.zeros(3))
        node = nengo_cuda.Layer(tf.keras.layers.BatchNormalization())(inp)
        a = nengo.Ensemble(10, 3)
        nengo.Connection(node, a)
        nengo.Probe(a)
    with nengo_cuda.Simulator(net, progress_bar=False) as sim:
        model = sim.keras_model
        names = lambda vs: sorted(v.name for v in vs)  # noqa: E731
        assert names(model.trainable_weights + model.non_trainable_weights) == names(model.weights)
        assert {"moving_mean", "moving_variance"} <= set(names(model.non_trainable_weights))
        if inference_only:
            assert model.trainable_variables == []
            assert names(model.non_trainable_variables) == names(model.weights)
        else:
            assert {"gamma", "beta"} <= set(names(model.trainable_weights))
            assert not {"gamma", "beta"} & set(names(model.non_trainable_weights))
