"""Which trainable parameters no gradient reaches, and what stops it.

TensorFlow differentiates the training graph (`graph.TrainingGraph`) except
the parts it runs on the host (`TrainingGraph.host_part`): Python functions
(Nodes, functions on connections from Nodes and Direct ensembles), processes
without a TensorFlow form with an input (a Triangle synapse, a user's
process), neuron types without a rate equivalent (Izhikevich).  A parameter
whose every path to the loss's probes passes through such a part gets no
gradient, and ``fit`` would leave it as it is without a word (NengoDL does).
`blocked_parameters` finds those parameters and the parts that block them.

The analysis follows the operators' reads and writes, element by element
where an operator is element-wise (copies, element-wise products, neurons,
synapses; Nengo's optimizer merges many populations or copies into one
operator), row by row and block by block through products (whose merged
forms stack many connections' weights), and operator by operator elsewhere
(every output element depends on every input element).  It over-approximates
the paths, so a parameter it reports truly gets no gradient; one it does not
report may still get none.
"""

import numpy as np
from nengo.builder.neurons import SimNeurons
from nengo.builder.operator import BsrDotInc, Copy, DotInc, ElementwiseInc
from nengo.builder.processes import SimProcess
import nengo

from ..layout import OTHER


class _Dependency:
    """Elements ``outs`` of one base depend on elements ``ins`` of another:
    element-wise (``outs[k]`` on ``ins[k]``) or all on all."""

    __slots__ = ("out_base", "outs", "in_base", "ins", "elementwise")

    def __init__(self, out_base, outs, in_base, ins, elementwise):
        self.out_base, self.outs = out_base, outs
        self.in_base, self.ins = in_base, ins
        self.elementwise = elementwise


class GradientPaths:
    """The operators of ``graph`` (a `TrainingGraph`) as dependencies between
    signal elements, split into those TensorFlow differentiates and those
    of host parts."""

    def __init__(self, graph):
        self.graph = graph
        # the clock reaches every Node function and process, no parameter
        model = graph.model
        self._clock = {id(s) for s in (model.time, model.step) if s is not None}
        self.differentiated = []
        self.host = {}  # id(op) -> (op, its dependencies)
        on_host = {id(op) for op in graph.ops if graph.host_part(op) is not None}
        if not any(id(op) in on_host and self._reads(op) for op in graph.ops):
            return  # (most networks: nothing to follow)
        for op in graph.ops:
            deps = list(self._dependencies(op))
            if id(op) not in on_host:
                self.differentiated.extend(deps)
            elif deps:
                self.host[id(op)] = (op, deps)

    def _elements(self, sig):
        """``sig``'s element addresses in its base, shaped as ``sig``."""
        return self.graph._idx(sig).idx.reshape(sig.shape)

    def _addressed(self, sig):
        # (sparse matrices have no addresses: their values are variables of
        # their own, `TrainingGraph.sparse_variables`, not followed here)
        return self.graph.layout.pool_of(sig) != OTHER

    def _reads(self, op):
        """The signals ``op``'s outputs depend on (its updated state too),
        but the clock."""
        return [s for s in list(op.reads) + list(op.updates)
                if id(s) not in self._clock and self._addressed(s)]

    def _pair(self, out, out_sub, inp, in_sub):
        """The dependency of ``out[out_sub]`` on ``inp[in_sub]``: element-wise
        where their shapes broadcast to one another, else all on all."""
        outs, ins = self._elements(out), self._elements(inp)
        if out_sub is not None:
            outs = outs[out_sub]
        if in_sub is not None:
            ins = ins[in_sub]
        for a, b in ((outs, ins), (ins, outs)):
            try:
                b_wide = np.broadcast_to(b, a.shape)
            except ValueError:
                continue
            o, i = (a, b_wide) if a is outs else (b_wide, a)
            return _Dependency(out.base, o.ravel(), inp.base, i.ravel(), True)
        return _Dependency(out.base, outs.ravel(), inp.base, ins.ravel(), False)

    def _dependencies(self, op):
        if isinstance(op, Copy):
            yield self._pair(op.dst, op.dst_slice, op.src, op.src_slice)
            return
        if isinstance(op, BsrDotInc):
            yield from self._blocks(op)
            return
        if type(op) is DotInc and op.A.ndim == 2 and op.Y.shape == op.A.shape[:1]:
            yield from self._rows(op)
            return
        writes = [s for s in list(op.sets) + list(op.incs) + list(op.updates) if self._addressed(s)]
        reads = self._reads(op)
        elementwise = (isinstance(op, (ElementwiseInc, SimNeurons))
                       or (isinstance(op, SimProcess)
                           and isinstance(op.process, nengo.LinearFilter)))
        for out in writes:
            for inp in reads:
                if elementwise:
                    yield self._pair(out, None, inp, None)
                else:
                    yield self._dependency_all(out, inp)

    def _rows(self, op):
        """A product ``Y += A X`` (Nengo's optimizer stacks the DotIncs of
        connections from one object into one): ``Y[i]`` depends on row ``i``
        of ``A`` and on all of ``X``."""
        A, Y = self._elements(op.A), self._elements(op.Y)
        yield _Dependency(op.Y.base, np.repeat(Y, A.shape[1]), op.A.base, A.ravel(), True)
        yield self._dependency_all(op.Y, op.X)

    def _blocks(self, op):
        """A block-sparse product (Nengo's optimizer merges the DotIncs of many
        connections into one): block row ``r`` of ``Y`` depends on the blocks
        ``b`` of row ``r`` of ``A`` and on the column blocks ``indices[b]`` of ``X``."""
        A, X, Y = self._elements(op.A), self._elements(op.X), self._elements(op.Y)
        _, rows, cols = op.A.shape
        X, Y = X.reshape(-1, cols), Y.reshape(-1, rows)
        for r in range(len(op.indptr) - 1):
            for b in range(op.indptr[r], op.indptr[r + 1]):
                yield _Dependency(op.Y.base, Y[r], op.A.base, A[b].ravel(), False)
                yield _Dependency(op.Y.base, Y[r], op.X.base, X[op.indices[b]], False)

    def _dependency_all(self, out, inp):
        return _Dependency(out.base, self._elements(out).ravel(),
                           inp.base, self._elements(inp).ravel(), False)

    # -- reachability ------------------------------------------------------
    @staticmethod
    def _spread(deps, masks, backward):
        """Marks, in ``masks`` ({base: bool array}), the elements that marked
        ones depend on (``backward``) or that depend on marked ones, until
        nothing changes."""
        def mask(base):
            if base not in masks:
                masks[base] = np.zeros(base.size, dtype=bool)
            return masks[base]

        changed = True
        while changed:
            changed = False
            for d in (reversed(deps) if backward else deps):
                (src_base, src, dst_base, dst) = (
                    (d.out_base, d.outs, d.in_base, d.ins) if backward
                    else (d.in_base, d.ins, d.out_base, d.outs))
                if src_base not in masks:
                    continue
                hit = masks[src_base][src]
                if not hit.any():
                    continue
                target = mask(dst_base)
                new = dst[hit] if d.elementwise else dst
                if not target[new].all():
                    target[new] = True
                    changed = True
        return masks

    def _marked(self, sigs):
        masks = {}
        for sig in sigs:
            masks.setdefault(sig.base, np.zeros(sig.base.size, dtype=bool))[
                self._elements(sig).ravel()] = True
        return masks

    @staticmethod
    def _touches(masks, base, elements):
        return base in masks and bool(masks[base][elements].any())

    def _host_deps(self):
        return [d for _, deps in self.host.values() for d in deps]

    def _upstream(self, targets, through_host):
        deps = self.differentiated + (self._host_deps() if through_host else [])
        return self._spread(deps, self._marked(targets), backward=True)

    def _touch(self, masks, sigs):
        return any(self._touches(masks, s.base, self._elements(s).ravel()) for s in sigs)

    def blocked(self, sources, targets):
        """``sources``: {key: signals}; ``targets``: signals (the probed ones).
        Returns ([keys whose signals influence ``targets`` only through host
        parts], [those host parts' operators on the paths])."""
        through_tf = self._upstream(targets, through_host=False)
        through_any = self._upstream(targets, through_host=True)
        keys = [k for k, sigs in sources.items()
                if self._touch(through_any, sigs) and not self._touch(through_tf, sigs)]
        if not keys:
            return [], []
        return keys, self._host_ops_between([s for k in keys for s in sources[k]], through_any)

    def host_ops_between(self, sources, targets):
        """The host parts' operators on some path from signals ``sources`` to
        signals ``targets``."""
        if not self.host:
            return []
        return self._host_ops_between(sources, self._upstream(targets, through_host=True))

    def _host_ops_between(self, sources, upstream):
        downstream = self._spread(self.differentiated + self._host_deps(),
                                  self._marked(sources), backward=False)
        return [op for op, deps in self.host.values()
                if any(self._touches(downstream, d.in_base, d.ins)
                       and self._touches(upstream, d.out_base, d.outs) for d in deps)]


def _owners(op, graph):
    """The Nengo objects a host part ``op`` belongs to, by name."""
    objects = list(graph.model.params)
    if isinstance(op, SimProcess):
        found = [f"{obj}" if isinstance(obj, nengo.Node) else f"{op.process} on {obj}"
                 for obj in objects
                 if any(getattr(obj, a, None) is op.process for a in ("output", "synapse"))]
    elif isinstance(op, SimNeurons):
        out = graph._idx(op.output)
        found = [f"{obj}" for obj in objects if isinstance(obj, nengo.Ensemble)
                 and obj.neurons in graph.model.sig
                 and _overlap(graph, graph.model.sig[obj.neurons]["out"], op.output, out)]
    else:
        found = [f"{obj}" if isinstance(obj, nengo.Node) else f"the function of {obj}"
                 for obj in objects
                 if getattr(obj, "output" if isinstance(obj, nengo.Node) else "function",
                            None) is op.fn]
    return found or [str(op)]


def _overlap(graph, sig, other, other_index):
    return sig.base is other.base and bool(
        np.intersect1d(graph._idx(sig).idx, other_index.idx).size)


def _listing(names, most=4):
    names = list(dict.fromkeys(names))
    if len(names) > most:
        names = names[:most] + [f"{len(names) - most} more"]
    return ", ".join(names)


def blocked_message(graph, parameters, tensor_nodes, probes):
    """The warning for the parameters no gradient of a loss on ``probes``
    reaches (None: every one may get one).  ``parameters``: `trainable_parameters`
    of the graph; ``tensor_nodes``: {TensorNode function: its Node} of those
    with trainable Keras weights."""
    paths = GradientPaths(graph)
    if not paths.host:
        return None
    trained = {id(s) for s in graph.trained_signals}
    sources = {f"the {what} of {obj}": [sig] for what, obj, sig in parameters
               if id(sig) in trained}
    for op in graph.ops:
        node = tensor_nodes.get(id(getattr(op, "fn", None)))
        if node is not None and op.output is not None:
            sources.setdefault(f"the weights of {node}", []).append(op.output)
    if not sources:
        return None
    targets = [graph.model.sig[p]["in"] for p in probes]
    keys, ops = paths.blocked(sources, targets)
    if not keys:
        return None
    one = len(keys) == 1
    return (f"no gradient reaches {_listing(keys)}: every path from {'it' if one else 'them'} "
            f"to the probes with a loss ({_listing(str(p) for p in probes)}) passes through "
            f"{_host_parts(graph, ops)}. Training leaves "
            f"{'it as it is' if one else 'them as they are'}{_hint(ops, graph)}")


def _host_parts(graph, ops):
    return ("parts that TensorFlow does not differentiate (as in NengoDL): "
            + _listing(f"{name} ({graph.host_part(op)})" for op in ops
                       for name in _owners(op, graph)))


def _hint(ops, graph):
    if any(graph.host_part(op) == "a Python function" for op in ops):
        return "; a TensorNode in place of a Python function passes the gradient"
    return ""


def host_parts_between(graph, sources, probes):
    """A sentence naming the host parts on the paths from signals ``sources``
    to ``probes`` (None: there are none), for check_gradients' mismatches."""
    ops = GradientPaths(graph).host_ops_between(
        sources, [graph.model.sig[p]["in"] for p in probes])
    if not ops:
        return None
    return (f"between it and the outputs lie {_host_parts(graph, ops)}, which the "
            f"finite differences see and the gradient does not{_hint(ops, graph)}")
