"""Native runs without the GIL: other Python threads go on during a run, Ctrl-C
(SIGINT) stops it between two steps, another thread's run or close of a
running simulator is refused, and Python's exit stops a daemon thread's run."""

import os
import signal
import subprocess
import sys
import threading
import time

import nengo
import numpy as np
import pytest
from nengo.exceptions import SimulationError

import nengo_cuda
from nengo_cuda.backends.select import cuda_status

DEVICES = [
    "cpu",
    "cuda-emulator",
    pytest.param("cuda", marks=pytest.mark.skipif(not cuda_status()[0],
                                                  reason=f"no CUDA: {cuda_status()[1]}")),
]
LONG = 60_000  # steps of a run that only a signal ends (one native run: < _CHUNK_STEPS)
JOIN_S = 30  # a helper thread's longest wait


def network(callback):
    """LIF neurons, filters and a dense product, fed by a Python function or a
    constant."""
    with nengo.Network(seed=3) as net:
        u = nengo.Node((lambda t: np.sin(8 * t)) if callback else [0.6])
        a = nengo.Ensemble(300, 1)
        b = nengo.Ensemble(200, 1)
        nengo.Connection(u, a, synapse=0.005)
        nengo.Connection(a, b, function=lambda x: x ** 2, synapse=0.01)
        # (a dense product: a step long enough for a run to outlast a thread's ticks)
        weights = np.random.RandomState(0).randn(200, 300) * 1e-3
        nengo.Connection(a.neurons, b.neurons, transform=weights, synapse=0.005)
        probes = [nengo.Probe(b, synapse=0.02), nengo.Probe(a.neurons[:20])]
    return net, probes


def simulator(net, device):
    return nengo_cuda.Simulator(net, progress_bar=False, device=device, dtype="float64")


class NativeRunWatch:
    """Whether the simulator's backend is inside its native run (its Python
    wrapper, backends/*.py, marks the call)."""

    def __init__(self, sim):
        self.inside = threading.Event()
        self.runs = 0
        backend_run = sim.backend.run

        def run(*args):
            self.runs += 1
            self.inside.set()
            try:
                return backend_run(*args)
            finally:
                self.inside.clear()

        sim.backend.run = run


@pytest.fixture
def sigint_raises():
    """SIGINT raises KeyboardInterrupt only while `armed` (a signal that comes
    late must not end the test session), whatever handler pytest set."""
    state = {"armed": False, "raised": 0}

    def handler(signum, frame):
        if state["armed"]:
            state["raised"] += 1
            raise KeyboardInterrupt
    old = signal.signal(signal.SIGINT, handler)
    try:
        yield state
    finally:
        signal.signal(signal.SIGINT, old)


def interrupt_when(condition, finished, main=threading.main_thread()):
    """A thread that sends SIGINT to the main thread once condition() holds
    (polled every millisecond until `finished` is set, JOIN_S seconds at most)."""
    def body():
        for _ in range(JOIN_S * 1000):
            if finished.is_set():
                return
            if condition():
                signal.pthread_kill(main.ident, signal.SIGINT)
                return
            threading.Event().wait(0.001)
    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread


def run_interrupted(sim, watch, sigint_raises, condition):
    """run_steps(LONG), interrupted by SIGINT once the native run has been in
    progress for a few milliseconds (past the Python code before it) and
    condition() holds; returns the steps it ran."""
    before = sim.n_steps
    finished = threading.Event()
    ticks = []

    def due():
        if watch.inside.is_set():
            ticks.append(1)
        return len(ticks) >= 5 and condition()

    thread = interrupt_when(due, finished)
    sigint_raises["armed"] = True
    try:
        with pytest.raises(KeyboardInterrupt):
            sim.run_steps(LONG)
    finally:
        sigint_raises["armed"] = False
        finished.set()
        thread.join(JOIN_S)
    assert not thread.is_alive()
    return sim.n_steps - before


@pytest.mark.parametrize("device", DEVICES)
def test_other_threads_run_during_a_native_run(device, sigint_raises):
    """A second thread makes progress while one native run is in progress
    (the GIL is released), then stops it."""
    net, _ = network(callback=False)
    with simulator(net, device) as sim:
        sim.run_steps(2)
        watch = NativeRunWatch(sim)
        ticks = []

        def ticking():  # counts 1 ms ticks seen inside the run
            if watch.inside.is_set():
                ticks.append(1)
            return len(ticks) >= 10

        done = run_interrupted(sim, watch, sigint_raises, ticking)
        assert watch.runs == 1  # one native run, the whole time
        assert len(ticks) >= 10
        assert 0 <= done < LONG  # (0: the signal came in a Python hook before step 1)


@pytest.mark.parametrize("device", DEVICES)
def test_sigint_stops_a_run_between_steps(device, sigint_raises):
    """Ctrl-C during a native run: KeyboardInterrupt from run_steps after a
    whole number of steps, the probes hold exactly those, and the run goes on
    from there as if it had been asked for them (as nengo.Simulator's whole
    run)."""
    net, probes = network(callback=False)
    with simulator(net, device) as sim:
        sim.run_steps(3)
        watch = NativeRunWatch(sim)
        done = 3 + run_interrupted(sim, watch, sigint_raises, lambda: True)
        assert sigint_raises["raised"] == 1
        assert 3 <= sim.n_steps == done < 3 + LONG
        assert sim.time == pytest.approx(done * sim.dt)
        for p in probes:
            assert len(sim.data[p]) == done
        total = done + 150
        sim.run_steps(total - done)
        ours = [sim.data[p] for p in probes]
    assert_same_as_one_run(net, probes, device, total, ours)


def assert_same_as_one_run(net, probes, device, total, ours):
    """`ours` (probe data) is what one run of `total` steps gives, here and in
    nengo.Simulator."""
    with simulator(net, device) as whole:
        whole.run_steps(total)
        for p, got in zip(probes, ours):
            np.testing.assert_array_equal(got, whole.data[p])
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(total)
    np.testing.assert_allclose(ours[0], ref.data[probes[0]], rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(ours[1], ref.data[probes[1]])


@pytest.mark.parametrize("device", DEVICES)
def test_sigint_with_a_python_node(device, sigint_raises):
    """With a Python Node function, whose Python code runs every step, Ctrl-C
    is mostly handled inside it: its KeyboardInterrupt takes the path of a
    Node function that raised (Nengo's step counter counts the failed step,
    the probes the completed ones); else it stops the run between two steps,
    as without one.  Either way the run stops at once and goes on after."""
    net, probes = network(callback=True)
    with simulator(net, device) as sim:
        sim.run_steps(3)
        watch = NativeRunWatch(sim)
        run_interrupted(sim, watch, sigint_raises, lambda: True)
        assert sigint_raises["raised"] == 1
        rows = len(sim.data[probes[0]])
        assert all(len(sim.data[p]) == rows for p in probes)
        between_steps = sim._step_counter() == rows  # (else: inside the Node function)
        assert sim.n_steps in ((rows,) if between_steps else (rows, rows + 1))
        assert 3 <= rows < 3 + LONG
        sim.run_steps(150)
        assert all(len(sim.data[p]) == rows + 150 for p in probes)
        ours = [sim.data[p] for p in probes]
    if between_steps:
        assert_same_as_one_run(net, probes, device, rows + 150, ours)


@pytest.mark.parametrize(
    "call", ["run_steps", "close", "reset", "pickle", "load_params", "freeze_params"])
@pytest.mark.parametrize("device", DEVICES)
def test_another_thread_cannot_disturb_a_run(device, call, sigint_raises, tmp_path):
    """While a native run goes on without the GIL, another thread's run,
    close, reset, pickling, load_params or freeze_params of the same
    simulator raises a SimulationError (close would free the buffers under
    the run, load_params tear its state); the run is unharmed."""
    import pickle

    net, probes = network(callback=False)
    saved = str(tmp_path / "params")
    actions = {
        "run_steps": lambda sim: sim.run_steps(5),
        "close": lambda sim: sim.close(),
        "reset": lambda sim: sim.reset(),
        "pickle": lambda sim: pickle.dumps(sim),
        "load_params": lambda sim: sim.load_params(saved, include_state=True),
        "freeze_params": lambda sim: sim.freeze_params(net),
    }
    with simulator(net, device) as sim:
        sim.save_params(saved, include_state=True)
        watch = NativeRunWatch(sim)
        errors = []

        def disturb():
            if not watch.inside.is_set():
                return False
            try:
                actions[call](sim)
            except SimulationError as e:
                errors.append(e)
            return True

        done = run_interrupted(sim, watch, sigint_raises, disturb)
        assert len(errors) == 1 and "while it runs" in str(errors[0])
        assert not sim.closed and sim.n_steps == done
        assert all(len(sim.data[p]) == done for p in probes)
        sim.run_steps(10)  # goes on
        assert sim.n_steps == done + 10


def test_the_native_program_refuses_changes_while_it_runs(sigint_raises):
    """Below the simulator: the native program itself refuses another run,
    a table or an instruction while a run is in progress (no use after free
    when a caller skips the simulator's lock)."""
    net, _ = network(callback=False)
    with simulator(net, "cpu") as sim:
        native = sim.backend.native
        watch = NativeRunWatch(sim)
        errors = []

        def disturb():
            if not watch.inside.is_set():
                return False
            for change in changes:
                try:
                    change()
                except RuntimeError as e:
                    errors.append(str(e))
            return True

        changes = (lambda: native.run(1, [], []),
                   lambda: native.add_callback(lambda: None),
                   lambda: native.set_enabled(0, True),
                   lambda: native.mark_shared_changed(),
                   lambda: native.set_trial_threads(1),
                   lambda: native.set_trial_chunk(1),
                   lambda: native.set_profiling(True))
        run_interrupted(sim, watch, sigint_raises, disturb)
        assert len(errors) == len(changes)
        assert all("while it runs" in e for e in errors)


@pytest.mark.parametrize("device", DEVICES)
def test_two_simulators_in_two_threads(device):
    """Two simulators run at once in two threads, each as it runs alone."""
    net, probes = network(callback=True)
    results = {}

    def run(name):
        with simulator(net, device) as sim:
            sim.run_steps(400)
            results[name] = [sim.data[p].copy() for p in probes]

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    run("main")
    for t in threads:
        t.join(JOIN_S)
        assert not t.is_alive()
    for k in range(2):
        for got, want in zip(results[k], results["main"]):
            np.testing.assert_array_equal(got, want)


@pytest.mark.skipif(not cuda_status()[0], reason=f"no CUDA: {cuda_status()[1]}")
def test_device_syncs_in_another_thread_during_graph_captures():
    """A TensorNode's step syncs the whole device (`CudaBackend.device_sync`)
    while another thread's run, without the GIL, may be capturing its step
    graphs (each new simulator's first run captures them): the runs still
    give the CPU backend's results."""
    import cupy  # noqa: PLC0415

    net, probes = network(callback=False)
    with simulator(net, "cpu") as ref:
        ref.run_steps(210)
    stop = threading.Event()

    def sync_device():
        while not stop.is_set():
            cupy.cuda.runtime.deviceSynchronize()

    thread = threading.Thread(target=sync_device, daemon=True)
    thread.start()
    try:
        for _ in range(5):
            with simulator(net, "cuda") as sim:
                for n in (1, 2, 7, 200):
                    sim.run_steps(n)
                for p in probes:
                    np.testing.assert_allclose(sim.data[p], ref.data[p], rtol=1e-9, atol=1e-9)
    finally:
        stop.set()
        thread.join(JOIN_S)


WAIT_SCRIPT = """
import time, cupy, nengo, numpy as np, nengo_cuda
with nengo.Network(seed=3) as net:
    u = nengo.Node(nengo.processes.WhiteNoise(), size_out=2)
    a = nengo.Ensemble(50, 2)
    nengo.Connection(u, a)
sim = nengo_cuda.Simulator(net, progress_bar=False, device="cuda")
sim.run_steps(3)
assert sim._tables.items, "no table instruction"
ran = []
def host(_):  # Python, so it takes the GIL
    time.sleep(0.2)
    ran.append(1)
stream = cupy.cuda.get_current_stream()
stream.launch_host_func(host, None)
sim._tables.reset(sim.process_seeds, sim.n_trials)  # the native set_table waits for it
stream.launch_host_func(host, None)
sim.close()
stream.synchronize()
assert ran == [1, 1], ran
"""


@pytest.mark.skipif(not cuda_status()[0], reason=f"no CUDA: {cuda_status()[1]}")
def test_waits_for_the_users_stream_without_the_gil():
    """Replacing a table and closing wait for the program's stream, which
    follows the user's stream: without the GIL, as a host function on the
    user's stream may need it (with the GIL held, the process hung)."""
    try:
        result = run_python(WAIT_SCRIPT)
    except subprocess.TimeoutExpired:
        pytest.fail("hung: a wait for the stream held the GIL")
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize("device", DEVICES)
def test_a_stop_request_ends_a_run_between_steps(device):
    """Another thread's stop request (`nengo_cuda.native_runs` makes it when
    Python exits) ends a run between two steps with a RuntimeError; the
    probes hold exactly the steps run, and the next run goes on (the request
    is cleared)."""
    net, probes = network(callback=True)
    with simulator(net, device) as sim:
        watch = NativeRunWatch(sim)

        def stop():
            watch.inside.wait(JOIN_S)
            threading.Event().wait(0.02)  # (past the first slices)
            sim.backend.request_stop()

        thread = threading.Thread(target=stop)
        thread.start()
        with pytest.raises(RuntimeError, match="Python is exiting"):
            sim.run_steps(LONG)
        thread.join(JOIN_S)
        done = sim.n_steps
        assert 0 < done < LONG
        assert all(len(sim.data[p]) == done for p in probes)
        sim.run_steps(10)
        assert sim.n_steps == done + 10


EXIT_SCRIPT = """
import threading
import nengo, numpy as np, nengo_cuda
with nengo.Network(seed=3) as net:
    u = nengo.Node((lambda t: np.sin(8 * t)) if {callback} else [0.6])
    a = nengo.Ensemble(300, 1)
    nengo.Connection(u, a)
    nengo.Probe(a, synapse=0.01)
sim = nengo_cuda.Simulator(net, progress_bar=False, device={device!r}, minibatch_size={mb})
if {mb} > 1 and {device!r} == "cpu":
    sim.backend.native.set_trial_threads(2)  # (the trial-parallel or segmented loop)
inside = threading.Event()
backend_run = sim.backend.run
def run(*args):
    inside.set()
    return backend_run(*args)
sim.backend.run = run
threading.Thread(target=sim.run_steps, args=(10 ** 8,), daemon=True).start()
inside.wait()
threading.Event().wait(0.1)  # (well inside the native run)
"""


@pytest.mark.parametrize("callback", [False, True])
@pytest.mark.parametrize("mb", [1, 4])
@pytest.mark.parametrize("device", DEVICES)
def test_python_exits_during_a_daemon_threads_run(device, mb, callback):
    """The main thread exits while a daemon thread is inside a native run:
    the process exits cleanly (Python 3.11's finalization would end the
    thread with a forced unwind through the run, an abort, had nengo_cuda's
    atexit hook not stopped the run first)."""
    script = EXIT_SCRIPT.format(device=device, mb=mb, callback=callback)
    result = run_python(script)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "terminate" not in result.stderr


def run_python(script, timeout=120):
    """``script`` in a new Python process that imports this nengo_cuda."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(nengo_cuda.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=timeout)


def busy_node(seconds):
    """A Node function that holds the GIL ``seconds`` a step (pure Python)."""
    def f(t):
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            pass
        return np.sin(t)
    return f


@pytest.mark.parametrize("device", DEVICES)
def test_other_threads_run_between_a_runs_callbacks(device):
    """A run whose Python callbacks come microseconds apart lets another
    Python thread have the GIL now and then (python_run.h): each release woke
    the waiting thread too late to take it, which starved it for seconds."""
    with nengo.Network(seed=0) as net:
        u = nengo.Node(busy_node(1e-4))
        a = nengo.Ensemble(50, 1)
        nengo.Connection(u, a)
    with simulator(net, device) as sim:
        sim.run_steps(2)
        ticks, stop = [], threading.Event()

        def ticking():
            while not stop.is_set():
                ticks.append(time.perf_counter())
                time.sleep(0.002)
        thread = threading.Thread(target=ticking, daemon=True)
        thread.start()
        time.sleep(0.01)
        start = time.perf_counter()
        sim.run_steps(8000)
        end = time.perf_counter()
        stop.set()
        thread.join(JOIN_S)
    during = np.array([start] + [t for t in ticks if start < t < end] + [end])
    # (a tick every 2-5 ms when it gets the GIL soon after asking; starved,
    # 40-170 ms apart and more; measured: 15 ms at most)
    assert np.diff(during).max() < 0.035, np.diff(during).max()
