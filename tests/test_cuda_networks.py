"""Random networks for comparing the CUDA backend with the CPU backend.

`random_network(seed)` mixes every native neuron type, slices, dense, sparse and
neuron-to-neuron transforms, all linear-filter forms, WhiteSignal, WhiteNoise,
constant and Python-function inputs (callbacks) and all five learning rules;
`tables_network()` every kind of process table.
`compare(net, probes, device)` runs it on the CPU backend and on ``device`` and
returns the largest differences.  `test_random_knobs` draws a random network
and a random setting of every tuning knob (docs/cuda.md): 8 in CI, more with
``NC_KNOB_FUZZ_EXAMPLES=N`` (1,500 took 21 minutes on the emulator here).
benchmarks/gpu_check.py uses both on the GPU; the tests here run them on the
host emulator of the CUDA backend, and on the GPU where there is one.
"""

import os
import random

import numpy as np
import nengo
import pytest

import nengo_cuda
from nengo_cuda import _native
from nengo_cuda.backends.select import cuda_status

DEVICES = [
    "cuda-emulator",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(not cuda_status()[0], reason=f"no CUDA: {cuda_status()[1]}"),
    ),
]

NEURON_TYPES = [
    nengo.LIF,
    nengo.LIFRate,
    nengo.RectifiedLinear,
    nengo.SpikingRectifiedLinear,
    nengo.Sigmoid,
    nengo.Tanh,
    nengo.AdaptiveLIF,
    nengo.AdaptiveLIFRate,
    nengo.Izhikevich,
    lambda: nengo.RegularSpiking(nengo.LIFRate()),
    nengo_cuda.LeakyReLU,
    nengo_cuda.SpikingLeakyReLU,
    lambda: nengo_cuda.SoftLIFRate(sigma=0.05),
]

SYNAPSES = [
    None,
    nengo.Lowpass(0.005),
    nengo.Lowpass(0.02),
    nengo.Alpha(0.01),
    nengo.LinearFilter([1.0], [0.0005, 0.05, 1.0]),  # two states (NoD)
    nengo.LinearFilter([0.3, 1.0], [0.02, 1.0]),  # general form (D != 0)
]


def random_network(seed, n_ensembles=4, max_neurons=40, max_dims=3, learning=True):
    """A random network and its probes (all seeded by ``seed``)."""
    rng = np.random.RandomState(seed)
    with nengo.Network(seed=seed) as net:
        sources = [
            nengo.Node(nengo.processes.WhiteSignal(1.0, high=5, rms=0.5), size_out=2),
            nengo.Node(nengo.processes.WhiteNoise(nengo.dists.Gaussian(0, 0.1)), size_out=2),
            nengo.Node(rng.uniform(-0.5, 0.5, size=2)),
        ]
        if rng.rand() < 0.5:
            sources.append(nengo.Node(lambda t: [np.sin(8 * t), np.cos(5 * t)]))
        ensembles = []
        for _ in range(n_ensembles):
            make_type = NEURON_TYPES[rng.randint(len(NEURON_TYPES))]
            ens = nengo.Ensemble(
                int(rng.randint(5, max_neurons + 1)),
                int(rng.randint(1, max_dims + 1)),
                neuron_type=make_type(),
            )
            ensembles.append(ens)

        def synapse():
            return SYNAPSES[rng.randint(len(SYNAPSES))]

        # every ensemble gets an input; then random extra connections
        for ens in ensembles:
            src = sources[rng.randint(len(sources))]
            k = min(src.size_out, ens.dimensions)
            nengo.Connection(src[:k], ens[:k], synapse=synapse())
        conns = []
        for _ in range(2 * n_ensembles):
            i, j = rng.randint(len(ensembles)), rng.randint(len(ensembles))
            pre, post = ensembles[i], ensembles[j]
            kind = rng.randint(4)
            syn = synapse()
            if syn is None and i >= j:
                syn = nengo.Lowpass(0.005)  # a loop without a synapse: Nengo refuses it
            if kind == 0:  # decoded, with a function
                conns.append(
                    nengo.Connection(
                        pre, post[0], function=lambda x: np.sum(x**2), synapse=syn
                    )
                )
            elif kind == 1:  # decoded, random transform
                t = rng.uniform(-0.5, 0.5, size=(post.dimensions, pre.dimensions))
                conns.append(nengo.Connection(pre, post, transform=t, synapse=syn))
            elif kind == 2:  # neurons to neurons, dense
                t = rng.uniform(-0.01, 0.01, size=(post.n_neurons, pre.n_neurons))
                conns.append(
                    nengo.Connection(pre.neurons, post.neurons, transform=t, synapse=syn)
                )
            else:  # neurons to neurons, sparse
                n = 5
                idx = np.stack(
                    [rng.randint(post.n_neurons, size=n), rng.randint(pre.n_neurons, size=n)],
                    axis=1,
                )
                idx = np.unique(idx, axis=0)
                sparse = nengo.transforms.Sparse(
                    (post.n_neurons, pre.n_neurons), indices=idx,
                    init=rng.uniform(-0.05, 0.05, size=len(idx)),
                )
                conns.append(
                    nengo.Connection(pre.neurons, post.neurons, transform=sparse, synapse=0.005)
                )
        probes = [nengo.Probe(e, synapse=0.01) for e in ensembles]
        probes.append(nengo.Probe(ensembles[0].neurons))
        probes.append(nengo.Probe(ensembles[-1].neurons, sample_every=0.003))

        if learning:
            a, b = ensembles[0], ensembles[-1]
            # PES on a decoded connection, with its error signal
            k = min(a.dimensions, b.dimensions)
            c = nengo.Connection(a[:k], b[:k], learning_rule_type=nengo.PES(1e-4), synapse=0.01)
            err = nengo.Node(size_in=k)
            nengo.Connection(b[:k], err)
            nengo.Connection(a[:k], err, transform=-1)
            nengo.Connection(err, c.learning_rule)
            # BCM and Oja on neuron-to-neuron weights, Voja on encoders
            w = rng.uniform(-1e-3, 1e-3, size=(b.n_neurons, a.n_neurons))
            nengo.Connection(a.neurons, b.neurons, transform=w, learning_rule_type=nengo.BCM(1e-9))
            nengo.Connection(a.neurons, b.neurons, transform=w, learning_rule_type=nengo.Oja(1e-9))
            v = nengo.Ensemble(20, 2, seed=seed)
            conn_v = nengo.Connection(sources[0], v, learning_rule_type=nengo.Voja(1e-3))
            probes.append(nengo.Probe(conn_v.learning_rule, "scaled_encoders", sample_every=0.01))
            probes.append(nengo.Probe(c, "weights", sample_every=0.01))
            # RLS on a decoded connection into a Node, learning b's value from a's
            out = nengo.Node(size_in=k)
            c_r = nengo.Connection(a[:k], out, learning_rule_type=nengo.RLS(1e-2), synapse=0.01)
            nengo.Connection(out, c_r.learning_rule)
            nengo.Connection(b[:k], c_r.learning_rule, transform=-1)
            probes.append(nengo.Probe(c_r, "weights", sample_every=0.01))
    return net, probes


def tables_network(seed=0):
    """Every kind of process table in one instruction: WhiteSignal and
    WhiteNoise (per trial), PresentInput and Piecewise (one block for all
    trials), each into an ensemble and probed, with an inc-mode PresentInput
    as the ensemble's noise."""
    rng = np.random.RandomState(seed)
    with nengo.Network(seed=seed) as net:
        nodes = [
            nengo.Node(nengo.processes.WhiteSignal(0.1, high=20, rms=0.5), size_out=2),
            nengo.Node(nengo.processes.WhiteNoise(nengo.dists.Gaussian(0, 0.2)), size_out=3),
            nengo.Node(nengo.processes.PresentInput(rng.uniform(-1, 1, (3, 4)), 0.013)),
            nengo.Node(nengo.processes.Piecewise({0.004: [0.5, -0.3], 0.05: [-0.4, 0.8]})),
        ]
        noise = nengo.processes.PresentInput(rng.uniform(-0.2, 0.2, (2, 30)), 0.007)
        ens = nengo.Ensemble(30, 2, noise=noise)
        for node in nodes:
            nengo.Connection(node[:2], ens, synapse=0.005)
        probes = [nengo.Probe(ens, synapse=0.01)] + [nengo.Probe(node) for node in nodes]
    return net, probes


def run(model, probes, device, dtype="float64", minibatch_size=None, steps=150, **kwargs):
    """Probe data (list of arrays) and the final state of every signal, all trials.

    ``model`` is a built `nengo.builder.Model`, shared by the simulators being
    compared so that their signals are the same objects.  The first simulator
    runs Nengo's optimizer on it; later ones find it optimized.
    """
    optimize = not getattr(model, "_nc_optimized", False)
    model._nc_optimized = True
    with nengo_cuda.Simulator(
        None, model=model, optimize=optimize, seed=1, dtype=dtype, minibatch_size=minibatch_size,
        progress_bar=False, device=device, **kwargs
    ) as sim:
        if device != "cpu" and hasattr(sim.backend, "set_poison"):
            sim.backend.set_poison(True)
        try:
            sim.run_steps(steps)
        except FloatingPointError:
            pass  # (a random network may grow to NaN: the steps stand, both backends compared)
        data = [np.array(sim.data[p]) for p in probes]
        state = {
            base: np.array(
                [sim.layout.base_array(base, t) for t in range(sim.n_trials)], dtype=np.float64
            )
            for base in sim.layout.bases
            if sim.layout.pool_of(base) != "other"
        }
    return data, state


def compare(net, probes, device, n_decoded=None, **kwargs):
    """(largest probe difference, largest state difference, NaNs in device probes).

    Differences are |device - cpu| / (1 + |cpu|) over all elements and trials
    (NaN where both are NaN counts as equal); ``n_decoded``: only the first
    ``n_decoded`` probes count for the probe difference.
    """
    model = nengo.builder.Model(dt=0.001)
    model.build(net)
    ref_data, ref_state = run(model, probes, "cpu", **kwargs)
    data, state = run(model, probes, device, **kwargs)
    nan = any(np.isnan(d).any() and not np.isnan(r).any() for d, r in zip(data, ref_data))
    diffs = [_relative(d, r) for d, r in zip(data, ref_data)]
    diff = max(diffs[:n_decoded] if n_decoded else diffs)
    assert state.keys() == ref_state.keys()
    sdiff = max(_relative(state[k], ref_state[k]) for k in ref_state)
    return diff, sdiff, nan


def _relative(a, ref):
    """Largest |a - ref| / (1 + |ref|): absolute for small values, relative for large."""
    if a.size == 0:
        return 0.0
    if not np.array_equal(np.isnan(a), np.isnan(ref)):
        return float("inf")  # NaN where the CPU has a number, or the reverse
    both = np.isnan(ref)
    return float(np.max(np.where(both, 0.0, np.abs(a - ref) / (1.0 + np.abs(np.where(both, 0, ref))))))


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param


@pytest.mark.parametrize("seed", range(4))
def test_random_networks_float64(device, seed):
    net, probes = random_network(seed)
    diff, sdiff, nan = compare(net, probes, device, dtype="float64")
    assert not nan, "a probe sample was never written"
    # Only the order of additions in dot products differs from the CPU backend
    # (1e-16); Izhikevich neurons amplify that to ~1e-7 in 150 steps.
    assert diff < 1e-6 and sdiff < 1e-6, (diff, sdiff)


@pytest.mark.parametrize("seed", range(2))
def test_random_networks_minibatch(device, seed):
    net, probes = random_network(100 + seed, learning=seed == 0)
    diff, sdiff, nan = compare(net, probes, device, dtype="float64", minibatch_size=3)
    assert not nan
    assert diff < 1e-6 and sdiff < 1e-6, (diff, sdiff)


@pytest.mark.parametrize("minibatch_size", [None, 3])
def test_process_tables(device, minibatch_size):
    net, probes = tables_network()
    diff, sdiff, nan = compare(net, probes, device, minibatch_size=minibatch_size)
    assert not nan
    assert diff < 1e-12 and sdiff < 1e-12, (diff, sdiff)


def test_random_network_float32(device):
    net, probes = random_network(7, learning=False)
    diff, sdiff, nan = compare(net, probes, device, dtype="float32", minibatch_size=2, n_decoded=4)
    assert not nan
    # float32 rounding of a different summation order may move a spike by a
    # step: compare the filtered decoded outputs (the first four probes)
    assert diff < 0.05, diff


# Values to draw for each tuning knob (csrc/cuda/knobs.h; all of them, checked
# below).  LAUNCH_ONLY ones change launches, never an element's arithmetic.
KNOB_VALUES = {
    "NC_DOT_DENSE": [0, 1, 2], "NC_DOT_DENSE_TRIALS": [0, 2, 4, 8],
    "NC_DOT_COLS_PER_LANE": [1, 4, 16, 64], "NC_DOT_TRIALS": [1, 2, 4, 8],
    "NC_DOT_MIN_TILES": [0, 1 << 40], "NC_CONV_MIN_THREADS": [0, 1 << 40],
    "NC_NEURON_TRIALS": [1, 2, 4, 8], "NC_NEURON_DEFER": [0, 1], "NC_CONV_DENSE": [0, 1, 2],
    "NC_PHASE_BLOCKS": [0, 1, 4], "NC_PDL": [0, 1], "NC_FUSE_NEURONS": [0, 1],
    "NC_FUSE_FILTERS": [0, 1], "NC_PHASE_MAX": [0, 256, 1 << 20],
}
LAUNCH_ONLY = {"NC_PHASE_MAX", "NC_PHASE_BLOCKS", "NC_PDL", "NC_FUSE_NEURONS",
               "NC_FUSE_FILTERS", "NC_NEURON_TRIALS", "NC_NEURON_DEFER", "NC_CONV_DENSE"}
KNOB_EXAMPLES = int(os.environ.get("NC_KNOB_FUZZ_EXAMPLES", "8"))


def test_knob_values_cover_every_knob():
    knobs = {name: (lo, hi) for name, _, lo, hi in _native.device_knobs()}
    assert set(KNOB_VALUES) == set(knobs)
    assert LAUNCH_ONLY <= set(knobs)
    for name, values in KNOB_VALUES.items():
        assert all(knobs[name][0] <= v <= knobs[name][1] for v in values), name


def _with_knobs(monkeypatch, knobs, fn):
    with monkeypatch.context() as m:
        for name in KNOB_VALUES:
            m.delenv(name, raising=False)
        for name, value in knobs.items():
            m.setenv(name, str(value))
        return fn()


@pytest.mark.parametrize("seed", range(KNOB_EXAMPLES))
def test_random_knobs(device, monkeypatch, seed):
    """A random network (up to 6 ensembles of up to 70 neurons, a minibatch of
    1 to 17 trials) with a random value of every knob, float64: (1) its first
    10 steps equal the CPU backend's within 1e-6, probes and every state
    signal, except where the network blows up (signals past 1e4; past 1e6
    even nengo.Simulator differs between builds of one network) and
    Izhikevich states (its explicit step, unstable below -100 mV, amplifies
    rounding threefold a step without moving a spike).  Only 10 steps: many
    random networks are chaotic, and the summation orders' 1e-16 grows about
    e-fold a step (a sigmoid population: 4e-10 at step 10, 1e-5 at step 30),
    where a fault shows at once; (2) over 150 steps, the launch-only knobs
    change no bit."""
    rng = random.Random(seed)
    knobs = {name: rng.choice(values) for name, values in sorted(KNOB_VALUES.items())}
    mb = rng.choice([None, 2, 3, 5, 9, 17])
    net, probes = random_network(
        seed, n_ensembles=rng.randint(2, 6), max_neurons=rng.choice([20, 40, 70]),
        max_dims=rng.randint(1, 4), learning=rng.random() < 0.4)
    model = nengo.builder.Model(dt=0.001)
    model.build(net)
    ref, ref_state = _with_knobs(monkeypatch, {}, lambda: run(
        model, probes, "cpu", minibatch_size=mb, steps=10))
    data, state = _with_knobs(monkeypatch, knobs, lambda: run(
        model, probes, device, minibatch_size=mb, steps=10))
    blown = any(np.isnan(x).any() or (x.size and np.abs(x).max() > 1e4)
                for x in ref_state.values())
    if not blown:
        izhikevich = {model.sig[e.neurons][k].base for e in net.all_ensembles
                      if isinstance(e.neuron_type, nengo.Izhikevich)
                      for k in ("voltage", "recovery")}
        for i, (d, r) in enumerate(zip(data, ref)):
            assert _relative(d, r) < 1e-6, (f"probe {i}", knobs, mb)
        for base in ref_state:
            if base not in izhikevich:
                assert _relative(state[base], ref_state[base]) < 1e-6, (base, knobs, mb)
    arithmetic = {k: v for k, v in knobs.items() if k not in LAUNCH_ONLY}
    full, _ = _with_knobs(monkeypatch, knobs, lambda: run(
        model, probes, device, minibatch_size=mb))
    plain, _ = _with_knobs(monkeypatch, arithmetic, lambda: run(
        model, probes, device, minibatch_size=mb))
    for i, (a, b) in enumerate(zip(full, plain)):
        np.testing.assert_array_equal(a, b, err_msg=f"probe {i} with {knobs}, minibatch {mb}")
