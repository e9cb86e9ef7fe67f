"""How often a LIF update's rare branches run per warp, from real spike trains.

    python3 benchmarks/branch_stats.py chain --minibatch 8

Runs a benchmark network (benchmarks/networks.py, "large" sizes) on the CPU
backend with a minibatch, probes the neurons of its first, middle and last
ensembles, and counts, for a device thread of TT trials (NC_NEURON_TRIALS)
in warps of 32 consecutive neurons, how many times a warp runs the spike
branch (log1p of the spike time; the partial-step branch, expm1, follows
each spike one step later, as often):

- in trial order: the trials of the TT in which any lane spikes;
- deferred (NC_NEURON_DEFER): the most trials any one lane spikes in;
- a warp-wide queue (not built): rounds of 32 over all the warp's spikes.

docs/cuda.md, "Deferred rare branches", uses these numbers.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(1, str(Path(__file__).resolve().parent))


def branch_counts(spikes, trials_per_thread=8, warp=32):
    """spikes: bool [steps, trials, neurons].  Mean per (step, warp, thread
    group of trials): (trial order, deferred, warp queue) branch runs, as
    described in the module docstring.  Trials and neurons that do not fill a
    group or a warp are left out."""
    steps, n_trials, n = spikes.shape
    tt = trials_per_thread
    if n_trials < tt or n < warp:
        raise ValueError(f"need at least {tt} trials and {warp} neurons, got {n_trials}, {n}")
    s = spikes[:, : n_trials // tt * tt, : n // warp * warp]
    s = s.reshape(steps, n_trials // tt, tt, n // warp, warp)
    trial_order = s.any(axis=4).sum(axis=2).mean()
    deferred = s.sum(axis=2).max(axis=-1).mean()
    queue = np.ceil(s.sum(axis=(2, 4)) / warp).mean()
    return float(trial_order), float(deferred), float(queue)


def main(argv=None):
    import nengo  # noqa: PLC0415

    import nengo_cuda  # noqa: PLC0415
    import networks  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("network", choices=sorted(networks.SIZES))
    parser.add_argument("--minibatch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--trials-per-thread", type=int, default=8)
    args = parser.parse_args(argv)
    bench = networks.build(args.network, **networks.SIZES[args.network]["large"])
    ensembles = bench.net.all_ensembles
    chosen = sorted({0, len(ensembles) // 2, len(ensembles) - 1})
    with bench.net:
        probes = [nengo.Probe(ensembles[i].neurons) for i in chosen]
    with nengo_cuda.Simulator(bench.net, device="cpu", minibatch_size=args.minibatch,
                              progress_bar=False) as sim:
        sim.run_steps(args.steps)
        for i, p in zip(chosen, probes):
            spikes = (np.asarray(sim.data[p]) > 0).transpose(1, 0, 2)[args.steps // 3:]
            order, deferred, queue = branch_counts(spikes, args.trials_per_thread)
            print(f"{args.network} ensemble {i} ({ensembles[i].n_neurons} neurons, "
                  f"minibatch {args.minibatch}): spikes per neuron-step {spikes.mean():.3f}; "
                  f"spike-branch runs per warp and {args.trials_per_thread} trials: "
                  f"trial order {order:.2f}, deferred {deferred:.2f}, warp queue {queue:.2f}")


if __name__ == "__main__":
    main()
