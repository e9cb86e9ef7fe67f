"""fit's warning about trainable parameters that no gradient reaches
(`nengo_cuda.training.gradient_paths`).

Each host part (a Python function, a process without a TensorFlow form, a
neuron type without a rate equivalent) between a parameter and the probes is
named; a parameter with a differentiable path too is not.  The fuzz test
checks, on random networks with such parts, that every parameter reported
gets a gradient of exactly zero from TensorFlow.
"""

import os
import warnings

import nengo
import numpy as np
import pytest
from hypothesis import given, reject

pytest.importorskip("tensorflow")
import tensorflow as tf  # noqa: E402

import nengo_cuda  # noqa: E402
from nengo_cuda.training import gradient_paths  # noqa: E402
from nengo_cuda.training.config import trainable_objects  # noqa: E402
from nengo_cuda.training.graph import trainable_parameters  # noqa: E402
from test_fuzz import fuzz_settings  # noqa: E402
from test_fuzz_gradients import probed_network, simulator  # noqa: E402
from test_fuzz_training import cases  # noqa: E402
from tutorial_net import training_version, tutorial_net  # noqa: E402

EXAMPLES = int(os.environ.get("NC_FUZZ_GRADIENT_PATH_EXAMPLES", "12"))


def chain(middle, optimize=True):
    """input -> a -> middle(a) -> b -> probe, ``middle``: a function making the
    part between a and b (returns the object b's input comes from)."""
    with nengo.Network(seed=0) as net:
        inp = nengo.Node([0.5], label="inp")
        a = nengo.Ensemble(10, 1, label="a")
        b = nengo.Ensemble(10, 1, label="b")
        nengo.Connection(inp, a)
        nengo.Connection(middle(a), b)
        p = nengo.Probe(b)
    return net, p


def fit_warnings(net, optimize=True, probe=None):
    """The messages of the warnings of one short fit (loss on ``probe``,
    default the network's first)."""
    probe = probe or net.probes[0]
    with nengo_cuda.Simulator(net, optimize=optimize, progress_bar=False) as sim:
        sim.compile(optimizer=tf.keras.optimizers.SGD(0.0), loss="mse")
        x = {n: np.ones((2, 3, n.size_out)) for n in net.all_nodes
             if n.size_in == 0 and n.size_out > 0 and not callable(n.output)}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            sim.fit(x, {probe: np.ones((2, 3, probe.size_in))}, epochs=1, verbose=0)
    return [str(w.message) for w in caught if "no gradient reaches" in str(w.message)]


def python_node(a):
    f = nengo.Node(lambda t, x: x ** 2, size_in=1, label="f")
    nengo.Connection(a, f)
    return f


@pytest.mark.parametrize("optimize", [True, False])
def test_python_node_blocks_what_lies_before_it(optimize):
    net, _ = chain(python_node)
    (message,) = fit_warnings(net, optimize=optimize)
    a, b = net.ensembles
    assert f"the encoders of {a}" in message
    assert f"the bias of {a.neurons}" in message
    assert "<Node 'f'> (a Python function)" in message
    # b and the connections after the Node get their gradient (with the
    # optimizer, a's decoders share one merged product with b's)
    assert str(b) not in message.split(": every path")[0]
    assert "to <Ensemble 'b'>" not in message


def test_function_on_a_connection_from_a_direct_ensemble():
    with nengo.Network(seed=0) as net:
        inp = nengo.Node([0.5], label="inp")
        a = nengo.Ensemble(10, 1, label="a")
        direct = nengo.Ensemble(1, 1, neuron_type=nengo.Direct(), label="direct")
        b = nengo.Ensemble(10, 1, label="b")
        nengo.Connection(inp, a)
        nengo.Connection(a, direct)
        c = nengo.Connection(direct, b, function=lambda x: x + 1)
        nengo.Probe(b)
    (message,) = fit_warnings(net)
    assert f"the function of {c} (a Python function)" in message
    assert f"the encoders of {a}" in message


def test_triangle_synapse_blocks():
    def middle(a):
        n = nengo.Node(size_in=1, label="pass")
        nengo.Connection(a, n, synapse=nengo.synapses.Triangle(0.01))
        return n

    net, _ = chain(middle)
    (message,) = fit_warnings(net)
    assert "Triangle(t=0.01) on <Connection from <Ensemble 'a'>" in message
    assert "(a process without a TensorFlow form)" in message


def test_izhikevich_ensemble_blocks():
    def middle(a):
        izh = nengo.Ensemble(10, 1, neuron_type=nengo.Izhikevich(), label="izh",
                             gain=nengo.dists.Uniform(5, 15), bias=nengo.dists.Uniform(0, 5))
        nengo.Connection(a, izh)
        return izh

    net, _ = chain(middle)
    (message,) = fit_warnings(net)
    assert "<Ensemble 'izh'> (Izhikevich neurons (no rate equivalent))" in message
    assert "the encoders of <Ensemble 'a'>" in message
    # the Izhikevich ensemble's own encoders and bias feed its neurons: blocked too
    assert "the encoders of <Ensemble 'izh'>" in message


def test_a_differentiable_path_beside_the_block():
    def middle(a):
        f = python_node(a)
        n = nengo.Node(size_in=1, label="sum")
        nengo.Connection(f, n)
        nengo.Connection(a, n)
        return n

    net, probe = chain(middle)
    (message,) = fit_warnings(net)
    # only the weights into the Node stay untrained: a's own parameters
    # reach the probe through the connection beside the Node
    reported = message.split(": every path")[0]
    assert reported == "fit: no gradient reaches the weights of <Connection from " \
        "<Ensemble 'a'> to <Node 'f'>>"
    # Nengo's optimizer merges operators in the order of sets, differently
    # in each build (a's two decoder products: one stacked DotInc, or apart)
    for _ in range(6):
        with nengo_cuda.Simulator(net, progress_bar=False) as sim:
            _, reported, _ = reported_parameters(sim, [probe])
        assert [(what, str(obj)) for what, obj, _ in reported] == [
            ("weights", "<Connection from <Ensemble 'a'> to <Node 'f'>>")]


def test_parts_off_the_probed_path_are_not_reported():
    """A Python Node whose output reaches no probe blocks nothing, and a
    parameter with no path at all to the probes is not reported either."""
    with nengo.Network(seed=0) as net:
        inp = nengo.Node([0.5], label="inp")
        a = nengo.Ensemble(10, 1, label="a")
        b = nengo.Ensemble(10, 1, label="b")
        nengo.Connection(inp, a)
        nengo.Connection(a, b)
        nengo.Probe(b)
        nengo.Connection(a, python_node(nengo.Ensemble(10, 1, label="aside")))
    assert fit_warnings(net) == []


def test_tensor_node_weights_before_a_python_node():
    with nengo.Network(seed=0) as net:
        inp = nengo.Node([0.5], label="inp")
        dense = nengo_cuda.Layer(tf.keras.layers.Dense(2))(inp)
        f = nengo.Node(lambda t, x: x, size_in=2, label="f")
        nengo.Connection(dense, f, synapse=None)
        out = nengo.Node(size_in=2, label="out")
        nengo.Connection(f, out, synapse=None)
        nengo.Probe(out)
    (message,) = fit_warnings(net)
    assert message.startswith("fit: no gradient reaches the weights of <TensorNode")
    assert "<Node 'f'> (a Python function)" in message


def test_no_warning_without_host_parts_and_once_per_training_function():
    net, p = chain(python_node)
    with nengo_cuda.Simulator(net, progress_bar=False) as sim:
        sim.compile(optimizer=tf.keras.optimizers.SGD(0.0), loss="mse")
        data = ({net.nodes[0]: np.ones((2, 3, 1))}, {p: np.ones((2, 3, 1))})
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            sim.fit(*data, epochs=1, verbose=0)
            sim.fit(*data, epochs=1, verbose=0)
    assert sum("no gradient reaches" in str(w.message) for w in caught) == 1
    net, _, _, outpt, _, _ = tutorial_net()
    assert fit_warnings(net, probe=training_version(net, outpt)) == []


# -- the fuzz test: what is reported gets no gradient -------------------------
def parameter_gradient(graph, sig, grads):
    """The gradient of ``sig``'s elements (a trainable parameter)."""
    idx = graph._idx(sig).idx
    if sig.base in graph.variables:
        var = graph.variables[sig.base][0]
        return np.asarray(grads[id(var)]).ravel()[idx]
    var, offsets = graph.state_parameters[sig.base]
    return np.asarray(grads[id(var)]).ravel()[np.searchsorted(offsets, idx)]


def reported_parameters(sim, probes):
    graph = sim._trainer().graph
    trained = {id(s) for s in graph.trained_signals}
    params = {f"{what} {obj}": (what, obj, sig) for what, obj, sig in
              trainable_parameters(sim, trainable_objects(sim.model.toplevel))
              if id(sig) in trained}
    keys, ops = gradient_paths.GradientPaths(graph).blocked(
        {k: [sig] for k, (_, _, sig) in params.items()},
        [sim.model.sig[p]["in"] for p in probes])
    return graph, [params[k] for k in keys], ops


@fuzz_settings(EXAMPLES)
@given(cases())
def test_fuzz_reported_parameters_get_no_gradient(spec):
    net, probes = probed_network(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            sim = simulator(net, spec)
        except (nengo.exceptions.NengoException, ValueError, IndexError):
            reject()
        with sim:
            graph, reported, ops = reported_parameters(sim, probes)
            if not reported:
                reject()
            assert ops, "a parameter is reported, but no host part that blocks it"
            steps = min(sum(spec["steps"]), 6)
            rng = np.random.RandomState(0)
            inputs = {n: tf.constant(rng.uniform(-1, 1, (sim.n_trials, steps, n.size_out)))
                      for n in sim._input_nodes}
            variables = graph.trainable_variables
            with tf.GradientTape() as tape:
                outs = graph(inputs, steps, probes)
                total = tf.add_n([tf.reduce_sum(o) for o in outs.values()])
            grads = {id(v): (np.zeros(v.shape) if g is None else g.numpy())
                     for v, g in zip(variables, tape.gradient(total, variables))}
    for what, obj, sig in reported:
        g = parameter_gradient(graph, sig, grads)
        assert np.all(g == 0), f"the {what} of {obj} were reported but get a gradient {g}"


def test_check_gradients_names_the_host_parts_behind_a_mismatch():
    """A parameter with one path through a Python Node and one beside it: the
    gradient misses the first, and the mismatch says why."""
    with nengo.Network(seed=0) as net:
        inp = nengo.Node([0.5], label="inp")
        a = nengo.Ensemble(10, 1, label="a", neuron_type=nengo.RectifiedLinear())
        f = nengo.Node(lambda t, x: x ** 2, size_in=1, label="f")
        b = nengo.Ensemble(10, 1, label="b", neuron_type=nengo.RectifiedLinear())
        for pre, post in [(inp, a), (a, f), (f, b), (a, b)]:
            nengo.Connection(pre, post, synapse=None)
        nengo.Probe(b)
    with nengo_cuda.Simulator(net, dtype="float64", progress_bar=False) as sim:
        with pytest.raises(nengo.exceptions.SimulationError,
                           match=r"gradient mismatch .*between it and the outputs lie parts "
                                 r"that TensorFlow does not differentiate \(as in NengoDL\): "
                                 r"<Node 'f'> \(a Python function\)"):
            sim.check_gradients(n_steps=2)


class OwnRate(nengo.LIFRate):
    """A rate type of a user's, with its own step (no kernel: it runs on the host)."""

    def step(self, dt, J, output):
        output[...] = np.maximum(J, 0)


@pytest.mark.parametrize("minibatch_size", [None, 3])
def test_check_gradients_through_stateless_host_neurons(minibatch_size):
    """Neurons that run their own step on the host in the training graph
    (stateless: one output, which eager TensorFlow gives unlisted): the
    check runs at any minibatch size, and names them behind the mismatch."""
    with nengo.Network(seed=0) as net:
        inp = nengo.Node([0.5], label="inp")
        a = nengo.Ensemble(10, 1, label="a", neuron_type=OwnRate())
        nengo.Connection(inp, a, synapse=None)
        nengo.Probe(a)
    with nengo_cuda.Simulator(net, dtype="float64", progress_bar=False,
                              minibatch_size=minibatch_size) as sim:
        with pytest.raises(nengo.exceptions.SimulationError,
                           match=r"gradient mismatch .*TensorFlow does not differentiate"):
            sim.check_gradients(n_steps=2)
