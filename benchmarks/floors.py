"""The floor under nengo_cuda's minibatch speed-up on this machine.

    python benchmarks/floors.py                 # every network, small and large
    python benchmarks/floors.py --minibatch 32 --steps 200

For each benchmark network, per trial and step: the neuron updates ``N`` and
the multiply-adds ``M`` of its products (from the operators Nengo built:
DotInc, BsrDotInc, SparseDotInc).  No simulator can do a step of ``k`` trials
in less than ``k * (N * t_neuron + M / mac_rate)``, where, measured here:

- ``t_neuron``: our LIF update per neuron when no neuron spikes (the cheapest
  case: vectorised, no ``log1p``), timed on one ensemble of the network's
  number of neurons driven below threshold, at this minibatch (so the state
  is as large as the network's, and per-step overheads count as they do there);
- ``mac_rate``: multiply-adds per second of NumPy's BLAS on a dense float32
  product with ``k`` right-hand sides (2000 x 2000 by 2000 x k), the best a
  product kernel could do on these cores.

The bound on the speed-up over ``k`` sequential ``nengo.Simulator`` runs is
``k * nengo_step / floor``; the table prints it next to the networks' sizes.
(Spikes, filters, copies and the loop only add to the floor.)

`memory_traffic` is the other floor, the one of a GPU (docs/cuda.md): the
bytes a step must move between device memory and the chip.
"""

import argparse
import sys
import time

import numpy as np
import nengo
from nengo.builder.operator import BsrDotInc, DotInc, SparseDotInc
from nengo.builder.neurons import SimNeurons

import nengo_cuda


def best_of(fn, repeats=5):
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def work_per_step(model):
    """(neuron updates, multiply-adds) per trial and step in a built model."""
    neurons = macs = 0
    for op in model.operators:
        if isinstance(op, SimNeurons):
            neurons += op.J.size
        elif isinstance(op, SparseDotInc):
            macs += op.A.size  # stored nonzeros
        elif isinstance(op, (DotInc, BsrDotInc)):
            macs += op.A.size if op.A.ndim > 1 else op.Y.size
    return neurons, macs


def _key(sig):
    return id(sig.base), sig.elemoffset, sig.size


def memory_traffic(model, minibatch, itemsize):
    """(state bytes, constant bytes) one step of ``minibatch`` trials must move
    between memory and the chip, in a built ``model``, whatever the kernels do:

    - *state*, per trial, read and written once: the neurons' state (voltage,
      refractory time, adaptation, ...), the processes' state (filter states
      and outputs) and weights that learning rules change;
    - *constants*, shared by all trials, read once: every signal some operator
      reads and no operator writes (encoders, decoders, transforms, biases).

    Everything else a step writes (input currents, spikes, decoded values) could
    stay on the chip in a kernel that fused the whole step, so it is not
    counted.  Sparse matrices count their nonzeros plus a 4-byte column index
    each.  (Probes and feeds add a few bytes per step; not counted either.)
    """
    written, state, constants = set(), {}, {}
    for op in model.operators:
        written.update(_key(s) for s in op.sets + op.incs + op.updates)
    for op in model.operators:
        persistent = list(op.updates)
        if isinstance(op, SimNeurons):
            persistent += op.state.values()
        for sig in persistent:
            state[_key(sig)] = sig.size
        for sig in op.reads:
            if _key(sig) in written:
                if isinstance(op, (DotInc, BsrDotInc)) and sig is op.A:
                    state[_key(sig)] = sig.size  # learned weights: per trial
                continue
            size = sig.size
            if isinstance(op, SparseDotInc) and sig is op.A:
                size = op.A.size * (1 + 4 / itemsize)
            constants[_key(sig)] = size
    return (2 * minibatch * itemsize * sum(state.values()),
            itemsize * sum(constants.values()))


def neuron_floor(n, minibatch, steps):
    """Seconds per LIF update with no spikes (a silent ensemble, ``minibatch`` trials)."""
    with nengo.Network(seed=0) as net:
        nengo.Ensemble(n, 1, intercepts=nengo.dists.Uniform(0.3, 0.9))  # input 0: silent
    with nengo_cuda.Simulator(net, progress_bar=False, minibatch_size=minibatch) as sim:
        sim.run_steps(5)
        t = best_of(lambda: sim.run_steps(steps), repeats=3)
    return t / (steps * n * minibatch)


def mac_rate(minibatch, size=2000):
    rng = np.random.default_rng(0)
    A = rng.standard_normal((size, size), dtype=np.float32)
    X = rng.standard_normal((size, minibatch), dtype=np.float32)
    return size * size * minibatch / best_of(lambda: A @ X, repeats=10)


def nengo_step(net, steps):
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(10)
        t = best_of(lambda: ref.run_steps(steps), repeats=2)
        work = work_per_step(ref.model)
    return t / steps, work


def main(argv=None):
    # here, not at the top: tests import memory_traffic next to tests/networks.py
    from networks import SIZES, build  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minibatch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--sizes", nargs="+", default=["small", "large"])
    args = parser.parse_args(argv)
    k = args.minibatch
    rate = mac_rate(k)
    print(f"BLAS {rate / 1e9:.1f} G multiply-adds/s (float32, {k} right-hand sides)\n")
    print(f"| network | neurons | multiply-adds | nengo ms / step | t_neuron ns "
          f"| floor ms / step x{k} | bound on speed-up x{k} |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    bounds = []
    for size in args.sizes:
        for name, sizes in SIZES.items():
            bench = build(name, **sizes[size])
            t_nengo, (neurons, macs) = nengo_step(bench.net, args.steps)
            t_neuron = neuron_floor(neurons, k, args.steps)
            floor = k * (neurons * t_neuron + macs / rate)
            bounds.append(k * t_nengo / floor)
            print(f"| {bench.label} | {neurons} | {macs} | {t_nengo * 1e3:.3f} | "
                  f"{t_neuron * 1e9:.2f} | {floor * 1e3:.3f} | {bounds[-1]:.0f}x |", flush=True)
    print(f"\ngeometric mean of the bounds: {np.exp(np.mean(np.log(bounds))):.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
