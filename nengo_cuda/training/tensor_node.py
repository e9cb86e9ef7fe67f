"""`TensorNode` and `Layer`: TensorFlow code inside a Nengo model (NengoDL 3's API).

A TensorNode is a `nengo.Node` whose output is computed by ``tensor_func``, a
function of TensorFlow tensors: ``tensor_func(t, x)`` (``pass_time=True``) or
``tensor_func(x)``, where ``x`` has shape ``(minibatch,) + shape_in`` and the
result ``(minibatch,) + shape_out``.  In `Simulator.run` it runs eagerly once
per step, for all trials of the minibatch at once (`run_step`); in training it
is part of the differentiable TensorFlow graph (`nengo_cuda.training.graph`).

In `Simulator.run` the node's input and output go between the simulator's
buffers and TensorFlow through DLPack: ``x`` is a tensor over the simulator's
own memory (no copy with a minibatch of 1 in float32; a float64 simulation or a
larger minibatch makes one cast or gathered copy, in the same memory space), and
the result is read through DLPack and written into the node's output signal.
On the CUDA backend that memory is the device pool (CuPy arrays), so on a GPU
nothing goes through the host; on the CPU backend it is the NumPy pool.  ``x``
is valid only during the call: keep ``tf.identity(x)``, not ``x``, to hold on
to it.
"""

import os
import warnings

import numpy as np
import nengo
from nengo.exceptions import SimulationError, ValidationError


def _tf():
    # TensorFlow would take nearly all GPU memory when it first uses the GPU,
    # leaving none to the CUDA backend (CuPy): grow as needed unless the user
    # chose otherwise (read at TensorFlow's GPU initialisation)
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    import tensorflow as tf  # noqa: PLC0415 - only TensorNode users need TensorFlow

    return tf


class _TensorFunc:
    """The Node output: calls ``tensor_func`` on one trial's values (batch of 1)."""

    def __init__(self, tensor_func, shape_in, shape_out, pass_time):
        self.tensor_func = tensor_func
        self.shape_in = shape_in
        self.shape_out = shape_out
        self.pass_time = pass_time

    def _weights_owner(self):
        """``tensor_func`` when it owns variables (a Keras layer or any
        ``tf.Module``), built first if needed; None otherwise."""
        obj = self.tensor_func
        if not hasattr(obj, "trainable_variables"):
            return None
        if getattr(obj, "built", True) is False:
            tf = _tf()
            x = None if self.shape_in is None else tf.zeros((1,) + self.shape_in, tf.float32)
            # (a concrete training flag, as in every call NengoDL makes: layers
            # may branch on it, or assert it)
            self.call_tensors(tf.constant(0.0), x, training=False)
        return obj

    def trainable_variables(self):
        """The variables training optimises (the layer's ``trainable_variables``)."""
        obj = self._weights_owner()
        return [] if obj is None else list(obj.trainable_variables)

    def variables(self):
        """Every variable of the layer (trainable or not), for save/load_params."""
        obj = self._weights_owner()
        if obj is None:
            return []
        return list(obj.weights if hasattr(obj, "weights") else obj.variables)

    def call_tensors(self, t, x, training=None):
        """tensor_func on tensors (x batched, or None without input).

        A Keras layer gets ``training`` (True in ``fit``, False in ``sim.run``:
        its Dropout and BatchNormalization act as in Keras) and, with
        ``pass_time``, its inputs as one list ``[t, x]``, as NengoDL calls it."""
        if isinstance(self.tensor_func, _tf().keras.layers.Layer):
            if self.shape_in is None:
                inputs = t
            else:
                inputs = [t, x] if self.pass_time else x
            return self.tensor_func(inputs, training=training)
        if self.shape_in is None:
            return self.tensor_func(t) if self.pass_time else self.tensor_func()
        return self.tensor_func(t, x) if self.pass_time else self.tensor_func(x)

    def __call__(self, t, x=None):
        tf = _tf()
        tt = tf.constant(t, dtype=tf.float32)
        xt = None
        if self.shape_in is not None:
            xt = tf.constant(np.asarray(x, dtype=np.float32).reshape((1,) + self.shape_in))
        out = self.call_tensors(tt, xt, training=False)
        return None if out is None else np.asarray(out).reshape(-1)


def _shape(value, name):
    if value is None:
        return None
    dims = (value,) if np.isscalar(value) else tuple(value)
    if not all(isinstance(v, (int, np.integer)) for v in dims):
        # (NengoDL: a TensorNode's shapes are fixed; no None for unknown sizes)
        raise ValidationError(f"{name} must be an int or a tuple of ints (got {value!r})",
                              attr=name)
    shape = tuple(int(v) for v in dims)
    if any(s < 0 for s in shape):
        raise ValidationError(f"{name} must be non-negative (got {value!r})", attr=name)
    return shape


class TensorNode(nengo.Node):
    """A Node whose output is TensorFlow code (see the module docstring).

    Parameters
    ----------
    tensor_func : callable
        ``tensor_func(t, x)`` (or ``tensor_func(x)`` when ``pass_time=False``).
    shape_in : int or tuple, optional
        Shape of ``x`` without the minibatch axis (``size_in=`` is accepted too).
    shape_out : int or tuple, optional
        Shape of the output without the minibatch axis (default: inferred by
        calling ``tensor_func`` once).
    pass_time : bool
        Pass the simulation time ``t`` as the first argument.

    Notes
    -----
    When ``tensor_func`` is a Keras layer (or a ``tf.Module``), ``sim.fit`` and
    ``sim.train`` optimise its ``trainable_variables`` together with the Nengo
    parameters, as NengoDL does: ``configure_settings(trainable=...)`` and the
    ``trainable`` config apply to Ensembles, Neurons and Connections only; set
    the layer's own ``trainable = False`` to freeze it.  The weights live in the
    layer, so ``sim.run`` (and any Simulator built later from the same network)
    uses the trained values.  Variables that a plain function creates are not
    tracked.
    """

    def __init__(self, tensor_func, shape_in=None, shape_out=None, pass_time=True,
                 label=None, size_in=None):
        if not callable(tensor_func):
            raise ValidationError("tensor_func must be callable", attr="tensor_func")
        if size_in is not None and shape_in is not None:
            if _shape(size_in, "size_in") != (int(np.prod(_shape(shape_in, "shape_in"))),):
                raise ValidationError("size_in and shape_in disagree", attr="size_in")
        shape_in = _shape(shape_in if shape_in is not None else size_in, "shape_in")
        if shape_in == (0,) or shape_in == ():
            shape_in = None
        if shape_in is None and not pass_time:
            raise ValidationError(
                "a TensorNode without input must have pass_time=True", attr="pass_time"
            )
        func = _TensorFunc(tensor_func, shape_in, None, pass_time)
        shape_out = _shape(shape_out, "shape_out")
        if shape_out is None:
            tf = _tf()
            x = None if shape_in is None else tf.zeros((1,) + shape_in, tf.float32)
            out = func.call_tensors(tf.constant(0.0), x, training=False)
            if out is None:
                shape_out = (0,)
            else:
                shape = tuple(out.shape)
                if len(shape) < 1:
                    raise ValidationError(
                        f"tensor_func must return a tensor of shape (minibatch, ...); got "
                        f"shape {shape}", attr="tensor_func")
                shape_out = shape[1:]  # (whatever the first axis: NengoDL's rule)
        func.shape_out = shape_out
        self.tensor_func = tensor_func
        self.shape_in = shape_in
        self.shape_out = shape_out
        self.pass_time = pass_time
        size_in = 0 if shape_in is None else int(np.prod(shape_in))
        super().__init__(
            output=func, size_in=size_in, size_out=int(np.prod(shape_out)), label=label
        )


def is_tensor_node_func(fn):
    return isinstance(fn, _TensorFunc)


def is_tensor_node_op(op):
    """Whether ``op`` is the SimPyFunc of a `TensorNode`."""
    return is_tensor_node_func(getattr(op, "fn", None))


# -- sim.run: TensorFlow on the simulator's memory, through DLPack ------------------
def to_tensor(array):
    """A TensorFlow tensor sharing ``array``'s memory (NumPy, or CuPy on a GPU)."""
    return _tf().experimental.dlpack.from_dlpack(array.__dlpack__())


def from_tensor(xp, tensor):
    """An ``xp`` (NumPy or CuPy) array sharing ``tensor``'s memory."""
    if xp is np:
        return np.from_dlpack(tensor)
    # CuPy asks __dlpack__ for a stream, which tf.Tensor refuses: hand it the capsule
    capsule = _tf().experimental.dlpack.to_dlpack(tensor)
    return xp.from_dlpack(capsule) if hasattr(xp, "from_dlpack") else xp.fromDlpack(capsule)


def host_signals(op, layout):
    """The signals a TensorNode step needs on the host, when the rest can stay in
    device memory (None otherwise): only the time.  Its input and output must be
    contiguous signals of the float pool."""
    from ..layout import FLOAT  # noqa: PLC0415

    for sig in (op.x, op.output):
        if sig is None:
            continue
        if layout.placement.get(sig.base, (None,))[0] != FLOAT:
            return None
        contiguous = np.cumprod((1,) + sig.shape[:0:-1])[::-1]
        if sig.size > 1 and tuple(layout.strides(sig)) != tuple(int(c) for c in contiguous):
            return None
    return [] if op.t is None else [op.t]


def _aligned(array):
    from ..layout import ALIGN_BYTES  # noqa: PLC0415

    ptr = array.ctypes.data if isinstance(array, np.ndarray) else array.data.ptr
    return ptr % ALIGN_BYTES == 0


class _RunStep:
    """One step of a TensorNode in `Simulator.run`: ``tensor_func`` called once
    for all trials, input and output handed over through DLPack.

    ``xs`` / ``outs``: per trial, the input and output signal as arrays of module
    ``xp`` over the simulator's memory (NumPy views of the pools; on a GPU, CuPy
    views of the device pool).  ``sync``: waits for all device work (TensorFlow
    and the simulator use different streams), None on the host.  Time and
    input are tensors of the simulator's dtype ``dtype`` (as in NengoDL, and
    as in training).
    """

    def __init__(self, op, time, xs, outs, xp, sync=None, dtype=np.float32):
        self.op = op
        self.dtype = np.dtype(dtype)
        self.func = op.fn
        self.time = time
        self.xs = xs
        self.outs = outs
        self.xp = xp
        self.sync = sync

    def _input(self):
        tf = _tf()
        shape = (len(self.xs),) + self.func.shape_in
        if len(self.xs) == 1:
            arr = self.xs[0].reshape(shape)  # a view: no copy
        else:
            arr = self.xp.stack([x.reshape(self.func.shape_in) for x in self.xs])
            self._produced()
        x = to_tensor(arr) if _aligned(arr) else self._aligned_copy(arr)
        return x if x.dtype == self.dtype else tf.cast(x, self.dtype.name)

    def _aligned_copy(self, arr):
        # TensorFlow's kernels abort on data that is not ALIGN_BYTES-aligned
        if self.xp is np:
            return _tf().constant(arr)  # into TensorFlow's own (aligned) memory
        copy = arr.copy()  # CuPy allocates at 512-byte boundaries
        self._produced()
        return to_tensor(copy)

    def _produced(self):
        # CuPy wrote the input on its stream; TensorFlow reads it on its own
        # (DLPack without a stream orders only the legacy default stream, which
        # a non-blocking TensorFlow stream does not wait for): wait here.
        if self.sync is not None:
            self.sync()

    def __call__(self):
        tf = _tf()
        t = tf.constant(float(self.time[()]) if self.time is not None else 0.0,
                        self.dtype.name)
        x = None if self.func.shape_in is None or not self.xs else self._input()
        y = self.func.call_tensors(t, x, training=False)
        if not self.outs:
            return
        name = getattr(self.func.tensor_func, "__name__", repr(self.func.tensor_func))
        if y is None:
            raise SimulationError(f"TensorNode function {name!r} returned None")
        if not tf.is_tensor(y):
            y = tf.convert_to_tensor(y, tf.float32)
        if self.sync is not None:
            self.sync()  # TensorFlow's stream done
        out = from_tensor(self.xp, y)
        n = len(self.outs)
        size = self.outs[0].size
        if out.size == size and n > 1:
            out = self.xp.broadcast_to(out.reshape(1, size), (n, size))
        elif out.size != n * size:
            raise SimulationError(
                f"TensorNode function {name!r} returned shape {tuple(y.shape)}; expected "
                f"({n},) + {self.func.shape_out}"
            )
        out = out.reshape(n, size)
        if not bool(self.xp.isfinite(out).all()):
            raise SimulationError(f"TensorNode function {name!r} returned non-finite value")
        for trial, dst in enumerate(self.outs):
            dst[...] = out[trial].reshape(dst.shape)
        if self.sync is not None:
            self.sync()  # the output written before the simulator's next kernels


def seed_tensorflow(seed):
    """Seeds TensorFlow's global random generator (``tf.random.set_seed``):
    unseeded random ops in TensorNodes then draw the same values in simulators
    of the same seed."""
    _tf().random.set_seed(int(seed))


def run_step(op, layout, backend, on_device):
    """The step function of TensorNode op ``op`` (all trials) in `Simulator.run`.

    ``on_device``: its input and output are the backend's device arrays
    (``backend.device_arrays``), else the host pool's views."""
    signals = layout.signal_dicts
    time = None if op.t is None else signals[0][op.t]
    if on_device:
        xs = [] if op.x is None else backend.device_arrays(op.x)
        outs = [] if op.output is None else backend.device_arrays(op.output)
        return _RunStep(op, time, xs, outs, backend.array_module, backend.device_sync,
                        layout.dtype)
    xs = [] if op.x is None else [signals[t][op.x] for t in range(layout.n_trials)]
    outs = [] if op.output is None else [signals[t][op.output] for t in range(layout.n_trials)]
    return _RunStep(op, time, xs, outs, np, dtype=layout.dtype)


class Layer:
    """NengoDL's ``Layer``: ``Layer(func)(input, transform=1, shape_in=None)``.

    ``Layer(f)(input)`` connects ``input`` to a new object and returns it:

    - ``f`` a TensorFlow function or Keras layer: a `TensorNode` computing
      ``f(x)`` (``x`` reshaped to ``(minibatch,) + shape_in``); a Keras
      layer's weights are trained by ``sim.fit`` (see `TensorNode`);
    - ``f`` a Nengo neuron type: the ``neurons`` of a new one-dimensional
      ``nengo.Ensemble`` of that type with one neuron per input element.

    ``layer_args`` go to the `TensorNode` (e.g. ``label``) or the Ensemble (e.g.
    ``max_rates``).  The new input Connection (``transform``, ``synapse``) is
    not trainable, as in NengoDL; ``return_conn=True`` also returns it.
    """

    def __init__(self, layer_func):
        if not (callable(layer_func) or isinstance(layer_func, nengo.neurons.NeuronType)):
            raise ValidationError(
                f"layer_func must be callable or a nengo NeuronType (got {layer_func!r})",
                attr="layer_func",
            )
        self.layer_func = layer_func

    def _size_in(self, input, transform, shape_in):
        if shape_in is not None:
            return int(np.prod(_shape(shape_in, "shape_in")))
        if isinstance(transform, np.ndarray) and transform.ndim == 2:
            return transform.shape[0]
        return input.size_out

    def __call__(self, input, transform=1, shape_in=None, synapse=None,
                 return_conn=False, **layer_args):
        size_in = self._size_in(input, transform, shape_in)
        if isinstance(self.layer_func, nengo.neurons.NeuronType):
            obj = nengo.Ensemble(size_in, 1, neuron_type=self.layer_func, **layer_args).neurons
        else:
            layer_args.setdefault("label", getattr(self.layer_func, "name", None) or "Layer")
            obj = TensorNode(
                self.layer_func,
                shape_in=shape_in if shape_in is not None else (size_in,),
                pass_time=False,
                **layer_args,
            )
        conn = nengo.Connection(input, obj, synapse=synapse, transform=transform)
        _not_trainable(conn)
        return (obj, conn) if return_conn else obj

    def __str__(self):
        name = getattr(self.layer_func, "name", getattr(self.layer_func, "__name__", None))
        return f"Layer({name or self.layer_func})"


def _not_trainable(conn):
    """Marks ``conn`` not trainable in the config of the network that holds it."""
    from .config import declare_trainable  # noqa: PLC0415

    config = nengo.Network.context[-1].config
    declare_trainable(config, nengo.Connection)
    config[conn].trainable = False


def tensor_layer(input, layer_func, **kwargs):
    """NengoDL 2's ``tensor_layer(input, layer_func, shape_in=None, synapse=None,
    transform=1, return_conn=False, **layer_args)``, deprecated in NengoDL 3:
    the same as ``Layer(layer_func)(input, **kwargs)``."""
    warnings.warn("nengo_dl.tensor_layer is deprecated; use nengo_dl.Layer instead",
                  DeprecationWarning, stacklevel=2)
    return Layer(layer_func)(input, **kwargs)
