"""Synapses: microseconds per step of an ensemble feeding another through a
synapse, nengo.Simulator against nengo_cuda with the synapses' kernels and
with the synapses run as Python callbacks (their lowerings switched off; the
probe's Lowpass too).

    python benchmarks/synapses.py
    python benchmarks/synapses.py --neurons 2000 --dims 16

Best of ``--repeats`` runs of ``--steps`` steps (float32, CPU backend), all
simulators in one process.
"""

import argparse
import contextlib

import nengo
import numpy as np

import nengo_cuda
from nengo_cuda.lowering import processes
from callbacks import us_per_step

SYNAPSES = {
    "Lowpass(0.005)": lambda: nengo.Lowpass(0.005),
    "Alpha(0.005)": lambda: nengo.Alpha(0.005),
    "Triangle(0.01)": lambda: nengo.synapses.Triangle(0.01),
}


def network(synapse, neurons, dims):
    with nengo.Network(seed=1) as net:
        stim = nengo.Node(np.sin)
        a = nengo.Ensemble(neurons, dims)
        nengo.Connection(stim, a[0])
        b = nengo.Ensemble(neurons, dims)
        nengo.Connection(a, b, synapse=synapse)
        nengo.Probe(b, synapse=0.01)
    return net


@contextlib.contextmanager
def as_callbacks():
    """Synapses built while active run as Python callbacks (Nengo's step)."""
    saved = processes._filter_step, processes._triangle_coefficients
    processes._filter_step = processes._triangle_coefficients = lambda op, layout: None
    try:
        yield
    finally:
        processes._filter_step, processes._triangle_coefficients = saved


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neurons", type=int, default=500)
    parser.add_argument("--dims", type=int, default=4)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"{'synapse':>16} {'nengo us/step':>14} {'callback':>9} {'kernel':>7}")
    for name, make in SYNAPSES.items():
        net = network(make(), args.neurons, args.dims)
        ref = us_per_step(nengo.Simulator, net, args.steps // 4, args.repeats)
        with as_callbacks():
            slow = us_per_step(nengo_cuda.Simulator, net, args.steps, args.repeats)
        fast = us_per_step(nengo_cuda.Simulator, net, args.steps, args.repeats)
        print(f"{name:>16} {ref:14.1f} {slow:9.1f} {fast:7.1f}", flush=True)


if __name__ == "__main__":
    main()
