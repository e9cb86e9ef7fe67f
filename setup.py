"""Build nengo_cuda: the native module is compiled from csrc/ by CMake."""

import os
import pathlib
import runpy
import shutil
import subprocess
import sys

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

ROOT = pathlib.Path(__file__).parent.resolve()


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    """Configure and build CMakeLists.txt, placing _native next to the package."""

    def build_extension(self, ext):
        out_dir = pathlib.Path(self.get_ext_fullpath(ext.name)).parent.resolve()
        build_dir = pathlib.Path(self.build_temp).resolve() / ext.name
        _drop_stale_cache(build_dir)
        build_dir.mkdir(parents=True, exist_ok=True)
        cfg = os.environ.get("NC_BUILD_TYPE", "Release")
        args = [
            f"-DCMAKE_LIBRARY_OUTPUT_DIRECTORY={out_dir}",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-DCMAKE_BUILD_TYPE={cfg}",
            f"-DNC_SANITIZE={'ON' if os.environ.get('NC_SANITIZE') else 'OFF'}",
            f"-DNC_ENABLE_CUDA={'OFF' if os.environ.get('NC_NO_CUDA') else 'ON'}",
        ]
        try:
            import ninja  # noqa: F401

            args.append("-GNinja")
        except ImportError:
            pass
        subprocess.run(["cmake", str(ROOT), *args], cwd=build_dir, check=True)
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
        subprocess.run(
            ["cmake", "--build", ".", "--parallel", jobs], cwd=build_dir, check=True
        )
        # (an editable install builds in a temporary directory too: a checkout's
        # package reads csrc/ itself, and ignores these copies)
        copy_tf_op_sources(out_dir / "training" / "csrc")
        self.build_tf_ops(out_dir / "training")

    def build_tf_ops(self, out_dir):
        """The TensorFlow custom ops, when TensorFlow is importable here (else, as
        in pip's isolated build, they are built on first use from the sources
        installed with the package, see nengo_cuda/training/ops.py)."""
        for stale in ("_nc_tf_ops.so", "_nc_tf_ops.version"):  # (an earlier build's)
            (out_dir / stale).unlink(missing_ok=True)
        try:
            import tensorflow as tf
        except ImportError:
            return
        # the package just built (its _native; a checkout's has none in an
        # out-of-tree build), whose ops read the sources copied beside them
        sys.path.insert(0, str(out_dir.parent.parent))
        try:
            from nengo_cuda.training import ops

            gpu = ops.wants_gpu(tf)  # GPU kernels too: a CUDA build of TensorFlow and nvcc
            ops.build(out_dir / "_nc_tf_ops.so", tf, gpu)
            stamp = ops.stamp_text(tf, gpu)
        except Exception as e:  # noqa: BLE001 - optional: ops.py builds on first use
            print(f"nengo_cuda: TensorFlow ops not built at install ({e}); they are "
                  "built on first use", file=sys.stderr)
            return
        finally:
            sys.path.pop(0)
        (out_dir / "_nc_tf_ops.version").write_text(stamp)


def copy_tf_op_sources(dest):
    """The csrc/ files the TensorFlow ops compile from, installed with the
    package (nengo_cuda/training/op_sources.py lists them)."""
    sources = runpy.run_path(str(ROOT / "nengo_cuda" / "training" / "op_sources.py"))
    for rel in sources["SOURCES"]:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / "csrc" / rel, dest / rel)


def _drop_stale_cache(build_dir):
    """pip builds in the checkout's build/, each time in a new isolated
    environment: a CMake cache naming an earlier environment's cmake or
    ninja (deleted since) cannot be configured again."""
    cache = build_dir / "CMakeCache.txt"
    if not cache.exists():
        return
    tools = [line.split("=", 1)[1] for line in cache.read_text().splitlines()
             if line.startswith(("CMAKE_MAKE_PROGRAM:", "CMAKE_COMMAND:"))]
    if not all(os.path.exists(tool) for tool in tools):
        shutil.rmtree(build_dir)


setup(
    name="nengo_cuda",
    version="0.1.0.dev0",
    description="Fast simulator for Nengo models: native CPU and fused CUDA kernels",
    long_description=(ROOT / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["nengo_cuda", "nengo_cuda.*"]),
    ext_modules=[CMakeExtension("nengo_cuda._native")],
    cmdclass={"build_ext": CMakeBuild},
    install_requires=["nengo==4.1.0", "numpy>=1.23,<2.4", "scipy"],
    extras_require={
        "test": [
            "pytest>=7,<9",
            "pytest-allclose",
            "pytest-plt",
            "pytest-rng",
            "hypothesis",
            "matplotlib",
            # NengoSPA models in our tests and its own suite (make test-spa);
            # pinned: tests/conformance/spa_plugin.py lists its known failures
            "nengo-spa==2.0.0",
        ],
        "cuda": ["cupy-cuda13x"],
        # training and TensorNodes (nengo_cuda.training); tested on Linux CPU
        "tf": ["tensorflow-cpu==2.21.0"],
    },
    entry_points={
        "nengo.backends": [
            "nengo_cuda = nengo_cuda:Simulator",
            # fixed-precision variants (used by the conformance suite)
            "nengo_cuda_float64 = nengo_cuda.testing:Float64Simulator",
            "nengo_cuda_float32 = nengo_cuda.testing:Float32Simulator",
            # the CUDA backend (a GPU), and its host emulator
            "nengo_cuda_cuda_float32 = nengo_cuda.backends.cuda_testing:CudaFloat32Simulator",
            "nengo_cuda_cuda_float64 = nengo_cuda.backends.cuda_testing:CudaFloat64Simulator",
            "nengo_cuda_cuda_emulator = "
            "nengo_cuda.backends.cuda_testing:EmulatedCudaFloat32Simulator",
        ]
    },
    zip_safe=False,
)
