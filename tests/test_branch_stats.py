"""benchmarks/branch_stats.py: its counts of a warp's rare-branch runs."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from branch_stats import branch_counts  # noqa: E402


def test_branch_counts():
    spikes = np.zeros((2, 9, 70), dtype=bool)  # (the 9th trial and 6 neurons left out)
    spikes[0, 0:4, 0] = True  # lane 0 of warp 0 in trials 0-3
    spikes[0, 7, 5] = True  # lane 5 in trial 7
    spikes[0, :, 69] = True  # past the last whole warp: not counted
    spikes[1, :8, 32:64] = True  # step 1: every lane of warp 1 in every trial
    order, deferred, queue = branch_counts(spikes)
    # (step, warp) pairs: (0, 0): 5 trials, max 4 a lane, 5 items -> 1 round;
    # (0, 1): none; (1, 0): none; (1, 1): 8 trials, 8 a lane, 256 items -> 8 rounds
    assert order == pytest.approx((5 + 8) / 4)
    assert deferred == pytest.approx((4 + 8) / 4)
    assert queue == pytest.approx((1 + 8) / 4)
    # 4 trials a thread: (step, group, warp) triples with lane maxima 4, 1, 4, 4
    assert branch_counts(spikes, trials_per_thread=4)[1] == pytest.approx((4 + 1 + 4 + 4) / 8)


def test_branch_counts_needs_a_group_and_a_warp():
    with pytest.raises(ValueError, match="at least 8 trials and 32 neurons"):
        branch_counts(np.zeros((3, 4, 64), dtype=bool))
