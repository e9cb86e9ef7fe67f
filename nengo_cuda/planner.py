"""Planner: from Nengo's operators to an ordered program of merged groups.

1. Order: Nengo's dependency graph (built and, with ``optimize``, merged by
   Nengo's own optimizer, exactly as ``nengo.Simulator`` does), and its
   topological step order, which also fixes the order of random seeds.
2. Stage: each operator gets the earliest stage after all operators it depends
   on.  Operators in one stage are independent, so they may run in any order.
3. Merge: within a stage, operators with the same lowering key become one
   group, lowered to native instructions; operators without a kernel become
   callback instructions (`nengo_cuda.fallback.FallbackGroup`).
"""

from collections import OrderedDict

from nengo.builder.optimizer import optimize as nengo_optimize
from nengo.builder.processes import SimProcess
from nengo.utils.graphs import toposort
from nengo.utils.simulator import operator_dependency_graph

from .fallback import FallbackGroup
from .lowering import find_lowering
from .program import Instruction, Program


def order_operators(model, optimize):
    """Nengo's dependency graph and step order (runs Nengo's optimizer if asked)."""
    dg = operator_dependency_graph(model.operators)
    if optimize:
        nengo_optimize(model, dg)
    step_order = [op for op in toposort(dg) if hasattr(op, "make_step")]
    return dg, step_order


def stages(dg, step_order):
    """Stage index of each operator: 1 + the largest stage of its predecessors."""
    stage = {op: 0 for op in step_order}
    for op in step_order:
        for succ in dg.get(op, ()):
            if succ in stage:
                stage[succ] = max(stage[succ], stage[op] + 1)
    return stage


def written_bases(ops):
    """Base signals that some operator sets, increments or updates."""
    return {s.base for op in ops for s in op.sets + op.incs + op.updates}


class Plan:
    """The program plus what the simulator needs to run and reset it."""

    def __init__(self, program, step_order, fallbacks, native_processes):
        self.program = program
        self.step_order = step_order
        self.fallbacks = fallbacks  # list of FallbackGroup
        self.native_processes = native_processes  # SimProcess ops lowered natively


def plan(step_order, dg, layout, merge=True, isolate=()):
    """Builds the `Plan` for ``step_order`` on ``layout``.

    Parameters
    ----------
    merge : bool
        Merge operators of a stage into groups (False: one instruction each).
    isolate : collection of Operator
        Operators that get a callback instruction of their own when they have no
        kernel (input nodes, whose instruction is switched off while `data` feeds them).
    """
    stage = stages(dg, step_order)
    isolate = set(isolate)
    by_stage = {}
    for op in step_order:
        lowering = find_lowering(op)
        key = lowering.key(op, layout) if lowering is not None else None
        if key is None:
            key = ("callback", id(op)) if (op in isolate or not merge) else ("callback",)
        elif not merge:
            key = key + (id(op),)
        groups = by_stage.setdefault(stage[op], OrderedDict())
        groups.setdefault(key, (lowering, []))[1].append(op)

    program = Program()
    fallbacks, native_processes = [], []
    for s in sorted(by_stage):
        for key, (lowering, ops) in by_stage[s].items():
            if key[0] == "callback":
                group = FallbackGroup(ops, before=layout.sync_time)
                fallbacks.append(group)
                program.append(Instruction("callback", ops, callback=group))
            else:
                for instr in lowering.lower(ops, layout):
                    program.append(instr)
                native_processes.extend(op for op in ops if isinstance(op, SimProcess))
    layout.__dict__.pop("_lowering_memo", None)  # see lowering.common.memoised
    return Plan(program, step_order, fallbacks, native_processes)
