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


def _kernel_gradients(sim, conns, feeds, steps, probes, powers):
    """The kernels' variables of ``conns``, the gradients of the loss
    ``sum_j sum(probes[j] ** powers[j])`` over ``steps`` steps, and the loss as
    a traced function (for central differences)."""
    graph = sim._trainer().graph
    kernels = [graph.variables[sim.model.sig[c]["weights"].base][0] for c in conns]

    def loss():
        outs = graph(feeds, steps, probes)
        return tf.add_n([tf.reduce_sum(outs[p] ** k) for p, k in zip(probes, powers)])

    with tf.GradientTape() as tape:
        value = loss()
    return kernels, tape.gradient(value, kernels), tf.function(loss, autograph=False)


def test_conv_kernel_gradients():
    """Each conv kernel gets the gradient central differences give."""
    from nengo_cuda.training.gradient_check import central_difference

    net, image, probes, conns = _conv_net(rate=True)
    x = tf.constant(np.random.RandomState(0).uniform(-1, 1, (2, 4, np.prod(SHAPE))))
    with nengo_cuda.Simulator(net, dtype="float64", minibatch_size=2, progress_bar=False) as sim:
        kernels, grads, f = _kernel_gradients(sim, conns, {image: x}, 4, probes, (2, 2))
        assert [k.shape.num_elements() for k in kernels] == [
            np.prod(c.transform.kernel_shape) for c in conns]
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



# -- 3-D convolutions: Nengo's step runs none, so the oracle is their definition --
SHAPE_3D = (4, 3, 5, 2)


def _conv3d_net():
    """Image -> grouped "same" 3-D convolution -> Node -> channels-first
    transposed 3-D convolution -> Node.  On one axis of each a stride exceeds
    the kernel, so that "same" pads by a negative total before its max with 0
    (-2: TensorFlow's CPU 3-D convolution gets this wrong, see graph.py)."""
    with nengo.Network(seed=2) as net:
        image = nengo.Node(np.zeros(np.prod(SHAPE_3D)))
        down = nengo.Convolution(4, SHAPE_3D, kernel_size=(2, 1, 3), strides=(1, 3, 2),
                                 padding="same", groups=2)
        mid = nengo.Node(size_in=down.size_out)
        # mid's values seen as (channels, depth, height, width)
        up = nengo.transforms.ConvolutionTranspose(
            3, (4,) + down.output_shape.spatial_shape, kernel_size=(1, 2, 2),
            strides=(3, 1, 2), padding="same", channels_last=False)
        out = nengo.Node(size_in=up.size_out)
        conns = [nengo.Connection(image, mid, transform=down, synapse=None),
                 nengo.Connection(mid, out, transform=up, synapse=None)]
        probes = [nengo.Probe(mid), nengo.Probe(out)]
    return net, image, probes, conns


def _conv3d_expected(conns, kernels, x):
    """The probes' values by the definition of the convolutions, per trial and step."""
    from test_kernels_conv import definition_increment  # noqa: PLC0415

    mid = np.array([[definition_increment(conns[0].transform, kernels[0], xs) for xs in xt]
                    for xt in x])
    out = np.array([[definition_increment(conns[1].transform, kernels[1], m) for m in mt]
                    for mt in mid])
    return [mid, out]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_conv3d_runs_and_trains_forward(dtype):
    """``Simulator.run`` (the native conv_inc) and the training graph
    (TensorFlow's 3-D convolutions) both compute the definition."""
    steps, mb = 3, 2
    x = np.random.RandomState(1).uniform(-1, 1, (mb, steps, np.prod(SHAPE_3D)))
    net, image, probes, conns = _conv3d_net()
    with nengo_cuda.Simulator(net, dtype=dtype, minibatch_size=mb, progress_bar=False) as sim:
        kernels = [sim.data[c].weights for c in conns]
        sim.run_steps(steps, data={image: x})
        ran = [sim.data[p] for p in probes]
        trained = sim._trainer().forward({image: x}, steps, probes)
    atol = 1e-12 if dtype == "float64" else 1e-5
    for p, got, expected in zip(probes, ran, _conv3d_expected(conns, kernels, x)):
        assert np.abs(expected).max() > 0.1  # the comparison means something
        np.testing.assert_allclose(got, expected, rtol=0, atol=atol, err_msg="run")
        np.testing.assert_allclose(trained[p], expected, rtol=0, atol=atol, err_msg="training")


def test_conv3d_kernel_gradients():
    """Each 3-D kernel gets the gradient central differences give."""
    from nengo_cuda.training.gradient_check import central_difference

    net, image, probes, conns = _conv3d_net()
    x = tf.constant(np.random.RandomState(0).uniform(-1, 1, (2, 2, np.prod(SHAPE_3D))))
    with nengo_cuda.Simulator(net, dtype="float64", minibatch_size=2, progress_bar=False) as sim:
        kernels, grads, f = _kernel_gradients(sim, conns, {image: x}, 2, probes, (2, 3))
        for var, grad in zip(kernels, grads):
            g = grad.numpy().ravel()
            for i in np.random.RandomState(3).choice(g.size, 5, replace=False):
                np.testing.assert_allclose(g[i], central_difference(f, var, i, 1e-6),
                                           rtol=1e-5, atol=1e-8)


def test_convolution_over_3d_is_refused():
    """TensorFlow, which trains convolutions, has none over 4 spatial axes:
    the simulator refuses them by name (as NengoDL), not in a step."""
    with nengo.Network() as net:
        a = nengo.Node(np.zeros(16))
        b = nengo.Node(size_in=1)
        conv = nengo.Convolution(1, (2, 2, 2, 2, 1), kernel_size=(2, 2, 2, 2),
                                 strides=(1, 1, 1, 1))
        nengo.Connection(a, b, transform=conv)
    with pytest.raises(NotImplementedError, match=r"Convolution\(n_filters=1.* has 4 spatial "
                                                  r"dimensions; at most 3"):
        nengo_cuda.Simulator(net, progress_bar=False)
