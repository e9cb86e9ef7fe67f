"""Kernel-level counters of a few CUDA-backend steps, for Nsight Compute.

    ncu --clock-control none --profile-from-start off --section SpeedOfLight \
        --section Occupancy python3 benchmarks/device_ncu.py chain --minibatch 64

Builds a benchmark network (benchmarks/networks.py sizes: "large"), runs a
warm-up (graph capture, uploads), then marks ``--steps`` steps as the range
Nsight Compute profiles (cudaProfilerStart/Stop): every kernel those steps
launch, graph nodes included.  device_profile.py times launch groups without
counters; this is for why a kernel takes the time it does.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(1, str(Path(__file__).resolve().parent))


def main():
    import cupy  # noqa: PLC0415

    import nengo_cuda  # noqa: PLC0415
    import networks  # noqa: PLC0415
    from networks import build  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("network", choices=sorted(networks.SIZES))
    parser.add_argument("--minibatch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=1)
    args = parser.parse_args()
    b = build(args.network, **networks.SIZES[args.network]["large"])
    with nengo_cuda.Simulator(b.net, device="cuda", progress_bar=False,
                              minibatch_size=args.minibatch if args.minibatch > 1 else None) as sim:
        sim.run_steps(20)
        sim.run_steps(args.steps)  # the same graph shape as the profiled steps
        cupy.cuda.runtime.deviceSynchronize()
        cupy.cuda.profiler.start()
        sim.run_steps(args.steps)
        cupy.cuda.runtime.deviceSynchronize()
        cupy.cuda.profiler.stop()


if __name__ == "__main__":
    main()
