"""The arithmetic of single graph nodes (shared by the ANN pass and the simulators), fan-out,
and graph rewrites such as replacing max pooling by average pooling.

:mod:`snnbalance.graph` re-exports :func:`apply`, :func:`bias_term`, :func:`fanout`, :func:`macs`
and :func:`out_shape`, so callers import them from there.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from . import ops
from .errors import UnsupportedError
from .node import INPUT, Node  # noqa: F401  (Node: annotations)

if TYPE_CHECKING:  # pragma: no cover
    from .graph import Graph


def apply(n: Node, x: np.ndarray, *more: np.ndarray) -> np.ndarray:
    """The linear part of node ``n`` (no bias, no ReLU) on a batch; merges take all their inputs."""
    if n.op == "dense":
        return ops.dense(x, n.weight)
    if n.op == "conv2d":
        x, pad = padded(x, n.padding)
        return ops.conv2d(x, n.weight, n.stride, pad)
    if n.op == "avgpool2d":
        x, pad = padded(x, n.padding)
        return ops.avgpool2d(x, n.kernel, n.stride, pad)
    if n.op == "maxpool2d":
        x, pad = padded(x, n.padding, -np.inf)
        return ops.maxpool2d(x, n.kernel, n.stride, pad)
    if n.op == "flatten":
        return x.reshape(x.shape[0], -1)
    if n.op == "add":
        scales = n.input_scales()
        out = x * np.float32(scales[0]) if scales[0] != 1.0 else x.copy()
        for s, v in zip(scales[1:], more):
            out += v * np.float32(s) if s != 1.0 else v
        return out
    if n.op == "concat":
        return np.concatenate((x, *more), axis=1)
    raise UnsupportedError(f"unknown layer kind {n.op!r}")


def pads4(padding) -> tuple[int, int, int, int]:
    """``(top, left, bottom, right)`` of a node's padding: ``(ph, pw)`` when symmetric, else 4 values."""
    p = tuple(int(v) for v in padding)
    return (*p, *p) if len(p) == 2 else p  # type: ignore[return-value]


def is_asymmetric(padding) -> bool:
    """Whether ``padding`` pads the top/left differently from the bottom/right (e.g. Keras 'same'
    with an even kernel); the fast engines do not run such layers."""
    t, left, b, r = pads4(padding)
    return (t, left) != (b, r)


def padded(x: np.ndarray, padding, fill: float = 0.0) -> tuple[np.ndarray, tuple[int, int]]:
    """``x`` (B, C, H, W) and the symmetric padding :mod:`snnbalance.ops` should apply to it: an
    asymmetric padding is applied here (with ``fill``), so the kernels only ever see symmetric ones."""
    if not is_asymmetric(padding):
        return x, pads4(padding)[:2]
    t, left, b, r = pads4(padding)
    return np.pad(x, ((0, 0), (0, 0), (t, b), (left, r)), constant_values=fill), (0, 0)


def maxpool_gate(n: Node, counts: np.ndarray, spikes: np.ndarray) -> np.ndarray:
    """:func:`snnbalance.ops.maxpool_gate` of max-pool node ``n``, asymmetric padding included
    (padded counts are -1, so padding never wins)."""
    counts, pad = padded(counts, n.padding, -1.0)
    spikes, _ = padded(spikes, n.padding)
    return ops.maxpool_gate(counts, spikes, n.kernel, n.stride, pad)


def bias_term(n: Node) -> np.ndarray:
    """The bias of ``n`` shaped to broadcast against a batch of its outputs (float32)."""
    b = n.bias.astype(np.float32, copy=False)
    return b.reshape(-1, 1, 1) if n.op == "conv2d" and b.ndim == 1 else b


def out_shape(n: Node, ins: list[tuple[int, ...]]) -> tuple[int, ...]:
    """Per-sample output shape of ``n`` given its inputs' shapes; raises on inconsistency."""
    s = ins[0]
    if n.op == "flatten":
        return (math.prod(s),)
    if n.op == "add":
        if any(t != s for t in ins):
            raise UnsupportedError(
                f"add {n.label()} sums tensors of shapes {', '.join(map(str, ins))}; they must be equal (no broadcasting)"
            )
        return s
    if n.op == "concat":
        if any(len(t) != len(s) or t[1:] != s[1:] for t in ins):
            raise UnsupportedError(
                f"concat {n.label()} joins tensors of shapes {', '.join(map(str, ins))}; only the channel (or feature) count may differ"
            )
        return (sum(t[0] for t in ins), *s[1:])
    if n.op == "dense":
        if len(s) != 1:
            raise UnsupportedError(f"dense layer {n.label()} reads a {len(s)}-d input {s}; flatten it first")
        if n.weight.shape[1] != s[0]:
            raise UnsupportedError(f"dense layer {n.label()} expects {n.weight.shape[1]} inputs, gets {s[0]}")
        out = (n.weight.shape[0],)
        _check_bias(n, out)
        return out
    if len(s) != 3:
        raise UnsupportedError(f"{n.op} layer {n.label()} needs a (C, H, W) input, gets {s}")
    c, h, w = s
    if n.op == "conv2d":
        o, ci, kh, kw = n.weight.shape
        if ci != c:
            raise UnsupportedError(f"conv layer {n.label()} expects {ci} channels, gets {c}")
        k = (kh, kw)
    else:
        o, k = c, n.kernel
    if len(n.padding) not in (2, 4):
        raise UnsupportedError(f"layer {n.label()} has padding {tuple(n.padding)}; give 2 or 4 values")
    t, left, b, r = pads4(n.padding)
    oh = (h + t + b - k[0]) // n.stride[0] + 1
    ow = (w + left + r - k[1]) // n.stride[1] + 1
    if oh < 1 or ow < 1:
        raise UnsupportedError(f"layer {n.label()} has a {k} window larger than its {h}x{w} input")
    if n.op == "conv2d":
        _check_bias(n, (o, oh, ow))
    return (o, oh, ow)


def _check_bias(n: Node, out: tuple[int, ...]) -> None:
    if n.bias is not None and tuple(n.bias.shape) not in (out[:1], out):
        raise UnsupportedError(
            f"layer {n.label()} has a bias of shape {tuple(n.bias.shape)}; expected {out[:1]}" + (f" or {out}" if len(out) > 1 else "")
        )


def macs(n: Node, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates (comparisons for max pooling, additions for adds) per sample."""
    if n.op == "dense":
        return int(n.weight.size)
    if n.op == "conv2d":
        return int(math.prod(out_shape) * math.prod(n.weight.shape[1:]))
    if n.op in ("avgpool2d", "maxpool2d"):
        return int(math.prod(out_shape) * n.kernel[0] * n.kernel[1])
    if n.op == "add":
        return int(math.prod(out_shape) * len(n.inputs))
    return 0


def fanout(graph: Graph) -> dict[str, np.ndarray]:
    """Number of outgoing synapses of every neuron, per source (``"input"`` and neuron nodes).

    Flatten and concat nodes are looked through: a neuron feeding them feeds their consumers.
    A synaptic-only layer (a weighted layer feeding an ``add``) counts like any weighted layer: its
    synapses end on the add's neurons. Each input of an ``add`` or a pool window is one synapse.
    Returns arrays shaped like each source's output (per sample).
    """
    shapes = graph.shapes()
    memo: dict[str, np.ndarray] = {}

    def of(name: str) -> np.ndarray:
        if name in memo:
            return memo[name]
        shape = shapes[name]
        total = np.zeros(shape, dtype=np.int64)
        for c in graph.consumers(name):
            for k, i in enumerate(c.inputs):
                if i != name:
                    continue
                if c.op == "flatten":
                    total += of(c.name).reshape(shape)
                elif c.op == "concat":
                    lo = sum(shapes[j][0] for j in c.inputs[:k])
                    total += of(c.name)[lo : lo + shape[0]]
                elif c.op == "dense":
                    total += c.weight.shape[0]
                elif c.op == "add":
                    total += 1
                else:
                    kernel = c.weight.shape[2:] if c.op == "conv2d" else c.kernel
                    per_channel = c.weight.shape[0] if c.op == "conv2d" else 1
                    total += per_channel * _coverage(shape[1:], kernel, c.stride, c.padding)[None]
        memo[name] = total
        return total

    return {name: of(name) for name in [INPUT] + [n.name for n in graph.neuron_nodes()]}


def _coverage(hw: tuple[int, int], kernel, stride, padding) -> np.ndarray:
    """:func:`snnbalance.ops.coverage`, asymmetric padding included."""
    if not is_asymmetric(padding):
        return ops.coverage(hw, kernel, stride, pads4(padding)[:2])
    t, left, b, r = pads4(padding)
    full = ops.coverage((hw[0] + t + b, hw[1] + left + r), kernel, stride, (0, 0))
    return full[t : t + hw[0], left : left + hw[1]]


# -- rewrites ------------------------------------------------------------------------------------
def maxpool_to_avgpool(graph: Graph) -> tuple[Graph, list[str]]:
    """A copy of ``graph`` with every ``maxpool2d`` replaced by an ``avgpool2d`` of the same window.

    Returns:
        The new graph and the names of the replaced nodes. The ANN changes; measure it with
        :func:`replacement_accuracy`.
    """
    out = graph.copy()
    replaced = []
    for n in out.nodes:
        if n.op == "maxpool2d":
            n.op = "avgpool2d"
            replaced.append(n.name)
    return out, replaced


def ann_accuracy(graph: Graph, x: np.ndarray, y: np.ndarray, batch_size: int = 500) -> float:
    """Accuracy of ``graph`` run as an ANN on inputs ``x`` with labels ``y``."""
    x = np.asarray(x, dtype=np.float32).reshape(len(x), *graph.input_shape)
    correct = 0
    for lo in range(0, len(x), batch_size):
        correct += int((graph.forward(x[lo : lo + batch_size]).argmax(axis=1) == y[lo : lo + batch_size]).sum())
    return correct / max(len(x), 1)


def replacement_accuracy(original: Graph, replaced: Graph, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """ANN accuracy before and after a rewrite (e.g. :func:`maxpool_to_avgpool`) on the same data.

    Returns:
        ``{"original": acc, "replaced": acc, "change": replaced - original}``.
    """
    a, b = ann_accuracy(original, x, y), ann_accuracy(replaced, x, y)
    return {"original": a, "replaced": b, "change": b - a}
