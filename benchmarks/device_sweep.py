"""The CUDA backend's tuning knobs against time per step, on one GPU.

    python3 benchmarks/device_sweep.py [--budget 90] [--steps 300] [--device cuda]

The device program reads its tuning knobs from the environment when a
simulator loads it: their defaults and ranges are one table in
csrc/cuda/knobs.h (``nengo_cuda._native.device_knobs()``), docs/cuda.md
"Tuning knobs" says what each does and "What the next GPU run decides" which
rows here decide which default.

For each case (a benchmark network at a minibatch size) and each setting, a
fresh simulator runs ``--steps`` steps three times; the table gives the best
time per step and the largest difference of its probe from the default
setting's (the knobs change summation order only, so float32 rounding).  A
last setting, ``combined``, sets the winners together (`combined`): the
candidate defaults, timed in the same run.
"""

import argparse
import contextlib
import math
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "benchmarks"))

# (label, environment); the first is the default every other is compared with;
# the launch-count levers first, as the budget may end the sweep
SETTINGS = [
    ("default", {}),
    # not yet timed on a GPU
    ("dense", {"NC_DOT_DENSE": "1"}),
    ("dense+fuse", {"NC_DOT_DENSE": "1", "NC_FUSE_NEURONS": "1", "NC_FUSE_FILTERS": "1"}),
    ("dense+fuse defer", {"NC_DOT_DENSE": "1", "NC_FUSE_NEURONS": "1", "NC_FUSE_FILTERS": "1",
                          "NC_NEURON_DEFER": "1"}),
    ("neuron trials 8", {"NC_NEURON_TRIALS": "8"}),
    ("neuron defer 8", {"NC_NEURON_TRIALS": "8", "NC_NEURON_DEFER": "1"}),
    ("grid phases 64K", {"NC_PHASE_BLOCKS": "0", "NC_PHASE_MAX": "65536"}),
    ("grid phases 4096", {"NC_PHASE_BLOCKS": "0", "NC_PHASE_MAX": "4096"}),
    ("conv dense", {"NC_CONV_DENSE": "1"}),
    ("conv 64K", {"NC_CONV_MIN_THREADS": "65536"}),
    ("dot tiles 256", {"NC_DOT_MIN_TILES": "256"}),
    ("dense always", {"NC_DOT_DENSE": "2"}),
    ("neuron trials 4", {"NC_NEURON_TRIALS": "4"}),
    ("grid phases 1M", {"NC_PHASE_BLOCKS": "0", "NC_PHASE_MAX": "1048576"}),
    ("conv 256K", {"NC_CONV_MIN_THREADS": "262144"}),
    # timed on the H200 on 2026-12-04 (docs/benchmarks.md), again for comparison
    ("phases off", {"NC_PHASE_MAX": "0"}),
    ("fuse neurons", {"NC_FUSE_NEURONS": "1"}),
    ("fuse filters", {"NC_FUSE_FILTERS": "1"}),
    ("fuse both", {"NC_FUSE_NEURONS": "1", "NC_FUSE_FILTERS": "1"}),
    ("pdl off", {"NC_PDL": "0"}),
    ("phases 4096", {"NC_PHASE_MAX": "4096"}),
    ("phases 1024", {"NC_PHASE_MAX": "1024"}),
    ("phases 64", {"NC_PHASE_MAX": "64"}),
    ("trials 4", {"NC_DOT_TRIALS": "4"}),
    ("cols/lane 32", {"NC_DOT_COLS_PER_LANE": "32"}),
    ("cols/lane 64", {"NC_DOT_COLS_PER_LANE": "64"}),
]

# (network, size parameters, minibatch); slow builds last, as the budget may end the sweep
CASES = [
    ("chain", dict(n_ensembles=50, n_neurons=500, dimensions=16), 64),
    ("convnet", dict(size=28, filters=32), 64),
    ("tutorial", {}, 1),
    # launch-bound, with groups around NC_PHASE_MAX (6800 encoder rows, LIF neurons)
    ("circconv", dict(n_neurons=100, dimensions=32), 1),
    ("circconv", dict(n_neurons=100, dimensions=32), 64),
]
QUICK_CASES = [
    ("chain", dict(n_ensembles=4, n_neurons=50, dimensions=4), 5),
    ("convnet", dict(size=12, filters=8), 3),
    ("tutorial", {}, 1),
]


@contextlib.contextmanager
def environment(values):
    """Sets environment variables for the block; restores them after."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def time_setting(net, probe, minibatch, env, steps, device, model=None, seed=None):
    """(best seconds per step, probe data of the first run, launches per step,
    programmatic launch on, the simulator's model and seed).  With ``model``
    (built and optimized by an earlier simulator of ``net``) and its ``seed``
    the same operators are planned again and draw the same noise: Nengo's
    optimizer merges operators in set order, so a fresh build may give another
    plan, which would blur the knobs' effect."""
    import numpy as np  # noqa: PLC0415

    import nengo_cuda  # noqa: PLC0415

    with environment(env):
        sim = nengo_cuda.Simulator(None if model else net, model=model, optimize=model is None,
                                   seed=seed, device=device, progress_bar=False, dtype="float32",
                                   minibatch_size=minibatch if minibatch > 1 else None)
    with sim:
        sim.run_steps(20)  # configuration, uploads, graph capture
        best, data = float("inf"), None
        for _ in range(3):
            start = time.perf_counter()
            sim.run_steps(steps)
            best = min(best, time.perf_counter() - start)
            if data is None:
                data = np.array(sim.data[probe], dtype=np.float64)
        stats = sim.backend.stats()
    return (best / steps, data, stats.get("launches_per_step"),
            stats.get("programmatic_launch"), sim.model, sim.seed)


def benchmark_cases(quick=False):
    """(label, network, probe, minibatch) for each of CASES (QUICK_CASES)."""
    from harness import warm_decoder_cache  # noqa: PLC0415
    from networks import build  # noqa: PLC0415

    out = []
    for name, params, mb in QUICK_CASES if quick else CASES:
        bench = build(name, **params)
        warm_decoder_cache(bench.net)
        out.append((f"{bench.label} B={mb}", bench.net, bench.probe, mb))
    return out


def sweep(budget_s=90.0, steps=300, device="cuda", quick=False, log=print, cases=None,
          settings=SETTINGS, combine=True):
    """Rows of dicts: case, setting, us_per_step, vs_default, maxdiff, launches,
    pdl (or error); ``cases`` (default `benchmark_cases`) and ``settings``
    until ``budget_s`` is spent, each setting on every case before the next
    setting (so a short budget still compares the first settings on every
    case).  The first setting is the reference.  Then (``combine``, budget
    left) the `combined` setting, the winners together, on every case.  Rows
    are in case order."""
    import numpy as np  # noqa: PLC0415

    deadline = time.time() + budget_s
    cases = benchmark_cases(quick) if cases is None else cases
    state = [{"base": None, "model": None, "seed": None} for _ in cases]
    rows = []

    def run(label, env):  # False once the budget is spent
        for (case, net, probe, mb), st in zip(cases, state):
            if time.time() > deadline:
                log(f"   sweep: budget spent before {case} {label}")
                return False
            row = {"case": case, "setting": label, "env": env}
            try:
                t, data, launches, pdl, st["model"], st["seed"] = time_setting(
                    net, probe, mb, env, steps, device, st["model"], st["seed"])
                row.update(us_per_step=1e6 * t, launches=launches, pdl=pdl)
                if st["base"] is None:
                    st["base"] = (t, data)
                base = st["base"]
                row["vs_default"] = t / base[0]
                scale = max(float(np.max(np.abs(base[1]))), 1e-30)
                row["maxdiff"] = float(np.max(np.abs(data - base[1]))) / scale
            except Exception as e:  # noqa: BLE001 - a setting that fails is a result
                row["error"] = f"{type(e).__name__}: {e}"
            rows.append(row)
            log(f"   sweep {case:<28} {label:<14} " + (
                row.get("error") or f"{row['us_per_step']:9.1f} us/step  "
                                    f"x{row['vs_default']:.2f}  rel diff {row['maxdiff']:.1e}"))
        return True

    if all(run(label, env) for label, env in settings) and combine:
        env, _ = combined(rows, settings, len(cases))
        if env is not None:
            run("combined", env)
    return _in_case_order(rows, cases)


def _valid(row):
    """A timed row whose probe matches the default's (float32 rounding)."""
    return "error" not in row and row.get("maxdiff", 1) < 1e-3


def _geomean_vs_default(rows):
    return float(math.exp(sum(math.log(r["vs_default"]) for r in rows) / len(rows)))


def combined(rows, settings, n_cases, gain=0.98):
    """(environment, {label: geometric mean of x default}): the settings that
    ran on all ``n_cases`` cases, matched the default's probes and took at most
    ``gain`` of its time (geometric mean over the cases), together, the
    faster first where two set one knob; (None, means) when fewer than two
    win (then the sweep's own rows already hold the answer)."""
    means = {}
    for label, _ in settings[1:]:
        mine = [r for r in rows if r["setting"] == label]
        if len(mine) == n_cases and all(_valid(r) for r in mine):
            means[label] = _geomean_vs_default(mine)
    winners = sorted((m, label) for label, m in means.items() if m <= gain)
    if len(winners) < 2:
        return None, means
    env = {}
    for _, label in winners:
        for k, v in dict(settings)[label].items():
            env.setdefault(k, v)
    return env, means


def _in_case_order(rows, cases):
    order = {c[0]: k for k, c in enumerate(cases)}
    return sorted(rows, key=lambda r: order[r["case"]])  # stable: settings stay in order


def format_sweep(rows):
    lines = [f"{'case':<30}{'setting':<15}{'us/step':>9}{'x default':>10}"
             f"{'rel diff':>10}{'launch':>7}{'pdl':>4}",
             "-" * 85]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['case']:<30}{r['setting']:<15}  {r['error']}")
        else:
            lines.append(f"{r['case']:<30}{r['setting']:<15}{r['us_per_step']:9.1f}"
                         f"{r['vs_default']:10.2f}{r['maxdiff']:10.1e}{r['launches']!s:>7}"
                         f"{r['pdl']!s:>4}")
    best = fastest(rows)
    if best:
        lines.append("fastest per case: " + "; ".join(
            f"{case}: {r['setting']} ({r['vs_default']:.2f} x default)"
            for case, r in best.items()))
    wins = winners(rows)
    if wins:
        lines.append("wins without a loss (x default, best to worst; rel diff: probes "
                     "against the default's, summation order): " + "; ".join(
                         f"{label} ({w['best']:.2f}-{w['worst']:.2f}, rel diff "
                         f"{w['maxdiff']:.1e})" for label, w in wins.items()))
    combo = [r for r in rows if r["setting"] == "combined" and _valid(r)]
    if combo:
        mean = _geomean_vs_default(combo)
        lines.append(f"combined ({', '.join(f'{k}={v}' for k, v in combo[0]['env'].items())}): "
                     f"{mean:.2f} x default, geometric mean over {len(combo)} cases")
    return "\n".join(lines)


def winners(rows, win=0.98, lose=1.02):
    """{setting: {best, worst, maxdiff}}, fastest first: the settings that ran
    without error on every case the default ran on, took at most ``win`` of
    the default's time on at least one and more than ``lose`` on none: the
    candidates for defaults.  Unlike `fastest` and `combined`, a probe that
    differs from the default's counts here (reported as maxdiff): other tile
    shapes sum in another order, and a spiking network then drifts; the
    device check's comparison with the CPU backend judges correctness."""
    cases = {r["case"] for r in rows if r["setting"] == "default" and "error" not in r}
    by_label = {}
    for r in rows:
        if r["setting"] not in ("default", "combined"):
            by_label.setdefault(r["setting"], []).append(r)
    out = {}
    for label, mine in by_label.items():
        if any("error" in r for r in mine) or {r["case"] for r in mine} != cases or not cases:
            continue
        ratios = [r["vs_default"] for r in mine]
        if min(ratios) <= win and max(ratios) <= lose:
            out[label] = {"best": min(ratios), "worst": max(ratios),
                          "maxdiff": max(r["maxdiff"] for r in mine)}
    return dict(sorted(out.items(), key=lambda kv: kv[1]["best"]))


def fastest(rows):
    """{case: its fastest row}, among rows whose probes match the default's
    (float32 rounding: relative difference < 1e-3)."""
    best = {}
    for r in rows:
        if not _valid(r):
            continue
        if r["case"] not in best or r["us_per_step"] < best[r["case"]]["us_per_step"]:
            best[r["case"]] = r
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=90.0, help="seconds")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--device", default="cuda", choices=["cuda", "cuda-emulator"])
    parser.add_argument("--quick", action="store_true", help="small networks (a smoke test)")
    args = parser.parse_args(argv)
    rows = sweep(args.budget, args.steps, args.device, args.quick)
    print("\n" + format_sweep(rows))
    return 0 if rows and not any("error" in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
