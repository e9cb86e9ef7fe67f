"""`make demo`: the NengoDL tutorial network on nengo.Simulator and nengo_cuda.

Runs 1.0 s on each simulator (nengo_cuda in float32 and float64), prints build
and run times, the speed-ups over Nengo and the largest difference of the
output probe from Nengo's.  Exits with status 1 when the float64 difference
exceeds 1e-9: float64 must reproduce nengo.Simulator to rounding.
"""

import sys

import harness
from networks import tutorial

import nengo_cuda
from nengo_cuda import _native

SECONDS = 1.0
DT = 0.001
FLOAT64_TOLERANCE = 1e-9


def main():
    bench = tutorial()
    steps = int(round(SECONDS / DT))
    print(f"nengo_cuda {nengo_cuda.__version__} demo: the NengoDL tutorial network, "
          f"{SECONDS} s ({steps} steps), CPU backend (OpenMP: {_native.openmp})\n")

    rows = harness.compare(harness.measure_all(bench, steps))
    fmt = harness.fmt
    print(harness.format_table(
        ["simulator", "build s", "run s", "build speed-up", "run speed-up",
         "max |output - nengo|"],
        [
            [row["simulator"], fmt(row["build_s"], ".3f"), fmt(row["best_run_s"], ".3f"),
             fmt(row["build_speedup"], ".2f"), fmt(row["run_speedup"], ".2f"),
             fmt(row["max_abs_diff"], ".2e")]
            for row in rows
        ],
    ))

    summary = rows[-1]["program_summary"]
    kinds = ", ".join(f"{kind} {n}" for kind, (n, _) in summary.items())
    n_instr = sum(n for n, _ in summary.values())
    in_python = summary.get("callback", (0, 0))[1]
    print(f"\nnengo_cuda program: {n_instr} instructions ({kinds}); "
          f"{in_python} operators run as Python callbacks")

    diff = next(r["max_abs_diff"] for r in rows if r["simulator"] == "nengo_cuda float64")
    if not diff <= FLOAT64_TOLERANCE:  # also catches nan
        print(f"FAIL: float64 output differs from nengo.Simulator by {diff:.3e} "
              f"(> {FLOAT64_TOLERANCE:g})")
        return 1
    print(f"OK: float64 output matches nengo.Simulator to {diff:.1e} "
          f"(limit {FLOAT64_TOLERANCE:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
