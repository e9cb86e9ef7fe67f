"""Errors that are two exceptions at once: the one NengoDL raises and the one
``nengo.Simulator`` raises for the same mistake, so that code written against
either one's ``except`` catches ours."""

import operator

from nengo.exceptions import ValidationError


class _Both(ValidationError):
    def __str__(self):  # (not the second base's form: KeyError's quotes the message)
        return f"{self.attr if self.obj is None else repr(self.obj)}: {self.args[0]}"


class UnknownObjectError(_Both, KeyError):
    """``sim.data[obj]`` for an object the simulator did not build: NengoDL's
    ValidationError, Nengo's KeyError (its mapping's)."""


class StepsTypeError(_Both, TypeError):
    """``run_steps(n)`` with an ``n`` that is not an integer: a ValidationError
    (NengoDL's kind of error for arguments), Nengo's TypeError."""


def steps_count(value, name="steps"):
    """``value`` as a number of steps: an integer (`operator.index`: not 5.0,
    not "5", as run_steps and NengoDL's NumPy calls take it) >= 0."""
    try:
        steps = operator.index(value)
    except TypeError:
        raise StepsTypeError(f"must be an integer (got {value!r})", attr=name) from None
    if steps < 0:
        raise ValidationError(f"Must be non-negative (got {steps})", attr=name)
    return steps
