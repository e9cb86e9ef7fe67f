"""nengo_cuda: a fast drop-in simulator for Nengo models.

``nengo_cuda.Simulator(net)`` works wherever ``nengo.Simulator(net)`` does.
Simulation never imports TensorFlow.
"""

import os

# OpenMP threads that spin-wait between parallel regions steal the core that the
# Python callbacks of the step loop need; sleeping threads cost only a wake-up.
# Must be set before the native module (and so libgomp) is loaded.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from . import config, dists, graph_optimizer  # noqa: E402,F401 (nengo_dl.config's)
from .converter import Converter  # noqa: E402,F401
from .neurons import LeakyReLU, SoftLIFRate, SpikingLeakyReLU  # noqa: E402,F401
from .simulator import Simulator  # noqa: E402,F401

# NengoDL 3's training API; none of these modules imports TensorFlow on import.
from .training import objectives as obj  # noqa: E402,F401
from .training import objectives  # noqa: E402,F401 (NengoDL 2's other name for obj)
from .training.config import configure_settings  # noqa: E402,F401
from .training.tensor_node import Layer, TensorNode, tensor_layer  # noqa: E402,F401
from .version import version as __version__  # noqa: F401


def __getattr__(name):
    # nengo_cuda.losses and .callbacks import TensorFlow: loaded on first use
    # (NengoDL's ``nengo_dl.losses.Regularize()`` works after a plain
    # ``import nengo_cuda``)
    if name in ("losses", "callbacks"):
        import importlib  # noqa: PLC0415

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
