"""DotInc, BsrDotInc and SparseDotInc lower to batched ragged mat-vec kernels.

All dense products of one stage become the blocks of one ``dot_inc``
instruction (split only where two blocks increment the same output, so that
blocks can run in parallel).  A block is a strided view
``Y[r] += sum_c A[r, c] X[c]``, or, for a `~nengo_cuda.fusion.CopyThenDotInc`,
``Y[r] = I[r] + sum_c A[r, c] X[c]`` (fields ``I``, ``I_s``; ``I = -1``: none).
"""

import numpy as np
import scipy.sparse
from nengo.builder.operator import BsrDotInc, DotInc, SparseDotInc

from ..fusion import CopyThenDotInc
from ..program import Instruction
from .common import all_float, color_disjoint
from .common import vector_view as _vec
from .registry import register

# A_volatile: A's base is not Nengo-readonly, so Python code may write it through a
# view it keeps (a kernel's packed copy is then renewed every run)
_FIELDS = ("rows", "cols", "A", "A_rs", "A_cs", "A_volatile", "X", "X_s", "Y", "Y_s", "I",
           "I_s")


def _dense_blocks(op, layout):
    """Blocks (dicts of _FIELDS) for a DotInc, or None when not a mat-vec."""
    A, X, Y = op.A, op.X, op.Y
    if X.ndim != 1 or Y.ndim != 1:
        return None
    if A.ndim == 2 and A.shape == (Y.shape[0], X.shape[0]):
        a_rs, a_cs = layout.strides(A)
    elif A.ndim == 1 and A.shape == X.shape and Y.shape == (1,):
        a_rs, a_cs = 0, layout.strides(A)[0]
    else:
        return None
    x, x_s = _vec(layout, X)
    y, y_s = _vec(layout, Y)
    rows = Y.shape[0]
    return [dict(rows=rows, cols=X.shape[0], A=layout.address(A), A_rs=a_rs, A_cs=a_cs,
                 A_volatile=int(not A.base.readonly), X=x, X_s=x_s, Y=y, Y_s=y_s, I=-1, I_s=0)]


def _bsr_blocks(op, layout):
    """Blocks for a BsrDotInc: A is (k, r, c); block j of block-row i is A[j]."""
    A, X, Y = op.A, op.X, op.Y
    if A.ndim != 3 or X.ndim != 1 or Y.ndim != 1:
        return None
    _, r, c = A.shape
    s0, a_rs, a_cs = layout.strides(A)
    blocks = []
    for i in range(len(op.indptr) - 1):
        for j in range(op.indptr[i], op.indptr[i + 1]):
            x, x_s = _vec(layout, X, op.indices[j] * c)
            y, y_s = _vec(layout, Y, i * r)
            blocks.append(dict(rows=r, cols=c, A=layout.address(A) + j * s0, A_rs=a_rs,
                               A_cs=a_cs, A_volatile=int(not A.base.readonly), X=x, X_s=x_s, Y=y,
                               Y_s=y_s, I=-1, I_s=0))
    return blocks


def _blocks(op, layout):
    if isinstance(op, CopyThenDotInc):
        return _initial_values(op, layout)
    if isinstance(op, BsrDotInc):
        return _bsr_blocks(op, layout)
    return _dense_blocks(op, layout)


def _initial_values(op, layout):
    """The products' blocks, each starting from its rows of the copied constant
    (fusion guarantees one block per element of the copy's destination)."""
    dst, dst_s = _vec(layout, op.copy.dst)
    src, src_s = _vec(layout, op.copy.src)
    blocks = []
    for dot in op.products:
        for b in _blocks(dot, layout):
            # element (Y - dst) / dst_s of the destination: the same of the source
            # (fusion takes only copies with positive strides)
            first = (b["Y"] - dst) // dst_s
            b["I"], b["I_s"] = src + first * src_s, b["Y_s"] // dst_s * src_s
            blocks.append(b)
    return blocks


def _nengo_ops(op):
    return op.parts if isinstance(op, CopyThenDotInc) else [op]


def _block_outputs(block):
    return block["Y"] + np.arange(block["rows"]) * block["Y_s"]


@register(DotInc, BsrDotInc, CopyThenDotInc)
class DotIncLowering:
    @staticmethod
    def key(op, layout):
        if isinstance(op, CopyThenDotInc):
            if not all_float(layout, [op.copy.src, op.copy.dst]):
                return None
            products = op.products
        else:
            products = [op]
        for dot in products:
            if not all_float(layout, [dot.A, dot.X, dot.Y]) or not _blocks(dot, layout):
                return None
        return ("dot_inc",)

    @staticmethod
    def lower(ops, layout):
        tagged = [(op, b) for op in ops for b in _blocks(op, layout)]
        instrs = []
        for group in color_disjoint(tagged, lambda ob: _block_outputs(ob[1])):
            ints = {f: [b[f] for _, b in group] for f in _FIELDS}
            group_ops = list({id(op): op for op, _ in group}.values())
            nengo_ops = [part for op in group_ops for part in _nengo_ops(op)]
            instrs.append(Instruction("dot_inc", nengo_ops, ints=ints))
        return instrs


def _csr(sig):
    value = sig.initial_value
    if hasattr(value, "allocate"):  # nengo.transforms.SparseMatrix
        value = value.allocate()
    return scipy.sparse.csr_matrix(value)


@register(SparseDotInc)
class SparseDotIncLowering:
    @staticmethod
    def key(op, layout):
        if not (op.A.readonly and op.X.ndim == 1 and op.Y.ndim == 1):
            return None
        if not all_float(layout, [op.X, op.Y]) or op.A.shape != (op.Y.size, op.X.size):
            return None
        return ("sparse_dot_inc",)

    @staticmethod
    def lower(ops, layout):
        instrs = []
        for op in ops:
            A = _csr(op.A)
            x, x_s = _vec(layout, op.X)
            y, y_s = _vec(layout, op.Y)
            instrs.append(
                Instruction(
                    "sparse_dot_inc",
                    [op],
                    ints={"indptr": A.indptr, "indices": A.indices},
                    floats={"data": A.data},
                    scalars={"X": x, "X_s": x_s, "Y": y, "Y_s": y_s, "cols": A.shape[1]},
                )
            )
        return instrs
