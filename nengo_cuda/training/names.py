"""Names of Probes and input Nodes in data and loss dicts (NengoDL's ``get_name``).

A name is the object's label with characters other than letters, digits, ``_``
and ``.`` replaced by ``_`` (``"probe"`` or ``"node"`` without a label); repeats
get ``_1``, ``_2``, ... in the model's order (repeats regardless of case, as
TensorFlow counts them).  No TensorFlow here.
"""

import numpy as np
from nengo.exceptions import ValidationError

from ..user_warnings import warn


def io_names(objs, default):
    """{obj: unique name} for Probes (``default="probe"``) or input Nodes
    (``"node"``)."""
    names, used = {}, {}
    for obj in objs:
        label = obj.label or ""
        base = "".join(c if c.isalnum() or c in "_." else "_" for c in label) or default
        # repeats counted regardless of case, as TensorFlow names them (so NengoDL:
        # labels "aa", "aa", "Aa" are "aa", "aa_1", "Aa_2")
        n = used.get(base.lower(), 0)
        names[obj] = base if n == 0 else f"{base}_{n}"
        used[base.lower()] = n + 1
    return names


def by_name(key, objs, default):
    """The object of ``objs`` that the string ``key`` names (its `io_names` name,
    else its label); ``key`` itself if it is not a string or names none."""
    if not isinstance(key, str):
        return key
    names = io_names(objs, default)
    return next((o for o in objs if names[o] == key),
                next((o for o in objs if o.label == key), key))


def zip_with_objects(data, objs, what, kind):
    """Data given as an array (or a list of arrays) instead of a dict, as
    NengoDL takes it: {obj: array} with the first array for the first of
    ``objs`` (input Nodes in the network's ``all_nodes`` order, or Probes in the
    model's order) and so on; objects without data keep their own outputs
    (Nodes).  A count that differs warns, as in NengoDL (a converted Keras
    model has a constant bias Node beside its input).  ``what``: the argument's
    name; ``kind``: what ``objs`` are, for the messages."""
    arrays = list(data) if isinstance(data, (list, tuple)) else [data]
    if what == "input" and len(arrays) == len(objs) + 1 and _is_n_steps(arrays[-1]):
        arrays = arrays[:-1]  # NengoDL's Keras model's last input: n_steps (the data's)
    if not objs:
        raise ValidationError(f"{what} data given, but the network has no {kind}", attr=what)
    if len(arrays) != len(objs):
        warn(f"the number of {what} arrays ({len(arrays)}) does not match number of "
             f"{type(objs[0]).__name__}s ({len(objs)}: the {kind} "
             f"{[str(k) for k in objs]}); they go to the first ones in that order: give a "
             "dict {object: array} to say which")
    return dict(zip(objs, arrays))


def _is_n_steps(array):
    """Whether ``array`` is NengoDL's ``n_steps`` input: (batch, 1) whole numbers."""
    array = np.asarray(array)
    return (array.ndim == 2 and array.shape[1] == 1 and array.dtype.kind in "iuf"
            and np.array_equal(array, np.round(array)))
