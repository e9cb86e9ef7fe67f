"""Where a nengo_cuda run spends its time: seconds per instruction (native timers).

    python benchmarks/profile.py chain n_ensembles=50 n_neurons=500 dimensions=16
    python benchmarks/profile.py circconv dimensions=64 --minibatch 32 --dtype float64

Prints the run time of nengo.Simulator and nengo_cuda for the same steps, then
the instructions grouped by kind (count, operators, elements, seconds per 1000
steps, share of the run) and the slowest single instructions.
"""

import argparse
import sys
import time

import numpy as np
import nengo

from networks import build, parse_params

import nengo_cuda


def elements(instr):
    """Rough size of an instruction: its longest address or parameter array."""
    sizes = [len(v) for v in instr.ints.values()] + [len(v) for v in instr.floats.values()]
    return max(sizes, default=0)


def profile(sim, steps):
    """(total seconds, per-instruction seconds) of ``steps`` steps with timers on."""
    native = sim.backend.native
    sim.run_steps(steps)  # warm up
    native.set_profiling(True)
    start, cpu = time.perf_counter(), time.process_time()
    sim.run_steps(steps)
    total = time.perf_counter() - start
    profile.cpu_share = (time.process_time() - cpu) / total
    seconds = np.array(native.instruction_seconds())
    native.set_profiling(False)
    return total, seconds


def report(sim, total, seconds, steps, top=10):
    per_k = 1000.0 / steps
    instrs = sim.program.instructions
    kinds = {}
    for instr, s in zip(instrs, seconds):
        k = kinds.setdefault(instr.kind, [0, 0, 0, 0.0])
        k[0] += 1
        k[1] += len(instr.ops)
        k[2] += elements(instr)
        k[3] += s
    print(f"run {total * per_k:.4f} s/1000 steps; in instructions {seconds.sum() * per_k:.4f}; "
          f"outside (loop, probes, feeds) {(total - seconds.sum()) * per_k:.4f}; "
          f"process CPU time / wall time {profile.cpu_share:.2f} (all threads; < 1 under load)")
    print(f"{'kind':28s} {'instrs':>6s} {'ops':>6s} {'elements':>9s} {'s/1000':>8s} {'share':>6s}")
    for kind, (n, ops, el, s) in sorted(kinds.items(), key=lambda kv: -kv[1][3]):
        print(f"{kind:28s} {n:6d} {ops:6d} {el:9d} {s * per_k:8.4f} {s / total:6.1%}")
    print(f"\nslowest {top} instructions:")
    for i in np.argsort(-seconds)[:top]:
        instr = instrs[i]
        print(f"  #{i:<4d} {instr.kind:28s} ops {len(instr.ops):5d} elements {elements(instr):8d} "
              f"{seconds[i] * per_k:8.4f} s/1000")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("network")
    parser.add_argument("params", nargs="*", help="size parameters, name=value")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--minibatch", type=int, default=1)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--no-nengo", action="store_true", help="skip nengo.Simulator")
    args = parser.parse_args(argv)
    bench = build(args.network, **parse_params(args.params))
    if not args.no_nengo:
        with nengo.Simulator(bench.net, progress_bar=False) as ref:
            ref.run_steps(10)
            start = time.perf_counter()
            ref.run_steps(args.steps)
            t = time.perf_counter() - start
        print(f"nengo.Simulator: {t * 1000 / args.steps:.4f} s/1000 steps "
              f"(x{args.minibatch}: {t * args.minibatch * 1000 / args.steps:.4f})")
    minibatch = args.minibatch if args.minibatch > 1 else None
    with nengo_cuda.Simulator(bench.net, progress_bar=False, dtype=args.dtype,
                              minibatch_size=minibatch) as sim:
        total, seconds = profile(sim, args.steps)
        print(f"nengo_cuda {args.dtype}, minibatch {args.minibatch}: {bench.label}")
        report(sim, total, seconds, args.steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
