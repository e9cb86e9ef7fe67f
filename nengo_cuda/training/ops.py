"""Our TensorFlow custom ops (csrc/tf/nc_tf_ops.cc): build, load, gradients.

The library is compiled against the installed TensorFlow
(``tf.sysconfig.get_compile_flags()`` / ``get_link_flags()``), either at install
time (setup.py, when TensorFlow is present in the build's environment:
``nengo_cuda/training/_nc_tf_ops.so``, used by an installed package whose
stamp names the TensorFlow it runs with) or here on first use, into a cache
directory keyed by the sources, the TensorFlow version and the compiler
(``$NENGO_CUDA_TF_OPS_CACHE``, default ``~/.cache/nengo_cuda/tf_ops``): from a
checkout's csrc/, or in an installed package from the copies of
`op_sources.SOURCES` that setup.py installs (pip's isolated build has no
TensorFlow, so that is the usual way).  The kernels include csrc/kernels/
(the math the native simulator uses).

GPU kernels (csrc/tf/nc_tf_ops_gpu.cu.cc, compiled by nvcc, registered for
DEVICE_GPU) are added when TensorFlow is a CUDA build
(``tf.test.is_built_with_cuda()``) and nvcc is found (``$NVCC``, else ``nvcc``
on the PATH); otherwise the library has CPU kernels only.
``$NENGO_CUDA_TF_OPS_GPU`` = ``0`` never builds them, ``1`` builds them even for
a CPU-only TensorFlow (they then load but never run: a compile check).  The
architectures are ``$NENGO_CUDA_TF_OPS_ARCHS`` (CMake's syntax, default
``80-real;90-real;90-virtual`` as the main build).  The cache key includes
whether the GPU part was built, the nvcc version and the architectures.

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

from .. import neurons as dl_neurons
from ..lowering.common import per_element
from .op_sources import GPU_SOURCE, SOURCES

PACKAGE_DIR = pathlib.Path(__file__).resolve().parent
# a checkout's csrc/; an installed package has copies of SOURCES (setup.py)
SOURCE_ROOT = PACKAGE_DIR.parent.parent / "csrc"
INSTALLED = not (SOURCE_ROOT / "tf" / "nc_tf_ops.cc").exists()
if INSTALLED:
    SOURCE_ROOT = PACKAGE_DIR / "csrc"
DEFAULT_ARCHS = "80-real;90-real;90-virtual"

_lock = threading.Lock()
_module = None


def _tf():
    import tensorflow as tf  # noqa: PLC0415 - optional dependency, imported on use

    return tf


def find_nvcc():
    """nvcc's path ($NVCC, else on the PATH), or None."""
    nvcc = os.environ.get("NVCC") or shutil.which("nvcc")
    return nvcc if nvcc and os.path.exists(nvcc) else None


def wants_gpu(tf):
    """Whether the library gets GPU kernels: a CUDA build of TensorFlow and nvcc
    (``$NENGO_CUDA_TF_OPS_GPU`` = 0 / 1 overrides the TensorFlow check)."""
    env = os.environ.get("NENGO_CUDA_TF_OPS_GPU", "")
    if env == "0":
        return False
    if env != "1" and not tf.test.is_built_with_cuda():
        return False
    return find_nvcc() is not None


def compiler_env():
    """The environment for the compilers: ours without ``LD_PRELOAD`` (a
    sanitizer runtime preloaded for the tests, as `make sanitize` does, is not
    meant for them: nvcc crashes under ASan's)."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    return env


def _nvcc_output(nvcc, *args):
    proc = subprocess.run([nvcc, *args], capture_output=True, text=True, env=compiler_env())
    return proc.stdout + proc.stderr


def cuda_lib_dir(nvcc):
    """The directory of nvcc's libcudart_static.a (None when not found)."""
    candidates = [os.path.join(os.environ[v], d) for v in ("CUDA_HOME", "CUDA_PATH")
                  if os.environ.get(v) for d in ("lib64", "lib")]
    # nvcc --dryrun lists its own library directories (also through wrapper scripts)
    for line in _nvcc_output(nvcc, "--dryrun", "-x", "cu", "-c", os.devnull).splitlines():
        if "LIBRARIES=" in line:
            candidates += [tok.strip('"')[2:] for tok in line.split("=", 1)[1].split()
                           if tok.strip('"').startswith("-L")]
    real = pathlib.Path(nvcc).resolve().parent.parent
    candidates += [str(real / "lib64"), "/usr/local/cuda/lib64"]
    for d in candidates:
        if os.path.exists(os.path.join(d, "libcudart_static.a")):
            return os.path.normpath(d)
    return None


def arch_flags(archs=None):
    """nvcc -gencode flags for CMake-style architectures ("80-real;90-virtual")."""
    archs = archs or os.environ.get("NENGO_CUDA_TF_OPS_ARCHS") or DEFAULT_ARCHS
    if archs in ("native", "all", "all-major"):
        return [f"-arch={archs}"]
    flags = []
    for a in archs.replace(",", ";").split(";"):
        a = a.strip()
        if not a:
            continue
        num, _, kind = a.partition("-")
        codes = {"real": [f"sm_{num}"], "virtual": [f"compute_{num}"]}.get(
            kind, [f"sm_{num}", f"compute_{num}"])
        flags += [f"-gencode=arch=compute_{num},code=[{','.join(codes)}]"]
    return flags


def sources_digest():
    """A hash of the files the library compiles from (`SOURCES`)."""
    h = hashlib.sha256()
    for rel in SOURCES:
        h.update((SOURCE_ROOT / rel).read_bytes())
    return h.hexdigest()[:16]


def stamp_text(tf, gpu):
    """The stamp beside a library built at install: what it was built for."""
    return f"{tf.__version__}\ngpu={int(bool(gpu))}\nsources={sources_digest()}\n"


def _build_key(tf, gpu=None):
    gpu = wants_gpu(tf) if gpu is None else gpu
    h = hashlib.sha256()
    h.update(sources_digest().encode())
    h.update(tf.__version__.encode())
    h.update(" ".join(tf.sysconfig.get_compile_flags()).encode())
    h.update(os.environ.get("CXX", "c++").encode())
    h.update(f"gpu={int(bool(gpu))}".encode())
    if gpu:
        nvcc = find_nvcc()
        h.update(_nvcc_output(nvcc, "--version").encode())
        h.update(" ".join(arch_flags()).encode())
    return h.hexdigest()[:16]


def _run(cmd, what):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                          env=compiler_env())
    if proc.returncode != 0:
        raise RuntimeError(
            f"building nengo_cuda's TensorFlow ops failed ({what}):\n"
            + " ".join(str(c) for c in cmd) + "\n" + (proc.stderr + proc.stdout)[-4000:]
        )


def gpu_object_command(nvcc, out_obj, cxx=None):
    """The nvcc command that compiles the GPU kernels to an object (no TF headers)."""
    cmd = [nvcc, "-x", "cu", "-std=c++17", "-O3", "--fmad=false", "-Xcompiler", "-fPIC",
           *arch_flags(), f"-I{SOURCE_ROOT}", "-c", SOURCE_ROOT / GPU_SOURCE, "-o", out_obj]
    if cxx:
        cmd[1:1] = ["-ccbin", cxx]
    return cmd


def build(out_path, tf=None, gpu=None):
    """Compiles the op library to ``out_path`` (a temporary file, then renamed).

    ``gpu``: add the CUDA kernels (default: `wants_gpu`)."""
    tf = tf or _tf()
    gpu = wants_gpu(tf) if gpu is None else gpu
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if cxx is None:
        raise RuntimeError("building nengo_cuda's TensorFlow ops needs a C++17 compiler (c++)")
    out_path = pathlib.Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_suffix(f".{os.getpid()}.tmp")
    gpu_args = []
    obj = None
    if gpu:
        nvcc = find_nvcc()
        if nvcc is None:
            raise RuntimeError("building the GPU kernels needs nvcc ($NVCC or on the PATH)")
        libdir = cuda_lib_dir(nvcc)
        if libdir is None:
            raise RuntimeError(f"libcudart_static.a not found next to {nvcc} (set CUDA_HOME)")
        obj = out_path.with_suffix(f".{os.getpid()}.gpu.o")
        _run(gpu_object_command(nvcc, obj, os.environ.get("CXX")), "nvcc")
        # the static CUDA runtime: the library needs no libcudart of its own
        gpu_args = [obj, f"-L{libdir}", "-lcudart_static", "-ldl", "-lrt", "-lpthread"]
    cmd = [
        cxx, "-std=c++17", "-shared", "-fPIC", "-O2", "-w",
        f"-I{SOURCE_ROOT}", f"-DNC_TF_GPU={int(bool(gpu))}",
        *[f for f in tf.sysconfig.get_compile_flags() if not f.startswith("--std")],
        SOURCE_ROOT / "tf" / "nc_tf_ops.cc",
        *gpu_args,
        "-o", tmp,
        *tf.sysconfig.get_link_flags(),
    ]
    try:
        _run(cmd, "c++")
    finally:
        if obj is not None and obj.exists():
            obj.unlink()
    os.replace(tmp, out_path)
    return out_path


def library_path(tf=None):
    """The op library for the installed TensorFlow, building it if needed."""
    tf = tf or _tf()
    env = os.environ.get("NENGO_CUDA_TF_OPS_CACHE")
    cache = pathlib.Path(env) if env else pathlib.Path.home() / ".cache" / "nengo_cuda" / "tf_ops"
    # installed: the library setup.py built where TensorFlow was there, if
    # built for this TensorFlow from the installed sources (a checkout builds
    # its own: its sources may change)
    prebuilt = PACKAGE_DIR / "_nc_tf_ops.so"
    stamp = PACKAGE_DIR / "_nc_tf_ops.version"
    has_sources = (SOURCE_ROOT / "tf" / "nc_tf_ops.cc").exists()
    if (INSTALLED and has_sources and prebuilt.exists() and stamp.exists()
            and stamp.read_text() == stamp_text(tf, wants_gpu(tf))):
        return prebuilt
    if has_sources:
        gpu = wants_gpu(tf)
        path = cache / f"nc_tf_ops-{_build_key(tf, gpu)}{'-gpu' if gpu else ''}.so"
        if not path.exists():
            what = "with GPU kernels " if gpu else ""
            print(f"nengo_cuda: building the TensorFlow ops {what}(once) ...", file=sys.stderr)
            build(path, tf, gpu)
        return path
    raise RuntimeError(
        f"nengo_cuda's TensorFlow ops were not built for TensorFlow {tf.__version__} and "
        f"their sources are not in {SOURCE_ROOT}: reinstall nengo_cuda from its sources")


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
    if t is dl_neurons.SoftLIFRate:
        return "soft_lif_rate", ("tau_rc", "tau_ref", "amplitude", neuron_type.sigma)
    if t in (dl_neurons.LeakyReLU, dl_neurons.SpikingLeakyReLU):
        return "leaky_relu", ("amplitude", "negative_slope")
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
