"""benchmarks/floors.py memory_traffic: the bytes of the GPU floor (docs/cuda.md)."""

import sys
from pathlib import Path

import nengo
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from floors import memory_traffic  # noqa: E402


def built(net):
    model = nengo.builder.Model(dt=0.001)
    model.build(net)
    return model


def two_ensembles(learning=False):
    with nengo.Network(seed=0) as net:
        a = nengo.Ensemble(10, 2)
        b = nengo.Ensemble(7, 2)
        conn = nengo.Connection(a, b, synapse=nengo.Lowpass(0.005))
        if learning:
            conn.learning_rule_type = nengo.PES()
    return net


@pytest.mark.parametrize("minibatch, itemsize", [(1, 8), (64, 4)])
def test_counts_state_per_trial_and_constants_once(minibatch, itemsize):
    state, constants = memory_traffic(built(two_ensembles()), minibatch, itemsize)
    # LIF voltage + refractory time of 10 + 7 neurons; the Lowpass: 2 states, 2 outputs
    assert state == 2 * minibatch * itemsize * (2 * 10 + 2 * 7 + 2 + 2)
    # biases 10 + 7, scaled encoders 10x2 + 7x2, decoders 2x10
    assert constants == itemsize * (10 + 7 + 20 + 14 + 20)


def test_learned_weights_are_state():
    plain_state, plain_constants = memory_traffic(built(two_ensembles()), 3, 4)
    state, constants = memory_traffic(built(two_ensembles(learning=True)), 3, 4)
    assert constants == plain_constants - 4 * 20  # the 2x10 decoders left the constants
    # ... and joined the state (with PES's filter of the presynaptic activities)
    assert state >= plain_state + 2 * 3 * 4 * 20
