"""`make bench`: nengo_cuda against nengo.Simulator on the benchmark networks.

For each network: one untimed build to fill Nengo's decoder cache, then for
nengo.Simulator and nengo_cuda (float32 and float64, one trial) a timed build
and ``--repeats`` timed runs of ``--steps`` steps, all in this process; the run
time is the best of the repeats.  Prints a table and writes the numbers, the
machine, the date and the git commit to ``results/`` as JSON.

    python benchmarks/run.py            # tutorial and chain 50 x 500 x 16
    python benchmarks/run.py --quick    # tutorial and chain 10 x 100 x 8 (< 1 min)
"""

import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import nengo

from harness import compare, fmt, format_table, measure_all
from networks import build

import nengo_cuda
from nengo_cuda import _native

ROOT = Path(__file__).resolve().parent.parent

# Environment variables that change how the native kernels use threads.
THREAD_ENV = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_PROC_BIND")

# (network name, size parameters) per suite; add entries here as networks are added.
# The table labels a network by its sizes in this order: chain N x n x D.
SUITES = {
    "full": [("tutorial", {}), ("chain", dict(n_ensembles=50, n_neurons=500, dimensions=16))],
    "quick": [("tutorial", {}), ("chain", dict(n_ensembles=10, n_neurons=100, dimensions=8))],
}


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


def environment(args, suite):
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    load = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(affinity) if affinity else os.cpu_count(),
        "load_average": load,
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
        "minibatch": 1,
    }


def header(env):
    return "\n".join([
        f"nengo_cuda {env['nengo_cuda']} benchmark ({env['suite']}), {env['date']}, "
        f"commit {env['commit']}",
        f"machine: {env['cpu']}, {env['cores']} cores ({env['cores_usable']} usable), "
        f"load {env['load_average']}, OpenMP {env['openmp']}"
        + "".join(f", {k}={v}" for k, v in env["thread_env"].items()),
        f"python {env['python']}, numpy {env['numpy']}, nengo {env['nengo']}; "
        f"{env['steps']} steps, run time best of {env['repeats']}, minibatch {env['minibatch']}, "
        "decoder cache warm",
    ])


def finite_or_none(x):
    return x if x is None or math.isfinite(x) else None


def bench_network(name, params, args):
    """Measures every simulator on one network; one JSON-ready record each."""
    bench = build(name, **params)
    print(f"{bench.label}: ", end="", flush=True)
    def report(label):
        print(f"{label}... ", end="", flush=True)

    results = measure_all(bench, args.steps, args.repeats, report=report)
    print("done")
    records = []
    for row in compare(results):
        best = row.pop("best_run_s")
        records.append({
            "network": bench.name,
            "label": bench.label,
            "params": bench.params,
            **row,
            "run_s_per_1000_steps": best * 1000 / args.steps,
            "steps_per_s": args.steps / best,
            "max_abs_diff": finite_or_none(row["max_abs_diff"]),
        })
    return records


def table(records):
    rows = [
        [
            rec["label"],
            rec["simulator"],
            fmt(rec["build_s"], ".3f"),
            fmt(rec["run_s_per_1000_steps"], ".3f"),
            fmt(rec["steps_per_s"], ".0f"),
            fmt(rec["build_speedup"], ".2f"),
            fmt(rec["run_speedup"], ".2f"),
            fmt(rec["max_abs_diff"], ".1e"),
        ]
        for rec in records
    ]
    return format_table(
        ["network", "simulator", "build s", "run s/1000 steps", "steps/s",
         "build x", "run x", "max |diff|"],
        rows,
        left=2,
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small networks only (finishes in under a minute)")
    parser.add_argument("--steps", type=int, default=1000, help="steps per timed run")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs per simulator; the best counts")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON file to write (default: results/bench-<date>-<commit>.json)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.repeats < 1:
        parser.error("--steps and --repeats must be at least 1")

    suite = "quick" if args.quick else "full"
    env = environment(args, suite)
    records = []
    for name, params in SUITES[suite]:
        records.extend(bench_network(name, params, args))

    print()
    print(header(env))
    print("build x / run x: speed-up over nengo.Simulator (> 1 is faster); "
          "max |diff|: largest difference of the probed output from nengo.Simulator's")
    print(table(records))

    out = args.out
    if out is None:
        stamp = env["date"].replace(":", "").replace("-", "").split("+")[0]
        out = ROOT / "results" / f"bench-{suite}-{stamp}-{env['commit']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"environment": env, "results": records}, indent=2) + "\n")
    print(f"\nwrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
