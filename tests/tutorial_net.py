"""The network of NengoDL's "from Nengo" tutorial (copied here: tests do not
read outside the repository)."""

import numpy as np
import nengo


def tutorial_net(seed=0):
    with nengo.Network(seed=seed) as net:
        inpt = nengo.Node(nengo.processes.WhiteSignal(1, 5, rms=0.3))
        square = nengo.Ensemble(20, 1)
        sin = nengo.Ensemble(20, 1)
        outpt = nengo.Node(size_in=1)
        nengo.Connection(inpt, square)
        nengo.Connection(square, sin, function=np.square)
        nengo.Connection(sin, outpt, function=np.sin)
        inpt_p = nengo.Probe(inpt)
        outpt_p = nengo.Probe(outpt, synapse=0.01)
    return net, inpt, sin, outpt, inpt_p, outpt_p


def training_version(net, outpt):
    """The tutorial's changes before training: no synapses, an unfiltered probe."""
    for conn in net.all_connections:
        conn.synapse = None
    with net:
        outpt_p_nofilt = nengo.Probe(outpt)
    return outpt_p_nofilt
