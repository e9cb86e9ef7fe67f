"""SimPES, SimBCM, SimOja and SimVoja lower to one kernel per rule and stage.

Each operator becomes a block of its rule's instruction (see
``csrc/cpu/instr_learning.cpp``): the weight change ``delta`` (rows x cols) is a
strided matrix view, ``pre`` (cols) and per-row operands (rows) strided vector
views, the weights/encoders a rule reads a matrix view of delta's shape.
Operators whose signals do not have these shapes run through callbacks, where
Nengo's own ``make_step`` decides what happens.
"""

from dataclasses import dataclass, field

import numpy as np
from nengo.builder.learning_rules import SimBCM, SimOja, SimPES, SimVoja

from ..deferral import DeferredDelta
from ..program import Instruction
from .common import address_span, all_float, color_disjoint_spans, matrix_view, vector_view
from .registry import register


@dataclass(frozen=True)
class Rule:
    """How one rule's operands map to kernel fields (field name -> op attribute)."""

    kind: str
    pre: str
    rows: dict  # vectors of length rows
    matrices: dict = field(default_factory=dict)  # matrices of delta's shape
    block_params: tuple = ()  # scalar op attributes, one value per block


RULES = {
    SimPES: Rule("learning_pes", "pre_filtered", {"error": "error"}),
    SimBCM: Rule("learning_bcm", "pre_filtered", {"post": "post_filtered", "theta": "theta"}),
    SimOja: Rule(
        "learning_oja",
        "pre_filtered",
        {"post": "post_filtered"},
        matrices={"weights": "weights"},
        block_params=("beta",),
    ),
    SimVoja: Rule(
        "learning_voja",
        "pre_decoded",
        {"post": "post_filtered"},
        matrices={"encoders": "scaled_encoders"},
    ),
}


def _supported(op, rule, layout, inc=False):
    """True when ``op``'s operands fit the kernel's block layout (``inc``: the
    kernel adds the change to delta, which may also be the matrix it reads)."""
    delta, pre = op.delta, getattr(op, rule.pre)
    rows_sigs = [getattr(op, a) for a in rule.rows.values()]
    mats = [getattr(op, a) for a in rule.matrices.values()]
    extra = [op.learning_signal] if isinstance(op, SimVoja) else []
    if not all_float(layout, [delta, pre, *rows_sigs, *mats, *extra]):
        return False
    if delta.ndim != 2 or pre.ndim != 1:
        return False
    rows, cols = delta.shape
    if pre.size != cols or any(s.ndim != 1 or s.size != rows for s in rows_sigs):
        return False
    if any(m.shape != delta.shape for m in mats):
        return False
    if any(delta.base is s.base and not (inc and s is delta) for s in op.reads):
        return False  # in-place aliasing: leave NumPy's semantics to make_step
    if isinstance(op, SimPES):
        # 1 / n_pre scales the rate (Nengo fails for n_pre = 0); Nengo < 4 had encoders.
        return cols > 0 and getattr(op, "encoders", None) is None
    if isinstance(op, SimVoja):
        scale = np.asarray(op.scale)
        return op.learning_signal.size == 1 and scale.shape == (rows,)
    return True


def _blocks(ops, rule, layout):
    """ints and floats of one instruction, one block per op."""
    ints, floats = {}, {"learning_rate": [], **{p: [] for p in rule.block_params}}

    def put(name, view):  # view: (address, stride) or (address, row stride, col stride)
        suffixes = ("", "_s") if len(view) == 2 else ("", "_rs", "_cs")
        for suffix, v in zip(suffixes, view):
            ints.setdefault(name + suffix, []).append(v)

    for op in ops:
        rows, cols = op.delta.shape
        ints.setdefault("rows", []).append(rows)
        ints.setdefault("cols", []).append(cols)
        put("delta", matrix_view(layout, op.delta))
        put("pre", vector_view(layout, getattr(op, rule.pre)))
        for name, attr in rule.rows.items():
            put(name, vector_view(layout, getattr(op, attr)))
        for name, attr in rule.matrices.items():
            put(name, matrix_view(layout, getattr(op, attr)))
        floats["learning_rate"].append(op.learning_rate)
        for p in rule.block_params:
            floats[p].append(getattr(op, p))
        if isinstance(op, SimVoja):
            ints.setdefault("signal", []).append(layout.address(op.learning_signal))
            floats.setdefault("scale", []).append(np.asarray(op.scale, dtype=np.float64))
    if "scale" in floats:
        floats["scale"] = np.concatenate(floats["scale"])
    return ints, floats


@register(*RULES)
class LearningRuleLowering:
    @staticmethod
    def key(op, layout):
        rule = RULES[type(op)]
        return (rule.kind,) if _supported(op, rule, layout) else None

    @staticmethod
    def lower(ops, layout):
        return _lower(ops, ops, layout)


@register(DeferredDelta)
class DeferredDeltaLowering:
    """A rule's change added to the weights (`nengo_cuda.deferral`): the rule's
    kernel with ``inc``, on the vectors the rule saved."""

    @staticmethod
    def key(op, layout):
        rule = RULES[type(op.rule)]
        return (rule.kind, "inc") if _supported(op.rule, rule, layout, inc=True) else None

    @staticmethod
    def lower(ops, layout):
        return _lower(ops, [op.rule for op in ops], layout, scalars={"inc": 1})


def _lower(ops, rules, layout, scalars=None):
    """Instructions for ``rules`` (the operators ``ops`` stand for)."""
    rule = RULES[type(rules[0])]
    # Ops in one instruction run in parallel: never two writing one element.
    # (Nengo's optimizer often makes the deltas disjoint views of one base.)
    groups = color_disjoint_spans(range(len(ops)),
                                  lambda i: address_span(layout, rules[i].delta))
    return [
        Instruction(rule.kind, [ops[i] for i in group], ints=ints, floats=floats,
                    scalars=dict(scalars or {}))
        for group in groups
        for ints, floats in [_blocks([rules[i] for i in group], rule, layout)]
    ]
