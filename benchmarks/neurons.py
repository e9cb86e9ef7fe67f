"""Nanoseconds per neuron update of each neuron kernel (CPU backend), alone.

    python benchmarks/neurons.py                       # float32, the CPU's widest SIMD
    python benchmarks/neurons.py --dtype float64 --simd avx2 --types LIF Tanh

One ensemble of ``--neurons`` neurons per type, driven by a constant input
(``--input``, default 0.3: about two thirds of the neurons active, intercepts
uniform in (-1, 1); 1.0: all, at their maximum rates), no connections out: the step is the neuron update plus a few small
instructions, whose share the ``neuron instr`` column removes (the native
per-instruction timers). Best of ``--repeats`` runs of ``--steps`` steps.
Alternate processes of two builds to compare them: this machine's times vary
by 10-30 % from minute to minute.
"""

import argparse
import time

import nengo
import numpy as np

import nengo_cuda
from nengo_cuda.testing import simd_level

TYPES = {
    "LIF": lambda: nengo.LIF(),
    "AdaptiveLIF": lambda: nengo.AdaptiveLIF(),
    "LIFRate": lambda: nengo.LIFRate(),
    "SoftLIFRate": lambda: nengo_cuda.SoftLIFRate(sigma=1.0),
    "Tanh": lambda: nengo.Tanh(),
    "Sigmoid": lambda: nengo.Sigmoid(),
    "RectifiedLinear": lambda: nengo.RectifiedLinear(),
}


def network(neuron_type, n_neurons, value):
    with nengo.Network(seed=1) as net:
        stim = nengo.Node(value)
        ens = nengo.Ensemble(n_neurons, 1, neuron_type=neuron_type)
        nengo.Connection(stim, ens, synapse=None)
    return net


def time_type(name, args):
    """(ns per update for the whole step, ns per update in the neuron instruction)."""
    with simd_level(args.simd):
        sim = nengo_cuda.Simulator(
            network(TYPES[name](), args.neurons, args.input),
            dtype=args.dtype,
            progress_bar=False,
            minibatch_size=args.minibatch,
        )
    with sim:
        native = sim.backend.native
        sim.run_steps(args.steps)  # warm up
        best_step = best_neuron = np.inf
        for _ in range(args.repeats):
            native.set_profiling(True)
            start = time.perf_counter()
            sim.run_steps(args.steps)
            total = time.perf_counter() - start
            seconds = np.array(native.instruction_seconds())
            native.set_profiling(False)
            kinds = [instr.kind for instr in sim.program.instructions]
            neuron = sum(s for s, k in zip(seconds, kinds) if k.startswith("neurons"))
            best_step = min(best_step, total)
            best_neuron = min(best_neuron, neuron)
    updates = args.neurons * args.minibatch * args.steps
    return 1e9 * best_step / updates, 1e9 * best_neuron / updates


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--types", nargs="+", default=list(TYPES), choices=list(TYPES))
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--simd", default="avx512", choices=["baseline", "avx2", "avx512"])
    parser.add_argument("--neurons", type=int, default=200_000)
    parser.add_argument("--input", type=float, default=0.3)
    parser.add_argument("--minibatch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"{args.dtype}, simd <= {args.simd}, {args.neurons} neurons x {args.minibatch} trials, "
          f"input {args.input}")
    print(f"{'type':16} {'ns/update':>10} {'neuron instr':>13}")
    for name in args.types:
        step, neuron = time_type(name, args)
        print(f"{name:16} {step:10.2f} {neuron:13.2f}", flush=True)


if __name__ == "__main__":
    main()
