"""NengoDL's initialisation distributions (nengo_cuda.dists) against their math."""

import nengo
import numpy as np
import pytest
from scipy import stats

import nengo_cuda
from nengo_cuda import dists

N, D = 400, 300  # fan_out, fan_in: 120,000 samples per check


def _variance(fan_in, fan_out, scale, mode):
    return scale / {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]


@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "fan_avg"])
def test_variance_scaling_uniform(mode):
    x = dists.VarianceScaling(scale=2.0, mode=mode, distribution="uniform").sample(
        N, D, rng=np.random.RandomState(0))
    limit = np.sqrt(3 * _variance(D, N, 2.0, mode))
    assert x.shape == (N, D) and np.abs(x).max() <= limit
    # Kolmogorov-Smirnov against U(-limit, limit): a wrong limit fails by far
    assert stats.kstest(x.ravel(), stats.uniform(-limit, 2 * limit).cdf).pvalue > 1e-3


@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "fan_avg"])
def test_variance_scaling_normal_is_truncated_at_two_sigma(mode):
    x = dists.VarianceScaling(scale=0.5, mode=mode, distribution="normal").sample(
        N, D, rng=np.random.RandomState(1))
    sigma = np.sqrt(_variance(D, N, 0.5, mode))
    assert np.abs(x).max() <= 2 * sigma
    expected = stats.truncnorm(-2, 2, scale=sigma)
    assert stats.kstest(x.ravel(), expected.cdf).pvalue > 1e-3


def test_truncated_normal_limit_and_vector_shape():
    d = dists.TruncatedNormal(mean=1.0, stddev=0.5, limit=0.3)
    x = d.sample(5000, rng=np.random.RandomState(2))
    assert x.shape == (5000,) and np.abs(x - 1.0).max() <= 0.3
    assert stats.kstest(x, stats.truncnorm(-0.6, 0.6, loc=1.0, scale=0.5).cdf).pvalue > 1e-3
    assert dists.TruncatedNormal(stddev=3).limit == 6


def test_glorot_and_he_are_variance_scaling():
    g, h = dists.Glorot(), dists.He(scale=np.sqrt(2))
    assert (g.scale, g.mode, g.distribution) == (1, "fan_avg", "uniform")
    assert (h.mode, h.distribution) == ("fan_in", "normal")
    assert h.scale == pytest.approx(2.0)  # scale ** 2: He's ReLU gain sqrt(2)


def test_bad_parameters_raise():
    with pytest.raises(nengo.exceptions.ValidationError):
        dists.VarianceScaling(mode="fan_sideways")
    with pytest.raises(nengo.exceptions.ValidationError):
        dists.Glorot(distribution="cauchy")
    with pytest.raises(nengo.exceptions.ValidationError):
        dists.TruncatedNormal(stddev=-1)


def test_transform_samples_as_in_nengo():
    """As a Connection transform: Nengo's builder samples it, so both
    simulators get the same weights from the same seed."""
    with nengo.Network(seed=4) as net:
        a = nengo.Node(np.ones(6))
        b = nengo.Node(size_in=3)
        conn = nengo.Connection(a, b, transform=dists.Glorot())
        p = nengo.Probe(b)
    with nengo.Simulator(net, progress_bar=False) as ref, \
            nengo_cuda.Simulator(net, dtype="float64", progress_bar=False) as sim:
        ref.run_steps(3)
        sim.run_steps(3)
        w = ref.data[conn].weights
        assert w.shape == (3, 6) and np.abs(w).max() <= np.sqrt(3 / 4.5)
        np.testing.assert_array_equal(sim.data[conn].weights, w)
        np.testing.assert_allclose(sim.data[p], ref.data[p], rtol=1e-12)
