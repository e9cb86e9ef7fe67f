"""The TensorFlow custom ops (csrc/tf/): forward against Nengo's neuron math,
gradients against finite differences (tf.test.compute_gradient)."""

import numpy as np
import pytest
import nengo

import nengo_cuda

tf = pytest.importorskip("tensorflow")

from nengo_cuda.training import ops  # noqa: E402

NEURONS = [
    nengo.LIFRate(tau_rc=0.03, tau_ref=0.002, amplitude=0.5),
    nengo.LIF(),
    nengo.RectifiedLinear(amplitude=2.0),
    nengo.SpikingRectifiedLinear(),
    nengo.Sigmoid(tau_ref=0.01),
    nengo.Tanh(tau_ref=0.05),
    nengo_cuda.SoftLIFRate(sigma=0.5, tau_rc=0.03, amplitude=0.5),
    nengo_cuda.LeakyReLU(negative_slope=0.1, amplitude=2.0),
    nengo_cuda.SpikingLeakyReLU(negative_slope=0.2),
]


def _rate_neuron(neuron_type):
    """The Nengo rate neuron whose step the op's forward must equal."""
    if isinstance(neuron_type, (nengo_cuda.SoftLIFRate, nengo_cuda.LeakyReLU)):
        return neuron_type
    if isinstance(neuron_type, nengo_cuda.SpikingLeakyReLU):
        return nengo_cuda.LeakyReLU(negative_slope=neuron_type.negative_slope,
                                    amplitude=neuron_type.amplitude)
    rate = {nengo.LIF: nengo.LIFRate, nengo.SpikingRectifiedLinear: nengo.RectifiedLinear}
    cls = rate.get(type(neuron_type), type(neuron_type))
    kw = {k: getattr(neuron_type, k) for k in ("tau_rc", "tau_ref", "amplitude")
          if hasattr(neuron_type, k) and k in cls.__init__.__code__.co_varnames}
    return cls(**kw)


def _inputs(n=9, batch=3):
    rng = np.random.RandomState(0)
    J = rng.uniform(-3, 6, size=(batch, n))
    J[0, :4] = [0.5, 1.0, 1.5, 2.0]
    return J


@pytest.mark.parametrize("neuron_type", NEURONS, ids=lambda n: type(n).__name__)
def test_rate_forward_matches_nengo(neuron_type):
    J = _inputs()
    kind, names = ops.rate_spec(neuron_type)
    params = ops.rate_params(neuron_type, names, J.shape[1], np.float64)
    out = ops.neuron_rate(tf.constant(J), kind, tf.constant(params)).numpy()
    rate = _rate_neuron(neuron_type)
    expected = np.zeros_like(J)
    for j, row in zip(J, expected):
        rate.step(0.001, j, row)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("smoothing", [None, 0.05])
@pytest.mark.parametrize("neuron_type", NEURONS, ids=lambda n: type(n).__name__)
def test_rate_gradient_finite_differences(neuron_type, smoothing):
    J = _inputs()
    # keep away from the kinks (J = 1 for LIF, J = 0 for ReLU) for finite differences
    J = np.where(np.abs(J - 1) < 0.05, J + 0.2, J)
    J = np.where(np.abs(J) < 0.05, J + 0.2, J)
    kind, names = ops.rate_spec(neuron_type, lif_smoothing=smoothing)
    params = tf.constant(ops.rate_params(neuron_type, names, J.shape[1], np.float64))
    theoretical, numerical = tf.test.compute_gradient(
        lambda j: ops.neuron_rate(j, kind, params), [tf.constant(J)], delta=1e-6
    )
    np.testing.assert_allclose(theoretical[0], numerical[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("neuron_type, reference", [
    (nengo.RectifiedLinear(), tf.nn.relu),
    (nengo_cuda.LeakyReLU(negative_slope=0.1), lambda j: tf.nn.leaky_relu(j, alpha=0.1)),
], ids=["relu", "leaky_relu"])
def test_rate_gradient_at_the_kink_is_tensorflows(neuron_type, reference):
    # at J = 0 exactly (an input from a dead ReLU layer) the one-sided gradient
    # must be the one Keras uses, or training a converted model departs from Keras
    J = tf.constant([[-1.0, 0.0, 1.0]], dtype=tf.float64)
    kind, names = ops.rate_spec(neuron_type)
    params = tf.constant(ops.rate_params(neuron_type, names, 3, np.float64))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(J)
        ours, theirs = ops.neuron_rate(J, kind, params), reference(J)
    # (TensorFlow keeps alpha as a float32: 0.1 within 1.5e-9)
    np.testing.assert_allclose(tape.gradient(ours, J), tape.gradient(theirs, J), rtol=1e-7)


def test_soft_lif_approaches_lif():
    J = _inputs()
    lif = nengo.LIFRate()
    p = tf.constant(ops.rate_params(lif, ("tau_rc", "tau_ref", "amplitude", 1e-6), 9, np.float64))
    soft = ops.neuron_rate(tf.constant(J), "soft_lif_rate", p).numpy()
    hard = ops.neuron_rate(tf.constant(J), "lif_rate", p).numpy()
    away = np.abs(J - 1) > 0.1  # at threshold the smoothed rate is not yet 0
    np.testing.assert_allclose(soft[away], hard[away], atol=1e-3)
    # smooth: positive below threshold
    p = tf.constant(ops.rate_params(lif, ("tau_rc", "tau_ref", "amplitude", 0.1), 9, np.float64))
    assert (ops.neuron_rate(tf.constant(J), "soft_lif_rate", p).numpy() > 0).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lowpass_scan_matches_nengo(dtype):
    rng = np.random.RandomState(1)
    u = rng.randn(2, 50, 3).astype(dtype)
    synapse = nengo.Lowpass(0.01)
    step = synapse.make_step((3,), (3,), 0.001, None, state=synapse.make_state((3,), (3,), 0.001, dtype=dtype))
    a, b = step.a, step.b
    expected = np.zeros_like(u)
    for i in range(2):
        x = np.zeros(3, dtype)
        for t in range(50):
            x = (x * dtype(a)) + dtype(b) * u[i, t]
            expected[i, t] = x
    y = ops.lowpass_scan(u, np.zeros((2, 3), dtype), np.full(3, a, dtype), np.full(3, b, dtype))
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(y.numpy(), expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("reverse", [False, True])
def test_lowpass_scan_gradient(reverse):
    rng = np.random.RandomState(2)
    u = tf.constant(rng.randn(2, 7, 3))
    x0 = tf.constant(rng.randn(2, 3))
    a = tf.constant([0.9, 0.5, 0.1], tf.float64)
    b = tf.constant([0.1, 0.5, 0.9], tf.float64)
    theoretical, numerical = tf.test.compute_gradient(
        lambda u, x0: ops.lowpass_scan(u, x0, a, b, reverse=reverse), [u, x0]
    )
    for t, n in zip(theoretical, numerical):
        np.testing.assert_allclose(t, n, rtol=1e-6, atol=1e-6)


def test_installed_sources_build_the_library(tmp_path, monkeypatch):
    """An installed package builds the ops from the copies of
    `op_sources.SOURCES` that setup.py installs beside it (pip's isolated
    build has no TensorFlow): those files alone compile, without the GPU part."""
    import shutil  # noqa: PLC0415

    from nengo_cuda.training import op_sources  # noqa: PLC0415

    installed = tmp_path / "csrc"
    for rel in op_sources.SOURCES:
        (installed / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ops.PACKAGE_DIR.parent.parent / "csrc" / rel, installed / rel)
    monkeypatch.setattr(ops, "SOURCE_ROOT", installed)
    ops.build(tmp_path / "ops.so", tf, gpu=False)
    assert (tmp_path / "ops.so").stat().st_size > 0


def _fake_build(path, tf, gpu):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"built")


def test_an_installed_package_uses_its_prebuilt_library(tmp_path, monkeypatch):
    """The library setup.py built serves where its stamp names this TensorFlow;
    otherwise it is built from the installed sources, and without those the
    error says so (it told users to reinstall with [tf], which built nothing)."""
    monkeypatch.setattr(ops, "INSTALLED", True)
    monkeypatch.setattr(ops, "PACKAGE_DIR", tmp_path)
    monkeypatch.setattr(ops, "SOURCE_ROOT", tmp_path / "csrc")
    monkeypatch.setenv("NENGO_CUDA_TF_OPS_GPU", "0")
    sources = tmp_path / "csrc" / "tf" / "nc_tf_ops.cc"
    sources.parent.mkdir(parents=True)
    sources.write_text("// the installed sources")
    monkeypatch.setattr(ops, "SOURCES", ("tf/nc_tf_ops.cc",))
    (tmp_path / "_nc_tf_ops.so").write_bytes(b"prebuilt")
    (tmp_path / "_nc_tf_ops.version").write_text(ops.stamp_text(tf, gpu=False))
    assert ops.library_path(tf) == tmp_path / "_nc_tf_ops.so"
    # built from other sources (a stale build's), or for another TensorFlow: not used
    for stamp in (ops.stamp_text(tf, gpu=False).replace("sources=", "sources=0"),
                  ops.stamp_text(tf, gpu=False).replace(tf.__version__, "2.0.0")):
        (tmp_path / "_nc_tf_ops.version").write_text(stamp)
        monkeypatch.setattr(ops, "build", _fake_build)
        monkeypatch.setenv("NENGO_CUDA_TF_OPS_CACHE", str(tmp_path / "cache"))
        assert ops.library_path(tf).parent == tmp_path / "cache"
    sources.unlink()
    with pytest.raises(RuntimeError, match="sources are not in .*csrc"):
        ops.library_path(tf)
