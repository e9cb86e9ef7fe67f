"""Where a CUDA-backend step spends its time, per launch group (instruction or batch).

    python benchmarks/device_profile.py chain n_ensembles=50 n_neurons=500 dimensions=16 \
        --minibatch 64
    python benchmarks/device_profile.py tutorial --device cuda-emulator --steps 50

Runs the steps without graphs, each launch group (one instruction, a merged
batch of element-wise instructions, the feeds, the probes, a callback, the
step counter's advance) issued directly with a timing mark after it: CUDA
events on the GPU, the host clock on the emulator.  A group's time is its
kernels' device time plus the gap before them (the device idles while the host
issues small kernels), so an upper bound per kernel; the graph run, timed next
to it, is the real total.  See docs/cuda.md, "Profiling a step".
"""

import argparse
import sys
import time

import nengo_cuda


def profile_device(sim, steps, graph_steps=0):
    """Profiles ``steps`` steps of ``sim``, a `nengo_cuda.Simulator` on device
    "cuda" or "cuda-emulator".

    The steps are real: they advance the simulation and record probe data
    exactly as ``sim.run_steps(steps)`` would.  With ``graph_steps``, that many
    more steps then run as usual (graphs) and are timed for comparison.
    Returns a dict: ``rows`` (see `profile_rows`), ``steps``,
    ``timed_us_per_step`` (the groups' sum), ``wall_us_per_step`` (host time of
    the profiled loops), ``graph_us_per_step`` (None without ``graph_steps``),
    ``idle`` (instructions that launch nothing).
    """
    backend = getattr(sim, "backend", None)
    if not hasattr(backend, "profiling"):
        raise ValueError(
            f"profile_device needs device 'cuda' or 'cuda-emulator' (got a "
            f"{type(backend).__name__}); benchmarks/profile.py profiles the CPU backend"
        )
    with backend.profiling() as runs:
        sim.run_steps(steps, progress_bar=False)
    rows = profile_rows(runs, sim.program.instructions)
    n = sum(r["steps"] for r in runs)
    out = {
        "rows": rows,
        "steps": n,
        "timed_us_per_step": sum(r["us_per_step"] for r in rows),
        "wall_us_per_step": 1e6 * sum(r["wall_s"] for r in runs) / max(n, 1),
        "graph_us_per_step": None,
        "idle": sorted({i for r in runs for i in r["idle"]}),
    }
    if graph_steps:
        start = time.perf_counter()
        sim.run_steps(graph_steps, progress_bar=False)
        out["graph_us_per_step"] = 1e6 * (time.perf_counter() - start) / graph_steps
    return out


def profile_rows(runs, instructions=None):
    """One row per launch group, summed over the results of `CudaBackend.profile`
    in ``runs`` (the chunks of one or more runs): ``group`` (launch order),
    ``instrs`` (instruction indices), ``span`` (them, compactly), ``kinds``,
    ``launches`` (per step), ``phases`` (in graph runs: phases of a shared
    launch; 0: launched alone), ``us_per_step`` and ``share`` of the groups' sum;
    with the program's ``instructions``, ``ops``: the Nengo operators covered."""
    merged = {}
    for run in runs:
        for k, g in enumerate(run["groups"]):
            # position too: feed groups at different places cover no instruction
            key = (k, tuple(g["instrs"]), tuple(g["kinds"]))
            row = merged.setdefault(key, {"group": k, "instrs": list(g["instrs"]),
                                          "kinds": "+".join(g["kinds"]),
                                          "launches": g["launches"],
                                          "phases": g.get("phases", 0), "seconds": 0.0})
            row["seconds"] += g["seconds"]
    steps = max(1, sum(r["steps"] for r in runs))
    total = sum(r["seconds"] for r in merged.values()) or 1.0
    rows = []
    for row in merged.values():
        seconds = row.pop("seconds")
        row["span"] = span(row["instrs"])
        row["us_per_step"] = 1e6 * seconds / steps
        row["share"] = seconds / total
        if instructions is not None:
            row["ops"] = sum(len(instructions[i].ops) for i in row["instrs"])
        rows.append(row)
    return rows


def span(indices):
    """Instruction indices compactly: [3, 4, 5, 9] -> "#3-5,9"; [] -> "-"."""
    if not indices:
        return "-"
    runs = [[indices[0], indices[0]]]
    for i in indices[1:]:
        if i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return "#" + ",".join(f"{lo}" if lo == hi else f"{lo}-{hi}" for lo, hi in runs)


def format_profile(prof, top=None, title=""):
    """Lines of a table of ``prof`` (from `profile_device`): the ``top`` slowest
    groups (all if None), slowest first, and the totals."""
    rows = sorted(prof["rows"], key=lambda r: -r["us_per_step"])
    shown = rows if top is None else rows[:top]
    lines = [title] if title else []
    lines.append(f"{'group':>5s} {'instrs':14s} {'kinds':34s} {'ops':>5s} {'launch':>6s} "
                 f"{'phases':>6s} {'us/step':>9s} {'share':>6s}")
    for r in shown:
        ops = r.get("ops")
        lines.append(f"{r['group']:5d} {r['span'][:14]:14s} {r['kinds'][:34]:34s} "
                     f"{'-' if ops is None else ops:>5} "
                     f"{r['launches']:6d} {r.get('phases') or '-':>6} "
                     f"{r['us_per_step']:9.2f} {r['share']:6.1%}")
    if len(shown) < len(rows):
        rest = rows[len(shown):]
        lines.append(f"{'':5s} {'':14s} {f'({len(rest)} more groups)':34s} {'':5s} "
                     f"{sum(r['launches'] for r in rest):6d} {'':6s} "
                     f"{sum(r['us_per_step'] for r in rest):9.2f} "
                     f"{sum(r['share'] for r in rest):6.1%}")
    graph = prof.get("graph_us_per_step")
    lines.append(f"groups {prof['timed_us_per_step']:.2f} us/step, profiled wall "
                 f"{prof['wall_us_per_step']:.2f} us/step"
                 + (f", graph run {graph:.2f} us/step" if graph else "")
                 + f" ({prof['steps']} steps, "
                 f"{sum(r['launches'] for r in prof['rows'])} launches/step)")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("network")
    parser.add_argument("params", nargs="*", help="size parameters, name=value")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--minibatch", type=int, default=1)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cuda-emulator"])
    parser.add_argument("--top", type=int, default=None)
    args = parser.parse_args(argv)
    # (imported here: tests import this module next to their own `networks`)
    from networks import build, parse_params  # noqa: PLC0415

    bench = build(args.network, **parse_params(args.params))
    minibatch = args.minibatch if args.minibatch > 1 else None
    with nengo_cuda.Simulator(bench.net, progress_bar=False, dtype=args.dtype, device=args.device,
                              minibatch_size=minibatch) as sim:
        sim.run_steps(20, progress_bar=False)  # warm up: configuration, graph capture
        prof = profile_device(sim, args.steps, graph_steps=args.steps)
    title = f"{bench.label}, {args.dtype}, minibatch {args.minibatch}, device {args.device}"
    print("\n".join(format_profile(prof, args.top, title)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
