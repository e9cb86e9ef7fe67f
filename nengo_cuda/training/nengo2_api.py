"""NengoDL 2's training API: ``sim.train`` and ``sim.loss``.

Both take one dict ``{input Node or target Probe: array}`` (or a number of
steps, for objectives without targets) and objectives
``{probe: f}`` (`losses.objective`: ``f(outputs, targets)``, or ``f(outputs)``
for an objective without targets); they run on ``compile``/``fit`` and
``evaluate``.  NengoDL 2 options without a counterpart here (truncation,
summaries, profiling, extra feeds) are refused when set.
"""

import numpy as np
import nengo
from nengo.exceptions import ValidationError

from .losses import objective as nengo2_objective
from .objectives import mse_per_item


# what to use instead, where NengoDL 3 has it
_INSTEAD = {
    "training": "; for rate neurons, as in training, configure_settings(learning_phase=True) "
                "in the network, then evaluate (NengoDL 3's way)",
    "extra_feeds": "; give Nodes' values as data (data= in run_steps, x in fit/evaluate)",
}


def _refuse_unsupported(method, **options):
    """Raises for NengoDL 2 options we accept by name but do not implement, when
    set (None or False: not set)."""
    for name, value in options.items():
        if value is not None and value is not False:
            raise ValidationError(
                f"sim.{method}: NengoDL 2's {name}={value!r} is not supported by "
                f"nengo_cuda (use the default){_INSTEAD.get(name, '')}", attr=name)


class NengoDL2API:
    """`Trainer`'s ``train`` and ``loss``, over its ``compile``, ``fit`` and
    ``evaluate``."""

    def train(self, data, optimizer, n_epochs=1, objective=None, shuffle=True, truncation=None,
              summaries=None, profile=False, extra_feeds=None, progress_bar=True):
        """NengoDL 2's ``sim.train`` (its order of arguments): ``data`` maps input
        Nodes and target Probes to arrays, or is a number of steps (for objectives
        without targets); ``objective`` {probe: loss} (default: MSE of the probes
        in ``data``); ``optimizer`` a Keras or
        ``tf.compat.v1.train`` optimizer (see `compile`).  NengoDL 2's
        ``truncation``, ``summaries``, ``profile`` and ``extra_feeds`` are refused
        when set; ``progress_bar`` is accepted (no bar is shown)."""
        _refuse_unsupported("train", truncation=truncation, summaries=summaries,
                            profile=profile, extra_feeds=extra_feeds)
        if optimizer is None:
            raise ValidationError("train needs an optimizer", attr="optimizer")
        if isinstance(optimizer, dict):  # (targets as fit's y: NengoDL 3's order)
            raise ValidationError(
                "train is NengoDL 2's train(data, optimizer, ...): data holds inputs and "
                "targets in one dict, the optimizer comes second (got a dict); or use "
                "compile(optimizer, loss) and fit(x, y)", attr="optimizer")
        inputs, targets, steps = self._split(data, objective)
        self.compile(optimizer)
        self.losses = self._objectives(objective, targets)
        targets = self._outputs_only_targets(inputs, targets, steps)
        return self.fit(inputs, targets, epochs=n_epochs, shuffle=shuffle, verbose=0)

    def _outputs_only_targets(self, inputs, targets, steps=None):
        """``targets`` plus placeholders for the probes whose NengoDL 2 objective
        takes only the outputs (``f(outputs)``: no target data given); ``steps``:
        the steps where ``data`` was a number (one minibatch)."""
        if not isinstance(self.losses, dict):
            return targets
        free = [p for p, f in self.losses.items()
                if p not in targets and not getattr(f, "needs_targets", True)]
        if not free:
            return targets
        if steps is not None:
            batch = self.sim.n_trials
        else:
            given = list(inputs.values()) + list(targets.values())
            if not given:
                raise ValidationError("give input or target data (their shape sets the batch "
                                      "and steps)", attr="data")
            batch, steps = np.shape(given[0])[:2]
        return {**targets, **{p: np.zeros((batch, steps, 1)) for p in free}}

    def loss(self, data, objective=None, combine=np.mean, extra_feeds=None, progress_bar=True,
             training=False):
        """NengoDL 2's ``sim.loss``: the mean of ``objective`` {probe: loss} (default:
        MSE) over ``data`` (as in `train`), simulating the network as defined.
        ``combine`` other than the mean (NengoDL 2's default), ``extra_feeds`` and
        ``training=True`` are refused when set."""
        _refuse_unsupported("loss", combine=None if combine is np.mean else combine,
                            extra_feeds=extra_feeds, training=training)
        inputs, targets, steps = self._split(data, objective)
        saved = (self.losses, self.loss_weights, self.metrics, self.weighted_metrics)
        self.losses = self._objectives(objective, targets)
        self.loss_weights, self.metrics, self.weighted_metrics = {}, None, None
        try:
            return self.evaluate(inputs, self._outputs_only_targets(inputs, targets, steps),
                                 verbose=0)["loss"]
        finally:
            self.losses, self.loss_weights, self.metrics, self.weighted_metrics = saved

    def _objectives(self, objective, targets):
        """``objective`` (default: MSE for the probes with ``targets``) as losses."""
        if objective is None:
            objective = {p: mse_per_item for p in targets}
        if isinstance(objective, dict) and any(f is None for f in objective.values()):
            raise ValidationError("NengoDL 2's objective None (the data is the output's "
                                  "error gradient) is not supported: give a loss function",
                                  attr="objective")
        return self._losses(objective, nengo2_objective)

    def _split(self, data, objective):
        """``data``'s inputs, targets and steps (None, or ``data`` if a number)."""
        if isinstance(data, (int, np.integer)) and not isinstance(data, bool):
            if objective is None:  # (NengoDL 2's rule)
                raise ValidationError("Must specify an explicit objective if no input data "
                                      "given", attr="objective")
            return {}, {}, int(data)
        if not isinstance(data, dict):
            raise ValidationError("data must be a dict {Node or Probe: array} or a number "
                                  "of steps", attr="data")
        inputs, targets = {}, {}
        for k, v in data.items():
            if isinstance(k, nengo.Probe):
                targets[k] = v
            elif isinstance(k, nengo.Node):
                inputs[k] = v
            else:
                raise ValidationError(f"data key {k!r} is neither a Node nor a Probe", attr="data")
        return inputs, targets, None
