"""The random generators of a minibatch's trials.

Trial 0 draws what `nengo.Simulator` draws; every other trial draws its own
stream, derived from trial 0's seed or generator and the trial's number.
"""

import copy

import numpy as np
import nengo.utils.numpy as npext


def trial_rng(seed, trial):
    """The random generator of one trial: trial 0 uses ``seed`` itself, like Nengo."""
    if trial == 0:
        return np.random.RandomState(seed)
    state = np.random.SeedSequence([seed, trial]).generate_state(1)[0]
    return np.random.RandomState(state)


def trial_generator(rng, trial):
    """Trial ``trial``'s copy of a generator that Nengo's builder made for an
    operator (the RandomState of PoissonSpiking and StochasticSpiking neurons,
    which their step draws from): trial 0's is ``rng`` itself, the others are
    seeded from a draw of a copy of it (``rng`` itself does not advance).
    Nengo's reset does not rewind these generators: make each trial's once."""
    if trial == 0:
        return rng
    return trial_rng(copy.deepcopy(rng).randint(npext.maxint), trial)
