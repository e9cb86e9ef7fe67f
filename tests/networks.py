"""Small reference networks used by the tests (each returns (network, probes))."""

import nengo
import numpy as np

from tutorial_net import tutorial_net


def tutorial(seed=0):
    """The NengoDL tutorial network: x -> x^2 -> sin(x^2)."""
    net, inpt, _, _, inpt_p, outpt_p = tutorial_net(seed)
    net.inpt = inpt
    return net, [inpt_p, outpt_p]


def integrator(seed=1, dims=2, n_neurons=100):
    """An EnsembleArray integrating a step input through a recurrent connection."""
    tau = 0.1
    with nengo.Network(seed=seed) as net:
        stim = nengo.Node(lambda t: [0.8 if t < 0.3 else 0.0] * dims)
        ea = nengo.networks.EnsembleArray(n_neurons, dims)
        nengo.Connection(stim, ea.input, transform=tau, synapse=tau)
        nengo.Connection(ea.output, ea.input, synapse=tau)
        probes = [nengo.Probe(ea.output, synapse=0.01)]
    return net, probes


def oscillator(seed=2):
    """A 2-D oscillator kicked by a brief input."""
    tau, freq = 0.1, 5.0
    with nengo.Network(seed=seed) as net:
        kick = nengo.Node(lambda t: [1, 0] if t < 0.05 else [0, 0])
        osc = nengo.Ensemble(200, 2)
        nengo.Connection(kick, osc)
        w = 2 * np.pi * freq
        nengo.Connection(osc, osc, transform=[[1, -w * tau], [w * tau, 1]], synapse=tau)
        probes = [nengo.Probe(osc, synapse=0.02), nengo.Probe(osc.neurons)]
    return net, probes


def slices(seed=3):
    """Slices, fancy and repeated indices, neuron-to-neuron and sparse transforms."""
    with nengo.Network(seed=seed) as net:
        u = nengo.Node([0.3, -0.5, 0.7])
        a = nengo.Ensemble(60, 3, neuron_type=nengo.LIFRate())
        b = nengo.Ensemble(50, 2)
        c = nengo.Node(size_in=4)
        nengo.Connection(u[[0, 2]], a[[1, 0]])
        nengo.Connection(u[1], a[2], transform=-1.0)
        nengo.Connection(a[:2], b, function=lambda x: x**2)
        nengo.Connection(b[[0, 0, 1]], c[[3, 1, 3]])  # repeated indices accumulate
        nengo.Connection(
            a.neurons,
            b.neurons,
            transform=nengo.transforms.Sparse(
                (50, 60), indices=[[0, 1], [3, 7], [49, 59]], init=[0.1, -0.2, 0.05]
            ),
        )
        probes = [nengo.Probe(c, synapse=0.01), nengo.Probe(b.neurons, "voltage")]
    return net, probes


def convolution(seed=4):
    """Convolution transforms as in a converted Keras CNN: a strided, grouped 2-D
    convolution, a 1-D channels-first one, and a transposed convolution."""
    with nengo.Network(seed=seed) as net:
        image = nengo.Node(lambda t: np.sin(3 * t * np.arange(5 * 6 * 2) + 0.5))
        conv = nengo.Convolution(
            4, (5, 6, 2), kernel_size=(3, 3), strides=(2, 1), padding="same", groups=2
        )
        a = nengo.Ensemble(conv.size_out, 1, neuron_type=nengo.LIFRate(amplitude=0.01))
        nengo.Connection(image, a.neurons, transform=conv)
        up = nengo.transforms.ConvolutionTranspose(
            3, conv.output_shape.shape, output_shape=(5, 6, 3), strides=(2, 1), padding="same"
        )
        b = nengo.Ensemble(up.size_out, 1, neuron_type=nengo.LIF(amplitude=0.01))
        nengo.Connection(a.neurons, b.neurons, transform=up, synapse=0.005)
        conv1d = nengo.Convolution(
            2, (4, 18), kernel_size=(4,), strides=(3,), padding="valid", channels_last=False
        )
        out = nengo.Node(size_in=conv1d.size_out)
        nengo.Connection(a.neurons, out, transform=conv1d)
        probes = [nengo.Probe(out, synapse=0.01), nengo.Probe(b.neurons)]
    return net, probes


def mixed_network():
    """LIF and other neuron types, PES learning, white noise (a per-trial
    table), a 2nd-order synapse (state space), sparse and dense transforms,
    an input node fed with data, probes with sample_every."""
    with nengo.Network(seed=3) as net:
        stim = nengo.Node(np.zeros(2))
        noise = nengo.Node(nengo.processes.WhiteNoise(scale=False), size_out=2)
        a = nengo.Ensemble(60, 2)
        b = nengo.Ensemble(40, 2, neuron_type=nengo.AdaptiveLIF())
        c = nengo.Ensemble(30, 1, neuron_type=nengo.SpikingRectifiedLinear())
        nengo.Connection(stim, a)
        nengo.Connection(noise, a, transform=0.3)
        conn = nengo.Connection(a, b, synapse=nengo.synapses.Alpha(0.01),
                                learning_rule_type=nengo.PES(learning_rate=1e-4))
        err = nengo.Node(size_in=2)
        nengo.Connection(b, err)
        nengo.Connection(stim, err, transform=-1)
        nengo.Connection(err, conn.learning_rule)
        nengo.Connection(b[0], c, synapse=nengo.LinearFilter([1], [0.005**2, 0.01, 1]))
        nengo.Connection(a.neurons, c.neurons,
                         transform=nengo.transforms.Sparse((30, 60), indices=[[0, 1], [5, 7]],
                                                           init=[0.1, -0.2]))
        probes = [nengo.Probe(b, synapse=0.01), nengo.Probe(c.neurons, sample_every=0.003),
                  nengo.Probe(conn, "weights", sample_every=0.01)]
    return net, stim, probes


NETWORKS = {
    "tutorial": tutorial,
    "integrator": integrator,
    "oscillator": oscillator,
    "slices": slices,
    "convolution": convolution,
}
