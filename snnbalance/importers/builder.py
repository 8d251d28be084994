"""Assembling a :class:`~snnbalance.graph.Graph` from a source model's tensors.

The PyTorch and ONNX importers translate their own op vocabularies into calls on
:class:`GraphBuilder`, which knows how ReLU, flatten, dropout, a trailing softmax, batch norm and
constant arithmetic (folded, see :mod:`.preprocess`), residual adds, concatenation and
channels-last tensors map onto graph nodes.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..errors import UnsupportedError
from ..graph import INPUT, POOLS, WEIGHTED, Graph, Node
from . import preprocess as pp
from .rewrites import fold_linear_chains


@dataclass
class _Val:
    """A tensor of the source model, as the graph node that computes it."""

    node: str  # graph node name, or INPUT
    shape: tuple[int, ...]  # per sample, channels-first (the graph's layout)
    nonneg: bool  # known to be >= 0 (input rates, ReLU outputs and their pools)
    final: str | None = None  # "softmax"/"log_softmax"/"sigmoid"/"tanh" once a dropped trailing activation applies
    stale: str = ""  # set when a ReLU/BN was merged into the node after this value was read
    view_of: Any = None  # a reshape the graph cannot hold (e.g. (C, 1)): the value it reshapes
    affine: pp.Affine | None = None  # pending per-element affine map, folded into the next weighted layer
    nhwc: bool = False  # the source holds this (C, H, W) tensor channels-last, as (H, W, C)
    perm: np.ndarray | None = None  # flat: source feature k is graph feature perm[k]

    @property
    def src_shape(self) -> tuple[int, ...]:
        """The per-sample shape as the source model sees it."""
        if self.nhwc:
            c, h, w = self.shape
            return (h, w, c)
        return self.shape


#: Elementwise monotone activations that can end a network: argmax is unchanged without them.
MONOTONE = ("sigmoid", "tanh")

_PREFIX = {"dense": "fc", "conv2d": "conv", "avgpool2d": "pool", "maxpool2d": "pool", "flatten": "flatten", "add": "add", "concat": "cat"}


class GraphBuilder:
    """Assemble a :class:`Graph` from source-model tensors (keyed by the importer's value ids).

    Args:
        input_shape: per-sample shape of the network input, channels-first.
        input_value: the importer's id for the input tensor.
        nhwc: the source model reads the input channels-last.
    """

    def __init__(self, input_shape: tuple[int, ...], input_value: Any, nhwc: bool = False) -> None:
        self.graph = Graph(tuple(int(s) for s in input_shape))
        self.input_value = input_value
        self.vals: dict[Any, _Val] = {input_value: _Val(INPUT, self.graph.input_shape, True, nhwc=nhwc)}
        self.notes: list[str] = []

    # -- lookups -----------------------------------------------------------------------------
    def has(self, value: Any) -> bool:
        return value in self.vals

    def val(self, value: Any, where: str, view_ok: bool = False, affine_ok: bool = False, layout_ok: bool = False) -> _Val:
        """The tensor ``value`` as read by layer ``where``; refuses reads the graph cannot express."""
        v = self.vals.get(value)
        if v is None:
            raise UnsupportedError(
                f"layer {where!r} reads a tensor that does not come from the network input (constants and extra inputs are not supported)"
            )
        if v.stale:
            raise UnsupportedError(
                f"layer {where!r} reads the output of {v.stale!r} before its ReLU or batch norm, "
                "which is also used after it; snnbalance cannot keep both"
            )
        if v.final in MONOTONE:
            raise UnsupportedError(
                f"layer {where!r} reads the output of a {v.final}; integrate-and-fire neurons "
                f"only represent ReLU (a {v.final} is dropped only at the very end of the network)"
            )
        if v.final:
            raise UnsupportedError(f"layer {where!r} follows a {v.final}; only a {v.final} at the very end of the network can be dropped")
        if v.view_of is not None and not view_ok:
            raise UnsupportedError(
                f"layer {where!r} reads a tensor reshaped to {v.shape}; only flattening to (batch, features) is supported"
            )
        if v.affine is not None and not affine_ok:
            raise v.affine.error(where)
        if (v.nhwc or v.perm is not None) and not layout_ok:
            raise UnsupportedError(
                f"layer {where!r} reads a channels-last tensor; only a Transpose to "
                "channels-first, or a flatten followed by a dense layer, is supported there"
            )
        return v

    def shape(self, value: Any) -> tuple[int, ...]:
        return self.vals[value].shape

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    # -- building ------------------------------------------------------------------------------
    def unique_name(self, candidate: str, op: str) -> str:
        """A node name from the source name: numeric names (Sequential) get a kind prefix."""
        base = candidate.strip().strip("/.")
        if not base or re.fullmatch(r"[\d.]+", base):  # "3" or "0.1" from nn.Sequential
            base = f"{_PREFIX[op]}{base or len(self.graph.nodes)}"
        taken = {n.name for n in self.graph.nodes} | {INPUT}
        name, k = base, 1
        while name in taken:
            name, k = f"{base}_{k}", k + 1
        return name

    def _append(self, node: Node) -> tuple[int, ...]:
        self.graph.nodes.append(node)
        try:
            return self.graph.shapes()[node.name]  # also checks weights against the input shape
        except UnsupportedError:
            self.graph.nodes.pop()
            raise

    def add(self, src: Any, out: Any, op: str, *, name: str, source: str = "", **attrs: Any) -> Node:
        """Append a node of kind ``op`` reading ``src``; ``out`` becomes its output tensor.

        A pending affine map on ``src`` is folded into a weighted layer, or carried through
        flatten and pooling when they commute with it.
        """
        where = source or name
        v = self.val(src, where, affine_ok=True, layout_ok=op == "dense")
        aff = v.affine
        if aff is not None and op in WEIGHTED:
            self.note(
                f"input normalization ({aff.what}) folded into layer {where!r}; the spiking network reads raw [0, 1] inputs"
                if aff.kind == pp.INPUT_KIND
                else f"{aff.what} folded into the next layer {where!r}"
            )
        if op == "dense":
            attrs["weight"], attrs["bias"] = pp.fold_into_dense(attrs["weight"], attrs.get("bias"), aff, v.perm)
            aff = None
        elif op == "conv2d" and aff is not None:
            attrs["weight"], attrs["bias"] = pp.fold_into_conv(
                attrs["weight"], attrs.get("bias"), aff, attrs.get("stride", (1, 1)), attrs.get("padding", (0, 0)), where
            )
            aff = None
        elif op in POOLS and aff is not None:
            pc = aff.per_channel()
            ok = pc is not None and (
                op == "maxpool2d" and np.all(pc[0] > 0) or op == "avgpool2d" and tuple(attrs.get("padding", (0, 0))) == (0, 0)
            )
            if not ok:
                raise aff.error(where)
        node = Node(self.unique_name(name, op), op, (v.node,), source=where, **attrs)
        shape = self._append(node)
        if aff is not None:
            aff = aff.reshaped(shape) if op == "flatten" else aff.pooled(shape)
        self.vals[out] = _Val(node.name, shape, False if op in WEIGHTED else v.nonneg, affine=aff)
        return node

    def alias(self, src: Any, out: Any, where: str = "") -> None:
        """``out`` is the same tensor as ``src`` (dropout, identity, a no-op reshape)."""
        v = self.vals.get(src)
        if v is None:
            v = self.val(src, where)  # raises the explanatory error
        self.vals[out] = v

    def flatten(self, src: Any, out: Any, *, name: str, source: str = "") -> None:
        """Flatten to (batch, features); a no-op when the tensor already is flat."""
        v = self.val(src, source or name, affine_ok=True, layout_ok=True)
        if len(v.shape) == 1:
            self.alias(src, out)
            return
        if v.nhwc:  # the graph flattens channels-first; the dense layer after it gets permuted columns
            self.vals[src] = replace(v, nhwc=False)
            try:
                self.add(src, out, "flatten", name=name, source=source)
            finally:
                self.vals[src] = v
            self.vals[out] = replace(self.vals[out], perm=pp.nhwc_perm(*v.shape))
            return
        self.add(src, out, "flatten", name=name, source=source)

    def reshape(self, src: Any, out: Any, shape: tuple[int, ...], *, name: str, source: str = "") -> None:
        """Reshape to per-sample ``shape`` (source layout): a no-op, a flatten, or a pending view.

        Intermediate views such as ``x.squeeze(-1).squeeze(-1)`` after global pooling are kept
        as pending views of the real tensor, since the graph only holds (C, H, W) and flat shapes.
        """
        where = source or name
        v = self.val(src, where, view_ok=True, affine_ok=True, layout_ok=True)
        real = v.view_of if v.view_of is not None else src
        base = self.vals[real]
        shape = tuple(int(s) for s in shape)
        if shape == base.src_shape:
            self.alias(real, out)
        elif (
            len(base.shape) == 3 and base.shape[0] == 1 and not base.nhwc and base.perm is None and shape == (*base.shape[1:], 1)
        ):  # one channel: (1, H, W) and (H, W, 1) hold the same numbers
            self.vals[out] = replace(base, nhwc=True)
        elif len(shape) == 1 and shape[0] == math.prod(base.shape):
            self.flatten(real, out, name=name, source=source)
        elif math.prod(shape) == math.prod(base.shape) and base.affine is None and not base.nhwc and base.perm is None:
            self.vals[out] = _Val(base.node, shape, base.nonneg, view_of=real)
        else:
            raise UnsupportedError(
                f"layer {where!r} reshapes {base.src_shape} to {shape}, which is not a flatten "
                "to (batch, features); flatten with torch.flatten(x, 1)"
            )

    def transpose(self, src: Any, out: Any, perm, where: str) -> None:
        """Permute axes: only between channels-last and channels-first (or the identity)."""
        v = self.val(src, where, affine_ok=True, layout_ok=True)
        perm = tuple(int(p) % (len(v.shape) + 1) for p in perm)
        if perm == tuple(range(len(v.shape) + 1)):
            self.alias(src, out)
        elif len(v.shape) == 3 and v.nhwc and perm == (0, 3, 1, 2):
            self.vals[out] = replace(v, nhwc=False)
        elif len(v.shape) == 3 and not v.nhwc and perm == (0, 2, 3, 1):
            self.vals[out] = replace(v, nhwc=True)
        else:
            raise UnsupportedError(
                f"Transpose {where!r} with perm {list(perm)} on a tensor of shape "
                f"{v.src_shape} is not supported; only NHWC <-> NCHW transposes are"
            )

    def relu(self, src: Any, out: Any, where: str) -> None:
        """Apply ReLU: merged into the weighted layer or add that computes ``src``.

        ReLU commutes with flatten and max pooling (``relu(max(x)) = max(relu(x))``), so it may
        also reach back through them (the PyTorch MNIST example's ``relu(max_pool2d(conv(x)))``); on values
        that are already non-negative (pools of rectified values, the input) it is a no-op.
        """
        v = self.val(src, where, layout_ok=True)
        if v.nonneg:
            if v.node == INPUT:
                self.note(f"ReLU {where!r} on the network input dropped (inputs are non-negative rates)")
            self.vals[out] = v
            return
        chain = self._flatten_chain(v.node, through_max=True)
        node = self.graph.node(chain[-1])
        if node.op not in (*WEIGHTED, "add") or node.relu:
            raise UnsupportedError(
                f"ReLU {where!r} follows {node.op} layer {node.label()!r}, whose input can be negative; "
                "snnbalance needs ReLU directly after Linear/Conv layers or residual adds (put it before the pooling)"
            )
        self._only_read_by(chain, f"ReLU {where!r}")
        pools = [self.graph.node(c).label() for c in chain if self.graph.node(c).op == "maxpool2d"]
        if pools:
            self.note(
                f"ReLU {where!r} moved before max pooling {', '.join(pools)} (relu(max(x)) = max(relu(x)): the network computes the same)"
            )
        node.relu = True
        self._stale(v, node.label())
        self.vals[out] = replace(v, nonneg=True)

    def _flatten_chain(self, name: str, through_max: bool = False) -> list[str]:
        """``name`` and the nodes it flattens (and, with ``through_max``, max-pools: ReLU commutes
        with both), back to the first node that is neither."""
        ops = ("flatten", "maxpool2d") if through_max else ("flatten",)
        chain = [name]
        while chain[-1] != INPUT and self.graph.node(chain[-1]).op in ops:
            chain.append(self.graph.node(chain[-1]).inputs[0])
        return chain

    def _only_read_by(self, chain: list[str], what: str) -> None:
        """Refuse to change a node whose output other layers already read."""
        for k, name in enumerate(chain):
            allowed = {chain[k - 1]} if k else set()
            others = [c.label() for c in self.graph.consumers(name) if c.name not in allowed]
            if others:
                raise UnsupportedError(
                    f"{what} changes layer {chain[-1]!r}, whose output layer {others[0]!r} also reads; snnbalance cannot keep both values"
                )

    def _stale(self, v: _Val, label: str) -> None:
        """Values read before a ReLU/BN was merged into ``v``'s layer now look changed: mark them."""
        root = self._flatten_chain(v.node, through_max=True)[-1]
        for key, other in list(self.vals.items()):
            if other is v or (other.node != INPUT and self._flatten_chain(other.node, through_max=True)[-1] == root):
                self.vals[key] = replace(other, stale=label)

    def affine(self, src: Any, out: Any, scale, shift, *, where: str, what: str, sole_reader: bool = True) -> None:
        """``out = scale * src + shift`` with constants that broadcast per sample (source layout).

        Folded into the Linear/Conv that computes ``src`` when possible, else kept pending for the
        next weighted layer (see :mod:`.preprocess`).
        """
        v = self.val(src, where, view_ok=True, affine_ok=True, layout_ok=True)
        s, c = pp.full(scale, v.src_shape, where), pp.full(shift, v.src_shape, where)
        if v.view_of is not None:
            self._affine_on_view(v, out, s, c, where=where, what=what, sole_reader=sole_reader)
            return
        if v.nhwc:
            s, c = s.transpose(2, 0, 1), c.transpose(2, 0, 1)
        elif v.perm is not None:
            s, c = _unpermute(s, v.perm), _unpermute(c, v.perm)
        if np.all(s == 1) and np.all(c == 0):
            self.alias(src, out)
            return
        kind = pp.INPUT_KIND if v.node == INPUT or (v.affine and v.affine.kind == pp.INPUT_KIND) else pp.LAYER_KIND
        node = self.graph.node(v.node) if v.node != INPUT else None
        if (
            v.affine is None
            and node is not None
            and node.op in WEIGHTED
            and not node.relu
            and sole_reader
            and v.view_of is None
            and not v.nhwc
            and v.perm is None
            and not self.graph.consumers(node.name)
        ):
            try:
                node.weight, node.bias = pp.fold_after(node.op, node.weight, node.bias, s, c, where)
            except UnsupportedError:
                pass
            else:
                self._stale(v, f"{what}")
                self.vals[out] = _Val(node.name, v.shape, False)
                return
        aff = v.affine.then(s, c, what) if v.affine else pp.Affine(s, c, kind, what)
        self.vals[out] = replace(v, affine=aff)

    def _affine_on_view(self, v: _Val, out: Any, s: np.ndarray, c: np.ndarray, **kw: Any) -> None:
        """An affine map on a view that only adds or drops axes of size 1 (torch 1.x wraps
        ``BatchNorm1d`` in Unsqueeze/Squeeze; tf2onnx reads (H, W) images): it is the same map on
        the real tensor, and the view stays a view of the result."""
        base = self.vals[v.view_of]
        if [d for d in v.shape if d != 1] != [d for d in base.src_shape if d != 1] or base.nhwc or base.perm is not None:
            raise UnsupportedError(
                f"layer {kw['where']!r} reads a tensor reshaped to {v.shape}; only flattening to (batch, features) is supported"
            )
        key = ("view-affine", out)
        self.affine(v.view_of, key, s.reshape(base.shape), c.reshape(base.shape), **kw)
        done = self.vals[key]
        self.vals[out] = _Val(done.node, v.shape, done.nonneg, stale=done.stale, view_of=key)

    def normalize_input(self, mean, std) -> None:
        """The source model reads ``(x - mean) / std``; the graph reads raw ``x`` in [0, 1]."""
        aff = pp.input_affine(mean, std, self.graph.input_shape)
        if aff is not None:
            v = self.vals[self.input_value]
            self.vals[self.input_value] = replace(v, affine=aff)

    def merge_add(self, srcs: list, out: Any, *, name: str, source: str = "", scales=None) -> Node:
        """Elementwise ``sum(scales[i] * srcs[i])`` of activations: a residual merge."""
        where = source or name
        vs = [self.val(s, where, affine_ok=True) for s in srcs]
        scales = [float(s) for s in (scales or [1.0] * len(vs))]
        for k, v in enumerate(vs):  # a constant factor on an input (Mul before Sum) becomes its scale
            a = v.affine
            if a is None:
                continue
            factor = np.unique(a.scale)
            if a.kind == pp.INPUT_KIND or len(factor) != 1 or np.any(a.shift != 0):
                raise a.error(where)
            scales[k] *= float(factor[0])
        scales = tuple(scales)
        nonneg = all(v.nonneg for v in vs) and all(s >= 0 for s in scales)
        node = Node(
            self.unique_name(name, "add"),
            "add",
            tuple(v.node for v in vs),
            source=where,
            relu=nonneg,
            scales=None if all(s == 1.0 for s in scales) else scales,
        )
        shape = self._append(node)
        self.vals[out] = _Val(node.name, shape, nonneg)
        return node

    def concat(self, srcs: list, out: Any, axis: int, *, name: str, source: str = "") -> Node:
        """Concatenation along the channel (or feature) axis."""
        where = source or name
        vs = [self.val(s, where) for s in srcs]
        rank = len(vs[0].shape) + 1
        if axis % rank != 1:
            raise UnsupportedError(f"concat {where!r} joins along axis {axis}; only the channel axis (1) is supported")
        if not all(v.nonneg for v in vs):
            raise UnsupportedError(f"concat {where!r} joins values that can be negative; put ReLU before it")
        node = Node(self.unique_name(name, "concat"), "concat", tuple(v.node for v in vs), source=where)
        self.vals[out] = _Val(node.name, self._append(node), True)
        return node

    def final_activation(self, src: Any, out: Any, kind: str, where: str, axis: int | None) -> None:
        """Drop a softmax/log_softmax over the class axis, or an elementwise monotone activation
        (:data:`MONOTONE`) on (batch, classes) outputs; it must end the network."""
        v = self.val(src, where)
        if kind in MONOTONE and len(v.shape) != 1:
            raise UnsupportedError(
                f"{kind} {where!r} on a {len(v.shape) + 1}-d tensor: integrate-and-fire neurons only represent ReLU; retrain with ReLU"
            )
        if kind not in MONOTONE and (len(v.shape) != 1 or axis not in (None, 1, -1)):
            raise UnsupportedError(
                f"{kind} {where!r} is over axis {axis} of a {len(v.shape) + 1}-d tensor; "
                "only a softmax over the classes of (batch, classes) outputs can be dropped"
            )
        self.vals[out] = replace(v, final=kind)
        self.note(f"dropped trailing {kind} {where!r} (monotone: does not change argmax)")

    def finish(self, out: Any, where: str = "output") -> tuple[Graph, str | None]:
        """Validate the graph whose output is ``out``; returns it and the dropped output transform."""
        v = self.vals.get(out)
        if v is None or v.stale or v.affine is not None or v.perm is not None or v.nhwc:
            v = self.val(out, where)  # raises the explanatory error
        if v.node == INPUT:
            raise UnsupportedError("the network has no layers")
        # Nodes computed after the output node would be dead code the graph cannot hold.
        if v.node != self.graph.output.name:
            raise UnsupportedError(f"the model's output is layer {v.node!r}, but layers follow it that are never used")
        for text in fold_linear_chains(self.graph):
            self.note(text)
        self.graph.validate()
        return self.graph, v.final


def _unpermute(a: np.ndarray, perm: np.ndarray) -> np.ndarray:
    out = np.empty_like(a)
    out[perm] = a
    return out
