"""``Converter(temporal_model=True)``: a Keras model over time as a Nengo network.

A temporal model's tensors are ``(batch, steps, ...)``; the converted network
runs one Nengo step per Keras time step, so every layer must apply one and the
same function to each step on its own (Dense, activations, merges over the
other axes, ...).  Such a layer converts as in a model without the time axis.
A layer that mixes steps (a recurrent layer, a convolution or pooling along
time, a Flatten over time) or treats them differently (a BatchNormalization
over the time axis) has no per-step form, native or TensorNode: it is refused
by name.  A TimeDistributed layer applies its wrapped layer to each step by
definition: it converts as that layer without the time axis
(``Converter._time_distributed``).

`time_mixing` finds such layers by running the layer itself on a probe input
(Keras's own behaviour, no list of layer types to keep up to date): one random
step repeated over all steps must give one output repeated over all steps, and
changing one step of the input must change that step of the output alone.
"""

import numpy as np

from .application import call_as_applied, input_dtypes, is_float

# steps of the probe input when the model leaves the number of steps open
PROBE_STEPS = 4


def time_mixing(layer, node):
    """Why application ``node`` of ``layer`` is not one function per time step
    (a string), or None when it is."""
    in_shapes = [tuple(t.shape) for t in node.input_tensors]
    out_shapes = [tuple(t.shape) for t in node.output_tensors]
    if any(len(s) < 2 for s in in_shapes + out_shapes):
        return "its tensors have no time axis"
    steps = {s[1] for s in in_shapes + out_shapes}
    if len(steps) > 1:
        return f"it changes the time axis (steps {sorted(steps, key=str)})"
    if any(d is None for s in in_shapes for d in s[2:]):
        return "its input shape is not fully specified after the time axis"
    n = next(iter(steps)) or PROBE_STEPS
    rng = np.random.RandomState(0)
    dtypes = input_dtypes(node)
    step = [_probe_values(rng, (1, 1) + s[2:], d) for s, d in zip(in_shapes, dtypes)]
    same = [np.repeat(x, n, axis=1) for x in step]
    changed = [x.copy() for x in same]
    k = n // 2
    for x, d in zip(changed, dtypes):
        x[:, k] = _probe_values(rng, x.shape[2:], d)
    try:
        out_same, out_changed = _call(layer, node, same), _call(layer, node, changed)
    except Exception as e:  # noqa: BLE001 - any failure means no per-step check
        return f"it could not be run on a probe input ({type(e).__name__}: {e})"
    others = np.arange(n) != k
    if any(not np.allclose(a[:, others], b[:, others], rtol=1e-5, atol=1e-6)
           for a, b in zip(out_same, out_changed)):
        return "it mixes time steps"
    if any(not np.allclose(a, a[:, :1], rtol=1e-5, atol=1e-6) for a in out_same):
        return "it treats time steps differently"
    return None


def _probe_values(rng, shape, dtype):
    """Random probe values of ``shape`` in a Keras tensor's ``dtype``: floats in
    [-1, 1], else 0 or 1 (a bool mask, an index into anything)."""
    if is_float(dtype):
        return rng.uniform(-1, 1, shape)
    return rng.randint(0, 2, shape).astype(str(dtype))


def _call(layer, node, inputs):
    """``layer``'s outputs (arrays) on ``inputs`` (arrays, one per input tensor
    of Keras node ``node``), called as that application called it."""
    import tensorflow as tf  # noqa: PLC0415

    values = [tf.constant(x, tf.float32 if x.dtype.kind == "f" else None) for x in inputs]
    out = call_as_applied(layer, node, values, training=False)
    return [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])]
