"""NengoDL's neuron types (``nengo_dl.SoftLIFRate``, ``LeakyReLU``, ``SpikingLeakyReLU``).

Models written for NengoDL use them; here they are plain Nengo neuron types
(``nengo.Simulator`` runs their NumPy ``step``), with native kernels in
nengo_cuda (csrc/kernels/neurons.h: the same math, in the same order) and rate
equivalents for training.
"""

import numpy as np
from nengo.neurons import LIFRate, RectifiedLinear, SpikingRectifiedLinear
from nengo.params import NumberParam


def _leaky(J, negative_slope):
    return np.where(J < 0, negative_slope * J, J)


class SoftLIFRate(LIFRate):
    """LIF rates with a smoothed threshold (Hunsberger and Eliasmith, 2015).

    With ``j = J - 1`` and ``z = sigma * softplus(j / sigma)``:
    ``rate = amplitude / (tau_ref + tau_rc * log1p(1 / z))``. Far below
    threshold (``j / sigma <= -20``), where ``1 / z`` overflows, ``log1p(1 /
    z)`` is replaced by its asymptote ``-j / sigma - log(sigma)``; softplus is
    the identity above 30. As ``sigma -> 0`` this is `nengo.LIFRate`; its
    derivative is continuous, so it trains where LIF's rate curve cannot.

    Parameters
    ----------
    sigma : float
        Width of the smoothing around the threshold (larger: smoother).
    tau_rc, tau_ref, amplitude, initial_state
        As `nengo.LIFRate`.
    """

    sigma = NumberParam("sigma", low=0, low_open=True)

    def __init__(self, sigma=1.0, **lif_args):
        super().__init__(**lif_args)
        self.sigma = sigma

    def rates(self, x, gain, bias):
        """The smoothed rates at ``x`` (decoders are solved for these);
        `nengo.LIFRate.rates` would give LIF's. Gain and bias come from LIF's
        curve, as in NengoDL."""
        J = self.current(x, gain, bias)
        out = np.zeros_like(J)
        self.step(dt=1, J=J, output=out)
        return out

    def step(self, dt, J, output):
        js = (J - 1) / self.sigma
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            z = np.where(js > 30, js, np.log1p(np.exp(js))) * self.sigma
            q = np.where(js > -20, np.log1p(1 / z), -js - np.log(self.sigma))
        output[...] = self.amplitude / (self.tau_ref + self.tau_rc * q)


class LeakyReLU(RectifiedLinear):
    """Rectified linear rates with slope ``negative_slope`` below zero.

    ``rate = amplitude * (J if J >= 0 else negative_slope * J)``.
    """

    negative_slope = NumberParam("negative_slope")

    def __init__(self, negative_slope=0.3, amplitude=1, initial_state=None):
        super().__init__(amplitude=amplitude, initial_state=initial_state)
        self.negative_slope = negative_slope

    def step(self, dt, J, output):
        output[...] = self.amplitude * _leaky(J, self.negative_slope)


class SpikingLeakyReLU(SpikingRectifiedLinear):
    """Spiking `LeakyReLU`: spikes of either sign at LeakyReLU's rate.

    ``voltage += (J if J >= 0 else negative_slope * J) * dt``; then
    ``n = trunc(voltage)`` spikes of height ``amplitude / dt`` (negative below
    zero) and ``voltage -= n``.
    """

    negative_slope = NumberParam("negative_slope")

    def __init__(self, negative_slope=0.3, amplitude=1, initial_state=None):
        super().__init__(amplitude=amplitude, initial_state=initial_state)
        self.negative_slope = negative_slope

    def rates(self, x, gain, bias):
        J = self.current(x, gain, bias)
        return self.amplitude * _leaky(J, self.negative_slope)

    def step(self, dt, J, output, voltage):
        voltage += _leaky(J, self.negative_slope) * dt
        n_spikes = np.trunc(voltage)
        output[...] = (self.amplitude / dt) * n_spikes
        voltage -= n_spikes


__all__ = ["LeakyReLU", "SoftLIFRate", "SpikingLeakyReLU"]
