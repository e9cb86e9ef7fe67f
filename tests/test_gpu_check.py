"""benchmarks/gpu_check.py: a failed CUDA-vs-CPU comparison is rerun with each
launch-count lever off, so that one device run says where a mismatch comes from."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import gpu_check  # noqa: E402

from nengo_cuda import deferral  # noqa: E402


def test_levers_off_names_the_lever():
    seen = []

    def check():  # mismatches only while phases are on
        seen.append((os.environ.get("NC_PHASE_MAX"), deferral.ENABLED))
        ok = os.environ.get("NC_PHASE_MAX") == "0"
        return {"ok": ok, "probe_diff": 0.0 if ok else 0.5}

    before = os.environ.get("NC_PHASE_MAX")
    out = gpu_check.levers_off(check)
    assert out == {"phases off": "ok", "fusion off": "FAIL 0.5", "deferral off": "FAIL 0.5"}
    assert seen == [("0", True), (before, True), (before, False)]
    assert os.environ.get("NC_PHASE_MAX") == before and deferral.ENABLED


def test_levers_off_reports_errors():
    def check():
        raise RuntimeError("device lost")

    out = gpu_check.levers_off(check)
    assert set(out) == {label for label, _, _ in gpu_check.LEVERS_OFF}
    assert all(v == "RuntimeError: device lost" for v in out.values())


def fake_sanitizer(tmp_path, failing_tool=None):
    """A stand-in for compute-sanitizer that logs its tool and knobs, and fails
    (exit 3, as --error-exitcode asks) for ``failing_tool``."""
    log = tmp_path / "calls"
    script = tmp_path / "compute-sanitizer"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$2 $NC_PHASE_MAX $NC_FUSE_NEURONS $NC_FUSE_FILTERS $NC_DOT_DENSE" >> {log}\n'
        f'if [ "$2" = "{failing_tool}" ]; then echo "========= ERROR SUMMARY: 1 error"; exit 3; fi\n'
        'echo "========= ERROR SUMMARY: 0 errors"\n')
    script.chmod(0o755)
    return str(script), log


def test_sanitize_runs_each_tool_with_its_knobs(tmp_path, monkeypatch):
    tool, log = fake_sanitizer(tmp_path)
    monkeypatch.setattr(gpu_check, "sanitizer", lambda: tool)
    for var in ("NC_PHASE_MAX", "NC_FUSE_NEURONS", "NC_FUSE_FILTERS", "NC_DOT_DENSE"):
        monkeypatch.delenv(var, raising=False)
    gpu_check.sanitize(40)
    assert gpu_check.REPORT["steps"]["sanitize"]["ok"]
    assert [line.split() for line in log.read_text().splitlines()] == [
        ["racecheck"], ["memcheck"], ["memcheck", "1000000", "1", "1"],
        ["synccheck", "1000000", "1", "1"], ["racecheck", "0", "1", "2"]]
    assert set(gpu_check.REPORT["sanitize"]) == {
        "racecheck", "memcheck", "memcheck (all levers)", "synccheck (all levers)",
        "racecheck (dense tiles)"}


def test_sanitize_fails_on_a_finding(tmp_path, monkeypatch):
    tool, _ = fake_sanitizer(tmp_path, failing_tool="synccheck")
    monkeypatch.setattr(gpu_check, "sanitizer", lambda: tool)
    gpu_check.sanitize(40)
    result = gpu_check.REPORT["steps"]["sanitize"]
    assert not result["ok"] and "synccheck (all levers)" in str(result)


NCU_SAMPLE = """\
==PROF== Connected to process 1 (/usr/bin/python3.12)
  void dense_dot_kernel<float, 8, NoEpilogue>(DotParams<T1>, T3) (1600, 1, 1)x(128, 1, 1), Context 1
    Section: GPU Speed Of Light Throughput
    ----------------------- ----------- ------------
    Duration                         us         4.25
  void for_each_kernel<NeuronStep<float, models::LIF>>(T1, long) (6250, 1, 1)x(256, 1, 1), Context 1
    Duration                         us        18.98
"""


def test_counters_reads_each_kernels_duration(tmp_path, monkeypatch):
    """Step 10 runs Nsight Compute with the given knobs, keeps its report in
    $OUT and lists each kernel's duration (a stand-in ncu prints a report)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "sample.txt").write_text(NCU_SAMPLE)
    ncu = bin_dir / "ncu"
    ncu.write_text(f'#!/bin/sh\necho "NC_DOT_DENSE=$NC_DOT_DENSE"\ncat {tmp_path / "sample.txt"}\n')
    ncu.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    out = tmp_path / "out"
    out.mkdir()
    gpu_check.counters(out, 30, {"NC_DOT_DENSE": "1"})
    assert gpu_check.REPORT["steps"]["counters"]["ok"]
    text = (out / "ncu_chain64.txt").read_text()
    assert "NC_DOT_DENSE=1" in text  # the knobs reached ncu's environment
    assert gpu_check.REPORT["counters"]["kernels"] == [
        "void dense_dot_kernel<float, 8, NoEpilogue>(DotParams<T1>, T3): 4.25 us",
        "void for_each_kernel<NeuronStep<float, models::LIF>>(T1, long): 18.98 us"]
    assert "dense_dot_kernel" in gpu_check.table()


def test_grid_phases_run_in_a_child():
    """The grid phases' child process runs a network (on the emulator: phases
    as one block would) and reports success as None."""
    assert gpu_check.grid_phases_run("cuda-emulator", timeout=120) is None


def test_sweep_leaves_out_grid_phases_that_fail(monkeypatch):
    monkeypatch.setattr(gpu_check, "GRID_CHILD", "import sys; sys.exit('launch failed')")
    why = gpu_check.grid_phases_run("cuda-emulator")
    assert why is not None and "failed: launch failed" in why
    seen = {}

    def fake_sweep(budget_s, settings, **kwargs):
        seen["settings"] = settings
        return []

    import device_sweep  # noqa: PLC0415

    monkeypatch.setattr(device_sweep, "sweep", fake_sweep)
    gpu_check.sweep(True, 5, "cuda-emulator")
    assert gpu_check.REPORT["steps"]["sweep"]["ok"]
    labels = [label for label, _ in seen["settings"]]
    assert "default" in labels and "dense" in labels
    assert not [label for label in labels if label.startswith("grid phases")]
    assert any("without its grid phases rows" in n for n in gpu_check.REPORT["notes"])


def test_winners_times_the_winning_settings_together(monkeypatch):
    """Step 10 sets the sweep's settings that won without a loss together
    while it times the networks again (here a small one on the emulator),
    compares each probe with the timing step's CPU run, tabulates each run
    against the timing step's and restores the environment."""
    import nengo
    import numpy as np

    import nengo_cuda

    rows = []
    for case, conv, dense in (("a", 0.9, 0.5), ("b", 1.0, 1.1)):  # "dense" loses on b
        rows += [{"case": case, "setting": label, "vs_default": ratio, "maxdiff": 0.0}
                 for label, ratio in (("default", 1.0), ("conv dense", conv), ("dense", dense))]
    assert gpu_check.winners_env(rows) == {"NC_CONV_DENSE": "1"}
    with nengo.Network(seed=1) as net:  # (tests/ and benchmarks/ both have a networks.py)
        u = nengo.Node(np.sin)
        a = nengo.Ensemble(50, 1)
        nengo.Connection(u, a)
        probe = nengo.Probe(a, synapse=0.01)
    monkeypatch.setattr(gpu_check, "bench_networks", lambda quick: {"tutorial": (net, [probe])})
    seen = []
    timed_run = gpu_check.timed_run

    def spy(make, steps, repeats):
        seen.append(os.environ.get("NC_CONV_DENSE"))
        return timed_run(make, steps, repeats)

    monkeypatch.setattr(gpu_check, "timed_run", spy)
    monkeypatch.delenv("NC_CONV_DENSE", raising=False)
    with nengo_cuda.Simulator(net, device="cpu", progress_bar=False, minibatch_size=1) as sim:
        sim.run_steps(20 + 200)  # the timing's warm-up and first run
        monkeypatch.setitem(gpu_check.CPU_PROBES, ("tutorial", 1), sim.data[probe].copy())
    monkeypatch.setitem(gpu_check.REPORT, "sweep", rows)
    monkeypatch.setitem(gpu_check.REPORT, "winners", [])
    monkeypatch.setitem(gpu_check.REPORT, "timing", [
        {"network": "tutorial", "minibatch": 1, "steps": 200, "cuda_run_s": 0.002,
         "cpu_run_s": 0.001}])
    gpu_check.timing_winners(True, 60, "cuda-emulator")
    assert gpu_check.REPORT["steps"]["winners"]["ok"]
    assert seen == ["1"] and "NC_CONV_DENSE" not in os.environ
    (row,) = gpu_check.REPORT["winners"]
    assert row["cuda_vs_cpu_maxdiff"] < 1e-4
    lines = gpu_check.winners_table()
    assert "with the sweep's winners together (NC_CONV_DENSE=1):" in lines
    assert lines[-1].split()[:2] == ["tutorial", "1"]
    assert float(lines[-1].split()[3]) == 10.0  # the timing step's 0.002 s / 200 steps, in us
