"""Parameters in and out of a simulator (NengoDL's API): ``save_params``/
``load_params`` (``.npz`` files, keyed so that any build of the same network
loads them; the simulation state too with ``include_state``),
``get_nengo_params`` and ``freeze_params`` (trained values back into Nengo
objects, for `nengo.Simulator` and other networks).

`ParameterIO` is a part of `nengo_cuda.training.trainer.Trainer` (it uses the
trainer's ``sim``, Keras variables and training graph); `ParameterFiles` is
the same without TensorFlow, for simulators that have neither TensorNodes nor
a trainer (online learning's weights saved and loaded where TensorFlow is not
installed).
"""

import pickle
import re

import numpy as np
import nengo
from nengo.exceptions import SimulationError, ValidationError

from ..deferral import DeferredDelta
from ..errors import UnknownObjectError
from ..layout import FLOAT, INT, OTHER
from ..params import with_kernel
from ..user_warnings import warn


class ParameterIO:
    def _parameter_signals(self):
        """``{key: signal}`` for the parameter signals (`nengo_cuda.parameters`:
        the shared region, or unwritten views merged into state bases) that
        belong to the network's objects: encoders, gains, biases, weights,
        decoders, transforms.  A key names the object by its place in the
        network (`_object_keys`; its neurons and learning rules through it) and
        the signal by its builder name, so it is the same in every build of the
        network, where the layout's order is not (Nengo's optimizer merges
        signals in the iteration order of sets)."""
        return self._keyed_signals(self.sim.parameters.is_parameter)

    def _sparse_signals(self):
        """``{key: signal}`` (keys as `_parameter_signals`') for the sparse
        matrices whose values are parameters (`SparseParameters`)."""
        return self._keyed_signals(lambda sig: sig.sparse and sig in self.sim.sparse)

    def _keyed_signals(self, wanted):
        """``{object key/builder name: signal}`` for the network's objects'
        builder signals that are ``wanted``."""
        found = {}
        for obj, sigs in self.sim.model.sig.items():
            key = self._object_names().get(obj)
            if key is None:
                continue
            for name, sig in sigs.items():
                if isinstance(sig, nengo.builder.Signal) and wanted(sig):
                    found[f"{key}/{name}"] = sig
        return found

    def _learned_signals(self):
        """``{key: signal}`` (keys as `_parameter_signals`') for the signals that
        online learning rules change (`nengo_cuda.parameters.LearnedParameters`),
        which NengoDL saves with the parameters: one value per trial."""
        names = self._object_names()
        return {f"{names[obj]}/{name}": sig
                for (obj, name), sig in self.sim.learned.signals.items() if obj in names}

    def _object_names(self):
        """``{object: key}`` for the network's objects, their neurons and
        learning rules (`_object_keys`)."""
        names = {}
        for obj, key in _object_keys(self.sim.model.toplevel).items():
            names[obj] = key
            if isinstance(obj, nengo.Ensemble):
                names[obj.neurons] = f"{key}.neurons"
            rules = getattr(obj, "learning_rule", None) if isinstance(obj, nengo.Connection) \
                else None
            if isinstance(rules, dict):
                names.update({rule: f"{key}.rule.{k}" for k, rule in rules.items()})
            elif isinstance(rules, (list, tuple)):
                names.update({rule: f"{key}.rule.{k}" for k, rule in enumerate(rules)})
            elif rules is not None:
                names[rules] = f"{key}.rule"
        return names

    def save_params(self, path, include_state=False, include_non_trainable=None):
        """Saves the network's parameters (every object's shared signals, keyed by
        object and name: see `_parameter_signals`), what online learning rules
        have learned (every trial's; `_learned_signals`) and the TensorNodes'
        Keras weights to ``path + ".npz"``, for `load_params` in any build of
        the same network.

        ``include_state`` (NengoDL 3.2): also the simulation state (state
        signals of every trial, step count, native processes' random streams),
        keyed so that it loads into any build of the same network with the
        same ``minibatch_size`` (see `_state_arrays`).
        ``include_non_trainable``: NengoDL 3.0's name for ``include_state``
        (deprecated there since 3.2).
        """
        self.write_params(str(path) + ".npz",
                          _include_state(include_state, include_non_trainable))

    def write_params(self, filename, include_state=False):
        """`save_params` to the file ``filename`` (as named: ``save_weights``'s)."""
        signals = self.sim.signals
        arrays = {f"param:{key}": np.array(signals[sig])
                  for key, sig in self._parameter_signals().items()}
        trials = self.sim.layout.signal_dicts
        arrays.update({f"learned:{key}": np.stack([np.array(t[sig]) for t in trials])
                       for key, sig in self._learned_signals().items()})
        arrays.update({f"sparse:{key}": self.sim.sparse.value(sig)
                       for key, sig in self._sparse_signals().items()})
        arrays.update({f"keras_{i}": np.asarray(v.numpy())
                       for i, v in enumerate(self._keras_variables(trainable=False))})
        if include_state:
            arrays.update(self._state_arrays())
        with open(filename, "wb") as f:  # (a file name would get ".npz" appended)
            np.savez_compressed(f, **arrays)

    def load_params(self, path, include_state=False, include_non_trainable=None):
        """Loads what `save_params` saved from the same network (in any build);
        ``include_state``: the saved state too (saved with ``include_state``)."""
        self.read_params(str(path) + ".npz",
                         _include_state(include_state, include_non_trainable))

    def read_params(self, filename, include_state=False, skip_mismatch=False):
        """`load_params` from the file ``filename`` (`write_params`'s).

        ``skip_mismatch`` (Keras's ``load_weights`` argument): load the saved
        parameters and TensorNode weights that this network has, with the same
        shapes, and warn about the rest (otherwise any difference raises)."""
        params = self._parameter_signals()
        keras_vars = self._keras_variables(trainable=False)
        with _open_archive(filename) as f:
            _refuse_nengo_dl_file(filename, f.files)
            saved = {k[len("param:"):]: f[k] for k in f.files if k.startswith("param:")}
            weights = [f[f"keras_{i}"] for i in range(len(keras_vars)) if f"keras_{i}" in f]
            n_saved = sum(1 for k in f.files if k.startswith("keras_"))
            state = {k: f[k] for k in f.files if k.startswith("state:")}
            learned = {k[len("learned:"):]: f[k] for k in f.files if k.startswith("learned:")}
            sparse = {k[len("sparse:"):]: f[k] for k in f.files if k.startswith("sparse:")}
        if skip_mismatch:
            params, keras_pairs = self._matching(filename, params, saved, keras_vars, weights,
                                                 n_saved)
        else:
            self._check_params(filename, params, saved, keras_vars, weights, n_saved)
            keras_pairs = zip(keras_vars, weights)
        if include_state:
            self._check_state(state, filename)
        learned = self._learned_values(filename, learned, skip_mismatch)
        sparse = self._sparse_values(filename, sparse, skip_mismatch)
        self._write_loaded(params, saved, keras_pairs, state if include_state else None,
                           learned, sparse)

    @staticmethod
    def _check_params(filename, params, saved, keras_vars, weights, n_saved):
        """Raises unless the file holds exactly this network's parameters and
        TensorNode weights."""
        if set(saved) != set(params) or any(
                saved[k].shape != params[k].shape for k in params):
            if saved and all(k.split("/")[0].split(".")[0].isdigit() for k in saved):
                raise SimulationError(
                    f"{filename} was saved by a nengo_cuda before 2026-12-03, which keyed "
                    "parameters by position in network.all_objects; this one keys them by "
                    "each object's place in its own network: save it again")
            missing = sorted(set(params) - set(saved))[:5]
            extra = sorted(set(saved) - set(params))[:5]
            reshaped = [f"{k}: saved {saved[k].shape}, here {params[k].shape}"
                        for k in sorted(set(saved) & set(params))
                        if saved[k].shape != params[k].shape][:5]
            raise SimulationError(
                f"{filename} does not hold this network's parameters ({len(saved)} saved, "
                f"{len(params)} in this network; missing: {missing}, not in this network: "
                f"{extra}, of other shapes: {reshaped}): was it saved from another network?")
        if n_saved != len(keras_vars) or any(
                tuple(w.shape) != tuple(v.shape) for w, v in zip(weights, keras_vars)):
            raise SimulationError(
                f"{filename} holds {n_saved} TensorNode weights of shapes "
                f"{[w.shape for w in weights]}; this model's TensorNodes have "
                f"{[tuple(v.shape) for v in keras_vars]}")

    def _write_loaded(self, params, saved, keras_pairs, state=None, learned=(), sparse=()):
        """Writes the ``saved`` values of ``params``, ``(variable, value)``
        pairs, ``(learned signal, value per trial)`` pairs, ``(sparse
        signal, values)`` pairs and the saved ``state`` (if any) into the
        simulator (and the training graph's variables)."""
        for key, sig in params.items():
            self.sim.parameters.write(sig, saved[key])
        for var, value in keras_pairs:
            var.assign(value)
        for sig, values in learned:
            for trial in range(self.sim.n_trials):
                self.sim.layout.writable(sig, trial)[...] = values[trial % len(values)]
        for sig, values in sparse:
            self.sim.sparse.write(sig, values)
        if state is not None:
            self._load_state(state)
        if self._graph is not None:
            self._graph.reload()

    def _learned_values(self, filename, saved, skip_mismatch):
        """``[(signal, values)]``: what online learning rules had learned when
        the file was saved, for this simulator's learned signals (one value
        per trial, or one for all trials).  Files without them (saved before
        2026-12-04) leave the learned signals as they are."""
        n_trials = self.sim.n_trials

        def mismatch(key, sig, values):
            if values.shape[1:] == tuple(sig.shape) and values.shape[0] in (1, n_trials):
                return None
            return (f"the learned {key} holds {values.shape[0]} trial(s) of shape "
                    f"{values.shape[1:]}; this simulator has {n_trials} trial(s) of shape "
                    f"{tuple(sig.shape)}")

        return _saved_pairs(filename, self._learned_signals(), saved, mismatch, skip_mismatch)

    def _sparse_values(self, filename, saved, skip_mismatch):
        """``[(signal, values)]``: the saved values of this network's sparse
        matrices.  Files without them (saved before 2026-12-06) leave the
        matrices as they are."""
        def mismatch(key, sig, values):
            here = self.sim.sparse.value(sig).shape
            if values.shape == here:
                return None
            return (f"the sparse {key} holds {values.shape[0]} values; this network's has "
                    f"{here[0]} nonzeros")

        return _saved_pairs(filename, self._sparse_signals(), saved, mismatch, skip_mismatch)

    @staticmethod
    def _matching(filename, params, saved, keras_vars, weights, n_saved):
        """``skip_mismatch``: the parameters and ``(variable, value)`` pairs
        of the file that fit this network; warns what is skipped."""
        fits = {k: sig for k, sig in params.items()
                if k in saved and saved[k].shape == tuple(sig.shape)}
        pairs = [(v, w) for v, w in zip(keras_vars, weights) if tuple(w.shape) == tuple(v.shape)]
        skipped = (len(params) - len(fits), len(saved) - len(fits),
                   max(len(keras_vars), n_saved) - len(pairs))
        if any(skipped):
            warn(
                f"{filename}: skip_mismatch left {skipped[0]} of this network's parameters "
                f"and {skipped[2]} TensorNode weights as they were, and skipped "
                f"{skipped[1]} saved parameters that this network does not have (with "
                "these shapes)")
        return fits, pairs

    def _state_signals(self, written_only=True):
        """``[(key, signal)]``: the build's state, as the signals of the
        builder's base signals (`nengo_cuda.build_keys.BuildKeys`: keys and
        names that are the same in every build of the network) that lie in
        the per-trial state pools and that operators write (the others there,
        constants merged with written signals, keep their values; which they
        are differs between builds).  ``written_only=False``: all in the pools."""
        keys = self.sim._build_keys
        placement = self.sim.layout.placement
        found = []
        for key, sig in keys.signals.items():
            placed = placement.get(sig.base)
            if placed is not None and placed[0] != OTHER and not placed[1] and (
                    key in keys.written or not written_only):
                found.append((key, sig))
        return found

    def _state_labels(self, signals):
        """What the file records of ``signals``: key, name, shape and kind (the
        same in every build of one network), and whether a learning rule's
        delta holds the vectors its deferred change reads instead of Nengo's
        delta (`nengo_cuda.deferral`: where nothing probes the delta)."""
        names = self.sim._build_keys.names
        deferred = [op.delta for instr in self.sim.program for op in instr.ops
                    if isinstance(op, DeferredDelta)]
        return [f"{key} {names[key]}" + (_DEFERRED if any(
            sig.base is d.base and sig.may_share_memory(d) for d in deferred) else "")
                for key, sig in signals]

    def _state_indices(self, signals):
        """Per pool, the elements of ``signals`` in one trial's state block
        (in the order of ``signals``)."""
        layout = self.sim.layout
        indices = {FLOAT: [np.zeros(0, np.int64)], INT: [np.zeros(0, np.int64)]}
        for _, sig in signals:
            pool = layout.pool_of(sig)
            n_shared = layout.f_shared if pool == FLOAT else layout.i_shared
            indices[pool].append(layout.addresses(sig).ravel() - n_shared)
        return {pool: np.concatenate(parts) for pool, parts in indices.items()}

    def _state_arrays(self):
        """The simulation state as `save_params` stores it: each state signal's
        values in every trial (float and int pools, one row per trial), the
        tables' random streams and the step count, keyed by `BuildKeys`."""
        state = self.sim._save_state()
        n = self.sim.n_trials
        # (scratch: the random numbers that split random operators draw for
        # each step, `nengo_cuda.random_splits`, written before they are read)
        everything = self._state_indices(self._state_signals(written_only=False) +
                                         [(None, sig) for sig in self.sim._scratch])
        for pool, values in ((FLOAT, state["f"]), (INT, state["i"])):
            # every element of a state base belongs to one builder signal
            # (Nengo's merges only concatenate them) or is scratch; one that did
            # not would be lost silently (elements of no base are padding: a
            # TensorNode's signals start at aligned addresses)
            covered = np.zeros(values.size // n, dtype=bool)
            covered[everything[pool]] = True
            if not covered[self.sim.layout.state_elements(pool)].all():
                raise SimulationError("cannot save the simulation state: part of the "
                                      f"{pool} state belongs to no signal of the build")
        signals = self._state_signals()
        index = self._state_indices(signals)
        op_keys = self.sim._build_keys.ops
        tables = {op_keys[op]: st for op, st in state["tables"].items()}
        return {"state:signals": np.array(self._state_labels(signals)),
                "state:f": state["f"].reshape(n, -1)[:, index[FLOAT]],
                "state:i": state["i"].reshape(n, -1)[:, index[INT]],
                "state:tables": np.frombuffer(pickle.dumps(tables), np.uint8),
                "state:n_steps": np.array(state["n_steps"])}

    def _load_state(self, saved):
        """Writes `_state_arrays` output (checked by `_check_state`) into the
        simulator's state."""
        state = self.sim._save_state()
        index = self._state_indices(self._state_signals())
        n = self.sim.n_trials
        f, i = state["f"].reshape(n, -1), state["i"].reshape(n, -1)
        f[:, index[FLOAT]] = saved["state:f"]
        i[:, index[INT]] = saved["state:i"]
        ops = {key: op for op, key in self.sim._build_keys.ops.items()}
        tables = pickle.loads(saved["state:tables"].tobytes())
        n_steps = int(saved["state:n_steps"])
        self.sim._restore_state({
            "f": f.ravel(), "i": i.ravel(),
            "tables": {ops[key]: st for key, st in tables.items()},
            "n_steps": n_steps, "time": n_steps * self.sim.dt}, keep_learned=False)

    def _check_state(self, saved, filename):
        if "state:signals" not in saved:
            raise SimulationError(f"{filename} holds no simulation state (save it with "
                                  "save_params(..., include_state=True))")
        op_keys = set(self.sim._build_keys.ops.values())
        tables = pickle.loads(saved["state:tables"].tobytes())
        labels, found = self._state_labels(self._state_signals()), list(saved["state:signals"])
        if found != labels and [s.replace(_DEFERRED, "") for s in found] == \
                [s.replace(_DEFERRED, "") for s in labels]:
            raise SimulationError(
                f"the state in {filename} holds a learning rule's delta in another form "
                "than this simulator's (the vectors its deferred change reads, or Nengo's "
                "delta where a Probe reads the delta: nengo_cuda.deferral): load it into a "
                "build of the network with the same probes on learning rules, or with "
                "include_state=False")
        if found != labels or not set(tables) <= op_keys:  # (streams of operators this build lacks)
            raise SimulationError(
                f"the state in {filename} was saved from another network (its state "
                "signals differ from this one's); its parameters load with "
                "include_state=False")
        n_saved = saved["state:f"].shape[0]
        if n_saved != self.sim.n_trials:
            raise SimulationError(
                f"the state in {filename} holds {n_saved} trials; this simulator has "
                f"minibatch_size={self.sim.minibatch_size} ({self.sim.n_trials} trials)")

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
        if isinstance(obj, (nengo.Ensemble, nengo.Connection)) and \
                obj not in self.sim.model.params:  # (a KeyError of the model's dicts)
            raise UnknownObjectError(
                "get_nengo_params: not an object of the network this simulator built",
                attr="objs", obj=obj)
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
        if isinstance(obj.pre_obj, nengo.Ensemble) and obj.solver.weights and \
                isinstance(obj.post_obj, nengo.Ensemble):
            # Nengo builds such weights as post encoders x transform x decoders:
            # a trained matrix of pre x post neurons has no such factors
            raise ValidationError(
                f"get_nengo_params: {obj} has a full weight matrix (solver with "
                f"weights=True), which Nengo's parameters of this connection cannot give; "
                f"connect {obj.pre_obj}.neurons to {obj.post_obj}.neurons with "
                "transform=sim.data[conn].weights instead", attr="objs")
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
        changed = []  # (all parameters are made before any is written)
        try:
            for obj, p in zip(todo, self.get_nengo_params(todo)):
                for k, v in p.items():
                    changed.append((obj, k, getattr(obj, k)))
                    setattr(obj, k, v)
        except Exception:
            for obj, k, v in reversed(changed):  # (no half-frozen network)
                setattr(obj, k, v)
            raise


class ParameterFiles(ParameterIO):
    """`ParameterIO` of a simulator without a trainer: no Keras variables (no
    TensorNodes), no training graph to reload."""

    _graph = None

    def __init__(self, sim):
        self.sim = sim

    def _keras_variables(self, trainable=True):
        return []


def _object_keys(network, prefix=""):
    """``{object: key}`` for the objects of ``network`` and its subnetworks:
    the key is the object's kind and position among the objects of that kind
    in its own network, after its networks' positions (``"network1.
    ensemble0"``). Objects added to a network later do not change the keys of
    the others (what Keras's ``skip_mismatch`` loading relies on)."""
    keys = {}
    for kind, objs in network.objects.items():
        for i, obj in enumerate(objs):
            keys[obj] = f"{prefix}{kind.__name__.lower()}{i}"
            if isinstance(obj, nengo.Network):
                keys.update(_object_keys(obj, keys[obj] + "."))
    return keys


def _open_archive(filename):
    """``np.load(filename)`` of a parameter file; a SimulationError for a file
    that is not one."""
    try:
        archive = np.load(filename, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (OSError, ValueError):  # not NumPy's
        archive = None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise SimulationError(f"{filename} was not written by save_params or "
                              "sim.keras_model.save_weights")
    return archive


def _name(obj):
    return obj.label or f"{type(obj).__name__.lower()}_{id(obj):x}"


def _saved_pairs(filename, signals, saved, mismatch, skip_mismatch):
    """``[(signal, saved values)]`` for ``signals`` (``{key: signal}``) that the
    file holds; ``mismatch(key, signal, values)``: why they do not fit (None:
    they do), an error, or a warning with ``skip_mismatch`` (then skipped)."""
    pairs = []
    for key, sig in signals.items():
        values = saved.get(key)
        if values is None:
            continue
        message = mismatch(key, sig, values)
        if message is not None:
            if not skip_mismatch:
                raise SimulationError(f"{filename}: {message}")
            warn(f"{filename}: {message}: skip_mismatch left it as it was")
            continue
        pairs.append((sig, values))
    return pairs


def _refuse_nengo_dl_file(filename, keys):
    """NengoDL's ``save_params`` writes unnamed arrays (``arr_0``, ``arr_1``,
    ...): its trainable variables in the order of its merged graph, which
    names no Nengo object, so no network here can be matched to them."""
    if keys and all(re.fullmatch(r"arr_\d+", k) for k in keys):
        raise SimulationError(
            f"{filename} holds unnamed arrays ({', '.join(sorted(keys)[:3])}, ...), as "
            "NengoDL's save_params (or np.savez of a list) writes them: NengoDL's trainable "
            "variables in the order of its own merged graph, which nengo_cuda cannot match "
            "to this network's parameters. Move trained values over with NengoDL's "
            "sim.freeze_params(net) (they are then the network's own), or train and "
            "save_params with nengo_cuda")


_DEFERRED = " (deferred)"


def _include_state(include_state, include_non_trainable):
    """NengoDL 3.2 renamed ``include_non_trainable`` to ``include_state``."""
    if include_non_trainable is None:
        return include_state
    warn("include_non_trainable is deprecated: use include_state (NengoDL 3.2's name)",
         DeprecationWarning)
    return bool(include_non_trainable)
