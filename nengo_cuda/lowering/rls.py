"""SimRLS (Nengo's recursive least squares rule) lowers to ``learning_rls``.

One instruction per operator (see ``csrc/cpu/instr_rls.cpp``): ``P`` (the
running inverse correlation estimate, n x n) and ``delta`` (m x n) are strided
matrix views of trial state, ``r`` (n) and ``error`` (m) strided vectors.
"""

from nengo.builder.learning_rules import SimRLS

from ..program import Instruction
from .common import all_float, matrix_view, vector_view
from .registry import register


@register(SimRLS)
class RlsLowering:
    @staticmethod
    def key(op, layout):
        r, e, d, P = op.pre_filtered, op.error, op.delta, op.inv_gamma
        if not all_float(layout, [r, e, d, P]) or r.ndim != 1 or e.ndim != 1:
            return None
        n, m = r.size, e.size
        if n == 0 or P.shape != (n, n) or d.shape != (m, n):
            return None
        if layout.is_shared(P) or layout.is_shared(d):
            return None
        if any(s.base in (P.base, d.base) for s in (r, e)) or P.base is d.base:
            return None  # aliasing: leave NumPy's semantics to make_step
        return ("learning_rls",)

    @staticmethod
    def lower(ops, layout):
        instrs = []
        for op in ops:
            P, P_rs, P_cs = matrix_view(layout, op.inv_gamma)
            d, d_rs, d_cs = matrix_view(layout, op.delta)
            r, r_s = vector_view(layout, op.pre_filtered)
            e, e_s = vector_view(layout, op.error)
            scalars = dict(n=op.pre_filtered.size, m=op.error.size, P=P, P_rs=P_rs, P_cs=P_cs,
                           r=r, r_s=r_s, error=e, error_s=e_s, delta=d, delta_rs=d_rs,
                           delta_cs=d_cs)
            instrs.append(Instruction("learning_rls", [op], scalars=scalars))
        return instrs
