"""Training through convolution transforms (ConvInc and ConvTransposeInc), as in
NengoDL's spiking-MNIST example: the forward pass against Nengo's rate network,
gradients against central differences, trained kernels in sim.data."""

import nengo
import numpy as np
import pytest

import nengo_cuda

tf = pytest.importorskip("tensorflow")

SHAPE = (5, 6, 2)


def _conv_net(rate, feed=None, seed=3):
    """Image -> grouped strided conv -> neurons -> transposed conv -> neurons, and
    a 1-D channels-first conv to an output Node."""
    with nengo.Network(seed=seed) as net:
        image = nengo.Node(np.zeros(np.prod(SHAPE)) if feed is None else
                           nengo.processes.PresentInput(feed, presentation_time=0.001))
        conv = nengo.Convolution(4, SHAPE, strides=(2, 1), padding="same", groups=2)
        a = nengo.Ensemble(conv.size_out, 1, neuron_type=nengo.LIFRate() if rate else nengo.LIF())
        c1 = nengo.Connection(image, a.neurons, transform=conv, synapse=None)
        up = nengo.transforms.ConvolutionTranspose(
            3, conv.output_shape.shape, output_shape=(5, 6, 3), strides=(2, 1), padding="same")
        b = nengo.Ensemble(up.size_out, 1, neuron_type=nengo.RectifiedLinear(amplitude=0.01))
        c2 = nengo.Connection(a.neurons, b.neurons, transform=up, synapse=0.005)
        conv1d = nengo.Convolution(2, (4, 18), kernel_size=(4,), strides=(3,),
                                   channels_last=False, init=nengo.dists.Uniform(-0.01, 0.01))
        out = nengo.Node(size_in=conv1d.size_out)
        c3 = nengo.Connection(a.neurons, out, transform=conv1d, synapse=0.002)
        probes = [nengo.Probe(out), nengo.Probe(b.neurons, synapse=0.01)]
    return net, image, probes, [c1, c2, c3]


def test_conv_forward_equals_nengo_rate_network():
    steps, mb = 20, 2
    feed = np.random.RandomState(2).uniform(-1, 1, (mb, steps, np.prod(SHAPE)))
    net, image, probes, _ = _conv_net(rate=False)
    with nengo_cuda.Simulator(net, dtype="float64", minibatch_size=mb, progress_bar=False) as sim:
        ops = {type(op).__name__ for op in sim.step_order}
        assert {"ConvInc", "ConvTransposeInc"} <= ops
        outs = sim._trainer().forward({image: feed}, steps, probes)
    for i in range(mb):
        ref_net, _, ref_probes, _ = _conv_net(rate=True, feed=feed[i])
        with nengo.Simulator(ref_net, progress_bar=False) as ref:
            ref.run_steps(steps)
        for p, rp in zip(probes, ref_probes):
            expected = ref.data[rp]
            assert np.abs(expected).max() > 0.01  # the comparison means something
            np.testing.assert_allclose(outs[p][i], expected, rtol=0,
                                       atol=1e-12 * np.abs(expected).max(), err_msg=str(p))


def test_conv_kernel_gradients():
    """Each conv kernel gets the gradient central differences give."""
    from nengo_cuda.training.gradient_check import central_difference

    net, image, probes, conns = _conv_net(rate=True)
    x = tf.constant(np.random.RandomState(0).uniform(-1, 1, (2, 4, np.prod(SHAPE))))
    with nengo_cuda.Simulator(net, dtype="float64", minibatch_size=2, progress_bar=False) as sim:
        graph = sim._trainer().graph
        kernels = [graph.variables[sim.model.sig[c]["weights"].base][0] for c in conns]
        assert [k.shape.num_elements() for k in kernels] == [
            np.prod(c.transform.kernel_shape) for c in conns]

        def loss():
            outs = graph({image: x}, 4, probes)
            return tf.reduce_sum(outs[probes[0]] ** 2) + tf.reduce_sum(outs[probes[1]] ** 2)

        with tf.GradientTape() as tape:
            value = loss()
        grads = tape.gradient(value, kernels)
        f = tf.function(loss, autograph=False)
        for var, grad in zip(kernels, grads):
            i = int(np.argmax(np.abs(grad.numpy())))
            assert grad.numpy().flat[i] != 0
            np.testing.assert_allclose(grad.numpy().flat[i], central_difference(f, var, i, 1e-6),
                                       rtol=1e-5)


def test_fit_trains_conv_kernels():
    """fit lowers the loss by training the kernels; the trained kernels are in
    sim.data and get_nengo_params, and a plain Nengo network built from them
    reproduces the trained simulator."""
    rng = np.random.RandomState(4)
    n, steps = 8, 3
    x = rng.uniform(-1, 1, (n, steps, np.prod(SHAPE)))
    net, image, probes, conns = _conv_net(rate=True)
    teacher, t_image, t_probes, _ = _conv_net(rate=True, seed=5)  # other kernels
    with nengo_cuda.Simulator(teacher, dtype="float64", minibatch_size=n,
                              progress_bar=False) as sim:
        targets = sim.predict({t_image: x})
    y = {p: targets[tp] for p, tp in zip(probes, t_probes)}
    with nengo_cuda.Simulator(net, dtype="float64", minibatch_size=n, progress_bar=False) as sim:
        sim.compile(optimizer=tf.optimizers.Adam(0.02), loss=tf.losses.mse)
        before = sim.evaluate({image: x}, y)["loss"]
        sim.fit({image: x}, y, epochs=100)
        after = sim.evaluate({image: x}, y)["loss"]
        trained = sim.predict({image: x})[probes[0]]
        data = [sim.data[c] for c in conns]
        params = sim.get_nengo_params(conns)
        ensembles = [sim.data[c.post_obj.ensemble] for c in conns[:2]]  # trained biases
    assert after < 0.5 * before  # (the gradients themselves are checked above)
    for c, d, prm in zip(conns, data, params):  # every kernel feeds a loss: all trained
        assert d.weights.shape == c.transform.kernel_shape
        assert type(d.transform) is type(c.transform)
        np.testing.assert_array_equal(d.transform.init, d.weights)
        np.testing.assert_array_equal(prm["transform"].init, d.weights)
    # the trained kernels in a plain Nengo network
    with nengo.Network(seed=3) as ref_net:
        image2 = nengo.Node(nengo.processes.PresentInput(x[1], presentation_time=0.001))
        a = nengo.Ensemble(conns[0].post_obj.ensemble.n_neurons, 1, neuron_type=nengo.LIFRate())
        b = nengo.Ensemble(conns[1].post_obj.ensemble.n_neurons, 1,
                           neuron_type=nengo.RectifiedLinear(amplitude=0.01))
        out = nengo.Node(size_in=10)
        nengo.Connection(image2, a.neurons, synapse=None, **params[0])
        nengo.Connection(a.neurons, b.neurons, synapse=0.005, **params[1])
        nengo.Connection(a.neurons, out, synapse=0.002, **params[2])
        p = nengo.Probe(out)
    for ens, built in zip((a, b), ensembles):
        ens.gain, ens.bias = built.gain, built.bias
    with nengo.Simulator(ref_net, progress_bar=False) as ref:
        ref.run_steps(steps)
    np.testing.assert_allclose(trained[1], ref.data[p], atol=1e-10)

