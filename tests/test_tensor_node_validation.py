"""TensorNode validation, as NengoDL 3.6 checks it (its test_tensor_node.py::
test_validation): bad arguments fail when the TensorNode is made, a wrong output
when the Simulator is built (one call of tensor_func, as NengoDL builds it) or,
at the latest, at the step that produces it; each a ValidationError naming what
was expected, never garbage written into the simulation."""

import gc
import warnings

import nengo
import numpy as np
import pytest
from nengo.exceptions import ValidationError

import nengo_cuda

tf = pytest.importorskip("tensorflow")

TensorNode = nengo_cuda.TensorNode


# -- when the TensorNode is made -----------------------------------------------------
def test_tensor_func_must_be_callable():
    with nengo.Network():
        with pytest.raises(ValidationError, match=r"function or Keras Layer \(got \[0\]\)"):
            TensorNode([0])


@pytest.mark.parametrize("kw", [{"shape_out": (0,)}, {"shape_out": (2, 0)},
                                {"shape_out": -1}, {"shape_in": (2, 0)},
                                {"shape_in": (-1,)}])
def test_sizes_must_be_positive(kw):
    with nengo.Network():
        with pytest.raises(ValidationError, match="must be >= 1"):
            TensorNode(lambda t, x: t, **{"shape_in": 1, **kw})


def test_inferred_shape_out():
    with nengo.Network():
        assert TensorNode(lambda t: tf.zeros((5, 2))).shape_out == (2,)  # any first axis
        with pytest.raises(ValidationError, match="must be >= 1.*returned shape \\(1, 0\\)"):
            TensorNode(lambda t: tf.zeros((1, 0)))


def test_failing_function_suggests_shape_out():
    with nengo.Network():
        with pytest.raises(ValidationError,
                           match=r"function produced an error \(TypeError: .*shape_out=") as e:
            TensorNode(lambda a, b, c: a)
    assert isinstance(e.value.__cause__, TypeError)  # the user's error, kept
    assert "tensor_func(t)" in str(e.value)  # how it was called


def test_failing_keras_layer_suggests_shape_out():
    with nengo.Network():
        with pytest.raises(ValidationError, match="signature produced an error.*shape_out="):
            TensorNode(tf.keras.layers.Lambda(lambda a, b, c: a))
        # (Dense's own build is what fails, on [t, x]'s shapes)
        with pytest.raises(ValidationError, match=r"building its Keras layer.*signature "
                                                  r"produced an error.*\(\[t, x\]\)"):
            TensorNode(tf.keras.layers.Dense(2), shape_in=(2, 2, 2), pass_time=True)


@pytest.mark.parametrize("value", [None, [0], np.zeros((1, 1), np.float32)])
def test_inference_needs_a_tensor(value):
    with nengo.Network():
        with pytest.raises(ValidationError, match="must return a Tensor"):
            TensorNode(lambda x: value, shape_in=(1,), pass_time=False)


def test_no_input_and_no_time():
    with nengo.Network():
        with pytest.raises(ValidationError, match="either shape_in or pass_time"):
            TensorNode(None, pass_time=False)  # (checked first, as in NengoDL)
        # a size of 0 means no input, as for a nengo.Node
        for kw in ({"size_in": 0}, {"shape_in": 0}, {"shape_in": (0,)}, {}):
            with pytest.raises(ValidationError, match="either shape_in or pass_time"):
                TensorNode(lambda: tf.zeros((1, 1)), pass_time=False, shape_out=1, **kw)
            node = TensorNode(lambda t: tf.reshape(t, (1, 1)), **kw)
            assert node.shape_in is None and node.size_in == 0


class Counter(tf.keras.layers.Layer):
    """A stateful Keras layer: each call adds 1 to its counter and outputs it."""

    def build(self, shape):
        self.k = self.add_weight(name="k", shape=(), initializer="zeros", trainable=False)

    def call(self, x):
        self.k.assign_add(1.0)
        return x * 0 + self.k


def test_inferring_a_keras_layers_shape_runs_nothing():
    """As NengoDL (Layer.compute_output_signature): shape_out of a Keras layer is
    inferred symbolically, so a stateful layer starts from its initial state and
    the simulation's outputs are those of plain Keras calls; a plain function
    is called once, as NengoDL calls it."""
    reference = Counter()
    expected = [float(reference(tf.zeros((1, 1)))[0, 0]) for _ in range(3)]  # 1, 2, 3
    counter = Counter()
    calls = []

    def plain(x):
        calls.append(1)
        return x

    with nengo.Network() as net:
        inp = nengo.Node([1.0])
        node = TensorNode(counter, shape_in=(1,), pass_time=False)
        nengo.Connection(inp, node, synapse=None)
        assert node.shape_out == (1,)
        assert float(counter.k.numpy()) == 0.0  # built, not run
        assert TensorNode(plain, shape_in=(2,), pass_time=False).shape_out == (2,)
        assert len(calls) == 1
        p = nengo.Probe(node)
    with nengo_cuda.Simulator(net, progress_bar=False) as sim:
        sim.run_steps(3)
    np.testing.assert_array_equal(sim.data[p].ravel(), expected)


def test_tensor_node_without_input_is_no_input_node():
    """As NengoDL (its input Nodes exclude TensorNodes): a TensorNode computing
    its output from the time takes no data; a single array goes to the real
    input Node, and data keyed by the TensorNode is refused."""
    with nengo.Network() as net:
        clock = TensorNode(lambda t: tf.fill((1, 1), t))  # (first in all_nodes)
        inp = nengo.Node([0.0])
        out = nengo.Node(size_in=1)
        nengo.Connection(inp, out, synapse=None)
        nengo.Connection(clock, out, synapse=None)
        p = nengo.Probe(out)
    x = np.ones((1, 3, 1))
    expected = 1 + 0.001 * np.arange(1, 4)  # x + t
    with nengo_cuda.Simulator(net, progress_bar=False) as sim:
        np.testing.assert_allclose(sim.predict(x)[p].ravel(), expected, rtol=1e-6)
        for call in (lambda: sim.predict({clock: x}), lambda: sim.run_steps(3, data={clock: x}),
                     lambda: sim.get_name(clock)):
            with pytest.raises(ValidationError, match="is a TensorNode, not an input Node"):
                call()
        sim.compile(loss="mse")
        loss = sim.evaluate(x, np.zeros((1, 3, 1)), verbose=0)["loss"]
    np.testing.assert_allclose(loss, np.mean(expected ** 2), rtol=1e-5)


def test_attributes_assigned_after_construction_are_used():
    """As NengoDL (parameters its builder reads): a tensor_func, pass_time or
    shape_in assigned after the TensorNode is made is the one simulated."""
    with nengo.Network() as net:
        inp = nengo.Node([1.0, 2.0])
        node = TensorNode(lambda t: tf.ones((1, 2)))
        node.tensor_func = lambda x: x * 5
        node.shape_in = (2,)
        node.pass_time = False
        assert node.size_in == 2
        nengo.Connection(inp, node, synapse=None)
        p = nengo.Probe(node)
        with pytest.raises(ValidationError, match="function or Keras Layer"):
            node.tensor_func = 3
        with pytest.raises(ValidationError, match="either shape_in or pass_time"):
            TensorNode(lambda t: tf.reshape(t, (1, 1))).pass_time = False
    with nengo_cuda.Simulator(net, progress_bar=False) as sim:
        sim.run_steps(1)
    np.testing.assert_array_equal(sim.data[p], [[5.0, 10.0]])


# -- when the Simulator is built ------------------------------------------------------
def _build(fn, shape_out, device="cpu", **kw):
    with nengo.Network() as net:
        TensorNode(fn, shape_out=shape_out, label="checked")
    with nengo_cuda.Simulator(net, device=device, progress_bar=False, **kw):
        pass


BAD_OUTPUTS = {
    "None": (lambda t: None, (2,), {}, "must return a Tensor"),
    "list": (lambda t: [[0.0, 0.0]], (2,), {}, "must return a Tensor"),
    "ndim": (lambda t: tf.zeros((1, 2, 2)), (2,), {}, "should have size 2"),
    "batch": (lambda t: tf.zeros((3, 2)), (2,), {"minibatch_size": 2},
              r"should have batch size 2 .*shape \(3, 2\)"),
    "batch of 1": (lambda t: tf.zeros((1, 2)), (2,), {"minibatch_size": 3},
                   "should have batch size 3"),  # (not broadcast)
    "scalar": (lambda t: t, (1,), {}, "should have batch size 1"),
    "size": (lambda t: tf.zeros((3, 2)), (3,), {"minibatch_size": 3}, "should have size 3"),
    "int32": (lambda t: tf.zeros((3, 2), dtype=tf.int32), (2,), {"minibatch_size": 3},
              "should have dtype float32.*int32"),
    "bool": (lambda t: tf.zeros((1, 2), dtype=tf.bool), (2,), {"dtype": "float64"},
             "should have dtype float64.*bool"),
}


@pytest.mark.parametrize("device", ["cpu", "cuda-emulator"])
@pytest.mark.parametrize("case", list(BAD_OUTPUTS))
def test_wrong_output_fails_at_build(case, device):
    fn, shape_out, kw, match = BAD_OUTPUTS[case]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValidationError, match=match) as e:
            _build(fn, shape_out, device=device, **kw)
        assert "<TensorNode 'checked'>" in str(e.value)  # which node
        del e  # (frees the half-built simulator now)
        gc.collect()
    # the failed build closed itself (an open one warns when it is freed; other
    # objects that an earlier test left to the collector may warn here too)
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)
                and "deallocated while open" in str(w.message)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_correct_output_builds_and_runs(dtype):
    calls = []

    def same_dtype(t):
        calls.append(float(t))
        return tf.fill((3, 2), t)

    with nengo.Network() as net:
        same = TensorNode(same_dtype, shape_out=(2,))
        # another float dtype is cast to the simulator's
        f16 = TensorNode(lambda t: tf.fill((3, 1, 2), tf.cast(t, tf.float16)), shape_out=(2,))
        p_same, p_f16 = nengo.Probe(same), nengo.Probe(f16)
    assert calls == []  # with shape_out given, not called when made
    with nengo_cuda.Simulator(net, minibatch_size=3, dtype=dtype, progress_bar=False) as sim:
        assert calls == [0.0]  # the build's check, as NengoDL builds it
        sim.run_steps(3)
    t = np.broadcast_to(sim.trange()[None, :, None], (3, 3, 2))
    np.testing.assert_allclose(sim.data[p_same], t, rtol=1e-6)
    np.testing.assert_allclose(sim.data[p_f16], t, rtol=1e-3)


def test_wrong_output_later_fails_at_that_step():
    """An output that goes wrong after the build's check is caught at its step,
    and nothing of it is written."""
    with nengo.Network() as net:
        node = TensorNode(
            lambda t: tf.fill((1, 2), t) if float(t) < 0.0025 else tf.zeros((1, 3)),
            shape_out=(2,), label="late")
        p = nengo.Probe(node)
    with nengo_cuda.Simulator(net, progress_bar=False) as sim:
        sim.run_steps(2)
        with pytest.raises(ValidationError, match="'late'.*should have size 2.*shape \\(1, 3\\)"):
            sim.run_steps(1)
    np.testing.assert_allclose(sim.data[p], [[0.001] * 2, [0.002] * 2], rtol=1e-6)


def test_build_check_uses_the_runs_training_flag():
    """The build's call gets the flag a run gives the Keras layer: False, or True
    with configure_settings(learning_phase=True) (runs in training mode)."""
    seen = []

    class Flagged(tf.keras.layers.Layer):
        def call(self, t, training=None):
            seen.append(training)
            return tf.reshape(t, (1, 1))

    for phase in (None, True):
        with nengo.Network() as net:
            nengo_cuda.configure_settings(learning_phase=phase)
            nengo.Probe(TensorNode(Flagged(), shape_out=(1,)))
        seen.clear()
        with nengo_cuda.Simulator(net, progress_bar=False):
            # (the last call: the first builds the layer's weights, with False)
            assert seen[-1] is (phase is True)


# -- in training, and in nengo.Simulator ---------------------------------------------
@pytest.mark.filterwarnings("ignore:fit. no parameters are trainable")
@pytest.mark.parametrize("wrong, match", [
    ("dtype", "'trained'.*should have dtype float32.*int32"),
    ("batch", "'trained'.*should have batch size 2"),
])
def test_wrong_output_in_training(wrong, match):
    """A Keras layer whose output goes wrong only in training mode: caught when
    the training graph is made, not as a reshape error inside TensorFlow."""

    class TrainOnly(tf.keras.layers.Layer):
        def call(self, x, training=None):
            if not training:
                return x
            return tf.cast(x, tf.int32) if wrong == "dtype" else x[:1]

    with nengo.Network() as net:
        inp = nengo.Node([0.0])
        node = TensorNode(TrainOnly(), shape_in=(1,), shape_out=(1,), pass_time=False,
                          label="trained")
        nengo.Connection(inp, node, synapse=None)
        p = nengo.Probe(node)
    with nengo_cuda.Simulator(net, minibatch_size=2, progress_bar=False) as sim:
        sim.run_steps(1)  # fine outside training
        sim.compile(tf.optimizers.SGD(0.0), loss="mse")
        with pytest.raises(ValidationError, match=match):
            sim.fit({inp: np.zeros((2, 1, 1))}, {p: np.zeros((2, 1, 1))}, verbose=0)


def test_wrong_output_in_nengo_simulator():
    with nengo.Network() as net:
        TensorNode(lambda t: tf.zeros((5, 2)), label="five")  # NengoDL's case
    with nengo.Simulator(net, progress_bar=False) as sim:
        with pytest.raises(ValidationError, match="'five'.*should have batch size 1"):
            sim.step()


# -- Layer ---------------------------------------------------------------------------
def test_layer_objects_are_unlabeled_unless_labelled():
    with nengo.Network():
        node = nengo.Node([0])
        func = nengo_cuda.Layer(lambda x: x)(node)
        dense = nengo_cuda.Layer(tf.keras.layers.Dense(units=3))(node)
        named = nengo_cuda.Layer(tf.keras.layers.Dense(units=3))(node, label="named")
    assert func.label is None and dense.label is None and named.label == "named"
    assert str(func).startswith("<TensorNode (unlabeled) at ")


def test_function_error_at_build_names_the_tensor_node():
    """An error of the function itself (not a wrong output) when the Simulator
    calls it once while building is a BuildError naming the TensorNode and the
    input it was called on; TensorFlow's own message names only its op."""

    def wrong_inner_size(x):
        return tf.matmul(x, tf.ones((5, 2)))

    with nengo.Network() as net:
        node = TensorNode(wrong_inner_size, shape_in=4, shape_out=2, pass_time=False,
                          label="my_node")
        nengo.Connection(nengo.Node(np.ones(4)), node, synapse=None)
    with pytest.raises(nengo.exceptions.BuildError,
                       match=r"'my_node'.*shape \(1, 4\).*InvalidArgumentError"):
        nengo_cuda.Simulator(net, progress_bar=False)


_BUILT_ON = []  # (not the layer's attribute: Keras tracks a list there, and
# appending to it while tracing failed the trace, which then built eagerly)


class BuildsAndSets(tf.keras.layers.Layer):
    """A layer whose ``build`` makes its weights and sets them (as one that
    loads saved weights there does), recording the shapes it was built on.
    (Its name has no leading underscore: a layer named so cannot be traced,
    and would be built eagerly by the call that follows.)"""

    fail = False

    def build(self, shape):
        _BUILT_ON.append((shape, tf.executing_eagerly()))
        if self.fail:
            raise FileNotFoundError("no weights file")
        self.w = self.add_weight(shape=(3,), initializer="zeros")
        self.w.assign([1.0, 2.0, 3.0])

    def call(self, inputs):
        t, x = inputs if isinstance(inputs, list) else (0.0, inputs)
        return x * self.w + t


@pytest.mark.parametrize("mb", [None, 4])
@pytest.mark.parametrize("shape_out, pass_time", [(3, False), (3, True), ("inferred", False),
                                                  ("inferred", True), ("Layer", False)])
def test_a_keras_layers_own_build_runs_eagerly_on_nengo_dls_shapes(pass_time, mb, shape_out):
    """NengoDL builds a TensorNode's Keras layer before calling it, eagerly, on
    ``(minibatch,) + shape_in`` (after ``()`` for the time): what ``build``
    assigns holds (built while tracing its call, the assignment never ran and
    the weights stayed zeros), and an error there is raised as it is (it was
    taken for an untraceable call, and the layer ran unbuilt).  Where its
    ``shape_out`` is inferred (so by ``nengo_cuda.Layer``), on a minibatch of
    1: the TensorNode is made before the simulator."""
    layer = BuildsAndSets()
    _BUILT_ON.clear()
    with nengo.Network() as net:
        inp = nengo.Node([1.0, -1.0, 0.5])
        if shape_out == "Layer":
            node = nengo_cuda.Layer(layer)(inp, shape_in=3)  # (no time: NengoDL's)
        else:
            node = TensorNode(layer, shape_in=3, pass_time=pass_time,
                              shape_out=3 if shape_out == 3 else None)
            nengo.Connection(inp, node, synapse=None)
        p = nengo.Probe(node)
    with nengo_cuda.Simulator(net, minibatch_size=mb, progress_bar=False) as sim:
        sim.run_steps(2)
        t = sim.trange()[:, None] if pass_time else 0.0
        expected = np.array([1.0, -2.0, 1.5]) + t  # (w: set in build)
        np.testing.assert_allclose(sim.data[p], np.broadcast_to(expected, sim.data[p].shape),
                                   rtol=1e-6)
    print("\nBUILT", _BUILT_ON, sim.data[p][..., :3].ravel()[:3])
    x_shape = ((mb or 1) if shape_out == 3 else 1, 3)
    assert _BUILT_ON == [([(), x_shape] if pass_time else x_shape, True)]

    failing = type("FailsToBuild", (BuildsAndSets,), {"fail": True})()
    if shape_out != 3:
        with pytest.raises(ValidationError, match=r"inferring shape_out by building its Keras "
                                                  r"layer.*FileNotFoundError: no weights file.*"
                                                  r"built as build\(\(1, 3\)\)"):
            TensorNode(failing, shape_in=3, pass_time=False)
        return
    with nengo.Network() as net:
        node = TensorNode(failing, shape_in=3, shape_out=3, pass_time=False)
        nengo.Connection(nengo.Node(np.ones(3)), node, synapse=None)
    with pytest.raises(FileNotFoundError, match="no weights file"):
        nengo_cuda.Simulator(net, minibatch_size=mb, progress_bar=False)


GRAPH_MODE = """
import nengo, numpy as np, tensorflow as tf
tf.compat.v1.disable_eager_execution()  # (NengoDL's tips page, for TF 1-style graphs)
import nengo_cuda
with nengo.Network(seed=0) as net:
    inp = nengo.Node([0.5])
    p = nengo.Probe(inp)
with nengo.Network() as layered:
    nengo_cuda.Layer(tf.keras.layers.Dense(2))(nengo.Node([0.5]))
with nengo_cuda.Simulator(net, progress_bar=False) as sim:
    sim.run_steps(3)  # (no TensorFlow in a native run)
    print("ran", sim.data[p].shape)
    try:
        sim.compile(optimizer="sgd", loss={p: "mse"})
    except nengo.exceptions.SimulationError as e:
        print("compile:", e)
try:
    nengo_cuda.Simulator(layered, progress_bar=False)
except nengo.exceptions.SimulationError as e:
    print("build:", e)
"""


def test_tensorflow_graph_mode_refused_clearly():
    """TF 1's graph mode (``disable_eager_execution``) gave raw TensorFlow
    errors at build (a TensorNode's weights) or in fit/evaluate; a native
    run needs no TensorFlow and still works."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", GRAPH_MODE], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "ran (3, 1)"
    assert [line.split(":")[0] for line in lines[1:]] == ["compile", "build"]
    assert all("needs TensorFlow's eager execution" in line for line in lines[1:])


class ReturnsItsWeight(tf.keras.layers.Layer):
    """A layer whose output is its weight (Keras 3's ``add_weight``: a
    ``keras.Variable``, not a ``tf.Variable``)."""

    def build(self, shape):
        self.w = self.add_weight(shape=(1, 2), initializer="ones", name="w")

    def call(self, t):
        return self.w


@pytest.mark.parametrize("kind", ["tf.Variable", "keras.Variable", "layer weight"])
@pytest.mark.parametrize("shape_out", [None, (2,)])
def test_a_returned_variable_is_taken_as_its_value(kind, shape_out):
    """``tf.is_tensor`` holds for variables (NengoDL's output check passes
    them); the value is the output, read at each call.  (A ``tf.Variable``
    failed deep inside, no ``__dlpack__``; a ``keras.Variable`` on its string
    dtype.)  A layer's weight so returned trains."""
    initial = np.array([[1.0, -2.0]], np.float32)
    if kind == "layer weight":
        func = ReturnsItsWeight()
        func.build(())
        func.w.assign(initial)
        v = func.w
    else:
        v = (tf.Variable if kind == "tf.Variable" else tf.keras.Variable)(initial)
        func = lambda t: v  # noqa: E731
    with nengo.Network() as net:
        node = TensorNode(func, pass_time=True, shape_out=shape_out)
        p = nengo.Probe(node)
    assert node.shape_out == (2,)
    with nengo_cuda.Simulator(net, progress_bar=False) as sim:
        sim.run_steps(2)
        v.assign([[3.0, 4.0]])
        sim.run_steps(1)
        np.testing.assert_array_equal(sim.data[p], [[1, -2], [1, -2], [3, 4]])
        if kind == "layer weight":
            sim.compile(tf.keras.optimizers.SGD(0.1), loss="mse")
            sim.fit(n_steps=1, y={p: np.zeros((1, 1, 2))}, verbose=0)
            # (d mse / d w = w: one SGD step of 0.1 scales it by 0.9)
            np.testing.assert_allclose(v.numpy(), [[2.7, 3.6]], rtol=1e-6)
