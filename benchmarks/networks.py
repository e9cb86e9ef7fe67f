"""Benchmark networks, built by name with size parameters.

Each builder returns a `BenchNetwork`: the `nengo.Network` and the probe whose
data is compared between simulators.  Builders register themselves in
`NETWORKS` with `register`, so adding a network (integrator, circular
convolution, basal ganglia, random network, PES ...) is adding one function::

    @register("integrator")
    def integrator(n_neurons=100, dimensions=1, seed=0):
        with nengo.Network(seed=seed) as net:
            ...
        return BenchNetwork("integrator", net, probe, dict(n_neurons=..., ...))

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
def tutorial(seed=0):
    """The NengoDL tutorial network: white noise -> square -> sin -> output Node."""
    with nengo.Network(seed=seed) as net:
        inpt = nengo.Node(nengo.processes.WhiteSignal(1, 5, rms=0.3))
        square = nengo.Ensemble(20, 1)
        sin = nengo.Ensemble(20, 1)
        outpt = nengo.Node(size_in=1)
        nengo.Connection(inpt, square)
        nengo.Connection(square, sin, function=np.square)
        nengo.Connection(sin, outpt, function=np.sin)
        nengo.Probe(inpt)
        outpt_p = nengo.Probe(outpt, synapse=0.01)
    return BenchNetwork("tutorial", net, outpt_p)


@register("chain")
def chain(n_ensembles=50, n_neurons=500, dimensions=16, seed=0):
    """A feed-forward chain: input Node -> ens[0] -> ens[1] -> ... -> ens[N-1].

    Every ensemble has ``n_neurons`` LIF neurons representing ``dimensions``
    dimensions; every connection is a decoded communication channel with
    Nengo's default synapse.  The last ensemble is probed.
    """
    with nengo.Network(seed=seed) as net:
        inpt = nengo.Node(
            nengo.processes.WhiteSignal(1.0, high=5, rms=0.3), size_out=dimensions
        )
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
