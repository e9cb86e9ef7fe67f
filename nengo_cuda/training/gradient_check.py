"""``sim.check_gradients``: the training graph's gradients against finite differences.

The function checked is ``f``, the sum of the probed outputs over items and
steps of one run of the training graph from the initial state, with the
same noise in every evaluation (host processes start again each time).  For each
trainable variable and each input, up to 8 of its elements ``v_i`` (drawn at
random, seed 1), the analytic derivative ``g = df/dv_i`` (TensorFlow's
gradient) must match the central difference

    D(h) = (f(v + h e_i) - f(v - h e_i)) / (2 h)

(``h`` relative to ``max(1, |v_i|)``, see `STEPS`) to
``|g - D(h)| <= atol + rtol |D(h)| + err``, where ``err`` estimates the
difference's own error from the same element, not from a fixed allowance:

- truncation, ``|D(h) - D(2h)| + |D(2h) - D(4h)|``: for a smooth ``f`` the
  error of ``D(h)`` is ``c h^2`` and these changes are ``3 c h^2`` and
  ``12 c h^2``; the second also shows curvature that sets in between ``h`` and
  ``4h`` (a rate neuron's slope is unbounded at its threshold);
- rounding, ``3 sigma / h + eps F / h``: ``sigma`` is ``f``'s rounding noise,
  measured as the spread of its second differences over five points 64 ulps
  apart (where ``f`` is linear to far below its rounding), ``eps`` the float
  type's machine epsilon and ``F`` the sum of the outputs' absolute values.

Where they disagree, the same comparison is made with steps 10 and 100 times
smaller, and one agreement passes: ``f`` may bend sharply on scales below
``h`` (a rate neuron just above its threshold, whose slope is unbounded
there; measured: 1500 LIF rate neurons in a recurrent loop, where ``D(1e-6)``
was 7 % off and ``D(1e-8)`` matched to 1e-5), which the three steps ``h``,
``2h``, ``4h`` do not always show; a gradient that is wrong stays apart from
the differences at every step.

In float64 (``h = 1e-6``) this resolves relative errors far below 1 %
(measured on the benchmark networks: a gradient 5 % off fails by a factor of
5 or more, a right one stays under 1e-2 of the bound; a TensorNode's gradient
2 % off behind 100 LIF neurons fails).  float32's differences (``h = 1e-4``)
carry more rounding, and its estimate says so: the same 2 % fails there too,
but where ``f`` bends sharply (many rate neurons near their thresholds) only
gross errors may show, and before the smaller steps were tried a right
gradient was reported 5-10 % off (100 RectifiedLinear into 100 LIFRate
neurons: 3 of 10 seeds; now none).  float64 (``configure_settings(dtype=
"float64")`` or ``Simulator(dtype="float64")``) is the surer check.  A sampled
element at a kink of ``f`` (a ReLU or a rate neuron exactly at its threshold)
has no derivative there and may be reported.
"""

import collections.abc

import numpy as np
import tensorflow as tf
from nengo.exceptions import SimulationError, ValidationError

from . import gradient_paths
from .names import zip_with_objects

#: the finite-difference step ``h`` by float type, relative: element ``v_i``
#: steps by ``h max(1, |v_i|)`` (about eps ** (1 / 3), where truncation and
#: rounding errors balance for smooth functions of size 1; float32's is
#: smaller than that, since larger steps meet more neurons' thresholds)
STEPS = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-6}
#: steps tried in turn, relative to `STEPS`, until one agrees (see the module)
SHRINKS = (1.0, 0.1, 0.01)
N_CHECKED = 8  # elements of each variable and input
NOISE_ULPS = 64  # spacing of the points that measure f's rounding noise


def check_gradients(trainer, inputs=None, outputs=None, atol=1e-5, rtol=1e-3, n_steps=None):
    """Checks the gradients of ``trainer``'s training graph (see the module);
    raises a SimulationError at a NaN or infinite gradient or a mismatch.

    ``inputs``: a dict {input Node: array (items, steps, size)}, or a list of
    arrays for the input Nodes in order (NengoDL's form); default zeros for
    ``n_steps`` steps (default: two unrolled blocks, ``2 * unroll_simulation``,
    as NengoDL).  ``outputs``: the probes summed (default all).

    Returns NengoDL's ``{probe: {"analytic": [...], "numeric": [...]}}``: for
    each output probe, the Jacobians of its output with respect to each
    input, from TensorFlow's gradients and from finite differences
    (``tf.test.compute_gradient``, as NengoDL computes them)."""
    trainer._refuse_inference_only("it has no gradients to check")
    graph, sim = trainer.graph, trainer.sim
    probes = list(outputs) if outputs else list(sim.model.probes)
    for p in probes:
        if p not in sim.model.probes:
            raise ValidationError(f"{p!r} is not a Probe of this network (outputs must be "
                                  "its Probes)", attr="outputs")
    if isinstance(inputs, (list, tuple)):
        inputs = zip_with_objects(inputs, trainer._objects("input"), "inputs", "input Nodes")
    if inputs is not None:
        inputs = {trainer._lookup(k, "input"): v for k, v in inputs.items()}
    if n_steps is None:
        n_steps = 2 * sim.unroll_simulation
    if inputs is None:
        inputs = {n: np.zeros((sim.n_trials, n_steps, n.size_out)) for n in sim._input_nodes}
    inputs = {k: tf.Variable(np.asarray(v, dtype=sim.dtype)) for k, v in inputs.items()}
    steps = next(iter(inputs.values())).shape[1] if inputs else n_steps

    def outs():
        return list(graph(inputs, steps, probes).values())

    # (traced once: the variables are read at every call)
    total = tf.function(lambda: tf.add_n([tf.reduce_sum(o) for o in outs()]), autograph=False)

    def f():
        # every evaluation sees the same noise: host processes (Ensemble
        # noise, WhiteSignal inputs) start again from their first step
        graph.restart_host_processes()
        return float(total())

    dtype = np.dtype(sim.dtype)
    h, eps = STEPS[dtype], float(np.finfo(dtype).eps)
    hint = ("; float32's finite differences are coarse: check in float64 to be sure"
            if dtype == np.float32 else "")
    _check_each_element(graph, inputs, probes, outs, f, (atol, rtol, h, eps), hint)
    return _Jacobians(graph, inputs, steps, probes)


class _Jacobians(collections.abc.Mapping):
    """{probe: {"analytic", "numeric"}}: its output's Jacobians with respect
    to each input (NengoDL's return value; none without inputs).  Each is
    computed when first looked up (a numeric Jacobian runs the graph twice
    per input element: callers that only want the check pay nothing)."""

    def __init__(self, graph, inputs, steps, probes):
        self._graph, self._steps, self._probes = graph, steps, list(probes)
        self._nodes = list(inputs)
        self._start = [v.numpy() for v in inputs.values()]
        self._done = {}

    def __getitem__(self, probe):
        if probe not in self._probes:
            raise KeyError(probe)
        if probe not in self._done:
            self._done[probe] = self._compute(probe)
        return self._done[probe]

    def __iter__(self):
        return iter(self._probes)

    def __len__(self):
        return len(self._probes)

    def _compute(self, probe):
        graph, nodes = self._graph, self._nodes

        def output(*xs):
            graph.restart_host_processes()  # (the same noise in every evaluation)
            return graph(dict(zip(nodes, xs)), self._steps, [probe])[probe]

        if not nodes:
            return {"analytic": [], "numeric": []}
        with graph.host_errors():
            analytic, numeric = tf.test.compute_gradient(output, self._start)
        return {"analytic": list(analytic), "numeric": list(numeric)}


def _check_each_element(graph, inputs, probes, outs, f, tolerances, hint):
    """Raises a SimulationError where a sampled element's gradient is NaN or
    disagrees with the finite differences (see the module); ``tolerances``:
    ``(atol, rtol, h, eps)``."""
    atol, rtol, h, eps = tolerances
    checked = [(var.name, var) for var in graph.trainable_variables]
    checked += [(f"the input of {node}", var) for node, var in inputs.items()]
    input_signals = {id(var): graph.input_nodes[node] for node, var in inputs.items()}
    for name, var in checked:
        graph.restart_host_processes()
        with tf.GradientTape() as tape, graph.host_errors():
            values = outs()
            value = tf.add_n([tf.reduce_sum(o) for o in values])
        scale = float(tf.add_n([tf.reduce_sum(tf.abs(o)) for o in values]))
        grad = tape.gradient(value, var)
        grad = np.zeros(var.shape) if grad is None else grad.numpy()
        if not np.all(np.isfinite(grad)):
            raise SimulationError(f"NaNs detected in the gradient for {name}")
        size = int(np.prod(var.shape))
        for i in np.random.RandomState(1).choice(size, min(N_CHECKED, size), replace=False):
            # (a step relative to the element: float32's 1e-4 vanishes in a
            # gain of 2000, whose ulp is 1.2e-4)
            h_i = h * max(1.0, abs(float(var.numpy().flat[i])))
            g = float(grad.flat[i])
            with graph.host_errors():
                sigma = rounding_noise(f, var, i)
                tried = []
                for shrink in SHRINKS:
                    d, err = estimate(f, var, i, h_i * shrink, sigma, eps * scale)
                    tried.append((d, err))
                    if abs(g - d) <= atol + rtol * abs(d) + err:
                        break
                else:
                    (d, err), smaller = tried[0], tried[1:]
                    sigs = ([input_signals[id(var)]] if id(var) in input_signals
                            else _signals_at(graph, var, i))
                    why = gradient_paths.host_parts_between(graph, sigs, probes)
                    raise SimulationError(
                        f"Gradient check failed: gradient mismatch for {name}[{i}]: analytic "
                        f"{g:g}, numeric {d:g} "
                        f"(finite-difference error estimate {err:.2g}; atol={atol:g}, "
                        f"rtol={rtol:g}; with steps "
                        + ", ".join(f"{1 / k:g}" for k in SHRINKS[1:]) + " times smaller: "
                        + ", ".join(f"{d:g} +- {e:.2g}" for d, e in smaller) + ")"
                        + (f"; {why}" if why else hint))


def _signals_at(graph, var, index):
    """The trained signals that element ``index`` of the graph's variable
    ``var`` belongs to."""
    for sig, v in graph.sparse_variables.values():  # (a sparse matrix's values)
        if v is var:
            return [sig]
    for base, (v, *_) in graph.variables.items():
        if v is var:
            element = index
            break
    else:
        base, element = next((base, int(offsets[index])) for base, (v, offsets)
                             in graph.state_parameters.items() if v is var)
    return [s for s in graph.trained_signals
            if s.base is base and element in graph._idx(s).idx]


def estimate(f, var, index, h, sigma, rounding):
    """``(D(h), err)``: the central difference and its estimated error (see
    the module); ``rounding`` is ``eps F``."""
    d1, d2, d4 = (central_difference(f, var, index, k * h) for k in (1, 2, 4))
    return d1, abs(d1 - d2) + abs(d2 - d4) + (3 * sigma + rounding) / h


def central_difference(f, var, index, h):
    """``(f(var + h e_i) - f(var - h e_i)) / (2 h)`` (``f()``: a number) for
    element ``index`` of the tf.Variable ``var`` (``2 h``: the step as
    stored, rounded to ``var``'s type); restores ``var``."""
    orig = var.numpy().copy()
    d = np.zeros_like(orig)
    d.flat[index] = h
    try:
        var.assign(orig + d)
        hi = float(f())
        var.assign(orig - d)
        lo = float(f())
    finally:
        var.assign(orig)
    # (the step as stored: orig + d rounds in float32)
    step = float(np.asarray(orig + d).flat[index]) - float(np.asarray(orig - d).flat[index])
    return (hi - lo) / step


def rounding_noise(f, var, index):
    """The standard deviation of ``f``'s rounding error near ``var``: from the
    second differences of ``f`` at ``var + k delta e_i``, k = -2 .. 2, with
    ``delta`` `NOISE_ULPS` ulps of ``max(|v_i|, 1)`` (a multiple of ``v_i``'s
    ulp, so the points are exactly equally spaced); each second difference of
    independent errors has variance ``6 sigma^2``.  Restores ``var``."""
    orig = var.numpy().copy()
    delta = NOISE_ULPS * np.spacing(orig.dtype.type(max(abs(float(orig.flat[index])), 1.0)))
    values = []
    try:
        for k in (-2, -1, 0, 1, 2):
            d = np.zeros_like(orig)
            d.flat[index] = k * delta
            var.assign(orig + d)
            values.append(float(f()))
    finally:
        var.assign(orig)
    second = np.diff(values, 2)
    return float(np.sqrt(np.mean(second ** 2) / 6))
