"""Static instruction counts of device kernels, from their SASS (no GPU needed).

    python3 benchmarks/sass_counts.py "NeuronTrialsIfNS0_6models3LIFELi8" "NeuronStepIfNS0_6models3LIFE"

Compiles csrc/cuda/program_cuda_f32.cu (or _f64 with --dtype float64) for
sm_90 as CMake does (``-fmad=false``), with ``-Xptxas -v``; disassembles the
cubin with ``cuobjdump -sass`` and prints, for each kernel whose mangled name
contains one of the patterns: registers, stack and spill bytes, local
memory loads and stores (LDL, STL), instructions (NOPs left out), and its
loops (backward branches: first and last instruction, length).  A kernel's outermost loop is its grid-stride body, so
its length is the instructions a thread runs per element when no branch is
skipped; docs/cuda.md's SASS counts come from here.  cuobjdump and nvdisasm
come with the CUDA toolkit, or from PyPI (``nvidia-cuda-cuobjdump``,
``nvidia-cuda-nvdisasm``; ``--tools DIR`` adds their bin folder to PATH).
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_FUNCTION = re.compile(r"Function : (\S+)")
_INSTRUCTION = re.compile(r"^\s+/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;")
_BRANCH = re.compile(r"\bBRA (?:`?\(?!?U?P\w+\)?, )?0x([0-9a-f]+)")
_ENTRY = re.compile(r"Compiling entry function '([^']+)'")
_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_REGISTERS = re.compile(r"Used (\d+) registers")


def parse_sass(text):
    """{kernel: [(address, instruction)]} from ``cuobjdump -sass`` output, NOPs
    left out (they pad the end of each kernel)."""
    kernels, current = {}, None
    for line in text.splitlines():
        m = _FUNCTION.search(line)
        if m:
            current = kernels.setdefault(m.group(1), [])
            continue
        m = _INSTRUCTION.match(line)
        if m and current is not None and m.group(2) != "NOP":
            current.append((int(m.group(1), 16), m.group(2)))
    return kernels


def loops(instructions):
    """(first, last, length) of each backward branch's loop, by instruction
    index, innermost first as they end."""
    index = {address: i for i, (address, _) in enumerate(instructions)}
    found = []
    for i, (address, text) in enumerate(instructions):
        m = _BRANCH.search(text)
        if m:
            target = int(m.group(1), 16)
            if target < address and target in index:
                found.append((index[target], i, i - index[target] + 1))
    return found


def local_accesses(instructions):
    """(loads, stores) of local memory (LDL, STL): a stack array indexed at
    run time, or spills, goes through L1 this way."""
    ops = [text.split()[1] if text.startswith("@") else text.split()[0]
           for _, text in instructions]
    return (sum(op.startswith("LDL") for op in ops), sum(op.startswith("STL") for op in ops))


def parse_ptxas(text):
    """{kernel: {"registers", "stack", "spill_stores", "spill_loads"}} from
    ``-Xptxas -v`` output."""
    info, current = {}, None
    for line in text.splitlines():
        m = _ENTRY.search(line)
        if m:
            current = info.setdefault(m.group(1), {})
            continue
        if current is None:
            continue
        m = _FRAME.search(line)
        if m:
            current.update(stack=int(m.group(1)), spill_stores=int(m.group(2)),
                           spill_loads=int(m.group(3)))
        m = _REGISTERS.search(line)
        if m:
            current["registers"] = int(m.group(1))
    return info


def compile_cubin(dtype, arch, out_dir):
    """Compiles the device program for one float type; returns (cubin path, ptxas output)."""
    import pybind11  # noqa: PLC0415

    source = ROOT / "csrc" / "cuda" / f"program_cuda_{'f32' if dtype == 'float32' else 'f64'}.cu"
    cubin = Path(out_dir) / f"{source.stem}.cubin"
    cmd = ["nvcc", "-std=c++17", "-O3", "--expt-relaxed-constexpr", "-fmad=false",
           f"-arch={arch}", "-cubin", "-Xptxas", "-v", "-I", str(ROOT / "csrc"),
           "-I", sysconfig.get_paths()["include"], "-I", pybind11.get_include(),
           "-DNC_WITH_CUDA=1", "-o", str(cubin), str(source)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"nvcc failed:\n{done.stderr[-4000:]}")
    return cubin, done.stderr


def table(kernels, info, patterns):
    rows = []
    for name in sorted(kernels):
        if not any(p in name for p in patterns):
            continue
        ins, k = kernels[name], info.get(name, {})
        found = ", ".join(f"{a}-{b} ({n})" for a, b, n in loops(ins)) or "-"
        ldl, stl = local_accesses(ins)
        rows.append(f"{name}\n    registers {k.get('registers', '?')}, stack {k.get('stack', '?')}, "
                    f"spills {k.get('spill_stores', '?')}/{k.get('spill_loads', '?')}, "
                    f"local ld/st {ldl}/{stl}, instructions {len(ins)}, loops {found}")
    return "\n".join(rows) if rows else "no kernel matches " + ", ".join(patterns)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("patterns", nargs="+", help="substrings of mangled kernel names")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--arch", default="sm_90")
    parser.add_argument("--tools", action="append", default=[],
                        help="a folder holding cuobjdump or nvdisasm (may repeat)")
    args = parser.parse_args(argv)
    os.environ["PATH"] = os.pathsep.join([*args.tools, os.environ["PATH"]])
    for tool in ("nvcc", "cuobjdump", "nvdisasm"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found on PATH (see this script's docstring)")
    with tempfile.TemporaryDirectory() as tmp:
        cubin, ptxas = compile_cubin(args.dtype, args.arch, tmp)
        sass = subprocess.run(["cuobjdump", "-sass", str(cubin)], capture_output=True, text=True,
                              check=True).stdout
    print(table(parse_sass(sass), parse_ptxas(ptxas), args.patterns))


if __name__ == "__main__":
    main()
