"""The CUDA backend through `nengo_cuda.Simulator`, against the CPU backend.

``device`` is the host emulator of the CUDA backend (always) and the GPU
(skipped without one, with the reason).
"""

import nengo
import numpy as np
import pytest
from nengo.exceptions import ValidationError

import nengo_cuda
import nengo_cuda.simulator
from nengo_cuda.backends import select
from nengo_cuda.backends.cpu import CpuBackend
from nengo_cuda.backends.cuda import CudaBackend, EmulatedCudaBackend, callback_ranges
from networks import NETWORKS

DEVICES = [
    "cuda-emulator",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(
            not select.cuda_status()[0], reason=f"no CUDA: {select.cuda_status()[1]}"
        ),
    ),
]


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param


def _sim(net, device, **kwargs):
    kwargs.setdefault("progress_bar", False)
    return nengo_cuda.Simulator(net, device=device, **kwargs)


def _data(net, probes, device, run=lambda sim: sim.run(0.3), **kwargs):
    with _sim(net, device, **kwargs) as sim:
        run(sim)
        return [np.array(sim.data[p]) for p in probes], sim.n_steps


@pytest.mark.parametrize("name", sorted(NETWORKS))
@pytest.mark.parametrize("dtype, minibatch", [("float64", None), ("float32", 3)])
def test_networks_match_cpu(device, name, dtype, minibatch):
    net, probes = NETWORKS[name]()
    ref, _ = _data(net, probes, "cpu", dtype=dtype, minibatch_size=minibatch)
    out, _ = _data(net, probes, device, dtype=dtype, minibatch_size=minibatch)
    tol = 1e-9 if dtype == "float64" else 1e-5
    for r, o in zip(ref, out):
        assert r.shape == o.shape
        np.testing.assert_allclose(o, r, rtol=tol, atol=tol)


@pytest.mark.parametrize("knobs", [
    {"NC_PDL": "1"},
    {"NC_PDL": "0"},
    {"NC_DOT_DENSE": "1"},
    {"NC_DOT_DENSE": "2", "NC_FUSE_NEURONS": "1", "NC_FUSE_FILTERS": "1", "NC_PHASE_MAX": "0"},
    {"NC_FUSE_NEURONS": "1"},
    {"NC_FUSE_FILTERS": "1", "NC_PHASE_MAX": "0"},
    {"NC_PDL": "1", "NC_FUSE_NEURONS": "1", "NC_FUSE_FILTERS": "1", "NC_DOT_COLS_PER_LANE": "4",
     "NC_DOT_TRIALS": "2"},
    {"NC_PHASE_MAX": "0"},
    {"NC_PHASE_MAX": "1000000", "NC_PDL": "1"},
    {"NC_NEURON_TRIALS": "4", "NC_DOT_DENSE": "1", "NC_PHASE_MAX": "0"},
    {"NC_NEURON_TRIALS": "4", "NC_NEURON_DEFER": "1", "NC_PHASE_MAX": "0"},
    {"NC_DOT_DENSE": "2", "NC_FUSE_NEURONS": "1", "NC_NEURON_DEFER": "1", "NC_PHASE_MAX": "0"},
    {"NC_PHASE_BLOCKS": "0", "NC_PHASE_MAX": "65536"},
    {"NC_CONV_DENSE": "2", "NC_DOT_DENSE": "2"},
], ids=lambda k: "+".join(sorted(k)))
def test_tuning_knobs_keep_results(device, monkeypatch, knobs):
    """The tuning knobs (docs/cuda.md) change launches and tile shapes, not
    results: every reference network equals the CPU backend with them set, and
    programmatic launches are on (the default, NC_PDL=1) exactly on a GPU of
    compute capability >= 9.0."""
    pdl_expected = 0
    if device == "cuda" and knobs.get("NC_PDL", "1") == "1":
        import cupy  # noqa: PLC0415

        pdl_expected = int(int(cupy.cuda.Device().compute_capability) >= 90)
    for name in sorted(NETWORKS):
        net, probes = NETWORKS[name]()
        ref, _ = _data(net, probes, "cpu", dtype="float32", minibatch_size=3)
        with monkeypatch.context() as m:
            for k, v in knobs.items():
                m.setenv(k, v)
            with _sim(net, device, dtype="float32", minibatch_size=3) as sim:
                sim.run(0.3)
                out = [np.array(sim.data[p]) for p in probes]
                assert sim.backend.stats()["programmatic_launch"] == pdl_expected
        for r, o in zip(ref, out):
            np.testing.assert_allclose(o, r, rtol=1e-5, atol=1e-5, err_msg=name)


LEVERS = {
    "each launch alone, no fusion": {"NC_PHASE_MAX": "0", "NC_FUSE_NEURONS": "0",
                                     "NC_FUSE_FILTERS": "0"},
    # (3 trials: a group of 2 and a partial one)
    "each launch alone, 2 trials a neuron thread": {"NC_PHASE_MAX": "0",
                                                     "NC_NEURON_TRIALS": "2"},
    # (a group of 4 trials, one past the last; LIF's rare branches after the rest)
    "4 trials a neuron thread, rare branches deferred": {
        "NC_PHASE_MAX": "0", "NC_NEURON_TRIALS": "4", "NC_NEURON_DEFER": "1"},
    "all phases, fusions, pdl": {"NC_PHASE_MAX": "1000000", "NC_FUSE_NEURONS": "1",
                                 "NC_FUSE_FILTERS": "1", "NC_PDL": "1"},
    # (on a GPU: cooperative launches, grid-wide barriers between phases)
    "all phases on the grid": {"NC_PHASE_MAX": "1000000", "NC_PHASE_BLOCKS": "0"},
    # (the same sums as the register tiles, in shared memory)
    "dense convolution tiles": {"NC_CONV_DENSE": "2"},
}


@pytest.mark.parametrize("levers", sorted(LEVERS))
def test_launch_levers_are_bit_identical(device, monkeypatch, levers):
    """Phases, fusions, neuron trial groups, dense convolution tiles and
    programmatic launches change how work is launched, never an element's
    arithmetic or order: float64 results equal the defaults' bit for bit.  On
    a GPU a difference means a race (a missing barrier between phases, an
    epilogue reading what another block writes)."""
    for name in sorted(NETWORKS):
        net, probes = NETWORKS[name]()
        ref, _ = _data(net, probes, device, run=lambda sim: sim.run(0.1),
                       dtype="float64", minibatch_size=3)
        with monkeypatch.context() as m:
            for k, v in LEVERS[levers].items():
                m.setenv(k, v)
            out, _ = _data(net, probes, device, run=lambda sim: sim.run(0.1),
                           dtype="float64", minibatch_size=3)
        for r, o in zip(ref, out):
            np.testing.assert_array_equal(o, r, err_msg=name)


@pytest.mark.parametrize("knob", ["1", "0", "3"])
def test_phase_blocks(device, monkeypatch, knob):
    """NC_PHASE_BLOCKS: the blocks of a phases launch, as stats() reports
    them: 1 by default and on the emulator; on a GPU with cooperative
    launches 0 takes every block that fits at once (at least one per SM),
    n at most n."""
    monkeypatch.setenv("NC_PHASE_BLOCKS", knob)
    net, _ = NETWORKS["tutorial"]()
    with _sim(net, device, dtype="float32") as sim:
        sim.run_steps(3)
        blocks = sim.backend.stats()["phase_blocks"]
    if device != "cuda" or knob == "1":
        assert blocks == 1
        return
    import cupy  # noqa: PLC0415

    dev = cupy.cuda.Device()
    if not dev.attributes.get("CooperativeLaunch", 1):  # (every GPU since Pascal has it)
        assert blocks == 1
    elif knob == "0":
        assert blocks >= dev.attributes["MultiProcessorCount"]
    else:
        assert 1 < blocks <= int(knob)


def test_data_feeds(device):
    net, probes = NETWORKS["tutorial"]()
    feed = np.linspace(-1, 1, 2 * 200).reshape(2, 200, 1)

    def run(sim):
        sim.run_steps(200, data={net.inpt: feed})
        sim.run_steps(50)  # back to the node's own output

    ref, _ = _data(net, probes, "cpu", run=run, minibatch_size=2, dtype="float64")
    out, _ = _data(net, probes, device, run=run, minibatch_size=2, dtype="float64")
    for r, o in zip(ref, out):
        np.testing.assert_allclose(o, r, rtol=1e-9, atol=1e-9)


def test_chunks_steps_and_reset(device, monkeypatch):
    """Runs split into chunks, single steps, and reset give what one run gives."""
    net, probes = NETWORKS["slices"]()
    ref, _ = _data(net, probes, "cpu", run=lambda sim: sim.run_steps(120), dtype="float64")
    monkeypatch.setattr(nengo_cuda.simulator, "_CHUNK_ELEMENTS", 500)

    def run(sim):
        sim.run_steps(37)
        sim.reset()
        sim.run_steps(100)
        for _ in range(20):
            sim.step()

    out, n = _data(net, probes, device, run=run, dtype="float64")
    assert n == 120
    for r, o in zip(ref, out):
        np.testing.assert_allclose(o, r, rtol=1e-9, atol=1e-9)


def test_callback_error_keeps_completed_steps(device):
    """A Node raising mid-run: the steps before it and their probe data are kept."""

    def build():
        with nengo.Network(seed=4) as net:
            def f(t):
                if t > 0.0205:
                    raise RuntimeError("node failed")
                return [np.sin(50 * t)]

            u = nengo.Node(f)
            e = nengo.Ensemble(30, 1)
            nengo.Connection(u, e)
            p = nengo.Probe(e, synapse=0.01)
        return net, p

    results = []
    for dev in ("cpu", device):
        net, p = build()
        with _sim(net, dev, dtype="float64") as sim:
            with pytest.raises(RuntimeError, match="node failed"):
                sim.run(0.1)
            results.append((sim.n_steps, np.array(sim.data[p])))
    (n_ref, d_ref), (n_dev, d_dev) = results
    assert n_dev == n_ref == 20
    np.testing.assert_allclose(d_dev, d_ref, rtol=1e-9, atol=1e-9)


def test_emulator_stats_and_close():
    net, probes = NETWORKS["tutorial"]()
    sim = _sim(net, "cuda-emulator")
    assert isinstance(sim.backend, EmulatedCudaBackend)
    sim.run_steps(130)
    stats = sim.backend.stats()
    assert stats["segments"] == 1  # no callbacks: one graph per steps_per_graph steps
    assert stats["steps_per_graph"] > 1
    simple = {"time_update", "reset", "copy", "copy_runs", "elementwise_inc"}
    n_simple = sum(instr.kind in simple for instr in sim.program)
    assert 0 < stats["batches"] < n_simple  # independent element-wise work merged
    sim.close()
    assert not sim.backend._buffers


class _DeviceCheckingBackend(EmulatedCudaBackend):
    """Fails if memory or CuPy's stream is asked for off the program's device."""

    def _init_device(self, device_index):
        super()._init_device(device_index)
        self.depth = 0
        self.entered = 0

    def _on_device(self):
        backend = self

        class _Current:
            def __enter__(self):
                backend.depth += 1
                backend.entered += 1

            def __exit__(self, *exc):
                backend.depth -= 1

        return _Current()

    def _alloc(self, nbytes):
        assert self.depth > 0, "device memory allocated with another device current"
        return super()._alloc(nbytes)

    def _stream(self):
        assert self.depth > 0, "CuPy's current stream read with another device current"
        return super()._stream()


def test_device_calls_run_on_the_programs_device(monkeypatch):
    """Loading, set_table, run and close make the program's device current (a
    caller may have made another GPU current since the simulator was built)."""
    monkeypatch.setattr(nengo_cuda.simulator, "select_backend", lambda d: _DeviceCheckingBackend)
    net, probes = NETWORKS["tutorial"]()
    ref, _ = _data(net, probes, "cpu")
    with _sim(net, "cuda-emulator") as sim:
        backend = sim.backend
        assert isinstance(backend, _DeviceCheckingBackend)
        sim.run(0.3)
        out = [np.array(sim.data[p]) for p in probes]
    assert backend.depth == 0 and backend.entered >= 3  # load, run, close
    for r, o in zip(ref, out):
        np.testing.assert_allclose(o, r, rtol=1e-9, atol=1e-9)


def test_callback_ranges_cover_callback_signals():
    net, _ = NETWORKS["integrator"]()
    with _sim(net, "cpu") as sim:
        layout = sim.layout
        for instr in sim.program:
            if not instr.is_callback:
                continue
            f_ranges, i_ranges = callback_ranges(instr, layout)
            covered = set()
            for start, length in zip(f_ranges[::2], f_ranges[1::2]):
                covered.update(range(start, start + length))
            for op in instr.ops:
                for sig in op.all_signals:
                    if layout.pool_of(sig) == "float" and not layout.is_shared(sig):
                        addrs = layout.addresses(sig).ravel()
                        assert set((addrs - layout.f_shared).tolist()) <= {
                            a - layout.f_shared for a in covered
                        }
            assert i_ranges == [layout.i_shared, layout.n_trials * layout.i_state]


def test_device_selection_without_gpu(monkeypatch):
    monkeypatch.setattr(select, "cuda_status", lambda: (False, "no driver (test)"))
    assert select.select_backend(None) is CpuBackend
    assert select.select_backend("cpu") is CpuBackend
    assert select.select_backend("cuda-emulator") is EmulatedCudaBackend
    with pytest.raises(ValidationError, match=r"device='cuda' is unavailable: no driver \(test\)"):
        select.select_backend("cuda")


@pytest.mark.parametrize("device, parsed", [
    (None, (None, None)),
    ("cpu", ("cpu", None)),
    ("/cpu:0", ("cpu", None)),
    ("/device:CPU:0", ("cpu", None)),
    ("cuda", ("cuda", None)),
    ("cuda:1", ("cuda", 1)),
    ("/gpu:0", ("cuda", 0)),
    ("/GPU:2", ("cuda", 2)),
    ("/device:GPU:3", ("cuda", 3)),
    ("cuda-emulator", ("cuda-emulator", None)),
])
def test_device_names(device, parsed):
    """Our names, and NengoDL's TensorFlow names (ported code keeps its device=)."""
    assert select.parse_device(device) == parsed


@pytest.mark.parametrize("device", ["tpu", "cuda:", "cuda:-1", "/gpu", "cuda-emulator:1",
                                    "/cpu:0/extra", 3, b"cuda"])
def test_unknown_device_names_raise(device):
    with pytest.raises(ValidationError, match="device"):
        select.parse_device(device)


def test_numbered_cuda_device_without_gpu(monkeypatch):
    """``cuda:N`` raises; NengoDL's ``/gpu:N`` runs on the CPU with a warning
    (TensorFlow's soft placement runs NengoDL's there)."""
    monkeypatch.setattr(select, "cuda_status", lambda: (False, "no driver (test)"))
    with pytest.raises(ValidationError, match=r"device='cuda:0' is unavailable: no driver"):
        select.select_backend("cuda:0")
    for device in ("/gpu:0", "/device:GPU:1"):
        with pytest.warns(UserWarning, match=rf"device='{device}': no driver \(test\); "
                                             "running on the CPU"):
            assert select.select_backend(device) is CpuBackend
    assert select.select_backend("/cpu:0") is CpuBackend


def test_numbered_cuda_device_must_exist(monkeypatch):
    monkeypatch.setattr(select, "cuda_status", lambda: (True, "1 CUDA device(s) (test)"))
    monkeypatch.setattr(select, "cuda_device_count", lambda: 1)
    with pytest.raises(ValidationError, match=r"CUDA device 1 does not exist \(1 device"):
        select.select_backend("cuda:1")
    backend = select.select_backend("cuda:0")
    assert backend.func is CudaBackend and backend.keywords == {"device_index": 0}


@pytest.mark.skipif(not select.cuda_status()[0], reason="needs a CUDA device")
@pytest.mark.parametrize("device", ["cuda:0", "/gpu:0"])
def test_numbered_cuda_device_runs(device):
    net, probes = NETWORKS["tutorial"]()
    ref, _ = _data(net, probes, "cpu", dtype="float64")
    with _sim(net, device, dtype="float64") as sim:
        assert isinstance(sim.backend, CudaBackend) and sim.backend._device_id == 0
        sim.run(0.3)
        out = [np.array(sim.data[p]) for p in probes]
    for r, o in zip(ref, out):
        np.testing.assert_allclose(o, r, rtol=1e-9, atol=1e-9)


def test_cuda_status_names_a_cause():
    ok, why = select.cuda_status()
    assert isinstance(ok, bool) and why
    if not nengo_cuda._native.built_with_cuda:
        assert "without nvcc" in why


# -- GPU only ------------------------------------------------------------------------
gpu = pytest.mark.skipif(not select.cuda_status()[0], reason=f"no CUDA: {select.cuda_status()[1]}")


@gpu
def test_gpu_runs_on_a_user_stream():
    """Work is ordered on CuPy's current stream, whichever it is."""
    import cupy  # noqa: PLC0415

    net, probes = NETWORKS["slices"]()
    ref, _ = _data(net, probes, "cpu", dtype="float64")
    with cupy.cuda.Stream(non_blocking=True):
        out, _ = _data(net, probes, "cuda", dtype="float64")
    for r, o in zip(ref, out):
        np.testing.assert_allclose(o, r, rtol=1e-9, atol=1e-9)


@gpu
def test_gpu_runs_with_another_device_current():
    """Built on device 1, run and closed while device 0 is current."""
    import cupy  # noqa: PLC0415

    if cupy.cuda.runtime.getDeviceCount() < 2:
        pytest.skip("needs two GPUs")
    net, probes = NETWORKS["slices"]()
    ref, _ = _data(net, probes, "cpu", dtype="float64")
    with cupy.cuda.Device(1):
        sim = _sim(net, "cuda", dtype="float64")
    with cupy.cuda.Device(0):
        sim.run(0.3)
        out = [np.array(sim.data[p]) for p in probes]
        sim.close()
        assert cupy.cuda.runtime.getDevice() == 0
    for r, o in zip(ref, out):
        np.testing.assert_allclose(o, r, rtol=1e-9, atol=1e-9)


@gpu
def test_gpu_close_returns_memory():
    import cupy  # noqa: PLC0415

    pool = cupy.get_default_memory_pool()
    before = pool.used_bytes()
    net, _ = NETWORKS["oscillator"]()
    sim = _sim(net, "cuda", minibatch_size=4)
    sim.run_steps(50)
    assert pool.used_bytes() > before
    sim.close()
    assert pool.used_bytes() == before


@gpu
def test_gpu_long_run_is_one_call_per_chunk():
    """Without callbacks, steps run as graphs of many steps (O(1) Python calls)."""
    net, probes = NETWORKS["tutorial"]()
    ref, _ = _data(net, probes, "cpu", run=lambda sim: sim.run_steps(1000))
    with _sim(net, "cuda") as sim:
        calls = []
        sim.backend.native = _CountingProxy(sim.backend.native, calls)
        sim.run_steps(1000)
        stats = sim.backend.stats()
        out = [np.array(sim.data[p]) for p in probes]
    assert len(calls) == 1 and stats["steps_per_graph"] > 1 and stats["segments"] == 1
    for r, o in zip(ref, out):
        np.testing.assert_allclose(o, r, rtol=1e-5, atol=1e-5)


class _CountingProxy:
    def __init__(self, native, calls):
        self._native, self._calls = native, calls

    def run(self, *args):
        self._calls.append(args[0])
        return self._native.run(*args)

    def __getattr__(self, name):
        return getattr(self._native, name)


def test_converted_keras_model(device):
    """A Keras CNN through nengo_cuda.Converter (grouped and strided
    convolutions, pooling, a Softmax TensorNode) on the device: the CPU
    backend's and Keras' outputs (float32 sums in other orders: 1e-5)."""
    pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    inp = keras.Input((8, 8, 2))
    x = keras.layers.Conv2D(4, 3, activation="relu", padding="same", groups=2)(inp)
    x = keras.layers.AveragePooling2D(2)(x)
    x = keras.layers.Conv2D(6, 3, strides=2, activation="sigmoid")(x)
    out = keras.layers.Softmax()(keras.layers.Dense(3)(keras.layers.Flatten()(x)))
    model = keras.Model(inp, out)
    with pytest.warns(UserWarning, match="TensorNode"):
        conv = nengo_cuda.Converter(model)
    x = np.random.RandomState(0).uniform(-1, 1, (4, 8, 8, 2))
    node, probe = conv.inputs[inp], conv.outputs[out]
    outs = {}
    for dev in ("cpu", device):
        with _sim(conv.net, dev, minibatch_size=4) as sim:
            outs[dev] = sim.predict({node: x.reshape(4, 1, -1)})[probe][:, 0]
    np.testing.assert_allclose(outs[device], outs["cpu"], atol=1e-5)
    np.testing.assert_allclose(outs[device], model.predict(x, verbose=0), atol=1e-5)
