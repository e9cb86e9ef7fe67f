"""Keras's floatx follows the simulator's dtype while it works, as NengoDL sets
it (`nengo_cuda.training.floatx`): Node functions, TensorNodes and Keras layers
made in a ``with Simulator(...)`` block see float64 in a float64 simulator,
and the floatx before comes back afterwards, also after an error."""

import numpy as np
import nengo
import pytest

tf = pytest.importorskip("tensorflow")

import nengo_cuda  # noqa: E402


def test_floatx_context():
    """NengoDL 3.6's test_simulator.py::test_floatx_context."""
    with nengo.Network() as net:
        nengo_cuda.configure_settings(dtype="float64")

        def fail_func(t):
            assert tf.keras.backend.floatx() == "float64"
            assert False, "intentional failure"

        nengo.Node(fail_func, size_out=1)

    assert tf.keras.backend.floatx() == "float32"
    sim = nengo_cuda.Simulator(net, progress_bar=False)
    with pytest.raises(AssertionError, match="intentional failure"):
        sim.step()
    assert tf.keras.backend.floatx() == "float32"
    assert tf.keras.layers.Dense(1).dtype == "float32"  # Keras 3's dtype policy too
    sim.close()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_tensor_nodes_and_with_blocks_see_the_dtype(dtype):
    seen = []

    def func(t, x):
        seen.append((t.dtype, x.dtype, tf.keras.backend.floatx()))
        return x * 2

    with nengo.Network() as net:
        stim = nengo.Node([0.5])
        node = nengo_cuda.TensorNode(func, shape_in=(1,), shape_out=(1,))
        nengo.Connection(stim, node, synapse=None)
        probe = nengo.Probe(node)
    with nengo_cuda.Simulator(net, dtype=dtype, progress_bar=False) as sim:
        assert tf.keras.backend.floatx() == dtype
        assert tf.keras.layers.Dense(1).dtype == dtype  # made in the block
        seen.clear()
        sim.run_steps(2)
        assert set(seen) == {(tf.as_dtype(dtype),) * 2 + (dtype,)}
        np.testing.assert_array_equal(sim.data[probe], [[1.0], [1.0]])
        seen.clear()
        sim.predict({stim: np.ones((1, 2, 1))})
        assert {s[2] for s in seen} == {dtype}
    assert tf.keras.backend.floatx() == "float32"


def test_floatx_comes_back_after_an_error():
    with nengo.Network() as net:
        stim = nengo.Node([0.5])
        nengo.Probe(stim)
    with pytest.raises(ValueError, match="boom"):
        with nengo_cuda.Simulator(net, dtype="float64", progress_bar=False):
            raise ValueError("boom")
    assert tf.keras.backend.floatx() == "float32"
    with nengo_cuda.Simulator(net, dtype="float64", progress_bar=False) as sim:
        with pytest.raises(nengo.exceptions.ValidationError):
            sim.run_steps(2, data={stim: np.ones((2, 3, 1))})  # wrong shape
        assert tf.keras.backend.floatx() == "float64"
    sim = nengo_cuda.Simulator(net, dtype="float64", progress_bar=False)
    with pytest.raises(nengo.exceptions.ValidationError):
        sim.run_steps(2, data={stim: np.ones((2, 3, 1))})
    assert tf.keras.backend.floatx() == "float32"
    sim.close()


def test_a_mixed_precision_policy_stays():
    with nengo.Network() as net:
        nengo.Probe(nengo.Node([0.5]))
    before = tf.keras.config.dtype_policy()
    tf.keras.config.set_dtype_policy("mixed_float16")
    try:
        with nengo_cuda.Simulator(net, dtype="float64", progress_bar=False):
            assert tf.keras.backend.floatx() == "float64"
            assert tf.keras.config.dtype_policy().name == "mixed_float16"
        assert tf.keras.config.dtype_policy().name == "mixed_float16"
    finally:
        tf.keras.config.set_dtype_policy(before)


def test_overlapping_simulators_leave_the_floatx_before_them():
    """Keras's floatx is the process's: two float64 simulators whose runs
    overlap (two threads) restore it in the other's order; the floatx before
    both comes back (each restoring its own "before" left float64: the
    second one's "before" was the first one's dtype)."""
    from nengo_cuda.training.floatx import restore_floatx, set_floatx

    before = tf.keras.backend.floatx()
    assert before == "float32"
    first = set_floatx(np.float64)   # thread A's run starts
    second = set_floatx(np.float64)  # thread B's run starts
    restore_floatx(first)            # A's ends first
    restore_floatx(second)
    assert tf.keras.backend.floatx() == before
    first = set_floatx(np.float64)   # nested in one thread: each level restores its own
    second = set_floatx(np.float16)
    restore_floatx(second)
    assert tf.keras.backend.floatx() == "float64"
    restore_floatx(first)
    assert tf.keras.backend.floatx() == before
