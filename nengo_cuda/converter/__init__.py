"""`Converter`: a Keras model as a Nengo network (NengoDL 3's ``nengo_dl.Converter``).

The converter walks the model's layer graph from its outputs back to its inputs
and converts every layer application with the converter registered for its type
(`nengo_cuda.converter.layers`): Dense and convolution layers become
connections with the Keras weights as transforms (``nengo.Convolution`` for
convolutions, 1-D to 3-D, depthwise ones too; ``ConvolutionTranspose`` for
transposed ones), activations become neurons (relu -> RectifiedLinear, sigmoid
-> Sigmoid, tanh -> Tanh, LeakyReLU -> nengo_cuda.LeakyReLU; linear -> a Node),
reshapes cost nothing, pooling is a constant depthwise convolution, padding,
cropping and upsampling are index maps, merges are Nodes.  3-D transposed
convolutions are 2-D convolutions over a restacked input and 3-D pooling a
sparse average (Nengo runs 1-D and 2-D convolutions only).  A TimeDistributed
layer in a temporal model is its wrapped layer, converted per step.  A layer
with no native form becomes a `~nengo_cuda.TensorNode` running the Keras layer
itself (``allow_fallback=True``; several inputs arrive side by side and are
split again), so any layer with one output converts.

A Dense layer's bias into neurons is the neurons' own trainable bias (as
NengoDL); other biases are trainable connections from one constant Node (a
convolution's bias is one weight per filter, broadcast to its positions by a
constant sparse connection), so ``sim.fit`` trains exactly the Keras model's
parameters; the encoders are never trained.  With ``temporal_model=True`` the
model's tensors carry a time axis, one Nengo step per Keras step
(`nengo_cuda.converter.temporal`).  Connections out of neurons get
``synapse`` (default None); all others have none, so a rate network gives the
Keras model's output on the first step.

Other layer types convert through NengoDL's extension API: a
`LayerConverter` subclass registered with ``Converter.register(LayerClass)``
(see `nengo_cuda.converter.extension`).

TensorFlow (and Keras) are needed to convert, not to simulate the result.
"""

import warnings
from collections.abc import Mapping

import nengo
import numpy as np

from ..training.config import configure_settings, get_setting
from .activations import NoNeuronType, neuron_type_for, with_amplitude
from .application import Application, all_float, is_layer, plain
from .extension import LayerConverter
from .layers import CONVERTERS, Tensor, Unconvertible
from .temporal import time_mixing

__all__ = ["Converter", "LayerConverter", "Unconvertible"]



class SwapActivations(dict):
    """``Converter.swap_activations``: the dict given, which also knows which of
    its keys matched an activation of the model (NengoDL's ``unused_keys``)."""

    def __init__(self, swaps=None):
        super().__init__(swaps or {})
        self.used = set()  # positions of the keys that applied

    def unused_keys(self, ordered=False):
        """The keys that matched no activation of the model (a set; a list in
        the dict's order with ``ordered``)."""
        keys = [key for i, key in enumerate(self) if i not in self.used]
        return keys if ordered else set(keys)


class _ShareOneTensorNode(Exception):
    """A weighted layer with a native copy has an application without a native
    form: the conversion starts again, all its applications sharing one
    TensorNode (a native copy beside it would train apart)."""

    def __init__(self, layer, reason):
        super().__init__(layer.name)
        self.layer, self.reason = layer, reason


class Converter:
    """Converts a Keras model to a Nengo network.

    Parameters
    ----------
    model : keras.Model
        A functional or (built) Sequential model (``self.model``: a Sequential's
        equivalent Functional model, of the same layers, as in NengoDL).
    allow_fallback : bool
        Layers without a native form become TensorNodes (else TypeError).
    inference_only : bool
        Also convert layers whose training behaviour the native form does not
        keep (BatchNormalization, as a constant affine map).
    max_to_avg_pool : bool
        Convert max pooling to average pooling (changes the outputs).
    split_shared_weights : bool
        A layer with weights applied to several inputs becomes independent
        copies (same initial weights); else ValueError.
    swap_activations : dict
        Activations or neuron types to replace (see
        `nengo_cuda.converter.activations`).
    scale_firing_rates : float or dict
        Neuron inputs times ``s`` and outputs times ``1 / s`` (per Keras layer
        with a dict): higher rates for spiking neurons, the same output for
        linear (ReLU-like) ones.
    synapse : Synapse or float
        Synapse of every connection out of neurons.
    temporal_model : bool
        The model's tensors are ``(batch, steps, ...)``: one Nengo step per
        Keras time step; every layer must apply the same function to each step
        on its own (see `nengo_cuda.converter.temporal`).

    Attributes
    ----------
    model : keras.Model
    net : nengo.Network
    inputs : dict
        Model input (Keras tensor, or its InputLayer) -> input Node.
    outputs : dict
        Model output (Keras tensor, or its layer) -> Probe.
    layers : dict
        Keras tensor (a layer's output) -> the Nengo object giving its values
        (a Node, or an ensemble's neurons); a Keras layer -> that of its first
        output.
    converters : dict
        (class attribute) Keras layer class -> `LayerConverter` subclass, as
        registered with `Converter.register`.
    """

    converters = {}

    def __init__(self, model, allow_fallback=True, inference_only=False, max_to_avg_pool=False,
                 split_shared_weights=False, swap_activations=None, scale_firing_rates=None,
                 synapse=None, temporal_model=False):
        if not getattr(model, "outputs", None):
            raise ValueError(f"Converter: model {model.name!r} is not built (give it an "
                             f"Input or call it once)")
        self.model = model = _functional(model)
        self.allow_fallback = allow_fallback
        self.inference_only = inference_only
        self.max_to_avg_pool = max_to_avg_pool
        self.split_shared_weights = split_shared_weights
        self.swap_activations = SwapActivations(swap_activations)
        self.swaps_used = self.swap_activations.used
        self.scale_firing_rates = scale_firing_rates
        self.synapse = synapse
        self.temporal_model = bool(temporal_model)
        self.lead = 2 if self.temporal_model else 1  # Keras axes before a step's values
        # (weighted layers one of whose applications has no native form: all
        # their applications share one TensorNode; found while converting)
        self._shared_fallbacks = {}  # id(layer) -> why an application has no native form
        while True:
            restart = None
            self._warnings = []  # (this try's: see `_warn`)
            try:
                self._build(model)
            except _ShareOneTensorNode as e:
                restart = e
            finally:
                if restart is None:  # (converted, or failed: what it said, once)
                    for message in self._warnings:
                        warnings.warn(message, UserWarning)
            if restart is None:
                break
            # (an earlier application converted natively: convert anew, all of
            # this layer's applications sharing one TensorNode; the network of
            # this try leaves the enclosing one, which it joined when made)
            self._shared_fallbacks[id(restart.layer)] = restart.reason
            self.swap_activations.used.clear()
            if nengo.Network.context and self.net in nengo.Network.context[-1].networks:
                nengo.Network.context[-1].networks.remove(self.net)

    def _build(self, model):
        """Converts ``model`` into a new ``self.net`` (state of any earlier try
        replaced)."""
        self._copies = {}  # Keras layer -> its copy for TensorNodes (see _copied)
        self.inputs, self.outputs, self.layers = _TensorDict(), _TensorDict(), _TensorDict()
        self._converted = {}  # (id(layer), node index) -> [Tensor]
        self._applications = {}  # id(layer) -> count of converted applications
        self._bias_node = None
        self._layer_converters = {}  # id(layer) -> its LayerConverter instance
        self._substitute = {}  # id(Keras tensor) -> Tensor, inside a nested model
        self._wrapper = None  # the TimeDistributed layer whose wrapped layer converts
        self._frozen = False  # converting a layer with trainable=False (see `connect`)
        self._output_probes = []  # one per model output (a tensor output twice: two)
        self._applied_twice = None  # (raised at the end: see `_apply`)
        with nengo.Network(label=model.name) as self.net:
            # (NengoDL's: a network converted for inference only refuses fit)
            configure_settings(trainable=None, inference_only=bool(self.inference_only))
            for kt in model.outputs:
                obj = self._tensor(kt).obj
                # unlabelled, as NengoDL's: evaluate's keys are "probe_loss", ...
                synapse = self.synapse if isinstance(obj, nengo.ensemble.Neurons) else None
                probe = nengo.Probe(obj, synapse=synapse)
                self._output_probes.append(probe)
                self.outputs[kt] = probe
                self.outputs.alias(_history(kt)[0], probe)
            for kt in model.inputs:  # (an input no output needs gets its Node too)
                self._tensor(kt)
        if self._applied_twice is not None:
            raise self._applied_twice
        # (NengoDL's orders: the model's inputs', its layers'; nested models' last)
        self.inputs.sort(_order_of(model.inputs, lambda tensor: tensor))
        self.layers.sort(_order_of(model.layers, lambda tensor: _history(tensor)[0]))
        for key in self.swap_activations.unused_keys(ordered=True):
            # (a typo, or a layer that fell back)
            self._warn(f"Converter: swap_activations key {key!r} matched no "
                       f"activation in the model (there are no layers in the model with "
                       f"that activation)")
        # the model's inputs are the network's first Nodes (data given as a list
        # goes to the input Nodes in this order, the constant bias Node last)
        first = [self.inputs[kt] for kt in model.inputs if kt in self.inputs]
        self.net.nodes.sort(key=lambda n: first.index(n) if n in first else len(first))

    # -- the layer graph --------------------------------------------------------
    def _tensor(self, kt):
        """The converted Tensor of a Keras tensor (converting what it needs)."""
        if id(kt) in self._substitute:  # an input of a nested model
            return self._substitute[id(kt)]
        layer, node_index, tensor_index = _history(kt)
        key = (id(layer), node_index)
        if key not in self._converted:
            self._converted[key] = self._convert(layer, node_index)
        return self._converted[key][tensor_index]

    def _convert(self, layer, node_index):
        node = layer._inbound_nodes[node_index]
        out_shapes = [tuple(t.shape[self.lead:]) for t in node.output_tensors]
        name = type(layer).__name__
        if name == "InputLayer":
            (shape,) = out_shapes
            after = ("the batch and time axes (temporal_model=True)" if self.temporal_model
                     else "the batch axis")
            if any(d is None for d in shape) or len(node.output_tensors[0].shape) < self.lead:
                raise ValueError(
                    f"Converter: Input {layer.name!r} has shape "
                    f"{tuple(node.output_tensors[0].shape[1:])}; the shape after {after} must "
                    f"be fully specified" + ("" if self.temporal_model else
                                             " (temporal_model=True takes a time axis)"))
            inp = nengo.Node(np.zeros(int(np.prod(shape))), label=layer.name)
            for kt in node.output_tensors:
                self.inputs[kt] = inp
            self.inputs.alias(layer, inp)
            outs = [Tensor(inp, shape)]
            self._record(layer, node, outs)
            return outs
        inputs = [self._tensor(t) for t in node.input_tensors]
        found = self._find_converter(layer)
        if self.temporal_model and found not in ("model", "per step"):
            why = time_mixing(layer, node)
            if why is not None:  # (no TensorNode either: it runs one step at a time)
                raise TypeError(f"Converter(temporal_model=True): layer {layer.name!r} "
                                f"({name}) is not one function per time step: {why}")
        outs = self._apply(layer, found, node_index, node, inputs, out_shapes)
        self._record(layer, node, outs)
        return outs

    def _apply(self, layer, found, node_index, node, inputs, out_shapes):
        """The Tensors of application ``node_index`` (Keras node ``node``) of
        ``layer`` to the converted ``inputs``, converted by ``found`` (see
        `_find_converter`), else as a TensorNode."""
        if found == "per step":
            return self._time_distributed(layer, node_index, node, inputs, out_shapes)
        name = type(layer).__name__
        reason = swapped = None
        if isinstance(found, type):  # a registered LayerConverter
            ok, reason = _convertible(found, layer, self)
            if not ok and not found.allow_fallback:
                raise TypeError(f"{_unable(layer)}: layer {layer.name!r}{self._within()} "
                                f"with {found.__name__}: {reason}")
            has_weights = found.has_weights if ok else bool(getattr(layer, "weights", None))
        else:
            has_weights = bool(getattr(layer, "weights", None))
        if found == "model":
            # (not counted itself, as NengoDL's ConvertModel has no weights: its
            # layers count their own applications, and those that run as
            # TensorNodes share their weights)
            return self._nested(layer, inputs)  # a Model used as a layer
        if found is None:
            reason = f"no converter for {name}"
        elif not isinstance(found, type) and not self.inference_only:
            reason = _training_extras(layer)
        sharing = has_weights and not self.split_shared_weights
        if reason is None and sharing and id(layer) in self._shared_fallbacks:
            reason = (f"an application of the layer has no native form "
                      f"({self._shared_fallbacks[id(layer)]}), so all its applications run as "
                      f"TensorNodes sharing its weights")
        elif reason is None and sharing and layer in self._copies:
            # (its TensorNode's weights are the layer's for every application;
            # split_shared_weights asks for a copy of its own where it can have one)
            reason = "another application of the layer runs as a TensorNode, whose weights " \
                     "this one shares"
        # (a later application of a layer with a native copy: a second native copy
        # needs split_shared_weights; if it has no native form, all share a TensorNode)
        again = sharing and self._applications.get(id(layer), 0) > 0
        if found is not None and reason is None:
            # (a fallback TensorNode runs the Keras layer itself: its applications
            # share its weights, as in Keras, so only native copies are counted)
            if not again:
                self._count_application(layer, has_weights)
            built = self._snapshot()
            try:
                if isinstance(found, type):
                    outs = self._convert_with(found, layer, node_index, node, inputs, out_shapes)
                else:
                    # a frozen Keras layer's parameters do not train (Keras's rule)
                    self._frozen = not getattr(layer, "trainable", True)
                    outs = found(self, layer, inputs, out_shapes)
            except (Unconvertible, LookupError) as e:
                reason = e  # (its message; its type picks the warning's words)
                if has_weights and not again:  # (a TensorNode shares the weights)
                    self._applications[id(layer)] -= 1
                # (an activation swapped for one with no neuron type: the
                # TensorNode runs the layer with that one, as NengoDL's does)
                swapped = getattr(e, "activation", None)
                self._rollback(built)  # no half-built layer next to its fallback
            finally:
                self._frozen = False
            if again and reason is None and self._applied_twice is None:
                # (an error, unless a later application has no native form: then
                # the conversion starts again, all sharing one TensorNode)
                try:
                    self._count_application(layer, has_weights)
                except ValueError as e:
                    self._applied_twice = e
        if reason is not None and again and self.allow_fallback:
            raise _ShareOneTensorNode(layer, reason)
        if reason is not None:
            outs = self._fallback(layer, node, inputs, out_shapes, reason, swapped)
        return outs

    def _time_distributed(self, layer, node_index, node, inputs, out_shapes):
        """A TimeDistributed layer applies its wrapped layer to each step of its
        input on its own: ``y[:, t] = layer.layer(x[:, t])``.  In a temporal
        model a Nengo step holds one Keras step's values, so this is the
        wrapped layer converted as in a model without the time axis (natively,
        or as a TensorNode running the wrapped layer on one step).  Outside a
        temporal model the time axis is a value axis, along which the wrapped
        layer would be copied with its weights shared: not converted natively
        (NengoDL refuses it; here it runs as a TensorNode with allow_fallback)."""
        if not self.temporal_model:
            return self._fallback(
                layer, node, inputs, out_shapes, "TimeDistributed converts natively only with "
                "temporal_model=True, where its time axis is the simulation's steps")
        inner, saved = layer.layer, (self.temporal_model, self.lead, self._wrapper)
        self.temporal_model, self.lead, self._wrapper = False, 1, layer
        try:
            return self._apply(inner, self._find_converter(inner), node_index, node, inputs,
                               out_shapes)
        finally:
            self.temporal_model, self.lead, self._wrapper = saved

    def _count_application(self, layer, has_weights):
        """A native form copies a layer's weights: a second application of a layer
        with weights needs ``split_shared_weights`` (independent copies)."""
        if not has_weights:
            return
        count = self._applications[id(layer)] = self._applications.get(id(layer), 0) + 1
        if count > 1 and not self.split_shared_weights:
            raise ValueError(f"Converter: layer {layer.name!r}{self._within()} is applied "
                             f"{count} times; shared weights are not supported unless "
                             f"split_shared_weights=True")

    def _warn(self, message):
        """A warning of this try of the conversion, given once the conversion
        ends (a try that starts again says nothing)."""
        self._warnings.append(message)

    def _within(self):
        """Where the layer being converted is, in messages: in a TimeDistributed layer."""
        w = self._wrapper
        return "" if w is None else f" in TimeDistributed layer {w.name!r}"

    def _find_converter(self, layer):
        """What converts ``layer``: a registered `LayerConverter` subclass,
        "model" (a nested model), "per step" (a TimeDistributed layer), a
        built-in converter function, or None.

        A registration for the layer's own class comes first, then a nested
        model, then the built-in converter of that exact Keras class (by class
        name, so a subclass of a Keras layer, which may compute something else,
        is never converted as its base; and only a layer: Keras ops such as
        ``a + 1.0`` are operations named as layers, ``Add``), then a
        registration for a base class (the nearest in the MRO)."""
        mro = type(layer).__mro__
        if mro[0] in self.converters:
            return self.converters[mro[0]]
        if hasattr(layer, "layers") and getattr(layer, "outputs", None):
            return "model"
        if type(layer).__name__ == "TimeDistributed":
            return "per step"
        if type(layer).__name__ in CONVERTERS and is_layer(layer):
            return CONVERTERS[type(layer).__name__]
        return next((self.converters[c] for c in mro[1:] if c in self.converters), None)

    def _convert_with(self, cls, layer, node_index, node, inputs, out_shapes):
        """Application ``node_index`` of ``layer`` through a registered
        `LayerConverter` (one instance per layer, as NengoDL's)."""
        conv = self._layer_converters.get(id(layer))
        if type(conv) is not cls:
            conv = self._layer_converters[id(layer)] = cls(layer, self)
        conv._begin(node_index, inputs, out_shapes, node)
        result = conv.convert(node_index)
        objs = list(result) if isinstance(result, (list, tuple)) else [result]
        if len(objs) != len(out_shapes):
            raise ValueError(f"Converter: {cls.__name__}.convert gave {len(objs)} objects for "
                             f"layer {layer.name!r}'s {len(out_shapes)} outputs")
        outs = []
        for obj, shape in zip(objs, out_shapes):
            size = getattr(obj, "size_out", None)
            if size != int(np.prod(shape)):
                raise ValueError(f"Converter: {cls.__name__}.convert gave {obj} (size "
                                 f"{size}) for layer {layer.name!r}'s output of shape {shape}")
            if isinstance(obj, nengo.base.ObjView):  # later layers slice their inputs
                view, obj = obj, nengo.Node(size_in=size, label=layer.name)
                self.connect(view, obj, 1, trainable=False)
            outs.append(Tensor(obj, tuple(shape)))
        return outs

    def _snapshot(self):
        net = self.net
        return (len(net.nodes), len(net.ensembles), len(net.connections), len(net.networks),
                len(net.probes))

    def _rollback(self, snapshot):
        """Removes what a converter built before it gave up."""
        net = self.net
        for objs, n in zip((net.nodes, net.ensembles, net.connections, net.networks,
                            net.probes), snapshot):
            del objs[n:]
        if self._bias_node is not None and self._bias_node not in net.nodes:
            self._bias_node = None

    def _record(self, layer, node, outs):
        for kt, out in zip(node.output_tensors, outs):
            self.layers[kt] = out.obj
        self.layers.alias(layer, outs[0].obj)

    def _nested(self, model, inputs):
        """A model inside the model: its own graph, with its inputs replaced by
        ``inputs`` (a fresh cache, so each application converts anew)."""
        if len(model.inputs) != len(inputs):
            raise TypeError(f"Converter: nested model {model.name!r} takes {len(model.inputs)} "
                            f"inputs; it was given {len(inputs)}")
        saved = self._converted, self._substitute
        self._converted = {}
        self._substitute = {id(t): _as_input_of(model, t, x, self.lead)
                            for t, x in zip(model.inputs, inputs)}
        try:
            return [self._tensor(t) for t in model.outputs]
        finally:
            self._converted, self._substitute = saved

    def _fallback(self, layer, node, inputs, out_shapes, reason, activation=None):
        """A TensorNode running ``layer`` (a copy: see `_copied`), with
        ``activation`` in place of its own where one is given."""
        where = f"layer {layer.name!r} ({type(layer).__name__}){self._within()}: {reason}"
        if not self.allow_fallback:
            raise TypeError(f"{_unable(layer)}: {where}; allow_fallback=True runs it as a "
                            f"TensorNode")
        if len(out_shapes) != 1:
            raise TypeError(f"{_unable(layer)}: {where}, and only layers with one output "
                            f"fall back to a TensorNode")
        from ..training.tensor_node import TensorNode  # noqa: PLC0415

        # (NengoDL's words, which code matches: its warning for an activation
        # without a Nengo form, else for a layer without a converter)
        then = ("; falling back to a TensorNode" if isinstance(reason, NoNeuronType)
                else ". Falling back to TensorNode")
        self._warn(f"Converter: {where}{then} (running the layer as one)")
        if _activity_loss(layer):
            self._warn(f"Converter: layer {layer.name!r}{self._within()}: its activity "
                       f"regularization is not added to the loss in fit (nor is it in "
                       f"NengoDL, whose TensorNodes skip Keras's layer call)")
        sizes = [int(np.prod(i.shape)) for i in inputs]
        if activation is getattr(layer, "activation", None):
            activation = None
        if layer not in self._copies:  # (one copy: a layer's applications share it)
            self._copies[layer] = _copied(layer, node, activation, self._warn)
        copied = self._copies[layer]
        func = (copied if plain(node, inputs) and all_float(node)
                else Application(copied, node, [i.shape for i in inputs]))
        tensor_node = TensorNode(func, shape_in=inputs[0].shape if len(inputs) == 1
                                 else sum(sizes), shape_out=out_shapes[0], pass_time=False,
                                 label=layer.name)
        start = 0
        for inp, size in zip(inputs, sizes):  # the inputs side by side in the node's input
            post = tensor_node if len(inputs) == 1 else tensor_node[start:start + size]
            self.connect(inp.obj, post, 1, trainable=False)
            start += size
        return [Tensor(tensor_node, out_shapes[0])]

    # -- building blocks for the layer converters ---------------------------------
    def neuron_type(self, layer, activation):
        """The neuron type of ``activation`` (after swaps); None for linear."""
        return neuron_type_for(activation, self.swap_activations, self.swaps_used)

    def _scale(self, layer):
        """``scale_firing_rates`` of ``layer`` (a dict may name a layer wrapped by
        TimeDistributed, as NengoDL's, or the TimeDistributed layer)."""
        s = self.scale_firing_rates
        if isinstance(s, dict):
            s = s.get(layer, s.get(self._wrapper) if self._wrapper is not None else None)
        return 1.0 if s is None else float(s)

    def layer_output(self, layer, size, neuron_type, bias=None):
        """The object a layer's inputs connect to and its output comes from:
        ``size`` neurons of ``neuron_type`` (gain ``s``, amplitude ``/ s`` with
        ``scale_firing_rates``; bias 0, not trainable, or ``s * bias``,
        trainable), or a Node (``bias`` must be None)."""
        if neuron_type is None:
            if bias is not None:
                raise ValueError("layer_output: a Node has no bias (use add_bias)")
            return nengo.Node(size_in=size, label=layer.name)
        s = self._scale(layer)
        if s != 1.0:
            neuron_type = with_amplitude(neuron_type, 1.0 / s, self._warn)
        # J = gain * input + bias: the bias scales with the input, as NengoDL's
        ens_bias = (nengo.dists.Choice([0.0]) if bias is None
                    else s * np.asarray(bias, dtype=np.float64).ravel())
        ens = nengo.Ensemble(size, 1, neuron_type=neuron_type, gain=nengo.dists.Choice([s]),
                             bias=ens_bias, label=layer.name)
        self.net.config[ens].trainable = False  # encoders: unused (inputs go to the neurons)
        if bias is not None:
            self.net.config[ens.neurons].trainable = not self._frozen
        return ens.neurons

    def synapse_from(self, pre):
        """The synapse of a connection from ``pre``: ``synapse`` out of neurons,
        else None."""
        pre_obj = pre.obj if isinstance(pre, nengo.base.ObjView) else pre
        return self.synapse if isinstance(pre_obj, nengo.ensemble.Neurons) else None

    def connect(self, pre, post, transform, trainable=True):
        """A connection without synapse (``synapse`` out of neurons); not
        trainable in a frozen layer (``trainable=False`` in Keras)."""
        conn = nengo.Connection(pre, post, transform=transform, synapse=self.synapse_from(pre))
        if not trainable or self._frozen:
            self.net.config[conn].trainable = False
        return conn

    def add_bias(self, target, bias, channel_of=None, trainable=True):
        """``target += bias`` (``bias[channel_of]`` per element with channels):
        one trainable weight per bias value, from a constant Node."""
        if self._bias_node is None:
            self._bias_node = nengo.Node(np.ones(1), label="bias")
        bias = np.asarray(bias, dtype=np.float64).reshape(-1, 1)
        if channel_of is None:
            return self.connect(self._bias_node, target, bias, trainable)
        channels = nengo.Node(size_in=bias.shape[0], label="channel biases")
        self.connect(self._bias_node, channels, bias, trainable)
        n = len(channel_of)
        spread = nengo.transforms.Sparse((n, bias.shape[0]), indices=np.stack(
            [np.arange(n), channel_of], axis=1), init=np.ones(n))
        return self.connect(channels, target, spread, trainable=False)

    # -- extension --------------------------------------------------------------------
    @classmethod
    def register(cls, keras_layer):
        """Class decorator: converts layers of class ``keras_layer`` (and of
        its subclasses without a converter of their own) with the decorated
        `LayerConverter` subclass, in place of any built-in converter (with a
        warning when that exact class already had one)."""

        def decorator(converter_cls):
            name = getattr(keras_layer, "__name__", None)  # built-ins are found by name
            if keras_layer in cls.converters or name in CONVERTERS:
                warnings.warn(f"Converter.register: {keras_layer} already has a converter; "
                              f"{converter_cls.__name__} replaces it")
            cls.converters[keras_layer] = converter_cls
            return converter_cls

        return decorator

    # -- checking ------------------------------------------------------------------
    def verify(self, training=False, inputs=None, atol=1e-8, rtol=1e-5):
        """Checks that the converted network computes the Keras model's outputs
        (one step of a `nengo_cuda.Simulator`, float32; a temporal model's
        steps) on ``inputs`` (default: ones, a batch of 2; in a temporal model
        the model's number of steps, or 10); with ``training``, after 3 epochs
        of SGD(0.1) on an MSE loss towards ones in both (this trains ``model``).
        Returns True; raises ValueError naming the first output that differs."""
        import tensorflow as tf  # noqa: PLC0415

        from ..simulator import Simulator  # noqa: PLC0415

        model = self.model
        if inputs is None:
            lead = (2, model.inputs[0].shape[1] or 10) if self.temporal_model else (2,)
            inputs = [np.ones(lead + tuple(t.shape[self.lead:])) for t in model.inputs]
        inputs = [np.asarray(x) for x in (inputs if isinstance(inputs, (list, tuple))
                                          else [inputs])]
        batch = inputs[0].shape[0]
        steps = inputs[0].shape[1] if self.temporal_model else 1
        feeds = {self.inputs[t]: x.reshape(batch, steps, -1)
                 for t, x in zip(model.inputs, inputs)}
        targets = [np.ones(inputs[0].shape[:self.lead] + tuple(t.shape[self.lead:]))
                   for t in model.outputs]
        x = inputs[0] if len(inputs) == 1 else inputs  # as Keras expects them
        initial = model.get_weights()
        with Simulator(self.net, minibatch_size=batch, progress_bar=False) as sim:
            if training:
                if get_setting(self.net, "inference_only"):
                    raise ValueError(
                        "Converter.verify(training=True): the network was converted with "
                        "inference_only=True, so it cannot be trained (configure_settings("
                        "inference_only=False) on converter.net undoes that)")
                _check_trainable_counts(model, sim)
                model.compile(optimizer=tf.optimizers.SGD(0.1), loss=tf.losses.mse)
                model.fit(x, targets[0] if len(targets) == 1 else targets, epochs=3,
                          batch_size=batch, shuffle=False, verbose=0)
            expected = model.predict(x, verbose=0)
            expected = expected if isinstance(expected, (list, tuple)) else [expected]
            trained = model.get_weights()
            # (a layer run as a TensorNode that could not be copied shares its
            # weights with the model: it starts from the initial weights too,
            # and keeps Keras's training after)
            model.set_weights(initial)
            try:
                if training:
                    sim.compile(optimizer=tf.optimizers.SGD(0.1), loss=tf.losses.mse)
                    sim.fit(feeds, {p: y.reshape(batch, steps, -1)
                                    for p, y in zip(self._output_probes, targets)}, epochs=3,
                            verbose=0)
                got = sim.predict(feeds, n_steps=steps, verbose=0)
            finally:
                model.set_weights(trained)
        for t, e in zip(model.outputs, expected):
            g = got[self.outputs[t]].reshape(e.shape)
            if not np.allclose(g, e, atol=atol, rtol=rtol):
                raise ValueError(
                    f"Converter.verify: output {_history(t)[0].name!r} does not match output "
                    f"of the Keras model: it differs by up to {np.max(np.abs(g - e)):.3g} "
                    f"(atol={atol:g}, rtol={rtol:g}; float32 sums in another order than "
                    f"Keras's differ by about 1e-7 of the summed terms' size, more than "
                    f"rtol allows where they cancel)")
        return True


def _check_trainable_counts(model, sim):
    """Training can only match Keras's when the converted network trains as
    many numbers as the model (not so with shared weights split, or layers
    converted as constants with inference_only=True)."""
    keras_count = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    ours = sim._trainer().trained_count()
    if ours != keras_count:
        raise ValueError(
            f"Converter.verify(training=True): the number of trainable parameters of the "
            f"converted network ({ours}) differs from the Keras model's ({keras_count}), so "
            f"their training cannot match (shared weights split by split_shared_weights, "
            f"or layers made constant by inference_only=True)")


# Keras training extras a native form would drop: weight regularizers (Keras
# adds them to the loss; a TensorNode's layer keeps them, see
# Trainer._regularization) and constraints (Keras's optimizers apply them)
_TRAINING_EXTRAS = tuple(f"{w}_{kind}" for kind in ("regularizer", "constraint")
                         for w in ("kernel", "bias", "depthwise", "pointwise", "gamma",
                                   "beta", "embeddings", "recurrent")) + ("activity_regularizer",)


def _activity_loss(layer):
    """Whether Keras adds an activity loss for ``layer`` in training."""
    return (getattr(layer, "activity_regularizer", None) is not None
            or type(layer).__name__ == "ActivityRegularization")


def _training_extras(layer):
    """Why ``layer`` has no native form for training (None if it has one)."""
    used = [n for n in _TRAINING_EXTRAS if getattr(layer, n, None) is not None]
    if used:
        values = ", ".join(f"{n} has value {getattr(layer, n)!r} != None" for n in used)
        return (f"{values}, which would not apply to a native form in training: not "
                f"supported unless inference_only=True (which converts it natively)")
    return None


def _convertible(cls, layer, converter):
    """A LayerConverter's verdict as ``(ok, reason)``: NengoDL 3.0's
    ``convertible`` returned a bool, later ones ``(bool, message)``."""
    verdict = cls.convertible(layer, converter)
    ok, reason = verdict if isinstance(verdict, tuple) else (verdict, None)
    if not ok and not reason:
        reason = f"{cls.__name__}.convertible is False"
    return bool(ok), (None if ok else reason)


def _copied(layer, node, activation=None, warn=warnings.warn):
    """A copy of ``layer`` with its weights, for a TensorNode: training the
    converted network must not change the Keras model (NengoDL's fallback
    copies it so; sharing them, ``fit`` trained the model's fallen-back layers
    and no others).  ``activation``: the copy's in place of the layer's (a
    swapped one).  A layer without weights is itself (unless its activation is
    replaced); one that cannot be copied too, with a warning (by ``warn``)."""
    if not getattr(layer, "weights", None) and activation is None:
        return layer
    try:
        clone = type(layer).from_config(layer.get_config())
        if not clone.built:  # (built as the model's node called the layer)
            clone(*node.arguments.args, **node.arguments.kwargs)
        clone.set_weights(layer.get_weights())
        if hasattr(clone, "finalize_state"):
            # (state derived from the weights, e.g. an adapted Normalization's
            # mean and variance, which Keras computes after loading them)
            clone.finalize_state()
        if activation is not None:
            import keras  # noqa: PLC0415

            clone.activation = keras.activations.get(activation)
        elif hasattr(layer, "activation"):
            # (its config names a function by its name: a user's "relu" came
            # back as Keras's)
            clone.activation = layer.activation
    except Exception as e:  # noqa: BLE001 - any layer's own failure to copy
        if activation is not None:
            raise TypeError(f"Converter: layer {layer.name!r} cannot be copied to run "
                            f"with its swapped activation {activation!r} "
                            f"({type(e).__name__}: {e})") from e
        warn(f"Converter: layer {layer.name!r} cannot be copied ({type(e).__name__}: "
             f"{e}); its TensorNode uses the Keras model's own weights, which "
             "training the converted network changes")
        return layer
    return clone


def _as_input_of(model, kt, tensor, lead):
    """``tensor`` given to nested ``model``'s input ``kt``: Keras adjusts the rank
    of an input that differs from the declared shape by trailing 1s (a (10,)
    tensor enters a (10, 1) input), which for a flat Nengo output is only a new
    shape; other mismatches are errors."""
    shape = tuple(kt.shape[lead:])
    if tuple(tensor.shape) == shape or None in shape:  # (a free dimension takes any)
        return tensor
    if tuple(d for d in shape if d != 1) == tuple(d for d in tensor.shape if d != 1):
        return Tensor(tensor.obj, shape)
    raise TypeError(f"Converter: nested model {model.name!r} takes an input of shape {shape}; "
                    f"it was given shape {tuple(tensor.shape)}")


def _order_of(sequence, item_of):
    """A sort key for Keras tensors: the place of ``item_of(tensor)`` in
    ``sequence`` (by identity), after all of them where it is not there."""
    place = {id(item): i for i, item in enumerate(sequence)}
    return lambda tensor: place.get(id(item_of(tensor)), len(place))


def _unable(layer):
    """The start of a conversion error: NengoDL's words, which code may match."""
    return f"Unable to convert layer {layer.name!r} to native Nengo objects"


def _functional(model):
    """A Sequential model's equivalent Functional model (its own layers and
    tensors), as NengoDL's ``Converter.model``; other models as they are."""
    import tensorflow as tf  # noqa: PLC0415

    if not isinstance(model, tf.keras.Sequential):
        return model

    def one_or_list(tensors):  # (so that .input/.output are a tensor where one)
        return tensors[0] if len(tensors) == 1 else list(tensors)

    return tf.keras.Model(one_or_list(model.inputs), one_or_list(model.outputs),
                          name=model.name)


def _history(kt):
    """(layer, node index, tensor index) that produced a Keras tensor."""
    history = getattr(kt, "_keras_history", None)
    if history is None:
        raise TypeError(f"Converter: {kt} is not a Keras tensor of the model")
    return history[0], history[1], history[2]


class _TensorDict(Mapping):
    """``Converter.inputs``/``outputs``/``layers``: keyed by Keras tensors (by
    identity), and by their layer where the layer was called once.  As in
    NengoDL, iterating gives each key as a tuple of one tensor reference
    (``key[0].deref()`` is the tensor), which looks its value up again."""

    def __init__(self):
        self._values = {}  # _Key -> value, in conversion order
        self._layers = {}  # id(layer) -> the values of its calls

    def alias(self, layer, value):
        self._layers.setdefault(id(layer), []).append(value)

    @staticmethod
    def _key(key):
        if isinstance(key, tuple) and len(key) == 1 and isinstance(key[0], _Key):
            return key[0]  # (a key this mapping gave out)
        return key if isinstance(key, _Key) else _Key(key)

    def __getitem__(self, key):
        try:
            return self._values[self._key(key)]
        except KeyError:
            pass
        values = self._layers.get(id(key))
        if values is None:
            raise KeyError(f"{key} is not a tensor or layer of the converted model here")
        if len(values) > 1:  # (as NengoDL: the layer alone does not say which)
            raise KeyError(f"layer {getattr(key, 'name', key)!r} has been called multiple "
                           f"times ({len(values)}); look up one of its output tensors instead")
        return values[0]

    def __setitem__(self, key, value):
        self._values[self._key(key)] = value

    def __contains__(self, key):  # (a layer called several times: not a key)
        return self._key(key) in self._values or len(self._layers.get(id(key), ())) == 1

    def sort(self, key):
        """Orders the entries by ``key(tensor)`` (a stable sort)."""
        self._values = dict(sorted(self._values.items(), key=lambda kv: key(kv[0].obj)))

    def __iter__(self):
        return ((key,) for key in self._values)

    def __len__(self):
        return len(self._values)


class _Key:
    """Identity key for an unhashable (or oddly hashed) Keras tensor; like
    TensorFlow's ``tensor.ref()``, ``deref()`` gives the tensor back."""

    def __init__(self, obj):
        self.obj = obj

    def deref(self):
        return self.obj

    def __hash__(self):
        return id(self.obj)

    def __eq__(self, other):
        return isinstance(other, _Key) and other.obj is self.obj

    def __repr__(self):
        return f"<Reference to {self.obj!r}>"
