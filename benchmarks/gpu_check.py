"""The CUDA backend's device check: one script, under 5 minutes on an H200.

    python3 benchmarks/gpu_check.py [--out DIR] [--skip-nengo-suite] [--quick]

docs/cuda.md gives the exact command for the lent GPU machine (wheels, build).
Steps, each timed and each reported even when an earlier one failed:

1. build   CMake + nvcc (sm_90 only, all cores) unless a CUDA build is importable
2. status  nengo_cuda.backends.select.cuda_status(), the GPU, versions
3. pytest  tests/test_cuda_{kernels,simulator,profile}.py, test_learned_parameters.py,
           test_cuda_networks.py::test_random_knobs and test_gil.py, GPU
           parameters only (and test_gil's CPU cases)
4. compare CUDA against the CPU backend: benchmark networks and random
           networks, float64 and float32 (float32 tolerances), probes poisoned
           with NaN first so that an unwritten sample shows
5. nengo   Nengo's own test suite with device="cuda" (tests/conformance/cuda.ini)
6. time    tutorial, integrator, circular convolution, chain 50x500x16 at
           minibatch 1 and 64: CUDA, the CPU backend and nengo.Simulator
7. profile where a step's time goes on the device, per launch group (instruction
           or merged batch; benchmarks/device_profile.py): chain 50x500x16 at
           minibatch 64 and the tutorial at minibatch 1, if time is left
8. sanitize compute-sanitizer over small networks on the GPU (every kernel kind):
           racecheck and memcheck with the defaults, memcheck and synccheck
           (shuffle masks, barriers) with phases and fusions on, racecheck
           with dense tiles (mat-vecs, convolutions) and neuron trial
           groups; in a thread next to step 5
9. sweep   the tuning knobs (benchmarks/device_sweep.py: mat-vec tile shapes,
           dense tiles, neuron trial groups, grid phases, fusions, phases,
           programmatic dependent launch) on the large networks, if time is
           left (grid phases only after a child process ran them)
10. winners step 6's runs at minibatch 64 (the tutorial at 1) again with the
           sweep's settings that won without a loss set together: what they
           would give as defaults, against step 6's default and CPU times
11. counters Nsight Compute on one step of the chain 50x500x16 at minibatch 64
           (benchmarks/device_ncu.py, dense tiles and neuron trial groups on)
           into $OUT/ncu_chain64.txt,
           if time is left

Prints one table at the end and writes it, with all numbers, to
``$OUT/gpu_check.txt`` and ``$OUT/gpu_check.json`` (``--out`` or $OUT, else results/).
"""

import argparse
import functools
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "benchmarks"))  # networks, harness: the benchmarks' ones
sys.path.append(str(ROOT / "tests"))  # test_cuda_networks (tests/networks.py stays hidden)

# child processes (pytest, Nengo's suite) import this checkout's nengo_cuda
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
)

REPORT = {"steps": {}, "compare": [], "timing": [], "profile": [], "sanitize": {},
          "sweep": [], "winners": [], "notes": []}
CPU_PROBES = {}  # (network, minibatch): the CPU backend's probe in the timing step
T_START = time.time()


def log(msg):
    print(f"[{time.time() - T_START:6.1f}s] {msg}", flush=True)


def step(name):
    """Decorator: runs a step, records ok/error and its duration; never raises."""

    def wrap(fn):
        def run(*args, **kwargs):
            log(f"== {name}")
            start = time.time()
            try:
                result = fn(*args, **kwargs)
                REPORT["steps"][name] = {"ok": True, "s": time.time() - start, "result": result}
                log(f"   {name}: ok ({time.time() - start:.1f}s) {result if result else ''}")
                return result
            except Exception as e:  # noqa: BLE001 - report and go on
                REPORT["steps"][name] = {
                    "ok": False, "s": time.time() - start, "error": f"{type(e).__name__}: {e}",
                }
                log(f"   {name}: FAILED {type(e).__name__}: {e}")
                traceback.print_exc()
                return None

        return run

    return wrap


# -- 1. build -------------------------------------------------------------------
@step("build")
def build():
    # decide in a child process: importing _native here would keep the old module
    probe = subprocess.run(
        [sys.executable, "-c", "from nengo_cuda import _native; print(_native.built_with_cuda)"],
        cwd=ROOT, capture_output=True, text=True,
    )
    if probe.returncode == 0 and probe.stdout.strip() == "True":
        return "existing CUDA build"
    build_dir = ROOT / "build" / "gpu"
    cmd = [
        "cmake", "-S", str(ROOT), "-B", str(build_dir), "-G", "Ninja",
        f"-DPython_EXECUTABLE={sys.executable}",
        f"-DCMAKE_LIBRARY_OUTPUT_DIRECTORY={ROOT / 'nengo_cuda'}",
        "-DCMAKE_CUDA_ARCHITECTURES=90-real", "-DNC_ENABLE_CUDA=ON", "-DCMAKE_BUILD_TYPE=Release",
    ]
    nvcc = cuda_tool("nvcc")
    if nvcc is None:
        raise RuntimeError("nvcc not found (neither on PATH nor in /usr/local/cuda/bin)")
    cmd.append(f"-DCMAKE_CUDA_COMPILER={nvcc}")
    for c in (cmd, ["cmake", "--build", str(build_dir), "-j", str(os.cpu_count() or 8)]):
        out = subprocess.run(c, capture_output=True, text=True)
        if out.returncode != 0:
            print(out.stdout[-6000:], out.stderr[-6000:])
            raise RuntimeError(f"{' '.join(c[:3])} failed (exit {out.returncode})")
    probe = subprocess.run(
        [sys.executable, "-c", "from nengo_cuda import _native; print(_native.built_with_cuda)"],
        cwd=ROOT, capture_output=True, text=True,
    )
    if probe.stdout.strip() != "True":
        raise RuntimeError(f"the new build is not a CUDA build: {probe.stdout}{probe.stderr}")
    return f"built (sm_90, {nvcc})"


# -- 2. status ------------------------------------------------------------------
@step("status")
def status(device):
    import numpy as np  # noqa: PLC0415

    import nengo  # noqa: PLC0415
    import nengo_cuda  # noqa: PLC0415, F401
    from nengo_cuda import _native  # noqa: PLC0415
    from nengo_cuda.backends.select import cuda_status  # noqa: PLC0415

    ok, why = cuda_status()
    info = {
        "cuda_ok": ok, "why": why, "built_with_cuda": bool(_native.built_with_cuda),
        "python": platform.python_version(), "numpy": np.__version__, "nengo": nengo.__version__,
    }
    try:
        import cupy  # noqa: PLC0415

        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        info.update(
            cupy=cupy.__version__, gpu=props["name"].decode(),
            driver=cupy.cuda.runtime.driverGetVersion(),
            runtime=cupy.cuda.runtime.runtimeGetVersion(),
        )
    except Exception as e:  # noqa: BLE001
        info["cupy_error"] = str(e)
    REPORT["status"] = info
    if not ok and device == "cuda":
        raise RuntimeError(f"CUDA backend unusable: {why}")
    return f"{info.get('gpu')} ({why}); checking device={device!r}"


# -- 3. our tests on the GPU ----------------------------------------------------------
@step("pytest")
def run_pytest(timeout):
    # (test_cuda_networks.py's comparisons are step 4's, with more networks;
    # its random knob settings run here: on a GPU a launch-only knob that
    # changes a bit is a race)
    files = ["tests/test_cuda_kernels.py", "tests/test_cuda_simulator.py",
             "tests/test_cuda_profile.py", "tests/test_learned_parameters.py",
             "tests/test_cuda_networks.py::test_random_knobs",
             # runs without the GIL: slices, Ctrl-C and stop requests, callbacks,
             # two threads, exit (its CPU cases too: a few seconds)
             "tests/test_gil.py"]
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:nengo",
           "-k", "not emulator", *files]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    tail = (out.stdout + out.stderr).strip().splitlines()
    print("\n".join(tail[-40:]))
    summary = tail[-1] if tail else "no output"
    REPORT["pytest"] = summary
    if out.returncode != 0:
        raise RuntimeError(summary)
    return summary


# -- 4. CUDA against the CPU backend ----------------------------------------------------
def bench_networks(quick):
    import nengo  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    import networks  # noqa: PLC0415
    from networks import build as build_bench  # noqa: PLC0415

    nets = {}
    b = build_bench("tutorial")
    nets["tutorial"] = (b.net, [b.probe])
    d = 32 if not quick else 8
    nets[f"integrator {d}-D"] = integrator(d)
    nets[f"circconv {d}-D"] = circconv(d)
    nets.update([chain(quick)])
    c = build_bench("convnet", **networks.SIZES["convnet"]["small" if quick else "large"])
    nets[c.label] = (c.net, [c.probe])
    del nengo, np
    return nets


def chain(quick):
    """("chain AxNxD", (net, probes)): 50x500x16, or 5x100x4 when quick."""
    from networks import build as build_bench  # noqa: PLC0415

    c = build_bench("chain", **(dict(n_ensembles=50, n_neurons=500, dimensions=16) if not quick
                              else dict(n_ensembles=5, n_neurons=100, dimensions=4)))
    return "chain " + ("50x500x16" if not quick else "5x100x4"), (c.net, [c.probe])


def integrator(dims, n_neurons=50):
    import nengo  # noqa: PLC0415

    tau = 0.1
    with nengo.Network(seed=1) as net:
        stim = nengo.Node(nengo.processes.WhiteSignal(1.0, high=5, rms=0.3), size_out=dims)
        ea = nengo.networks.EnsembleArray(n_neurons, dims)
        nengo.Connection(stim, ea.input, transform=tau, synapse=tau)
        nengo.Connection(ea.output, ea.input, synapse=tau)
        p = nengo.Probe(ea.output, synapse=0.01)
    return net, [p]


def circconv(dims, n_neurons=200):
    import nengo  # noqa: PLC0415

    with nengo.Network(seed=2) as net:
        a = nengo.Node(nengo.processes.WhiteSignal(1.0, high=5, rms=0.3), size_out=dims)
        b = nengo.Node(nengo.processes.WhiteSignal(1.0, high=5, rms=0.3), size_out=dims)
        cc = nengo.networks.CircularConvolution(n_neurons, dims)
        nengo.Connection(a, cc.input_a)
        nengo.Connection(b, cc.input_b)
        p = nengo.Probe(cc.output, synapse=0.01)
    return net, [p]


@step("compare")
def compare_all(quick, device):
    from test_cuda_networks import compare, random_network, tables_network  # noqa: PLC0415
    from test_deferral import two_rules_net  # noqa: PLC0415

    cases = []
    small = bench_networks(quick=True)
    for name, (net, probes) in small.items():
        cases.append((name, net, probes, len(probes)))
    cases.append(("process tables", *tables_network(), 1))
    cases.append(("deferred learning", *two_rules_net(), 1))  # (nengo_cuda/deferral.py)
    for seed in range(4 if quick else 10):
        net, probes = random_network(seed)
        cases.append((f"random {seed}", net, probes, 4))
    failures = []
    for name, net, probes, n_decoded in cases:
        for dtype, mb, tol in (("float64", None, 1e-6), ("float32", 5, 0.05)):
            row = {"case": name, "dtype": dtype, "minibatch": mb or 1}
            check = functools.partial(compare_case, compare, net, probes, device, dtype, mb,
                                      tol, None if dtype == "float64" else n_decoded)
            try:
                row.update(check())
            except Exception as e:  # noqa: BLE001
                row.update(ok=False, error=f"{type(e).__name__}: {e}")
            if not row["ok"]:
                # which lever: the same comparison without phases (and fusions)
                row["without_levers"] = levers_off(check)
                failures.append(f"{name}/{dtype}")
            REPORT["compare"].append(row)
            log(f"   compare {name:18s} {dtype} B={row['minibatch']}: "
                f"{'ok' if row['ok'] else 'FAIL'} {row.get('probe_diff', row.get('error'))}")
    if failures:
        raise RuntimeError("mismatches: " + ", ".join(failures))
    return f"{len(REPORT['compare'])} comparisons ok"


def compare_case(compare, net, probes, device, dtype, mb, tol, n_decoded):
    """One CUDA-vs-CPU comparison (test_cuda_networks.compare) as a report row."""
    diff, sdiff, nan = compare(net, probes, device, dtype=dtype, minibatch_size=mb, steps=200,
                               n_decoded=n_decoded)
    ok = (not nan) and diff < tol and (dtype == "float32" or sdiff < tol)
    return dict(probe_diff=diff, state_diff=sdiff, unwritten=nan, ok=ok)


# settings that turn each lever off: environment (docs/cuda.md, "Tuning knobs"),
# and whether the planner defers learning rules (nengo_cuda/deferral.py)
LEVERS_OFF = [("phases off", {"NC_PHASE_MAX": "0"}, True),
              ("fusion off", {"NC_FUSE_NEURONS": "0", "NC_FUSE_FILTERS": "0"}, True),
              ("deferral off", {}, False)]


def levers_off(check):
    """{setting: "ok" / "FAIL ..."}: a failed comparison rerun with each lever
    off, so that one device run says which lever a mismatch comes from."""
    from device_sweep import environment  # noqa: PLC0415

    from nengo_cuda import deferral  # noqa: PLC0415

    out = {}
    for label, env, defer in LEVERS_OFF:
        deferred, deferral.ENABLED = deferral.ENABLED, defer
        try:
            with environment(env):
                r = check()
            out[label] = "ok" if r["ok"] else f"FAIL {r['probe_diff']:.3g}"
        except Exception as e:  # noqa: BLE001
            out[label] = f"{type(e).__name__}: {e}"
        finally:
            deferral.ENABLED = deferred
    log(f"   ... rerun with levers off: {out}")
    return out


# -- 5. Nengo's suite ------------------------------------------------------------------
@step("nengo-suite")
def nengo_suite(timeout, device):
    ini = "cuda.ini" if device == "cuda" else "cuda_emulator.ini"
    cmd = [sys.executable, "-m", "pytest", "-c", ini, "--pyargs", "nengo", "-q",
           "-p", "no:cacheprovider"]
    try:
        import xdist  # noqa: PLC0415, F401

        cmd += ["-n", str(min(8, os.cpu_count() or 1))]
    except ImportError:
        pass
    try:
        out = subprocess.run(cmd, cwd=ROOT / "tests" / "conformance", capture_output=True,
                             text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        text = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        print(text[-3000:])
        raise RuntimeError(f"timed out after {timeout}s") from None
    lines = (out.stdout + out.stderr).strip().splitlines()
    fails = [l for l in lines if l.startswith(("FAILED", "ERROR"))]
    print("\n".join(fails[:60] + lines[-5:]))
    # pytest's own summary line (plugins may print warnings after it)
    counts = [l for l in lines if re.search(r"\d+ (passed|failed)", l)]
    summary = (counts or lines or ["no output"])[-1]
    REPORT["nengo_suite"] = {"summary": summary, "failed": fails}
    if out.returncode != 0:
        raise RuntimeError(summary)
    return summary


# -- 6. timing -------------------------------------------------------------------------
def timed_run(make, steps, repeats):
    """(build s, best run s, simulator stats or None, probe data of the first run,
    bytes per step of `floors.memory_traffic`)."""
    import numpy as np  # noqa: PLC0415

    from floors import memory_traffic  # noqa: PLC0415

    start = time.perf_counter()
    sim = make()
    build_s = time.perf_counter() - start
    with sim:
        sim.run_steps(20)  # warm-up: graph capture, first uploads
        best, first = float("inf"), None
        for _ in range(repeats):
            start = time.perf_counter()
            sim.run_steps(steps)
            best = min(best, time.perf_counter() - start)
            if first is None:  # the warm-up and first timed run, the same in every variant
                first = {p: sim.data[p] for p in sim.model.probes}
        backend = getattr(sim, "backend", None)
        stats = backend.stats() if hasattr(backend, "stats") else None
        traffic = sum(memory_traffic(sim.model, getattr(sim, "minibatch_size", 1),
                                     np.dtype(getattr(sim, "dtype", np.float64)).itemsize))
    return build_s, best, stats, first, traffic


def unfused(make):
    """``make()`` with nengo_cuda.fusion off (bias copies as copies again)."""
    from nengo_cuda import fusion  # noqa: PLC0415

    enabled, fusion.ENABLED = fusion.ENABLED, False
    try:
        return make()
    finally:
        fusion.ENABLED = enabled


def device_bandwidth(device, nbytes=1 << 30):
    """Bytes read + written per second by a device-to-device copy (CuPy), best of 5;
    None on the emulator."""
    if device != "cuda":
        return None
    import cupy  # noqa: PLC0415

    src = cupy.ones(nbytes // 4, dtype=cupy.float32)
    dst = cupy.empty_like(src)
    start, stop = cupy.cuda.Event(), cupy.cuda.Event()
    best = float("inf")
    for _ in range(5):
        start.record()
        cupy.copyto(dst, src)
        stop.record()
        stop.synchronize()
        best = min(best, cupy.cuda.get_elapsed_time(start, stop) / 1e3)
    del src, dst
    return 2 * nbytes / best


@step("timing")
def timing(quick, budget_s, device):
    import nengo  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    import nengo_cuda  # noqa: PLC0415
    from harness import warm_decoder_cache  # noqa: PLC0415

    steps = 200 if quick else 1000
    deadline = time.time() + budget_s
    bandwidth = REPORT["bandwidth"] = device_bandwidth(device)
    if bandwidth:
        log(f"   device copy: {bandwidth / 1e12:.2f} TB/s (read + written)")
    for name, (net, probes) in bench_networks(quick).items():
        warm_decoder_cache(net)
        for mb in (1, 64):
            if time.time() > deadline:
                REPORT["notes"].append(f"timing budget spent before {name} B={mb}")
                break
            row = {"network": name, "minibatch": mb, "steps": steps}
            variants = [
                ("cpu", lambda: nengo_cuda.Simulator(
                    net, device="cpu", progress_bar=False, minibatch_size=mb)),
                ("cuda", lambda: nengo_cuda.Simulator(
                    net, device=device, progress_bar=False, minibatch_size=mb)),
            ]
            if mb == 1:
                variants.insert(0, ("nengo", lambda: nengo.Simulator(net, progress_bar=False)))
            if name.startswith("chain") and mb > 1:  # what fusion.py gains on the device
                variants.append(("cuda_unfused", lambda: unfused(lambda: nengo_cuda.Simulator(
                    net, device=device, progress_bar=False, minibatch_size=mb))))
            outs = {}
            for label, make in variants:
                try:
                    b, r, stats, data, traffic = timed_run(
                        make, steps, 1 if not label.startswith("cuda") else 3)
                    row[f"{label}_build_s"] = b
                    row[f"{label}_run_s"] = r
                    if label == "cuda" and stats:
                        row["launches_per_step"] = stats.get("launches_per_step")
                        row["steps_per_graph"] = stats.get("steps_per_graph")
                        row["launches_per_graph"] = stats.get("launches_per_graph")
                    if label == "cuda":
                        row["bytes_per_step"] = traffic
                        if bandwidth:
                            row["floor_s"] = steps * traffic / bandwidth
                    outs[label] = np.asarray(data[probes[0]], dtype=np.float64)
                except Exception as e:  # noqa: BLE001
                    row[f"{label}_error"] = f"{type(e).__name__}: {e}"
            if "cpu" in outs:
                CPU_PROBES[name, mb] = outs["cpu"]
            if "cpu" in outs and "cuda" in outs and outs["cpu"].shape == outs["cuda"].shape:
                row["cuda_vs_cpu_maxdiff"] = float(np.max(np.abs(outs["cpu"] - outs["cuda"])))
            REPORT["timing"].append(row)
            log(f"   timing {name} B={mb}: " + ", ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                for k, v in row.items() if k.endswith(("run_s", "maxdiff", "error"))))
    return f"{len(REPORT['timing'])} rows"


# -- 7. profile ------------------------------------------------------------------------
PROFILE_TOP = 12  # groups per network in the table (the JSON has all of them)


@step("profile")
def profile(quick, budget_s, device):
    """Each launch group's time per step without graphs (an upper bound per
    kernel: device time plus the gap before it), next to the graph run's."""
    import nengo_cuda  # noqa: PLC0415
    from device_profile import profile_device  # noqa: PLC0415
    from harness import warm_decoder_cache  # noqa: PLC0415
    from networks import build as build_bench  # noqa: PLC0415

    steps = 50 if quick else 200
    deadline = time.time() + budget_s
    tutorial = build_bench("tutorial")
    cases = [(*chain(quick), 64), ("tutorial", (tutorial.net, [tutorial.probe]), 1)]
    for name, (net, _), mb in cases:
        if time.time() > deadline:
            REPORT["notes"].append(f"profile budget spent before {name} B={mb}")
            break
        warm_decoder_cache(net)
        with nengo_cuda.Simulator(net, device=device, progress_bar=False,
                                  minibatch_size=mb if mb > 1 else None) as sim:
            sim.run_steps(20)  # warm-up: configuration, first uploads, graph capture
            prof = profile_device(sim, steps, graph_steps=steps)
        prof.update(network=name, minibatch=mb)
        REPORT["profile"].append(prof)
        log(f"   profile {name} B={mb}: groups {prof['timed_us_per_step']:.1f} us/step, "
            f"graph {prof['graph_us_per_step']:.1f} us/step, {len(prof['rows'])} groups")
    return f"{len(REPORT['profile'])} networks"


# -- 9. sweep --------------------------------------------------------------------------
# A network on the grid phases (cooperative launches) in a child process: the
# sweep runs in this one, where a launch that never ended would stop the check.
GRID_CHILD = """
import sys
sys.path[:0] = [{root!r}, {bench!r}]
import nengo_cuda
from networks import build
net = build("circconv", dimensions=8, n_neurons=50).net
with nengo_cuda.Simulator(net, device={device!r}, minibatch_size=4, progress_bar=False) as sim:
    sim.run_steps(50)
    print("phase_blocks", sim.backend.stats()["phase_blocks"])
"""
GRID_ENV = {"NC_PHASE_BLOCKS": "0", "NC_PHASE_MAX": "1048576"}


def grid_phases_run(device, timeout=60):
    """None if a network runs with grid phases (GRID_ENV) in a child process
    within ``timeout`` seconds, else why not."""
    child = GRID_CHILD.format(root=str(ROOT), bench=str(ROOT / "benchmarks"), device=device)
    try:
        out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                             timeout=timeout, env={**os.environ, **GRID_ENV})
    except subprocess.TimeoutExpired:
        return f"a run with {GRID_ENV} took over {timeout}s"
    if out.returncode != 0:
        return f"a run with {GRID_ENV} failed: " + (out.stderr.strip().splitlines() or ["?"])[-1]
    log("   grid phases: " + out.stdout.strip())
    return None


@step("sweep")
def sweep(quick, budget_s, device):
    from device_sweep import SETTINGS  # noqa: PLC0415
    from device_sweep import sweep as run_sweep  # noqa: PLC0415

    settings, start = SETTINGS, time.time()
    why = grid_phases_run(device)
    budget_s -= time.time() - start
    if why is not None:
        settings = [(label, env) for label, env in SETTINGS if "NC_PHASE_BLOCKS" not in env]
        REPORT["notes"].append(f"sweep without its grid phases rows: {why}")
        log(f"   sweep: without its grid phases rows: {why}")
    REPORT["sweep"] = run_sweep(budget_s, steps=100 if quick else 300, device=device,
                                quick=quick, log=log, settings=settings)
    failed = [r for r in REPORT["sweep"] if "error" in r]
    if failed:
        raise RuntimeError(f"{len(failed)} settings failed: {failed[0]['error']}")
    return f"{len(REPORT['sweep'])} rows"


# -- 10. the sweep's winners together ---------------------------------------------------
def winners_env(rows):
    """The environment of the sweep's settings that won without a loss
    (`device_sweep.winners`), together, the faster first where two set one
    knob; {} when none won."""
    from device_sweep import SETTINGS, winners  # noqa: PLC0415

    env, settings = {}, dict(SETTINGS)
    for label in winners(rows):
        for k, v in settings.get(label, {}).items():
            env.setdefault(k, v)
    return env


@step("winners")
def timing_winners(quick, budget_s, device):
    """The timing step's runs again (minibatch 64, the tutorial at 1) with the
    sweep's winners set together: what making them the defaults would give,
    against the CPU backend's times and probes of the timing step."""
    import numpy as np  # noqa: PLC0415

    import nengo_cuda  # noqa: PLC0415
    from device_sweep import environment  # noqa: PLC0415

    env = REPORT["winners_env"] = winners_env(REPORT["sweep"])
    if not env:
        return "no setting won without a loss"
    steps = 200 if quick else 1000
    deadline = time.time() + budget_s
    with environment(env):
        for name, (net, probes) in bench_networks(quick).items():
            mb = 1 if name.startswith("tutorial") else 64
            if time.time() > deadline:
                REPORT["notes"].append(f"winners budget spent before {name} B={mb}")
                break
            row = {"network": name, "minibatch": mb, "steps": steps}
            try:
                _, r, stats, data, _ = timed_run(lambda: nengo_cuda.Simulator(
                    net, device=device, progress_bar=False, minibatch_size=mb), steps, 3)
                row["cuda_run_s"] = r
                row["launches_per_graph"] = stats.get("launches_per_graph") if stats else None
                row["steps_per_graph"] = stats.get("steps_per_graph") if stats else None
                out, cpu = np.asarray(data[probes[0]], dtype=np.float64), CPU_PROBES.get((name, mb))
                if cpu is not None and cpu.shape == out.shape:
                    row["cuda_vs_cpu_maxdiff"] = float(np.max(np.abs(cpu - out)))
            except Exception as e:  # noqa: BLE001
                row["cuda_error"] = f"{type(e).__name__}: {e}"
            REPORT["winners"].append(row)
            log(f"   winners {name} B={mb}: " + ", ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                for k, v in row.items() if k.endswith(("run_s", "maxdiff", "error"))))
    return f"{len(REPORT['winners'])} rows with {env}"


def winners_table():
    """The winners step's lines: each run against the timing step's."""
    if not REPORT["winners"]:
        return []
    env = ", ".join(f"{k}={v}" for k, v in REPORT.get("winners_env", {}).items())
    hdr = (f"{'network':18s} {'B':>3s} {'us/step':>8s} {'default':>8s} {'x default':>9s} "
           f"{'x cpu':>7s} {'x floor':>7s} {'launch':>6s} {'|cuda-cpu|':>10s}")
    lines = ["", f"with the sweep's winners together ({env}):", hdr, "-" * len(hdr)]
    for r in REPORT["winners"]:
        base = next((x for x in REPORT["timing"] if x["network"] == r["network"]
                     and x["minibatch"] == r["minibatch"]), {})
        g, d, c, f = (r.get("cuda_run_s"), base.get("cuda_run_s"), base.get("cpu_run_s"),
                      base.get("floor_s"))
        lines.append(
            f"{r['network']:18s} {r['minibatch']:3d} "
            f"{fmt(g / r['steps'] * 1e6 if g else None, '8.1f')} "
            f"{fmt(d / r['steps'] * 1e6 if d else None, '8.1f')} "
            f"{fmt(g / d if g and d else None, '9.2f')} {fmt(c / g if c and g else None, '7.1f')} "
            f"{fmt(g / f if g and f else None, '7.1f')} {fmt(launches_in_graph(r), '6.1f')} "
            f"{fmt(r.get('cuda_vs_cpu_maxdiff'), '10.2g')}"
            + (f"  {r['cuda_error']}" if "cuda_error" in r else ""))
    return lines


# -- 11. counters ------------------------------------------------------------------------
NCU_SECTIONS = ["SpeedOfLight", "Occupancy", "WarpStateStats", "MemoryWorkloadAnalysis",
                "ComputeWorkloadAnalysis", "SchedulerStats"]


@step("counters")
def counters(out, budget_s, env):
    """Nsight Compute's counters for one step of the chain 50x500x16 at
    minibatch 64 (benchmarks/device_ncu.py) with ``env`` set, into
    ``out/ncu_chain64.txt``; returns each kernel's duration."""
    ncu = cuda_tool("ncu")
    if ncu is None:
        raise RuntimeError("ncu not found")
    cmd = [ncu, "--clock-control", "none", "--profile-from-start", "off"]
    for section in NCU_SECTIONS:
        cmd += ["--section", section]
    cmd += [sys.executable, str(ROOT / "benchmarks" / "device_ncu.py"), "chain",
            "--minibatch", "64"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=budget_s,
                         env={**os.environ, **env})
    text = res.stdout + res.stderr
    (Path(out) / "ncu_chain64.txt").write_text(text)
    kernels = re.findall(r"^  (\S.*?)\(\d+, \d+, \d+\)x", text, flags=re.M)
    durations = re.findall(r"^\s+Duration\s+(\S+)\s+([\d.,]+)", text, flags=re.M)
    rows = [f"{k.strip()[:90]}: {v} {u}" for k, (u, v) in zip(kernels, durations)]
    REPORT["counters"] = {"env": env, "kernels": rows}
    if res.returncode != 0:
        raise RuntimeError(f"ncu exit {res.returncode}: {text[-300:]}")
    return f"{len(rows)} kernels ({', '.join(f'{k}={v}' for k, v in env.items())})"


def profile_table():
    """The profile step's lines: per network, the slowest groups."""
    from device_profile import format_profile  # noqa: PLC0415

    lines = []
    for prof in REPORT["profile"]:
        lines.append("")
        lines += format_profile(prof, PROFILE_TOP, f"profile {prof['network']} "
                                f"B={prof['minibatch']} (float32; slowest groups, per step; "
                                "a group = kernels launched as one unit, time incl. launch gap)")
    return lines


# -- 8. compute-sanitizer --------------------------------------------------------------
# The child: small benchmark networks (the tiled mat-vec at several shapes, LIF,
# filters, PES), in float32 with a minibatch (trial tiles of the mat-vec) and
# float64 without, then random test networks that use every other kernel kind
# (every neuron type, sparse products, all filter forms, process tables, all
# learning rules; tests/test_cuda_networks.py). Each run prints a line, so a
# timeout still says how far it got.
SANITIZE_CHILD = """
import sys
sys.path[:0] = [{root!r}, {bench!r}, {tests!r}]
import nengo_cuda
from networks import build
from test_cuda_networks import random_network
runs = []
for name, sizes in [("tutorial", {{}}), ("chain", dict(n_ensembles=3, n_neurons=40, dimensions=3)),
                    ("circconv", dict(dimensions=4, n_neurons=20)), ("pes", dict(n_neurons=30)),
                    ("convnet", dict(size=8, filters=8))]:
    net = build(name, **sizes).net
    runs += [(name, net, "float32", 3), (name, net, "float64", None)]
runs += [(f"random {{seed}}", random_network(seed)[0], "float32", 3) for seed in (0, 1)]
for name, net, dtype, mb in runs:
    with nengo_cuda.Simulator(net, device="cuda", dtype=dtype, minibatch_size=mb,
                              progress_bar=False) as sim:
        sim.run_steps(5)
    print("sanitized:", name, dtype, flush=True)
print("sanitized runs done")
"""


# (tool, knob settings): racecheck and memcheck with the defaults, then memcheck
# and synccheck (shuffle masks, barriers that part of a block skips) with every
# small launch as phases and both fusions on, so that DotRows phases and the
# mat-vec's neuron and filter epilogues run under them too; racecheck again
# with dense tiles wherever the weights are shared (mat-vecs and convolutions:
# their shared memory and asynchronous copies), and neuron updates of 8 trials
# a thread where they launch alone, LIF's rare branches deferred
ALL_LEVERS = {"NC_PHASE_MAX": "1000000", "NC_FUSE_NEURONS": "1", "NC_FUSE_FILTERS": "1"}
DENSE_LEVERS = {"NC_DOT_DENSE": "2", "NC_CONV_DENSE": "2", "NC_PHASE_MAX": "0",
                "NC_FUSE_NEURONS": "1", "NC_NEURON_TRIALS": "8", "NC_NEURON_DEFER": "1"}
SANITIZE_RUNS = [("racecheck", {}), ("memcheck", {}), ("memcheck", ALL_LEVERS),
                 ("synccheck", ALL_LEVERS), ("racecheck", DENSE_LEVERS)]


def sanitizer():
    return cuda_tool("compute-sanitizer")


def cuda_tool(name):
    """The path of CUDA's program ``name`` (on PATH, else in /usr/local/cuda/bin),
    or None."""
    path = Path("/usr/local/cuda/bin") / name
    return shutil.which(name) or (str(path) if path.exists() else None)


@step("sanitize")
def sanitize(budget_s):
    tool = sanitizer()
    if tool is None:
        raise RuntimeError("compute-sanitizer not found")
    child = SANITIZE_CHILD.format(root=str(ROOT), bench=str(ROOT / "benchmarks"),
                                  tests=str(ROOT / "tests"))
    found = []
    per_run = budget_s / len(SANITIZE_RUNS)
    for tool_name, knobs in SANITIZE_RUNS:
        check = tool_name + ("" if not knobs else
                             " (dense tiles)" if knobs is DENSE_LEVERS else " (all levers)")
        cmd = [tool, "--tool", tool_name, "--error-exitcode", "3", sys.executable, "-c", child]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=per_run,
                                 env={**os.environ, **knobs})
        except subprocess.TimeoutExpired as e:
            # what it printed so far: the runs it finished, errors it found
            partial = [(x.decode(errors="replace") if isinstance(x, bytes) else x or "")
                       for x in (e.stdout, e.stderr)]
            lines = "".join(partial).splitlines()
            done = sum(l.startswith("sanitized:") for l in lines)
            errors = [l for l in lines if "ERROR" in l or "Invalid" in l or "hazard" in l]
            print("\n".join(errors[:40]))
            REPORT["sanitize"][check] = (f"timed out after {per_run:.0f}s, {done} runs "
                                         f"done, {len(errors)} error lines")
            found.append(f"{check}: {REPORT['sanitize'][check]}")
            continue
        lines = (out.stdout + out.stderr).strip().splitlines()
        summary = next((l for l in reversed(lines) if "ERROR SUMMARY" in l),
                       lines[-1] if lines else "no output")
        REPORT["sanitize"][check] = summary
        if out.returncode != 0:
            print("\n".join(lines[-60:]))
            found.append(f"{check}: {summary} (exit {out.returncode})")
    if found:
        raise RuntimeError("; ".join(found))
    return ", ".join(f"{k}: {v}" for k, v in REPORT["sanitize"].items())


# -- the table ---------------------------------------------------------------------------
def fmt(v, spec=".3g"):
    """``v`` formatted by ``spec``; None as "-" in the spec's width."""
    return format(v, spec) if v is not None else format("-", ">" + spec.split(".")[0].rstrip("d"))


def launches_in_graph(row):
    """Launches per step as the timed graphs issue them (phases shared across
    steps), or None."""
    n, steps = row.get("launches_per_graph"), row.get("steps_per_graph")
    return n / steps if n is not None and steps else None


def table():
    lines = ["nengo_cuda gpu_check", ""]
    st = REPORT.get("status", {})
    lines.append(f"GPU: {st.get('gpu', '?')}  cupy {st.get('cupy', '?')}  "
                 f"nengo {st.get('nengo', '?')}  numpy {st.get('numpy', '?')}  "
                 f"python {st.get('python', '?')}")
    lines.append("")
    lines.append(f"{'step':12s} {'ok':4s} {'s':>6s}  result")
    for name, s in REPORT["steps"].items():
        res = s.get("result") if s["ok"] else s.get("error")
        lines.append(f"{name:12s} {'yes' if s['ok'] else 'NO':4s} {s['s']:6.1f}  {str(res)[:100]}")
    bad = [r for r in REPORT["compare"] if not r.get("ok")]
    if REPORT["compare"]:
        worst64 = max((r.get("probe_diff", 0) for r in REPORT["compare"]
                       if r["dtype"] == "float64" and "probe_diff" in r), default=None)
        worst32 = max((r.get("probe_diff", 0) for r in REPORT["compare"]
                       if r["dtype"] == "float32" and "probe_diff" in r), default=None)
        lines.append("")
        lines.append(f"compare: {len(REPORT['compare'])} runs, {len(bad)} failed; worst "
                     f"relative probe difference float64 {fmt(worst64)}, float32 {fmt(worst32)}")
        for r in bad[:10]:
            lines.append(f"  FAIL {r['case']} {r['dtype']}: {r.get('error') or r}")
    if REPORT["timing"]:
        lines.append("")
        lines.append("seconds per run of N steps (float32; best of 3 for cuda), speed-ups of cuda")
        hdr = (f"{'network':18s} {'B':>3s} {'N':>5s} {'nengo':>8s} {'cpu':>8s} {'cuda':>8s} "
               f"{'x cpu':>7s} {'x nengo':>8s} {'us/step':>8s} {'floor':>6s} {'x floor':>7s} "
               f"{'launch':>6s} {'|cuda-cpu|':>10s}")
        lines.append(hdr)
        lines.append("-" * len(hdr))
        for r in REPORT["timing"]:
            n, c, g = r.get("nengo_run_s"), r.get("cpu_run_s"), r.get("cuda_run_s")
            f = r.get("floor_s")
            if n is None and r["minibatch"] > 1:
                base = next((x.get("nengo_run_s") for x in REPORT["timing"]
                             if x["network"] == r["network"] and x["minibatch"] == 1), None)
                n = base * r["minibatch"] if base else None  # trials run one after another
            lines.append(
                f"{r['network']:18s} {r['minibatch']:3d} {r['steps']:5d} {fmt(n, '8.3f')} "
                f"{fmt(c, '8.3f')} {fmt(g, '8.4f')} "
                f"{fmt(c / g if c and g else None, '7.1f')} {fmt(n / g if n and g else None, '8.1f')} "
                f"{fmt(g / r['steps'] * 1e6 if g else None, '8.1f')} "
                f"{fmt(f / r['steps'] * 1e6 if f else None, '6.2f')} "
                f"{fmt(g / f if g and f else None, '7.1f')} "
                f"{fmt(launches_in_graph(r), '6.1f')} {fmt(r.get('cuda_vs_cpu_maxdiff'), '10.2g')}"
            )
            u = r.get("cuda_unfused_run_s")
            if u and g:
                lines.append(f"    without fusion (nengo_cuda.fusion off): {u / r['steps'] * 1e6:.1f} "
                             f"us/step, {u / g:.2f}x the fused time")
            for k, v in r.items():
                if k.endswith("error"):
                    lines.append(f"    {k}: {v}")
        lines.append("(nengo at B=64: 64 x its B=1 time, the trials run one after another)")
        lines.append("(launch: kernel launches per step in the timed graphs of many steps, "
                     "small launches shared as phases)")
        bw = REPORT.get("bandwidth")
        lines.append("(floor: us/step to move the bytes of benchmarks/floors.py memory_traffic at "
                     + (f"the measured device copy rate, {bw / 1e12:.2f} TB/s)" if bw else
                        "the device copy rate, not measured here)"))
    lines += profile_table()
    if REPORT.get("counters"):
        c = REPORT["counters"]
        lines += ["", "Nsight Compute, chain 50x500x16 B=64, one step ("
                  + ", ".join(f"{k}={v}" for k, v in c["env"].items()) + "; ncu_chain64.txt):"]
        lines += ["  " + r for r in c["kernels"]]
    if REPORT["sweep"]:
        from device_sweep import format_sweep  # noqa: PLC0415

        lines += ["", "tuning knobs (float32; best of 3; rel diff: probe against the default "
                      "setting's)", format_sweep(REPORT["sweep"])]
    lines += winners_table()
    for note in REPORT["notes"]:
        lines.append(f"note: {note}")
    lines.append(f"total {time.time() - T_START:.0f}s")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.environ.get("OUT") or str(ROOT / "results"))
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    parser.add_argument("--skip-nengo-suite", action="store_true")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cuda-emulator"],
                        help="cuda-emulator: try this script's steps without a GPU (slow)")
    parser.add_argument("--no-build", action="store_true", help="use the importable build")
    parser.add_argument("--suite-timeout", type=float, default=90)
    parser.add_argument("--pytest-timeout", type=float, default=90)
    parser.add_argument("--timing-budget", type=float, default=75)
    parser.add_argument("--profile-budget", type=float, default=15)
    parser.add_argument("--sanitize-budget", type=float, default=88,
                        help="seconds for compute-sanitizer's runs (SANITIZE_RUNS), "
                             "beside Nengo's suite")
    parser.add_argument("--sweep-budget", type=float, default=90,
                        help="seconds for the tuning-knob sweep (step 9)")
    parser.add_argument("--winners-budget", type=float, default=35,
                        help="seconds for timing the sweep's winners together (step 10)")
    parser.add_argument("--skip-sweep", action="store_true")
    parser.add_argument("--deadline", type=float, default=285,
                        help="seconds after which no further step starts")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def left():
        return args.deadline - (time.time() - T_START)

    if not args.no_build:
        build()
    if status(args.device) is not None:
        if args.device == "cuda":
            run_pytest(max(10, min(args.pytest_timeout, left() - 150)))
        compare_all(args.quick, args.device)
        # the sanitizer runs next to Nengo's suite (neither is timed), not
        # after the timing, where the deadline would often leave it out
        checker = None
        if args.device == "cuda" and left() > 60:
            checker = threading.Thread(
                target=sanitize, args=(min(args.sanitize_budget, left() - 40),))
            checker.start()
        if not args.skip_nengo_suite and left() > 100:
            nengo_suite(max(10, min(args.suite_timeout, left() - 70)), args.device)
        if checker is not None:
            checker.join()
        if left() > 20:
            # (leaves the profile its ~15 s when the timing could take all)
            timing(args.quick, max(10, min(args.timing_budget, left() - 15)), args.device)
        if left() > 10:
            profile(args.quick, max(5, min(args.profile_budget, left() - 5)), args.device)
        if left() > 15 and not args.skip_sweep:
            # (leaves the winners' timing its ~30 s)
            sweep(args.quick, max(5, min(args.sweep_budget, left() - 35)), args.device)
        if left() > 15 and REPORT["sweep"]:
            timing_winners(args.quick, max(5, min(args.winners_budget, left() - 5)), args.device)
        if args.device == "cuda" and not args.quick and left() > 30:
            # the lever still to be decided, under the counters
            counters(out, min(90, left() - 5),
                     {"NC_DOT_DENSE": "1", "NC_NEURON_TRIALS": "8", "NC_NEURON_DEFER": "1"})
        for name, ok in (("nengo-suite", args.skip_nengo_suite), ("timing", False),
                         ("profile", False), ("sanitize", args.device != "cuda"),
                         ("sweep", args.skip_sweep), ("winners", args.skip_sweep)):
            if name not in REPORT["steps"] and not ok:
                REPORT["notes"].append(f"{name} skipped: past the {args.deadline:.0f}s deadline")
    text = table()
    print("\n" + text)
    (out / "gpu_check.txt").write_text(text + "\n")
    (out / "gpu_check.json").write_text(json.dumps(REPORT, indent=1, default=str))
    return 0 if all(s["ok"] for s in REPORT["steps"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
