"""The data of ``fit``, ``evaluate`` and ``predict``, checked against the network.

Users key inputs by input Node and targets by Probe (the objects, their names
or labels, or lists in the network's order), as arrays ``(items, n_steps,
size)``, or give a ``tf.data.Dataset`` or a generator of minibatches
(``(x, y)``, ``(x, y, sample_weight)`` or ``x`` alone).  `DataChecks` turns
these into dicts of arrays keyed by objects and checks their shapes: every
array has the same items, inputs one value per step, targets one per step
(or only the last, for a ``keep_history=False`` probe), sizes as the objects'
(except targets of a sparse or user loss).  Items past the last whole
minibatch are left out, as in NengoDL.
"""

import contextlib

import numpy as np
import nengo
import tensorflow as tf
from nengo.exceptions import ValidationError

from . import sample_weights
from .config import keep_history
from .losses import free_target_size
from .names import by_name, zip_with_objects
from .tensor_node import is_tensor_node, not_input_node_reason
from ..arguments import as_array, finite_values
from ..errors import steps_count
from ..user_warnings import warn


def is_batch_source(data):
    """Whether ``data`` gives minibatches: a ``tf.data.Dataset`` or an iterator."""
    return isinstance(data, tf.data.Dataset) or hasattr(data, "__next__")


def refuse_beside_source(what, **data):
    for name, value in data.items():
        if value is not None:
            raise ValidationError(f"{what}: {name} must be None when x is a dataset or "
                                  "generator (it yields (x, y) or (x, y, sample_weight))",
                                  attr=name)


@contextlib.contextmanager
def named_argument(arg):
    """Errors in checking data that came in argument ``arg`` (e.g.
    ``validation_data``) name it, before the part they name (``x``, ``y``,
    ``sample_weight``): ``validation_data: y: ...`` (a message that starts
    with the argument's name, as `sample_weights`' do, gives it once)."""
    try:
        yield
    except ValidationError as e:
        message = str(e.args[0])
        if message.startswith(f"{arg}: "):
            message = message[len(arg) + 2:]
        raise ValidationError(f"{e.attr}: {message}", attr=arg, obj=e.obj) from None


class DataChecks:
    """`Trainer`'s handling of users' data.  The trainer provides ``sim``,
    ``network``, ``losses``, ``_loss_for(probe)`` and ``_keep_history`` (a dict
    filled on demand)."""

    def _objects(self, what):
        """The objects data is keyed by: input Nodes (``what="input"``) or Probes."""
        return list(self.sim._input_nodes) if what == "input" else list(self.sim.model.probes)

    def _lookup(self, key, what, arg=None):
        """The input Node (``what="input"``) or Probe that ``key`` is or names;
        ``arg``: the argument keyed by it where not ``x``/``y`` (``loss``,
        ``loss_weights``, ``metrics``, ``sample_weight``), which errors name."""
        key = by_name(key, self._objects(what), "node" if what == "input" else "probe")
        if what == "input" and key not in self.sim._input_nodes:
            if is_tensor_node(key):
                raise ValidationError(f"{key!r} {not_input_node_reason(key)}", attr="x")
            raise ValidationError(
                f"{key!r} is not an input Node of this network (inputs must be Nodes "
                "with size_in=0)", attr="x")
        if what == "target" and key not in self.sim.model.probes:
            raise ValidationError(f"{key!r} is not a Probe of this network; "
                                  f"{'targets' if arg is None else arg} must be keyed by its "
                                  "Probes", attr="y" if arg is None else arg)
        return key

    def _from_batches(self, x, y, limit=None, what="fit", sample_weight=None):
        """``x`` given as a ``tf.data.Dataset`` or a generator (Keras's and NengoDL's
        other input forms): its batches, each ``(x, y)``, ``(x, y, sample
        weights)`` or ``x`` alone, joined into arrays along the items (``limit``:
        at most that many batches, for an endless generator).  NengoDL's special
        ``"n_steps"`` input is dropped (the steps are the data's).  Returns
        ``(x, y, sample_weight)``; other ``x`` is returned as given."""
        if not is_batch_source(x):
            return x, y, sample_weight
        refuse_beside_source(what, y=y, sample_weight=sample_weight)
        batches = []
        for i, element in enumerate(x):
            if limit is not None and i >= int(limit):
                break
            batches.append(element)
        return self._join_batches(batches, what)

    def _join_batches(self, batches, what):
        """``(x, y, sample_weight)``: the elements of a Dataset or generator (see
        `_from_batches`) joined along the items."""
        xs, ys, ws = [], [], []
        for element in batches:
            # Keras's unpacking: a tuple of 1 to 3 is (x[, y[, sample weights]])
            parts = element if isinstance(element, tuple) and len(element) in (1, 2, 3) \
                else (element,)
            xs.append(parts[0])
            ys.append(parts[1] if len(parts) > 1 else None)
            ws.append(parts[2] if len(parts) > 2 else None)
        if not xs:
            raise ValidationError(f"{what}: the dataset or generator gave no batches", attr="x")

        def join(parts):
            if parts[0] is None:
                return None
            if isinstance(parts[0], dict):
                return {k: np.concatenate([np.asarray(p[k]) for p in parts])
                        for k in parts[0] if k != "n_steps"}
            if isinstance(parts[0], (list, tuple)):
                return [np.concatenate([np.asarray(p[j]) for p in parts])
                        for j in range(len(parts[0]))]
            return np.concatenate([np.asarray(p) for p in parts])

        if any(w is None for w in ws) and not all(w is None for w in ws):
            raise ValidationError(f"{what}: some batches have sample weights, others not",
                                  attr="x")
        return join(xs), join(ys), join(ws)

    def _as_dict(self, data, what):
        if data is None:
            return {}
        if not isinstance(data, dict):
            kind = "input Nodes" if what == "input" else "Probes"
            data = zip_with_objects(data, self._objects(what), what, kind)
        elif what == "input" and "n_steps" in data and \
                isinstance(by_name("n_steps", self._objects(what), "node"), str):
            data = self._without_steps_input(data)  # (no input Node is named so)
        found = {self._lookup(k, what): v for k, v in data.items()}
        return {obj: as_array(obj, v, "x" if what == "input" else "y")
                for obj, v in found.items()}

    @staticmethod
    def _without_steps_input(data):
        """``data`` without NengoDL's ``"n_steps"`` input (``(batch, 1)``, each item
        its steps), which must agree with the other inputs' steps (ours come
        from them, or from the ``n_steps`` argument)."""
        data = dict(data)
        given = np.asarray(data.pop("n_steps"))
        if not data:
            raise ValidationError(
                "x holds only NengoDL's \"n_steps\" input: give the steps as the n_steps "
                "argument instead", attr="x")
        steps = {np.shape(v)[1] for v in data.values() if np.ndim(v) == 3}
        if given.size == 0 or len(steps) != 1 or np.any(given != next(iter(steps))):
            raise ValidationError(
                f"x's \"n_steps\" input ({np.unique(given).tolist()}) does not match the "
                f"steps of the input data ({sorted(steps)})", attr="x")
        return data

    def _check(self, x, y, n_steps=None):
        """``(batch, steps)`` of inputs ``x`` and targets ``y`` (dicts of
        ``(batch, n_steps, size)`` arrays), checked against the network, the
        minibatch size and ``n_steps`` (None: the inputs' steps)."""
        arrays = list(x.values()) + list(y.values())
        if not arrays:
            raise ValidationError("no data given", attr="x")
        batch = arrays[0].shape[0]
        for obj, value in list(x.items()) + list(y.items()):
            arg = "x" if obj in x else "y"  # (the argument the error names: attr)
            if value.ndim != 3:
                raise ValidationError(
                    f"data for {obj} must have shape (batch, n_steps, size) "
                    f"(got {value.shape})", attr=arg)
            if value.shape[0] != batch:
                raise ValidationError(
                    f"all data must have the same batch size: data for {obj} has "
                    f"{value.shape[0]} items, which does not match expected size ({batch})",
                    attr=arg)
            size = obj.size_out if isinstance(obj, nengo.Node) else self._probe_size(obj)
            if value.shape[2] != size and not self._free_target_size(obj):
                raise ValidationError(f"data for {obj} has size {value.shape[2]}; "
                                      f"expected {size}", attr=arg)
        if n_steps is not None:
            steps = steps_count(n_steps, "n_steps")
        elif x:
            steps = next(iter(x.values())).shape[1]
        else:
            full = [v for p, v in y.items() if self.keep_history(p)]
            if not full:
                raise ValidationError("give n_steps (the targets hold only the last step)",
                                      attr="n_steps")
            steps = full[0].shape[1]
        for obj, value in x.items():
            if value.shape[1] != steps:
                raise ValidationError(f"input data for {obj} has {value.shape[1]} steps; "
                                      f"expected {steps} (it does not match expected size)",
                                      attr="x")
            # (as a run's data: fit would train on it to NaN weights)
            finite_values(obj, value, self.sim.dtype, "x", "[item, step, dim]")
        self.sim._check_unrolled(steps)
        unroll = self.sim.unroll_simulation
        if x and steps % unroll != 0:  # (as NengoDL checks input data)
            raise ValidationError(
                f"the number of steps in the input data ({steps}) must be evenly divisible "
                f"by unroll_simulation ({unroll})", attr="x")
        for obj, value in y.items():
            expected = steps if self.keep_history(obj) else 1
            # the user's own (or a sparse) loss may take any number of steps, as
            # NengoDL allows ("as long as it matches what the loss expects"); a
            # target of one step is the target of every step (Keras's losses
            # broadcast it, as in NengoDL)
            if value.shape[1] not in (expected, 1) and not self._free_target_size(obj):
                why = "" if self.keep_history(obj) else " (keep_history=False: the last step)"
                raise ValidationError(f"target data for {obj} has {value.shape[1]} steps; "
                                      f"expected {expected}{why}", attr="y")
        mb = self.sim.n_trials
        if batch == 0:
            raise ValidationError("the data holds no items", attr="x")
        if batch % mb != 0:
            if batch < mb:
                raise ValidationError(
                    f"the batch size ({batch}) is less than the simulator's minibatch_size "
                    f"({mb})", attr="x")
            # as NengoDL: the whole minibatches run, the rest is left out
            warn(f"the batch size ({batch}) is not evenly divisible by the simulator's "
                 f"minibatch_size ({mb}): the last {batch % mb} item(s) are left out")
            batch -= batch % mb
        return batch, steps

    def _free_target_size(self, obj):
        """Whether the targets for probe ``obj`` may differ in size from its output
        (class indices for a sparse loss, anything for the user's own loss:
        `losses.free_target_size`)."""
        if isinstance(obj, nengo.Node) or self.losses is None:
            return False
        if not self._has_loss(obj):
            return True  # (targets for metrics only: the metrics decide)
        return free_target_size(self._loss_for(obj))

    def keep_history(self, probe):
        """False when ``probe`` is configured ``keep_history=False`` (its outputs
        in predict/evaluate/fit are the last step only)."""
        if probe not in self._keep_history:
            self._keep_history[probe] = keep_history(self.network, probe)
        return self._keep_history[probe]

    def _history(self, probe, value):
        """``value`` (batch, n_steps, size), or its last step if not kept."""
        return value if self.keep_history(probe) else value[:, -1:]

    def _probe_size(self, probe):
        return int(np.prod(self.sim.model.sig[probe]["in"].shape))

    def _first_minibatches(self, data, steps, name, what="fit"):
        """``(x, y, weights, batch)`` cut to its first ``steps`` minibatches
        (Keras's ``steps``, ``validation_steps``: each run takes the first ones);
        data of fewer minibatches runs whole, with a warning (Keras's input runs
        out)."""
        x, y, weights, batch = data
        mb = self.sim.n_trials
        if steps is None:
            return data
        if steps > batch // mb:
            warn(f"{what}: {name}={steps}, but the data holds {batch // mb} minibatches: "
                 "running those (as Keras, whose input runs out)")
            return data
        items = steps * mb

        def cut(d):
            return None if d is None else {k: v[:items] for k, v in d.items()}

        return cut(x), cut(y), cut(weights), items

    def _sample_weights(self, sample_weight, y, what):
        """Keras's ``sample_weight`` for targets ``y`` (`sample_weights`), or None."""
        return sample_weights.check_sample_weights(
            sample_weight, y, lambda k: self._lookup(k, "target", "sample_weight"), what)

    # Keras arguments NengoDL 3 accepted (passing them to Keras) that nengo_cuda has
    # no use for; everything else unknown is a TypeError, as in Python
    _GENERATOR_ARGS = ("max_queue_size", "workers", "use_multiprocessing")

    def _check_keras_kwargs(self, what, kwargs, batch_size=None, **batch_sizes):
        for name, value in dict(batch_size=batch_size, **batch_sizes).items():
            if value is not None and int(value) != self.sim.n_trials:
                # as NengoDL: the minibatch size is fixed when the simulator is made
                warn(f"Batch size is determined statically via Simulator.minibatch_size "
                     f"({self.sim.n_trials}): {what} ignores {name}={value}")
        for name in [k for k in kwargs if k in self._GENERATOR_ARGS]:
            # (Keras 2's options for reading generators in parallel; Keras 3 has none)
            warn(f"{what}: ignoring {name}={kwargs.pop(name)!r}: data from generators is "
                 "read once, in this thread")
        if kwargs:
            raise TypeError(f"{what}() got unexpected keyword argument(s) "
                            f"{', '.join(map(repr, kwargs))}")
