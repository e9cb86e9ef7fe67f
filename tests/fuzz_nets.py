"""Random Nengo networks for the differential fuzzer (`test_fuzz.py`).

A network is drawn as a *spec*: plain data (dicts, lists, tuples, numbers and
strings), so hypothesis can shrink a failing case and print it, and the
regression tests can keep it literally.  `build(spec)` turns a spec into a
`nengo.Network`; the same spec always builds the same network (every random
value comes from a seed in the spec).

Spec layout::

    {"seed": int,
     "objects": [obj, ...],      # in creation order; connections refer to indices
     "connections": [conn, ...],
     "probes": [probe, ...],
     "steps": (n1, n2),          # nengo_cuda runs n1 then n2 steps; Nengo n1 + n2
     "dt": float}                # (probes' sample_every is in steps)

Objects: ``{"kind": "ens", "n", "d", "neuron", "noise"}``, input nodes
(``const``, ``time``, ``process``), nodes with input (``func``, ``pass``,
``filter``), and ``conv``: a passthrough node fed from object ``src`` through a
(transposed) convolution.  A connection's synapse may be None only when it runs
forward (from a lower to a higher object index), so every loop is filtered.
"""

import numpy as np
import nengo
from hypothesis import assume
from hypothesis import strategies as st

from nengo_cuda import neurons as nc_neurons


class LIFSubclass(nengo.LIF):
    """An exact-type miss: no kernel, so it runs through Nengo's step in a callback."""


NEURONS = {
    "LIF": nengo.LIF,
    "LIFRate": nengo.LIFRate,
    "RectifiedLinear": nengo.RectifiedLinear,
    "SpikingRectifiedLinear": nengo.SpikingRectifiedLinear,
    "Sigmoid": nengo.Sigmoid,
    "Tanh": nengo.Tanh,
    "AdaptiveLIF": nengo.AdaptiveLIF,
    "AdaptiveLIFRate": nengo.AdaptiveLIFRate,
    "Izhikevich": nengo.Izhikevich,
    "RegularSpiking": lambda: nengo.RegularSpiking(nengo.LIFRate()),
    "PoissonSpiking": lambda: nengo.PoissonSpiking(nengo.LIFRate()),
    "StochasticSpiking": lambda: nengo.StochasticSpiking(nengo.RectifiedLinear()),
    "LIFSubclass": LIFSubclass,
    "Direct": nengo.Direct,
}
# NengoDL's neuron types (nengo_cuda.neurons): not drawn by `ensembles` (the
# simulation fuzzer's draws stay as they were); test_fuzz_training puts them in.
DL_NEURONS = {
    "SoftLIFRate": lambda: nc_neurons.SoftLIFRate(sigma=0.5),
    "LeakyReLU": lambda: nc_neurons.LeakyReLU(negative_slope=0.2),
    "SpikingLeakyReLU": lambda: nc_neurons.SpikingLeakyReLU(negative_slope=0.2),
}
ALL_NEURONS = {**NEURONS, **DL_NEURONS}
SPIKING = {
    "LIF",
    "SpikingRectifiedLinear",
    "AdaptiveLIF",
    "Izhikevich",
    "RegularSpiking",
    "PoissonSpiking",
    "StochasticSpiking",
    "LIFSubclass",
}
STOCHASTIC_NEURONS = {"PoissonSpiking", "StochasticSpiking"}
STOCHASTIC_PROCESSES = {"WhiteSignal", "WhiteNoise", "FilteredNoise"}

# connection functions: name -> (function, output size given input size)
CONN_FUNCS = {
    "square": (lambda x: x**2, lambda n: n),
    "sum": (lambda x: [np.sum(x)], lambda n: 1),
    "sin": (lambda x: np.sin(2 * x), lambda n: n),
    "pair": (lambda x: [x[0] * x[-1], x[0] - x[-1]], lambda n: 2),
}

# Node functions f(t, x) for nodes with input: name -> output size given input size
NODE_FUNCS = {
    "tanh": (lambda t, x: np.tanh(x), lambda n: n),
    "mix": (lambda t, x: x * np.cos(20 * t), lambda n: n),
    "sum": (lambda t, x: [np.sum(x) + t], lambda n: 1),
}

SYNAPSES_FILTERED = (
    ("Lowpass", 0.005),
    ("Lowpass", 0.02),
    ("Alpha", 0.005),
    ("Lowpass", 0.0),
    ("LinearFilter2", 0.003, 0.01),  # second order low-pass (General / NoD step forms)
    ("LinearFilterZero", 0.004),  # a zero in the numerator: (tau s + 1) / (s + 1)(...)
    ("Discrete", 0.8),  # analog=False
    ("Triangle", 0.004),  # not a LinearFilter: its own kernel
)
SYNAPSES = (None,) + SYNAPSES_FILTERED

INPUT_KINDS = ("const", "time", "process")
PROCESSES = ("PresentInput", "Piecewise", "WhiteSignal", "WhiteNoise", "FilteredNoise")


def make_synapse(spec):
    if spec is None:
        return None
    kind, *args = spec
    if kind == "Lowpass":
        return nengo.Lowpass(args[0])
    if kind == "Alpha":
        return nengo.Alpha(args[0])
    if kind == "LinearFilter2":
        t1, t2 = args
        return nengo.LinearFilter([1], [t1 * t2, t1 + t2, 1])
    if kind == "LinearFilterZero":
        (t,) = args
        return nengo.LinearFilter([t, 1], [t * 2 * t, 3 * t, 1])
    if kind == "Discrete":
        (a,) = args
        return nengo.LinearFilter([1 - a], [1, -a], analog=False)
    if kind == "Triangle":
        return nengo.synapses.Triangle(args[0])
    raise ValueError(spec)


# -- sizes --------------------------------------------------------------------


def conv_transform(obj, src_size):
    """The nengo Convolution(Transpose) of a ``conv`` object fed ``src_size`` values."""
    c = obj["channels"]
    length = src_size // c
    w = obj["width"]
    spatial = (length // w, w) if obj["ndim"] == 2 else (length,)
    shape = spatial + (c,) if obj["channels_last"] else (c,) + spatial
    kernel = tuple(min(obj["kernel"], s) for s in spatial)
    strides = (obj["stride"],) * len(spatial)
    limit = obj["gain"] / np.sqrt(np.prod(kernel) * c)
    cls = nengo.transforms.ConvolutionTranspose if obj["transpose"] else nengo.Convolution
    return cls(
        obj["filters"],
        input_shape=shape,
        kernel_size=kernel,
        strides=strides,
        padding=obj["padding"],
        channels_last=obj["channels_last"],
        init=nengo.dists.Uniform(-limit, limit),
    )


def out_size(objects, i, neurons=False):
    obj = objects[i]
    kind = obj["kind"]
    if kind == "ens":
        return obj["n"] if neurons else obj["d"]
    if kind == "const":
        return len(obj["value"])
    if kind in ("time", "process", "pass", "filter"):
        return obj["size"]
    if kind == "func":
        return NODE_FUNCS[obj["func"]][1](obj["size"])
    if kind == "conv":
        return conv_transform(obj, out_size(objects, obj["src"], obj["src_neurons"])).size_out
    raise ValueError(kind)


def in_size(objects, i, neurons=False):
    obj = objects[i]
    if obj["kind"] == "ens":
        return obj["n"] if neurons else obj["d"]
    if obj["kind"] in ("func", "pass", "filter"):
        return obj["size"]
    if obj["kind"] == "conv":
        return out_size(objects, i)
    return 0


def has_neurons(obj):
    return obj["kind"] == "ens" and obj["neuron"] != "Direct"


def sliced_size(full, sl):
    if sl is None:
        return full
    return len(range(full)[_slice(sl)]) if sl[0] == "slice" else len(sl[1])


def _repeats(sl, full):
    return sl is not None and sl[0] == "idx" and len({i % full for i in sl[1]}) < len(sl[1])


def _slice(sl):
    if sl is None:
        return slice(None)
    if sl[0] == "slice":
        return slice(*sl[1:])
    return list(sl[1])


# -- strategies ------------------------------------------------------------------


@st.composite
def ensembles(draw):
    neuron = draw(st.sampled_from(sorted(NEURONS, key=lambda k: (k != "LIF", k))))
    return {
        "kind": "ens",
        # now and then a large population, where the kernels run in parallel
        "n": 1500 if draw(st.integers(0, 9)) == 9 else draw(st.integers(1, 20)),
        "d": draw(st.integers(1, 3)),
        "neuron": neuron,
        "noise": None if neuron == "Direct" else draw(st.sampled_from([None, "present", "white"])),
    }


@st.composite
def input_nodes(draw):
    kind = draw(st.sampled_from(INPUT_KINDS))
    size = draw(st.integers(1, 3))
    if kind == "const":
        vals = draw(st.lists(st.sampled_from([0.5, -0.3, 0.9, 0.0, -1.0]), min_size=size, max_size=size))
        return {"kind": "const", "value": vals}
    if kind == "time":
        return {"kind": "time", "size": size, "freq": draw(st.sampled_from([5.0, 1.0, 17.0]))}
    return {"kind": "process", "size": size, "process": draw(st.sampled_from(PROCESSES))}


def slices(full, unique=False):
    """None, a Python slice, or a list of indices into ``full`` items."""
    if full == 0:
        return st.just(None)
    idx = st.integers(0, full - 1)
    return st.one_of(
        st.just(None),
        idx.flatmap(
            lambda start: st.tuples(
                st.just("slice"), st.just(start), st.integers(start + 1, full), st.integers(1, 2)
            )
        ),
        st.just(("slice", None, None, -1)),  # reversed: a view with a negative stride
        st.tuples(
            st.just("idx"),
            st.lists(st.integers(-full, full - 1), min_size=1, max_size=4).filter(
                lambda ix: not unique or len(set(i % full for i in ix)) == len(ix)
            ),
        ),
    )


@st.composite
def conv_objects(draw, objects):
    # (Nengo refuses convolutions on decoded connections: ensembles give neurons)
    srcs = [(i, nr) for i in range(len(objects)) for nr in (False, True)
            if out_size(objects, i, nr) > 0 and (nr == (objects[i]["kind"] == "ens"))
            and (not nr or has_neurons(objects[i]))]
    if not srcs:
        return None
    src, src_neurons = draw(st.sampled_from(srcs))
    size = out_size(objects, src, src_neurons)
    c = draw(st.sampled_from([k for k in range(1, size + 1) if size % k == 0]))
    length = size // c
    ndim = draw(st.sampled_from([1, 2]))
    width = draw(st.sampled_from([k for k in range(1, length + 1) if length % k == 0])) if ndim == 2 else 1
    return {
        "kind": "conv",
        "src": src,
        "src_neurons": src_neurons,
        "channels": c,
        "ndim": ndim,
        "width": width,
        "filters": draw(st.integers(1, 3)),
        "kernel": draw(st.integers(1, 3)),
        "stride": draw(st.integers(1, 2)),
        "padding": draw(st.sampled_from(["valid", "same"])),
        "channels_last": draw(st.booleans()),
        "transpose": draw(st.booleans()),
        "synapse": draw(st.sampled_from(SYNAPSES)),
        "gain": 0.002 if src_neurons else 1.0,
    }


@st.composite
def objects_lists(draw):
    objects = []
    n = draw(st.integers(1, 6))
    for _ in range(n):
        choices = ["ens", "ens", "input", "func", "pass", "filter"] + (["conv"] if objects else [])
        kind = draw(st.sampled_from(choices))
        if kind == "ens":
            obj = draw(ensembles())
        elif kind == "input":
            obj = draw(input_nodes())
        elif kind == "conv":
            obj = draw(conv_objects(objects))
            if obj is None:
                continue
        else:
            obj = {"kind": kind, "size": draw(st.integers(1, 3))}
            if kind == "func":
                obj["func"] = draw(st.sampled_from(sorted(NODE_FUNCS)))
            if kind == "filter":
                obj["synapse"] = draw(st.sampled_from(SYNAPSES_FILTERED))
        objects.append(obj)
    return objects


def _pre_candidates(objects):
    return [
        (i, nr)
        for i, obj in enumerate(objects)
        for nr in (False, True)
        if (not nr or has_neurons(obj)) and out_size(objects, i, nr) > 0
    ]


def _post_candidates(objects):
    return [
        (i, nr)
        for i, obj in enumerate(objects)
        for nr in (False, True)
        if (not nr or has_neurons(obj)) and in_size(objects, i, nr) > 0 and obj["kind"] != "conv"
    ]


@st.composite
def transforms(draw, rows, cols, pre_neurons, allow_sparse=True, allow_dense=True,
               learned=False):
    options = (["dense"] if allow_dense else []) + (["sparse"] if allow_sparse else [])
    if rows == cols:
        # (Nengo learns only 2-D weights: decoders, or a Dense transform)
        options = (["none"] if not (learned and pre_neurons) else []) + (
            ["scalar"] if not learned else []) + options
    assume(options)  # (e.g. repeated indices, unequal sizes and a decoded pre)
    kind = draw(st.sampled_from(options))
    gain = draw(st.sampled_from([1.0, 0.5, -0.8])) * (0.002 if pre_neurons else 1.0)
    if kind == "none":
        return None if not pre_neurons else ("scalar", gain)
    if kind == "scalar":
        return ("scalar", gain)
    return (kind, rows, cols, draw(st.integers(0, 1000)), gain)


def make_transform(spec):
    if spec is None:
        return nengo.params.Default
    if spec[0] == "scalar":
        return spec[1]
    kind, rows, cols, seed, gain = spec
    rng = np.random.RandomState(seed)
    if kind == "dense":
        return gain * rng.uniform(-1, 1, size=(rows, cols)) / np.sqrt(cols)
    nnz = rng.randint(1, rows * cols + 1)
    flat = rng.choice(rows * cols, size=nnz, replace=False)
    indices = np.stack([flat // cols, flat % cols], axis=1)
    return nengo.transforms.Sparse(
        (rows, cols), indices=indices, init=gain * rng.uniform(-1, 1, size=nnz)
    )


LEARNING_RATES = {"PES": 1e-3, "RLS": 1e-3, "BCM": 1e-8, "Oja": 1e-6, "Voja": 1e-2}


@st.composite
def connections(draw, objects):
    pres, posts = _pre_candidates(objects), _post_candidates(objects)
    if not posts:
        return None
    learning = draw(st.sampled_from([None, None, None, "PES", "RLS", "BCM", "Oja", "Voja"]))
    def small(i):  # (rules with n_pre x n_post work per step in Nengo's Python)
        return objects[i]["kind"] != "ens" or objects[i]["n"] <= 20

    # what each rule needs of pre and post, (index, neurons?) -> bool
    pre_ok, post_ok = {
        None: (None, None),
        "PES": (lambda i, nr: has_neurons(objects[i]), None),
        # (Nengo's RLS step fails on sliced or neuron-space connections)
        "RLS": (lambda i, nr: has_neurons(objects[i]) and not nr and small(i), lambda i, nr: not nr),
        "BCM": (lambda i, nr: nr and small(i), lambda i, nr: nr and small(i)),
        "Oja": (lambda i, nr: nr and small(i), lambda i, nr: nr and small(i)),
        "Voja": (None, lambda i, nr: has_neurons(objects[i]) and not nr),
    }[learning]
    pres = [c for c in pres if pre_ok is None or pre_ok(*c)]
    posts = [c for c in posts if post_ok is None or post_ok(*c)]
    if not (pres and posts):
        learning = None
        pres, posts = _pre_candidates(objects), _post_candidates(objects)
    pre, pre_nr = draw(st.sampled_from(pres))
    post, post_nr = draw(st.sampled_from(posts))
    pre_obj, post_obj = objects[pre], objects[post]
    simple = learning in ("BCM", "Oja")
    no_slices = simple or learning == "RLS"
    # (Nengo refuses repeated indices with 2-D Dense transforms, which rules need)
    unique = learning is not None
    pre_slice = None if no_slices else draw(slices(out_size(objects, pre, pre_nr), unique))
    post_slice = (
        None if no_slices or learning == "Voja" else draw(slices(in_size(objects, post, post_nr), unique))
    )
    repeats = _repeats(pre_slice, out_size(objects, pre, pre_nr)) or _repeats(
        post_slice, in_size(objects, post, post_nr)
    )
    n_pre = sliced_size(out_size(objects, pre, pre_nr), pre_slice)
    function = None
    if not pre_nr and not simple and pre_obj["kind"] not in ("pass", "conv"):
        function = draw(st.sampled_from([None] + sorted(CONN_FUNCS)))
    mid = n_pre if function is None else CONN_FUNCS[function][1](n_pre)
    n_post = sliced_size(in_size(objects, post, post_nr), post_slice)
    if simple:
        transform = ("dense", n_post, mid, draw(st.integers(0, 1000)), 0.002)
    else:
        transform = draw(
            transforms(
                n_post,
                mid,
                pre_nr,
                # (Nengo refuses sparse transforms on decoded connections)
                allow_sparse=learning is None and (pre_nr or pre_obj["kind"] != "ens"),
                allow_dense=not repeats,
                learned=learning is not None,
            )
        )
    forward = pre < post
    synapse = draw(st.sampled_from(SYNAPSES if forward else SYNAPSES_FILTERED))
    conn = {
        "pre": pre, "pre_neurons": pre_nr, "pre_slice": pre_slice,
        "post": post, "post_neurons": post_nr, "post_slice": post_slice,
        "function": function, "transform": transform, "synapse": synapse,
        "learning": learning,
    }
    if learning in ("PES", "RLS"):
        err, err_nr = draw(st.sampled_from(pres))
        n_err = out_size(objects, err, err_nr)
        # the error lives in the post ensemble's space when post is its neurons
        n_error = post_obj["d"] if post_nr else n_post
        conn["error"] = (err, err_nr, draw(st.integers(0, 1000)),
                         draw(st.sampled_from(SYNAPSES_FILTERED[:3])), n_error, n_err)
    return conn


def _state_names(neuron):
    nt = ALL_NEURONS[neuron]()
    return sorted(getattr(nt, "state", {}))


@st.composite
def probes(draw, objects, conns):
    targets = []
    for i, obj in enumerate(objects):
        if obj["kind"] == "ens":
            targets += [("obj", i, "decoded_output"), ("obj", i, "input")]
            if has_neurons(obj):
                targets += [("neurons", i, "output"), ("neurons", i, "input")]
                targets += [("neurons", i, name) for name in _state_names(obj["neuron"])]
                targets += [("obj", i, "scaled_encoders")]
        else:
            targets.append(("obj", i, "output"))
    for j, conn in enumerate(conns):
        targets += [("conn", j, "output"), ("conn", j, "input")]
        if conn["learning"] is not None:
            rule = getattr(nengo, conn["learning"])()
            targets += [("rule", j, attr) for attr in rule.probeable]
        decoded = objects[conn["pre"]]["kind"] == "ens" and not conn["pre_neurons"]
        if conn["transform"] is None and not decoded:
            continue  # no weights signal to probe
        if conn["transform"] is None or conn["transform"][0] != "sparse":
            # (a Sparse transform's weights are a scipy matrix: not probeable in
            # nengo_cuda, a BuildError tested in test_bad_input.py)
            targets.append(("conn", j, "weights"))
    target = draw(st.sampled_from(targets))
    synapse = draw(st.sampled_from([None, ("Lowpass", 0.01)]))
    if target[2] in ("scaled_encoders", "weights", "delta", "inv_gamma"):
        synapse = None  # (matrices)
    every = draw(st.sampled_from([None, 2, 3, 1.5]))
    return {"target": target, "synapse": synapse, "sample_every": every}


@st.composite
def network_specs(draw):
    objects = draw(objects_lists())
    conns = []
    for _ in range(draw(st.integers(0, 8))):
        conn = draw(connections(objects))
        if conn is not None:
            conns.append(conn)
    return {
        "seed": draw(st.integers(0, 2**16)),
        "objects": objects,
        "connections": conns,
        "probes": draw(st.lists(probes(objects, conns), min_size=1, max_size=4)),
        # now and then a longer run (past WhiteSignal's period of 0.1 s)
        "steps": (
            250 if draw(st.integers(0, 9)) == 9 else draw(st.integers(1, 60)),
            draw(st.integers(0, 30)),
        ),
        "dt": draw(st.sampled_from([0.001, 0.0005, 0.002])),
    }


# -- building --------------------------------------------------------------------


class TimeFunc:
    def __init__(self, size, freq):
        self.size, self.freq = size, freq

    def __call__(self, t):
        return 0.8 * np.sin(2 * np.pi * self.freq * t + np.arange(self.size))


def _make_process(name, size, seed, seeded=False):
    """The input process ``name``; ``seeded``: random ones get ``seed`` as their
    own seed (Process.seed), else the simulator's seed sequence gives them one."""
    rng = np.random.RandomState(seed)
    own = dict(seed=seed) if seeded else {}
    if name == "PresentInput":
        return nengo.processes.PresentInput(rng.uniform(-1, 1, (3, size)), 0.004)
    if name == "Piecewise":
        return nengo.processes.Piecewise(
            {0: rng.uniform(-1, 1, size), 0.01: rng.uniform(-1, 1, size)}
        )
    if name == "WhiteSignal":
        return nengo.processes.WhiteSignal(0.1, high=20, rms=0.5, **own)
    if name == "WhiteNoise":
        return nengo.processes.WhiteNoise(nengo.dists.Gaussian(0, 0.3), scale=False, **own)
    if name == "FilteredNoise":
        return nengo.processes.FilteredNoise(nengo.Alpha(0.005), nengo.dists.Gaussian(0, 1),
                                             **own)
    raise ValueError(name)


def build(spec, seed_processes=False):
    """(network, probes, info): ``info["objects"]`` are the Nengo objects of ``spec["objects"]``.

    ``seed_processes``: random processes (inputs, Ensemble noise) get their own
    seed from the spec, so they draw the same numbers whatever order a simulator
    steps them in (by default the simulator's seed sequence, in its step
    order, seeds them: two builds of one network may order them differently).
    """
    objs, nengo_objs = spec["objects"], []
    with nengo.Network(seed=spec["seed"]) as net:
        for i, obj in enumerate(objs):
            kind = obj["kind"]
            if kind == "ens":
                kwargs = {}
                if obj["neuron"] == "Izhikevich":
                    # its rates are simulated: skip the gain/bias fit, few eval points
                    kwargs = dict(gain=nengo.dists.Uniform(5, 15), bias=nengo.dists.Uniform(0, 5),
                                  n_eval_points=50)
                if obj["noise"] == "present":
                    kwargs["noise"] = nengo.processes.PresentInput(
                        np.random.RandomState(i).uniform(-0.3, 0.3, (3, obj["n"])), 0.003
                    )
                elif obj["noise"] == "white":
                    own = dict(seed=spec["seed"] + i) if seed_processes else {}
                    kwargs["noise"] = nengo.processes.WhiteNoise(
                        nengo.dists.Gaussian(0, 0.1), **own)
                x = nengo.Ensemble(obj["n"], obj["d"], neuron_type=ALL_NEURONS[obj["neuron"]](),
                                 **kwargs)
            elif kind == "const":
                x = nengo.Node(obj["value"])
            elif kind == "time":
                x = nengo.Node(TimeFunc(obj["size"], obj["freq"]))
            elif kind == "process":
                x = nengo.Node(_make_process(obj["process"], obj["size"], spec["seed"] + i,
                                             seeded=seed_processes),
                               size_out=obj["size"])
            elif kind == "func":
                x = nengo.Node(NODE_FUNCS[obj["func"]][0], size_in=obj["size"])
            elif kind == "pass":
                x = nengo.Node(size_in=obj["size"])
            elif kind == "filter":
                x = nengo.Node(make_synapse(obj["synapse"]), size_in=obj["size"], size_out=obj["size"])
            elif kind == "conv":
                src = nengo_objs[obj["src"]]
                if obj["src_neurons"]:
                    src = src.neurons
                conv = conv_transform(obj, out_size(objs, obj["src"], obj["src_neurons"]))
                x = nengo.Node(size_in=conv.size_out)
                nengo.Connection(src, x, transform=conv, synapse=make_synapse(obj["synapse"]))
            nengo_objs.append(x)

        conns = []
        for c in spec["connections"]:
            pre = nengo_objs[c["pre"]]
            post = nengo_objs[c["post"]]
            pre = pre.neurons if c["pre_neurons"] else pre
            post = post.neurons if c["post_neurons"] else post
            if c["pre_slice"] is not None:
                pre = pre[_slice(c["pre_slice"])]
            if c["post_slice"] is not None:
                post = post[_slice(c["post_slice"])]
            kwargs = {}
            if c["function"] is not None:
                kwargs["function"] = CONN_FUNCS[c["function"]][0]
            if c["learning"] is not None:
                rule = getattr(nengo, c["learning"])
                kwargs["learning_rule_type"] = rule(learning_rate=LEARNING_RATES[c["learning"]])
            conn = nengo.Connection(
                pre,
                post,
                transform=make_transform(c["transform"]),
                synapse=make_synapse(c["synapse"]),
                **kwargs,
            )
            if "error" in c:
                err, err_nr, seed, syn, rows, cols = c["error"]
                src = nengo_objs[err].neurons if err_nr else nengo_objs[err]
                gain = 0.002 if err_nr else 1.0
                nengo.Connection(
                    src,
                    conn.learning_rule,
                    transform=make_transform(("dense", rows, cols, seed, gain)),
                    synapse=make_synapse(syn),
                )
            conns.append(conn)

        probes = []
        for p in spec["probes"]:
            where, index, attr = p["target"]
            target = conns[index] if where in ("conn", "rule") else nengo_objs[index]
            if where == "rule":
                target = target.learning_rule
            if where == "neurons":
                target = target.neurons
            every = None if p["sample_every"] is None else p["sample_every"] * spec["dt"]
            probes.append(
                nengo.Probe(target, attr, synapse=make_synapse(p["synapse"]), sample_every=every)
            )
    return net, probes, {"objects": nengo_objs}
