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
`SparseParameters` are the values of sparse matrices, which live outside the
pools.
"""

import nengo
import numpy as np
from nengo.transforms import SparseMatrix

from .layout import FLOAT
from .lowering.dot import _csr


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

    def kept(self):
        """What `set` keeps (for pickling): ``{base: (mask, values)}``."""
        return {base: (mask.copy(), values.copy()) for base, (mask, values) in self._kept.items()}

    def keep(self, kept):
        """Keeps what `kept` gave (the state bases hold the values already)."""
        self._kept = {base: (mask.copy(), values.copy()) for base, (mask, values) in kept.items()}

    def forget(self):
        """The built values are the parameters again (a reset that undoes training)."""
        self._kept = {}


class SparseParameters:
    """The values of sparse matrices (`nengo.Sparse` transforms' weights):
    parameters like the others (trained, saved, loaded, kept or undone by
    resets), which live outside the pools: in the layout's CSR matrix (what
    ``sim.signals`` gives and Nengo's own steps read) and in the native
    instructions that multiply by it (their table ``"data"``).  A value is
    the CSR matrix's ``data`` (scipy's order: row by row).

    ``layout``: the `SignalLayout`; ``program``: the planned `Program`;
    ``backend``: the backend running it.
    """

    def __init__(self, layout, program, backend):
        self.layout = layout
        self.backend = backend
        self.signals = [base for base, (_, shared, _) in layout.placement.items()
                        if base.sparse and shared and _is_csr(self._matrix(base))]
        self._instrs = {}  # id(signal) -> indices of the instructions reading it
        for i, instr in enumerate(program.instructions):
            if instr.kind == "sparse_dot_inc":
                self._instrs.setdefault(id(instr.ops[0].A), []).append(i)
        self._changed = {}  # id(signal) -> signal, for those not at their built values

    def __contains__(self, sig):
        return any(sig is s for s in self.signals)

    def _matrix(self, sig):
        return self.layout.base_array(sig, 0)

    def value(self, sig):
        """``sig``'s values now (a copy)."""
        return np.array(self._matrix(sig).data)

    def built(self, sig):
        """``sig``'s built values (those of a fresh layout, in the order the
        native instructions got them)."""
        return np.array(_csr(sig).data)

    def indices(self, sig):
        """The values' places in the matrix: ``(nonzeros, 2)`` rows and columns."""
        m = self._matrix(sig)
        rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
        return np.stack([rows, m.indices], axis=1).astype(np.int64)

    def current(self, sig):
        """``sig`` as a `nengo.transforms.SparseMatrix` of its values now, or
        None where they are the built ones (or ``sig`` is not one of these)."""
        if id(sig) not in self._changed:
            return None
        return SparseMatrix(self.indices(sig), self.value(sig), sig.shape)

    def write(self, sig, values):
        """Sets ``sig``'s values, where Python and the native program read them."""
        m = self._matrix(sig)
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        if values.shape != m.data.shape:
            raise ValueError(f"{sig}: {values.size} values for its {m.data.size} nonzeros")
        writeable = m.data.flags.writeable  # (read-only to users, as Nengo's)
        m.data.setflags(write=True)
        m.data[...] = values
        m.data.setflags(write=writeable)
        for index in self._instrs.get(id(sig), ()):
            self.backend.set_table(index, "data", values)
        if np.array_equal(values, self.built(sig)):
            self._changed.pop(id(sig), None)
        else:
            self._changed[id(sig)] = sig

    def changed(self):
        """``{signal: values}`` of those not at their built values (copies)."""
        return {sig: self.value(sig) for sig in self._changed.values()}

    def after_reset(self, kept=None):
        """After `SignalLayout.reset` (fresh matrices of the built values): the
        ``kept`` values (`changed` from before) again, or else the native
        copies built again too."""
        for sig in list(self._changed.values()):
            self.write(sig, self.built(sig) if kept is None else kept[sig])


def _is_csr(matrix):
    # (Nengo allocates a dense array in place of a sparse one without scipy)
    return getattr(matrix, "format", None) == "csr"


class LearnedParameters:
    """The signals that online learning rules change: a PES/BCM/Oja/RLS
    connection's weights, a Voja rule's encoders.

    Operators write them, so the layout keeps one copy per trial (each trial
    learns on its own), but NengoDL treats them as parameters, not as run
    state: what a run learned stays through ``run(..., stateful=False)``,
    ``reset(include_trainable=False)`` and between the minibatches of
    ``predict``; ``sim.data`` shows it and ``save_params`` saves it.  This
    class reads (`values`) and writes (`write`) them in all trials at once.

    ``layout``: the `SignalLayout`; ``model``: the built `nengo.builder.Model`.
    """

    def __init__(self, layout, model):
        self.layout = layout
        self.signals = {}  # (object, builder name) -> signal
        for obj in model.sig:
            if isinstance(obj, nengo.connection.LearningRule):
                target = _learned_target(obj)
                if target is None:
                    continue
                sig = model.sig[target[0]].get(target[1])
                if (sig is not None and sig.base in layout.placement
                        and layout.pool_of(sig) == FLOAT and not layout.is_shared(sig)):
                    self.signals[target] = sig
        self._ids = {id(sig) for sig in self.signals.values()}
        parts = [layout.addresses(sig).ravel() - layout.f_shared
                 for sig in self.signals.values()]
        # element offsets in one trial's float state block, signal after signal
        self._index = np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def __bool__(self):
        return bool(self.signals)

    def is_learned(self, sig):
        return id(sig) in self._ids

    def _state(self):
        layout = self.layout
        return layout.fbuf[layout.f_shared : layout.f_shared + layout.n_trials
                           * layout.f_state].reshape(layout.n_trials, layout.f_state)

    def values(self):
        """All learned elements now: (n_trials, n_elements), a copy."""
        return self._state()[:, self._index].copy()

    def write(self, values):
        """Writes `values` output back (after a restore of the state)."""
        if self._index.size:
            self._state()[:, self._index] = values


def _learned_target(rule):
    """(object, name in ``model.sig[object]``) of the signal ``rule`` changes."""
    if rule.modifies in ("weights", "decoders"):
        return rule.connection, "weights"
    if rule.modifies == "encoders":
        return rule.connection.post_obj, "encoders"
    return None
