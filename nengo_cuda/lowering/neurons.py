"""SimNeurons lower to one kernel per neuron type over all merged populations.

Parameters are expanded to one value per neuron, so populations with different
parameters share one instruction.  Only exact neuron types with a kernel are
lowered; subclasses (which may override ``step``) run through callbacks.

Spiking types get their spike height ``amplitude / dt`` (Izhikevich: ``1 / dt``)
as a parameter computed here in float64, as Nengo computes it before rounding
to the signal's dtype: a float32 kernel dividing float32 values would emit
999.99994 where Nengo emits 1000.0.
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
LIF_SPIKING_PARAMS = ("tau_rc", "tau_ref", "spike_height")
ADAPT_PARAMS = ("tau_n", "inc_n")
SPIKE_HEIGHT = "spike_height"  # amplitude / dt (see spike_heights)
NEURON_KERNELS = {
    nengo.RectifiedLinear: ("neurons_rectified_linear", (), ("amplitude",)),
    nengo.SpikingRectifiedLinear: (
        "neurons_spiking_rectified_linear",
        ("voltage",),
        (SPIKE_HEIGHT,),
    ),
    nengo.Sigmoid: ("neurons_sigmoid", (), ("tau_ref",)),
    nengo.Tanh: ("neurons_tanh", (), ("tau_ref",)),
    nengo.LIFRate: ("neurons_lif_rate", (), LIF_PARAMS),
    nengo.LIF: (
        "neurons_lif",
        ("voltage", "refractory_time"),
        LIF_SPIKING_PARAMS + ("min_voltage",),
    ),
    nengo.AdaptiveLIFRate: (
        "neurons_adaptive_lif_rate",
        ("adaptation",),
        ADAPT_PARAMS + LIF_PARAMS,
    ),
    nengo.AdaptiveLIF: (
        "neurons_adaptive_lif",
        ("voltage", "refractory_time", "adaptation"),
        ADAPT_PARAMS + LIF_SPIKING_PARAMS + ("min_voltage",),
    ),
    nengo.Izhikevich: (
        "neurons_izhikevich",
        ("voltage", "recovery"),
        ("tau_recovery", "coupling", "reset_voltage", "reset_recovery", SPIKE_HEIGHT),
    ),
    # Nengo builds RegularSpiking as two SimNeurons ops: the base type (rates into
    # ``rate_out``, lowered on its own, natively or by callback) and this one,
    # whose step turns those rates into spikes using only ``amplitude``.  So it
    # needs no knowledge of the base type and is native for every base type.
    nengo.RegularSpiking: ("neurons_regular_spiking", ("voltage",), (SPIKE_HEIGHT,)),
    # StochasticSpiking's kernel operator (`nengo_cuda.random_splits`: its base
    # type as for RegularSpiking; its uniform numbers read from a table into
    # ``uniform``).  Nengo's own operator, which draws them from the generator
    # in ``state_extra``, has no kernel.
    nengo.StochasticSpiking: ("neurons_stochastic_spiking", ("uniform",),
                              (SPIKE_HEIGHT, "negative")),
    # NengoDL's types (nengo_cuda.neurons)
    dl_neurons.LeakyReLU: ("neurons_leaky_relu", (), ("amplitude", "negative_slope")),
    dl_neurons.SpikingLeakyReLU: (
        "neurons_spiking_leaky_relu",
        ("voltage",),
        (SPIKE_HEIGHT, "negative_slope"),
    ),
    dl_neurons.SoftLIFRate: ("neurons_soft_lif_rate", (), LIF_PARAMS + ("sigma",)),
}


def spike_heights(neurons, n, dt):
    """Per-neuron spike height: ``amplitude / dt`` in float64 (Nengo's
    ``(self.amplitude / dt) * n_spikes``; Izhikevich's ``spiked / dt``)."""
    return per_element(getattr(neurons, "amplitude", 1.0), n) / dt


def parameter_values(neurons, name, n, dt):
    """Neuron parameter ``name`` (a NEURON_KERNELS name) of one population of
    ``n`` neurons as per-neuron float64 values."""
    if name == SPIKE_HEIGHT:
        return spike_heights(neurons, n, dt)
    return per_element(getattr(neurons, name), n)


@register(SimNeurons)
class SimNeuronsLowering:
    @staticmethod
    def key(op, layout):
        spec = NEURON_KERNELS.get(type(op.neurons))
        if spec is None or op.state_extra:
            return None
        _, state_names, param_names = spec
        if set(op.state) != set(state_names):
            return None
        if SPIKE_HEIGHT in param_names and layout.dt is None:
            return None  # a layout made without a time step: no spike height
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
                floats[name].append(parameter_values(op.neurons, name, n, layout.dt))
        return [
            Instruction(
                kind,
                ops,
                ints={k: np.concatenate(v) for k, v in ints.items()},
                floats={k: np.concatenate(v) for k, v in floats.items()},
            )
        ]
