"""`make bench` / `python -m benchmarks`: nengo_cuda against nengo.Simulator.

For each standard network (`networks.SIZES`) at each size: one untimed build to
fill Nengo's decoder cache, then a timed build and ``--repeats`` timed runs of
``--steps`` steps of nengo.Simulator and of nengo_cuda (float32 and float64, at
minibatch 1 and 32), all in this process; the run time is the best of the
repeats.  A minibatch of k trials is compared with k sequential nengo.Simulator
runs: Nengo's time for one run, times k.

Prints a table and a summary against the targets, and writes the numbers (with
the machine, load, date and git commit) as JSON and a plot (PNG) to ``results/``.

    python -m benchmarks              # small and large sizes (a few minutes)
    python -m benchmarks --quick      # small sizes only (under a minute)
    python -m benchmarks --networks chain pes --sizes large
"""

import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import nengo

from harness import compare, fmt, format_table, geomean, measure_all, variants
from networks import SIZES, build, n_neurons

import nengo_cuda
from nengo_cuda import _native

ROOT = Path(__file__).resolve().parent.parent

# Environment variables that change how the native kernels use threads.
THREAD_ENV = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_PROC_BIND")

# Targets (issue 5), as ratios to nengo.Simulator in the same run.
TARGET_GEOMEAN_SPEEDUP = 10.0  # float32, minibatch 1, geometric mean over the suite
TARGET_MINIBATCH_SPEEDUP = 100.0  # float32, minibatch 32 vs 32 sequential Nengo runs
TARGET_BUILD_RATIO = 1.5  # nengo_cuda build / Nengo build
MINIBATCH = 32


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit():
    """HEAD's short hash, with ``-dirty`` when the working tree has changes."""
    def git(*args):
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short=12", "HEAD")
        return commit + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def load_average():
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def environment(args, suite):
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(affinity) if affinity else os.cpu_count(),
        "load_average_start": load_average(),
        "thread_env": {k: os.environ[k] for k in THREAD_ENV if k in os.environ},
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "nengo": nengo.__version__,
        "nengo_cuda": nengo_cuda.__version__,
        "openmp": bool(_native.openmp),
        "backend": "cpu",
        "suite": suite,
        "steps": args.steps,
        "repeats": args.repeats,
        "build_budget_s": args.build_budget,
        "minibatch_sizes": args.minibatch,
        "dtypes": args.dtypes,
    }


def header(env):
    return "\n".join([
        f"nengo_cuda {env['nengo_cuda']} benchmark ({env['suite']}), {env['date']}, "
        f"commit {env['commit']}",
        f"machine: {env['cpu']}, {env['cores']} cores ({env['cores_usable']} usable), "
        f"load {env['load_average_start']} at start, {env['load_average_end']} at end, "
        f"OpenMP {env['openmp']}"
        + "".join(f", {k}={v}" for k, v in env["thread_env"].items()),
        f"python {env['python']}, numpy {env['numpy']}, nengo {env['nengo']}; "
        f"{env['steps']} steps, run time best of {env['repeats']}, build time (minibatch 1) "
        f"best of up to 5 interleaved builds ({env['build_budget_s']:g} s of extra rounds), "
        "decoder cache warm",
    ])


def finite_or_none(x):
    return x if x is None or math.isfinite(x) else None


def bench_network(name, size, params, args, progress):
    """Measures every simulator variant on one network; one JSON-ready record each."""
    bench = build(name, **params)
    neurons = n_neurons(bench.net)
    print(f"{progress} {bench.label} ({size}, {neurons} neurons):", end="", flush=True)
    started = last = time.perf_counter()

    def report(variant):
        nonlocal last
        now = time.perf_counter()
        if variant is not None:
            print(f" {variant.label.replace('nengo_cuda ', '')}", end="", flush=True)
        else:
            print(f" ({now - last:.0f} s)", end="", flush=True)
        last = now

    variant_list = variants(args.dtypes, args.minibatch)
    if args.quick:  # float64 at minibatch 1 only
        variant_list = [v for v in variant_list if v.minibatch == 1 or v.dtype == "float32"]
    results = measure_all(bench, args.steps, args.repeats, report, variant_list,
                          build_budget_s=args.build_budget)
    print(f"  total {time.perf_counter() - started:.0f} s")
    records = []
    for row in compare(results):
        best = row.pop("best_run_s")
        per_s = args.steps / best
        records.append({
            "network": bench.name,
            "size": size,
            "label": bench.label,
            "params": bench.params,
            "neurons": neurons,
            **row,
            "run_s_per_1000_steps": best * 1000 / args.steps,
            "steps_per_s": per_s,
            "neuron_updates_per_s": per_s * neurons * row["minibatch"],
            "max_abs_diff": finite_or_none(row["max_abs_diff"]),
        })
    return records


def table(records):
    rows = [
        [
            rec["label"],
            rec["simulator"],
            fmt(rec["build_s"], ".3f"),
            fmt(rec["build_ratio"], ".2f"),
            fmt(rec["run_s_per_1000_steps"], ".4f"),
            fmt(rec["steps_per_s"], ".0f"),
            fmt(rec["neuron_updates_per_s"], ".2e"),
            fmt(rec["run_speedup"], ".1f"),
            fmt(None if rec["peak_bytes"] is None else rec["peak_bytes"] / 2**20, ".0f"),
            fmt(rec["max_abs_diff"], ".1e"),
        ]
        for rec in records
    ]
    return format_table(
        ["network", "simulator", "build s", "build/nengo", "s/1000 steps", "steps/s",
         "neuron upd/s", "speed-up", "peak MiB", "max|diff|"],
        rows,
        left=2,
    )


def summarize(records):
    """Per (dtype, minibatch): geometric-mean and worst speed-up, worst build ratio."""
    out = []
    keys = sorted({(r["dtype"], r["minibatch"]) for r in records if r["dtype"]},
                  key=lambda k: (k[1], k[0]))
    for dtype, mb in keys:
        rows = [r for r in records if r["dtype"] == dtype and r["minibatch"] == mb]
        worst = min(rows, key=lambda r: r["run_speedup"])
        slowest_build = max(rows, key=lambda r: r["build_ratio"])
        out.append({
            "dtype": dtype,
            "minibatch": mb,
            "networks": len(rows),
            "geomean_speedup": geomean([r["run_speedup"] for r in rows]),
            "min_speedup": worst["run_speedup"],
            "min_speedup_network": worst["label"],
            "max_build_ratio": slowest_build["build_ratio"],
            "max_build_ratio_network": slowest_build["label"],
        })
    return out


def summary_text(summary):
    lines = []
    for s in summary:
        lines.append(
            f"{s['dtype']} minibatch {s['minibatch']:>2}: geometric-mean speed-up "
            f"{s['geomean_speedup']:.1f}x over {s['networks']} runs, slowest "
            f"{s['min_speedup']:.1f}x ({s['min_speedup_network']}); build at most "
            f"{s['max_build_ratio']:.2f}x Nengo's ({s['max_build_ratio_network']})"
        )
    return "\n".join(lines)


def targets(summary):
    """The issue's targets (float32), each with its measured value and whether it is met."""
    by = {(s["dtype"], s["minibatch"]): s for s in summary}
    out = []
    s1 = by.get(("float32", 1))
    if s1:
        out.append(("geomean speed-up, float32, minibatch 1", s1["geomean_speedup"],
                    f">= {TARGET_GEOMEAN_SPEEDUP:g}", s1["geomean_speedup"] >= TARGET_GEOMEAN_SPEEDUP))
    smb = by.get(("float32", MINIBATCH))
    if smb:
        out.append((f"geomean speed-up, float32, minibatch {MINIBATCH} vs {MINIBATCH} Nengo runs",
                    smb["geomean_speedup"], f">= {TARGET_MINIBATCH_SPEEDUP:g}",
                    smb["geomean_speedup"] >= TARGET_MINIBATCH_SPEEDUP))
        out.append((f"slowest network, float32, minibatch {MINIBATCH}", smb["min_speedup"],
                    f">= {TARGET_MINIBATCH_SPEEDUP:g}", smb["min_speedup"] >= TARGET_MINIBATCH_SPEEDUP))
    mb1 = [s for s in summary if s["minibatch"] == 1]
    if mb1:
        worst_build = max(s["max_build_ratio"] for s in mb1)
        out.append(("build / Nengo's build, minibatch 1 (worst run)", worst_build,
                    f"<= {TARGET_BUILD_RATIO:g}", worst_build <= TARGET_BUILD_RATIO))
    if summary:
        slowest = min(s["min_speedup"] for s in summary)
        out.append(("slowest run, any variant (no network slower than Nengo)", slowest,
                    "> 1", slowest > 1))
    return out


def plot(records, summary, env, path):
    """Speed-up over nengo.Simulator per network and variant (log scale), as PNG."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    labels = list(dict.fromkeys(r["label"] for r in records))
    sims = list(dict.fromkeys(r["simulator"] for r in records if r["dtype"]))
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(15, 0.45 * len(labels) + 2.5),
                                 gridspec_kw={"width_ratios": [3, 1]})
    height = 0.8 / max(1, len(sims))
    y = np.arange(len(labels))
    for i, sim in enumerate(sims):
        vals = [next((r["run_speedup"] for r in records
                      if r["label"] == lab and r["simulator"] == sim), np.nan) for lab in labels]
        ax.barh(y + (i - (len(sims) - 1) / 2) * height, vals, height, label=sim)
    ax.set_xscale("log")
    ax.set_yticks(y)
    ax.set_yticklabels(labels)
    ax.invert_yaxis()
    ax.axvline(1, color="k", lw=1)
    ax.axvline(TARGET_GEOMEAN_SPEEDUP, color="C0", ls="--", lw=1, label="10x (minibatch 1 target)")
    ax.axvline(TARGET_MINIBATCH_SPEEDUP, color="C2", ls="--", lw=1,
               label=f"100x (minibatch {MINIBATCH} target)")
    ax.set_xlabel("run speed-up over nengo.Simulator (minibatch k: over k Nengo runs)")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", which="both", alpha=0.3)
    ax.set_title(f"nengo_cuda {env['nengo_cuda']} ({env['commit']}), {env['cpu']}, "
                 f"{env['cores']} cores, load {env['load_average_start']}", fontsize=9)
    for i, lab in enumerate(labels):
        vals = [r["build_ratio"] for r in records
                if r["label"] == lab and r["dtype"] and r["minibatch"] == 1]
        bx.barh(i, max(vals) if vals else np.nan, color="C7")
    bx.axvline(TARGET_BUILD_RATIO, color="C3", ls="--", lw=1, label="1.5x target")
    bx.set_yticks(y)
    bx.set_yticklabels([])
    bx.invert_yaxis()
    bx.set_xlabel("build time / Nengo's (worst dtype)")
    bx.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def private_decoder_cache(path):
    """Uses a decoder cache of our own: the shared default one may be locked by other
    processes (Nengo then makes it read-only, and every build solves decoders again)."""
    path.mkdir(parents=True, exist_ok=True)
    nengo.rc.set("decoder_cache", "path", str(path))


def suite_entries(args):
    sizes = ["small"] if args.quick else args.sizes
    names = args.networks or list(SIZES)
    for name in names:
        if name not in SIZES:
            raise SystemExit(f"unknown network {name!r}; known: {', '.join(SIZES)}")
    return [(name, size, SIZES[name][size]) for size in sizes for name in names]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small sizes only, 2 repeats (finishes in under a minute)")
    parser.add_argument("--networks", nargs="+", metavar="NAME",
                        help=f"subset of the networks ({', '.join(SIZES)})")
    parser.add_argument("--sizes", nargs="+", choices=["small", "large"],
                        default=["small", "large"])
    parser.add_argument("--minibatch", nargs="+", type=int, default=[1, MINIBATCH],
                        help="nengo_cuda minibatch sizes")
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"],
                        choices=["float32", "float64"])
    parser.add_argument("--steps", type=int, default=1000, help="steps per timed run")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed runs per simulator, the best counts (default 3; --quick 2)")
    parser.add_argument("--build-budget", type=float, default=None,
                        help="build Nengo and the minibatch-1 variants up to 4 times more, "
                             "interleaved, until these rounds have taken this many seconds; "
                             "the fastest build counts (default 20; --quick 1)")
    parser.add_argument("--out", type=Path, default=None,
                        help="results folder (default: results/ in the repository)")
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 2 if args.quick else 3
    if args.build_budget is None:
        args.build_budget = 1.0 if args.quick else 20.0
    if args.steps < 1 or args.repeats < 1 or min(args.minibatch) < 1:
        parser.error("--steps, --repeats and --minibatch must be at least 1")

    suite = "quick" if args.quick else "full"
    entries = suite_entries(args)
    out_dir = args.out or ROOT / "results"
    private_decoder_cache(out_dir / "decoder_cache")
    env = environment(args, suite)
    print(f"nengo_cuda benchmark ({suite}): {len(entries)} networks, nengo.Simulator and "
          f"nengo_cuda {'/'.join(args.dtypes)} at minibatch {'/'.join(map(str, args.minibatch))}, "
          f"load {env['load_average_start']}")
    records = []
    started = time.perf_counter()
    for i, (name, size, params) in enumerate(entries):
        records.extend(bench_network(name, size, params, args, f"[{i + 1}/{len(entries)}]"))
    env["load_average_end"] = load_average()
    env["wall_s"] = round(time.perf_counter() - started, 1)

    summary = summarize(records)
    checks = targets(summary)
    print()
    print(header(env))
    print("build/nengo: build time over nengo.Simulator's; speed-up: nengo.Simulator's run time "
          "(times k for minibatch k) over ours; neuron upd/s counts every trial; peak MiB: "
          "resident memory gained during build and runs; max|diff|: trial 0's probe vs Nengo's")
    print(table(records))
    print()
    print(summary_text(summary))
    print("\ntargets:")
    for what, value, goal, ok in checks:
        print(f"  {'met ' if ok else 'MISS'}  {what}: {value:.2f} ({goal})")

    stamp = env["date"].replace(":", "").replace("-", "").split("+")[0]
    base = out_dir / f"bench-{suite}-{stamp}-{env['commit']}"
    json_path = base.with_suffix(".json")
    json_path.write_text(json.dumps({
        "environment": env,
        "summary": summary,
        "targets": [dict(what=w, value=v, goal=g, met=ok) for w, v, g, ok in checks],
        "results": records,
    }, indent=2) + "\n")
    written = [json_path]
    try:
        plot(records, summary, env, base.with_suffix(".png"))
        written.append(base.with_suffix(".png"))
    except ImportError as e:
        print(f"(no plot: {e})")
    for path in written:
        print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    print(f"({env['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
