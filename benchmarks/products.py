"""Nanoseconds per block of one `dot_inc` instruction of many equal blocks (CPU backend).

    python benchmarks/products.py                          # encoders and decoders of 1-D ensembles
    python benchmarks/products.py --rows 100 --cols 1 2 4 --minibatch 1 4

Merged encoder and decoder products of many small ensembles are hundreds of
blocks in one instruction (docs/benchmarks.md item 26).  This times that
instruction alone on buffers of its own: ``--total`` rows in all, split into
blocks of ``--rows`` rows x ``--cols`` columns; shared weights (A, row-major),
per-trial X, Y set from a shared bias I (encoders: Y = I + A X) or incremented
(``--no-init``: decoders).  Best of ``--repeats`` runs of ``--steps`` steps.
Alternate processes of two builds to compare them: this machine's times vary
by 10-30 % from minute to minute.
"""

import argparse
import time

import numpy as np

from nengo_cuda import _native
from nengo_cuda.testing import simd_level

PROGRAMS = {"float32": _native.ProgramFloat32, "float64": _native.ProgramFloat64}


def time_blocks(dtype, n_blocks, rows, cols, n_trials, init, steps, repeats, density=None):
    """Best seconds per step of a dot_inc of ``n_blocks`` blocks of rows x cols.

    ``density``: X is spikes (1 / dt in that share of its entries, else 0), not
    normal values.
    """
    n = n_blocks * rows
    n_shared, n_state = n * cols + n, n + n_blocks * cols
    rng = np.random.RandomState(0)
    fbuf = rng.randn(n_shared + n_trials * n_state).astype(dtype)
    if density is not None:
        for t in range(n_trials):
            start = n_shared + t * n_state  # a trial's X, then its Y
            xt = fbuf[start:start + n_blocks * cols]
            xt[:] = np.where(rng.rand(xt.size) < density, 1000.0, 0.0)
    ibuf = np.zeros(n_trials, dtype=np.int64)
    program = PROGRAMS[dtype](fbuf, n_shared, n_state, ibuf, 0, 1, n_trials, 0.001)
    a, bias, x, y = 0, n * cols, n_shared, n_shared + n_blocks * cols
    blocks = range(n_blocks)
    ints = dict(rows=[rows] * n_blocks, cols=[cols] * n_blocks,
                A=[a + k * rows * cols for k in blocks], A_rs=[cols] * n_blocks,
                A_cs=[1] * n_blocks, X=[x + k * cols for k in blocks], X_s=[1] * n_blocks,
                Y=[y + k * rows for k in blocks], Y_s=[1] * n_blocks,
                A_volatile=[0] * n_blocks)  # as the planner marks Nengo's weights
    if init:
        ints.update(I=[bias + k * rows for k in blocks], I_s=[1] * n_blocks)
    program.add("dot_inc", ints, {}, {})
    program.run(steps, [], [])  # warm up
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        program.run(steps, [], [])
        best = min(best, time.perf_counter() - start)
    return best / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[8, 16, 50, 100, 400])
    parser.add_argument("--cols", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--total", type=int, default=16000, help="rows of all blocks")
    parser.add_argument("--no-init", action="store_true",
                        help="Y += A X (decoders); default Y = I + A X (encoders)")
    parser.add_argument("--transpose", action="store_true",
                        help="blocks of --cols rows x --rows columns (decoders' shape)")
    parser.add_argument("--minibatch", type=int, nargs="+", default=[1])
    parser.add_argument("--density", type=float, default=None,
                        help="X as spikes: this share of its entries 1 / dt, the rest 0")
    parser.add_argument("--dtype", default="float32", choices=sorted(PROGRAMS))
    parser.add_argument("--simd", default="avx512", choices=["baseline", "avx2", "avx512"])
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    shape = "cols x rows" if args.transpose else "rows x cols"
    print(f"{args.dtype}, simd <= {args.simd}, {args.total} rows in all, "
          f"{'Y += A X' if args.no_init else 'Y = I + A X'}; ns per block ({shape})"
          + ("" if args.density is None else f"; X spikes, density {args.density}"))
    with simd_level(args.simd):
        for trials in args.minibatch:
            for cols in args.cols:
                cells = []
                for rows in args.rows:
                    r, c = (cols, rows) if args.transpose else (rows, cols)
                    n_blocks = max(args.total // rows, 1)
                    seconds = time_blocks(args.dtype, n_blocks, r, c, trials, not args.no_init,
                                          args.steps, args.repeats, args.density)
                    cells.append(f"{r}x{c} {1e9 * seconds / n_blocks:7.1f}")
                print(f"minibatch {trials:3d}: " + "  ".join(cells), flush=True)


if __name__ == "__main__":
    main()
