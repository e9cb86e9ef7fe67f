"""Names of Probes and input Nodes in data and loss dicts (NengoDL's ``get_name``).

A name is the object's label with characters other than letters, digits, ``_``
and ``.`` replaced by ``_`` (``"probe"`` or ``"node"`` without a label); repeats
get ``_1``, ``_2``, ... in the model's order.  No TensorFlow here.
"""


def io_names(objs, default):
    """{obj: unique name} for Probes (``default="probe"``) or input Nodes
    (``"node"``)."""
    names, used = {}, {}
    for obj in objs:
        label = obj.label or ""
        base = "".join(c if c.isalnum() or c in "_." else "_" for c in label) or default
        n = used.get(base, 0)
        names[obj] = base if n == 0 else f"{base}_{n}"
        used[base] = n + 1
    return names
