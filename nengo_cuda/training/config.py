"""`configure_settings`: NengoDL 3's settings, stored in a Network's config.

As in NengoDL, the settings go to the top-level network in context (called
inside a subnetwork too: they apply to the whole model), except ``trainable``:
``configure_settings(trainable=False)`` adds a ``trainable`` parameter to
Ensemble, Connection and Neurons in the config of the network in context, with
that default; ``net.config[nengo.Ensemble].trainable = True`` then re-enables
one class, and ``net.config[obj].trainable`` one object.
``configure_settings(keep_history=...)`` likewise adds ``keep_history`` to
Probes (``net.config[probe].keep_history`` sets one probe).  The other
settings are stored as parameters of ``config[nengo.Network]``.

What the settings do here:

- ``trainable``: which Nengo parameters ``fit``/``train`` optimise (see
  `trainable_objects`).  TensorNodes' Keras layers train regardless (their own
  ``trainable`` attribute freezes them), as in NengoDL.
- ``lif_smoothing``: training uses SoftLIFRate(sigma) for LIF neurons.
- ``inference_only``: ``fit``/``train`` refuse to run.
- ``use_loop``: the training graph runs its steps in a ``tf.while_loop``
  (True, default) or unrolled.
- ``keep_history=False`` (per probe): ``predict``, ``predict_on_batch``,
  ``evaluate`` and ``fit`` give (and take targets for) only the probe's last
  step, shape ``(batch, 1, size)``; ``sim.run``/``run_steps`` keep only the
  last sample of each call in ``sim.data`` (one sample per call, as NengoDL).
- ``stateful=False``: every ``sim.run``/``run_steps`` call starts from the
  initial conditions (signals and process states as after ``reset``; trained
  parameters are kept), so no state carries between calls; ``sim.n_steps``
  and ``sim.time`` stay 0 (NengoDL's), ``sim.data`` keeps every call's steps.
  ``predict``/``evaluate``/``fit`` then start every minibatch from the initial
  conditions and ignore (with a warning) ``stateful=True``.  With the default
  (True) their ``stateful`` argument decides, as in NengoDL 3 (see
  docs/training-state.md).
- ``dtype``: the precision, as in NengoDL ("float32", "float64" or a
  ``tf.DType``), unless the Simulator's own ``dtype`` argument gives one.
- ``learning_phase`` (NengoDL 3.4): True always runs in training mode:
  ``predict``, ``predict_on_batch``, ``evaluate`` and ``sim.run``/
  ``run_steps`` go through the training graph (rate neurons, as ``fit``
  computes; ``sim.run`` records its probes and keeps the state as a native
  run does, at the graph's speed).  None (default): inference mode, the
  network as defined, except in ``fit``, which trains with rate neurons.
  False: inference mode always, ``fit`` too: its forward pass spikes (each
  spiking type runs its own step; no gradient passes through spikes, as in
  NengoDL) and TensorNodes' Keras layers get ``training=False``.
- ``planner``, ``sorter``, ``simplifications``: accepted for compatibility
  (our planner is not configurable): a function (``simplifications``: a list
  of them), such as NengoDL's names in `nengo_cuda.graph_optimizer`.
"""

import nengo
from nengo.ensemble import Neurons
from nengo.exceptions import ConfigError, NetworkContextError, ValidationError
from nengo.params import BoolParam, Parameter

SETTINGS = {
    "trainable": None,
    "lif_smoothing": None,
    "dtype": None,
    "inference_only": False,
    "keep_history": True,
    "stateful": True,
    "planner": None,
    "sorter": None,
    "simplifications": None,
    "use_loop": True,
    "learning_phase": None,
}

TRAINABLE_CLASSES = (nengo.Ensemble, nengo.Connection, Neurons)


def _check_optimizer_setting(name, value):
    """NengoDL's graph optimizer settings take functions (which we ignore)."""
    if value is None:
        return
    if name in ("planner", "sorter") and not callable(value):
        raise ValidationError(f"{name} must be a function, e.g. "
                              f"nengo_cuda.graph_optimizer.noop_planner (got {value!r})",
                              attr=name)
    if name == "simplifications" and (
            not isinstance(value, (list, tuple)) or not all(map(callable, value))):
        raise ValidationError("simplifications must be a list of functions, e.g. "
                              "[nengo_cuda.graph_optimizer.remove_zero_incs] "
                              f"(got {value!r})", attr=name)


def configure_settings(**kwargs):
    """Sets NengoDL-style settings on the Network in context (see module doc)."""
    if len(nengo.Network.context) == 0:
        raise NetworkContextError(
            "configure_settings must be called within a Network context "
            "(`with nengo.Network(): ...`)"
        )
    # (as NengoDL: on the top-level network, except ``trainable``, which the
    # network in context gets: a subnetwork's config may set its own)
    config = nengo.Network.context[0].config
    for name, value in kwargs.items():
        if name not in SETTINGS:  # (NengoDL's error type)
            raise ConfigError(f"{name!r} is not a valid setting (valid: {sorted(SETTINGS)})")
        _check_optimizer_setting(name, value)
        if name == "dtype" and value is not None:
            value = str(getattr(value, "name", value))
            if value not in ("float32", "float64"):
                raise ValidationError(f"dtype must be float32 or float64 (got {value!r})", attr=name)
        if name == "trainable":
            local = nengo.Network.context[-1].config
            for cls in TRAINABLE_CLASSES:
                if cls not in local.params:
                    local.configures(cls)
                _replace_param(local.params[cls], BoolParam("trainable", value, optional=True))
        elif name == "keep_history":
            if nengo.Probe not in config.params:
                config.configures(nengo.Probe)
            _replace_param(config.params[nengo.Probe],
                           BoolParam("keep_history", bool(value), optional=True))
        else:
            if nengo.Network not in config.params:
                config.configures(nengo.Network)
            _replace_param(config.params[nengo.Network], Parameter(name, value, optional=True))


def declare_trainable(config, cls):
    """Gives ``config``'s ``cls`` a ``trainable`` parameter (default None: unset)
    unless it has one, so that ``config[obj].trainable`` can be set; an existing
    one (and the class default set with it) stays."""
    if cls not in config.params:
        config.configures(cls)
    if "trainable" not in config.params[cls]._extra_params:
        _replace_param(config.params[cls], BoolParam("trainable", None, optional=True))


def _replace_param(clsparams, param):
    clsparams._extra_params.pop(param.name, None)
    clsparams.set_param(param.name, param)


def get_setting(model, setting, default=None, obj=None):
    """The value of ``setting`` on ``model`` (a Network, or a built Model: its
    top-level network), or ``default`` if unset; ``obj``: the setting of that
    object in the network's config (NengoDL's, e.g. a probe's
    ``keep_history``).  (NengoDL's argument names.)"""
    network = getattr(model, "toplevel", model)
    if not isinstance(network, nengo.Network):
        return default
    if obj is not None:
        try:
            return getattr(network.config[obj], setting, default)
        except ConfigError:
            return default
    if nengo.Network not in network.config.params:
        return default
    params = network.config.params[nengo.Network]
    if setting in params._extra_params:
        return getattr(params, setting)
    return default


_UNSET = object()


def keep_history(network, probe):
    """Whether ``probe`` keeps every step (True unless configured otherwise)."""
    if network is None:
        return True
    configs = []

    def walk(net, chain):
        chain = chain + [net.config]
        if probe in net.probes:
            configs.extend(chain)
            return True
        return any(walk(sub, chain) for sub in net.networks)

    walk(network, [])
    value = True
    for config in configs:
        try:
            v = getattr(config[probe], "keep_history", None)
        except Exception:  # noqa: BLE001 - not configured in this network
            v = None
        if v is not None:
            value = bool(v)
    return value


def _lookup(configs, obj):
    """NengoDL's rule: configs top-down, the last non-None ``trainable`` wins
    (instance value, else the class default); `_UNSET` when none is set."""
    trainable = _UNSET
    for config in configs:
        try:
            value = getattr(config[obj], "trainable", None)
        except Exception:  # noqa: BLE001 - not configured in this network
            value = None
        if value is not None:
            trainable = value
    return trainable


def _settings(network):
    """{obj: `_lookup`'s value} for every Ensemble, Neurons and Connection
    under ``network``, each looked up in the configs of its own networks."""
    result = {}

    def walk(net, configs):
        configs = configs + [net.config]
        for sub in net.networks:
            walk(sub, configs)
        for obj in [*(x for ens in net.ensembles for x in (ens, ens.neurons)), *net.connections]:
            result[obj] = _lookup(configs, obj)

    walk(network, [])
    return result


def trainable_objects(network):
    """{obj: bool} for every Ensemble, Neurons and Connection under ``network``.

    As NengoDL 3: an inner network's config beats an outer one's, an object's
    setting beats its class default there; unconfigured objects are trainable,
    and Neurons without any setting follow their Ensemble.
    """
    settings = _settings(network)
    result = {obj: value in (True, _UNSET) for obj, value in settings.items()}
    for obj, value in settings.items():
        if isinstance(obj, Neurons):  # (unset on the Neurons: they follow their Ensemble)
            result[obj] = result[obj.ensemble] if value is _UNSET else bool(value)
    return result


def learned_and_set_trainable(network):
    """``[(obj, what)]``: the objects under ``network`` set ``trainable=True``
    (explicitly: NengoDL tells that apart from the default) whose parameter an
    online learning rule changes too: a Connection's weights, or (Voja) its
    post Ensemble's encoders.  ``fit`` leaves those to the rule (elements an
    operator writes are never trained); NengoDL trains them with both, and
    warns of "strange training behaviour"."""
    settings = _settings(network)
    found = []
    for conn in (obj for obj in settings if isinstance(obj, nengo.Connection)):
        types = conn.learning_rule_type
        types = (list(types.values()) if isinstance(types, dict) else
                 [] if types is None else list(types) if isinstance(types, (list, tuple))
                 else [types])
        for rule in types:
            obj, what = ((conn.post_obj, "encoders") if rule.modifies == "encoders"
                         else (conn, "weights"))
            if settings.get(obj) is True and (obj, what) not in found:
                found.append((obj, what))
    return found
