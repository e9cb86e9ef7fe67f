"""nengo_cuda: a fast drop-in simulator for Nengo models.

``nengo_cuda.Simulator(net)`` works wherever ``nengo.Simulator(net)`` does.
Simulation never imports TensorFlow.
"""

from .simulator import Simulator  # noqa: F401
from .version import version as __version__  # noqa: F401
