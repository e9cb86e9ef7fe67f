"""Neuron kernels against the Nengo neuron types' own ``step``.

Kernel tests run one native neuron instruction on a `RawProgram` (outputs
poisoned with NaN before every step) and compare, step by step, with
``neuron_type.step(dt, J, output, **state)`` on NumPy copies of the same data.
Neurons are split between two instances of the type with different parameters,
so the per-neuron parameter arrays are exercised as in merged groups.

Network tests run a small network with `nengo.Simulator` and
`nengo_cuda.Simulator(dtype="float64")` and check that the native kernel ran.
"""

import nengo
import numpy as np
import pytest
from nengo.builder.neurons import SimNeurons

import nengo_cuda
from kernel_harness import RawProgram
from nengo_cuda.lowering.neurons import NEURON_KERNELS, parameter_values

DT = 0.001

# Two parameter sets per neuron type: the first half of the neurons uses the
# first, the second half the second.
PARAMS = {
    nengo.RectifiedLinear: [dict(amplitude=1.0), dict(amplitude=0.3)],
    nengo.SpikingRectifiedLinear: [dict(amplitude=1.0), dict(amplitude=0.3)],
    nengo.Sigmoid: [dict(tau_ref=0.0025), dict(tau_ref=0.004)],
    nengo.Tanh: [dict(tau_ref=0.0025), dict(tau_ref=0.004)],
    nengo.LIFRate: [dict(), dict(tau_rc=0.05, tau_ref=0.001, amplitude=0.5)],
    nengo.LIF: [dict(), dict(tau_rc=0.05, tau_ref=0.0015, min_voltage=-1, amplitude=0.5)],
    nengo.AdaptiveLIFRate: [dict(), dict(tau_n=0.1, inc_n=0.5, tau_rc=0.05, amplitude=0.5)],
    nengo.AdaptiveLIF: [
        dict(),
        dict(tau_n=0.1, inc_n=0.5, tau_rc=0.05, tau_ref=0.0015, min_voltage=-1),
    ],
    nengo.Izhikevich: [
        dict(),
        dict(tau_recovery=0.1, coupling=0.25, reset_voltage=-55, reset_recovery=4),
    ],
    nengo.RegularSpiking: [
        dict(base_type=nengo.LIFRate()),
        dict(base_type=nengo.Tanh(), amplitude=0.5),
    ],
    # (the kernel of nengo_cuda.random_splits: its uniform numbers as a state
    # the kernel reads; Tanh: a base type with negative rates)
    nengo.StochasticSpiking: [
        dict(base_type=nengo.LIFRate()),
        dict(base_type=nengo.Tanh(), amplitude=0.5),
    ],
    # NengoDL's types (nengo_cuda.neurons); sigma=0.1 reaches both of SoftLIFRate's
    # far branches (j / sigma <= -20 and > 30) with these currents
    nengo_cuda.LeakyReLU: [dict(), dict(negative_slope=0.05, amplitude=0.5)],
    nengo_cuda.SpikingLeakyReLU: [dict(), dict(negative_slope=0.05, amplitude=0.5)],
    nengo_cuda.SoftLIFRate: [dict(), dict(sigma=0.1, tau_rc=0.05, tau_ref=0.001, amplitude=0.5)],
}
TYPES = list(PARAMS)
assert set(TYPES) == set(NEURON_KERNELS), "every kernel has a test"


def random_currents(rng, n, neuron_type):
    """Currents with negative, near-threshold and large values, in random order."""
    if neuron_type is nengo.RegularSpiking:  # J is the base type's rate (>= 0 mostly)
        pool = [rng.uniform(0, 400, n), rng.uniform(-10, 0, n), np.full(n, 1e3)]
    elif neuron_type is nengo.StochasticSpiking:  # rates; whole spikes a step; zeros
        pool = [rng.uniform(-400, 400, n), rng.randint(-3, 4, n) / DT, rng.uniform(1e3, 5e3, n),
                np.zeros(n), np.full(n, -0.0), np.full(n, np.inf), np.full(n, -np.inf)]
    elif neuron_type is nengo.Izhikevich:  # clipped at -30; spikes need J >~ 4
        pool = [rng.uniform(-50, 30, n), rng.uniform(3, 6, n), np.full(n, 1e3)]
    else:
        near = 1 + rng.choice([-1, 1], n) * 10.0 ** rng.uniform(-9, -2, n)
        pool = [rng.uniform(-5, 5, n), near, rng.uniform(-1e-3, 1e-3, n), rng.uniform(10, 1e3, n)]
    pool = np.concatenate(pool)
    return pool[rng.randint(len(pool), size=n)]


def random_state(rng, n, name, neuron_type):
    if neuron_type is nengo.Izhikevich:
        if name == "voltage":
            return rng.uniform(-80, 29, n)
        return rng.uniform(-20, 20, n)  # recovery
    if name == "voltage":
        if neuron_type is nengo_cuda.SpikingLeakyReLU:  # negative spikes leave v in (-1, 0]
            return rng.uniform(-1, 1, n)
        return rng.uniform(-0.5 if neuron_type is nengo.LIF else 0, 1, n)
    if name == "refractory_time":  # in refractory period, ending mid-step, or done
        return rng.choice([0, 0.0005, 0.0015, 0.002, -0.001], n)
    if name == "adaptation":
        return rng.uniform(0, 2, n)
    if name == "uniform":  # StochasticSpiking's numbers of the step (0 included)
        return np.where(rng.rand(n) < 0.1, 0.0, rng.rand(n))
    raise AssertionError(name)


class GivenUniforms:
    """A generator whose ``random_sample`` gives these numbers (StochasticSpiking's
    step draws the step's uniform numbers; its kernel reads them)."""

    def __init__(self, values):
        self.values = values

    def random_sample(self, size):
        assert size == self.values.shape
        return np.asarray(self.values, dtype=np.float64)


def reference_step(types, split, J, output, state):
    """Nengo's step, each half of the neurons with its own parameter set."""
    for neuron_type, sl in zip(types, (slice(None, split), slice(split, None))):
        kwargs = {k: v[sl] for k, v in state.items()}
        if "uniform" in kwargs:
            kwargs["rng"] = GivenUniforms(kwargs.pop("uniform"))
        neuron_type.step(DT, J[sl], output[sl], **kwargs)


def assert_close(got, expected, rtol, atol, msg):
    """|got - expected| <= atol + rtol |expected| element by element (atol may be
    an array); NaN and infinities must match."""
    got, expected = np.asarray(got, np.float64), np.asarray(expected, np.float64)
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(got[~finite], expected[~finite], err_msg=msg)
    err = np.where(finite, abs(got - expected), 0)
    bound = np.broadcast_to(atol + rtol * abs(np.where(finite, expected, 0)), err.shape)
    bad = ~(err <= bound)
    if np.any(bad):
        i = np.flatnonzero(bad)[np.argmax((err - bound)[bad])]
        raise AssertionError(f"{msg}: {bad.sum()} of {bad.size} differ; worst at {i}: got "
                             f"{got[i]!r}, expected {expected[i]!r}, allowed {bound[i]:.3g}")


def conditioning_slack(types, split, J, state):
    """How far a float32 rate neuron's step moves when J moves by 4 ulps.

    Where the output is that sensitive (near the threshold: LIFRate's rate
    changes by tau_rc rate / (J - 1) per unit of J, so J = 1 + 1e-3 turns an
    ulp of J into 4e-4 of the rate), float32 results computed in a different
    order differ by that much; elsewhere the slack is far below the tolerance.
    Returns per-neuron slack for the output and for each state variable.
    """
    results = []
    for scale in (1, 1 + 4 * np.finfo(np.float32).eps, 1 - 4 * np.finfo(np.float32).eps):
        st = {k: v.copy() for k, v in state.items()}
        out = np.zeros_like(J)
        reference_step(types, split, (J * np.float32(scale)).astype(J.dtype), out, st)
        results.append(dict(out=out, **st))
    return {k: np.maximum(abs(results[1][k] - results[0][k]), abs(results[2][k] - results[0][k]))
            for k in results[0]}


def split_params(types, param_names, n):
    """Per-neuron parameter arrays: the first n // 2 neurons from types[0], the
    rest from types[1] (as a merged group of two populations), as the lowering
    computes them (spike heights amplitude / DT in float64)."""
    split = n // 2
    return {
        name: np.concatenate([parameter_values(types[0], name, split, DT),
                              parameter_values(types[1], name, n - split, DT)])
        for name in param_names
    }


def tolerances(dtype):
    if dtype == np.float64:
        # Same operations in the same order: equal to rounding (the math library's
        # exp/tanh/log1p may differ from NumPy's by an ulp).
        return 1e-12, 1e-12
    # float32: both sides run float32 operations, but NumPy's SIMD float32
    # exp/tanh may differ from libm by an ulp or so, and Nengo computes constants
    # such as 1 / tau_ref, dt / tau_n in float64 before rounding them to float32
    # (the kernel divides in float32: one ulp, 6e-8 relative).
    # Measured differences are 1 ulp (<1e-7 relative); 1e-5 leaves room for
    # growth through the state over the steps, and 1e-5 absolute covers state
    # that cancels to near zero (v - floor(v)).
    return 1e-5, 1e-5


@pytest.mark.parametrize("neuron_type", TYPES, ids=lambda t: t.__name__)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 7, 33])
@pytest.mark.parametrize("n_trials", [1, 3])
def test_kernel_matches_nengo_step(neuron_type, dtype, n, n_trials, rng):
    check_kernel_against_step(neuron_type, dtype, n, n_trials, rng)


def check_kernel_against_step(neuron_type, dtype, n, n_trials, rng, contiguous=False):
    """Runs the kernel for 12 steps of random currents next to Nengo's ``step``.

    ``contiguous``: each operand a block of consecutive addresses (the kernels'
    vectorised path) instead of scattered, interleaved addresses.
    """
    kind, state_names, param_names = NEURON_KERNELS[neuron_type]
    types = [neuron_type(**params) for params in PARAMS[neuron_type]]
    split = n // 2
    spiking = types[0].spiking
    # float32 state differs from NumPy's by an ulp at most here (measured), which
    # could in principle push v across a spike threshold on one side only; with
    # these seeded inputs no spike diverges over 12 steps (states are not near
    # ties), so float32 spiking types compare all steps too, their outputs
    # exactly: spike counts agree and the spike height is Nengo's float64
    # amplitude / dt rounded once (1000.0, not float32 1 / 0.001f = 999.99994).
    n_steps = 12

    p = RawProgram(dtype, 0, (2 + len(state_names)) * n, n_trials, dt=DT)
    addrs = p.alloc((2 + len(state_names)) * n)
    if not contiguous:
        # scattered, interleaved addresses: the kernel must follow the address arrays
        addrs = rng.permutation(addrs)
    addrs = addrs.reshape(-1, n)
    J_addr, out_addr, state_addrs = addrs[0], addrs[1], dict(zip(state_names, addrs[2:]))
    ref_state = []
    for t in range(n_trials):
        st = {k: random_state(rng, n, k, neuron_type).astype(dtype) for k in state_names}
        for k, a in state_addrs.items():
            p.write(a, st[k], t)
        ref_state.append(st)
    floats = split_params(types, param_names, n)
    p.add(kind, ints=dict(J=J_addr, out=out_addr, **state_addrs), floats=floats)

    rtol, atol = tolerances(dtype)
    ref_out = [None] * n_trials
    slack = [dict(out=0, **{k: 0 for k in state_names}) for _ in range(n_trials)]
    with np.errstate(over="ignore"):  # exp(-J) overflows for very negative J
        for step in range(n_steps):
            for t in range(n_trials):
                J = random_currents(rng, n, neuron_type).astype(dtype)
                p.write(J_addr, J, t)
                p.write(out_addr, np.nan, t)
                ref_out[t] = np.full(n, np.nan, dtype=dtype)
                if dtype == np.float32 and not spiking:
                    slack[t] = conditioning_slack(types, split, J, ref_state[t])
                reference_step(types, split, J.copy(), ref_out[t], ref_state[t])
            p.run(1)
            for t in range(n_trials):
                got_out = p.view(out_addr, t)
                assert not np.any(np.isnan(got_out)), "kernel left outputs unwritten"
                msg = f"step {step}, trial {t}"
                if spiking:
                    np.testing.assert_array_equal(got_out, ref_out[t], err_msg=msg)
                else:
                    assert_close(got_out, ref_out[t], rtol, atol + slack[t]["out"], msg)
                for k, a in state_addrs.items():
                    assert_close(p.view(a, t), ref_state[t][k], rtol, atol + slack[t][k],
                                 f"{msg}, {k}")


def test_kernel_rejects_missing_and_short_operands():
    p = RawProgram(np.float64, 0, 8)
    a = p.alloc(8)
    with pytest.raises(ValueError, match="wrong length"):
        p.add("neurons_izhikevich", ints=dict(J=a[:2], out=a[2:4], voltage=a[4:6], recovery=a[6:7]),
              floats={k: [0.0, 0.0] for k in NEURON_KERNELS[nengo.Izhikevich][2]})
    with pytest.raises(ValueError, match="wrong length"):
        p.add("neurons_sigmoid", ints=dict(J=a[:2], out=a[2:4]), floats=dict(tau_ref=[1.0]))
    with pytest.raises(Exception, match="voltage"):
        p.add("neurons_spiking_rectified_linear", ints=dict(J=a[:2], out=a[2:4]),
              floats=dict(spike_height=[1000.0, 1000.0]))


# -- whole networks ---------------------------------------------------------------

class MyLIFRate(nengo.LIFRate):
    """A subclass: no kernel (it could override step), so it runs as a callback."""


NETWORK_TYPES = [
    nengo.RectifiedLinear(),
    nengo.SpikingRectifiedLinear(),
    nengo.Sigmoid(),
    nengo.Tanh(),
    nengo.LIFRate(),
    nengo.LIF(),
    nengo.AdaptiveLIFRate(),
    nengo.AdaptiveLIF(),
    nengo.Izhikevich(),
    nengo.RegularSpiking(nengo.LIFRate()),
    nengo.RegularSpiking(nengo.RectifiedLinear(amplitude=0.5), amplitude=2),
    nengo.RegularSpiking(nengo.Sigmoid()),
    nengo.RegularSpiking(nengo.Tanh()),
    # base type without kernel: the base op is a callback, RegularSpiking native
    nengo.RegularSpiking(MyLIFRate()),
    # uniform numbers read from a table (nengo_cuda.random_splits)
    nengo.StochasticSpiking(nengo.LIFRate()),
    nengo.StochasticSpiking(nengo.Tanh(), amplitude=0.3),
    nengo.StochasticSpiking(MyLIFRate()),
    # initial_state overrides
    nengo.LIF(initial_state={"voltage": nengo.dists.Uniform(-0.2, 0.9),
                             "refractory_time": nengo.dists.Uniform(0, 0.002)}),
    nengo.Izhikevich(reset_voltage=-55, initial_state={"voltage": nengo.dists.Uniform(-70, 0)}),
    nengo_cuda.LeakyReLU(),
    nengo_cuda.SpikingLeakyReLU(),
    nengo_cuda.SoftLIFRate(sigma=0.02),
]


def network_id(neuron_type):
    name = type(neuron_type).__name__
    if isinstance(neuron_type, nengo.neurons.RatesToSpikesNeuronType):
        name += f"({type(neuron_type.base_type).__name__})"
    return name + ("-initial_state" if neuron_type.initial_state else "")


def make_network(neuron_type):
    with nengo.Network(seed=3) as net:
        stim = nengo.Node(lambda t: np.sin(8 * t) + 0.3)
        # Sigmoid needs 0.5 / tau_ref < max_rate < 1 / tau_ref, for both of its tau_ref
        max_rates = nengo.dists.Uniform(210, 240)
        # a second population of the same type with other parameters
        other = type(neuron_type)(**PARAMS[type(neuron_type)][1])
        a = nengo.Ensemble(17, 1, neuron_type=neuron_type, max_rates=max_rates)
        b = nengo.Ensemble(9, 1, neuron_type=other, max_rates=max_rates)
        nengo.Connection(stim, a)
        nengo.Connection(a, b)
        probes = [
            nengo.Probe(a.neurons),
            nengo.Probe(b.neurons),
            nengo.Probe(a, synapse=0.01),
            nengo.Probe(b, synapse=0.01),
        ]
        probes += [nengo.Probe(a.neurons, name) for name in neuron_type.state]
    return net, probes


@pytest.mark.parametrize("neuron_type", NETWORK_TYPES, ids=network_id)
def test_network_matches_nengo(neuron_type):
    kind = NEURON_KERNELS[type(neuron_type)][0]
    net, probes = make_network(neuron_type)
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run(0.15)
    with nengo_cuda.Simulator(net, progress_bar=False, dtype="float64") as sim:
        sim.run(0.15)

    summary = sim.program.summary()
    assert kind in summary, summary
    sim_neurons = [op for op in sim._step_order if isinstance(op, SimNeurons)]
    own = [op for op in sim_neurons if op.neurons is neuron_type]
    assert own
    for op in own:  # (StochasticSpiking's: the instruction of its kernel part)
        assert sim.program.instructions[sim._plan.index_of(op)].kind == kind
    if isinstance(neuron_type, nengo.neurons.RatesToSpikesNeuronType):
        base_kind = NEURON_KERNELS.get(type(neuron_type.base_type), ("callback",))[0]
        for op in sim_neurons:
            if op.neurons is neuron_type.base_type:
                assert sim.program.instructions[sim._plan.index_of(op)].kind == base_kind

    for probe in probes:
        assert np.any(ref.data[probe] != 0), "network should be active"
        np.testing.assert_allclose(sim.data[probe], ref.data[probe], rtol=1e-10, atol=1e-10,
                                   err_msg=str(probe))


@pytest.mark.parametrize("sigma", [1.0, 0.5, 0.02])
def test_soft_lif_rates_are_its_smoothed_curve(sigma, rng):
    """SoftLIFRate's ``rates`` (what decoders are solved for) is the curve its
    ``step`` simulates, as NengoDL's: above zero at and below LIF's threshold
    (LIFRate's ``rates``, which it inherited, gave 0 there)."""
    neuron_type = nengo_cuda.SoftLIFRate(sigma=sigma, tau_rc=0.03, tau_ref=0.002, amplitude=0.7)
    x = np.linspace(-1, 1, 41)
    gain, bias = rng.uniform(0.5, 5, size=8), rng.uniform(-3, 3, size=8)
    J = x[:, None] * gain + bias
    smoothed = 0.7 / (0.002 + 0.03 * np.log1p(1 / (sigma * np.logaddexp(0, (J - 1) / sigma))))
    # (rtol: far below threshold the step uses log1p(1/z)'s asymptote, off by < e^-20)
    np.testing.assert_allclose(neuron_type.rates(x, gain, bias), smoothed, rtol=1e-9)
    assert neuron_type.rates(np.zeros(1), np.ones(1), np.ones(1))[0, 0] > 0
