"""Bad input, as a table: each case gets a clear Nengo exception, none ends the process.

Each row is ``(id, action, exception type, message pattern)``; ``action``
receives a `Ctx` holding a tiny network and makes simulators through it (closed
after the case).  After every case the process can still build and run.
"""

import nengo
import numpy as np
import pytest
from nengo.exceptions import BuildError, SimulationError, SimulatorClosed, ValidationError

import nengo_cuda


class Ctx:
    """A tiny network: constant, function and passthrough Nodes, an Ensemble, probes."""

    def __init__(self):
        with nengo.Network(seed=0) as self.net:
            self.const = nengo.Node([0.5])
            self.func = nengo.Node(lambda t: np.sin(t))
            self.passthrough = nengo.Node(size_in=1)
            self.ens = nengo.Ensemble(10, 1)
            nengo.Connection(self.const, self.passthrough)
            nengo.Connection(self.func, self.ens)
            self.probe = nengo.Probe(self.ens, synapse=0.01)
        with nengo.Network() as self.other_net:
            self.other_node = nengo.Node([1.0])
        self.sims = []

    def sim(self, net=None, **kwargs):
        kwargs.setdefault("progress_bar", False)
        sim = nengo_cuda.Simulator(self.net if net is None else net, **kwargs)
        self.sims.append(sim)
        return sim

    def closed_sim(self):
        sim = self.sim()
        sim.run_steps(3)
        sim.close()
        return sim

    def close(self):
        for sim in self.sims:
            sim.close()


def _bad_function_output(ctx):
    with nengo.Network() as net:
        nengo.Node(lambda t: [0.0] if t < 0.0025 else [0.0, 1.0])
    sim = ctx.sim(net)
    sim.run_steps(5)


def _noise_of_wrong_size(process):
    def action(ctx):
        with nengo.Network() as net:
            nengo.Ensemble(13, 1, noise=process)
        ctx.sim(net)

    return action


def _data(**kwargs):
    """Runs 10 steps of a 2-trial simulator with ``data={ctx.<name>: array}``."""

    def action(ctx):
        ((name, values),) = kwargs.items()
        ctx.sim(minibatch_size=2).run_steps(10, data={getattr(ctx, name): values})

    return action


GOOD = np.zeros((2, 10, 1))

CASES = [
    # -- Simulator arguments
    ("minibatch_size=0", lambda c: c.sim(minibatch_size=0), ValidationError, "minibatch_size"),
    ("minibatch_size=-1", lambda c: c.sim(minibatch_size=-1), ValidationError, "minibatch_size"),
    ("minibatch_size=2.5", lambda c: c.sim(minibatch_size=2.5), ValidationError, "minibatch_size"),
    ("minibatch_size='2'", lambda c: c.sim(minibatch_size="2"), ValidationError, "minibatch_size"),
    ("minibatch_size=True", lambda c: c.sim(minibatch_size=True), ValidationError, "minibatch_size"),
    ("dtype=float16", lambda c: c.sim(dtype="float16"), ValidationError, "dtype"),
    ("dtype=int32", lambda c: c.sim(dtype="int32"), ValidationError, "dtype"),
    ("dtype=complex64", lambda c: c.sim(dtype=np.complex64), ValidationError, "dtype"),
    ("dtype=object()", lambda c: c.sim(dtype=object()), ValidationError, "dtype"),
    ("dtype='float'", lambda c: c.sim(dtype="float"), ValidationError, "dtype"),
    ("unroll_simulation=0", lambda c: c.sim(unroll_simulation=0), ValidationError,
     "unroll_simulation"),
    ("unroll_simulation=None", lambda c: c.sim(unroll_simulation=None), ValidationError,
     "unroll_simulation"),
    ("device=tpu", lambda c: c.sim(device="tpu"), ValidationError, "device"),
    ("device=3", lambda c: c.sim(device=3), ValidationError, "device"),
    ("dt<0", lambda c: c.sim(dt=-0.001), ValidationError, "dt"),
    ("dt=0", lambda c: c.sim(dt=0), ValidationError, "dt"),
    ("dt=nan", lambda c: c.sim(dt=float("nan")), ValidationError, "dt"),
    ("dt=inf", lambda c: c.sim(dt=float("inf")), ValidationError, "dt"),
    ("dt=str", lambda c: c.sim(dt="0.001"), ValidationError, "dt"),
    ("seed<0", lambda c: c.sim(seed=-1), ValidationError, "seed"),
    ("seed>=2**32", lambda c: c.sim(seed=2**32), ValidationError, "seed"),
    ("seed=str", lambda c: c.sim(seed="1"), ValidationError, "seed"),
    ("reset(seed=1.5)", lambda c: c.sim().reset(seed=1.5), ValidationError, "seed"),
    # -- what nengo_cuda cannot build
    ("network=str", lambda c: c.sim("not a network"), BuildError, "Cannot build object"),
    ("PresentInput noise of 3 for 13 neurons",
     _noise_of_wrong_size(nengo.processes.PresentInput(np.ones((5, 3)), 0.01)), BuildError,
     r"PresentInput gives 3 values per step, but its output .*neuron_in.* has 13"),
    ("Piecewise noise of 2 for 13 neurons",
     _noise_of_wrong_size(nengo.processes.Piecewise({0: [1.0, 2.0]})), BuildError,
     r"Piecewise gives 2 values per step, but its output .* has 13"),
    (
        "too large for memory",  # checked before allocating the buffers
        lambda c: c.sim(minibatch_size=10**12),
        BuildError,
        r"needs .* for the signal buffers.*only .* of memory is available",
    ),
    # -- run time and steps
    ("run(-1)", lambda c: c.sim().run(-1), ValidationError, "Must be positive"),
    ("run(nan)", lambda c: c.sim().run(float("nan")), ValidationError, "finite"),
    ("run(inf)", lambda c: c.sim().run(float("inf")), ValidationError, "finite"),
    ("run(str)", lambda c: c.sim().run("1"), ValidationError, "number of seconds"),
    ("run_steps(-1)", lambda c: c.sim().run_steps(-1), ValidationError, "non-negative"),
    ("run_steps(2.5)", lambda c: c.sim().run_steps(2.5), ValidationError, "integer"),
    # (nengo.Simulator's error: the same one is both)
    ("run_steps(2.5) as Nengo's", lambda c: c.sim().run_steps(2.5), TypeError, "integer"),
    # -- data=
    ("data=int", lambda c: c.sim().run_steps(10, data=3), ValidationError, "dict"),
    ("data shape", _data(const=np.zeros((2, 9, 1))), ValidationError, r"expected \(2, 10, 1\)"),
    ("data trials", _data(const=np.zeros((1, 10, 1))), ValidationError, r"expected \(2, 10, 1\)"),
    ("data 2-D", _data(const=np.zeros((10, 1))), ValidationError, r"expected \(2, 10, 1\)"),
    ("data str", _data(const=np.full((2, 10, 1), "a")), ValidationError, "real numbers"),
    ("data complex", _data(const=GOOD + 1j), ValidationError, "real numbers"),
    ("data object", _data(const=np.full((2, 10, 1), None)), ValidationError, "real numbers"),
    ("data NaN", _data(func=np.where(np.arange(20).reshape(2, 10, 1) == 13, np.nan, 0)),
     ValidationError, r"data for <Node .*non-finite.*\[1, 3, 0\]"),
    ("data inf", _data(const=np.full((2, 10, 1), -np.inf)), ValidationError, "non-finite"),
    ("data > float32 max", _data(const=np.full((2, 10, 1), 1e39)), ValidationError, "float32"),
    ("data passthrough", _data(passthrough=GOOD), ValidationError, "not an input Node"),
    ("data ensemble", _data(ens=GOOD), ValidationError, "not a Node of this network"),
    ("data other network", _data(other_node=GOOD), ValidationError, "not a Node of this network"),
    # -- Nengo's run-time errors pass through
    ("function output", _bad_function_output, SimulationError, "returned a value"),
    # -- use after close()
    ("closed run", lambda c: c.closed_sim().run(0.01), SimulatorClosed, "closed"),
    ("closed run_steps", lambda c: c.closed_sim().run_steps(2), SimulatorClosed, "closed"),
    ("closed step", lambda c: c.closed_sim().step(), SimulatorClosed, "closed"),
    ("closed reset", lambda c: c.closed_sim().reset(), SimulatorClosed, "closed"),
    ("closed with", lambda c: c.closed_sim().__enter__(), SimulatorClosed, "closed"),
]


@pytest.mark.parametrize("action, exc, match", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(action, exc, match):
    ctx = Ctx()
    try:
        with pytest.raises(exc, match=match):
            action(ctx)
        # nothing ran, or what ran is kept, and a fresh simulator still works
        with ctx.sim() as sim:
            sim.run_steps(5)
            assert sim.data[ctx.probe].shape == (5, 1)
    finally:
        ctx.close()


@pytest.mark.parametrize("name, want", [("f8", "float64"), ("double", "float64"),
                                        ("<f4", "float32"), ("single", "float32"),
                                        (np.dtype("float64"), "float64"), (float, "float64")])
def test_dtype_by_another_of_its_names(name, want):
    """NumPy's other names of float32 and float64 (they were refused)."""
    ctx = Ctx()
    try:
        with ctx.sim(dtype=name) as sim:
            assert sim.dtype == np.dtype(want)
    finally:
        ctx.close()


def test_a_run_whose_probe_data_cannot_fit_is_refused(monkeypatch):
    """Before it runs (nengo.Simulator's data grows until the system runs
    out; NengoDL's predict fails at once)."""
    from nengo_cuda import simulator

    ctx = Ctx()
    try:
        with ctx.sim(minibatch_size=2, dtype="float64") as sim:
            monkeypatch.setattr(simulator, "available_memory", lambda: 10_000)
            monkeypatch.setattr(simulator, "_CHECKED_PROBE_BYTES", 0)
            with pytest.raises(MemoryError, match=r"a run of 1000 steps would record 15\.62 "
                                                  r"KiB of probe data; only 9\.766 KiB"):
                sim.run_steps(1000)  # 2 trials x 1000 x 1 float64s: 16,000 bytes
            assert sim.n_steps == 0
            sim.run_steps(600)  # (9,600 bytes: what earlier runs recorded does not count)
            sim.run_steps(600)
            assert sim.data[ctx.probe].shape == (2, 1200, 1)
    finally:
        ctx.close()


def test_failed_run_keeps_the_simulator_usable():
    """A rejected `data` runs nothing; the simulator then runs as usual."""
    ctx = Ctx()
    with ctx.sim(minibatch_size=2) as sim:
        sim.run_steps(4)
        with pytest.raises(ValidationError):
            sim.run_steps(10, data={ctx.const: np.full((2, 10, 1), np.nan)})
        assert sim.n_steps == 4 and sim.data[ctx.probe].shape == (2, 4, 1)
        sim.run_steps(6, data={ctx.const: np.ones((2, 6, 1))})
        assert sim.n_steps == 10 and sim.data[ctx.probe].shape == (2, 10, 1)


def test_closed_simulator_keeps_data():
    ctx = Ctx()
    sim = ctx.closed_sim()
    assert sim.data[ctx.probe].shape == (3, 1)
    np.testing.assert_allclose(sim.trange(), [0.001, 0.002, 0.003])
    assert sim.signals is None


@pytest.mark.parametrize("closed", [False, True])
def test_data_of_an_object_from_another_network(closed):
    """NengoDL raises a ValidationError, nengo.Simulator's mapping a KeyError:
    the error is both, and names the object."""
    ctx = Ctx()
    sim = ctx.closed_sim() if closed else ctx.sim()
    stranger = nengo.Ensemble(3, 1, label="stranger", add_to_container=False)
    try:
        for exc in (ValidationError, KeyError):
            with pytest.raises(exc, match="stranger.*not an object of the network"):
                sim.data[stranger]
        assert stranger not in sim.data
    finally:
        sim.close()
        ctx.close()


# -- the native module's boundary: malformed calls raise, never crash --------------

F64 = np.float64


def _program(n=8, trials=1):
    from nengo_cuda import _native

    fbuf = np.zeros(n * trials, dtype=F64)
    ibuf = np.zeros(trials, dtype=np.int64)
    program = _native.ProgramFloat64(fbuf, 0, n, ibuf, 0, 1, trials, 0.001)
    program.add("copy", {"src": [0], "dst": [1]}, {}, {"inc": 0})
    return program, (fbuf, ibuf)


def _new_program(fbuf, ibuf=None, f_state=8, trials=1):
    from nengo_cuda import _native

    ibuf = np.zeros(1, dtype=np.int64) if ibuf is None else ibuf
    return _native.ProgramFloat64(fbuf, 0, f_state, ibuf, 0, 1, trials, 0.001)


def _readonly(a):
    a.setflags(write=False)
    return a


def _run(feeds=(), probes=(), n_steps=4):
    program, keep = _program()
    program.run(n_steps, list(feeds), list(probes))


MASK = np.ones(4, dtype=np.uint8)
OUT = np.zeros((1, 4, 1))
ADDR = np.array([0])

NATIVE_CASES = [
    ("fbuf dtype", lambda: _new_program(np.zeros(8, np.float32)), TypeError, "dtype"),
    ("fbuf small", lambda: _new_program(np.zeros(4)), ValueError, "needs 8"),
    ("fbuf strided", lambda: _new_program(np.zeros(16)[::2]), ValueError, "contiguous"),
    ("fbuf readonly", lambda: _new_program(_readonly(np.zeros(8))), ValueError, "writeable"),
    ("n_trials 0", lambda: _new_program(np.zeros(8), trials=0), ValueError, "n_trials"),
    ("sizes < 0", lambda: _new_program(np.zeros(8), f_state=-1), ValueError, "non-negative"),
    ("unknown kind", lambda: _program()[0].add("nope", {}, {}, {}), ValueError, "unknown"),
    ("address", lambda: _program()[0].add("copy", {"src": [9], "dst": [0]}, {}, {"inc": 0}),
     IndexError, "outside buffer"),
    ("n_steps < 0", lambda: _run(n_steps=-1), ValueError, "non-negative"),
    ("feed position", lambda: _run(feeds=[(5, ADDR, np.zeros((1, 4, 1)))]), IndexError,
     "instruction index"),
    ("feed address", lambda: _run(feeds=[(-1, np.array([8]), np.zeros((1, 4, 1)))]),
     IndexError, "outside buffer"),
    ("feed shape", lambda: _run(feeds=[(-1, ADDR, np.zeros((1, 3, 1)))]), ValueError, "shape"),
    ("feed dtype", lambda: _run(feeds=[(-1, ADDR, np.zeros((1, 4, 1), np.float32))]),
     ValueError, "dtype"),
    ("probe address", lambda: _run(probes=[(np.array([-1]), MASK, OUT)]), IndexError,
     "outside buffer"),
    ("probe address floats", lambda: _run(probes=[(np.array([0.5]), MASK, OUT)]), TypeError,
     "probe addresses must hold integers"),
    ("probe addresses 2-D", lambda: _run(probes=[(np.zeros((1, 1), int), MASK, OUT)]),
     TypeError, "probe addresses must be a 1-D array"),
    ("feed address strings", lambda: _run(feeds=[(-1, ["a"], np.zeros((1, 4, 1)))]),
     TypeError, "feed addresses must hold integers"),
    ("probe mask", lambda: _run(probes=[(ADDR, MASK[:3], OUT)]), ValueError, "mask"),
    ("probe out small", lambda: _run(probes=[(ADDR, MASK, OUT[:, :3])]), ValueError,
     "mask selects 4"),
    ("probe out dtype", lambda: _run(probes=[(ADDR, MASK, OUT.astype(np.float32))]),
     TypeError, "dtype"),
    ("set_enabled", lambda: _program()[0].set_enabled(3, False), IndexError, "instruction"),
    ("set_table index", lambda: _program()[0].set_table(3, "t", np.zeros(2)), IndexError,
     "instruction"),
    ("set_table name", lambda: _program()[0].set_table(0, "t", np.zeros(2)), ValueError,
     "no table"),
]


@pytest.mark.parametrize(
    "action, exc, match", [c[1:] for c in NATIVE_CASES], ids=[c[0] for c in NATIVE_CASES]
)
def test_native_boundary(action, exc, match):
    with pytest.raises(exc, match=match):
        action()


def test_probe_memory_of_probes_sampling_faster_than_dt(monkeypatch):
    """A probe with sample_every < dt records one sample a step (as Nengo's):
    the check counts so (it counted 1 / sample_every samples a second)."""
    from nengo_cuda import simulator

    ctx = Ctx()
    with ctx.net:
        fast = nengo.Probe(ctx.ens, sample_every=0.0001)
    try:
        with ctx.sim(dtype="float64") as sim:
            monkeypatch.setattr(simulator, "_CHECKED_PROBE_BYTES", 0)
            # (two probes of one value: 16 bytes a step; 1000 steps fit in 20,000 bytes)
            monkeypatch.setattr(simulator, "available_memory", lambda: 20_000)
            sim.run_steps(1000)
            assert sim.data[fast].shape == (1000, 1)
    finally:
        ctx.close()
