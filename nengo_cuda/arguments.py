"""The Simulator's arguments, checked: dtype, dt, seed, counts, and the
``data`` of a run (NengoDL's input feeds).  Bad input is a ValidationError
that names the argument and what was expected."""

import numbers

import nengo
import numpy as np
from nengo.exceptions import ValidationError

from .training.names import by_name, zip_with_objects
from .training.tensor_node import not_input_node_reason

DTYPES = {"float32": np.float32, "float64": np.float64}


def data_or_progress(progress_bar, data):
    """``(progress_bar, data)``: a ``progress_bar`` that is data (a dict, array
    or list: NengoDL's second positional argument) is the data."""
    if data is None and isinstance(progress_bar, (dict, np.ndarray, list, tuple)):
        return None, progress_bar
    return progress_bar, data


def check_dtype(dtype):
    if dtype is None:
        return np.dtype(np.float32)
    dtype = getattr(dtype, "as_numpy_dtype", dtype)  # a tf.DType (NengoDL's setting)
    try:
        # ("f8", "double", "<f4", float: their names; not the string "float",
        # float64 to NumPy, float32 to TensorFlow, whose names NengoDL's are)
        name = None if isinstance(dtype, str) and dtype == "float" else np.dtype(dtype).name
    except TypeError:
        name = None
    if name not in DTYPES:
        raise ValidationError(
            f"Unsupported dtype {dtype!r}; expected 'float32' or 'float64'", attr="dtype"
        )
    return np.dtype(DTYPES[name])


def check_positive_int(value, attr, or_none=True):
    if value is None and or_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValidationError(
            f"{attr} must be a positive integer{' or None' if or_none else ''} "
            f"(got {value!r})",
            attr=attr,
        )
    if value < 1:
        raise ValidationError(f"{attr} must be >= 1 (got {value})", attr=attr)
    return int(value)


def is_real(x):
    """A real number (Python, NumPy, or a 0-d array), not a bool."""
    if isinstance(x, np.ndarray) and x.ndim == 0:
        return x.dtype.kind in "iuf"
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_))


def check_dt(dt):
    # (float first: NumPy's isfinite takes no Fraction)
    if not (is_real(dt) and np.isfinite(float(dt)) and dt > 0):
        raise ValidationError(f"dt must be a positive number (got {dt!r})", attr="dt")
    return float(dt)


def check_seed(seed):
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise ValidationError(f"seed must be an integer (got {seed!r})", attr="seed")
    if not 0 <= seed < 2**32:
        raise ValidationError(f"seed must be in [0, 2**32) (got {seed})", attr="seed")
    return int(seed)


def check_data(data, steps, input_nodes, model, n_trials, dtype):
    """``run_steps``' ``data``, validated: ``{input Node: array (n_trials,
    steps, size_out)}`` in ``dtype`` (keys: Nodes, or their names as in
    ``predict``).  ``input_nodes``: the simulator's input
    Nodes in order (data given as a list of arrays goes to them so, as in
    NengoDL); ``model``: the built model (to tell other Nodes of it from
    objects of other networks)."""
    if data is None:
        return {}
    if not isinstance(data, dict):  # NengoDL: arrays for the input Nodes in order
        if not isinstance(data, (list, tuple, np.ndarray)):
            raise ValidationError(
                "data must be a dict mapping input Nodes to arrays (or an array, or a "
                f"list of arrays, for the input Nodes in order); got {type(data).__name__}",
                attr="data")
        data = zip_with_objects(data, list(input_nodes), "data", "input Nodes")
    feeds = {}
    for node, values in data.items():
        node = by_name(node, list(input_nodes), "node")  # (NengoDL's names work too)
        if node not in input_nodes:
            what = (
                not_input_node_reason(node)
                if isinstance(node, nengo.Node) and node in model.sig
                else "is not a Node of this network"
            )
            raise ValidationError(f"data key {node!r} {what}", attr="data")
        expected = (n_trials, steps, node.size_out)
        values = as_array(node, values, "data")
        if values.shape != expected:
            raise ValidationError(
                f"data for {node!r} has shape {values.shape}, which does not match "
                f"expected size: expected {expected} (minibatch_size, n_steps, "
                "node.size_out)",
                attr="data",
            )
        feeds[node] = finite_values(node, values, dtype, "data", "[trial, step, dim]")
    return feeds


def as_array(obj, values, attr):
    """``values`` as an array; a ValidationError naming ``obj`` where they do
    not make one (ragged nested lists)."""
    try:
        return np.asarray(values)
    except ValueError as e:
        raise ValidationError(f"data for {obj!r} does not make an array ({e})",
                              attr=attr) from None


def finite_values(obj, values, dtype, attr, axes):
    """``values`` as a contiguous ``dtype`` array; a ValidationError naming
    ``obj`` where they are not real numbers or one is NaN or inf in ``dtype``
    (its index along ``axes``)."""
    if values.dtype.kind not in "biuf":
        raise ValidationError(
            f"data for {obj!r} must be real numbers (got dtype {values.dtype})", attr=attr)
    with np.errstate(over="ignore"):
        values = np.ascontiguousarray(values, dtype=dtype)
    if not np.all(np.isfinite(values)):
        bad = np.argwhere(~np.isfinite(values))[0]
        raise ValidationError(
            f"data for {obj!r} has a non-finite value (NaN or inf in {dtype.name}) at "
            f"{axes} = {bad.tolist()}", attr=attr)
    return values
