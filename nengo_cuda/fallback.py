"""Operators without a kernel run Nengo's own step functions on our buffers.

`FallbackGroup` is the callback behind a ``callback`` instruction: for each
trial it holds the step functions that the operators' ``make_step`` returned
for that trial's `~nengo_cuda.layout.LayoutSignalDict`, so they read and write
the native buffers in place.  This is what lets any Nengo model run.
"""


class FallbackGroup:
    """Runs a list of operators' step functions for every trial."""

    def __init__(self, ops):
        self.ops = list(ops)
        self.steps = []  # per trial: list of step functions, filled by `make_steps`

    def make_steps(self, make_step_for):
        """``make_step_for(op, trial)`` returns that op's step function for a trial."""
        n_trials = len(self.steps)
        self.steps = [[make_step_for(op, t) for op in self.ops] for t in range(n_trials)]

    def __call__(self):
        for steps in self.steps:
            for step in steps:
                step()

    def __repr__(self):
        return f"FallbackGroup({[type(op).__name__ for op in self.ops]})"
