"""TensorNode in sim.run: the hand-over through DLPack (tensor_node.run_step).

On the CPU backend the node's input reaches TensorFlow as a tensor over the
simulator's own pool (no copy, in the simulator's dtype, as NengoDL hands it
over; minibatch 1); on the CUDA backend the
callback works on the device pool and only the time is copied to the host
(tested here through the host emulator of the CUDA backend, and for real with
device="cuda" when a GPU is present)."""

import numpy as np
import pytest
import nengo

import nengo_cuda
from nengo_cuda.backends.cuda import callback_ranges

tf = pytest.importorskip("tensorflow")


def _net(minibatch_out=False):
    """sin -> Node(f) and sin -> TensorNode(f) (with 2-d shapes), probed."""
    with nengo.Network(seed=3) as net:
        stim = nengo.Node(lambda t: [np.sin(7 * t), np.cos(5 * t), t, -t])
        ens = nengo.Ensemble(40, 4)
        nengo.Connection(stim, ens)

        def np_func(t, x):
            return np.tanh(x.reshape(2, 2) @ np.array([[1.0, 2.0], [-1.0, 0.5]])).ravel() * t

        def tf_func(t, x):  # x: (minibatch, 2, 2)
            w = tf.constant([[1.0, 2.0], [-1.0, 0.5]], x.dtype)  # (the simulator's)
            return tf.tanh(tf.einsum("bij,jk->bik", x, w)) * t

        node = nengo.Node(np_func, size_in=4)
        tnode = nengo_cuda.TensorNode(tf_func, shape_in=(2, 2))
        nengo.Connection(ens, node)
        nengo.Connection(ens, tnode)
        p_node = nengo.Probe(node)
        p_tnode = nengo.Probe(tnode)
    return net, tnode, p_node, p_tnode


@pytest.mark.parametrize("device", ["cpu", "cuda-emulator"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_tensor_node_equals_node(device, dtype):
    net, tnode, p_node, p_tnode = _net()
    with nengo_cuda.Simulator(net, device=device, dtype=dtype, progress_bar=False) as sim:
        sim.run_steps(60)
    assert tnode.shape_out == (2, 2)
    assert np.abs(sim.data[p_node]).max() > 0.01  # something happened
    np.testing.assert_allclose(sim.data[p_tnode], sim.data[p_node], rtol=2e-5, atol=2e-6)
    if dtype == "float64":  # and both match nengo.Simulator's Node
        with nengo.Simulator(net, progress_bar=False) as ref:
            ref.run_steps(60)
        np.testing.assert_allclose(sim.data[p_tnode], ref.data[p_node], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("device", ["cpu", "cuda-emulator"])
def test_tensor_node_minibatch_called_once_per_step(device):
    calls = []

    def f(t, x):
        calls.append(tuple(x.shape))
        return 2 * x + t

    with nengo.Network() as net:
        inp = nengo.Node(np.zeros(3))
        node = nengo_cuda.TensorNode(f, shape_in=3)
        nengo.Connection(inp, node, synapse=None)
        p = nengo.Probe(node)
    data = np.arange(4 * 5 * 3, dtype=float).reshape(4, 5, 3)
    with nengo_cuda.Simulator(net, device=device, minibatch_size=4, progress_bar=False) as sim:
        calls.clear()
        sim.run_steps(5, data={inp: data})
    assert calls == [(4, 3)] * 5  # the whole minibatch at once, once per step
    t = sim.trange()[None, :, None]
    np.testing.assert_allclose(sim.data[p], 2 * data + t, rtol=1e-6)


@pytest.mark.parametrize("device", ["cpu", "cuda-emulator"])
def test_tensor_node_input_is_the_simulators_memory(device):
    """float32, minibatch 1: tensor_func's x is the pool itself (the host pool
    on the CPU backend, the device pool on the CUDA backend), 64-byte aligned."""
    seen = []

    def f(t, x):
        seen.append(np.from_dlpack(x).ctypes.data)
        return x * 3

    with nengo.Network() as net:
        inp = nengo.Node([0.5, -1.0])
        node = nengo_cuda.TensorNode(f, shape_in=2, shape_out=2)
        nengo.Connection(inp, node, synapse=None)
        p = nengo.Probe(node)
    with nengo_cuda.Simulator(net, device=device, dtype="float32", progress_bar=False) as sim:
        sim.run_steps(2)
        op = next(op for op in sim.model.operators if getattr(op, "fn", None) is node.output)
        if device == "cpu":
            pool_x = sim.layout.signal_dicts[0][op.x]
        else:
            pool_x = sim.backend.device_arrays(op.x)[0]
            assert not np.shares_memory(pool_x, sim.layout.fbuf)  # the device copy
    assert pool_x.ctypes.data % 64 == 0
    assert seen and set(seen) == {pool_x.ctypes.data}
    np.testing.assert_allclose(sim.data[p], [[1.5, -3.0]] * 2)


def test_unaligned_input_is_copied():
    """TensorFlow aborts on unaligned tensors: such input goes through a copy."""
    from nengo_cuda.training import tensor_node as tn

    buf = np.arange(40, dtype=np.float32)
    start = next(i for i in range(16) if buf[i:].ctypes.data % 64 != 0)
    x = buf[start : start + 4]
    assert not tn._aligned(x) and tn._aligned(buf[(-buf.ctypes.data % 64) // 4:])

    class Op:
        fn = tn._TensorFunc(lambda x: tf.einsum("bij,jk->bik", x, tf.eye(2)), (2, 2), (2, 2),
                            False)

    out = np.zeros(4, dtype=np.float32)
    tn._RunStep(Op, None, [x], [out], np)()
    np.testing.assert_array_equal(out, x)


def test_cuda_backend_copies_only_the_time():
    """The TensorNode callback's host copies on the CUDA backend: the time only
    (float64 pool; float32 callbacks read a float64 time made from the step)."""
    net, tnode, p_node, p_tnode = _net()
    with nengo_cuda.Simulator(net, device="cuda-emulator", dtype="float64",
                              progress_bar=False) as sim:
        instrs = [i for i in sim.program if i.is_callback]
        tn = [i for i in instrs if i.ops[0].fn is tnode.output]
        plain = [i for i in instrs if i.ops[0].fn is not tnode.output
                 and any(getattr(o, "fn", None) is not None for o in i.ops)]
        assert len(tn) == 1 and tn[0].callback.host_signals == [sim.model.time]
        f_ranges, _ = callback_ranges(tn[0], sim.layout)
        assert sum(f_ranges[1::2]) == 1  # one float: the time
        # a plain Node's callback still copies its input and output
        assert plain and sum(callback_ranges(plain[0], sim.layout)[0][1::2]) > 1


def test_tensor_node_nonfinite_raises():
    with nengo.Network() as net:
        node = nengo_cuda.TensorNode(lambda t: tf.fill((1, 2), np.inf) * t, shape_out=2)
        nengo.Probe(node)
    with nengo_cuda.Simulator(net, device="cpu", progress_bar=False) as sim:
        with pytest.raises(nengo.exceptions.SimulationError, match="non-finite"):
            sim.run_steps(2)


def test_tensor_node_on_gpu():
    """device="cuda": input and output on the GPU (skipped without one)."""
    try:
        import cupy  # noqa: PLC0415

        n_gpus = cupy.cuda.runtime.getDeviceCount()
    except Exception:  # noqa: BLE001 - no CuPy, no driver, no device
        n_gpus = 0
    if n_gpus == 0 or not tf.config.list_physical_devices("GPU"):
        pytest.skip("needs a GPU visible to CuPy and to TensorFlow (a CUDA build)")
    devices = []

    def f(t, x):
        devices.append(x.device)
        return tf.exp(x) * t

    with nengo.Network() as net:
        inp = nengo.Node([0.5, -1.0])
        node = nengo_cuda.TensorNode(f, shape_in=2)
        nengo.Connection(inp, node, synapse=None)
        p = nengo.Probe(node)
    with nengo_cuda.Simulator(net, device="cuda", dtype="float32", progress_bar=False) as sim:
        devices.clear()
        sim.run_steps(4)
    assert devices and all("GPU" in d for d in devices)
    t = sim.trange()[:, None]
    np.testing.assert_allclose(sim.data[p], np.exp([[0.5, -1.0]]) * t, rtol=1e-6)
