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

As in NengoDL, ``tensor_func`` must return a ``tf.Tensor`` of shape
``(minibatch,) + shape_out`` (any ``shape`` of that size after the minibatch
axis) and a float dtype (cast to the simulator's).  The Simulator calls each
TensorNode's function once when it is built (as NengoDL does when it builds its
model) and checks every output (`_TensorFunc.check_output`): a wrong one is a
``ValidationError`` naming the TensorNode, never values written as garbage.
"""

import os
import re
import warnings

import numpy as np
import nengo
from nengo.exceptions import BuildError, NengoException, SimulationError, ValidationError


def _tf():
    # TensorFlow would take nearly all GPU memory when it first uses the GPU,
    # leaving none to the CUDA backend (CuPy): grow as needed unless the user
    # chose otherwise (read at TensorFlow's GPU initialisation)
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    import tensorflow as tf  # noqa: PLC0415 - only TensorNode users need TensorFlow

    return tf


def require_eager():
    """Raises a SimulationError where TensorFlow runs in TF 1's graph mode
    (``tf.compat.v1.disable_eager_execution()``, which NengoDL's tips page
    suggests for older TensorFlow): Keras layers and variables are used here
    eagerly, and TensorFlow 2.21's Keras cannot train in that mode at all."""
    if not _tf().compat.v1.executing_eagerly_outside_functions():
        raise SimulationError(
            "nengo_cuda needs TensorFlow's eager execution, which "
            "tf.compat.v1.disable_eager_execution() has turned off (TF 1's graph mode, "
            "NengoDL's 'pre-2.0' setting, is not supported)")


class _TensorFunc:
    """The Node output: calls ``tensor_func`` on one trial's values (batch of 1)."""

    def __init__(self, tensor_func, shape_in, shape_out, pass_time, node=None):
        self.tensor_func = tensor_func
        self.shape_in = shape_in
        self.shape_out = shape_out
        self.pass_time = pass_time
        self.node = node  # the TensorNode, named in error messages

    def __str__(self):
        if self.node is not None:
            return str(self.node)
        return f"TensorNode({getattr(self.tensor_func, '__name__', self.tensor_func)!r})"

    def check_output(self, output, batch, dtype=None):
        """Raises a ValidationError unless ``output`` (what ``tensor_func``
        returned) is a tensor of shape ``(batch,) + shape`` with ``shape_out``'s
        size and a float dtype, as NengoDL checks every TensorNode output.

        ``dtype``: the simulator's, named in the message (other float dtypes are
        cast to it).  Sizes unknown while tracing a graph are not checked."""
        tf = _tf()
        if not tf.is_tensor(output):
            raise ValidationError(
                f"{self}: tensor_func must return a Tensor of shape (minibatch,) + shape_out "
                f"(got {type(output).__name__})", attr="tensor_func", obj=self.node)
        shape = output.shape
        if shape.rank is not None:
            if shape.rank < 1 or shape[0] not in (None, batch):
                raise ValidationError(
                    f"{self}: output should have batch size {batch} (the minibatch) as its "
                    f"first axis; tensor_func returned shape {tuple(shape)}",
                    attr="tensor_func", obj=self.node)
            size = int(np.prod(self.shape_out))
            if None not in shape[1:] and int(np.prod(shape[1:])) != size:
                raise ValidationError(
                    f"{self}: output should have size {size} per item of the minibatch "
                    f"(shape_out={self.shape_out}); tensor_func returned shape {tuple(shape)}, "
                    f"size {int(np.prod(shape[1:]))} per item", attr="tensor_func", obj=self.node)
        if not output.dtype.is_floating:
            expected = "a float dtype" if dtype is None else f"dtype {tf.as_dtype(dtype).name}"
            raise ValidationError(
                f"{self}: output should have {expected} (the simulator's; other float "
                f"dtypes are cast to it); tensor_func returned {output.dtype.name}",
                attr="tensor_func", obj=self.node)

    def _weights_owner(self):
        """``tensor_func`` when it owns variables (a Keras layer or any
        ``tf.Module``), built first if needed; None otherwise."""
        obj = self.tensor_func
        if not hasattr(obj, "trainable_variables"):
            return None
        self.build_layer(1)
        if getattr(obj, "built", True) is False:
            tf = _tf()
            x = None if self.shape_in is None else (1,) + self.shape_in
            try:  # (traced: it builds the layer, and runs nothing)
                self.trace(x, tf.float32, training=False)
            except Exception:  # (not traceable: called once)
                x = None if x is None else tf.zeros(x, tf.float32)
                # (a concrete training flag, as in every call NengoDL makes:
                # layers may branch on it, or assert it)
                self.call_tensors(tf.constant(0.0), x, training=False)
        return obj

    def build_layer(self, batch):
        """Builds a Keras layer that has a ``build`` of its own, as NengoDL
        does before its first call: eagerly (what ``build`` assigns to its
        weights, or loads into them, holds; built while tracing its call, it
        was a graph's op that never ran, and an error there was taken for an
        untraceable call) on NengoDL's shapes, ``(batch,) + shape_in`` for a
        minibatch of ``batch``, after ``()`` for the time where it is passed."""
        tf = _tf()
        layer = self.tensor_func
        if (not isinstance(layer, tf.keras.layers.Layer) or layer.built
                or type(layer).build is tf.keras.layers.Layer.build):
            return  # (the default build: Keras builds such a layer by calling it)
        with tf.init_scope():
            layer.build(self.build_shape(batch))

    def build_shape(self, batch):
        """What NengoDL's ``build`` gets for a minibatch of ``batch``:
        ``(batch,) + shape_in``, ``()`` (the time), or a list of both."""
        shapes = [()] if self.pass_time else []
        if self.shape_in is not None:
            shapes.append((batch,) + self.shape_in)
        return shapes[0] if len(shapes) == 1 else shapes

    def trace(self, x_shape, dtype, training):
        """``tensor_func``'s output (a symbolic tensor) traced on time and an
        input of ``x_shape`` (None: no input) in ``dtype``: nothing runs, as
        in NengoDL's symbolic build (a Keras layer gets built)."""
        tf = _tf()
        x = None if x_shape is None else tf.TensorSpec(x_shape, dtype)

        def output(t, x):
            return self.call_tensors(t, x, training=training)

        return tf.function(output, autograph=False).get_concrete_function(
            tf.TensorSpec((), dtype), x).structured_outputs

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
        ``pass_time``, its inputs as one list ``[t, x]``, as NengoDL calls it;
        so does a function that says it ``takes_training`` (the Converter's
        fallback of a layer application).

        A variable returned (a ``tf.Variable``, or the ``keras.Variable`` of a
        Keras 3 layer's ``add_weight``) is taken as its value: a tensor to
        ``tf.is_tensor``, NengoDL's check."""
        tf = _tf()
        if isinstance(self.tensor_func, tf.keras.layers.Layer) or \
                getattr(self.tensor_func, "takes_training", False):
            if self.shape_in is None:
                inputs = t
            else:
                inputs = [t, x] if self.pass_time else x
            out = self.tensor_func(inputs, training=training)
        elif self.shape_in is None:
            out = self.tensor_func(t) if self.pass_time else self.tensor_func()
        else:
            out = self.tensor_func(t, x) if self.pass_time else self.tensor_func(x)
        variables = (tf.Variable, getattr(tf.keras, "Variable", tf.Variable))
        return tf.convert_to_tensor(out) if isinstance(out, variables) else out

    def __call__(self, t, x=None):
        tf = _tf()
        tt = tf.constant(t, dtype=tf.float32)
        xt = None
        if self.shape_in is not None:
            xt = tf.constant(np.asarray(x, dtype=np.float32).reshape((1,) + self.shape_in))
        out = self.call_tensors(tt, xt, training=False)
        self.check_output(out, 1)  # (a minibatch of 1 in nengo.Simulator)
        return np.asarray(out).reshape(-1)


def _shape(value, name, empty_is_none=False):
    """``value`` (an int or a tuple of ints) as a tuple, None for None; every
    size must be >= 1 (NengoDL's rule).  ``empty_is_none``: a size of 0 (``0``,
    ``(0,)`` or ``()``) means None, as ``size_in=0`` means no input to a Node."""
    if value is None:
        return None
    dims = (value,) if np.isscalar(value) else tuple(value)
    if not all(isinstance(v, (int, np.integer)) for v in dims):
        # (NengoDL: a TensorNode's shapes are fixed; no None for unknown sizes)
        raise ValidationError(f"must be an int or a tuple of ints (got {value!r})",
                              attr=name)
    shape = tuple(int(v) for v in dims)
    if empty_is_none and shape in ((0,), ()):
        return None
    if any(s < 1 for s in shape):
        raise ValidationError(f"every size must be >= 1 (got {value!r})", attr=name)
    return shape


def _brief(error):
    """``error``'s type and the first line of its message (TensorFlow's and
    Keras's run over many lines), without terminal colour codes and without
    Keras's "Exception encountered when calling ..." header line."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("Exception encountered when calling"):
        lines = lines[1:]
    text = lines[0] if lines else ""
    if len(text) > 200:
        text = text[:200] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class TensorNode(nengo.Node):
    """A Node whose output is TensorFlow code (see the module docstring).

    Parameters
    ----------
    tensor_func : callable
        ``tensor_func(t, x)`` (or ``tensor_func(x)`` when ``pass_time=False``).
    shape_in : int or tuple, optional
        Shape of ``x`` without the minibatch axis (``size_in=`` is accepted too).
    shape_out : int or tuple, optional
        Shape of the output without the minibatch axis (default: inferred, as
        in NengoDL: a Keras layer's by tracing it symbolically, which builds
        it but runs nothing; any other function's by calling it once).
    pass_time : bool
        Pass the simulation time ``t`` as the first argument.

    Raises ``ValidationError`` (as NengoDL does) when ``tensor_func`` is not
    callable, a size in ``shape_in`` or ``shape_out`` is below 1 (``shape_in=0``
    means no input), the node has neither an input nor ``pass_time``, or, when
    ``shape_out`` is inferred, tracing or calling ``tensor_func`` fails or returns no
    tensor.  Its output at run time is checked too (see the module docstring).

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
        if size_in is not None and shape_in is not None:
            sizes = [_shape(v, name, empty_is_none=True)
                     for v, name in ((size_in, "size_in"), (shape_in, "shape_in"))]
            if len({0 if v is None else int(np.prod(v)) for v in sizes}) > 1:
                raise ValidationError("size_in and shape_in disagree", attr="size_in",
                                      obj=self)
        shape_in = _shape(shape_in if shape_in is not None else size_in, "shape_in",
                          empty_is_none=True)
        # (checked first, as in NengoDL: TensorNode(None, pass_time=False) says this)
        self._check_has_argument(shape_in, pass_time)
        if not callable(tensor_func):
            raise ValidationError(
                f"must be a function or Keras Layer (got {tensor_func!r})", attr="tensor_func",
                obj=self)
        func = _TensorFunc(tensor_func, shape_in, None, pass_time, node=self)
        shape_out = _shape(shape_out, "shape_out")
        if shape_out is None:
            shape_out = self._infer_shape_out(func)
        func.shape_out = shape_out
        size_in = 0 if shape_in is None else int(np.prod(shape_in))
        super().__init__(
            output=func, size_in=size_in, size_out=int(np.prod(shape_out)), label=label
        )

    # (properties over the node's output, the `_TensorFunc` the simulator calls:
    # as in NengoDL, where these are parameters its builder reads, a value
    # assigned after construction is the one the simulation uses)
    @property
    def tensor_func(self):
        """The function (or Keras layer) computing the output; assignable (the
        new one must return ``shape_out``: it is not inferred again, as in NengoDL)."""
        return self.output.tensor_func

    @tensor_func.setter
    def tensor_func(self, value):
        if not callable(value):
            raise ValidationError(
                f"must be a function or Keras Layer (got {value!r})", attr="tensor_func",
                obj=self)
        self.output.tensor_func = value

    @property
    def shape_in(self):
        """Shape of ``x`` without the minibatch axis (None: no input);
        assigning it sets ``size_in`` too."""
        return self.output.shape_in

    @shape_in.setter
    def shape_in(self, value):
        shape = _shape(value, "shape_in", empty_is_none=True)
        self._check_has_argument(shape, self.pass_time)
        self.output.shape_in = shape
        self.size_in = 0 if shape is None else int(np.prod(shape))

    @property
    def shape_out(self):
        """Shape of the output without the minibatch axis; assigning it sets
        ``size_out`` too."""
        return self.output.shape_out

    @shape_out.setter
    def shape_out(self, value):
        shape = _shape(value, "shape_out")
        if shape is None:
            raise ValidationError("shape_out cannot be None after construction",
                                  attr="shape_out", obj=self)
        self.output.shape_out = shape
        self.size_out = int(np.prod(shape))

    @property
    def pass_time(self):
        """Whether ``tensor_func`` gets the time ``t`` as its first argument."""
        return self.output.pass_time

    @pass_time.setter
    def pass_time(self, value):
        self._check_has_argument(self.shape_in, bool(value))
        self.output.pass_time = bool(value)

    def _check_has_argument(self, shape_in, pass_time):
        """A TensorNode needs an input or the time (NengoDL's rule)."""
        if shape_in is None and not pass_time:
            raise ValidationError(
                "a TensorNode needs either shape_in or pass_time=True (with neither, "
                "tensor_func would get no argument)", attr="pass_time", obj=self)

    @staticmethod
    def _infer_shape_out(func):
        """``shape_out`` from ``func``'s output on a minibatch of 1: its shape
        after the first axis, whatever that axis's size (NengoDL's rule).

        A Keras layer is traced (`_TensorFunc.trace`: built, eagerly where it
        has a build of its own, but nothing runs, as NengoDL's
        ``compute_output_signature``), so a stateful layer (a
        counter, a random generator) starts the simulation from its initial
        state; any other function is called once on zeros, as in NengoDL."""
        tf = _tf()
        keras = isinstance(func.tensor_func, tf.keras.layers.Layer)
        out = None
        if keras:
            # (its own build eagerly first, not in the trace: `build_layer`;
            # on a minibatch of 1, which the simulator does not know yet)
            TensorNode._build_for_shape_out(func)
        try:
            if keras:
                out = TensorNode._traced_output(func)
            if out is None:
                x = None if func.shape_in is None else tf.zeros((1,) + func.shape_in,
                                                                tf.float32)
                out = func.call_tensors(tf.constant(0.0), x, training=False)
        except Exception as e:  # noqa: BLE001 - the user's code: any error is theirs
            what = ("calling its Keras layer on inputs of this TensorNode's signature" if keras
                    else "calling the TensorNode's function")
            raise ValidationError(
                f"inferring shape_out by {what} produced an error ({_brief(e)}); it was "
                f"called as {TensorNode._inference_call(func, keras)}; give "
                f"TensorNode(..., shape_out=...) to skip this call", attr="tensor_func",
                obj=func.node) from e
        return TensorNode._checked_shape_out(func, out)

    @staticmethod
    def _inference_call(func, keras):
        """How `_infer_shape_out` calls ``func``, for its error messages:
        ``tensor_func([t, x]) with t the time ... and x zeros of shape ...``."""
        names = ["t"] * func.pass_time + ["x"] * (func.shape_in is not None)
        if keras:  # (NengoDL calls a Keras layer on one input, or a list of two)
            call = f"[{', '.join(names)}]" if len(names) > 1 else names[0]
        else:
            call = ", ".join(names)
        meaning = ["t the time (a scalar tensor)"] if func.pass_time else []
        if func.shape_in is not None:
            meaning.append(f"x zeros of shape {(1,) + func.shape_in}")
        return f"tensor_func({call}) with {' and '.join(meaning)}"

    @staticmethod
    def _build_for_shape_out(func):
        """Builds Keras layer ``func`` (`_TensorFunc.build_layer`) on a
        minibatch of 1 before ``shape_out`` is inferred; an error in its
        ``build`` is reported as the build's, not as its call's."""
        try:
            func.build_layer(1)
        except Exception as e:  # noqa: BLE001 - the user's code: any error is theirs
            raise ValidationError(
                f"inferring shape_out by building its Keras layer for inputs of this "
                f"TensorNode's signature produced an error ({_brief(e)}); it was built as "
                f"build({func.build_shape(1)}), to be called as "
                f"{TensorNode._inference_call(func, True)}; give TensorNode(..., "
                f"shape_out=...) to skip this step", attr="tensor_func", obj=func.node) from e

    @staticmethod
    def _traced_output(func):
        """The output of Keras layer ``func`` traced on a minibatch of 1
        (`_TensorFunc.trace`: the layer gets built, nothing runs, as with
        NengoDL's ``compute_output_signature``); None where it cannot be
        traced or its traced shape is not fully known (the caller then calls
        it once, which reports the error, or works eagerly)."""
        tf = _tf()
        x = None if func.shape_in is None else (1,) + func.shape_in
        try:
            out = func.trace(x, tf.float32, training=False)
        except Exception:  # noqa: BLE001 - the eager call says what is wrong
            return None
        known = (tf.is_tensor(out) and out.shape.rank is not None and out.shape.rank >= 1
                 and None not in out.shape[1:])
        return out if known else None

    @staticmethod
    def _checked_shape_out(func, out):
        """``shape_out`` from ``out`` (what ``func`` returned on a minibatch of
        1), which must be a tensor of known shape, sizes >= 1."""
        tf = _tf()
        if not tf.is_tensor(out):
            raise ValidationError(
                f"inferring shape_out: tensor_func must return a Tensor of shape "
                f"(minibatch,) + shape_out (got {type(out).__name__})", attr="tensor_func",
                obj=func.node)
        if out.shape.rank is None or out.shape.rank < 1 or None in out.shape[1:]:
            raise ValidationError(
                f"inferring shape_out: tensor_func must return a Tensor of shape "
                f"(minibatch,) + shape_out (got shape {tuple(out.shape)})",
                attr="tensor_func", obj=func.node)
        shape_out = tuple(int(s) for s in out.shape[1:])
        if any(s < 1 for s in shape_out):
            raise ValidationError(
                f"inferring shape_out: every size must be >= 1 (tensor_func returned "
                f"shape {tuple(out.shape)})", attr="tensor_func", obj=func.node)
        return shape_out


def is_tensor_node(obj):
    """Whether ``obj`` is a `TensorNode`: a Node that is never an input Node
    (its output is computed, as in NengoDL, even without input)."""
    return isinstance(obj, TensorNode)


def not_input_node_reason(node):
    """Why Node ``node`` of the network is no input Node (for error messages)."""
    if is_tensor_node(node):
        return ("is a TensorNode, not an input Node (its output is computed by its "
                "tensor_func; data can only replace nengo.Nodes with size_in == 0)")
    return "is not an input Node (size_in must be 0)"


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
        # (on the host: on a device, TensorFlow's stream orders the copy)
        self.identity = (xp is np and len(xs) == len(outs) > 0
                         and _inference_identity(self.func))

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

    def _output(self, training=False):
        """``tensor_func``'s output for this step (None without output), checked
        (`_TensorFunc.check_output`) and in the simulator's dtype."""
        tf = _tf()
        t = tf.constant(float(self.time[()]) if self.time is not None else 0.0,
                        self.dtype.name)
        x = None if self.func.shape_in is None or not self.xs else self._input()
        y = self.func.call_tensors(t, x, training=training)
        if not self.outs:
            return None
        # (no broadcasting of a batch of 1: NengoDL refuses it, and training would)
        self.func.check_output(y, len(self.outs), self.dtype)
        return y if y.dtype == self.dtype else tf.cast(y, self.dtype.name)

    def check(self, training=False):
        """Checks ``tensor_func``'s output, writing nothing: what NengoDL checks
        when it builds the model.  The function is traced (as NengoDL's symbolic
        build does), not run, so what it changes when it runs (a stateful
        layer's ``assign_add``) happens in the simulation's steps only; one that
        cannot be traced (or fails) is called once on the current input.

        ``training``: the flag a Keras layer gets (True where the simulator
        always runs in training mode, ``configure_settings(learning_phase=True)``).
        An error of the function itself is a BuildError naming the TensorNode
        (TensorFlow's own messages name only its ops).  (A Keras layer with a
        ``build`` of its own was built before: `Simulator._keras_initial`.)"""
        try:
            self._traced_check(training)
            return
        except NengoException:
            raise
        except Exception:  # (the call below raises what is wrong, or works eagerly)
            pass
        try:
            self._output(training)
        except NengoException:
            raise
        except Exception as e:
            raise BuildError(f"{self.func}: its function failed when called on its input "
                             f"(shape {(len(self.xs),) + tuple(self.func.shape_in or ())}) "
                             f"while building the simulator: {type(e).__name__}: {e}") from e
        if self.sync is not None:
            self.sync()

    def _traced_check(self, training):
        """`check_output` of ``tensor_func``'s output traced on inputs of this
        step's shapes and dtype (nothing runs)."""
        x = None
        if self.func.shape_in is not None and self.xs:
            x = (len(self.xs),) + tuple(self.func.shape_in)
        y = self.func.trace(x, self.dtype.name, training)
        if self.outs:
            self.func.check_output(y, len(self.outs), self.dtype)

    def __call__(self):
        if self.identity:  # (the simulation is never Keras's training)
            for x, dst in zip(self.xs, self.outs):
                if not np.isfinite(x).all():
                    raise SimulationError(f"{self.func}: tensor_func returned a non-finite "
                                          "value")
                dst[...] = x.reshape(dst.shape)
            return
        y = self._output()
        if y is None:
            return
        if self.sync is not None:
            self.sync()  # TensorFlow's stream done
        out = from_tensor(self.xp, y)
        n = len(self.outs)
        out = out.reshape(n, self.outs[0].size)
        if not bool(self.xp.isfinite(out).all()):
            raise SimulationError(f"{self.func}: tensor_func returned a non-finite value")
        for trial, dst in enumerate(self.outs):
            dst[...] = out[trial].reshape(dst.shape)
        if self.sync is not None:
            self.sync()  # the output written before the simulator's next kernels


INFERENCE_IDENTITIES = ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
                        "GaussianNoise", "GaussianDropout", "AlphaDropout",
                        "ActivityRegularization")


def _inference_identity(func):
    """Whether TensorNode function ``func`` is a Keras layer that gives its
    input unchanged outside training (dropout, noise, an activity loss: the
    Converter runs them as TensorNodes for ``fit``'s sake); the simulation
    copies the input instead of calling TensorFlow at every step."""
    layers = _tf().keras.layers
    kinds = tuple(getattr(layers, name) for name in INFERENCE_IDENTITIES
                  if hasattr(layers, name))
    layer = getattr(func.tensor_func, "layer_func", func.tensor_func)  # (a Converter's call)
    # (Keras's own classes: a subclass may act otherwise, e.g. drop at inference too)
    return (type(layer) in kinds and not func.pass_time
            and func.shape_in is not None
            and int(np.prod(func.shape_in)) == int(np.prod(func.shape_out)))


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

    ``layer_args`` go to the `TensorNode` (e.g. ``label``; without one it is
    unlabeled, as in NengoDL) or the Ensemble (e.g. ``max_rates``).  The new
    input Connection (``transform``, ``synapse``) is not trainable, as in
    NengoDL; ``return_conn=True`` also returns it.
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
    """Marks ``conn`` not trainable in the outermost config being built
    (``nengo.Config.context[0]``, as NengoDL does): a Layer made inside a
    sub-network is non-trainable in the top-level network's config, where the
    simulator (and ``net.config[conn].trainable``) sees it."""
    from .config import declare_trainable  # noqa: PLC0415

    config = nengo.Config.context[0]
    declare_trainable(config, nengo.Connection)
    config[conn].trainable = False


def tensor_layer(input, layer_func, **kwargs):
    """NengoDL 2's ``tensor_layer(input, layer_func, shape_in=None, synapse=None,
    transform=1, return_conn=False, **layer_args)``, deprecated in NengoDL 3:
    the same as ``Layer(layer_func)(input, **kwargs)``."""
    warnings.warn("nengo_dl.tensor_layer is deprecated; use nengo_dl.Layer instead",
                  DeprecationWarning, stacklevel=2)
    return Layer(layer_func)(input, **kwargs)
