"""Loads the data tables of native instructions (see `nengo_cuda.program.TableSource`).

The simulator calls `TableLoader.reset` after drawing the processes' random
seeds, and `before_run` / `after_run` around each native run.
"""


class TableLoader:
    """Hands every instruction's `TableSource` output to the backend."""

    def __init__(self, program, backend):
        self.backend = backend
        self.items = [(i, instr) for i, instr in enumerate(program) if instr.tables is not None]

    def _load(self, index, tables):
        for name, data in tables.items():
            self.backend.set_table(index, name, data)

    def reset(self, process_seeds, n_trials):
        """``process_seeds[op, trial]``: the seed of the generator that Nengo's
        ``make_step`` would use (`nengo_cuda.simulator.process_seed`); None for
        operators that draw from generators of their own (StochasticSpiking's
        uniforms, `nengo_cuda.random_splits`)."""
        for index, instr in self.items:
            seeds = [[process_seeds.get((op, t)) for op in instr.ops] for t in range(n_trials)]
            self._load(index, instr.tables.reset(seeds))

    def values_per_step(self, n_trials):
        """Table values each step of a run adds (see `TableSource.values_per_step`)."""
        return sum(instr.tables.values_per_step(n_trials) for _, instr in self.items)

    def before_run(self, n_steps, start, fed=frozenset()):
        """Before a run of ``n_steps`` whose first step is ``start + 1``, in
        which ``data=`` replaces the outputs of the operators in ``fed``."""
        for index, instr in self.items:
            self._load(index, instr.tables.before_run(n_steps, start, fed))

    def after_run(self, steps_done, also=frozenset()):
        """After a run that completed ``steps_done`` steps; the operators in
        ``also`` read their tables in the step that failed after them."""
        for _, instr in self.items:
            instr.tables.after_run(steps_done, also)

    def ops(self):
        """The operators the tables hold (their columns)."""
        return [op for _, instr in self.items for op in instr.ops]

    def get_state(self):
        """The tables' random streams now, ``{operator: state}`` (see
        `TableSource.get_state`)."""
        state = {}
        for _, instr in self.items:
            state.update(instr.tables.get_state())
        return state

    def set_state(self, state):
        for _, instr in self.items:
            instr.tables.set_state(state)
