"""Names for a build's operators and signals that are the same in every build
of a network.

Nengo's optimizer merges operators and signals in the iteration order of sets,
so which merged base holds a signal, and where in it, changes from one build
of a network to the next (even within one process).  Before the optimizer
runs, the builder's operators are in build order (the network's objects in
their order), the same in every build: `BuildKeys` names each operator by its
position there and each base signal by the first operator slot (position in
``op.all_signals``) that uses it (one no operator uses, such as an unconnected
input Node's output, by its place in ``model.sig``), then follows the
optimizer's signal replacements to the view of a merged base that holds each
signal now.
Saved simulation state is keyed by these names (`nengo_cuda.training.parameter_io`).
"""

import functools
import re

from nengo.builder.signal import Signal


class BuildKeys:
    """Stable names of ``operators`` (the builder's, before any merge) and of
    their base signals (and of the other signals in ``sig``, the builder's
    ``model.sig``).

    Attributes
    ----------
    ops : dict
        ``{operator: key}``; operators the optimizer merged keep their entry
        (no longer in the build).
    signals : dict
        ``{key: signal}``, in build order: each base signal, or after
        `replace`, the view that holds its elements now.
    written : set
        Keys of the signals that the builder's operators write.
    """

    def __init__(self, operators, sig=None):
        self.ops = {op: str(i) for i, op in enumerate(operators)}
        bases = {}
        for i, op in enumerate(operators):
            for j, signal in enumerate(op.all_signals):
                bases.setdefault(signal.base, f"{i}.{j}")
        # signals no operator uses that the simulator places too (an input
        # Node's output, a probed signal), by their object's place in the
        # builder's ``model.sig`` (build order) and name
        for i, signals in enumerate((sig or {}).values()):
            for name, signal in signals.items():
                if isinstance(signal, Signal):
                    bases.setdefault(signal.base, f"sig{i}.{name}")
        self.signals = {key: base for base, key in bases.items()}
        self._bases = dict(self.signals)  # (the builder's, for `names`)
        # which the builder's operators write (the same in every build, where
        # whether a base lies in the per-trial state depends on the merges:
        # a constant merged with written signals does)
        written = {s.base for op in operators for s in op.sets + op.incs + op.updates}
        self.written = {key for base, key in bases.items() if base in written}

    @functools.cached_property
    def names(self):
        """``{key: describe(signal)}`` of the builder's signals (worked out when
        first asked: only saved state needs them)."""
        return {key: describe(base) for key, base in self._bases.items()}

    def add_parts(self, splits):
        """Names the parts of split random operators (`nengo_cuda.random_splits`:
        ``{operator: Split}``) after the operator's own name, where it has one
        (one the optimizer merged has none).  Their drawn signals are scratch,
        not state: no name."""
        for op, split in splits.items():
            key = self.ops.get(op)
            if key is not None:
                self.ops[split.source] = f"{key}.source"
                self.ops[split.consumer] = f"{key}.consumer"

    def replace(self, replacements):
        """Follows ``{signal: replacement}`` (Nengo's optimizer's
        ``sig_replacements``, where a replacement may be replaced again)."""
        for key, sig in self.signals.items():
            while sig in replacements:
                sig = replacements[sig]
            self.signals[key] = sig


def describe(sig):
    """A signal's name (without memory addresses, which differ between
    processes), shape and dtype kind."""
    name = re.sub(r"(at )?0x[0-9a-fA-F]+", "", str(sig.name))
    return f"{name} {tuple(sig.shape)} {sig.dtype.kind}"
