"""Benchmark networks, built by name with size parameters.

Each builder returns a `BenchNetwork`: the `nengo.Network` and the probe whose
data is compared between simulators.  Builders register themselves in
`NETWORKS` with `register`, so adding a network is adding one function::

    @register("integrator")
    def integrator(n_neurons=100, dimensions=1, seed=0):
        with nengo.Network(seed=seed) as net:
            ...
        return BenchNetwork("integrator", net, probe, dict(n_neurons=..., ...))

The standard networks: the NengoDL tutorial network, an integrator
(EnsembleArray with a recurrent connection), circular convolution, basal
ganglia, a random network, PES learning, a chain of ensembles and a spiking
convolutional network (as converted from a Keras CNN).  `SIZES`
gives each a small and a large size.

`build(name, **params)` builds one by name; `BenchNetwork.label` names it in tables.
"""

from dataclasses import dataclass, field

import numpy as np
import nengo

NETWORKS = {}


@dataclass
class BenchNetwork:
    """A network to benchmark, and the probe compared between simulators."""

    name: str
    net: nengo.Network
    probe: nengo.Probe
    params: dict = field(default_factory=dict)

    @property
    def label(self):
        """``name`` and its sizes in the builder's order, e.g. ``chain 50x500x16``."""
        if not self.params:
            return self.name
        return f"{self.name} " + "x".join(str(v) for v in self.params.values())


def register(name):
    """Decorator: makes a builder available as ``build(name, ...)``."""

    def decorator(builder):
        NETWORKS[name] = builder
        return builder

    return decorator


def build(name, **params):
    """Builds the network registered as ``name`` with the given size parameters."""
    try:
        builder = NETWORKS[name]
    except KeyError:
        raise ValueError(f"unknown network {name!r}; known: {sorted(NETWORKS)}") from None
    return builder(**params)


@register("tutorial")
def tutorial(n_neurons=20, seed=0):
    """The NengoDL tutorial network: white noise -> square -> sin -> output Node."""
    with nengo.Network(seed=seed) as net:
        inpt = nengo.Node(nengo.processes.WhiteSignal(1, 5, rms=0.3))
        square = nengo.Ensemble(n_neurons, 1)
        sin = nengo.Ensemble(n_neurons, 1)
        outpt = nengo.Node(size_in=1)
        nengo.Connection(inpt, square)
        nengo.Connection(square, sin, function=np.square)
        nengo.Connection(sin, outpt, function=np.sin)
        nengo.Probe(inpt)
        outpt_p = nengo.Probe(outpt, synapse=0.01)
    params = {} if n_neurons == 20 else dict(n_neurons=n_neurons)
    return BenchNetwork("tutorial", net, outpt_p, params)


def _white_input(dimensions):
    return nengo.Node(nengo.processes.WhiteSignal(1.0, high=5, rms=0.3), size_out=dimensions)


@register("integrator")
def integrator(n_neurons=50, dimensions=8, seed=0):
    """An EnsembleArray of ``dimensions`` 1-D ensembles integrating its input.

    The recurrent connection (transform 1, synapse tau) and the input
    connection (transform tau) make each ensemble a leaky-free integrator.
    """
    tau = 0.1
    with nengo.Network(seed=seed) as net:
        inpt = _white_input(dimensions)
        ea = nengo.networks.EnsembleArray(n_neurons, n_ensembles=dimensions)
        nengo.Connection(inpt, ea.input, transform=tau, synapse=tau)
        nengo.Connection(ea.output, ea.input, synapse=tau)
        probe = nengo.Probe(ea.output, synapse=0.01)
    return BenchNetwork("integrator", net, probe, dict(n_neurons=n_neurons, dimensions=dimensions))


@register("circconv")
def circconv(n_neurons=100, dimensions=8, seed=0):
    """nengo.networks.CircularConvolution of two white-noise vectors."""
    with nengo.Network(seed=seed) as net:
        a = _white_input(dimensions)
        b = _white_input(dimensions)
        cconv = nengo.networks.CircularConvolution(n_neurons, dimensions)
        nengo.Connection(a, cconv.input_a)
        nengo.Connection(b, cconv.input_b)
        probe = nengo.Probe(cconv.output, synapse=0.01)
    return BenchNetwork("circconv", net, probe, dict(n_neurons=n_neurons, dimensions=dimensions))


@register("basal_ganglia")
def basal_ganglia(n_neurons=100, dimensions=4, seed=0):
    """nengo.networks.BasalGanglia choosing among ``dimensions`` utilities."""
    with nengo.Network(seed=seed) as net:
        inpt = nengo.Node(
            nengo.processes.WhiteSignal(1.0, high=5, rms=0.3, y0=0.5), size_out=dimensions
        )
        bg = nengo.networks.BasalGanglia(dimensions, n_neurons_per_ensemble=n_neurons)
        nengo.Connection(inpt, bg.input)
        probe = nengo.Probe(bg.output, synapse=0.01)
    params = dict(n_neurons=n_neurons, dimensions=dimensions)
    return BenchNetwork("basal_ganglia", net, probe, params)


@register("random")
def random_network(n_ensembles=20, connections=3, n_neurons=50, dimensions=2, seed=0):
    """``n_ensembles`` ensembles, each sending ``connections`` decoded connections
    with random transforms to randomly chosen other ensembles.

    An input Node drives the first ensemble; the last ensemble is probed.
    """
    rng = np.random.RandomState(seed)
    with nengo.Network(seed=seed) as net:
        inpt = _white_input(dimensions)
        ens = [nengo.Ensemble(n_neurons, dimensions) for _ in range(n_ensembles)]
        nengo.Connection(inpt, ens[0])
        for i, pre in enumerate(ens):
            others = [j for j in range(n_ensembles) if j != i]
            for j in rng.choice(others, size=min(connections, len(others)), replace=False):
                transform = rng.uniform(-1, 1, size=(dimensions, dimensions)) / connections
                nengo.Connection(pre, ens[j], transform=transform)
        probe = nengo.Probe(ens[-1], synapse=0.01)
    params = dict(n_ensembles=n_ensembles, connections=connections, n_neurons=n_neurons,
                  dimensions=dimensions)
    return BenchNetwork("random", net, probe, params)


@register("pes")
def pes(n_neurons=100, dimensions=1, seed=0):
    """PES learning of a communication channel: pre -> post, error = post - input."""
    with nengo.Network(seed=seed) as net:
        inpt = _white_input(dimensions)
        pre = nengo.Ensemble(n_neurons, dimensions)
        post = nengo.Ensemble(n_neurons, dimensions)
        error = nengo.Ensemble(n_neurons, dimensions)
        nengo.Connection(inpt, pre)
        conn = nengo.Connection(
            pre, post, function=lambda x: np.zeros(dimensions),
            learning_rule_type=nengo.PES(learning_rate=1e-4),
        )
        nengo.Connection(post, error)
        nengo.Connection(inpt, error, transform=-1)
        nengo.Connection(error, conn.learning_rule)
        probe = nengo.Probe(post, synapse=0.01)
    return BenchNetwork("pes", net, probe, dict(n_neurons=n_neurons, dimensions=dimensions))


@register("chain")
def chain(n_ensembles=50, n_neurons=500, dimensions=16, seed=0):
    """A feed-forward chain: input Node -> ens[0] -> ens[1] -> ... -> ens[N-1].

    Every ensemble has ``n_neurons`` LIF neurons representing ``dimensions``
    dimensions; every connection is a decoded communication channel with
    Nengo's default synapse.  The last ensemble is probed.
    """
    with nengo.Network(seed=seed) as net:
        inpt = _white_input(dimensions)
        ensembles = [
            nengo.Ensemble(n_neurons, dimensions, neuron_type=nengo.LIF())
            for _ in range(n_ensembles)
        ]
        nengo.Connection(inpt, ensembles[0])
        for pre, post in zip(ensembles, ensembles[1:]):
            nengo.Connection(pre, post)
        probe = nengo.Probe(ensembles[-1], synapse=0.01)
    params = dict(n_ensembles=n_ensembles, n_neurons=n_neurons, dimensions=dimensions)
    return BenchNetwork("chain", net, probe, params)



@register("convnet")
def convnet(size=28, filters=32, seed=0):
    """A spiking convolutional network for ``size`` x ``size`` images: conv 3x3
    (``filters``) -> LIF -> conv 3x3 stride 2 (2 ``filters``) -> LIF -> dense 10,
    the layout of NengoDL's spiking-MNIST example; random images, 20 steps each."""
    rng = np.random.RandomState(seed)
    with nengo.Network(seed=seed) as net:
        images = rng.uniform(0, 1, (5, size * size))
        inpt = nengo.Node(nengo.processes.PresentInput(images, presentation_time=0.02))
        conv1 = nengo.Convolution(filters, (size, size, 1), kernel_size=(3, 3))
        layer1 = nengo.Ensemble(conv1.size_out, 1, neuron_type=nengo.LIF(amplitude=0.01))
        nengo.Connection(inpt, layer1.neurons, transform=conv1)
        conv2 = nengo.Convolution(2 * filters, conv1.output_shape.shape, strides=(2, 2))
        layer2 = nengo.Ensemble(conv2.size_out, 1, neuron_type=nengo.LIF(amplitude=0.01))
        nengo.Connection(layer1.neurons, layer2.neurons, transform=conv2, synapse=0.005)
        out = nengo.Node(size_in=10)
        dense = rng.uniform(-1, 1, (10, conv2.size_out)) / np.sqrt(conv2.size_out)
        nengo.Connection(layer2.neurons, out, transform=dense, synapse=0.005)
        probe = nengo.Probe(out, synapse=0.01)
    return BenchNetwork("convnet", net, probe, dict(size=size, filters=filters))

# Each standard network at a small and a large size: name -> {size: params}.
SIZES = {
    "tutorial": {"small": {}, "large": dict(n_neurons=1000)},
    "integrator": {"small": dict(n_neurons=50, dimensions=8),
                   "large": dict(n_neurons=100, dimensions=64)},
    "circconv": {"small": dict(n_neurons=100, dimensions=8),
                 "large": dict(n_neurons=100, dimensions=32)},
    "basal_ganglia": {"small": dict(n_neurons=100, dimensions=4),
                      "large": dict(n_neurons=100, dimensions=32)},
    "random": {"small": dict(n_ensembles=20, connections=3),
               "large": dict(n_ensembles=50, connections=5)},
    "pes": {"small": dict(n_neurons=100, dimensions=1),
            "large": dict(n_neurons=1000, dimensions=16)},
    "chain": {"small": dict(n_ensembles=10, n_neurons=100, dimensions=8),
              "large": dict(n_ensembles=50, n_neurons=500, dimensions=16)},
    "convnet": {"small": dict(size=12, filters=8), "large": dict(size=28, filters=32)},
}


def n_neurons(net):
    """Number of neurons in ``net`` (all ensembles, nested networks included)."""
    return sum(ens.n_neurons for ens in net.all_ensembles)


def parse_params(items):
    """Size parameters from the command line: ``["n_neurons=500", ...]`` -> dict."""
    params = {}
    for item in items:
        key, _, value = item.partition("=")
        params[key] = int(value) if value.lstrip("-").isdigit() else float(value)
    return params
