"""Exact rewrites of an imported graph into one that IF neurons can run.

A hidden Linear/Conv without ReLU cannot be a layer of IF neurons (they only represent
non-negative values). When its only reader is a Linear layer (directly or through a flatten), the
two are one linear map: ``W2 (W1 x + b1) + b2 = (W2 W1) x + (W2 b1 + b2)``, so they are composed
into one dense layer. A conv is a linear map too; composed with the dense layer that reads its
flattened output it becomes a dense layer over the conv's flattened input.

The composition is exact (float64, rounded to float32 once); the import check still compares the
rewritten graph with the source model.
"""

from __future__ import annotations

import numpy as np

from .. import ops
from ..graph import Graph, Node
from ..graph_ops import bias_term, padded

#: Basis images convolved at once when composing a conv with a dense layer (bounds memory).
_CHUNK = 256


def fold_linear_chains(graph: Graph) -> list[str]:
    """Compose every unrectified hidden Linear/Conv read only by a dense layer into that layer.

    Args:
        graph: modified in place.
    Returns:
        One note per composition.
    """
    notes: list[str] = []
    while True:
        pair = _next_pair(graph)
        if pair is None:
            return notes
        first, between, second = pair
        w, b = _compose(graph, first, second)
        kept = [n for n in graph.nodes if n.name not in {x.name for x in between}]
        if first.op == "conv2d":  # the dense layer now reads the conv's input, flattened
            flat = Node(first.name, "flatten", first.inputs, source=first.source)
            kept[kept.index(first)] = flat
            second.inputs = (flat.name,)
        else:
            kept.remove(first)
            second.inputs = first.inputs
        second.weight, second.bias = w, b
        graph.nodes[:] = kept
        notes.append(
            f"layers {first.label()!r} and {second.label()!r} have no ReLU between them: composed "
            f"into one dense layer {second.name!r} (exact: one linear map)"
        )


def _next_pair(graph: Graph) -> tuple[Node, list[Node], Node] | None:
    """The first unrectified hidden weighted node, the flattens after it and the dense layer reading them."""
    for n in graph.nodes:
        if n.op not in ("dense", "conv2d") or n.relu or n is graph.output:
            continue
        between, cur = [], n
        while True:
            readers = graph.consumers(cur.name)
            if len(readers) != 1 or len(readers[0].inputs) != 1:
                break
            nxt = readers[0]
            if nxt.op == "flatten":
                between.append(nxt)
                cur = nxt
                continue
            if nxt.op == "dense":
                return n, between, nxt
            break
    return None


def _compose(graph: Graph, first: Node, second: Node) -> tuple[np.ndarray, np.ndarray | None]:
    """Weight (out, in) and bias of ``second ∘ first`` over ``first``'s (flattened) input."""
    assert first.weight is not None and second.weight is not None  # both are weighted layers
    w2 = second.weight.astype(np.float64)
    if first.op == "dense":
        w = w2 @ first.weight.astype(np.float64)
        b1 = None if first.bias is None else first.bias.astype(np.float64)
    else:
        in_shape = graph.shapes()[first.inputs[0]]
        size = int(np.prod(in_shape))
        w = np.empty((w2.shape[0], size))
        wc = first.weight.astype(np.float64)
        for lo in range(0, size, _CHUNK):  # the conv's matrix, a block of columns at a time
            basis = np.zeros((min(_CHUNK, size - lo), size))
            basis[np.arange(len(basis)), lo + np.arange(len(basis))] = 1.0
            x, pad = padded(basis.reshape(-1, *in_shape), first.padding)
            w[:, lo : lo + len(basis)] = w2 @ ops.conv2d(x, wc, first.stride, pad).reshape(len(basis), -1).T
        out_shape = graph.shapes()[first.name]
        b1 = None if first.bias is None else np.broadcast_to(bias_term(first).astype(np.float64), out_shape).reshape(-1)
    b = (
        None
        if b1 is None and second.bias is None
        else (0.0 if b1 is None else w2 @ b1) + (0.0 if second.bias is None else second.bias.astype(np.float64))
    )
    return np.ascontiguousarray(w, np.float32), None if b is None else np.ascontiguousarray(b, np.float32)
