"""Operators without a kernel run Nengo's own step functions on our buffers.

`FallbackGroup` is the callback behind a ``callback`` instruction: for each
trial it holds the step functions that the operators' ``make_step`` returned
for that trial's `~nengo_cuda.layout.LayoutSignalDict`, so they read and write
the native buffers in place.  This is what lets any Nengo model run.
"""


class FallbackGroup:
    """Runs a list of operators' step functions for every trial."""

    def __init__(self, ops, before=None):
        self.ops = list(ops)
        self.before = before  # called first each step (e.g. SignalLayout.sync_time)
        # per trial: the ops' step functions; made at every reset by the simulator,
        # which draws their random seeds in Nengo's step order
        self.steps = []
        # signals the CUDA backend copies to the host around the callback (None:
        # every signal of the ops; see backends.cuda.callback_ranges)
        self.host_signals = None
        # ops not run: input Nodes that a run's data= feeds (set for the run)
        self.skipped = frozenset()
        # the op whose step raised (the simulator reads and clears it)
        self.failed = None

    def __call__(self):
        if self.before is not None:
            self.before()
        op = None
        try:
            if self.skipped:
                for steps in self.steps:
                    for op, step in zip(self.ops, steps):
                        if op not in self.skipped:
                            step()
                return
            for steps in self.steps:
                for op, step in zip(self.ops, steps):
                    step()
        except BaseException:
            self.failed = op
            raise

    def __repr__(self):
        return f"FallbackGroup({[type(op).__name__ for op in self.ops]})"
