"""Differential fuzzer of the training graph (`nengo_cuda.training.graph.TrainingGraph`).

The training graph is the TensorFlow form of the simulator's step loop that
``fit`` trains through: spiking neurons run as their rate equivalents, and
everything else (synapses, learning rules, Python Nodes and processes on the
host) as in simulation.  So its forward pass must equal `nengo.Simulator` on
the *training equivalent* of the network: the same network with every neuron
type replaced by the type the graph runs (`TRAINING_NEURONS`).

Each example is a random network spec (`fuzz_nets.network_specs`, some
ensembles switched to NengoDL's neuron types), run by

1. ``nengo_cuda.Simulator(dtype="float64", minibatch_size=k)`` (k = 1 or 2,
   with or without Nengo's optimizer) through ``sim._trainer().forward``:
   every step from the initial state, in a `tf.while_loop` or unrolled, with
   per-trial data for some input Nodes;
2. `nengo.Simulator` (the oracle) on the spec with its neuron types mapped by
   `TRAINING_NEURONS`, each fed Node replaced by a function of time giving
   the trial's data, once per trial (once in all when nothing is fed);

and each probe's samples are compared within ``1e-9`` of the signal's scale,
up to the time the network blows up (as in `test_fuzz`).  Without fed data,
trial 0 uses the simulator's seed, as Nengo, and the other trials must equal
it when nothing in the network draws random numbers per trial.  When Nengo
raises while simulating, the graph must raise the same exception type.

CI runs a fixed, derandomized budget (``NC_FUZZ_TRAINING_EXAMPLES``, default
30, about 20 s).  Long mode, new random examples each time::

    cd tests && NC_FUZZ_TRAINING_EXAMPLES=1000 NC_FUZZ_RANDOM=1 \\
        python -m pytest -p no:nengo -q test_fuzz_training.py -k fuzz -x
"""

import copy
import functools
import os
import warnings

import nengo
import numpy as np
import pytest
from hypothesis import given, reject
from hypothesis import strategies as st

import nengo_cuda
from fuzz_nets import (ALL_NEURONS, DL_NEURONS, INPUT_KINDS, STOCHASTIC_PROCESSES, build,
                       network_specs)
from test_fuzz import (RTOL64, Rejected, SharedModel, _sample_steps, _stable_samples,
                       assert_close, fuzz_settings, horizon, nudged_run)

EXAMPLES = int(os.environ.get("NC_FUZZ_TRAINING_EXAMPLES", "30"))
FUZZ_SETTINGS = fuzz_settings(EXAMPLES)

# The neuron type the training graph runs for each of fuzz_nets' neuron types
# (graph.py `_op_SimNeurons`): a spiking type's rate equivalent with the same
# parameters (fuzz_nets makes every type with its defaults, and the defaults of
# AdaptiveLIF and AdaptiveLIFRate agree); RegularSpiking, PoissonSpiking and
# StochasticSpiking run ``amplitude * base rate``, their expected output, which
# is the base type at amplitude 1.  Rate types, Direct, and types without a
# rate equivalent (Izhikevich, LIFSubclass: Nengo's own step on the host) stay.
TRAINING_NEURONS = {
    "LIF": "LIFRate",
    "SpikingRectifiedLinear": "RectifiedLinear",
    "AdaptiveLIF": "AdaptiveLIFRate",
    "RegularSpiking": "LIFRate",
    "PoissonSpiking": "LIFRate",
    "StochasticSpiking": "RectifiedLinear",
    "SpikingLeakyReLU": "LeakyReLU",
}

# Unrolled graphs grow with the steps (and their tracing time with them)
MAX_UNROLLED_STEPS = 20


def _probed_state(spec, index):
    """Whether a probe reads a neuron state of object ``index`` (a voltage...)."""
    return any(p["target"][0] == "neurons" and p["target"][1] == index
               and p["target"][2] not in ("output", "input") for p in spec["probes"])


@st.composite
def cases(draw):
    spec = draw(network_specs())
    for i, obj in enumerate(spec["objects"]):
        # now and then NengoDL's types (their training ops: leaky_relu, soft_lif_rate)
        if (obj["kind"] == "ens" and obj["neuron"] != "Direct" and not _probed_state(spec, i)
                and draw(st.integers(0, 5)) == 0):
            obj["neuron"] = draw(st.sampled_from(sorted(DL_NEURONS)))
    spec["minibatch"] = draw(st.sampled_from([1, 2]))
    spec["optimize"] = draw(st.booleans())  # nengo_cuda's build (merged views)
    spec["use_loop"] = draw(st.booleans())  # (unrolled up to MAX_UNROLLED_STEPS)
    spec["feed"] = [o["kind"] in INPUT_KINDS and draw(st.booleans()) for o in spec["objects"]]
    return spec


def training_spec(spec):
    """``spec`` with every neuron type replaced by the one the graph runs."""
    mapped = copy.deepcopy(spec)
    for obj in mapped["objects"]:
        if obj["kind"] == "ens":
            obj["neuron"] = TRAINING_NEURONS.get(obj["neuron"], obj["neuron"])
    return mapped


def _state_names(neuron):
    return set(getattr(ALL_NEURONS[neuron](), "state", {}))


def comparable_probes(spec, mapped):
    """Indices of the spec's probes that the mapped network has too.

    A spiking type's own state (a LIF's voltage and refractory time) has no
    counterpart in its rate equivalent, and the graph leaves it at its
    initial value: those probes are not compared.
    """
    keep = []
    for i, p in enumerate(spec["probes"]):
        where, index, attr = p["target"]
        if where == "neurons" and attr not in ("output", "input"):
            if attr not in _state_names(mapped["objects"][index]["neuron"]):
                continue
        keep.append(i)
    return keep


def feed_data(spec):
    """{object index: (minibatch, n_steps, size) data} for the fed input Nodes."""
    rng = np.random.RandomState(spec["seed"])
    shape = (spec["minibatch"], sum(spec["steps"]))
    return {i: rng.uniform(-1, 1, size=shape + (_size_out(obj),))
            for i, (obj, fed) in enumerate(zip(spec["objects"], spec.get("feed", ())))
            if fed}


def _size_out(obj):
    return len(obj["value"]) if obj["kind"] == "const" else obj["size"]


class StepData:
    """A Node output giving ``data[step - 1]`` at Nengo's time ``step * dt``:
    Nengo's form of the data the graph feeds a Node."""

    def __init__(self, data, dt):
        self.data, self.dt = data, dt

    def __call__(self, t):
        return self.data[int(round(t / self.dt)) - 1]


def _quiet(fn):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn()


def _build(spec, seed_processes=False):
    try:
        return build(spec, seed_processes=seed_processes)
    except nengo.exceptions.NengoException as e:
        raise Rejected(f"Nengo refuses the network: {e!r}") from e


def run_nengo(probes, n_steps, nudge=False, **kwargs):
    """Nengo's probe data (a list) after ``n_steps`` steps, or the exception it
    raised while simulating; ``kwargs`` for `nengo.Simulator`.  ``nudge``: its
    state nudged after the first step (`test_fuzz.nudged_run`)."""
    def run():
        try:
            sim = nengo.Simulator(progress_bar=False, **kwargs)
        except nengo.exceptions.NengoException as e:
            raise Rejected(f"Nengo's builder refuses the network: {e!r}") from e
        except (ValueError, IndexError) as e:
            raise Rejected(f"Nengo's builder crashes: {e!r}") from e
        with sim:
            try:
                if nudge:
                    return nudged_run(sim, probes, n_steps)
                sim.run_steps(n_steps)
            except Exception as e:  # noqa: BLE001 -- the graph must raise it too
                return e
            return [np.asarray(sim.data[p]) for p in probes]

    return _quiet(run)


def run_graph(probes, n_steps, x=None, use_loop=True, **kwargs):
    """The training graph's outputs ``(batch, n_steps, size)`` (a list) for
    inputs ``x``, or the exception building or running it raised; ``kwargs``
    for nengo_cuda's Simulator."""
    def run():
        try:
            with nengo_cuda.Simulator(dtype="float64", progress_bar=False, **kwargs) as sim:
                trainer = sim._trainer()
                trainer.graph.use_loop = use_loop or n_steps > MAX_UNROLLED_STEPS
                outs = trainer.forward(x=x or None, n_steps=n_steps, probes=probes)
        except Exception as e:  # noqa: BLE001 -- compared with the oracle's
            return e
        return [outs[p] for p in probes]

    return _quiet(run)


def run_both(spec, mapped, keep):
    """(probes, Nengo's data per trial, the graph's outputs, per trial a function
    that runs Nengo's reference again with its state nudged: see
    `compare_trial`) for the probes ``keep``.

    Nengo's data is a list with one item per trial fed its own data, or one item
    for all trials when nothing is fed; an item is a list over probes, or the
    exception Nengo raised.

    Random processes (WhiteNoise, WhiteSignal inputs and Ensemble noise) get a
    seed from the simulator's seed sequence in step order, which differs between
    two builds of a network.  A spec whose neurons the graph runs as they are
    (``mapped == spec``) and with nothing fed is built once, and both simulators
    run that `Model` (as in `test_fuzz.SharedModel`): the processes draw from
    the seed sequence, trial 0 as in Nengo.  Otherwise the networks differ, and
    each random process gets its own seed (`fuzz_nets.build`'s ``seed_processes``).
    """
    n_steps, dt = sum(spec["steps"]), spec["dt"]
    graph_kw = dict(minibatch_size=spec["minibatch"], use_loop=spec.get("use_loop", True))
    data = feed_data(spec)
    if mapped == spec and not data:
        net, probes, _ = _build(spec)
        shared = SharedModel(net, spec["optimize"], dt)  # raises Rejected
        probes = [probes[i] for i in keep]
        model = dict(network=None, model=shared.model, optimize=False, seed=shared.seed)

        def nudged():
            for rng, state in shared.rngs:
                rng.set_state(state)
            return run_nengo(probes, n_steps, nudge=True, **model)

        return (probes, [run_nengo(probes, n_steps, **model)],
                run_graph(probes, n_steps, **model, **graph_kw), [nudged])
    refs, nudged = [], []
    for trial in range(spec["minibatch"] if data else 1):
        ref_net, ref_probes, info = _build(mapped, seed_processes=True)
        for i, x in data.items():  # (before the build: Nengo checks a Node's output then)
            info["objects"][i].output = StepData(x[trial], dt)
        kwargs = dict(network=ref_net, dt=dt, optimize=False)
        refs.append(run_nengo([ref_probes[i] for i in keep], n_steps, **kwargs))
        nudged.append(functools.partial(run_nengo, [ref_probes[i] for i in keep], n_steps,
                                        nudge=True, **kwargs))
    net, probes, info = _build(spec, seed_processes=True)
    probes = [probes[i] for i in keep]
    x = {info["objects"][i]: d for i, d in data.items()}
    return probes, refs, run_graph(probes, n_steps, x=x, network=net, dt=dt,
                                   optimize=spec["optimize"], **graph_kw), nudged


def sampled(probe, out, n_steps, dt):
    """The graph's per-step outputs ``(batch, n_steps, size)`` at the steps
    where Nengo samples ``probe`` (step % period < 1, from step 1)."""
    return out[:, _sample_steps(probe, n_steps, dt) - 1]


def _random_per_trial(spec):
    """Whether trials of a minibatch draw different random numbers: random
    input processes and WhiteNoise on ensembles get a seed per trial."""
    for obj in spec["objects"]:
        if obj["kind"] == "process" and obj["process"] in STOCHASTIC_PROCESSES:
            return True
        if obj["kind"] == "ens" and obj["noise"] == "white":
            return True
    return False


def compare_trial(spec, probes, outs, ref, trial, nudged):
    """The graph's trial ``trial`` (``outs``: sampled outputs) against Nengo's
    data ``ref``, up to the time Nengo's network blows up, and for a chaotic
    network up to where Nengo's own run, slightly nudged (``nudged()``), leaves
    ``ref`` (`test_fuzz.nengo_horizon`)."""
    stable = _stable_samples(probes, ref, spec["dt"])
    horizons = None
    for i, (p, a, b, n) in enumerate(zip(probes, outs, ref, stable)):
        if b.size == 0:  # no sample yet: Nengo's data is np.asarray([])
            assert a.shape[1] == 0, f"{p}: graph {a.shape}, nengo has no samples"
            continue
        b = b.reshape(len(b), -1)
        assert a.shape[1:] == b.shape, f"{p}: graph {a.shape}, nengo {b.shape}"
        try:
            assert_close(a[trial, :n], b[:n], RTOL64, f"trial {trial} {p}")
        except AssertionError:
            if horizons is None:
                again = nudged()
                horizons = horizon(again, ref) if not isinstance(again, Exception) else []
            if i >= len(horizons) or horizons[i] >= n:
                raise
            h = horizons[i]
            assert_close(a[trial, :h], b[:h], RTOL64,
                         f"trial {trial} {p}, before Nengo's own chaos horizon")


def check_spec(spec):
    mapped = training_spec(spec)
    keep = comparable_probes(spec, mapped)
    if not keep:
        raise Rejected("no probe of the network is in its training equivalent")
    probes, refs, ours, nudged = run_both(spec, mapped, keep)
    errors = [r for r in refs if isinstance(r, Exception)]
    if errors:
        if not all(isinstance(e, nengo.exceptions.NengoException) for e in errors):
            raise Rejected(f"nengo.Simulator raised {errors[0]!r}")  # e.g. an overflow
        assert type(ours) is type(errors[0]), f"nengo raised {errors[0]!r}; the graph: {ours!r}"
        return
    if isinstance(ours, Exception):
        if (isinstance(ours, nengo.exceptions.SimulationError) and spec["minibatch"] > 1
                and len(refs) == 1 and _random_per_trial(spec)):
            # a trial Nengo does not run (its own random draws) blew up, and a
            # Node saw its non-finite values: trial 0 alone must still match
            return check_spec(dict(spec, minibatch=1))
        raise AssertionError("the training graph raised while nengo.Simulator did not") from ours
    outs = [sampled(p, out, sum(spec["steps"]), spec["dt"]) for p, out in zip(probes, ours)]
    if len(refs) > 1:  # fed data: each trial its own
        for trial, ref in enumerate(refs):
            compare_trial(spec, probes, outs, ref, trial, nudged[trial])
        return
    compare_trial(spec, probes, outs, refs[0], 0, nudged[0])
    # (a shared model's random processes draw per trial; seeded ones do not)
    if mapped != spec or not _random_per_trial(spec):
        for p, a in zip(probes, outs):
            for t in range(1, a.shape[0]):
                assert_close(a[t], a[0], RTOL64, f"trial {t} {p}, as trial 0")


@FUZZ_SETTINGS
@given(cases())
def test_fuzz_training_against_nengo(spec):
    try:
        check_spec(spec)
    except Rejected:
        reject()


REGRESSIONS = {
    # Trial 1 of the minibatch (its own FilteredNoise draws, which Nengo's
    # reference does not run) blows up through an RLS rule and a Node's square
    # returns inf: the graph raises Nengo's SimulationError, as it should;
    # trial 0 alone equals Nengo.
    "other_trial_blows_up": {
        "seed": 0,
        "objects": [
            {"kind": "process", "size": 1, "process": "FilteredNoise"},
            {"kind": "func", "size": 1, "func": "mix"},
            {"kind": "filter", "size": 1, "synapse": ("Lowpass", 0.005)},
            {"kind": "ens", "n": 3, "d": 1, "neuron": "RectifiedLinear", "noise": None},
            {"kind": "ens", "n": 1, "d": 1, "neuron": "RectifiedLinear", "noise": None},
        ],
        "connections": [
            {"pre": 2, "pre_neurons": False, "pre_slice": None, "post": 3, "post_neurons":
             True, "post_slice": None, "function": "square", "transform": ("dense", 3, 1, 0,
             1.0), "synapse": None, "learning": None},
            {"pre": 0, "pre_neurons": False, "pre_slice": None, "post": 3, "post_neurons":
             False, "post_slice": None, "function": None, "transform": None, "synapse": None,
             "learning": "Voja"},
            {"pre": 3, "pre_neurons": False, "pre_slice": None, "post": 2, "post_neurons":
             False, "post_slice": None, "function": "pair", "transform": ("dense", 1, 2, 0,
             1.0), "synapse": ("Alpha", 0.005), "learning": "RLS", "error": (3, False, 292,
             ("Lowpass", 0.02), 1, 1)},
        ],
        "probes": [
            {"target": ("obj", 0, "output"), "synapse": None, "sample_every": None},
        ],
        "steps": (14, 19),
        "dt": 0.002,
        "minibatch": 2,
        "optimize": False,
        "use_loop": False,
        "feed": [False, False, False, False, False],
    },
    # PES and Oja on a 3-neuron LIF(Rate) ensemble's recurrent connections:
    # the graph leaves Nengo by 1.5e-15 at step 168 (another summation order),
    # growing 1.5-2x a step to 0.015; Nengo's own run, nudged by 1e-13, leaves
    # its trajectory as fast, so the comparison stops at its horizon.
    "chaotic_learning": {
        "seed": 455,
        "objects": [
            {"kind": "pass", "size": 1},
            {"kind": "const", "value": [0.5]},
            {"kind": "ens", "n": 3, "d": 2, "neuron": "LIF", "noise": None},
        ],
        "connections": [
            {"pre": 2, "pre_neurons": True, "pre_slice": None, "post": 0, "post_neurons":
             False, "post_slice": None, "function": None, "transform": ("dense", 1, 3, 0,
             0.002), "synapse": ("Lowpass", 0.005), "learning": "PES", "error": (2, False, 0,
             ("Lowpass", 0.005), 1, 2)},
            {"pre": 2, "pre_neurons": True, "pre_slice": ("slice", 0, 1, 1), "post": 2,
             "post_neurons": True, "post_slice": None, "function": None, "transform":
             ("dense", 3, 1, 0, 0.002), "synapse": ("Lowpass", 0.005), "learning": "PES",
             "error": (2, True, 0, ("Lowpass", 0.005), 2, 3)},
            {"pre": 2, "pre_neurons": True, "pre_slice": None, "post": 2, "post_neurons":
             True, "post_slice": None, "function": None, "transform": ("dense", 3, 3, 1,
             0.002), "synapse": ("Lowpass", 0.005), "learning": "Oja"},
        ],
        "probes": [
            {"target": ("obj", 0, "output"), "synapse": None, "sample_every": None},
        ],
        "steps": (250, 0),
        "dt": 0.001,
        "minibatch": 1,
        "optimize": False,
        "use_loop": False,
        "feed": [False, False, False],
    },
}


@pytest.mark.parametrize("name", sorted(REGRESSIONS))
def test_fuzz_training_regression(name):
    check_spec(REGRESSIONS[name])
