"""Our TensorFlow custom ops (csrc/tf/nc_tf_ops.cc): build, load, gradients.

The library is compiled against the installed TensorFlow
(``tf.sysconfig.get_compile_flags()`` / ``get_link_flags()``), either at install
time (setup.py, when TensorFlow is present: ``nengo_cuda/training/_nc_tf_ops*.so``)
or here on first use, into a cache directory keyed by the sources, the
TensorFlow version and the compiler (``$NENGO_CUDA_TF_OPS_CACHE``, default
``~/.cache/nengo_cuda/tf_ops``).  The kernels include csrc/kernels/ (the math
the native simulator uses).

Ops (see the C++ file): ``NcNeuronRate`` and its gradient ``NcNeuronRateGrad``,
``NcLowpassScan`` (a OneX linear filter over time; its gradient is the same
scan run backwards).
"""

import hashlib
import os
import pathlib
import shutil
import subprocess
import sys
import threading

import numpy as np
import nengo

from ..lowering.common import per_element

PACKAGE_DIR = pathlib.Path(__file__).resolve().parent
SOURCE_ROOT = PACKAGE_DIR.parent.parent / "csrc"
SOURCES = ("tf/nc_tf_ops.cc", "kernels/neuron_rates.h", "kernels/neurons.h",
           "kernels/linear_filter.h", "common/host_device.h")

_lock = threading.Lock()
_module = None


def _tf():
    import tensorflow as tf  # noqa: PLC0415 - optional dependency, imported on use

    return tf


def _build_key(tf):
    h = hashlib.sha256()
    for rel in SOURCES:
        h.update((SOURCE_ROOT / rel).read_bytes())
    h.update(tf.__version__.encode())
    h.update(" ".join(tf.sysconfig.get_compile_flags()).encode())
    h.update(os.environ.get("CXX", "c++").encode())
    return h.hexdigest()[:16]


def build(out_path, tf=None):
    """Compiles the op library to ``out_path`` (a temporary file, then renamed)."""
    tf = tf or _tf()
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if cxx is None:
        raise RuntimeError("building nengo_cuda's TensorFlow ops needs a C++17 compiler (c++)")
    out_path = pathlib.Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_suffix(f".{os.getpid()}.tmp")
    cmd = [
        cxx, "-std=c++17", "-shared", "-fPIC", "-O2", "-w",
        f"-I{SOURCE_ROOT}",
        *[f for f in tf.sysconfig.get_compile_flags() if not f.startswith("--std")],
        str(SOURCE_ROOT / "tf" / "nc_tf_ops.cc"),
        "-o", str(tmp),
        *tf.sysconfig.get_link_flags(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(
            "building nengo_cuda's TensorFlow ops failed:\n" + " ".join(cmd) + "\n"
            + proc.stderr[-4000:]
        )
    os.replace(tmp, out_path)
    return out_path


def library_path(tf=None):
    """The op library for the installed TensorFlow, building it if needed."""
    tf = tf or _tf()
    env = os.environ.get("NENGO_CUDA_TF_OPS_CACHE")
    cache = pathlib.Path(env) if env else pathlib.Path.home() / ".cache" / "nengo_cuda" / "tf_ops"
    if (SOURCE_ROOT / "tf" / "nc_tf_ops.cc").exists():
        path = cache / f"nc_tf_ops-{_build_key(tf)}.so"
        if not path.exists():
            print("nengo_cuda: building the TensorFlow ops (once) ...", file=sys.stderr)
            build(path, tf)
        return path
    # installed without sources: the library setup.py built
    prebuilt = PACKAGE_DIR / "_nc_tf_ops.so"
    stamp = PACKAGE_DIR / "_nc_tf_ops.version"
    if prebuilt.exists() and stamp.exists() and stamp.read_text().strip() == tf.__version__:
        return prebuilt
    raise RuntimeError(
        "nengo_cuda's TensorFlow ops were not built for TensorFlow "
        f"{tf.__version__}; reinstall nengo_cuda with `pip install nengo_cuda[tf]`"
    )


def load():
    """The loaded op module (builds, loads and registers gradients once)."""
    global _module
    if _module is not None:
        return _module
    with _lock:
        if _module is None:
            tf = _tf()
            module = tf.load_op_library(str(library_path(tf)))
            _register_gradients(tf, module)
            _module = module
    return _module


def _register_gradients(tf, module):
    @tf.RegisterGradient("NcNeuronRate")
    def _rate_grad(op, dy):
        kind = op.get_attr("kind").decode()
        return module.nc_neuron_rate_grad(dy, op.inputs[0], op.inputs[1], kind=kind), None

    @tf.RegisterGradient("NcLowpassScan")
    def _scan_grad(op, dy):
        # y_t = x_t = a x_{t-1} + b u_t.  With s_t = dL/dx_t = dy_t + a s_{t+1}
        # (the same scan, backwards, from 0): dL/du_t = b s_t, dL/dx0 = a s_0.
        u, x0, a, b = op.inputs
        forward_reverse = op.get_attr("reverse")
        s = module.nc_lowpass_scan(
            dy, tf.zeros_like(x0), a, tf.ones_like(b), reverse=not forward_reverse
        )
        first = s[:, -1] if forward_reverse else s[:, 0]
        return b * s, a * first, None, None


# -- neuron types -> rate kinds -------------------------------------------------
def rate_spec(neuron_type, lif_smoothing=None):
    """(kind, [4, n] parameter rows) of the rate equivalent of ``neuron_type``."""
    t = type(neuron_type)
    if t in (nengo.LIF, nengo.LIFRate):
        if lif_smoothing:
            return "soft_lif_rate", ("tau_rc", "tau_ref", "amplitude", lif_smoothing)
        return "lif_rate", ("tau_rc", "tau_ref", "amplitude")
    if t in (nengo.RectifiedLinear, nengo.SpikingRectifiedLinear):
        return "rectified_linear", ("amplitude",)
    if t is nengo.Sigmoid:
        return "sigmoid", ("tau_ref",)
    if t is nengo.Tanh:
        return "tanh", ("tau_ref",)
    return None


def rate_params(neuron_type, names, n, dtype):
    rows = np.zeros((4, n), dtype=dtype)
    for i, name in enumerate(names):
        value = name if not isinstance(name, str) else getattr(neuron_type, name)
        rows[i] = per_element(value, n)
    return rows


def neuron_rate(J, kind, params):
    """Rates of neurons with input ``J`` (last axis: neurons); differentiable in J."""
    return load().nc_neuron_rate(J, params, kind=kind)


def lowpass_scan(u, x0, a, b, reverse=False):
    """x_t = a x_{t-1} + b u_t over axis 1 of ``u`` ([batch, steps, n]); returns x."""
    return load().nc_lowpass_scan(u, x0, a, b, reverse=reverse)
