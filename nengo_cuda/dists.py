"""NengoDL's weight-initialisation distributions (``nengo_dl.dists``).

Used as a Connection's ``transform``: Nengo samples a transform of shape
``(size_out, size_in)`` as ``dist.sample(size_out, size_in)``, so here
``fan_out = n`` and ``fan_in = d`` (1 when ``d`` is None).
"""

import numpy as np
from nengo.dists import Distribution
from nengo.params import EnumParam, NumberParam


class TruncatedNormal(Distribution):
    """A normal distribution with samples farther than ``limit`` from the mean
    drawn again (default ``limit``: two standard deviations)."""

    mean = NumberParam("mean")
    stddev = NumberParam("stddev", low=0)
    limit = NumberParam("limit", low=0, low_open=True)

    def __init__(self, mean=0, stddev=1, limit=None):
        super().__init__()
        self.mean = mean
        self.stddev = stddev
        self.limit = 2 * stddev if limit is None else limit

    def sample(self, n, d=None, rng=np.random):
        shape = self._sample_shape(n, d)
        samples = rng.normal(self.mean, self.stddev, size=shape)
        redraw = np.abs(samples - self.mean) > self.limit
        while redraw.any():
            samples[redraw] = rng.normal(self.mean, self.stddev, size=int(redraw.sum()))
            redraw = np.abs(samples - self.mean) > self.limit
        return samples


class VarianceScaling(Distribution):
    """Samples with variance ``scale / fan``: fan is ``fan_in``, ``fan_out`` or
    their mean (``mode``); uniform on ``+-sqrt(3 * scale / fan)`` or a normal
    truncated at two standard deviations (``distribution``)."""

    scale = NumberParam("scale", low=0)
    mode = EnumParam("mode", values=("fan_in", "fan_out", "fan_avg"))
    distribution = EnumParam("distribution", values=("uniform", "normal"))

    def __init__(self, scale=1, mode="fan_avg", distribution="uniform"):
        super().__init__()
        self.scale = scale
        self.mode = mode
        self.distribution = distribution

    def sample(self, n, d=None, rng=np.random):
        fan_out, fan_in = n, 1 if d is None else d
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}
        variance = self.scale / fan[self.mode]
        if self.distribution == "uniform":
            limit = np.sqrt(3.0 * variance)
            return rng.uniform(-limit, limit, size=self._sample_shape(n, d))
        return TruncatedNormal(stddev=np.sqrt(variance)).sample(n, d, rng=rng)


class Glorot(VarianceScaling):
    """Glorot and Bengio (2010) ("Xavier"): variance ``scale / fan_avg``."""

    def __init__(self, scale=1, distribution="uniform"):
        super().__init__(scale=scale, mode="fan_avg", distribution=distribution)


class He(VarianceScaling):
    """He et al. (2015): variance ``scale**2 / fan_in`` (``scale = sqrt(2)``
    for rectified linear units)."""

    def __init__(self, scale=1, distribution="normal"):
        super().__init__(scale=scale**2, mode="fan_in", distribution=distribution)


__all__ = ["Glorot", "He", "TruncatedNormal", "VarianceScaling"]
