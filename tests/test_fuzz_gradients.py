"""Differential fuzzer of the training graph's gradients against finite differences.

Each example is a random network spec (`test_fuzz_training.cases`), built by
``nengo_cuda.Simulator(dtype="float64")`` and checked by
``sim.check_gradients`` over up to 8 steps: every trainable variable's (and
input's) sampled elements, TensorFlow's gradient against central differences
within their own estimated error (`nengo_cuda.training.gradient_check`).
Every input Node gets random values, all probes are summed.

Online learning rules are in: the graph computes them with TensorFlow, and
gradients flow through the weights they change over the steps (those weights
are simulation state, not trained).  Specs are rejected where no gradient
flows by design, as in NengoDL (the check would report the missing part):
Python functions on the host (function Nodes, functions on connections from
Nodes, Direct ensembles), neuron types stepped on the host (Izhikevich, a
Nengo subclass), and Triangle synapses (a process without a TensorFlow form).  Ensemble noise and input processes run on the host
too, but only as data, which is fine.

CI runs a fixed, derandomized budget (``NC_FUZZ_GRADIENT_EXAMPLES``, default
12, about 30 s).  Long mode, new random examples each time::

    cd tests && NC_FUZZ_GRADIENT_EXAMPLES=300 NC_FUZZ_RANDOM=1 \\
        python -m pytest -p no:nengo -q test_fuzz_gradients.py -x
"""

import os
import warnings

import nengo
import numpy as np
import pytest
from hypothesis import given, reject

import nengo_cuda
from fuzz_nets import build
from test_fuzz import fuzz_settings
from test_fuzz_training import cases

EXAMPLES = int(os.environ.get("NC_FUZZ_GRADIENT_EXAMPLES", "12"))
HOST_NEURONS = {"Direct", "Izhikevich", "LIFSubclass"}
MAX_STEPS = 8


def gradient_blocked(spec):
    """Why no gradient flows through some part of ``spec`` by design (None: it all does)."""
    objects = spec["objects"]
    for c in spec["connections"]:
        if c["function"] is not None and objects[c["pre"]]["kind"] != "ens":
            return "a function on a connection from a Node"
    for o in objects:
        if o["kind"] == "func":
            return "a function Node"
        if o["kind"] == "ens" and o["neuron"] in HOST_NEURONS:
            return f"{o['neuron']} neurons on the host"
    if "Triangle" in repr(spec):
        return "a Triangle synapse"
    return None


@fuzz_settings(EXAMPLES)
@given(cases())
def test_fuzz_gradients_against_finite_differences(spec):
    if gradient_blocked(spec):
        reject()
    net, _ = probed_network(spec)
    try:
        check_spec(net, spec)
    except nengo.exceptions.BuildError:
        reject()  # Nengo's builder refuses it (e.g. PES on advanced-indexed neurons)


def probed_network(spec):
    """(network, probes) of ``spec``; rejected where Nengo refuses the network
    or it probes nothing."""
    try:
        net, probes, _ = build(spec, seed_processes=True)
    except nengo.exceptions.NengoException:
        reject()
    if not probes:
        reject()
    return net, probes


def simulator(net, spec):
    """A float64 simulator of ``net`` with ``spec``'s settings."""
    return nengo_cuda.Simulator(net, dtype="float64", minibatch_size=spec["minibatch"],
                                optimize=spec["optimize"], dt=spec["dt"], progress_bar=False)


def check_spec(net, spec):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (e.g. decoder solvers on tiny ensembles)
        with simulator(net, spec) as sim:
            n_steps = min(sum(spec["steps"]), MAX_STEPS)
            rng = np.random.RandomState(0)
            sim.check_gradients({node: rng.uniform(-1, 1, (sim.n_trials, n_steps, node.size_out))
                                 for node in sim._input_nodes})


def _recurrent(pre_slice, function, transform):
    return {"pre": 0, "pre_neurons": False, "pre_slice": pre_slice, "post": 0,
            "post_neurons": False, "post_slice": None, "function": function,
            "transform": transform, "synapse": ("Lowpass", 0.005), "learning": None}


REGRESSIONS = {
    # 1500 LIF rate neurons feeding themselves four times: f bends on scales
    # below the step (neurons just above threshold), D(1e-6) was 7 % off the
    # right gradient with an error estimate of 2 %; D(1e-8) matches it
    "sharp_bends_below_the_step": {
        "seed": 0,
        "objects": [{"kind": "ens", "n": 1500, "d": 2, "neuron": "LIF", "noise": None}],
        "connections": [_recurrent(("slice", 0, 1, 1), "pair", None),
                        _recurrent(("slice", 0, 1, 1), None, ("dense", 2, 1, 0, 1.0)),
                        _recurrent(None, None, None), _recurrent(None, None, None)],
        "probes": [{"target": ("obj", 0, "decoded_output"), "synapse": None,
                    "sample_every": None}],
        "steps": (9, 0), "dt": 0.001, "minibatch": 1, "optimize": False,
        "use_loop": False, "feed": [False],
    },
}


@pytest.mark.parametrize("name", sorted(REGRESSIONS))
def test_fuzz_gradients_regression(name):
    spec = REGRESSIONS[name]
    check_spec(build(spec, seed_processes=True)[0], spec)
