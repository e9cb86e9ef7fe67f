"""The planned program: plain data that a backend executes step by step.

A program is an ordered list of `Instruction` s.  Each is either a native kernel
invocation (``kind`` names a kernel family registered in ``csrc/``; integer
arrays hold buffer addresses, float arrays and scalars hold parameters), or a
``callback`` that runs Nengo's own step functions for operators without a kernel.
"""

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Instruction:
    """One step of the program.

    Attributes
    ----------
    kind : str
        Kernel name (``"copy"``, ``"dot_inc"``, ``"neurons_lif"`` ...) or ``"callback"``.
    ops : list of Operator
        The Nengo operators this instruction implements (for debugging and feeds).
    ints, floats : dict of str -> ndarray
        Address arrays (int64) and per-element parameters (float64).
    scalars : dict of str -> float
        Scalar parameters.
    callback : callable, optional
        For ``kind == "callback"``: what to call once per step.
    tables : TableSource, optional
        Fills the instruction's data tables at reset and around runs.
    """

    kind: str
    ops: list
    ints: dict = field(default_factory=dict)
    floats: dict = field(default_factory=dict)
    scalars: dict = field(default_factory=dict)
    callback: object = None
    tables: object = None

    def __post_init__(self):
        self.ints = {
            k: np.ascontiguousarray(v, dtype=np.int64).ravel() for k, v in self.ints.items()
        }
        self.floats = {
            k: np.ascontiguousarray(v, dtype=np.float64).ravel()
            for k, v in self.floats.items()
        }
        self.scalars = {k: float(v) for k, v in self.scalars.items()}

    @property
    def is_callback(self):
        return self.kind == "callback"

    def __repr__(self):
        return f"Instruction({self.kind}, {len(self.ops)} ops)"


@dataclass
class Program:
    """An ordered list of instructions, plus where each operator ended up."""

    instructions: list = field(default_factory=list)

    def append(self, instruction):
        self.instructions.append(instruction)
        return len(self.instructions) - 1

    def extend(self, instructions):
        self.instructions.extend(instructions)

    def index_of(self, op):
        """Index of the instruction that implements ``op``."""
        for i, instr in enumerate(self.instructions):
            if any(o is op for o in instr.ops):
                return i
        raise KeyError(op)

    def __iter__(self):
        return iter(self.instructions)

    def __len__(self):
        return len(self.instructions)

    def summary(self):
        """Counts of instructions and operators by kind."""
        counts = {}
        for instr in self.instructions:
            n_instr, n_ops = counts.get(instr.kind, (0, 0))
            counts[instr.kind] = (n_instr + 1, n_ops + len(instr.ops))
        return counts


class TableSource:
    """Computes the data tables of one native instruction (``Instruction.tables``).

    Tables hold values that Python computes with Nengo's own code and the kernel
    only reads, such as precomputed random signals.  Each method returns a dict
    ``name -> float64 array`` laid out as the instruction's kernel reads it; the
    simulator hands it to the backend's ``set_table``.  The methods below load
    nothing.
    """

    def reset(self, seeds):
        """At reset; ``seeds[trial][j]`` is the seed of the generator that
        Nengo's ``make_step`` would give ``instruction.ops[j]``'s process
        (`nengo_cuda.simulator.process_seed`)."""
        return {}

    def before_run(self, n_steps, start, fed=frozenset()):
        """Before the backend runs ``n_steps`` steps, the first of them step
        ``start + 1`` (``start``: the value of Nengo's step counter then);
        ``data=`` replaces the outputs of the operators in ``fed`` in this run:
        their random streams do not advance (NengoDL does not step a fed Node)."""
        return {}

    def values_per_step(self, n_trials):
        """Table values that each step of a run adds to `before_run`'s tables
        (the simulator cuts runs into chunks that keep them bounded)."""
        return 0

    def after_run(self, steps_done, also=frozenset()):
        """After that run, which completed ``steps_done`` steps; the operators
        in ``also`` had read their tables in the step that failed next (as
        Nengo's operators before the one that raised had run)."""

    def get_state(self):
        """What `set_state` needs to rewind the source's random streams to now:
        ``{operator: its stream's state}`` for operators with one."""
        return {}

    def set_state(self, state):
        """Rewinds to a `get_state` result (operators not in it are left as
        they are)."""
