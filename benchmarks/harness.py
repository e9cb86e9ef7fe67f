"""Timing helpers shared by `demo.py` and `run.py`.

A *simulator variant* is a label and a factory ``make(net) -> simulator``;
`measure` builds it, runs it and times both phases, in this process.
"""

import time
from dataclasses import dataclass, field

import numpy as np
import nengo
from nengo.builder import Model
from nengo.cache import get_default_decoder_cache

import nengo_cuda

REFERENCE = "nengo"


def variants(dtypes=("float32", "float64")):
    """(label, factory) for nengo.Simulator and nengo_cuda.Simulator per dtype.

    nengo_cuda runs one trial (no ``minibatch_size``); progress bars are off.
    """
    out = [(REFERENCE, lambda net: nengo.Simulator(net, progress_bar=False))]
    for dtype in dtypes:
        out.append(
            (
                f"nengo_cuda {dtype}",
                lambda net, dtype=dtype: nengo_cuda.Simulator(
                    net, progress_bar=False, dtype=dtype
                ),
            )
        )
    return out


def warm_decoder_cache(net):
    """Builds ``net`` once, untimed, so every timed build finds its decoders cached.

    Otherwise the first simulator built pays for the solvers and the others do not.
    """
    Model(decoder_cache=get_default_decoder_cache()).build(net)


@dataclass
class Measurement:
    """Build time, run times (one per repeat) and the probe's data after the first run."""

    label: str
    build_s: float
    run_s: list = field(default_factory=list)
    output: np.ndarray = None
    summary: dict = None  # nengo_cuda: program summary (kind -> (instructions, ops))

    @property
    def best_run_s(self):
        return min(self.run_s)


def measure(label, make, net, probe, steps, repeats=1):
    """Builds with ``make(net)``, then runs ``steps`` steps ``repeats`` times.

    Runs continue one after the other on the same simulator (no reset).
    """
    start = time.perf_counter()
    sim = make(net)
    result = Measurement(label, time.perf_counter() - start)
    with sim:
        for i in range(repeats):
            start = time.perf_counter()
            sim.run_steps(steps)
            result.run_s.append(time.perf_counter() - start)
            if i == 0:
                result.output = np.array(sim.data[probe][:steps], dtype=np.float64)
        if hasattr(sim, "program"):
            result.summary = sim.program.summary()
    return result


def measure_all(bench, steps, repeats=1, report=None):
    """`measure` of every variant on a `networks.BenchNetwork`, Nengo first.

    Fills the decoder cache first; ``report(label)`` is called before each variant.
    """
    warm_decoder_cache(bench.net)
    results = []
    for label, make in variants():
        if report is not None:
            report(label)
        results.append(measure(label, make, bench.net, bench.probe, steps, repeats))
    return results


def compare(results):
    """One dict per measurement: times, and speed-ups and output difference vs Nengo.

    ``results[0]`` must be Nengo's; its own speed-ups and difference are None.
    The difference is nan or inf when an output is nan or has the wrong shape.
    """
    ref = results[0]
    assert ref.label == REFERENCE, ref.label
    rows = []
    for r in results:
        is_ref = r is ref
        rows.append({
            "simulator": r.label,
            "build_s": r.build_s,
            "run_s": r.run_s,
            "best_run_s": r.best_run_s,
            "build_speedup": None if is_ref else ratio(ref.build_s, r.build_s),
            "run_speedup": None if is_ref else ratio(ref.best_run_s, r.best_run_s),
            "max_abs_diff": None if is_ref else max_abs_diff(r.output, ref.output),
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
