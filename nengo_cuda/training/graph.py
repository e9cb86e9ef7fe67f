"""The model's step loop as TensorFlow operations, for training.

`TrainingGraph` walks the simulator's step order (the order the planner and
the native loop use) once per time step and applies each Nengo operator to
tensors: signals are tensors per base signal (shared bases: ``(size,)``,
constant or trainable; state bases: ``(minibatch, size)``), views are index
gathers/scatters into their base.  Spiking neurons run as their rate
equivalents through our custom ops (`nengo_cuda.training.ops`), synapses as
their state-space recurrences, TensorNodes call their ``tensor_func``; other
processes and Python Nodes run on the host through ``tf.numpy_function``.

Trainable parameters are `tf.Variable` per base signal, initialised from the
simulator's buffers; `TrainingGraph.write_back` copies them into the buffers,
so ``sim.run`` afterwards simulates the trained network.
"""

import contextlib

import numpy as np
import nengo
import tensorflow as tf
from nengo.builder.neurons import SimNeurons
from nengo.builder.node import SimPyFunc
from nengo.builder.processes import SimProcess
from nengo.exceptions import BuildError, SimulationError

from ..layout import FLOAT
from ..lowering.dot import _csr
from . import ops as nc_ops
from .convolution import convolve
from .host_process import HostProcess, host_time
from .tensor_node import is_tensor_node_func


_SPIKE_WRAPPERS = (nengo.RegularSpiking, nengo.PoissonSpiking, nengo.StochasticSpiking)
_HOST_STEP = "host step"  # a neuron type without a rate equivalent (_host_neurons)


class _Index:
    """Where a signal's elements lie in its base: full, a slice, or gathered."""

    def __init__(self, idx, base_size):
        self.idx = np.asarray(idx, dtype=np.int64).ravel()
        n = self.idx.size
        if n == base_size and np.array_equal(self.idx, np.arange(n)):
            self.kind = "full"
        elif n > 0 and np.array_equal(self.idx, np.arange(self.idx[0], self.idx[0] + n)):
            self.kind, self.start, self.stop = "slice", int(self.idx[0]), int(self.idx[0]) + n
        else:
            self.kind = "gather"


class TrainingGraph:
    """Differentiable forward pass of a `nengo_cuda.Simulator`'s model.

    Parameters
    ----------
    sim : nengo_cuda.Simulator
    trainable : iterable of Signal
        Signals whose elements are trained (views of shared bases).
    lif_smoothing : float or None
        Use NengoDL's SoftLIFRate (this sigma) instead of LIFRate for LIF neurons.
    use_loop : bool
        Run the steps in a `tf.while_loop` (True) or unrolled (see `__call__`).
    spiking : bool
        Spiking neurons spike (each type runs its own step, no gradient flows
        through it) instead of running as their rate equivalents: NengoDL's
        ``configure_settings(learning_phase=False)``, inference mode in ``fit`` too.
    """

    def __init__(self, sim, trainable, lif_smoothing=None, use_loop=True, spiking=False):
        self.sim = sim
        self.use_loop = use_loop
        self._state = None
        self.model = sim.model
        self.layout = sim.layout
        self.dt = sim.dt
        self.dtype = tf.as_dtype(sim.dtype)
        self.np_dtype = np.dtype(sim.dtype)
        self.lif_smoothing = lif_smoothing
        self.spiking = spiking
        self.ops = [op for op in sim.step_order]
        producers = sim._input_producers()
        self.fed_ops = {id(op): node for node, op in producers.items() if op is not None}
        self.constant_inputs = [n for n, op in producers.items() if op is None]
        self.input_nodes = dict(sim._input_nodes)
        self._index = {}
        self._neuron_params = {}
        self._filters = {}
        self._host_processes = {}  # (id(op), batch) -> HostProcess
        self.host_error = None  # the last exception of a host function (host_errors)

        # trainable bases -> (variable, mask or None, constant part or None)
        masks = {}
        # trainable views merged into state bases (nengo_cuda.parameters):
        # base -> (variable, offsets); they enter the loop through its initial
        # state (`_with_parameters`), and no operator writes them
        offsets = {}
        self.trained_signals = []  # those of ``trainable`` that are trained
        # sparse matrices' values (`nengo_cuda.parameters.SparseParameters`):
        # id(signal) -> (signal, variable); the untrained ones are variables
        # too (``trainable=False``), so that `reload` takes what load_params wrote
        trained_sparse = {id(sig) for sig in trainable if sig.sparse}
        self.sparse_variables = {
            id(sig): (sig, tf.Variable(sim.sparse.value(sig).astype(self.np_dtype),
                                       trainable=id(sig) in trained_sparse,
                                       name=_var_name(sig) + "_data"))
            for sig in sim.sparse.signals}
        for sig in trainable:
            base = sig.base
            if sig.sparse:
                continue
            if self.layout.pool_of(sig) != FLOAT or not sim.parameters.is_parameter(sig):
                continue  # written by an operator (e.g. a learning rule): not trained
            self.trained_signals.append(sig)
            if not self.layout.is_shared(sig):
                offsets.setdefault(base, []).append(self._idx(sig).idx.ravel())
                continue
            mask = masks.setdefault(base, np.zeros(base.size, dtype=bool))
            mask[self._idx(sig).idx] = True
        self.state_parameters = {}
        for base, parts in offsets.items():
            idx = np.unique(np.concatenate(parts))
            value = self.layout.base_array(base, 0).reshape(-1)[idx]
            var = tf.Variable(value.astype(self.np_dtype), name=_var_name(base) + "_parameters")
            self.state_parameters[base] = (var, idx)
        self._handed_out = None  # the values written last, once handed_out (below)
        self.variables = {}
        for base, mask in masks.items():
            value = self.layout.base_array(base, 0).reshape(-1)
            var = tf.Variable(value.astype(self.np_dtype), name=_var_name(base))
            if mask.all():
                self.variables[base] = (var, None, None)
            else:
                m = mask.astype(self.np_dtype)
                self.variables[base] = (var, tf.constant(m), tf.constant(value * (1 - m)))

    @property
    def trainable_variables(self):
        return ([v for v, _, _ in self.variables.values()]
                + [v for v, _ in self.state_parameters.values()]
                + [v for _, v in self.sparse_variables.values() if v.trainable])

    def trained_count(self):
        """How many numbers training changes: a variable over a base that
        Nengo's optimizer merged with untrained signals trains its mask only."""
        return (sum(int(var.shape.num_elements()) if mask is None else int(mask.numpy().sum())
                    for var, mask, _ in self.variables.values())
                + sum(len(idx) for _, idx in self.state_parameters.values())
                + sum(int(v.shape.num_elements())
                      for _, v in self.sparse_variables.values() if v.trainable))

    def handed_out(self):
        """Records that user code holds the variables (``sim.keras_model.weights``
        ...): from now on `pull_assignments` looks for its own assignments."""
        if self._handed_out is None:
            self._handed_out = self._values()

    def pull_assignments(self):
        """Writes the variables that user code assigned
        (``sim.keras_model.weights[0].assign(...)``) since they were last
        written or read into the simulator's buffers: in NengoDL these are the
        variables the simulation reads, so the assignment reaches ``sim.run``,
        ``sim.data`` and ``save_params`` here too.  Only after the variables
        were handed out; then it compares them with the values written last,
        at every run (a copy of the parameters kept on the host)."""
        if self._handed_out is None:
            return
        changed = {id(var) for var, last in zip(self.trainable_variables, self._handed_out)
                   if not np.array_equal(var.numpy(), last, equal_nan=True)}
        if changed:
            self.write_back(changed)

    def _values(self):
        return [np.array(var.numpy()) for var in self.trainable_variables]

    def _written(self):
        if self._handed_out is not None:
            self._handed_out = self._values()

    def write_back(self, only=None):
        """Copies the trained values into the simulator's buffers (``only``:
        the variables with these ids)."""
        for base, (var, mask, _) in self.variables.items():
            if only is not None and id(var) not in only:
                continue
            dst = self.layout.base_array(base, 0).reshape(-1)
            value = var.numpy()
            if mask is None:
                dst[...] = value
            else:
                m = mask.numpy().astype(bool)
                dst[m] = value[m]
        for base, (var, idx) in self.state_parameters.items():
            if only is None or id(var) in only:
                self.sim.parameters.set(base, idx, var.numpy())
        for sig, var in self.sparse_variables.values():
            if var.trainable and (only is None or id(var) in only):
                self.sim.sparse.write(sig, var.numpy())
        self._written()

    def reload(self):
        """Re-reads the trainable values from the simulator's buffers."""
        for base, (var, _, _) in self.variables.items():
            var.assign(self.layout.base_array(base, 0).reshape(-1).astype(self.np_dtype))
        for base, (var, idx) in self.state_parameters.items():
            var.assign(self.layout.base_array(base, 0).reshape(-1)[idx].astype(self.np_dtype))
        for sig, var in self.sparse_variables.values():
            var.assign(self.sim.sparse.value(sig).astype(self.np_dtype))
        self._written()

    def _with_parameters(self, base, value):
        """A state base's ``(batch, size)`` value with its trainable parameter
        elements (`state_parameters`) taken from their variable, for every trial."""
        if base not in self.state_parameters:
            return value
        var, idx = self.state_parameters[base]
        cols = tf.broadcast_to(var[:, None], [idx.size, self.batch])
        return tf.transpose(tf.tensor_scatter_nd_update(tf.transpose(value), idx[:, None], cols))

    # -- signal access ------------------------------------------------------
    def _idx(self, sig):
        key = id(sig)
        if key not in self._index:
            addr = self.layout.addresses(sig) - self.layout.base_address(sig.base)
            self._index[key] = (sig, _Index(addr, sig.base.size))
        return self._index[key][1]

    def _batched(self, sig):
        return not self.layout.is_shared(sig)

    def _base(self, vals, base):
        if base in vals:
            return vals[base]
        if self.layout.pool_of(base) != FLOAT:
            raise BuildError(f"training cannot use the non-float signal {base}")
        if base in self.variables:
            var, mask, const = self.variables[base]
            value = var if mask is None else var * mask + const
        elif self.layout.is_shared(base):
            value = tf.constant(self.layout.base_array(base, 0).reshape(-1))
        else:
            init = np.asarray(base.initial_value, dtype=self.np_dtype).reshape(1, -1)
            value = tf.tile(tf.constant(init), [self.batch, 1])
        vals[base] = value
        return value

    def read(self, vals, sig):
        """The signal's value: ``(batch,) + shape`` (state) or ``shape`` (shared)."""
        T = self._base(vals, sig.base)
        ix = self._idx(sig)
        if ix.kind == "slice":
            n = ix.stop - ix.start
            T = tf.slice(T, [0, ix.start], [-1, n]) if T.shape.rank == 2 else tf.slice(T, [ix.start], [n])
        elif ix.kind == "gather":
            T = tf.gather(T, ix.idx, axis=-1)
        shape = ([self.batch] if self._batched(sig) else []) + list(sig.shape)
        return T if T.shape.as_list() == shape else tf.reshape(T, shape)

    def write(self, vals, sig, value, inc=False, sub=None):
        """Sets (or increments) the elements of ``sig`` (or ``sig[sub]``)."""
        if not self._batched(sig):
            raise BuildError(f"training cannot write the shared signal {sig}")
        base = sig.base
        T = self._base(vals, base)
        ix = self._idx(sig)
        idx = ix.idx if sub is None else ix.idx.reshape(sig.shape)[sub].ravel()
        if sub is not None:
            ix = _Index(idx, base.size)
        n = idx.size
        if not isinstance(value, (tf.Tensor, tf.Variable)) or value.dtype != self.dtype:
            value = tf.cast(value, self.dtype)
        count = value.shape.num_elements()
        if count == self.batch * n and value.shape.rank >= 1 and value.shape[0] == self.batch:
            v = value if value.shape.as_list() == [self.batch, n] else tf.reshape(value, [self.batch, n])
        elif count == n:
            v = tf.broadcast_to(tf.reshape(value, [1, n]), [self.batch, n])
        else:
            shape = list(np.empty(sig.shape)[sub].shape) if sub is not None else list(sig.shape)
            v = tf.reshape(tf.broadcast_to(value, [self.batch] + shape), [self.batch, n])
        if ix.kind == "full":
            new = T + v if inc else v
        elif ix.kind == "slice":
            size = T.shape[1]
            mid = tf.slice(T, [0, ix.start], [-1, n]) + v if inc else v
            parts = ([tf.slice(T, [0, 0], [-1, ix.start])] if ix.start > 0 else []) + [mid]
            if ix.stop < size:
                parts.append(tf.slice(T, [0, ix.stop], [-1, size - ix.stop]))
            new = tf.concat(parts, axis=1) if len(parts) > 1 else mid
        else:
            Tt, vt = tf.transpose(T), tf.transpose(v)
            fn = tf.tensor_scatter_nd_add if inc else tf.tensor_scatter_nd_update
            new = tf.transpose(fn(Tt, idx[:, None], vt))
        vals[base] = new

    # -- the forward pass ----------------------------------------------------
    def __call__(self, inputs, n_steps, probes, training=None, init=None, t0=None,
                 return_state=False):
        """Runs ``n_steps`` steps from the initial state (or from ``init``).

        inputs : {Node: tensor (batch, n_steps, size_out)} for input Nodes.
        probes : list of Probe; returns {probe: tensor (batch, n_steps, size)}.
        training : bool or None
            Passed to TensorNodes' Keras layers (Dropout drops, BatchNormalization
            uses the minibatch's statistics), as NengoDL's ``fit`` does; None:
            True, except where neurons spike (``spiking``: NengoDL's inference
            mode always, ``learning_phase=False``).
        init : list of tensors, optional
            The state to start from: one ``(batch, base.size)`` tensor per base of
            `state_bases` (default: every signal's initial value).
        t0 : int or scalar tensor, optional
            Steps already simulated (the time of step ``k`` is ``(t0 + k + 1) dt``).
        return_state : bool
            Also return the final state (a list like ``init``).

        With ``use_loop`` (the default) the steps run in a `tf.while_loop` whose
        loop variables are the model's state (every non-shared base signal), so
        the graph holds one step whatever ``n_steps`` is; otherwise the steps are
        unrolled (a graph ``n_steps`` times larger, sometimes faster to run).
        """
        self.batch = int(next(iter(inputs.values())).shape[0]) if inputs else self.sim.n_trials
        # (Keras layers of TensorNodes get it: Dropout, ...)
        self.training = (not self.spiking) if training is None else training
        feeds = {node: tf.cast(x, self.dtype) for node, x in inputs.items()}
        n_steps = int(n_steps)
        t0 = None if t0 is None else tf.cast(t0, self.dtype)
        state = self.state_bases()
        init_vals = {} if init is None else {b: tf.cast(v, self.dtype) for b, v in zip(state, init)}
        init_values = [self._with_parameters(base, self._base(dict(init_vals), base))
                       for base in state]
        if not self.use_loop or n_steps == 1:
            vals = dict(zip(state, init_values))
            outputs = {p: [] for p in probes}
            for k in range(n_steps):
                t = tf.constant((k + 1) * self.dt, dtype=self.dtype)
                if t0 is not None:
                    t = (t0 + (k + 1)) * tf.constant(self.dt, dtype=self.dtype)
                self._one_step(vals, t, {node: x[:, k] for node, x in feeds.items()})
                for p in probes:
                    outputs[p].append(self._probe_value(vals, p))
            outs = {p: tf.stack(v, axis=1) for p, v in outputs.items()}
            if not return_state:
                return outs
            return outs, [self._base(vals, base) for base in state]

        arrays = [tf.TensorArray(self.dtype, size=n_steps, element_shape=[self.batch, _probe_size(self.model, p)])
                  for p in probes]

        def body(k, values, arrays):
            vals = dict(zip(state, values))
            steps_done = tf.cast(k + 1, self.dtype) if t0 is None else t0 + tf.cast(k + 1, self.dtype)
            t = steps_done * tf.constant(self.dt, self.dtype)
            self._one_step(vals, t, {node: tf.gather(x, k, axis=1) for node, x in feeds.items()})
            arrays = [a.write(k, self._probe_value(vals, p)) for a, p in zip(arrays, probes)]
            return k + 1, [vals[base] for base in state], arrays

        _, final, arrays = tf.while_loop(
            lambda k, *_: k < n_steps, body, (tf.constant(0), init_values, arrays),
            maximum_iterations=n_steps)
        outs = {p: tf.transpose(a.stack(), [1, 0, 2]) for p, a in zip(probes, arrays)}
        return (outs, list(final)) if return_state else outs

    def _on_host(self, fn):
        """``fn`` for ``tf.numpy_function``, keeping the exception it raises:
        TensorFlow reports it as an UnknownError (see `host_errors`)."""
        def call(*args):
            try:
                return fn(*args)
            except Exception as e:
                self.host_error = e
                raise
        return call

    @contextlib.contextmanager
    def host_errors(self):
        """Runs the graph: an error inside a host function (a Node's function, a
        process, a neuron step) is raised as itself (e.g. Nengo's
        SimulationError), not as TensorFlow's UnknownError around it."""
        self.host_error = None
        try:
            yield
        except tf.errors.OpError as e:
            error, self.host_error = self.host_error, None
            if error is None:
                raise
            raise error from e

    def state_bases(self):
        """The bases of the simulation state, in the order of ``init`` (see `__call__`)."""
        return self._state_bases()

    def read_state(self):
        """The simulator's current state as ``init`` values ``(n_trials, size)``."""
        n = self.sim.n_trials
        return [np.stack([self.layout.base_array(b, t).reshape(-1) for t in range(n)])
                .astype(self.np_dtype) for b in self.state_bases()]

    def initial_state(self):
        """The initial state as ``init`` values ``(n_trials, size)`` (what
        ``init=None`` starts from; parameters are applied on top)."""
        n = self.sim.n_trials
        return [np.tile(np.asarray(b.initial_value, dtype=self.np_dtype).reshape(1, -1), (n, 1))
                for b in self.state_bases()]

    def learned_masks(self):
        """Per base of `state_bases`, a bool mask of the elements that online
        learning rules change (`nengo_cuda.parameters.LearnedParameters`: what
        a run learns is kept, as NengoDL keeps it), or None without any."""
        bases = self.state_bases()
        masks = {}
        for sig in self.sim.learned.signals.values():
            if sig.base in bases:
                mask = masks.setdefault(sig.base, np.zeros(sig.base.size, dtype=bool))
                mask[self.sim.parameters.offsets(sig)] = True
        if not masks:
            return None
        return [masks.get(b, np.zeros(b.size, dtype=bool)) for b in bases]

    def write_learned(self, masks, values):
        """Writes the learned elements (`learned_masks`) of a final state."""
        for base, mask, value in zip(self.state_bases(), masks, values):
            if mask.any():
                value = np.asarray(value)
                for t in range(self.sim.n_trials):
                    self.layout.base_array(base, t).reshape(-1)[mask] = value[t][mask]

    def write_state(self, values):
        """Writes a final state (see `__call__`) into the simulator's buffers."""
        for base, value in zip(self.state_bases(), values):
            value = np.asarray(value)
            for t in range(self.sim.n_trials):
                self.layout.base_array(base, t)[...] = value[t].reshape(base.shape)

    def _state_bases(self):
        """The non-shared float bases the step reads or writes (the loop state)."""
        if self._state is None:
            sigs = [s for op in self.ops for s in op.all_signals]
            sigs += [self.model.sig[p]["in"] for p in self.model.probes]
            sigs += list(self.input_nodes.values())
            bases = {}
            for sig in sigs:
                if self.layout.pool_of(sig) == FLOAT and not self.layout.is_shared(sig):
                    bases.setdefault(sig.base, None)
            self._state = list(bases)
        return self._state

    def _probe_value(self, vals, probe):
        """The probed signal, ``(batch, size)``: a shared signal (e.g. a
        connection's constant weights) is the same in every trial."""
        sig = self.model.sig[probe]["in"]
        if sig.sparse:  # a Sparse transform's weights (`probes.SparseRecording`), dense
            entry = self.sparse_variables.get(id(sig))
            if entry is None:
                dense = tf.constant(np.asarray(sig.initial_value.toarray(), self.np_dtype))
            else:
                dense = tf.scatter_nd(self.sim.sparse.indices(sig), entry[1], sig.shape)
            return tf.tile(tf.reshape(dense, [1, -1]), [self.batch, 1])
        return tf.reshape(self._per_trial(vals, sig), [self.batch, -1])

    def _one_step(self, vals, t, x_k):
        """One simulator step on ``vals``; ``x_k``: {input Node: (batch, size) values}."""
        for node in self.constant_inputs:
            if node in x_k:
                self.write(vals, self.input_nodes[node], x_k[node])
        for op in self.ops:
            node = self.fed_ops.get(id(op))
            if node is not None and node in x_k:
                self.write(vals, self.input_nodes[node], x_k[node])
                continue
            name = type(op).__name__
            handler = getattr(self, "_op_" + name, None)
            if handler is None:
                raise BuildError(f"training does not support the operator {name} ({op})")
            handler(op, vals, t)

    def _op_TimeUpdate(self, op, vals, t):
        if op.time is not None:
            self.write(vals, op.time, t)

    def _op_Reset(self, op, vals, t):
        value = np.asarray(op.value, dtype=self.np_dtype)
        self.write(vals, op.dst, tf.constant(np.broadcast_to(value, op.dst.shape)))

    def _op_SimProbe(self, op, vals, t):
        pass

    def _op_Copy(self, op, vals, t):
        src = self.read(vals, op.src)
        if op.src_slice is not None:
            sel = np.arange(op.src.size).reshape(op.src.shape)[op.src_slice].ravel()
            flat = tf.reshape(src, ([self.batch] if self._batched(op.src) else []) + [-1])
            src = tf.gather(flat, sel, axis=-1)
        if not self._batched(op.src):
            src = tf.broadcast_to(tf.reshape(src, [1, -1]), [self.batch, int(np.prod(src.shape))])
        self.write(vals, op.dst, src, inc=op.inc, sub=op.dst_slice)

    def _op_ElementwiseInc(self, op, vals, t):
        A, X = self.read(vals, op.A), self.read(vals, op.X)
        a_b, x_b = self._batched(op.A), self._batched(op.X)
        if a_b != x_b:
            # align the shared operand's axes with the signal axes (not the batch axis)
            if a_b:
                X = tf.reshape(X, [1] + list(X.shape)) if X.shape.rank else X
            else:
                A = tf.reshape(A, [1] + list(A.shape)) if A.shape.rank else A
        self.write(vals, op.Y, A * X, inc=True)

    def _op_DotInc(self, op, vals, t):
        A, X = self.read(vals, op.A), self.read(vals, op.X)
        a_b, x_b = self._batched(op.A), self._batched(op.X)
        if op.A.ndim == 2 and op.X.ndim == 1:
            if a_b:
                Xb = X if x_b else tf.broadcast_to(X, [self.batch, op.X.size])
                Y = tf.einsum("bmn,bn->bm", A, Xb)
            elif x_b:
                Y = tf.matmul(X, A, transpose_b=True)
            else:
                Y = tf.linalg.matvec(A, X)
        elif op.A.ndim == 1 and op.X.ndim == 1:
            Y = tf.reduce_sum(A * X, axis=-1, keepdims=True)
        else:
            raise BuildError(f"training does not support DotInc with shapes {op.A.shape}, {op.X.shape}")
        self.write(vals, op.Y, Y, inc=True)

    def _op_BsrDotInc(self, op, vals, t):
        """``Y += A X`` for block-sparse ``A`` (Nengo's optimizer merges DotIncs
        into it): block ``j`` of block-row ``i`` is ``A[j]``.  ``A`` is shared
        ``(k, r, c)``, or per trial ``(batch, k, r, c)`` when the blocks are
        state (weights a learning rule writes)."""
        A, X = self.read(vals, op.A), self.read(vals, op.X)
        k, r, c = op.A.shape
        Xb = X if self._batched(op.X) else tf.broadcast_to(X, [self.batch, op.X.size])
        Xb = tf.reshape(Xb, [self.batch, -1, c])
        cols = tf.gather(Xb, np.asarray(op.indices), axis=1)  # (batch, k, c)
        pattern = "bkrc,bkc->kbr" if self._batched(op.A) else "krc,bkc->kbr"
        blocks = tf.einsum(pattern, A, cols)
        rows = np.repeat(np.arange(len(op.indptr) - 1), np.diff(op.indptr))
        Y = tf.math.unsorted_segment_sum(blocks, rows, len(op.indptr) - 1)  # (rows, batch, r)
        self.write(vals, op.Y, tf.reshape(tf.transpose(Y, [1, 0, 2]), [self.batch, -1]), inc=True)

    def _op_SparseDotInc(self, op, vals, t):
        """``Y += A X`` for a sparse ``A`` (a `nengo.Sparse` transform): its
        values a variable (`sparse_variables`; trained where trainable), its
        elements' places constant."""
        if not op.A.readonly:
            raise BuildError(f"training does not support a non-constant sparse matrix ({op})")
        key = ("sparse", id(op))
        entry = self.sparse_variables.get(id(op.A))
        if key not in self._filters:
            if entry is not None:
                indices, data = self.sim.sparse.indices(op.A), entry[1]
            else:  # (a matrix the layout does not hold as CSR: constant)
                A = _csr(op.A).tocoo()
                indices = np.stack([A.row, A.col], axis=1).astype(np.int64)
                data = A.data.astype(self.np_dtype)
            self._filters[key] = (indices, data, op.A.shape)
        indices, data, shape = self._filters[key]
        A = tf.sparse.reorder(tf.SparseTensor(indices, data, shape))
        X = self.read(vals, op.X)
        Xb = X if self._batched(op.X) else tf.broadcast_to(X, [self.batch, op.X.size])
        Y = tf.transpose(tf.sparse.sparse_dense_matmul(A, tf.reshape(Xb, [self.batch, -1]),
                                                       adjoint_b=True))
        self.write(vals, op.Y, Y, inc=True)

    def _op_ConvInc(self, op, vals, t):
        """``Y += conv(X, W)``: TensorFlow's (transposed) convolution
        (`nengo_cuda.training.convolution`)."""
        conv = op.conv
        X = self.read(vals, op.X)
        X = X if self._batched(op.X) else tf.broadcast_to(X, [self.batch, op.X.size])
        X = tf.reshape(X, [self.batch] + list(conv.input_shape.shape))
        Y = convolve(X, self.read(vals, op.W), conv, self.batch)
        self.write(vals, op.Y, tf.reshape(Y, [self.batch, -1]), inc=True)

    _op_ConvTransposeInc = _op_ConvInc

    def _op_SimNeurons(self, op, vals, t):
        """The rate equivalent's step.

        Rate types and spiking types with a rate equivalent: ``out = rate(J)``;
        adaptive LIFs: ``out = rate(J - a)``, ``a += dt / tau_n * (inc_n * out - a)``
        (Nengo's AdaptiveLIFRate).  RegularSpiking, PoissonSpiking and
        StochasticSpiking: Nengo builds their base type as a separate SimNeurons
        op whose rates are this op's ``J``; their rate equivalent is
        ``out = amplitude * J`` (the expected value of their output).
        """
        J = tf.reshape(self.read(vals, op.J), [self.batch, -1])
        n = op.J.size
        kind, params = self._neuron_kind(op)
        if kind == _HOST_STEP:
            self._host_neurons(op, vals, J)
            return
        neurons = op.neurons
        if isinstance(neurons, _SPIKE_WRAPPERS):
            out = J * params
        elif isinstance(neurons, (nengo.AdaptiveLIF, nengo.AdaptiveLIFRate)):
            adapt = self.read(vals, op.state["adaptation"])
            out = nc_ops.neuron_rate(J - adapt, kind, params)
            tau_n = nc_ops.per_element(neurons.tau_n, n).astype(self.np_dtype)
            inc_n = nc_ops.per_element(neurons.inc_n, n).astype(self.np_dtype)
            self.write(vals, op.state["adaptation"], adapt + (self.dt / tau_n) * (inc_n * out - adapt))
        else:
            out = nc_ops.neuron_rate(J, kind, params)
        self.write(vals, op.output, out)

    def _neuron_kind(self, op):
        """`_rate_params` of a SimNeurons operator (worked out once)."""
        key = id(op)
        if key not in self._neuron_params:
            self._neuron_params[key] = self._rate_params(op.neurons, op.J.size)
        return self._neuron_params[key]

    def host_part(self, op):
        """What of ``op`` runs on the host, where no gradient flows from its
        inputs to its outputs (as in NengoDL), or None where TensorFlow
        differentiates it (`gradient_paths`)."""
        if isinstance(op, SimNeurons):
            if self._neuron_kind(op)[0] == _HOST_STEP:
                why = ("spiking: learning_phase=False" if self._spikes(op.neurons)
                       else "no rate equivalent")
                return f"{type(op.neurons).__name__} neurons ({why})"
        elif isinstance(op, SimProcess):
            if not isinstance(op.process, nengo.LinearFilter):
                return "a process without a TensorFlow form"
        elif isinstance(op, SimPyFunc):
            if op.output is not None and not is_tensor_node_func(op.fn):
                return "a Python function"
        return None

    def _host_neurons(self, op, vals, J):
        """A neuron type without a rate equivalent (Izhikevich, a user's own
        type or subclass), or a spiking one where neurons spike (``spiking``),
        runs its own ``step`` on the host for every trial, as NengoDL's generic
        neuron builder: its state stays in the graph's state, no gradient flows
        through it (nor through NengoDL's spikes)."""
        names = list(op.state)
        states = [tf.reshape(self.read(vals, op.state[name]), [self.batch, -1])
                  for name in names]
        neurons, extra, dt = op.neurons, dict(op.state_extra), self.dt
        shapes = [op.state[name].shape for name in names]

        def step(J, *states):
            out = np.zeros_like(J)
            states = [s.copy() for s in states]
            for i in range(J.shape[0]):
                kwargs = {name: s[i].reshape(shape)
                          for name, s, shape in zip(names, states, shapes)}
                neurons.step(dt, J[i].copy(), out[i], **kwargs, **extra)
            return [out] + states

        sigs = [op.output] + [op.state[name] for name in names]
        for sig, value in zip(sigs, self._host_call(step, [J] + states, sigs, bool(extra))):
            self.write(vals, sig, value)

    def _host_call(self, func, args, sigs, stateful):
        """``func(*args)`` on the host (``tf.numpy_function``): its values of
        ``sigs``, one per signal, ``(batch, size)`` each, through which no
        gradient flows."""
        results = tf.numpy_function(self._on_host(func), args, [self.dtype] * len(sigs),
                                    stateful=stateful)
        if not isinstance(results, (list, tuple)):  # (eager, one output: not a list of one)
            results = [results]
        return [tf.stop_gradient(tf.reshape(value, [self.batch, sig.size]))
                for sig, value in zip(sigs, results)]

    def _spikes(self, neurons):
        """Whether ``neurons`` run spiking here (``spiking``, a spiking type)."""
        return self.spiking and neurons.spiking

    def _rate_params(self, neurons, n):
        """(kind, parameter rows) of the rate op; spike wrappers: (None, amplitude);
        spiking neurons where they spike (``spiking``): their own step."""
        if self._spikes(neurons):
            return _HOST_STEP, None
        if isinstance(neurons, _SPIKE_WRAPPERS):
            return None, nc_ops.per_element(neurons.amplitude, n).astype(self.np_dtype)
        base = neurons
        if isinstance(neurons, (nengo.AdaptiveLIF, nengo.AdaptiveLIFRate)):
            base = nengo.LIFRate(tau_rc=neurons.tau_rc, tau_ref=neurons.tau_ref,
                                 amplitude=neurons.amplitude)
        spec = nc_ops.rate_spec(base, self.lif_smoothing)
        if spec is None:
            return _HOST_STEP, None  # no rate equivalent: Nengo's own step
        kind, names = spec
        # numpy, not tf.constant: a constant would belong to the graph traced first
        return kind, nc_ops.rate_params(base, names, n, self.np_dtype)

    # -- online learning rules: they run in training as in simulation (their
    # weights are simulation state, not trained), as NengoDL's do -------------
    def _per_trial(self, vals, sig):
        """``sig``'s value with the minibatch axis, ``(batch,) + shape``."""
        x = self.read(vals, sig)
        return x if self._batched(sig) else tf.broadcast_to(x, [self.batch] + list(sig.shape))

    def _op_SimPES(self, op, vals, t):
        """delta = -learning_rate * dt / n_pre * outer(error, pre_filtered)."""
        pre = self._per_trial(vals, op.pre_filtered)
        error = self._per_trial(vals, op.error)
        alpha = -op.learning_rate * self.dt / op.pre_filtered.shape[0]
        self.write(vals, op.delta, alpha * error[:, :, None] * pre[:, None, :])

    def _op_SimBCM(self, op, vals, t):
        """delta = learning_rate * dt * outer(post * (post - theta), pre)."""
        pre = self._per_trial(vals, op.pre_filtered)
        post = self._per_trial(vals, op.post_filtered)
        theta = self._per_trial(vals, op.theta)
        alpha = op.learning_rate * self.dt
        self.write(vals, op.delta, (alpha * post * (post - theta))[:, :, None] * pre[:, None, :])

    def _op_SimOja(self, op, vals, t):
        """delta = -beta * weights * (a post^2) + outer(a post, pre), a = rate * dt."""
        pre = self._per_trial(vals, op.pre_filtered)
        post = self._per_trial(vals, op.post_filtered)
        weights = self._per_trial(vals, op.weights)
        alpha = op.learning_rate * self.dt
        forget = -op.beta * weights * (alpha * post * post)[:, :, None]
        self.write(vals, op.delta, forget + (alpha * post)[:, :, None] * pre[:, None, :])

    def _op_SimVoja(self, op, vals, t):
        """delta = a * learning_signal * (scale * outer(post, pre_decoded)
        - post * scaled_encoders), a = learning_rate * dt."""
        pre = self._per_trial(vals, op.pre_decoded)
        post = self._per_trial(vals, op.post_filtered)
        encoders = self._per_trial(vals, op.scaled_encoders)
        signal = tf.reshape(self._per_trial(vals, op.learning_signal), [self.batch, 1, 1])
        scale = tf.constant(np.asarray(op.scale, dtype=self.np_dtype)[None, :, None])
        alpha = op.learning_rate * self.dt
        delta = scale * post[:, :, None] * pre[:, None, :] - post[:, :, None] * encoders
        self.write(vals, op.delta, alpha * signal * delta)

    def _op_SimProcess(self, op, vals, t):
        if self.host_part(op) is not None:
            self._host_process(op, vals, t)
            return
        process = op.process
        if id(op) not in self._filters:
            A, B, C, D = (np.asarray(m, dtype=np.float64) for m in process._get_ss(self.dt))
            nx = A.shape[0]
            self._filters[id(op)] = (
                A.reshape(1, nx, nx).astype(self.np_dtype),
                B.reshape(1, nx, 1).astype(self.np_dtype),
                C.reshape(1, 1, nx).astype(self.np_dtype),
                float(D.item()),
                nx,
            )
        A, B, C, D, nx = self._filters[id(op)]
        u = tf.reshape(self._per_trial(vals, op.input), [self.batch, -1])  # (shared: weights)
        if nx == 0:
            y = D * u
        elif nx == 1:  # Lowpass and other first-order filters: elementwise
            a, b, c = float(A.item()), float(B.item()), float(C.item())
            X = tf.reshape(self.read(vals, op.state["X"]), [self.batch, -1])
            if D != 0:
                y = c * X + D * u
                X = a * X + b * u
            else:
                # as Nengo's OneX step (and the native kernel): the state holds the
                # output (C X), so a simulator's state can be continued here
                X = a * X + (c * b) * u
                y = X
            self.write(vals, op.state["X"], X)
        else:
            X = tf.reshape(self.read(vals, op.state["X"]), [self.batch, nx, -1])
            if D != 0:
                y = tf.reshape(tf.matmul(C, X), [self.batch, -1]) + D * u
            X = tf.matmul(A, X) + B * tf.reshape(u, [self.batch, 1, -1])
            if D == 0:
                y = tf.reshape(tf.matmul(C, X), [self.batch, -1])
            self.write(vals, op.state["X"], X)
        self.write(vals, op.output, y, inc=op.mode == "inc")

    def _op_SimRLS(self, op, vals, t):
        """Nengo's recursive least squares, per trial: with Pr = P r and
        k = 1 / (1 + r.Pr): P -= k outer(Pr, Pr); delta = -k outer(error, Pr)."""
        r = self._per_trial(vals, op.pre_filtered)
        error = self._per_trial(vals, op.error)
        P = self._per_trial(vals, op.inv_gamma)
        Pr = tf.linalg.matvec(P, r)
        k = 1 / (1 + tf.reduce_sum(r * Pr, axis=1))
        self.write(vals, op.inv_gamma, P - Pr[:, :, None] * (Pr[:, None, :] * k[:, None, None]))
        self.write(vals, op.delta, error[:, :, None] * ((-k)[:, None] * Pr)[:, None, :])

    def restart_host_processes(self):
        """The host processes start again from their first step at the next run
        (`HostProcess.restart`)."""
        for process in self._host_processes.values():
            process.restart()

    def _host_process(self, op, vals, t):
        """A process without a TensorFlow form: its own step functions, one per
        trial, on the host (`HostProcess`); no gradient flows through it.  Its
        state signals (those in the float state: all of Nengo's) go through
        the graph's state, as NengoDL's generic process builder passes them."""
        key = (id(op), self.batch)
        if key not in self._host_processes:
            names = [name for name, sig in op.state.items()
                     if self.layout.pool_of(sig) == FLOAT and self._batched(sig)]
            self._host_processes[key] = HostProcess(op, self.sim, self.batch, self.np_dtype,
                                                    names)
        process = self._host_processes[key]
        args = [t]
        if op.input is not None:
            x = self._per_trial(vals, op.input)
            args.append(tf.reshape(x, [self.batch] + list(op.input.shape)))
        states = [op.state[name] for name in process.state_names]
        args += [tf.reshape(self.read(vals, sig), [self.batch, -1]) for sig in states]
        sigs = [op.output] + states
        for sig, value in zip(sigs, self._host_call(process, args, sigs, True)):
            self.write(vals, sig, value, inc=op.mode == "inc" and sig is op.output)

    def _op_SimPyFunc(self, op, vals, t):
        if op.output is None:
            return  # a sink Node: no effect on the model's values
        x = self._per_trial(vals, op.x) if op.x is not None else None
        if self.host_part(op) is not None:
            out = self._numpy_func(op, t, x)
        else:  # a TensorNode
            x = None if x is None else tf.reshape(x, [self.batch] + list(op.fn.shape_in))
            out = op.fn.call_tensors(t, x, training=self.training)
            # (as NengoDL checks it in its graph: a wrong output fails here, named,
            # not as a reshape error deep in TensorFlow)
            op.fn.check_output(out, self.batch, self.dtype)
        self.write(vals, op.output, tf.reshape(out, [self.batch, -1]))

    def _numpy_func(self, op, t, x):
        fn, size = op.fn, op.output.size

        def call(t_value, *xs):
            rows = []
            # (an input Node's function: called once for all trials, as NengoDL)
            for i in range(self.batch if xs else 1):
                args = (xs[0][i].copy(),) if xs else ()
                y = fn(host_time(t_value, self.dt), *args) if op.t is not None else fn(*args)
                y = np.asarray(y, dtype=self.np_dtype).reshape(-1)
                if y.size != size or not np.all(np.isfinite(y)):
                    raise SimulationError(f"Node function of {op} returned {y!r}")
                rows.append(y)
            return np.stack(rows if xs else rows * self.batch)

        args = [t] + ([x] if x is not None else [])
        out = tf.numpy_function(self._on_host(call), args, self.dtype, stateful=True)
        return tf.reshape(out, [self.batch, size])


def with_learned(masks, learned, state):
    """``state`` (per base of `TrainingGraph.state_bases`, trials first) with
    the elements that online learning rules change (``masks``,
    `TrainingGraph.learned_masks`) taken from ``learned``: where a minibatch
    starts when what the one before learned carries on, as NengoDL's
    parameters do."""
    return [tf.where(m, c, s) for m, c, s in zip(masks, learned, state)]


def _probe_size(model, probe):
    return int(np.prod(model.sig[probe]["in"].shape))


def _var_name(base):
    name = "".join(c if c.isalnum() or c in "._-" else "_" for c in str(base.name))
    return name[:60] or "param"


def trainable_parameters(sim, trainable):
    """``[(what, obj, signal)]`` trained for ``trainable`` ({obj: bool}, see
    config.trainable_objects): the encoders of Ensembles, the biases of
    Neurons, the weights of Connections."""
    sig = sim.model.sig
    out = []
    for obj, on in trainable.items():
        if not on:
            continue
        if isinstance(obj, nengo.Ensemble):
            if isinstance(obj.neuron_type, nengo.Direct):
                continue
            what = "encoders"
        elif isinstance(obj, nengo.ensemble.Neurons):
            if isinstance(obj.ensemble.neuron_type, nengo.Direct):
                continue
            what = "bias"
        else:
            what = "weights"
        s = sig[obj].get(what)
        if s is not None and (not s.sparse or s in sim.sparse):
            out.append((what, obj, s))
    return out


def trainable_signals(sim, trainable):
    """The Signals of `trainable_parameters`."""
    return [s for _, _, s in trainable_parameters(sim, trainable)]


__all__ = ["TrainingGraph", "trainable_parameters", "trainable_signals", "SimNeurons"]
