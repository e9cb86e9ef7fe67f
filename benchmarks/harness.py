"""Timing helpers shared by `demo.py`, `run.py` and `profile.py`.

A *simulator variant* (`Variant`) is nengo.Simulator or nengo_cuda at one dtype
and minibatch size; `measure` builds it, runs it and times both phases, in this
process, and records the peak memory the process gained meanwhile.
"""

import gc
import math
import time
from dataclasses import dataclass, field

import numpy as np
import nengo
from nengo.builder import Model
from nengo.cache import get_default_decoder_cache

import nengo_cuda

REFERENCE = "nengo"


@dataclass(frozen=True)
class Variant:
    """A simulator to measure: Nengo's reference, or nengo_cuda at a dtype and minibatch."""

    simulator: str  # REFERENCE or "nengo_cuda"
    dtype: str = "float64"
    minibatch: int = 1

    @property
    def label(self):
        if self.simulator == REFERENCE:
            return REFERENCE
        mb = f" x{self.minibatch}" if self.minibatch > 1 else ""
        return f"{self.simulator} {self.dtype}{mb}"

    def make(self, net):
        if self.simulator == REFERENCE:
            return nengo.Simulator(net, progress_bar=False)
        return nengo_cuda.Simulator(
            net,
            progress_bar=False,
            dtype=self.dtype,
            minibatch_size=self.minibatch if self.minibatch > 1 else None,
        )


def variants(dtypes=("float32", "float64"), minibatches=(1,)):
    """nengo.Simulator, then nengo_cuda for every minibatch size and dtype."""
    return [Variant(REFERENCE)] + [
        Variant("nengo_cuda", dtype, mb) for mb in minibatches for dtype in dtypes
    ]


def warm_decoder_cache(net):
    """Builds ``net`` once, untimed, so every timed build finds its decoders cached.

    Otherwise the first simulator built pays for the solvers and the others do not.
    """
    Model(decoder_cache=get_default_decoder_cache()).build(net)


class PeakMemory:
    """Peak resident memory gained by this process inside ``with`` blocks (bytes).

    Linux only: resets the kernel's high-water mark (``/proc/self/clear_refs``)
    on entry and reads ``VmHWM`` on exit.  ``gained`` is None elsewhere.  Memory
    freed earlier and reused by the allocator is not counted, so this is a
    lower bound on what the block allocated.
    """

    gained = None
    _start = None

    @staticmethod
    def _status(key):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
        raise OSError(key)

    def __enter__(self):
        if self._start is not None:  # entered again: keep counting from the first entry
            return self
        gc.collect()
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self._start = self._status("VmRSS")
        except OSError:
            self._start = None
        return self

    def __exit__(self, *exc):
        if self._start is not None:
            try:
                self.gained = max(0, self._status("VmHWM") - self._start)
            except OSError:
                pass


@dataclass
class Measurement:
    """Build time, run times (one per repeat), probe data of trial 0, peak memory."""

    variant: Variant
    build_s: float
    run_s: list = field(default_factory=list)
    output: np.ndarray = None
    summary: dict = None  # nengo_cuda: program summary (kind -> (instructions, ops))
    peak_bytes: int = None

    @property
    def label(self):
        return self.variant.label

    @property
    def best_run_s(self):
        return min(self.run_s)


def time_build(variant, net):
    """Seconds to build ``variant`` on ``net`` (the simulator is closed again)."""
    gc.collect()
    start = time.perf_counter()
    sim = variant.make(net)
    elapsed = time.perf_counter() - start
    sim.close()
    return elapsed


def measure(variant, net, probe, steps, repeats=1, earlier_builds=()):
    """Builds ``variant`` on ``net``, then runs ``steps`` steps ``repeats`` times.

    Runs continue one after the other on the same simulator (no reset).  The
    build time is the fastest of this build and ``earlier_builds``.
    """
    with PeakMemory() as mem:
        start = time.perf_counter()
        sim = variant.make(net)
        result = Measurement(variant, min([time.perf_counter() - start, *earlier_builds]))
        with sim:
            for i in range(repeats):
                start = time.perf_counter()
                sim.run_steps(steps)
                result.run_s.append(time.perf_counter() - start)
                if i == 0:
                    data = sim.data[probe][:steps] if variant.minibatch == 1 else \
                        sim.data[probe][0, :steps]
                    result.output = np.array(data, dtype=np.float64)
            if hasattr(sim, "program"):
                result.summary = sim.program.summary()
        del sim
    result.peak_bytes = mem.gained
    return result


def measure_all(bench, steps, repeats=1, report=None, variant_list=None, build_budget_s=0.0):
    """`measure` of every variant on a `networks.BenchNetwork`, Nengo first.

    Builds are noisy on a shared machine, so before the measured round, Nengo
    and the minibatch-1 variants are built in interleaved rounds, each starting
    with another variant (at most 4 more builds each), until these rounds have
    taken ``build_budget_s``; the fastest build of each counts.  Fills the decoder cache first; ``report(variant)`` is
    called before each measured variant and ``report(None)`` after each.
    """
    warm_decoder_cache(bench.net)
    variant_list = variant_list or variants()
    builds = {v: [] for v in variant_list}
    single = [v for v in variant_list if v.minibatch == 1]
    start, rounds = time.perf_counter(), 0
    while time.perf_counter() - start < build_budget_s and rounds < 4:
        # each round starts with the next variant: the first build after the
        # untimed one is the fastest (warm allocator and caches)
        for v in single[rounds % len(single):] + single[: rounds % len(single)]:
            builds[v].append(time_build(v, bench.net))
        rounds += 1
    results = []
    for variant in variant_list:
        if report is not None:
            report(variant)
        results.append(
            measure(variant, bench.net, bench.probe, steps, repeats, builds[variant])
        )
        if report is not None:
            report(None)
    return results


def compare(results):
    """One dict per measurement: times, and ratios and output difference vs Nengo.

    ``results[0]`` must be Nengo's; its own ratios and difference are None.  A
    minibatch of k trials is compared with k sequential Nengo runs (Nengo's
    time for one run times k).  The difference (trial 0 against Nengo's run, which
    uses the same seed) is nan or inf when an output is nan or has the wrong shape.
    """
    ref = results[0]
    assert ref.label == REFERENCE, ref.label
    rows = []
    for r in results:
        is_ref = r is ref
        k = r.variant.minibatch
        rows.append({
            "simulator": r.label,
            "dtype": None if is_ref else r.variant.dtype,
            "minibatch": k,
            "build_s": r.build_s,
            "run_s": r.run_s,
            "best_run_s": r.best_run_s,
            "build_ratio": None if is_ref else r.build_s / ref.build_s,
            "build_speedup": None if is_ref else ratio(ref.build_s, r.build_s),
            "run_speedup": None if is_ref else ratio(k * ref.best_run_s, r.best_run_s),
            "max_abs_diff": None if is_ref else max_abs_diff(r.output, ref.output),
            "peak_bytes": r.peak_bytes,
            "program_summary": r.summary,
        })
    return rows


def max_abs_diff(a, b):
    """Largest absolute difference (inf when the shapes differ, nan if any is nan)."""
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def ratio(reference, value):
    """How many times faster ``value`` is than ``reference`` (both in seconds)."""
    return reference / value if value > 0 else float("inf")


def geomean(values):
    values = [v for v in values if v is not None and v > 0 and math.isfinite(v)]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else None


def format_table(headers, rows, left=1):
    """Plain-text table: the first ``left`` columns left-aligned, the others right-aligned."""
    cells = [list(map(str, headers))] + [list(map(str, row)) for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row):
        cells = [
            cell.ljust(w) if i < left else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths))
        ]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *map(line, cells[1:])])


def fmt(value, spec):
    """``format(value, spec)``, or "-" for None."""
    return "-" if value is None else format(value, spec)
