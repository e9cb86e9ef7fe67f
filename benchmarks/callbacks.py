"""Python Nodes: microseconds per step of networks whose Nodes run Python
functions (the per-step trips to Python), nengo.Simulator against nengo_cuda.

    python benchmarks/callbacks.py
    python benchmarks/callbacks.py --nodes 1 10 30 --outputs

Each of ``--nodes`` Python input Nodes (``sin(t + i)``) drives an ensemble of
50 LIF neurons, probed; with ``--outputs`` each ensemble also drives a Python
output Node (``2 x``).  Best of ``--repeats`` runs of ``--steps`` steps, both
simulators in one process.
"""

import argparse
import time

import nengo
import numpy as np

import nengo_cuda


def network(n_nodes, outputs):
    with nengo.Network(seed=0) as net:
        for i in range(n_nodes):
            stim = nengo.Node(lambda t, i=i: np.sin(t + i))
            ens = nengo.Ensemble(50, 1)
            nengo.Connection(stim, ens)
            nengo.Probe(ens, synapse=0.01)
            if outputs:
                out = nengo.Node(lambda t, x: 2 * x, size_in=1)
                nengo.Connection(ens, out)
    return net


def us_per_step(simulator, net, steps, repeats):
    with simulator(net, progress_bar=False) as sim:
        sim.run_steps(steps // 10)  # warm up
        best = np.inf
        for _ in range(repeats):
            start = time.perf_counter()
            sim.run_steps(steps)
            best = min(best, time.perf_counter() - start)
    return 1e6 * best / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 10, 30])
    parser.add_argument("--outputs", action="store_true", help="a Python output Node each too")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"{'nodes':>5} {'nengo us/step':>14} {'nengo_cuda':>11} {'speed-up':>9}")
    for n in args.nodes:
        net = network(n, args.outputs)
        ref = us_per_step(nengo.Simulator, net, args.steps, args.repeats)
        ours = us_per_step(nengo_cuda.Simulator, net, args.steps, args.repeats)
        print(f"{n:5d} {ref:14.1f} {ours:11.1f} {ref / ours:9.1f}", flush=True)


if __name__ == "__main__":
    main()
