"""Interactive loops: microseconds per ``sim.step()`` call (the Python cost of
a run, paid at every step), nengo.Simulator against nengo_cuda.

    python benchmarks/stepping.py

Two small networks where that cost is most of a step: a constant Node into
100 LIF neurons probed through a synapse, and 1000 RectifiedLinear neurons
whose input is probed (Nengo's cheapest step: two operators).  Each
simulator takes 100 warm-up steps; the time is the best of ``--repeats`` x
``--calls`` calls, both simulators in one process.
"""

import argparse
import timeit

import nengo

import nengo_cuda


def node_into_lif():
    with nengo.Network(seed=0) as net:
        ens = nengo.Ensemble(100, 1)
        nengo.Connection(nengo.Node(0.5), ens)
        nengo.Probe(ens, synapse=0.01)
    return net


def rectified_linear():
    with nengo.Network(seed=0) as net:
        ens = nengo.Ensemble(1000, 1, neuron_type=nengo.RectifiedLinear())
        nengo.Probe(ens.neurons, "input")
    return net


NETWORKS = {"node -> 100 LIF": node_into_lif, "1000 ReLU": rectified_linear}


def us_per_step(simulator, make, calls, repeats):
    with simulator(make(), progress_bar=False) as sim:
        for _ in range(100):
            sim.step()
        return min(timeit.repeat(sim.step, number=calls, repeat=repeats)) / calls * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"{'network':18s} {'nengo us':>9s} {'ours us':>8s} {'ratio':>6s}")
    for name, make in NETWORKS.items():
        theirs = us_per_step(nengo.Simulator, make, args.calls, args.repeats)
        ours = us_per_step(nengo_cuda.Simulator, make, args.calls, args.repeats)
        print(f"{name:18s} {theirs:9.1f} {ours:8.1f} {theirs / ours:6.2f}")


if __name__ == "__main__":
    main()
