"""benchmarks/sass_counts.py: its parsers of cuobjdump's SASS and ptxas's
report, on text in their formats (compiling needs nvcc, disassembling
cuobjdump: neither is required here)."""

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from sass_counts import local_accesses, loops, main, parse_ptxas, parse_sass, table  # noqa: E402

SASS = """
\tcode for sm_90
\t\tFunction : _Z6kernelA
\t.headerflags\t@"EF_CUDA_VIRTUAL_SM(EF_CUDA_SM90)"
        /*0000*/                   LDC R1, c[0x0][0x28] ;                     /* 0x00000a00ff017b82 */
        /*0010*/                   S2R R0, SR_TID.X ;                         /* 0x0000000000007919 */
        /*0020*/                   IADD3 R0, R0, 0x1, RZ ;                    /* 0x0000000100007810 */
        /*0030*/                   ISETP.GE.AND P0, PT, R0, 0x8, PT ;         /* 0x000000080000780c */
        /*0040*/              @!P0 BRA 0x20 ;                                 /* 0xfffffff400008947 */
        /*0050*/                   FADD R2, R2, R3 ;                          /* 0x0000000302027221 */
        /*0060*/               @P0 BRA 0x10 ;                                 /* 0xfffffff000000947 */
        /*0070*/                   BRA 0x90 ;                                 /* 0x0000001000007947 */
        /*0080*/                   EXIT ;                                     /* 0x000000000000794d */
        /*0090*/                   BRA 0x90;                                  /* 0xfffffff000007947 */
        /*00a0*/                   NOP;                                       /* 0x0000000000007918 */
\t\t..........
\t\tFunction : _Z6kernelB
        /*0000*/                   EXIT ;                                     /* 0x000000000000794d */
\t\tFunction : _Z6kernelC
        /*0000*/                   STL [R1], R2 ;                             /* 0x0000000201007387 */
        /*0010*/               @P0 STL.64 [R1+0x8], R4 ;                      /* 0x0000080401000387 */
        /*0020*/                   LDL R3, [R1+0x4] ;                         /* 0x0000040001037983 */
        /*0030*/                   LDG.E R6, desc[UR4][R8.64] ;               /* 0x0000000408067981 */
        /*0040*/                   EXIT ;                                     /* 0x000000000000794d */
"""

PTXAS = """ptxas info    : Compiling entry function '_Z6kernelA' for 'sm_90'
ptxas info    : Function properties for _Z6kernelA
    8 bytes stack frame, 4 bytes spill stores, 4 bytes spill loads
ptxas info    : Used 70 registers, used 0 barriers, 8 bytes cumulative stack size
ptxas info    : Compiling entry function '_Z6kernelB' for 'sm_90'
ptxas info    : Function properties for _Z6kernelB
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 8 registers, used 0 barriers
"""


def test_parse_sass_and_loops():
    kernels = parse_sass(SASS)
    assert sorted(kernels) == ["_Z6kernelA", "_Z6kernelB", "_Z6kernelC"]
    a = kernels["_Z6kernelA"]
    assert len(a) == 10  # the NOP left out
    assert a[4] == (0x40, "@!P0 BRA 0x20")
    # two loops (inner 0x20-0x40, outer 0x10-0x60); the jump forward and the
    # self-loop at the end (a branch to itself, not backward) are not loops
    assert loops(a) == [(2, 4, 3), (1, 6, 6)]
    assert loops(kernels["_Z6kernelB"]) == []
    # local memory: predicated and wide accesses count, global ones do not
    assert local_accesses(kernels["_Z6kernelC"]) == (1, 2)
    assert local_accesses(a) == (0, 0)


def test_parse_ptxas_and_table():
    info = parse_ptxas(PTXAS)
    assert info["_Z6kernelA"] == {"stack": 8, "spill_stores": 4, "spill_loads": 4,
                                  "registers": 70}
    assert info["_Z6kernelB"]["registers"] == 8
    text = table(parse_sass(SASS), info, ["kernelA"])
    assert ("registers 70, stack 8, spills 4/4, local ld/st 0/0, instructions 10, "
            "loops 2-4 (3), 1-6 (6)") in text
    assert "kernelB" not in text
    assert table(parse_sass(SASS), info, ["nothing"]).startswith("no kernel matches")


@pytest.mark.skipif(shutil.which("nvcc") is None or shutil.which("cuobjdump") is None
                    or shutil.which("nvdisasm") is None,
                    reason="needs nvcc, cuobjdump and nvdisasm on PATH")
def test_counts_of_a_real_kernel(capsys):
    """Where the tools are there: the one-trial LIF update has one loop (the
    grid-stride body) and no spills."""
    main(["for_each_kernelINS0_10NeuronStepIfNS0_6models3LIFE"])
    out = capsys.readouterr().out
    assert "spills 0/0" in out and out.count("loops") == 1
