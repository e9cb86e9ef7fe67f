"""Rewriting the operator graph: operators replaced by others that keep their
dependencies (used by `nengo_cuda.fusion` and `nengo_cuda.deferral`)."""


def replace_operators(step_order, dg, new_ops):
    """The step order and dependency graph with each operator in ``new_ops``
    replaced by its list of operators.

    A new operator takes the place of the first operator (in ``step_order``)
    that lists it, and inherits every dependency of every operator that lists
    it: each of their predecessors precedes it, each of their successors
    follows it.  Operators listed for one old operator have no dependencies
    among themselves.
    """
    if not new_ops:
        return step_order, dg
    order, placed = [], set()
    for op in step_order:
        for new in new_ops.get(op, [op]):
            if id(new) not in placed:
                placed.add(id(new))
                order.append(new)
    new_dg = {}
    for op, succs in dg.items():
        targets = {t for s in succs for t in new_ops.get(s, [s])}
        for new in new_ops.get(op, [op]):
            new_dg.setdefault(new, set()).update(targets - {new})
    return order, new_dg
