"""NengoDL's methods (fit, predict, evaluate, ...) and the simulator's run
lock: a call from a run's Node function, or beside another call, is refused;
closing during one is refused; their own runs and resets, and a Keras
callback's between minibatches (as NengoDL's), go on."""

import nengo
import numpy as np
import pytest
from nengo.exceptions import SimulationError, ValidationError

import nengo_cuda

tf = pytest.importorskip("tensorflow")

DEVICES = ["cpu", "cuda-emulator"]


def network(f):
    """An input Node, a Node running ``f(t, x)`` and an ensemble, probed."""
    with nengo.Network(seed=0) as net:
        u = nengo.Node(np.zeros(2))
        g = nengo.Node(f, size_in=2, size_out=2)
        nengo.Connection(u, g)
        e = nengo.Ensemble(10, 2)
        nengo.Connection(g, e)
        probes = (nengo.Probe(g), nengo.Probe(e))
    return net, u, probes


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("inner", ["predict", "evaluate"])
@pytest.mark.parametrize("mb", [None, 2])
def test_a_node_function_cannot_call_predict_during_predict(device, inner, mb):
    """The inner call is refused, and the outer one's samples do not stay in
    ``sim.data`` (they did: 2 samples more than ``trange`` after a run)."""
    sims = []

    def f(t, x):
        if sims and t > 0.0025:
            sim = sims.pop()
            if inner == "predict":
                sim.predict(n_steps=2, verbose=0)
            else:
                sim.evaluate(n_steps=2, verbose=0)
        return x

    net, _, (p, pe) = network(f)
    with nengo_cuda.Simulator(net, progress_bar=False, device=device, minibatch_size=mb) as sim:
        sim.compile(loss={pe: "mse"})
        sims.append(sim)
        with pytest.raises(SimulationError, match=f"Cannot call {inner} on the simulator "
                                                  "while it runs"):
            sim.predict(n_steps=5, verbose=0)
        axis = 0 if mb is None else 1  # (the steps' axis)
        assert sim.n_steps == 0 and np.shape(sim.data[p])[axis] == 0
        sim.run_steps(2)
        assert sim.data[p].shape[axis] == len(sim.trange()) == 2


class CallDuring(tf.keras.callbacks.Callback):
    """Calls ``action(sim)`` once, after the second minibatch of any call."""

    def __init__(self, sim, action):
        super().__init__()
        self.sim, self.action, self.errors = sim, action, []

    def _call(self, batch):
        if batch == 1:
            try:
                self.action(self.sim)
            except SimulationError as e:
                self.errors.append(str(e))

    def on_train_batch_end(self, batch, logs=None):
        self._call(batch)

    def on_predict_batch_end(self, batch, logs=None):
        self._call(batch)

    def on_test_batch_end(self, batch, logs=None):
        self._call(batch)


@pytest.mark.parametrize("method", ["fit", "predict", "evaluate"])
def test_closing_during_a_call_is_refused(method):
    """From a Keras callback (a TypeError ended the call after the simulator
    closed under it); the call ends as usual and the simulator stays open."""
    net, u, (_, pe) = network(lambda t, x: x)
    x = np.ones((4, 5, 2))
    with nengo_cuda.Simulator(net, progress_bar=False) as sim:
        sim.compile(optimizer=tf.optimizers.SGD(0.1), loss={pe: "mse"})
        cb = CallDuring(sim, lambda s: s.close())
        kwargs = dict(callbacks=[cb], verbose=0)
        if method == "fit":
            sim.fit({u: x}, {pe: x}, epochs=1, **kwargs)
        elif method == "predict":
            sim.predict({u: x}, **kwargs)
        else:
            sim.evaluate({u: x}, {pe: x}, **kwargs)
        assert cb.errors and all(f"Cannot close the simulator during its {method}" in e
                                 for e in cb.errors)
        assert not sim.closed
        sim.run_steps(3)  # (and it runs on)


def test_a_callback_may_run_between_minibatches():
    """NengoDL's: a Keras callback may run the simulator between predict's
    minibatches (from the call's own thread)."""
    net, u, (p, _) = network(lambda t, x: x)
    with nengo_cuda.Simulator(net, progress_bar=False) as sim:
        cb = CallDuring(sim, lambda s: s.run_steps(3))
        out = sim.predict({u: np.ones((4, 5, 2))}, callbacks=[cb], verbose=0)
        assert not cb.errors and out[p].shape == (4, 5, 2)


def test_another_thread_cannot_run_during_fit():
    """Another thread's run_steps, reset, close or predict during fit is refused
    (a callback's in the fit's own thread go on, as NengoDL's)."""
    import threading

    errors = []
    net, u, (_, pe) = network(lambda t, x: x)
    x = np.ones((4, 5, 2))
    with nengo_cuda.Simulator(net, progress_bar=False) as sim:
        sim.compile(optimizer=tf.optimizers.SGD(0.1), loss={pe: "mse"})

        def others(s):
            for call in (lambda: s.run_steps(2), s.reset, s.close,
                         lambda: s.predict({u: x}, verbose=0)):
                thread = threading.Thread(target=lambda c=call: _record(c, errors))
                thread.start()
                thread.join(30)

        sim.fit({u: x}, {pe: x}, epochs=1, callbacks=[CallDuring(sim, others)], verbose=0)
        assert len(errors) == 4 and all("during its fit" in e for e in errors[:3])
        assert "Cannot call predict during the simulator's fit in another thread" in errors[3]
        assert sim.n_steps == 0 and not sim.closed


def _record(call, errors):
    try:
        call()
    except SimulationError as e:
        errors.append(str(e))


@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e39])
def test_fit_refuses_input_that_is_not_finite(bad):
    """As a run's data (fit trained the weights to NaN, with a loss that
    looked normal); 1e39 is inf in float32."""
    net, u, (_, pe) = network(lambda t, x: x)
    x = np.ones((4, 5, 2))
    x[2, 3, 1] = bad
    with nengo_cuda.Simulator(net, progress_bar=False) as sim:
        sim.compile(optimizer=tf.optimizers.SGD(0.1), loss={pe: "mse"})
        with pytest.raises(ValidationError, match=r"non-finite value .* at \[item, step, dim\] "
                                                  r"= \[2, 3, 1\]"):
            sim.fit({u: x}, {pe: np.ones((4, 5, 2))}, epochs=1, verbose=0)
        with pytest.raises(ValidationError, match="non-finite"):
            sim.predict({u: x}, verbose=0)


def test_fit_refuses_ragged_input():
    net, u, (_, pe) = network(lambda t, x: x)
    with nengo_cuda.Simulator(net, progress_bar=False) as sim:
        sim.compile(optimizer=tf.optimizers.SGD(0.1), loss={pe: "mse"})
        ragged = [[[0.0, 1.0]], [[0.0]]]
        with pytest.raises(ValidationError, match="data for .* does not make an array"):
            sim.fit({u: ragged}, {pe: np.ones((2, 1, 2))}, verbose=0)
        with pytest.raises(ValidationError, match="data for .* does not make an array"):
            sim.run_steps(1, data={u: ragged})


def test_check_gradients_names_a_probe_of_another_network():
    net, _, _ = network(lambda t, x: x)
    with nengo.Network():
        stranger = nengo.Probe(nengo.Node([0]))
    with nengo_cuda.Simulator(net, progress_bar=False) as sim:
        with pytest.raises(ValidationError, match="is not a Probe of this network"):
            sim.check_gradients(outputs=[stranger])
