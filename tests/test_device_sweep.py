"""benchmarks/device_sweep.py: the tuning knobs reach the device program, a
bad value is a clear error, and the environment is restored after each setting."""

import os
import sys
from pathlib import Path

import nengo

from nengo_cuda import _native

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from device_sweep import (  # noqa: E402
    SETTINGS, combined, environment, fastest, format_sweep, sweep, winners)


def small_case():
    with nengo.Network(seed=3) as net:
        u = nengo.Node(nengo.processes.WhiteSignal(1, high=5, seed=1), size_out=3)
        a = nengo.Ensemble(60, 3)
        b = nengo.Ensemble(40, 1)
        nengo.Connection(u, a)
        nengo.Connection(a, b, function=lambda x: x[0] * x[1] + x[2])
        p = nengo.Probe(b, synapse=0.01)
    return ("small B=3", net, p, 3)


def test_sweep_on_emulator():
    knobs = [name for name, _, _, _ in _native.device_knobs()]
    before = {k: os.environ.get(k) for k in knobs}
    settings = SETTINGS + [("bad", {"NC_DOT_TRIALS": "0"})]
    rows = sweep(budget_s=300, steps=10, device="cuda-emulator", cases=[small_case()],
                 settings=settings, log=lambda msg: None, combine=False)
    assert [r["setting"] for r in rows] == [label for label, _ in settings]
    assert {k: os.environ.get(k) for k in knobs} == before
    good, bad = rows[:-1], rows[-1]
    assert "NC_DOT_TRIALS='0': expected an integer" in bad["error"]
    for r in good:
        assert "error" not in r, r
        # other tile shapes sum in another order: float32 rounding, not more
        assert r["maxdiff"] < 1e-5, r
        assert r["pdl"] == 0  # the emulator launches nothing to overlap
    # one plan for every setting (the model is built once): only fusion and
    # phases change the launches
    plain = {r["launches"] for r in good
             if "fuse" not in r["setting"] and "phases" not in r["setting"]}
    assert len(plain) == 1
    by_label = {r["setting"]: r for r in good}
    assert by_label["phases off"]["launches"] > by_label["default"]["launches"]
    for label in ("phases off", "phases 4096", "phases 1024", "phases 64", "grid phases 64K",
                  "grid phases 4096", "grid phases 1M"):  # same sums
        assert by_label[label]["maxdiff"] == 0, label
    # the knobs reach the program: other lanes per row, another summation order
    assert any(r["maxdiff"] > 0 for r in good if r["setting"].startswith("cols/lane"))
    # the same tiles give the same sums, to the bit, and fusing the neuron
    # update saves a launch
    same = {r["setting"]: r for r in good
            if r["setting"] in ("pdl off", "fuse neurons", "fuse filters", "fuse both",
                                "neuron trials 8", "neuron trials 4")}
    assert all(r["maxdiff"] == 0 for r in same.values()), same
    # (fusion saves the launches of what is not a phase already, at most;
    # test_cuda_kernels has the launches it saves)
    assert same["fuse neurons"]["launches"] <= same["pdl off"]["launches"]
    assert same["fuse filters"]["launches"] <= same["pdl off"]["launches"]
    assert "small B=3" in format_sweep(rows)
    best = fastest(rows)
    assert list(best) == ["small B=3"]
    assert best["small B=3"]["us_per_step"] == min(r["us_per_step"] for r in good)
    assert "fastest per case: small B=3: " in format_sweep(rows)


def test_environment_restores_values(monkeypatch):
    monkeypatch.setenv("NC_DOT_TRIALS", "2")
    monkeypatch.delenv("NC_PDL", raising=False)
    with environment({"NC_DOT_TRIALS": "4", "NC_PDL": "1"}):
        assert os.environ["NC_DOT_TRIALS"] == "4" and os.environ["NC_PDL"] == "1"
    assert os.environ["NC_DOT_TRIALS"] == "2" and "NC_PDL" not in os.environ


def test_sweep_runs_each_setting_on_every_case_first():
    """A setting runs on every case before the next setting starts (a short
    budget still compares the first settings everywhere); rows come in case
    order, settings in order within a case; no budget, no rows."""
    label, net, probe, mb = small_case()
    cases = [("A", net, probe, mb), ("B", net, probe, 1)]
    settings = [("default", {}), ("phases off", {"NC_PHASE_MAX": "0"})]
    done = []
    rows = sweep(budget_s=300, steps=5, device="cuda-emulator", cases=cases, settings=settings,
                 log=lambda msg: done.append(msg.split()[1:3]), combine=False)
    assert done == [["A", "default"], ["B", "default"], ["A", "phases"], ["B", "phases"]]
    assert [(r["case"], r["setting"]) for r in rows] == [
        ("A", "default"), ("A", "phases off"), ("B", "default"), ("B", "phases off")]
    assert all("error" not in r for r in rows)
    assert sweep(budget_s=-1, cases=cases, settings=settings, device="cuda-emulator",
                 log=lambda msg: None) == []


def test_combined_takes_the_winners_together():
    """Settings that beat the default on every case with matching probes are
    combined (the faster one's value where two set one knob); slower ones,
    mismatches and settings that missed a case are not; fewer than two
    winners: nothing to combine."""
    settings = [("default", {}), ("a", {"NC_X": "1"}), ("b", {"NC_Y": "2", "NC_X": "3"}),
                ("slow", {"NC_Z": "1"}), ("wrong", {"NC_W": "1"}), ("partial", {"NC_V": "1"})]
    times = {"a": (0.5, 0.9), "b": (0.8, 0.8), "slow": (1.0, 0.99), "wrong": (0.5, 0.5),
             "partial": (0.5,)}
    rows = [dict(case=c, setting="default", vs_default=1.0, maxdiff=0.0) for c in "PQ"]
    for label, ts in times.items():
        rows += [dict(case=c, setting=label, vs_default=t,
                      maxdiff=0.5 if label == "wrong" else 1e-6) for c, t in zip("PQ", ts)]
    env, means = combined(rows, settings, 2)
    assert env == {"NC_X": "1", "NC_Y": "2"}  # a (0.67) before b (0.8)
    assert set(means) == {"a", "b", "slow"} and means["slow"] > 0.98
    assert combined([r for r in rows if r["setting"] != "b"], settings, 2)[0] is None


def test_sweep_ends_with_the_combined_setting(monkeypatch):
    import device_sweep  # noqa: PLC0415

    label, net, probe, mb = small_case()
    cases = [("A", net, probe, mb), ("B", net, probe, 1)]
    settings = [("default", {}), ("phases off", {"NC_PHASE_MAX": "0"})]
    seen = []

    def fake_combined(rows, settings_, n_cases):
        seen.append((len(rows), n_cases))
        return {"NC_PHASE_MAX": "0", "NC_PDL": "1"}, {}

    monkeypatch.setattr(device_sweep, "combined", fake_combined)
    rows = sweep(budget_s=300, steps=5, device="cuda-emulator", cases=cases, settings=settings,
                 log=lambda msg: None)
    assert seen == [(4, 2)]
    assert [(r["case"], r["setting"]) for r in rows if r["setting"] == "combined"] == [
        ("A", "combined"), ("B", "combined")]
    assert all(r["maxdiff"] == 0 for r in rows)  # phases and PDL leave every sum as it was
    assert "combined (NC_PHASE_MAX=0, NC_PDL=1): " in format_sweep(rows)


def test_winners_are_the_candidate_defaults():
    """A setting that is faster somewhere and slower nowhere (beyond 2 %), on
    every case, wins, whatever its probes' summation-order drift; one that
    loses a case, failed, or missed a case does not."""
    times = {"dense": (0.5, 1.01), "trials": (0.9, 0.97), "mixed": (0.5, 1.1),
             "flat": (0.99, 1.0), "broken": (0.5, None), "partial": (0.5,)}
    rows = [dict(case=c, setting="default", us_per_step=10.0, vs_default=1.0, maxdiff=0.0,
                 launches=5, pdl=1) for c in "PQ"]
    for label, ts in times.items():
        for c, t in zip("PQ", ts):
            row = dict(case=c, setting=label)
            if t is None:
                row["error"] = "RuntimeError: launch failed"
            else:
                row.update(us_per_step=10 * t, vs_default=t,
                           maxdiff=0.2 if label == "dense" else 0.0, launches=5, pdl=1)
            rows.append(row)
    wins = winners(rows)
    assert list(wins) == ["dense", "trials"]
    assert wins["dense"] == {"best": 0.5, "worst": 1.01, "maxdiff": 0.2}
    text = format_sweep(rows)
    assert "wins without a loss" in text and "dense (0.50-1.01, rel diff 2.0e-01)" in text
    assert winners([r for r in rows if r["setting"] == "default"]) == {}
