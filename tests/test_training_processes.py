"""Processes and neuron types without a TensorFlow form in the training graph.

Processes (WhiteSignal, WhiteNoise, BrownNoise, Ensemble noise, a user's
own stateful Process) run their own step functions on the host, seeded as the simulator
seeds them; neuron types without a rate equivalent (Izhikevich, a user's
subclass) run Nengo's step on the host.  So the graph's forward pass equals
`nengo.Simulator` and ``sim.run``, and fit trains around them."""

import numpy as np
import nengo
import pytest

tf = pytest.importorskip("tensorflow")

import nengo_cuda  # noqa: E402


class RunningSum(nengo.Process):
    """A Process with input and its own state: out = sum of its inputs so far."""

    def make_state(self, shape_in, shape_out, dt, dtype=None):
        return {"total": np.zeros(shape_out)}

    def make_step(self, shape_in, shape_out, dt, rng, state):
        total = state["total"]

        def step(t, x):
            total[...] += x
            return total

        return step


def _net():
    with nengo.Network(seed=2) as net:
        signal = nengo.Node(nengo.processes.WhiteSignal(0.5, high=8, rms=0.5))
        fed = nengo.Node(np.zeros(1))
        # (runs as white noise and a filter in the simulator: `random_splits`)
        drift = nengo.Node(nengo.processes.BrownNoise(nengo.dists.Gaussian(0, 0.1)))
        ens = nengo.Ensemble(30, 1, neuron_type=nengo.LIFRate(),
                             noise=nengo.processes.WhiteNoise(nengo.dists.Gaussian(0, 0.2)))
        nengo.Connection(signal, ens)
        nengo.Connection(fed, ens)
        nengo.Connection(drift, ens)
        summed = nengo.Node(RunningSum(), size_in=1)
        nengo.Connection(ens, summed, synapse=None)
        readout = nengo.Node(size_in=1)
        nengo.Connection(ens, readout, transform=2)
        probes = [nengo.Probe(signal), nengo.Probe(ens, synapse=0.01), nengo.Probe(summed),
                  nengo.Probe(readout), nengo.Probe(drift)]
    return net, fed, probes


def test_host_processes_forward_equals_nengo_and_run():
    steps, mb = 25, 3
    net, fed, probes = _net()
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(steps)
    with nengo_cuda.Simulator(net, minibatch_size=mb, dtype="float64",
                              progress_bar=False) as sim:
        out = sim._trainer().forward({fed: np.zeros((mb, steps, 1))})
        for p in probes:  # trial 0 as Nengo (rate neurons, so no spike timing)
            np.testing.assert_allclose(out[p][0], ref.data[p], rtol=1e-12, atol=1e-12)
        sim.run_steps(steps)
        for p in probes:  # every trial as sim.run (each its own noise)
            np.testing.assert_allclose(out[p], sim.data[p], rtol=1e-12, atol=1e-12)
        assert not np.allclose(out[probes[0]][0], out[probes[0]][1])

        sim.reset(seed=7)  # new seeds: the graph's processes follow
        again = sim._trainer().forward({fed: np.zeros((mb, steps, 1))})
        sim.run_steps(steps)
        np.testing.assert_allclose(again[probes[0]], sim.data[probes[0]], rtol=1e-12)
        assert not np.allclose(again[probes[0]], out[probes[0]])


def _stateful_processes_net(learning_phase=None):
    """A Triangle synapse (state Y, X, Xi) and a user's stateful Process, fed."""
    with nengo.Network(seed=1) as net:
        if learning_phase is not None:
            nengo_cuda.configure_settings(learning_phase=learning_phase)
        fed = nengo.Node(np.zeros(2))
        out = nengo.Node(size_in=2)
        nengo.Connection(fed, out, synapse=nengo.synapses.Triangle(0.01))
        summed = nengo.Node(RunningSum(), size_in=2, size_out=2)
        nengo.Connection(fed, summed, synapse=None)
        probes = [nengo.Probe(out), nengo.Probe(summed)]
    return net, fed, probes


def test_host_process_state_is_the_simulators():
    """A process's own state goes through the graph's state, as NengoDL passes
    it: the graph starts from the simulator's state (equal to a native run
    from it), a call that is not stateful leaves it, and a fit at learning
    rate 0 has evaluate's loss from the same state (the state was kept in the
    host step functions: each call went on from the one before)."""
    inputs = np.random.RandomState(3).uniform(-1, 1, (2, 12, 2))
    results = {}
    for phase in (None, True):  # native predict; the training graph's
        net, fed, probes = _stateful_processes_net(learning_phase=phase)
        x = {fed: inputs}
        with nengo_cuda.Simulator(net, minibatch_size=2, dtype="float64",
                                  progress_bar=False) as sim:
            sim.run_steps(5, data={fed: np.full((2, 5, 2), 3.0)})  # state away from its start
            first = sim.predict(x, n_steps=12, verbose=0)
            second = sim.predict(x, n_steps=12, verbose=0)
            for p in probes:
                np.testing.assert_array_equal(first[p], second[p])
            results[phase] = [first[p] for p in probes]
    for graph, native in zip(results[True], results[None]):
        np.testing.assert_allclose(graph, native, rtol=1e-12, atol=1e-12)

    net, fed, probes = _stateful_processes_net()
    x, y = {fed: inputs}, {probes[0]: np.zeros((2, 12, 2))}
    with nengo_cuda.Simulator(net, minibatch_size=2, dtype="float64", progress_bar=False) as sim:
        sim.run_steps(5, data={fed: np.full((2, 5, 2), 3.0)})
        sim.compile(optimizer=tf.keras.optimizers.SGD(0.0), loss={probes[0]: "mse"})
        loss = sim.evaluate(x, y, verbose=0)["loss"]
        for _ in range(2):
            assert sim.fit(x, y, epochs=1, verbose=0).history["loss"][0] == pytest.approx(
                loss, rel=1e-12)


class Delay(nengo.Process):
    """The input 3 steps ago: a ring of inputs and its integer position."""

    def make_state(self, shape_in, shape_out, dt, dtype=None):
        return {"ring": np.zeros((3,) + shape_out), "position": np.zeros(1, dtype=np.int64)}

    def make_step(self, shape_in, shape_out, dt, rng, state):
        ring, position = state["ring"], state["position"]

        def step(t, x):
            i = position[0]  # (an index: must be an integer)
            y = ring[i].copy()
            ring[i] = x
            position[0] = (i + 1) % len(ring)
            return y

        return step


def test_integer_process_state_stays_integer():
    """A user's process with an integer state (not the graph's: that holds
    float signals) gets it as integers in the training graph too (it got a
    float array: IndexError)."""
    with nengo.Network(seed=0) as net:
        nengo_cuda.configure_settings(learning_phase=True)
        fed = nengo.Node(np.zeros(1))
        delayed = nengo.Node(Delay(), size_in=1, size_out=1)
        nengo.Connection(fed, delayed, synapse=None)
        probe = nengo.Probe(delayed)
    x = np.arange(1.0, 9.0).reshape(1, 8, 1)
    with nengo_cuda.Simulator(net, dtype="float64", progress_bar=False) as sim:
        out = sim.predict({fed: x}, n_steps=8, verbose=0)[probe]
    np.testing.assert_array_equal(out[0, :, 0], [0, 0, 0, 1, 2, 3, 4, 5])


def test_fit_with_noise_and_unfed_white_signal():
    """fit trains through a network whose inputs and noise are processes (no
    gradient through them, none needed): the readout's decoders learn to
    cancel it (target 0)."""
    net, fed, probes = _net()
    rng = np.random.RandomState(0)
    with nengo_cuda.Simulator(net, minibatch_size=4, progress_bar=False) as sim:
        sim.compile(tf.keras.optimizers.Adam(2e-4), loss={probes[3]: "mse"})
        x = {fed: rng.uniform(-1, 1, (16, 10, 1))}
        y = {probes[3]: np.zeros((16, 10, 1))}
        before = sim.evaluate(x, y, verbose=0)["loss"]
        sim.fit(x, y, epochs=15, verbose=0)
        after = sim.evaluate(x, y, verbose=0)["loss"]
        assert after < 0.1 * before


def test_host_functions_get_nengo_times_in_float32():
    """A float32 graph's time (t0 + k + 1) * dt is not Nengo's float64
    step * dt; Node functions and processes get Nengo's (as sim.run gives)."""
    seen = {"node": [], "process": []}

    class Clock(nengo.Process):
        def make_step(self, shape_in, shape_out, dt, rng, state):
            return lambda t: seen["process"].append(t) or [0.0]

    with nengo.Network() as net:
        a = nengo.Node(lambda t: seen["node"].append(t) or 0.0)
        b = nengo.Node(Clock(), size_out=1)
        nengo.Probe(a), nengo.Probe(b)
    with nengo_cuda.Simulator(net, dtype="float32", progress_bar=False) as sim:
        seen.update(node=[], process=[])  # (Nengo calls a Node's function to size it)
        sim.run_steps(3)
        native = dict(seen)
        seen.update(node=[], process=[])
        sim._trainer().forward(n_steps=7)
    expected = [k * 0.001 for k in range(1, 8)]
    assert native["node"] == expected[:3] and native["process"] == expected[:3]
    assert seen["node"] == expected and seen["process"] == expected


class ClippedLIFRate(nengo.LIFRate):
    """A user's own rate type (a subclass overriding step): no rate kernel."""

    def step(self, dt, J, output):
        super().step(dt, J, output)
        np.minimum(output, 150.0, out=output)


@pytest.mark.parametrize("neuron_type", [nengo.Izhikevich(), ClippedLIFRate(),
                                         nengo.PoissonSpiking(nengo.Izhikevich())],
                         ids=["izhikevich", "subclass", "poisson_izhikevich"])
def test_neurons_without_rate_equivalent_run_their_own_step(neuron_type):
    """Neuron types without a rate equivalent run Nengo's step on the host in
    the training graph (NengoDL's generic neuron builder): the forward pass
    equals nengo.Simulator, state carried in the graph; fit trains around them."""
    steps, mb = 40, 2
    with nengo.Network(seed=5) as net:
        inp = nengo.Node(np.zeros(1))
        ens = nengo.Ensemble(12, 1, neuron_type=neuron_type)
        out = nengo.Node(size_in=1)
        nengo.Connection(inp, ens)
        nengo.Connection(ens, out, synapse=0.01)
        probes = [nengo.Probe(ens.neurons), nengo.Probe(out)]
    x = np.tile(np.linspace(-0.8, 0.8, steps)[None, :, None], (mb, 1, 1))
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(steps)  # (the constant Node gives 0; x is fed below)
    with nengo_cuda.Simulator(net, minibatch_size=mb, dtype="float64",
                              progress_bar=False) as sim:
        forward = sim._trainer().forward({inp: np.zeros((mb, steps, 1))})
        if not isinstance(neuron_type, nengo.PoissonSpiking):  # (its draws differ)
            for p in probes:
                np.testing.assert_allclose(forward[p][0], ref.data[p], rtol=1e-12, atol=1e-12)
        assert np.any(forward[probes[0]] != 0)
        sim.compile(tf.keras.optimizers.Adam(1e-5), loss={probes[1]: "mse"})
        y = {probes[1]: np.full((mb, steps, 1), 0.3)}
        before = sim.evaluate({inp: x}, y, verbose=0)["loss"]
        sim.fit({inp: x}, y, epochs=5, verbose=0)
        after = sim.evaluate({inp: x}, y, verbose=0)["loss"]
        assert after < before


def test_host_function_errors_are_raised_as_themselves():
    """An error inside a host function (a Node's function, a process) reaches the
    user as itself, not as TensorFlow's UnknownError around it."""

    class WrongSize(nengo.Process):
        def make_step(self, shape_in, shape_out, dt, rng, state):
            return lambda t: np.zeros(3)

    def broken(t):
        if t > 0.002:
            raise ValueError("broken Node function")
        return 0.0

    for output, error, match in ((WrongSize(), nengo.exceptions.SimulationError,
                                  "returned 3 values"),
                                 (broken, ValueError, "broken Node function")):
        with nengo.Network() as net:
            a = nengo.Node(output, size_out=1)
            p = nengo.Probe(a)
        with nengo_cuda.Simulator(net, progress_bar=False) as sim:
            with pytest.raises(error, match=match):
                sim._trainer().forward(n_steps=5)
            sim.compile(tf.keras.optimizers.SGD(0.1), loss={p: "mse"})
            with pytest.raises(error, match=match):
                sim.fit(n_steps=5, y={p: np.zeros((1, 5, 1))}, verbose=0)
