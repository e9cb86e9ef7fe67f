"""SimNeurons lower to one kernel per neuron type over all merged populations.

Parameters are expanded to one value per neuron, so populations with different
parameters share one instruction.  Only exact neuron types with a kernel are
lowered; subclasses (which may override ``step``) run through callbacks.
"""

import numpy as np
import nengo
from nengo.builder.neurons import SimNeurons

from .. import neurons as dl_neurons
from ..program import Instruction
from .common import all_float, per_element
from .registry import register

# neuron type -> (kernel kind, state variable names, parameter names).  The
# kernels (csrc/cpu/instr_neurons.cpp) look operands up by these names.
LIF_PARAMS = ("tau_rc", "tau_ref", "amplitude")
ADAPT_PARAMS = ("tau_n", "inc_n")
NEURON_KERNELS = {
    nengo.RectifiedLinear: ("neurons_rectified_linear", (), ("amplitude",)),
    nengo.SpikingRectifiedLinear: (
        "neurons_spiking_rectified_linear",
        ("voltage",),
        ("amplitude",),
    ),
    nengo.Sigmoid: ("neurons_sigmoid", (), ("tau_ref",)),
    nengo.Tanh: ("neurons_tanh", (), ("tau_ref",)),
    nengo.LIFRate: ("neurons_lif_rate", (), LIF_PARAMS),
    nengo.LIF: (
        "neurons_lif",
        ("voltage", "refractory_time"),
        LIF_PARAMS + ("min_voltage",),
    ),
    nengo.AdaptiveLIFRate: (
        "neurons_adaptive_lif_rate",
        ("adaptation",),
        ADAPT_PARAMS + LIF_PARAMS,
    ),
    nengo.AdaptiveLIF: (
        "neurons_adaptive_lif",
        ("voltage", "refractory_time", "adaptation"),
        ADAPT_PARAMS + LIF_PARAMS + ("min_voltage",),
    ),
    nengo.Izhikevich: (
        "neurons_izhikevich",
        ("voltage", "recovery"),
        ("tau_recovery", "coupling", "reset_voltage", "reset_recovery"),
    ),
    # Nengo builds RegularSpiking as two SimNeurons ops: the base type (rates into
    # ``rate_out``, lowered on its own, natively or by callback) and this one,
    # whose step turns those rates into spikes using only ``amplitude``.  So it
    # needs no knowledge of the base type and is native for every base type.
    nengo.RegularSpiking: ("neurons_regular_spiking", ("voltage",), ("amplitude",)),
    # NengoDL's types (nengo_cuda.neurons)
    dl_neurons.LeakyReLU: ("neurons_leaky_relu", (), ("amplitude", "negative_slope")),
    dl_neurons.SpikingLeakyReLU: (
        "neurons_spiking_leaky_relu",
        ("voltage",),
        ("amplitude", "negative_slope"),
    ),
    dl_neurons.SoftLIFRate: ("neurons_soft_lif_rate", (), LIF_PARAMS + ("sigma",)),
}


@register(SimNeurons)
class SimNeuronsLowering:
    @staticmethod
    def key(op, layout):
        spec = NEURON_KERNELS.get(type(op.neurons))
        if spec is None or op.state_extra:
            return None
        _, state_names, _ = spec
        if set(op.state) != set(state_names):
            return None
        sigs = [op.J, op.output] + [op.state[name] for name in state_names]
        if not all_float(layout, sigs) or any(s.size != op.J.size for s in sigs):
            return None
        return ("neurons", type(op.neurons))

    @staticmethod
    def lower(ops, layout):
        kind, state_names, param_names = NEURON_KERNELS[type(ops[0].neurons)]
        ints = {"J": [], "out": []}
        ints.update({name: [] for name in state_names})
        floats = {name: [] for name in param_names}
        for op in ops:
            n = op.J.size
            ints["J"].append(layout.addresses(op.J).ravel())
            ints["out"].append(layout.addresses(op.output).ravel())
            for name in state_names:
                ints[name].append(layout.addresses(op.state[name]).ravel())
            for name in param_names:
                floats[name].append(per_element(getattr(op.neurons, name), n))
        return [
            Instruction(
                kind,
                ops,
                ints={k: np.concatenate(v) for k, v in ints.items()},
                floats={k: np.concatenate(v) for k, v in floats.items()},
            )
        ]
