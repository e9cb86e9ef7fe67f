"""Processes without a TensorFlow form, run on the host inside the training graph.

The training graph computes LinearFilter synapses as tensors.  Every other
process (WhiteSignal or WhiteNoise inputs, Ensemble noise, PresentInput,
Piecewise, a user's own Process) runs its own ``make_step`` function, one per
trial, called from the graph through ``tf.numpy_function`` at every step, as
NengoDL's generic process builder does.  Its output is data to the graph: no
gradient flows through it.

Each trial's step function is made with the seed the simulator drew for that
trial (``sim.process_seeds``, in Nengo's order), so trial 0 sees the values
``nengo.Simulator`` would, and all trials the values ``sim.run`` sees.  The
steps are remade after every ``sim.reset`` (new seeds).  A process's own state
(``make_state``: a Triangle synapse's taps, FilteredNoise's filter) is the
graph's state, as NengoDL passes it: each call copies the graph's values into
the arrays the step functions hold and returns them afterwards, so a call
starts from the simulator's state, and one that is not stateful leaves it.
(The step functions' random generators carry on from call to call, and so
does state that is not float, such as a user's integer counter: the graph's
state is float; NengoDL's holds integer signals too.)
"""

import numpy as np
from nengo.exceptions import SimulationError


def host_time(t, dt):
    """Nengo's float64 time ``step * dt`` from the graph's time ``t`` (in the
    graph's dtype: float32 ``(t0 + k + 1) * dt`` is not Nengo's value)."""
    return round(float(t) / dt) * dt


class HostProcess:
    """Callable ``(t, [x], *states) -> [(batch, size_out), *states]``: one
    SimProcess op's step functions for ``batch`` trials; ``states``: the
    values of the op's state signals named in `state_names`, ``(batch,
    size)`` each, before the step and after it.

    ``t`` is the graph's time ``steps * dt`` in its dtype; the step functions
    get Nengo's float64 ``step * dt``.
    """

    def __init__(self, op, sim, batch, dtype, state_names=None):
        self.op = op
        self.sim = sim
        self.batch = batch
        self.dtype = np.dtype(dtype)
        # (a state signal not named here stays in the step functions)
        self.state_names = list(op.state) if state_names is None else list(state_names)
        self._steps = None
        self._states = None  # per trial, the state arrays its step function holds
        self._seeds = None  # the sim.process_seeds the steps were made from

    def _make_steps(self):
        op, sim = self.op, self.sim
        shape_in = op.input.shape if op.input is not None else (0,)
        steps, states = [], []
        for trial in range(self.batch):
            seed = sim.process_seeds.get((op, trial))
            if seed is None:  # a batch larger than the minibatch: rows of their own
                seed = np.random.SeedSequence(
                    [sim.process_seeds[op, 0], trial]).generate_state(1)[0]
            # (float state in the graph's dtype; other state, a user's integer
            # counter or index, in its own)
            state = {name: np.array(sig.initial_value, dtype=self.dtype
                                    if np.issubdtype(sig.dtype, np.floating) else sig.dtype)
                     for name, sig in op.state.items()}
            steps.append(op.process.make_step(
                shape_in, op.output.shape, sim.dt, np.random.RandomState(seed), state))
            states.append(state)
        self._steps, self._states, self._seeds = steps, states, sim.process_seeds

    def restart(self):
        """Makes the step functions anew at the next call: the same values
        from the first step again (``check_gradients`` evaluates one run many
        times and needs the same noise in each)."""
        self._seeds = None

    def __call__(self, t, *args):
        if self._seeds is not self.sim.process_seeds:
            self._make_steps()
        x = args[0] if self.op.input is not None else None
        values = args[1:] if self.op.input is not None else args
        t = host_time(t, self.sim.dt)
        size = self.op.output.size
        rows = []
        for i, step in enumerate(self._steps):
            state = self._states[i]
            for name, value in zip(self.state_names, values):
                state[name][...] = value[i].reshape(state[name].shape)
            y = step(t) if x is None else step(t, np.array(x[i]))
            y = np.asarray(y, dtype=self.dtype).reshape(-1)
            if y.size != size:
                raise SimulationError(
                    f"{self.op.process} returned {y.size} values (expected {size})")
            rows.append(y)
        after = [np.stack([np.asarray(state[name], dtype=self.dtype).reshape(-1)
                           for state in self._states]) for name in self.state_names]
        return [np.stack(rows)] + after
