"""The GPU part of the TensorFlow custom ops (csrc/tf/nc_tf_ops_gpu.cu.cc).

Without a GPU these check the build: the CUDA kernels compile with nvcc (when
nvcc is found; skipped otherwise), and the whole library links against the
installed TensorFlow's headers and library with the GPU kernels registered
(a CPU-only TensorFlow ships the same headers; the kernels then never run).
With a GPU and a CUDA build of TensorFlow, the GPU kernels must equal the CPU
kernels."""

import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from nengo_cuda.training import ops  # noqa: E402

needs_nvcc = pytest.mark.skipif(ops.find_nvcc() is None, reason="nvcc not found")


def test_arch_flags():
    assert ops.arch_flags("80-real;90-virtual") == [
        "-gencode=arch=compute_80,code=[sm_80]",
        "-gencode=arch=compute_90,code=[compute_90]",
    ]
    assert ops.arch_flags("86") == ["-gencode=arch=compute_86,code=[sm_86,compute_86]"]
    assert ops.arch_flags("native") == ["-arch=native"]


def test_gpu_switch_and_cache_key(monkeypatch):
    monkeypatch.setenv("NENGO_CUDA_TF_OPS_GPU", "0")
    assert not ops.wants_gpu(tf)
    monkeypatch.delenv("NENGO_CUDA_TF_OPS_GPU")
    # automatic: a CUDA build of TensorFlow and nvcc
    assert ops.wants_gpu(tf) == (tf.test.is_built_with_cuda() and ops.find_nvcc() is not None)
    monkeypatch.setenv("NVCC", "/nonexistent/nvcc")
    monkeypatch.setenv("PATH", "")
    monkeypatch.setenv("NENGO_CUDA_TF_OPS_GPU", "1")
    assert not ops.wants_gpu(tf)  # no nvcc: CPU kernels only, whatever TensorFlow is


@needs_nvcc
def test_cache_key_depends_on_gpu_part():
    assert ops._build_key(tf, gpu=True) != ops._build_key(tf, gpu=False)


@pytest.fixture(scope="module")
def gpu_library(tmp_path_factory):
    """The op library with the GPU kernels, built against the installed TensorFlow
    (one architecture, to keep it short)."""
    if ops.find_nvcc() is None:
        pytest.skip("nvcc not found")
    if shutil.which(os.environ.get("CXX", "c++")) is None:
        pytest.skip("no C++ compiler")
    old = os.environ.get("NENGO_CUDA_TF_OPS_ARCHS")
    os.environ["NENGO_CUDA_TF_OPS_ARCHS"] = "80-real"
    try:
        return ops.build(tmp_path_factory.mktemp("tf_ops_gpu") / "nc_tf_ops_gpu.so", tf, gpu=True)
    finally:
        if old is None:
            del os.environ["NENGO_CUDA_TF_OPS_ARCHS"]
        else:
            os.environ["NENGO_CUDA_TF_OPS_ARCHS"] = old


@needs_nvcc
def test_gpu_object_compiles_with_nvcc(tmp_path, monkeypatch):
    """nvcc compiles the CUDA kernels (a real compile to an object, with device
    code, not a syntax check)."""
    monkeypatch.setenv("NENGO_CUDA_TF_OPS_ARCHS", "80-real")
    obj = tmp_path / "gpu.o"
    cmd = [str(c) for c in ops.gpu_object_command(ops.find_nvcc(), obj)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ops.compiler_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = subprocess.run(["nm", "-C", "--defined-only", str(obj)], capture_output=True,
                           text=True, env=ops.compiler_env()).stdout
    for name in ("nc_tf_gpu::neuron_rate(", "nc_tf_gpu::lowpass_scan(",
                 "neuron_rate_kernel<float, true>", "lowpass_scan_kernel<double>"):
        assert name in names, name


def _run_python(code):
    # a fresh process: this one may have loaded the CPU-only library (same op names)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_gpu_library_registers_gpu_kernels_and_cpu_kernels_work(gpu_library):
    out = _run_python(f"""
        import numpy as np, tensorflow as tf
        from tensorflow.python.framework import kernels
        m = tf.load_op_library({str(gpu_library)!r})
        for op in ("NcNeuronRate", "NcNeuronRateGrad", "NcLowpassScan"):
            regs = sorted((k.device_type, k.constraint[0].allowed_values.list.type[0])
                          for k in kernels.get_registered_kernels_for_op(op).kernel)
            print(op, regs)
        with tf.device("/CPU:0"):
            J = tf.constant([[0.5, 1.5, 3.0]], tf.float64)
            p = tf.constant([[0.02] * 3, [0.002] * 3, [1.0] * 3, [0.0] * 3], tf.float64)
            print("rate", m.nc_neuron_rate(J, p, kind="lif_rate").numpy().tolist())
    """)
    f32, f64 = 1, 2  # DataType enum values
    for op in ("NcNeuronRate", "NcNeuronRateGrad", "NcLowpassScan"):
        assert f"{op} {sorted([('CPU', f32), ('CPU', f64), ('GPU', f32), ('GPU', f64)])}" in out
    rate = eval(out.split("rate ", 1)[1])[0]  # noqa: S307 - our own output
    j = np.array([0.5, 1.5, 3.0]) - 1
    expected = np.where(j > 0, 1 / (0.002 + 0.02 * np.log1p(1 / np.maximum(j, 1e-300))), 0)
    np.testing.assert_allclose(rate, expected, rtol=1e-12)


def test_gpu_kernels_equal_cpu_kernels(gpu_library):
    """On a GPU with a CUDA build of TensorFlow (skipped otherwise)."""
    if not tf.test.is_built_with_cuda() or not tf.config.list_physical_devices("GPU"):
        pytest.skip("needs a CUDA build of TensorFlow and a GPU")
    out = _run_python(f"""
        import numpy as np, tensorflow as tf
        m = tf.load_op_library({str(gpu_library)!r})
        rng = np.random.RandomState(0)
        worst = 0.0
        for dtype in (np.float32, np.float64):
            J = rng.uniform(-3, 6, size=(5, 1000)).astype(dtype)
            dy = rng.normal(size=J.shape).astype(dtype)
            p = np.stack([np.full(1000, v) for v in (0.02, 0.002, 1.0, 0.05)]).astype(dtype)
            u = rng.normal(size=(3, 50, 1000)).astype(dtype)
            x0 = rng.normal(size=(3, 1000)).astype(dtype)
            a = rng.uniform(0.5, 1, 1000).astype(dtype)
            b = (1 - a).astype(dtype)
            res = {{}}
            for dev in ("/CPU:0", "/GPU:0"):
                with tf.device(dev):
                    r = [m.nc_neuron_rate(J, p, kind=k) for k in
                         ("lif_rate", "soft_lif_rate", "rectified_linear", "sigmoid", "tanh",
                          "leaky_relu")]
                    g = [m.nc_neuron_rate_grad(dy, J, p, kind=k) for k in
                         ("lif_rate", "soft_lif_rate", "rectified_linear", "sigmoid", "tanh",
                          "leaky_relu")]
                    s = [m.nc_lowpass_scan(u, x0, a, b, reverse=rev) for rev in (False, True)]
                    assert all(dev[1:4] in t.device for t in r + g + s), [t.device for t in r]
                    res[dev] = [t.numpy() for t in r + g + s]
            tol = 1e-5 if dtype == np.float32 else 1e-12
            for c, gpu in zip(res["/CPU:0"], res["/GPU:0"]):
                np.testing.assert_allclose(gpu, c, rtol=tol, atol=tol)
        print("ok")
    """)
    assert "ok" in out
