"""Which signals are parameters, and the parameters that live in state bases.

A parameter is a float signal that no operator writes: encoders, biases,
weights, decoders, transforms.  Most lie in the layout's shared region (one
copy for all trials).  But Nengo's optimizer merges the signals an operator
kind reads: one merged Copy may read the biases of two ensembles and a
synapse's output, so the biases sit in a base that the synapse writes, which
the layout places per trial.  Those elements are parameters all the same: they
train, save and load, and keep their trained values through the resets that
keep parameters, where the base's initial value would undo them.
`StateParameters` keeps such values and writes them back after each reset.
"""

import numpy as np

from .layout import FLOAT


class StateParameters:
    """``layout``: the `SignalLayout`; ``ops``: the step order's operators;
    ``fed``: signals that data feeds write (input Nodes' outputs)."""

    def __init__(self, layout, ops, fed):
        self.layout = layout
        self._writes = [s for op in ops for s in op.sets + op.incs + op.updates] + list(fed)
        self._written = None  # base -> bool mask of the elements something writes
        self._kept = {}  # base -> (mask, values) set by `set`

    def is_parameter(self, sig):
        """Whether ``sig`` is a float signal that no operator (or data feed)
        writes, in the shared region or in a state base."""
        layout = self.layout
        if (sig is None or sig.sparse or sig.base not in layout.placement
                or layout.pool_of(sig) != FLOAT):
            return False
        return layout.is_shared(sig) or self.in_state(sig)

    def in_state(self, sig):
        """Whether parameter ``sig`` lies in a state (per-trial) base."""
        if self.layout.is_shared(sig):
            return False
        if self._written is None:
            self._written = {}
            for s in self._writes:
                if s.base in self.layout.placement and not self.layout.is_shared(s):
                    mask = self._written.setdefault(s.base, np.zeros(s.base.size, dtype=bool))
                    mask[self.offsets(s)] = True
        mask = self._written.get(sig.base)
        return mask is None or not mask[self.offsets(sig)].any()

    def offsets(self, sig):
        """The element offsets of ``sig`` in its base."""
        layout = self.layout
        return (layout.addresses(sig) - layout.base_address(sig.base)).ravel()

    def write(self, sig, value):
        """Writes parameter ``sig``'s value: in the shared region, or (merged into
        a state base) in every trial, kept through resets (`set`)."""
        if self.layout.is_shared(sig):
            self.layout.writable(sig)[...] = value
        else:
            self.set(sig.base, self.offsets(sig), np.ravel(value))

    def set(self, base, offsets, values):
        """Writes parameter values at ``offsets`` of state base ``base`` in every
        trial, and keeps them for `rewrite`."""
        mask, kept = self._kept.setdefault(
            base, (np.zeros(base.size, dtype=bool), np.zeros(base.size)))
        mask[offsets] = True
        kept[offsets] = values
        for trial in range(self.layout.n_trials):
            self.layout.writable(base, trial).reshape(-1)[offsets] = values

    def rewrite(self):
        """After the state was reset to its initial values: the kept parameters."""
        for base, (mask, kept) in self._kept.items():
            for trial in range(self.layout.n_trials):
                self.layout.writable(base, trial).reshape(-1)[mask] = kept[mask]

    def forget(self):
        """The built values are the parameters again (a reset that undoes training)."""
        self._kept = {}
