"""Which minibatches each epoch of ``fit`` trains on, as Keras 3 takes them.

Keras 3 keeps one iterator over the data across epochs: an epoch takes
``steps_per_epoch`` minibatches (default: a whole pass over the data) and
the next epoch continues where it stopped.  A pass that ends before an
epoch has all its minibatches ends that epoch early (Keras warns that the
input ran out of data) and the next epoch starts a new pass; a pass that
ends with an epoch starts the next one silently.  (Checked against Keras
3.15: 5 minibatches, ``steps_per_epoch=2``, 4 epochs train on 0 1 | 2 3 |
4 | 0 1.)

- `ArrayEpochs`: arrays; a pass is a permutation of the items (``shuffle``;
  else their order), cut into minibatches.
- `SourceEpochs`: a ``tf.data.Dataset`` or a generator, read an epoch at a
  time; a new pass iterates it again (a Dataset starts over; an exhausted
  generator gives nothing more, which ends training).

`ArrayFeed` and `SourceFeed` hand ``fit`` each epoch's data and minibatches
(``(data, order, ran_out)``) from either.
"""

import numpy as np
from nengo.exceptions import ValidationError

from ..user_warnings import warn


def steps_argument(value, name):
    """A Keras ``steps``-like argument: None, or a positive int."""
    if value is None:
        return None
    if isinstance(value, bool) or not float(value).is_integer() or int(value) < 1:
        raise ValidationError(f"{name} must be a positive integer (got {value!r})", attr=name)
    return int(value)


def ran_out_message(taken, steps_per_epoch, epoch):
    return (f"fit: the data ran out in epoch {epoch + 1}, after {taken} of its "
            f"steps_per_epoch={steps_per_epoch} minibatches; as in Keras, the epoch ends "
            "there and the next one starts a new pass over the data")


class ArrayEpochs:
    """The item indices of each epoch's minibatches, ``(minibatches, mb)``, for
    ``n_items`` items in minibatches of ``mb`` (see the module doc)."""

    def __init__(self, n_items, mb, steps_per_epoch, shuffle, rng):
        self.n_items, self.mb = n_items, mb
        self.n_batches = n_items // mb
        self.steps = self.n_batches if steps_per_epoch is None else steps_per_epoch
        self.shuffle, self.rng = shuffle, rng
        self.order, self.position = None, self.n_batches

    def next_epoch(self):
        """``(order, ran_out)``: this epoch's rows of item indices, and whether
        its pass ended before it had ``steps_per_epoch`` of them."""
        if self.position == self.n_batches:
            items = (self.rng.permutation(self.n_items) if self.shuffle
                     else np.arange(self.n_items))
            self.order, self.position = items[: self.n_batches * self.mb].reshape(-1, self.mb), 0
        stop = min(self.position + self.steps, self.n_batches)
        rows = self.order[self.position : stop]
        self.position = stop
        return rows, len(rows) < self.steps


class SourceEpochs:
    """Each epoch's batches (the elements a Dataset or generator yields) from
    ``source``, ``steps_per_epoch`` at a time (see the module doc)."""

    def __init__(self, source, steps_per_epoch):
        self.source, self.steps = source, steps_per_epoch
        self.iterator = None

    def next_epoch(self):
        """``(batches, ran_out)``; no batches: the source has none left."""
        batches = []
        for new_pass in (False, True):
            if self.iterator is None:
                self.iterator = iter(self.source)
            while len(batches) < self.steps:
                try:
                    batches.append(next(self.iterator))
                except StopIteration:
                    self.iterator = None
                    break
            # a pass that ended with the last epoch: this one starts a new pass
            if batches or new_pass:
                break
        return batches, len(batches) < self.steps


class ArrayFeed:
    """``fit``'s epochs of arrays: the same ``data`` (anything with a
    ``batch``, its number of items) every epoch, minibatches from `ArrayEpochs`."""

    def __init__(self, data, mb, steps_per_epoch, shuffle, rng):
        self.data, self.steps = data, steps_per_epoch
        self.passes = ArrayEpochs(data.batch, mb, steps_per_epoch, shuffle, rng)

    def next_epoch(self, epoch):
        """``(data, order, ran_out)`` (see `ArrayEpochs.next_epoch`; warns when
        the pass ran out)."""
        order, ran_out = self.passes.next_epoch()
        if ran_out:
            warn(ran_out_message(len(order), self.steps, epoch))
        return self.data, order, ran_out


class SourceFeed:
    """``fit``'s epochs of a Dataset or generator read ``steps_per_epoch``
    batches at a time (`SourceEpochs`): ``load`` turns an epoch's batches
    into its data (``batch`` items, in order); every epoch's must match the
    first's ``signature(data)`` (the inputs, targets, steps, ...)."""

    def __init__(self, source, mb, steps_per_epoch, load, signature):
        self.epochs = SourceEpochs(source, steps_per_epoch)
        self.mb, self.steps = mb, steps_per_epoch
        self.load, self.signature = load, signature
        self.first = self.epochs.next_epoch()
        if not self.first[0]:
            raise ValidationError("fit: the dataset or generator gave no batches", attr="x")
        self.data = load(self.first[0])  # (fit's checks and set-up read it)

    def next_epoch(self, epoch):
        """``(data, order, ran_out)``, or None when the source has no batches
        left (warned: training stops)."""
        if self.first is not None:
            (_, ran_out), self.first = self.first, None
            data = self.data
        else:
            batches, ran_out = self.epochs.next_epoch()
            if not batches:
                warn(ran_out_message(0, self.steps, epoch) + "; the generator gave no more: "
                     "training stops")
                return None
            data = self.load(batches)
            if self.signature(data) != self.signature(self.data):
                raise ValidationError(
                    f"fit: the batches of epoch {epoch + 1} differ from the first epoch's "
                    f"({self.signature(data)} against {self.signature(self.data)})", attr="x")
        if ran_out:
            warn(ran_out_message(data.batch // self.mb, self.steps, epoch))
        return data, np.arange(data.batch).reshape(-1, self.mb), ran_out
