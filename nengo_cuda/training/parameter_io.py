"""Parameters in and out of a simulator (NengoDL's API): ``save_params``/
``load_params`` (``.npz`` files, keyed so that any build of the same network
loads them; the simulation state too with ``include_state``),
``get_nengo_params`` and ``freeze_params`` (trained values back into Nengo
objects, for `nengo.Simulator` and other networks).

`ParameterIO` is a part of `nengo_cuda.training.trainer.Trainer` (it uses the
trainer's ``sim``, Keras variables and training graph).
"""

import hashlib
import pickle
import re
import warnings

import numpy as np
import nengo
from nengo.exceptions import SimulationError, ValidationError

from ..params import with_kernel


class ParameterIO:
    def _parameter_signals(self):
        """``{key: signal}`` for the parameter signals (`nengo_cuda.parameters`:
        the shared region, or unwritten views merged into state bases) that
        belong to the network's objects: encoders, gains, biases, weights,
        decoders, transforms.  A key names the object by its position in
        ``network.all_objects`` (its neurons and learning rules through it) and
        the signal by its builder name, so it is the same in every build of the
        network, where the layout's order is not (Nengo's optimizer merges
        signals in the iteration order of sets)."""
        model = self.sim.model
        names = {}
        for i, obj in enumerate(model.toplevel.all_objects):
            names[obj] = str(i)
            if isinstance(obj, nengo.Ensemble):
                names[obj.neurons] = f"{i}.neurons"
            rules = getattr(obj, "learning_rule", None) if isinstance(obj, nengo.Connection) \
                else None
            if isinstance(rules, dict):
                names.update({rule: f"{i}.rule.{k}" for k, rule in rules.items()})
            elif isinstance(rules, (list, tuple)):
                names.update({rule: f"{i}.rule.{k}" for k, rule in enumerate(rules)})
            elif rules is not None:
                names[rules] = f"{i}.rule"
        found = {}
        for obj, sigs in model.sig.items():
            if obj not in names:
                continue
            for name, sig in sigs.items():
                if isinstance(sig, nengo.builder.Signal) and self.sim.parameters.is_parameter(sig):
                    found[f"{names[obj]}/{name}"] = sig
        return found

    def save_params(self, path, include_state=False, include_non_trainable=None):
        """Saves the network's parameters (every object's shared signals, keyed by
        object and name: see `_parameter_signals`) and the TensorNodes' Keras
        weights to ``path + ".npz"``, for `load_params` in any build of the same
        network.

        ``include_state`` (NengoDL 3.2): also the simulation state (state
        signals of every trial, step count, native processes' random streams),
        which loads only into a build with the same signal layout (the same
        network and Simulator arguments; see `_state_layout`).
        ``include_non_trainable``: NengoDL 3.0's name for ``include_state``
        (deprecated there since 3.2).
        """
        include_state = _include_state(include_state, include_non_trainable)
        signals = self.sim.signals
        arrays = {f"param:{key}": np.array(signals[sig])
                  for key, sig in self._parameter_signals().items()}
        arrays.update({f"keras_{i}": np.asarray(v.numpy())
                       for i, v in enumerate(self._keras_variables(trainable=False))})
        if include_state:
            arrays.update(self._state_arrays())
        np.savez_compressed(str(path) + ".npz", **arrays)

    def load_params(self, path, include_state=False, include_non_trainable=None):
        """Loads what `save_params` saved from the same network (in any build);
        ``include_state``: the saved state too (saved with ``include_state``)."""
        include_state = _include_state(include_state, include_non_trainable)
        params = self._parameter_signals()
        keras_vars = self._keras_variables(trainable=False)
        with np.load(str(path) + ".npz") as f:
            saved = {k[len("param:"):]: f[k] for k in f.files if k.startswith("param:")}
            weights = [f[f"keras_{i}"] for i in range(len(keras_vars)) if f"keras_{i}" in f]
            n_saved = sum(1 for k in f.files if k.startswith("keras_"))
            state = {k: f[k] for k in f.files if k.startswith("state:")}
        if set(saved) != set(params) or any(
                saved[k].shape != params[k].shape for k in params):
            missing = sorted(set(params) - set(saved))[:5]
            extra = sorted(set(saved) - set(params))[:5]
            raise SimulationError(
                f"{path}.npz does not hold this network's parameters (missing: {missing}, "
                f"not in this network: {extra}, or shapes differ): was it saved from "
                f"another network?")
        if n_saved != len(keras_vars) or any(
                tuple(w.shape) != tuple(v.shape) for w, v in zip(weights, keras_vars)):
            raise SimulationError(
                f"{path}.npz holds {n_saved} TensorNode weights of shapes "
                f"{[w.shape for w in weights]}; this model's TensorNodes have "
                f"{[tuple(v.shape) for v in keras_vars]}")
        if include_state:
            self._check_state(state, path)
        for key, sig in params.items():
            self.sim.parameters.write(sig, saved[key])
        for var, value in zip(keras_vars, weights):
            var.assign(value)
        if include_state:
            self.sim._restore_state({
                "f": state["state:f"], "i": state["state:i"],
                "tables": pickle.loads(state["state:tables"].tobytes()),
                "n_steps": int(state["state:n_steps"]),
                "time": float(state["state:n_steps"]) * self.sim.dt})
        if self._graph is not None:
            self._graph.reload()

    def _state_layout(self):
        """A digest of where the state signals lie (names, shapes, pools, in
        placement order), the trial count and dtype: saved state loads only
        where it is the same."""
        layout = self.sim.layout
        # (names without memory addresses: another process gives others)
        parts = [(re.sub(r"(at )?0x[0-9a-fA-F]+", "", str(b.name)), tuple(b.shape), str(p[0]))
                 for b, p in layout.placement.items() if not p[1]]
        text = repr((parts, self.sim.n_trials, str(self.sim.dtype)))
        return hashlib.sha256(text.encode()).hexdigest()

    def _state_arrays(self):
        state = self.sim._save_state()
        return {"state:f": state["f"], "state:i": state["i"],
                "state:tables": np.frombuffer(pickle.dumps(state["tables"]), np.uint8),
                "state:n_steps": np.array(state["n_steps"]),
                "state:layout": np.array(self._state_layout())}

    def _check_state(self, state, path):
        if "state:layout" not in state:
            raise SimulationError(f"{path}.npz holds no simulation state (save it with "
                                  "save_params(..., include_state=True))")
        if str(state["state:layout"]) != self._state_layout():
            raise SimulationError(
                f"the state in {path}.npz was saved from a build whose state signals lie "
                "elsewhere (another network, minibatch_size, dtype, or an optimizer merge "
                "that went another way); its parameters load with include_state=False")

    def get_nengo_params(self, objs, as_dict=False):
        """NengoDL's: kwargs that give new Nengo objects the current (trained)
        parameters of ``objs`` (Ensembles, their Neurons, Connections).

        An Ensemble keeps its built gain (connections into its neurons are
        scaled by it) and gets ``encoders = scaled_encoders * radius / gain``,
        its bias, and the default max_rates/intercepts (ignored beside a gain
        and bias); a decoded Connection gets its decoders as a ``NoSolver``, any
        other its weights as the transform (a copy of a Sparse or convolution
        transform); a Connection without weights ``{"transform": None}``.
        """
        single = not isinstance(objs, (list, tuple))
        objs = [objs] if single else list(objs)
        objs = [o.ensemble if isinstance(o, nengo.ensemble.Neurons) else o for o in objs]
        params = [self._nengo_params(obj) for obj in objs]
        if single:
            return params[0]
        if as_dict:
            labels = [_name(o) for o in objs]
            repeated = sorted({lb for lb in labels if labels.count(lb) > 1})
            if repeated:
                raise ValidationError(f"get_nengo_params(as_dict=True): labels {repeated} "
                                      "are not unique", attr="objs")
            return dict(zip(labels, params))
        return params

    def _nengo_params(self, obj):
        sig, signals = self.sim.model.sig, self.sim.signals
        if isinstance(obj, nengo.Ensemble):
            if isinstance(obj.neuron_type, nengo.Direct):
                raise ValidationError(
                    f"get_nengo_params: {obj} has Direct neurons, whose encoders Nengo's "
                    "builder ignores; copy its parameters from sim.data", attr="objs")
            gain = np.array(self.sim.model.params[obj].gain)
            enc = np.array(signals[sig[obj]["encoders"]]) * obj.radius / gain[:, None]
            return {"encoders": enc, "normalize_encoders": False, "gain": gain,
                    "bias": np.array(signals[sig[obj.neurons]["bias"]]),
                    "max_rates": nengo.Ensemble.max_rates.default,
                    "intercepts": nengo.Ensemble.intercepts.default}
        if not isinstance(obj, nengo.Connection):
            raise ValidationError(f"get_nengo_params: {obj} is not an Ensemble, Neurons or "
                                  "Connection", attr="objs")
        if sig[obj].get("weights") is None:
            return {"transform": None}  # NoTransform: nothing to train
        w = signals[sig[obj]["weights"]]
        transform = obj.transform
        if isinstance(transform, nengo.transforms.Sparse):  # w: a scipy.sparse matrix
            coo = w.tocoo()
            return {"transform": nengo.transforms.Sparse(
                transform.shape, indices=np.stack((coo.row, coo.col), axis=-1),
                init=np.array(coo.data))}
        w = np.array(w)
        conv = with_kernel(transform, w)
        if conv is not None:
            return {"transform": conv}
        if isinstance(obj.pre_obj, nengo.Ensemble) and not isinstance(
                obj.pre_obj.neuron_type, nengo.Direct):
            return {"solver": nengo.solvers.NoSolver(w.T, weights=False),
                    "function": lambda x, n=w.shape[0]: np.zeros(n),
                    "transform": nengo.Connection.transform.default}
        return {"transform": np.squeeze(w) if all(d == 1 for d in w.shape) else w}

    def freeze_params(self, objs):
        """NengoDL's: writes `get_nengo_params` into ``objs`` (Networks: all their
        Ensembles and Connections), so that any simulator (``nengo.Simulator``
        too) builds them with the current (trained) parameters."""
        objs = objs if isinstance(objs, (list, tuple)) else [objs]
        toplevel = self.sim.model.toplevel
        members = None
        todo = []
        for obj in objs:
            if not isinstance(obj, (nengo.Network, nengo.Ensemble, nengo.Connection)):
                raise TypeError(f"freeze_params: {obj} has no parameters to store (give "
                                "Networks, Ensembles or Connections)")  # NengoDL's type
            if obj is not toplevel:
                members = set(toplevel.all_objects) if members is None else members
                if obj not in members:
                    raise ValidationError(f"freeze_params: {obj} is not part of the network "
                                          "this simulator was built from", attr="objs")
            if isinstance(obj, nengo.Network):
                todo += obj.all_ensembles + obj.all_connections
            else:
                todo.append(obj)
        for obj, p in zip(todo, self.get_nengo_params(todo)):
            for k, v in p.items():
                setattr(obj, k, v)


def _name(obj):
    return obj.label or f"{type(obj).__name__.lower()}_{id(obj):x}"


def _include_state(include_state, include_non_trainable):
    """NengoDL 3.2 renamed ``include_non_trainable`` to ``include_state``."""
    if include_non_trainable is None:
        return include_state
    warnings.warn("include_non_trainable is deprecated: use include_state (NengoDL 3.2's "
                  "name)", DeprecationWarning, stacklevel=4)
    return bool(include_non_trainable)
