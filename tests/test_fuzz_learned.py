"""Fuzzing what online learning rules learn as parameters (NengoDL's semantics,
`nengo_cuda.parameters.LearnedParameters`) on random networks with PES, RLS,
BCM, Oja and Voja rules, wherever Nengo's optimizer merges their signals:

- a ``stateful=False`` run keeps what it learned: the same values as a
  stateful run of another simulator (float64, to rounding), ``n_steps`` 0;
- ``sim.data`` shows them (a connection's weights, Voja's scaled encoders);
- ``reset(include_trainable=False)`` keeps them, ``reset()`` undoes them;
- ``save_params``/``load_params`` carry them into a new simulator.

Budget: ``NC_FUZZ_LEARNED_EXAMPLES`` (default 30 drawn networks, most without
a rule and skipped at once), derandomized unless ``NC_FUZZ_RANDOM``.
"""

import os
import warnings

import nengo
import numpy as np
from hypothesis import assume, given

import nengo_cuda
from fuzz_nets import build, network_specs
from test_fuzz import fuzz_settings

EXAMPLES = int(os.environ.get("NC_FUZZ_LEARNED_EXAMPLES", "30"))
# their generators draw in the order of merged operators, which differs between
# builds: two simulators of one such network are not the same simulation
STOCHASTIC = ("PoissonSpiking", "StochasticSpiking", "RegularSpiking")


def _values(sim):
    """{(object, builder name): trial 0's learned values}."""
    return {key: np.array(sim.layout.signal_dicts[0][sig])
            for key, sig in sim.learned.signals.items()}


def _shown(sim, key):
    """What ``sim.data`` shows of learned signal ``key``."""
    obj, name = key
    if name == "weights":
        return np.asarray(sim.data[obj].weights)
    return np.asarray(sim.data[obj].scaled_encoders)  # (Voja's "encoders")


def _check(net, n, dt, tmp_path):
    kw = dict(dtype="float64", progress_bar=False, dt=dt)
    with nengo_cuda.Simulator(net, **kw) as a, nengo_cuda.Simulator(net, **kw) as b:
        assume(bool(a.learned))
        built = _values(a)
        a.run_steps(n, stateful=False)
        b.run_steps(n)
        learned = _values(b)
        assume(all(np.all(np.isfinite(v)) for v in learned.values()))
        assert a.n_steps == 0
        assert _values(a).keys() == learned.keys()
        for key, value in _values(a).items():
            np.testing.assert_allclose(value, learned[key], rtol=1e-12, atol=1e-12,
                                       err_msg=str(key))
            np.testing.assert_allclose(_shown(a, key).ravel(), value.ravel(), rtol=0, atol=0)
        b.save_params(tmp_path / "learned")
        b.reset(include_trainable=False)
        for key, value in _values(b).items():
            np.testing.assert_array_equal(value, learned[key])
        b.reset()
        for key, value in _values(b).items():
            np.testing.assert_array_equal(value, built[key])
    with nengo_cuda.Simulator(net, **kw) as c:
        c.load_params(tmp_path / "learned")
        for key, value in _values(c).items():
            np.testing.assert_array_equal(value, learned[key])


@fuzz_settings(EXAMPLES)
@given(network_specs())
def test_learned_parameters_on_random_networks(tmp_path_factory, spec):
    assume(not any(o.get("neuron") in STOCHASTIC for o in spec["objects"]))
    assume(any(c.get("learning") for c in spec["connections"]))
    net = build(spec, seed_processes=True)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (e.g. decoder solvers on tiny ensembles)
        try:
            _check(net, sum(spec["steps"]), spec["dt"], tmp_path_factory.mktemp("fuzz"))
        except (nengo.exceptions.BuildError, nengo.exceptions.SimulationError,
                FloatingPointError):
            assume(False)  # (Nengo's builder refuses some; some blow up)
