"""The Simulator contract: Nengo's API, lifecycle, probes and clear errors."""

import pickle

import nengo
import numpy as np
import pytest
from nengo.exceptions import ReadonlyError, SimulationError, SimulatorClosed, ValidationError
from nengo.utils.progress import ProgressBar

import nengo_cuda
from networks import tutorial


@pytest.fixture
def net():
    return tutorial()


def make(net, **kwargs):
    kwargs.setdefault("progress_bar", False)
    return nengo_cuda.Simulator(net[0], **kwargs)


def test_properties_and_trange(net):
    with make(net, dt=0.002) as sim:
        assert sim.dt == 0.002
        with pytest.raises(ReadonlyError):
            sim.dt = 0.1
        sim.run(0.01)
        assert sim.n_steps == 5 and sim.time == pytest.approx(0.01)
        np.testing.assert_allclose(sim.trange(), 0.002 * np.arange(1, 6))
        sim.step()
        assert sim.n_steps == 6
        assert sim.data[net[1][0]].shape == (6, 1)


def test_run_takes_any_real_number_of_seconds(net):
    """As nengo.Simulator: a Fraction or NumPy float of seconds (a Fraction
    was a raw TypeError from np.isfinite)."""
    from fractions import Fraction

    with make(net) as sim:
        sim.run(Fraction(1, 100))
        sim.run(np.float32(0.005))
        assert sim.n_steps == 15
    # so is dt (nengo.Simulator's own fails to format it; it was the same raw TypeError)
    with make(net, dt=Fraction(1, 500)) as sim:
        sim.run(0.01)
        assert sim.dt == 0.002 and sim.n_steps == 5


def _probed_input(size):
    """A network of one input Node of ``size`` values, probed."""
    with nengo.Network() as network:
        inp = nengo.Node(np.zeros(size))
        p = nengo.Probe(inp)
    return network, inp, p


def test_step_takes_run_steps_arguments():
    """NengoDL's ``step(**kwargs)``: its SPA tutorial steps with ``data=``."""
    network, inp, p = _probed_input(2)
    x = np.arange(12.0).reshape(3, 2, 2)
    with nengo_cuda.Simulator(network, minibatch_size=3, progress_bar=False) as sim:
        sim.step(data={inp: x[:, :1]})
        sim.step(data={inp: x[:, 1:]})
        np.testing.assert_array_equal(sim.data[p], x)
        with pytest.raises(TypeError, match="unexpected keyword"):
            sim.step(dat={inp: x[:, :1]})


def test_build_artefacts_in_data(net):
    network, _ = net
    ens = network.ensembles[0]
    with make(net, dtype="float64") as sim, nengo.Simulator(network, progress_bar=False) as ref:
        np.testing.assert_array_equal(sim.data[ens].encoders, ref.data[ens].encoders)
        assert ens in sim.data


def test_runs_concatenate_and_reset_restores(net):
    p = net[1][1]
    with make(net, dtype="float64") as sim:
        sim.run(0.2)
        sim.run(0.1)
        first = sim.data[p].copy()
        assert first.shape == (300, 1)
        sim.reset()
        assert sim.n_steps == 0 and sim.data[p].shape[0] == 0
        sim.run(0.3)
        np.testing.assert_array_equal(sim.data[p], first)
        sim.reset(seed=sim.seed + 1)  # a new seed changes the WhiteSignal input
        sim.run(0.3)
        assert not np.allclose(sim.data[p], first)


def test_sample_every_and_clear_probes():
    with nengo.Network(seed=1) as network:
        u = nengo.Node(lambda t: t)
        p1 = nengo.Probe(u, sample_every=0.005)
        p2 = nengo.Probe(u)
    with nengo_cuda.Simulator(network, dtype="float64", progress_bar=False) as sim:
        sim.run(0.02)
        np.testing.assert_allclose(sim.data[p1][:, 0], sim.trange(sample_every=0.005))
        assert sim.data[p2].shape == (20, 1)
        sim.clear_probes()
        assert sim.data[p2].shape[0] == 0
        sim.run(0.01)
        np.testing.assert_allclose(sim.data[p2][:, 0], sim.trange()[-10:])


def _raw_after_deletions(simulator, **kwargs):
    """What nengo_gui's voltage plot does: read ``sim.data.raw[probe][:]``
    between steps and delete what it read (here also a middle slice and
    one sample), then steps on."""
    with nengo.Network(seed=0) as network:
        a = nengo.Ensemble(5, 1)
        nengo.Connection(nengo.Node(lambda t: np.sin(10 * t)), a)
        p = nengo.Probe(a.neurons[:3], "voltage")
    with simulator(network, progress_bar=False, **kwargs) as sim:
        sim.run_steps(10)
        raw = sim.data.raw[p]
        read = [np.array(x) for x in raw[:]] + [raw[-1], raw[3]]
        del raw[2:5]
        del raw[0]
        n_after = len(sim.data.raw[p])
        sim.run_steps(4)
        middle = np.array(sim.data[p])
        del sim.data.raw[p][:]
        n_cleared = len(sim.data[p])
        sim.run_steps(3)
        return read, n_after, middle, n_cleared, np.array(sim.data[p])


def test_raw_probe_samples_read_and_deleted_as_nengo():
    """``sim.data.raw[probe]`` is nengo.Simulator's list of samples: nengo_gui
    reads and empties it (it was an empty list that ignored deletion)."""
    ours = _raw_after_deletions(nengo_cuda.Simulator, dtype="float64")
    oracle = _raw_after_deletions(nengo.Simulator)
    assert ours[1] == oracle[1] == 6 and ours[3] == oracle[3] == 0
    for a, b in zip(ours[0] + [ours[2], ours[4]], oracle[0] + [oracle[2], oracle[4]]):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


def test_raw_probe_samples_of_a_minibatch_and_bad_index(net):
    p = net[1][1]
    with make(net, dtype="float64", minibatch_size=2) as sim:
        sim.run_steps(5)
        raw = sim.data.raw[p]
        assert len(raw) == 5 and raw[4].shape == (2,) + p.size_in * (1,)
        np.testing.assert_array_equal(raw[1], sim.data[p][:, 1])
        with pytest.raises(IndexError):
            del raw[5]
        assert len(raw) == 5
        assert net[0].ensembles[0] in sim.data.raw  # (built objects as before)


def test_probe_data_survives_chunking(net, monkeypatch):
    import nengo_cuda.simulator as simulator

    monkeypatch.setattr(simulator, "_CHUNK_ELEMENTS", 7)  # many tiny chunks
    p = net[1][1]
    with make(net, dtype="float64") as sim:
        sim.run(0.1)
        chunked = sim.data[p].copy()
    monkeypatch.undo()
    with make(net, dtype="float64") as sim:
        sim.run(0.1)
        np.testing.assert_array_equal(sim.data[p], chunked)


class _QuietBar(ProgressBar):
    """A progress bar that shows nothing (but makes runs paced)."""

    def update(self, progress):
        pass


def test_a_run_that_shows_progress_goes_in_paced_native_runs(net):
    """With a progress bar, a run goes in native runs of about 0.1 s each
    (the first of 16 steps), so the bar moves within what would be one long
    native run; the results are those of one native run."""
    import nengo_cuda.simulator as simulator

    p = net[1][1]
    steps = 3000
    with make(net, dtype="float64") as sim:
        sizes = []
        run_chunk = sim._run_chunk
        sim._run_chunk = lambda n, feeds: sizes.append(n) or run_chunk(n, feeds)
        sim.run_steps(steps, progress_bar=_QuietBar())
        paced = sim.data[p].copy()
        sim._run_chunk = run_chunk
        limit = sim._chunk_steps()
    assert sizes[0] == simulator._PACE_FIRST_STEPS and sum(sizes) == steps
    assert all(n & (n - 1) == 0 and n <= limit for n in sizes[:-1])  # powers of two
    with make(net, dtype="float64") as sim:
        sim.run_steps(steps, progress_bar=False)  # (one native run)
        np.testing.assert_array_equal(sim.data[p], paced)
    # the next run's length: about _PACE_SECONDS of steps, a power of two, within the limit
    assert simulator._paced_steps(16, 0.001, 1 << 16) == 1024  # 1600 steps fit
    assert simulator._paced_steps(16, 1e-9, 4096) == 4096
    assert simulator._paced_steps(8, 5.0, 4096) == 1


def _probe_data_seen_inside(simulator_class, sample_every=None, clear_at=(), **kwargs):
    """What a Node's function reads from ``sim.data[probe]`` at each call
    (clearing the probes at the calls ``clear_at``), and the data after."""
    seen, holder = [], {"fail at": 13}

    def f(t, x):
        sim = holder.get("sim")
        if sim is not None:
            seen.append(np.array(sim.data[p]))
            if len(seen) in clear_at:
                sim.clear_probes()
            if len(seen) == holder["fail at"]:
                raise RuntimeError("once")
        return x
    with nengo.Network(seed=0) as model:
        stim = nengo.Node(lambda t: np.sin(10 * t))
        node = nengo.Node(f, size_in=1, size_out=1)
        nengo.Connection(stim, node, synapse=None)
        ens = nengo.Ensemble(20, 1)
        nengo.Connection(node, ens)
        p = nengo.Probe(ens, synapse=0.01, sample_every=sample_every)
    with simulator_class(model, progress_bar=False, **kwargs) as sim:
        holder["sim"] = sim
        sim.run_steps(5)
        sim.step()
        sim.run(0.004)
        with pytest.raises(RuntimeError, match="once"):
            sim.run_steps(3)  # (its third step raises)
        sim.run_steps(4)
        if simulator_class is nengo_cuda.Simulator:  # (in paced chunks of 16, 32 ...)
            sim.run_steps(40, progress_bar=_QuietBar())
        return seen, np.array(sim.data[p])


@pytest.mark.parametrize("sample_every, clear_at", [(None, ()), (None, (3, 12, 14)),
                                                    (0.002, ()), (0.003, (8,))])
def test_probe_data_during_a_run_is_nengos(sample_every, clear_at):
    """``sim.data[probe]`` read by a Node's function during a run holds the
    samples of the steps done so far, as nengo.Simulator's (whose data grows
    step by step); ``clear_probes()`` there drops those samples only."""
    ours, final = _probe_data_seen_inside(nengo_cuda.Simulator, sample_every, clear_at,
                                          dtype="float64")
    ref, ref_final = _probe_data_seen_inside(nengo.Simulator, sample_every, clear_at)
    assert len(ours) == len(ref) + 40
    for got, expected in zip(ours, ref):
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    for step, got in enumerate(ours[len(ref):]):  # (the paced run: the data it grew)
        np.testing.assert_array_equal(got, final[: len(got)])
        assert len(got) >= len(ours[len(ref) - 1]) + (step if sample_every is None else 0)
    np.testing.assert_allclose(final[: len(ref_final)], ref_final, rtol=0, atol=1e-12)


DELETIONS = {"clear": lambda sim, p: sim.clear_probes(),
             "all": lambda sim, p: sim.data.raw[p].__delitem__(slice(None)),
             "last 3": lambda sim, p: sim.data.raw[p].__delitem__(slice(-3, None)),
             "first 3": lambda sim, p: sim.data.raw[p].__delitem__(slice(3))}


@pytest.mark.parametrize("device", ["cpu", "cuda-emulator"])
@pytest.mark.parametrize("sample_every", [None, 0.003])
@pytest.mark.parametrize("deletion", sorted(DELETIONS))
def test_deleting_samples_in_a_callback_counts_the_runs_samples_so_far(device, sample_every,
                                                                         deletion):
    """``clear_probes()`` or ``del sim.data.raw[probe][...]`` from a Node's
    function in the second run: as nengo.Simulator's, also on the CUDA
    backend, whose callbacks see none of the run's samples (it kept them all,
    or deleted the last run's)."""
    def final(simulator_class, **kwargs):
        holder = {}

        def f(t):
            if int(round(t / 0.001)) == 45:
                DELETIONS[deletion](holder["sim"], holder["p"])
            return np.sin(10 * t)

        with nengo.Network(seed=0) as net:
            p = holder["p"] = nengo.Probe(nengo.Node(f), sample_every=sample_every)
        with simulator_class(net, progress_bar=False, **kwargs) as sim:
            holder["sim"] = sim
            sim.run_steps(30)
            sim.run_steps(30)
            return np.array(sim.data[p])

    expected = final(nengo.Simulator)
    got = final(nengo_cuda.Simulator, device=device, dtype="float64")
    assert got.shape == expected.shape and len(got) < (60 if sample_every is None else 20)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_probe_data_during_a_minibatch_run():
    """Each trial's data read during a run of a minibatch is what it ends with."""
    seen, holder = [], {}
    with nengo.Network(seed=0) as model:
        node = nengo.Node(lambda t: seen.append(np.array(holder["sim"].data[p]))
                          if "sim" in holder else None, size_out=0)
        ens = nengo.Ensemble(10, 1)
        nengo.Connection(nengo.Node(0.5), ens)
        p = nengo.Probe(ens, synapse=0.005)
    with nengo_cuda.Simulator(model, minibatch_size=3, progress_bar=False) as sim:
        holder["sim"] = sim
        sim.run_steps(6)
        final = sim.data[p]
    assert final.shape == (3, 6, 1) and [s.shape[1] for s in seen] == [0, 1, 2, 3, 4, 5]
    for got in seen:
        np.testing.assert_array_equal(got, final[:, : got.shape[1]])


def test_raw_and_sparse_probe_data_during_a_run_are_nengos():
    """Read by a Node's function during a run: ``sim.data.raw[probe]`` (a
    list, as nengo_gui reads it) grows as ``sim.data[probe]``, ``del
    raw[probe][...]`` drops those samples for good, and a probe of a
    ``nengo.Sparse`` transform's weights counts and clears as the others."""
    def seen_inside(simulator_class, **kwargs):
        seen, holder = [], {}

        def f(t, x):
            sim = holder.get("sim")
            if sim is not None:
                lengths = (len(sim.data.raw[p]), len(sim.data[p]), len(sim.data[weights]))
                if len(seen) == 2:
                    del sim.data.raw[p][:]
                elif len(seen) == 4:
                    del sim.data.raw[p][1]
                elif len(seen) == 6:
                    sim.clear_probes()
                seen.append(lengths + (np.array(sim.data[p]),))
        with nengo.Network(seed=0) as model:
            ens = nengo.Ensemble(4, 2)
            nengo.Connection(nengo.Node([0.5, -0.2]), ens)
            out = nengo.Node(f, size_in=2, size_out=0)
            conn = nengo.Connection(ens.neurons, out, transform=nengo.Sparse(
                (2, 4), indices=[[0, 0], [1, 3]], init=[1.0, 2.0]))
            p, weights = nengo.Probe(ens, synapse=0.01), nengo.Probe(conn, "weights")
        with simulator_class(model, progress_bar=False, **kwargs) as sim:
            holder["sim"] = sim
            sim.run_steps(9)
            holder.clear()
            return seen, np.array(sim.data[p]), len(sim.data[weights])

    ours, final, n_weights = seen_inside(nengo_cuda.Simulator, dtype="float64")
    ref, ref_final, ref_weights = seen_inside(nengo.Simulator)
    assert [s[:3] for s in ours] == [s[:3] for s in ref]
    for got, expected in zip(ours, ref):
        np.testing.assert_allclose(got[3], expected[3], rtol=0, atol=1e-12)
    np.testing.assert_allclose(final, ref_final, rtol=0, atol=1e-12)
    assert n_weights == ref_weights == 3  # (steps 7-9: cleared in step 7)


def test_probe_data_during_predict_is_as_before_it(monkeypatch):
    """predict and evaluate leave sim.data as it was (NengoDL's): code they
    call (a Node's function, a Keras callback) sees the earlier runs' samples,
    also where their runs go in several chunks, and its deletions and clears
    change sim.data, not predict's outputs."""
    tf = pytest.importorskip("tensorflow")
    monkeypatch.setattr(nengo_cuda.simulator, "_CHUNK_ELEMENTS", 3)  # (chunks of 3 steps)
    seen, holder = [], {}
    with nengo.Network(seed=0) as model:
        inp = nengo.Node(np.zeros(1))
        ens = nengo.Ensemble(10, 1)
        nengo.Connection(inp, ens)
        p = nengo.Probe(ens, synapse=0.01, sample_every=0.002)

        def read(t, x):
            action = holder.pop("action", None)
            if action is not None:
                action(holder["sim"])
            elif holder:
                seen.append((holder["sim"].data[p].shape, len(holder["sim"].data.raw[p])))
        nengo.Connection(ens, nengo.Node(read, size_in=1, size_out=0))
    with nengo_cuda.Simulator(model, progress_bar=False) as sim:
        sim.run_steps(6)
        earlier = np.array(sim.data[p])
        holder["sim"] = sim
        expected = sim.predict({inp: np.zeros((2, 5, 1))}, verbose=0)[p]
        assert seen == [((3, 1), 3)] * 10
        np.testing.assert_array_equal(sim.data[p], earlier)

        def delete_first(sim):
            del sim.data.raw[p][0]
        holder["action"] = delete_first
        out = sim.predict({inp: np.zeros((2, 5, 1))}, verbose=0)[p]
        np.testing.assert_array_equal(out, expected)
        np.testing.assert_array_equal(sim.data[p], earlier[1:])

        class Clear(tf.keras.callbacks.Callback):
            def on_predict_batch_end(self, batch, logs=None):
                sim.clear_probes()
        for callbacks in ([], [Clear()]):
            sim.run_steps(6)
            expected = sim.predict({inp: np.zeros((2, 5, 1))}, verbose=0)[p]
            if not callbacks:
                holder["action"] = lambda sim: sim.clear_probes()
            out = sim.predict({inp: np.zeros((2, 5, 1))}, verbose=0, callbacks=callbacks)[p]
            np.testing.assert_array_equal(out, expected)
            assert sim.data[p].shape == (0,)


def test_n_steps_and_time_during_a_run_are_nengos():
    """Read by a Node's function during a run, ``n_steps`` and ``time`` count
    the steps done so far (Nengo counts a step once its probes recorded), as
    nengo.Simulator's, also in the step after one whose Node raised; a run
    that is not stateful leaves them, also when it goes in paced chunks."""
    def seen_inside(simulator_class, **kwargs):
        seen, holder = [], {"fail at": 10}

        def f(t, x):
            if "sim" in holder:
                seen.append((holder["sim"].n_steps, holder["sim"].time))
                if len(seen) == holder["fail at"]:
                    raise RuntimeError("once")
            return x
        with nengo.Network(seed=0) as model:
            stim = nengo.Node(lambda t: t)
            node = nengo.Node(f, size_in=1, size_out=1)
            nengo.Connection(stim, node, synapse=None)
        with simulator_class(model, progress_bar=False, **kwargs) as sim:
            holder["sim"] = sim
            sim.run_steps(3)
            sim.step()
            sim.run(0.002)
            sim.reset()
            sim.run_steps(2)
            with pytest.raises(RuntimeError, match="once"):
                sim.run_steps(3)  # (its second step raises)
            sim.run_steps(2)
            if simulator_class is nengo_cuda.Simulator:
                n = len(seen)
                sim.run_steps(3, stateful=False)
                sim.run_steps(300, stateful=False, progress_bar=_QuietBar())  # (paced)
                assert seen[n:] == [(6, pytest.approx(0.006))] * 303
                del seen[n:]
        return seen

    ours = seen_inside(nengo_cuda.Simulator, dtype="float64")
    ref = seen_inside(nengo.Simulator)
    assert [n for n, _ in ours] == [n for n, _ in ref] == [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 3, 5]
    np.testing.assert_allclose([t for _, t in ours], [t for _, t in ref], rtol=1e-12)


def test_pickle_roundtrip(net):
    p = net[1][1]
    with make(net, dtype="float64", minibatch_size=2) as sim:
        sim.run(0.1)
        loaded = pickle.loads(pickle.dumps({"sim": sim, "p": p}))
        sim.run(0.1)
        sim2, p2 = loaded["sim"], loaded["p"]
        with sim2:
            assert sim2.minibatch_size == 2 and sim2.n_steps == 100
            sim2.run(0.1)
            np.testing.assert_allclose(sim2.data[p2], sim.data[p], atol=1e-12)



@pytest.mark.parametrize("minibatch_size", [None, 2])
def test_pickle_keeps_loaded_parameters(tmp_path, minibatch_size):
    """Parameters changed after the build (load_params here; training the
    same) pickle with the simulator: the copy runs them, also after a reset
    that keeps them (it ran the built ones)."""
    with nengo.Network(seed=0) as network:
        u = nengo.Node([0.5])
        a = nengo.Ensemble(20, 1)
        nengo.Connection(u, a)
        out = nengo.Node(size_in=1)
        conn = nengo.Connection(a, out)
        probe = nengo.Probe(out)
    with make((network, [probe]), dtype="float64", minibatch_size=minibatch_size) as sim:
        sim.save_params(tmp_path / "built")
        with np.load(tmp_path / "built.npz") as saved:
            np.savez(tmp_path / "scaled", **{k: 3 * saved[k] for k in saved.files})
        sim.load_params(tmp_path / "scaled")
        loaded = np.array(sim.data[conn].weights)
        copy, copy_probe, copy_conn = pickle.loads(pickle.dumps((sim, probe, conn)))
        with copy:
            np.testing.assert_array_equal(copy.data[copy_conn].weights, loaded)
            for s, p in ((sim, probe), (copy, copy_probe)):
                s.run_steps(20)
                s.reset(include_trainable=False)
                s.run_steps(20)
            np.testing.assert_array_equal(copy.data[copy_probe], sim.data[probe])


@pytest.mark.parametrize("minibatch_size", [None, 2])
def test_pickle_before_a_run(net, minibatch_size):
    """A simulator that has not run pickles (its probes without samples, of
    the probed shape) and then runs as one that was never pickled."""
    network, probes = net
    with make(net, dtype="float64", minibatch_size=minibatch_size) as sim:
        empty = [sim.data[p].shape for p in probes]
        copy, copied_probes = pickle.loads(pickle.dumps((sim, probes)))
        sim.run_steps(10)
        with copy:
            assert [copy.data[p].shape for p in copied_probes] == empty
            copy.run_steps(10)
            for ours, p in zip(copied_probes, probes):
                np.testing.assert_array_equal(copy.data[ours], sim.data[p])


@pytest.mark.parametrize("device", ["cpu", "cuda-emulator"])
@pytest.mark.parametrize("minibatch_size", [None, 2])
def test_probe_sparse_weights(device, minibatch_size):
    """A probe of a Sparse transform's weights records, as nengo.Simulator, a
    copy of the matrix at each sample (no learning rule changes them: Nengo
    refuses learning on Sparse transforms), next to the other probes."""
    with nengo.Network(seed=1) as network:
        u = nengo.Node([1, 2, 3])
        a = nengo.Node(size_in=3)
        transform = nengo.Sparse((3, 3), indices=[[0, 1], [2, 2], [1, 0]], init=[2.0, 3.0, -1.0])
        conn = nengo.Connection(u, a, transform=transform)
        probes = [nengo.Probe(conn, "weights"), nengo.Probe(conn, "weights", sample_every=0.002),
                  nengo.Probe(a)]
    with nengo.Simulator(network, progress_bar=False) as ref:
        ref.run_steps(3)
        ref.run_steps(4)
    with nengo_cuda.Simulator(network, dtype="float64", device=device, progress_bar=False,
                              minibatch_size=minibatch_size) as sim:
        copy, copy_probes = pickle.loads(pickle.dumps((sim, probes)))
        sim.run_steps(3)
        copy.run_steps(3)
        copied, copied_probes = pickle.loads(pickle.dumps((copy, copy_probes)))
        copy.close()
        for s, its_probes in ((sim, probes), (copied, copied_probes)):
            s.run_steps(4)
            for mine, p in zip(its_probes, probes):
                ours, theirs = s.data[mine], ref.data[p]
                if minibatch_size:
                    assert ours.shape[0] == minibatch_size
                    ours = ours[-1]
                assert ours.shape == theirs.shape
                if p.attr == "weights":
                    assert len({id(m) for m in ours}) == len(ours)  # copies, as Nengo's
                for mine, nengos in zip(ours, theirs):
                    if p.attr == "weights":
                        mine, nengos = mine.toarray(), nengos.toarray()
                    assert np.array_equal(mine, nengos)
        if not minibatch_size:  # (sim.data.raw: the matrices themselves, as Nengo's)
            assert np.array_equal(sim.data.raw[probes[0]][2].toarray(),
                                  ref.data.raw[probes[0]][2].toarray())
        copied.close()

def test_nengo_dl_arguments_port_unchanged(net):
    """Code written for nengo_dl.Simulator keeps its device= and
    unroll_simulation=; as NengoDL, steps round up to a multiple of the unroll
    (with a warning), and data needs the rounded count."""
    network, probes = net
    with make(net, dtype="float64") as plain:
        plain.run_steps(20)
    with make(net, dtype="float64", device="/cpu:0", unroll_simulation=10) as sim:
        assert sim.unroll_simulation == sim.unroll == 10
        with pytest.warns(RuntimeWarning, match="runs for 20 steps"):
            sim.run_steps(15)
        assert sim.n_steps == 20
        for p in probes:
            np.testing.assert_array_equal(sim.data[p], plain.data[p])
        sim.run_steps(10)  # a multiple: no warning, exactly 10
        assert sim.n_steps == 30
        copy = pickle.loads(pickle.dumps(sim))
    with copy:
        assert copy.unroll_simulation == 10 and copy.device == "/cpu:0"


def test_soft_reset_keeps_probes_by_default():
    with nengo.Network(seed=3) as network:
        noise = nengo.Node(nengo.processes.WhiteNoise(), size_out=1)
        p = nengo.Probe(noise)
    with nengo_cuda.Simulator(network, dtype="float64", progress_bar=False) as sim:
        sim.run_steps(10)
        first = np.array(sim.data[p])
        with pytest.warns(DeprecationWarning, match="soft_reset"):
            sim.soft_reset()
        assert sim.n_steps == 0 and sim.data[p].shape[0] == 10
        sim.run_steps(10)
        # the noise stream ran on (include_processes=False): no repeat of the first run
        assert not np.array_equal(sim.data[p][10:], first)
        sim.reset()  # a full reset restarts it
        sim.run_steps(10)
        np.testing.assert_array_equal(sim.data[p], first)
        with pytest.warns(DeprecationWarning):
            sim.soft_reset(include_probes=True)
        assert sim.data[p].shape[0] == 0


def test_configured_dtype_sets_precision():
    """NengoDL sets the precision with configure_settings(dtype=...); the
    Simulator's own dtype argument, when given, wins."""
    network, probes = tutorial()
    with network:
        nengo_cuda.configure_settings(dtype="float64")
    with nengo.Simulator(network, progress_bar=False) as ref:
        ref.run(0.1)
    with nengo_cuda.Simulator(network, progress_bar=False) as sim:
        assert sim.dtype == np.float64
        sim.run(0.1)
        for p in probes:
            np.testing.assert_allclose(sim.data[p], ref.data[p], rtol=1e-12, atol=1e-12)
        copy = pickle.loads(pickle.dumps(sim))
    with copy:
        assert copy.dtype == np.float64
    with nengo_cuda.Simulator(network, progress_bar=False, dtype="float32") as sim:
        assert sim.dtype == np.float32
    with network, pytest.raises(ValidationError, match="float16"):
        nengo_cuda.configure_settings(dtype="float16")


def test_cuda_device_error_names_cause(net):
    with pytest.raises(ValidationError, match="device='cuda' is unavailable: .+"):
        make(net, device="cuda")


def test_python_errors_propagate_and_keep_data():
    def fail_at_5(t):
        if t > 0.0045:
            raise RuntimeError("boom")
        return t

    with nengo.Network() as network:
        u = nengo.Node(fail_at_5)
        p = nengo.Probe(u)
    with nengo_cuda.Simulator(network, progress_bar=False) as sim:
        with pytest.raises(RuntimeError, match="boom"):
            sim.run(0.01)
        assert sim.n_steps == 4
        assert sim.data[p].shape == (4, 1)



def network_with_failing_node():
    """A Node of the time that raises once, in step 2 (of the first trial that
    gets there); probed every step and every second step."""
    failed = []

    def f(t):
        if t > 0.0015 and not failed:
            failed.append(t)
            raise RuntimeError("boom")
        return t

    with nengo.Network(seed=1) as network:
        u = nengo.Node(f, size_out=1)
        probes = [nengo.Probe(u), nengo.Probe(u, sample_every=0.002)]
    return network, probes


@pytest.mark.parametrize("minibatch_size", [None, 2])
def test_run_after_a_callback_error_counts_steps_as_nengo(minibatch_size):
    """After a Node raised in step 2, Nengo's step signal counts that step:
    the next run goes on from it, and n_steps, time, trange and the probes'
    sampling follow the signal."""
    results = []
    for make_sim in (nengo.Simulator,
                     lambda net: nengo_cuda.Simulator(net, dtype="float64", progress_bar=False,
                                                      minibatch_size=minibatch_size)):
        network, probes = network_with_failing_node()
        with make_sim(network) as sim:
            with pytest.raises(RuntimeError, match="boom"):
                sim.run_steps(5)
            sim.run_steps(3)
            data = [np.asarray(sim.data[p]).reshape(-1, sim.data[p].shape[-2], 1)[0]
                    for p in probes]
            results.append((sim.n_steps, sim.time, list(sim.trange()), data))
    (n_ref, t_ref, trange_ref, data_ref), (n, t, trange, data) = results
    assert (n, t, trange) == (n_ref, t_ref, trange_ref) and n == 5
    for ours, ref in zip(data, data_ref):
        assert np.array_equal(ours, ref)


def test_run_failing_at_its_first_step_keeps_n_steps_as_nengo():
    """A run whose first step raises leaves n_steps, time and trange as they
    were (Nengo reads its step signal after a step; ours moved to the signal,
    which counts the failed steps: 5 times for 4 samples)."""
    logs = []
    for make_sim in (nengo.Simulator,
                     lambda net: nengo_cuda.Simulator(net, dtype="float64", progress_bar=False)):
        failures = []

        def f(t):
            if t > 0.0045 and len(failures) < 2:
                failures.append(t)
                raise RuntimeError("boom")
            return t

        with nengo.Network(seed=0) as net:
            p = nengo.Probe(nengo.Node(f))
        log = []
        with make_sim(net) as sim:
            for _ in range(4):
                try:
                    sim.run_steps(3)
                except RuntimeError:
                    log.append("raised")
                log.append((sim.n_steps, sim.time, len(sim.trange()), sim.data[p].tolist()))
        logs.append(log)
    assert logs[0] == logs[1] and logs[1][4][0] == 4


def test_training_mode_run_after_a_callback_error_counts_steps_as_nengo():
    """A run in training mode (learning_phase=True) after a Node raised goes
    on from Nengo's step signal too, as the native run does: its time and its
    probes' sampling are those of nengo.Simulator's next run."""
    pytest.importorskip("tensorflow")
    network, probes = network_with_failing_node()
    with nengo.Simulator(network) as ref:
        with pytest.raises(RuntimeError, match="boom"):
            ref.run_steps(5)
        ref.run_steps(3)
    network, ours = network_with_failing_node()
    with nengo_cuda.Simulator(network, dtype="float64", progress_bar=False) as sim:
        with pytest.raises(RuntimeError, match="boom"):
            sim.run_steps(5)
        with network:
            nengo_cuda.configure_settings(learning_phase=True)
        sim.run_steps(3)
        assert (sim.n_steps, sim.time) == (ref.n_steps, ref.time)
        for p, q in zip(ours, probes):
            assert np.array_equal(sim.data[p], ref.data[q])


def test_rng_is_nengos():
    """sim.rng is Nengo's: RandomState(seed), after making the step functions
    (its next draws are Nengo's), made anew by reset and after unpickling."""
    with nengo.Network(seed=3) as network:
        u = nengo.Node(nengo.processes.WhiteNoise(), size_out=2)
        v = nengo.Node(np.sin)  # (a Python callback; picklable)
        a = nengo.Ensemble(10, 1, noise=nengo.processes.WhiteNoise())
        nengo.Connection(v, a)
        nengo.Probe(u)

    def draws(sim):
        return sim.rng.uniform(size=5)

    with nengo.Simulator(network, progress_bar=False) as ref, \
            nengo_cuda.Simulator(network, dtype="float64", progress_bar=False) as sim:
        assert np.array_equal(draws(sim), draws(ref))
        ref.reset(seed=11)
        sim.reset(seed=11)
        assert np.array_equal(draws(sim), draws(ref))
        copy = pickle.loads(pickle.dumps(sim))
        ref.reset()
        assert np.array_equal(draws(copy), draws(ref))
        copy.close()

def test_entry_point_and_backend_name():
    from importlib.metadata import entry_points

    loaded = [ep.load() for ep in entry_points(group="nengo.backends")]
    assert nengo_cuda.Simulator in loaded


@pytest.mark.parametrize("minibatch_size", [None, 3])
def test_callbacks_see_exact_time_in_float32(minibatch_size):
    """Node functions get t = step * dt in float64, as from nengo.Simulator
    (each trial's call of a Node with an input, in a minibatch; an input
    Node's function is called once a step)."""
    seen, seen_x = [], []
    trials = minibatch_size or 1
    with nengo.Network() as network:
        inp = nengo.Node(lambda t: seen.append(t) or 0)
        nengo.Connection(inp, nengo.Node(lambda t, x: seen_x.append(t), size_in=1))
    with nengo_cuda.Simulator(network, dtype="float32", minibatch_size=minibatch_size,
                              progress_bar=False) as sim:
        seen.clear(), seen_x.clear()  # Nengo calls the functions once while building
        sim.run_steps(600)
        assert seen == [(i + 1) * 0.001 for i in range(600)]
        assert seen_x == [(i + 1) * 0.001 for i in range(600) for _ in range(trials)]
        sim.reset()
        seen.clear()
        sim.run_steps(2)
        assert seen == [0.001, 0.002]


def _param_net(learning):
    with nengo.Network(seed=7) as network:
        inp = nengo.Node([0.3])
        ens = nengo.Ensemble(15, 1, radius=2.0)
        out = nengo.Node(size_in=1)
        nengo.Connection(inp, ens)
        conn = nengo.Connection(ens, out)
        learned = None
        if learning:
            learned = nengo.Connection(ens, out, learning_rule_type=nengo.PES())
            nengo.Connection(out, learned.learning_rule)
    return network, ens, conn, learned


def test_data_gives_built_objects_until_parameters_change():
    """sim.data[obj] is Nengo's built object while its parameters hold their
    built values; a learning rule's weights are parameters, as in NengoDL:
    sim.data gives what they learned (Nengo's weights probe sees the same)."""
    network, ens, conn, learned = _param_net(learning=True)
    with network:
        weights = nengo.Probe(learned, "weights")
    with nengo_cuda.Simulator(network, progress_bar=False) as sim, \
            nengo.Simulator(network, progress_bar=False) as ref:
        sim.run(0.2)
        ref.run(0.2)
        for obj in (ens, conn):
            assert sim.data[obj] is sim.model.params[obj]
        assert sim.data[learned] is not sim.model.params[learned]
        np.testing.assert_allclose(sim.data[learned].weights, ref.data[weights][-1],
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_data_gives_changed_parameters(dtype):
    """Written parameters (as training writes them) show in sim.data, split
    back into Nengo's built quantities consistently, until reset."""
    # (no learning rule here: Nengo's optimizer would merge conn's weights with
    # the learned ones into one state signal, which is not a parameter)
    network, ens, conn, _ = _param_net(learning=False)
    with nengo_cuda.Simulator(network, progress_bar=False, dtype=dtype) as sim:
        built_e, built_c = sim.model.params[ens], sim.model.params[conn]
        sig = sim.model.sig
        new_scaled = built_e.scaled_encoders * np.linspace(0.8, 1.2, 15)[:, None]
        new_bias = built_e.bias + 0.05
        new_w = built_c.weights * -2
        # (read-only in sim.signals, as in Nengo; training writes through the layout)
        sim.layout.writable(sig[ens]["encoders"])[...] = new_scaled
        sim.layout.writable(sig[ens.neurons]["bias"])[...] = new_bias
        sim.layout.writable(sig[conn]["weights"])[...] = new_w
        d, c = sim.data[ens], sim.data[conn]
        rtol = 1e-6 if dtype == "float32" else 1e-12
        np.testing.assert_allclose(d.scaled_encoders, new_scaled, rtol=rtol)
        np.testing.assert_allclose(d.bias, new_bias, rtol=rtol)
        np.testing.assert_allclose(d.gain, built_e.gain * np.linspace(0.8, 1.2, 15), rtol=rtol)
        np.testing.assert_allclose(d.encoders, built_e.encoders, rtol=rtol)
        # the neuron type turns max_rates/intercepts back into this gain and bias
        # (for neurons that still fire below the radius: LIF gives NaN max rates
        # for the others, and its inverse needs rates below 1 / tau_ref)
        fires = np.isfinite(d.max_rates)
        assert fires.sum() >= 10 and d.max_rates[fires].max() < 1 / ens.neuron_type.tau_ref
        gain, bias = ens.neuron_type.gain_bias(d.max_rates[fires], d.intercepts[fires])
        np.testing.assert_allclose(gain, d.gain[fires], rtol=1e-6)
        np.testing.assert_allclose(bias, d.bias[fires], rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(c.weights, new_w, rtol=rtol)
        assert c.transform is None and c.eval_points is built_c.eval_points
        sim.reset()
        assert sim.data[ens] is built_e and sim.data[conn] is built_c


def test_readonly_signals_are_read_only_as_in_nengo():
    network, ens, conn, _ = _param_net(learning=False)
    with nengo.Simulator(network, progress_bar=False) as ref, \
            nengo_cuda.Simulator(network, progress_bar=False) as sim:
        for obj, name in ((conn, "weights"), (ens, "encoders")):
            ours = sim.signals[sim.model.sig[obj][name]]
            assert not ref.signals[ref.model.sig[obj][name]].flags.writeable
            assert not ours.flags.writeable
            with pytest.raises(ValueError, match="read-only"):
                ours[...] = 0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_weights_written_between_runs_are_used(dtype):
    """Kernels keep packed copies of shared weights (csrc/cpu/instr_dot.cpp:
    here b's encoders, 200 x 1), renewed only when Python wrote the shared
    region: weights written between runs (as training and load_params write
    them), and a reset that keeps them, give Nengo's numbers with the same
    weights."""
    with nengo.Network(seed=4) as net:
        stim = nengo.Node(0.8)
        a = nengo.Ensemble(200, 1)
        b = nengo.Ensemble(200, 1)
        nengo.Connection(stim, a)
        nengo.Connection(a, b)
        p = nengo.Probe(b, synapse=0.01)

    def write_nengo(sim, w, factor):
        arr = sim.signals[w]
        arr.setflags(write=True)
        arr *= factor

    def write_ours(sim, w, factor):
        sim.layout.writable(w)[...] *= factor

    with nengo.Simulator(net, progress_bar=False, optimize=False) as ref:
        ref.run_steps(30)
        write_nengo(ref, ref.model.sig[b]["encoders"], -1.0)
        ref.run_steps(30)
        first = ref.data[p].copy()
    with nengo.Simulator(net, progress_bar=False, optimize=False) as ref:
        # (what our reset keeping trained weights gives: a start with them)
        write_nengo(ref, ref.model.sig[b]["encoders"], -1.0)
        ref.run_steps(20)
        expected = np.concatenate([first, ref.data[p]])
    with nengo_cuda.Simulator(net, progress_bar=False, dtype=dtype, optimize=False) as sim:
        sim.run_steps(30)
        write_ours(sim, sim.model.sig[b]["encoders"], -1.0)
        sim.run_steps(30)
        first = sim.data[p].copy()
        sim.reset(include_trainable=False)
        sim.run_steps(20)
        ours = np.concatenate([first, sim.data[p]])
    atol = 1e-4 if dtype == "float32" else 1e-12
    # the written weights show: b's value turns negative, also after the reset
    assert expected[25:30].mean() > 0.1 and expected[55:60].mean() < -0.1
    assert expected[75:80].mean() < -0.1
    np.testing.assert_allclose(ours, expected, atol=atol)


def test_run_steps_takes_nengo_dl_argument_order():
    """NengoDL's run_steps(n_steps, data, ...) and Nengo's (steps, progress_bar)."""
    network, inp, p = _probed_input(1)
    x = np.arange(3.0).reshape(1, 3, 1)
    with nengo_cuda.Simulator(network, minibatch_size=1, progress_bar=False) as sim:
        sim.run_steps(3, {inp: x})
        sim.run_steps(n_steps=3, data={inp: x + 10})
        sim.run_steps(2, False)
        sim.run(0.003, {inp: x + 20})
        np.testing.assert_array_equal(sim.data[p][0, :, 0],
                                      [0, 1, 2, 10, 11, 12, 0, 0, 20, 21, 22])
        with pytest.raises(ValidationError, match="not both"):
            sim.run_steps(3, n_steps=3)


def _sine(t):
    return np.sin(20 * t)


@pytest.mark.parametrize("sample_every", [None, 0.003])
def test_keep_history_false_keeps_each_runs_last_sample(monkeypatch, sample_every):
    """NengoDL's keep_history=False: sim.data holds one sample per run_steps
    call, that call's last one (also across native chunks, and with
    sample_every, where a run may end between samples); other probes keep
    every sample.  Checked against the same runs with full history."""
    def build(keep):
        with nengo.Network(seed=3) as net:
            if not keep:
                nengo_cuda.configure_settings(keep_history=False)
            stim = nengo.Node(_sine)
            ens = nengo.Ensemble(20, 1)
            nengo.Connection(stim, ens)
            p = nengo.Probe(ens, synapse=0.01, sample_every=sample_every)
            p_full = nengo.Probe(stim)
            if not keep:
                net.config[p_full].keep_history = True
        return net, p, p_full

    monkeypatch.setattr(nengo_cuda.simulator, "_CHUNK_STEPS", 4)  # runs of several chunks
    calls = [10, 1, 7, 2, 9]
    net_full, p, p_full = build(True)
    with nengo_cuda.Simulator(net_full, progress_bar=False) as sim:
        ends, samples = [], []
        for n in calls:
            sim.run_steps(n)
            ends.append(len(sim.data[p]) - 1)
            samples.append(len(sim.data[p]))
        full, stim_full = sim.data[p], sim.data[p_full]
    # a call that takes no new sample keeps none (here the 1- and 2-step calls)
    expected = full[[e for e, s, prev in zip(ends, samples, [0] + samples) if s > prev]]
    net_last, p, p_full = build(False)
    with nengo_cuda.Simulator(net_last, progress_bar=False) as sim:
        sizes = []
        for n in calls:
            sim.run_steps(n)
            sizes.append(len(sim.data[p]))
        assert sizes[-1] == len(expected) < len(full)
        np.testing.assert_array_equal(sim.data[p], expected)
        np.testing.assert_array_equal(sim.data[p_full], stim_full)
        with pickle.loads(pickle.dumps(sim)) as copy:  # one sample per run survives
            p_copy = copy.model.probes[sim.model.probes.index(p)]
            np.testing.assert_array_equal(copy.data[p_copy], expected)


@pytest.mark.parametrize("call", ["run_steps", "reset", "close"])
def test_a_node_function_cannot_run_reset_or_close_its_simulator(call):
    """From inside a run (a Node function's call): a SimulationError naming the
    cause (run_steps silently lost probe samples and miscounted n_steps; close
    freed the buffers under the run: an AttributeError). The simulator then
    goes on as after any Node function's error."""
    sims = []

    def f(t):
        if len(sims) == 1 and t > 0.0015:
            sim = sims.pop()
            getattr(sim, call)(*([2] if call == "run_steps" else []))
        return t

    with nengo.Network() as network:
        u = nengo.Node(f, size_out=1)
        p = nengo.Probe(u)
    with nengo_cuda.Simulator(network, progress_bar=False) as sim:
        sims.append(sim)
        what = "run" if call == "run_steps" else call
        with pytest.raises(SimulationError, match=f"Cannot {what} the simulator while it runs"):
            sim.run_steps(5)
        sim.run_steps(3)
        assert sim.n_steps == 5 and sim.data[p].shape == (4, 1)
        assert not sim.closed


def test_subclass_step_is_called_once_per_step(net):
    """As nengo.Simulator's run_steps: a subclass's own step() runs every step
    (nengo_extras' RealTimeSimulator paces steps so; run() skipped it), with
    the same results; data goes to it one step at a time."""

    class Counting(nengo_cuda.Simulator):
        def step(self, **kwargs):
            self.calls.append(self.n_steps)
            super().step(**kwargs)

    inp, p = net[0].inpt, net[1][1]
    data = np.linspace(0, 1, 2 * 7).reshape(2, 7, 1)
    with Counting(net[0], progress_bar=False, dtype="float64", minibatch_size=2) as sim, \
            make(net, dtype="float64", minibatch_size=2) as expected:
        sim.calls = []
        sim.run(0.005)
        sim.run_steps(7, data={inp: data})
        assert sim.calls == list(range(12))
        expected.run_steps(5)
        expected.run_steps(7, data={inp: data})
        np.testing.assert_array_equal(sim.data[p], expected.data[p])
        sim.run_steps(3, stateful=False)  # (as one run: each step would restore the state)
        assert len(sim.calls) == 12 and sim.n_steps == 12


def test_subclass_steps_are_one_run(net):
    """A subclass's steps make one run: unroll_simulation rounds the run (not
    each step), keep_history=False keeps the run's last sample."""

    class Counting(nengo_cuda.Simulator):
        def step(self, **kwargs):
            self.calls += 1
            super().step(**kwargs)

    p = net[1][1]
    with net[0]:
        nengo_cuda.configure_settings(keep_history=False)
    with Counting(net[0], progress_bar=False, dtype="float64", unroll_simulation=5) as sim, \
            make(net, dtype="float64", unroll_simulation=5) as expected:
        sim.calls = 0
        with pytest.warns(RuntimeWarning, match=r"Number of steps \(7\)"):
            sim.run_steps(7)
        sim.run_steps(5)
        assert sim.calls == 15 and sim.n_steps == 15
        with pytest.warns(RuntimeWarning):
            expected.run_steps(7)
        expected.run_steps(5)
        assert sim.data[p].shape == (2, 1)
        np.testing.assert_array_equal(sim.data[p], expected.data[p])


def test_recording_values_since_joins_only_what_it_returns():
    """``predict`` takes each minibatch's samples after the history: joining
    the whole history each time made it 400x slower after 20,000 samples."""
    from nengo_cuda.probes import ProbeRecording

    rng = np.random.RandomState(0)
    rec = ProbeRecording((2,), 3)
    chunks = [rng.rand(3, k, 2) for k in (4, 0, 1, 7, 3)]
    for chunk in chunks:
        rec.append(chunk)
    full = np.concatenate(chunks, axis=1)
    for n in range(16):
        np.testing.assert_array_equal(rec.values_since(n), full[:, n:])
    assert len(rec.chunks) == 5
