"""The CUDA backend's profile mode (`CudaBackend.profile`, benchmarks/device_profile.py).

Profiled steps are real steps: they must leave the simulator exactly where
``run_steps`` would, bit for bit, while timing every launch group.
"""

import sys
from pathlib import Path

import nengo
import numpy as np
import pytest

import nengo_cuda
import nengo_cuda.simulator
from networks import NETWORKS
from test_cuda_simulator import DEVICES

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from device_profile import format_profile, profile_device, span  # noqa: E402


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param


def _sim(net, device, **kwargs):
    return nengo_cuda.Simulator(net, device=device, progress_bar=False, **kwargs)


def callback_net():
    """A Python-function Node (a callback, so a step has several segments)."""
    with nengo.Network(seed=5) as net:
        u = nengo.Node(lambda t: [np.sin(30 * t), np.cos(20 * t)])
        a = nengo.Ensemble(40, 2)
        b = nengo.Ensemble(30, 1)
        nengo.Connection(u, a)
        nengo.Connection(a, b, function=lambda x: x[0] * x[1])
        probes = [nengo.Probe(b, synapse=0.01), nengo.Probe(a.neurons)]
    return net, probes


NETS = {**NETWORKS, "callback": callback_net}


@pytest.mark.parametrize("name", sorted(NETS))
def test_groups_cover_the_program(device, name):
    """Every instruction in exactly one group (or idle), launches as in the graph
    when every group launches alone (a profile issues each group alone; graphs
    run small groups as phases of shared launches)."""
    net, _ = NETS[name]()
    with _sim(net, device, minibatch_size=2, dtype="float32") as sim:
        sim.run_steps(5)  # a plain run first: stats of the graph path
        stats = sim.backend.stats()
        with sim.backend.profiling() as runs:
            sim.run_steps(12)
        assert sim.backend.stats() == stats  # the same configuration
    assert len(runs) == 1
    run = runs[0]
    covered = [i for g in run["groups"] for i in g["instrs"]] + run["idle"]
    assert sorted(covered) == list(range(len(sim.program.instructions)))
    kernels = [g for g in run["groups"] if g["kinds"] != ["advance"]]
    advance = [g for g in run["groups"] if g["kinds"] == ["advance"]]
    assert [g["launches"] for g in advance] == [1]  # once per graph there, per step here
    assert sum(g["launches"] for g in kernels) == stats["launches_per_step_alone"] - 1
    assert stats["launches_per_step"] <= stats["launches_per_step_alone"]
    assert run["steps"] == 12
    seconds = [g["seconds"] for g in run["groups"]]
    assert min(seconds) >= 0
    assert sum(seconds) <= run["wall_s"]
    for g in run["groups"]:
        if g["instrs"]:
            kinds = {sim.program.instructions[i].kind for i in g["instrs"]}
            assert set(g["kinds"]) == kinds
        else:
            assert g["kinds"] in (["feed"], ["probe"], ["advance"])
    n_callbacks = sum(g["kinds"] == ["callback"] for g in run["groups"])
    assert n_callbacks == stats["segments"] - 1
    assert all(g["launches"] == 0 for g in run["groups"] if g["kinds"] == ["callback"])


@pytest.mark.parametrize("name, dtype, minibatch", [
    ("tutorial", "float32", 3), ("callback", "float64", None), ("slices", "float64", 2),
])
def test_profiled_steps_equal_plain_steps(device, name, dtype, minibatch, monkeypatch):
    """From the same state, profile(40) + run(23) == run_steps(40) + run(23):
    probe data, state signals, step count, bitwise (one simulator: two builds of
    a network may lay out the pools differently).  Small chunks, so the profile
    spans several native runs."""
    monkeypatch.setattr(nengo_cuda.simulator, "_CHUNK_ELEMENTS", 400)
    net, probes = NETS[name]()
    with _sim(net, device, dtype=dtype, minibatch_size=minibatch) as sim:
        sim.run_steps(7)
        start = sim._save_state()
        out = []
        for profiled in (False, True):
            sim._restore_state(start)
            if profiled:
                assert profile_device(sim, 40)["steps"] == 40
            else:
                sim.run_steps(40)
            sim.run_steps(23)
            state = sim._save_state()
            data = [np.array(sim.data[p])[..., -63:, :] for p in probes]  # (trials,) steps, d
            out.append((sim.n_steps, state["f"], state["i"], state["tables"], data))
    (n0, f0, i0, tab0, d0), (n1, f1, i1, tab1, d1) = out
    assert n1 == n0 == 70
    np.testing.assert_array_equal(f1, f0)
    np.testing.assert_array_equal(i1, i0)
    assert repr(tab1) == repr(tab0)
    for a, b in zip(d0, d1):
        assert a.shape == b.shape
        np.testing.assert_array_equal(b, a)


def test_profile_rows_and_table(device, monkeypatch):
    """Rows merge the chunks of a run; shares add up to one; the table prints."""
    monkeypatch.setattr(nengo_cuda.simulator, "_CHUNK_ELEMENTS", 400)
    net, _ = NETS["callback"]()
    with _sim(net, device) as sim:
        prof = profile_device(sim, 30, graph_steps=10)
        assert sim.n_steps == 40
    rows = prof["rows"]
    assert [r["group"] for r in rows] == list(range(len(rows)))
    assert sum(r["share"] for r in rows) == pytest.approx(1.0)
    assert prof["timed_us_per_step"] <= prof["wall_us_per_step"]
    assert prof["graph_us_per_step"] > 0
    assert any(r["kinds"] == "callback" and r["launches"] == 0 for r in rows)
    lines = format_profile(prof, top=3, title="callback")
    assert lines[0] == "callback" and "more groups" in lines[-2]
    assert "us/step" in lines[-1]


def test_backend_profile_with_no_probes_or_feeds(device):
    net, _ = NETS["tutorial"]()
    with _sim(net, device) as sim:
        prof = sim.backend.profile(4, [], [])
        assert sim.backend.steps_done == 4
    assert prof["steps"] == 4
    assert not any(g["kinds"] == ["probe"] for g in prof["groups"])


def test_profile_needs_a_device_backend():
    net, _ = NETS["tutorial"]()
    with _sim(net, "cpu") as sim, pytest.raises(ValueError, match="cuda-emulator"):
        profile_device(sim, 3)


def test_profiling_does_not_nest():
    net, _ = NETS["tutorial"]()
    with _sim(net, "cuda-emulator") as sim, sim.backend.profiling():
        with pytest.raises(RuntimeError, match="already active"), sim.backend.profiling():
            pass


def test_span():
    assert span([]) == "-"
    assert span([4]) == "#4"
    assert span([3, 4, 5, 9, 11, 12]) == "#3-5,9,11-12"
