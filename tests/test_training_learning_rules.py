"""Online learning rules (PES, BCM, Oja, Voja, RLS) inside training, as NengoDL runs
them: the training graph's forward pass equals `nengo.Simulator` (rate neurons),
learned weights evolve as simulation state and are not optimised."""

import warnings

import nengo
import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

import nengo_cuda  # noqa: E402


def _net(rule, feed=None):
    with nengo.Network(seed=0) as net:
        inp = nengo.Node(np.zeros(1) if feed is None else
                         nengo.processes.PresentInput(feed, presentation_time=0.001))
        a = nengo.Ensemble(30, 1, neuron_type=nengo.LIFRate())
        b = nengo.Ensemble(20, 1, neuron_type=nengo.RectifiedLinear())
        nengo.Connection(inp, a, synapse=None)
        if rule in ("pes", "rls"):
            learning = nengo.PES(1e-3) if rule == "pes" else nengo.RLS(1e-2)
            conn = nengo.Connection(a, b, learning_rule_type=learning)
            nengo.Connection(b, conn.learning_rule, synapse=None)
            nengo.Connection(inp, conn.learning_rule, transform=-1, synapse=None)
        elif rule == "voja":
            conn = nengo.Connection(a, b, learning_rule_type=nengo.Voja(learning_rate=1e-2))
        else:
            learning = {"bcm": nengo.BCM(1e-9), "oja": nengo.Oja(1e-7)}[rule]
            conn = nengo.Connection(a.neurons, b.neurons, transform=np.full((20, 30), 2e-4),
                                    learning_rule_type=learning)
        learned = (nengo.Probe(conn.learning_rule, "scaled_encoders") if rule == "voja"
                   else nengo.Probe(conn, "weights"))
        probes = [nengo.Probe(b, synapse=0.01), nengo.Probe(b.neurons), learned]
    return net, inp, probes


@pytest.mark.parametrize("rule", ["pes", "bcm", "oja", "voja", "rls"])
def test_learning_rule_forward_equals_nengo(rule):
    steps, mb = 30, 3
    feed = np.random.RandomState(1).uniform(-1, 1, (mb, steps, 1))
    net, inp, probes = _net(rule)
    with nengo_cuda.Simulator(net, dtype="float64", minibatch_size=mb, progress_bar=False) as sim:
        outs = sim._trainer().forward({inp: feed}, steps, probes)
    for i in range(mb):
        ref_net, _, ref_probes = _net(rule, feed[i])
        with nengo.Simulator(ref_net, progress_bar=False) as ref:
            ref.run_steps(steps)
        learned = ref.data[ref_probes[2]]
        assert not np.allclose(learned[-1], learned[0])  # the rule changes its signal
        for p, rp in zip(probes, ref_probes):
            expected = ref.data[rp].reshape(steps, -1)
            scale = max(1.0, np.abs(expected).max())
            np.testing.assert_allclose(outs[p][i].reshape(steps, -1), expected, rtol=0,
                                       atol=1e-12 * scale, err_msg=f"{rule} {p}")


def test_fit_with_pes_trains_the_other_parameters():
    x = np.tile(np.linspace(-1, 1, 4)[:, None, None], (1, 20, 1))
    net, inp, probes = _net("pes")
    learned = net.connections[1]
    with nengo_cuda.Simulator(net, dtype="float64", minibatch_size=4, progress_bar=False) as sim:
        before = sim.data[learned].weights.copy()
        bias = sim.data[net.ensembles[0]].bias.copy()
        sim.compile(tf.optimizers.Adam(1e-3), loss={probes[0]: "mse"})
        history = sim.fit({inp: x}, {probes[0]: x}, epochs=3, verbose=0)
        assert np.all(np.isfinite(history.history["loss"]))
        # the learned weights are not optimised, but the rule learns (as NengoDL)
        assert not np.allclose(sim.data[learned].weights, before)
        assert not np.allclose(sim.data[net.ensembles[0]].bias, bias)


@pytest.mark.parametrize("rule, setting", [
    ("pes", None), ("pes", "object"), ("pes", "class"), ("voja", "object"), ("oja", "object")])
def test_learned_and_set_trainable_warns(rule, setting):
    """``trainable=True`` set (on the object or its class) where a learning
    rule changes the parameter: a warning when the simulator builds, as
    NengoDL's; the rule alone changes it (NengoDL trains it with both), so
    the run equals one without the setting."""
    x = np.tile(np.linspace(-1, 1, 4)[:, None, None], (1, 10, 1))
    learned = {}
    for set_it in (False, True):
        net, inp, probes = _net(rule)
        conn = net.connections[1]
        target = net.ensembles[1] if rule == "voja" else conn
        with net:
            nengo_cuda.configure_settings(trainable=None)
        if set_it and setting == "object":
            net.config[target].trainable = True
        elif set_it and setting == "class":
            net.config[type(target)].trainable = True
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            sim = nengo_cuda.Simulator(net, dtype="float64", minibatch_size=4,
                                       progress_bar=False)  # (NengoDL: it warns when it builds)
        with sim:
            sim.compile(tf.optimizers.SGD(1e-3), loss={probes[0]: "mse"})
            sim.fit({inp: x}, {probes[0]: x}, epochs=2, verbose=0)
            said = [str(w.message) for w in caught if "has a learning rule" in str(w.message)]
            if set_it and setting is not None:
                what = "encoders" if rule == "voja" else "weights"
                assert said == [f"{target} has a learning rule and is also set to be trainable; "
                                f"its {what} are left to the learning rule (fit does not train "
                                f"them; NengoDL trains them with both)"]
            else:
                assert said == []
            signal = sim.model.sig[target]["encoders" if rule == "voja" else "weights"]
            learned[set_it] = np.stack([np.array(d[signal]) for d in sim.layout.signal_dicts])
    # (to rounding: TensorFlow's sums may go in another order from one fit to the next)
    np.testing.assert_allclose(learned[True], learned[False], rtol=1e-12, atol=1e-18)


def test_learned_and_set_trainable_warns_for_a_model_built_before():
    """``Simulator(None, model=m)``: the warning reads ``m.toplevel``, as NengoDL's."""
    net, _, _ = _net("pes")
    with net:
        nengo_cuda.configure_settings(trainable=None)
    net.config[net.connections[1]].trainable = True
    model = nengo.builder.Model(dt=0.001)
    model.build(net)
    with pytest.warns(UserWarning, match="has a learning rule and is also set to be trainable"):
        nengo_cuda.Simulator(None, model=model, progress_bar=False).close()


def _learned(sim):
    """Every learned signal's values in every trial, in build order."""
    return [np.stack([np.array(signals[sig]) for signals in sim.layout.signal_dicts])
            for sig in sim.learned.signals.values()]


@pytest.mark.parametrize("stateful", [False, True])
@pytest.mark.parametrize("how", ["fit", "predict in training mode"])
@pytest.mark.parametrize("rule", ["pes", "bcm", "oja", "voja", "rls"])
def test_training_carries_what_the_rule_learns(rule, how, stateful):
    """As NengoDL: what an online rule learns in one minibatch of fit (or of
    predict with learning_phase=True, through the training graph) is where the
    next starts (the other state starts over unless stateful), and the
    simulator keeps it; with a learning rate of 0 and rate neurons, these
    forward passes are the native runs of the same data one after the other."""
    steps, mb = 15, 2
    x = np.random.RandomState(2).uniform(-1, 1, (2 * mb, steps, 1))
    net, inp, probes = _net(rule)
    if how != "fit":
        with net:
            nengo_cuda.configure_settings(learning_phase=True)
    with nengo_cuda.Simulator(net, dtype="float64", minibatch_size=mb, progress_bar=False) as sim:
        if how == "fit":
            sim.compile(tf.optimizers.SGD(0.0), loss={probes[0]: "mse"})
            sim.fit({inp: x}, {probes[0]: np.zeros_like(x)}, shuffle=False, verbose=0,
                    stateful=stateful)
        else:
            sim.predict({inp: x}, stateful=stateful)
        trained = _learned(sim)
        assert sim.n_steps == (2 * steps if stateful else 0)
    net, inp, _ = _net(rule)  # (native runs, whatever the learning phase above)
    with nengo_cuda.Simulator(net, dtype="float64", minibatch_size=mb, progress_bar=False) as ref:
        built = _learned(ref)
        for i in range(2):
            ref.run_steps(steps, data={inp: x[i * mb: (i + 1) * mb]}, stateful=stateful)
        assert len(trained) == len(built) > 0
        for got, start, expected in zip(trained, built, _learned(ref)):
            assert not np.allclose(expected, start)
            scale = max(1.0, np.abs(expected).max())
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12 * scale)


def _block_sparse_learned_sim(net, attempts=10):
    """A minibatch-2 build of ``net`` in which Nengo's optimizer merged learned
    weights into a BsrDotInc.  Whether it does depends on the iteration order of
    sets of operators (about 2 builds in 3 here): a few builds make it certain."""
    for _ in range(attempts):
        sim = nengo_cuda.Simulator(net, dtype="float64", minibatch_size=2, progress_bar=False)
        if any(type(op).__name__ == "BsrDotInc" and not sim.layout.is_shared(op.A)
               for op in sim.step_order):
            return sim
        sim.close()
    raise AssertionError(f"no BsrDotInc with learned weights in {attempts} builds")


def test_learned_weights_in_block_sparse_dot():
    """Nengo's optimizer merges the decoders of equal-sized ensembles into one
    BsrDotInc; when a rule learns one of them, the blocks are simulation state
    (one per trial): the graph refused them ("minibatched block-sparse
    weights"), found by test_fuzz_training."""
    with nengo.Network(seed=0) as net:
        inp = nengo.Node([0.4])
        a = nengo.Ensemble(12, 1, neuron_type=nengo.RectifiedLinear())
        b = nengo.Ensemble(12, 1, neuron_type=nengo.RectifiedLinear())
        nengo.Connection(inp, b)
        conn = nengo.Connection(b, b, learning_rule_type=nengo.RLS(1e-3))
        nengo.Connection(a, conn.learning_rule)
        probes = [nengo.Probe(b, synapse=0.01), nengo.Probe(conn, "weights")]
    steps = 20
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(steps)
    with _block_sparse_learned_sim(net) as sim:
        outs = sim._trainer().forward(n_steps=steps, probes=probes)
    for p in probes:
        expected = ref.data[p].reshape(steps, -1)
        for trial in range(2):
            np.testing.assert_allclose(outs[p][trial], expected, rtol=1e-12, atol=1e-14,
                                       err_msg=f"{p} trial {trial}")
