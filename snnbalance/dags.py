"""Seeded random networks of every layer kind, with arithmetic that is exact in float32.

A fast back end is correct when it produces the NumPy reference's spikes, spike for spike. Float
sums in another order round differently, so such a comparison only means something when no
rounding happens: here every weight, bias and scale is a small multiple of ``2**-6``, every
threshold a multiple of ``2**-3`` and every input a multiple of ``2**-8``. Each potential is then
a float32 value with few significant bits, every sum is exact in any order, and two correct
simulators must agree exactly.

:func:`random_dag` draws such a network from a seed: convolutions (strides, symmetric and
asymmetric padding, per-channel and per-position biases), average and max pooling (global
average pooling too), residual adds (of spikes and of synaptic-only branches, with per-input
scales), channel concatenation, flatten, dense layers. It is used by the engine tests and is
public, so a third-party simulator can be held to the same standard.
"""

from __future__ import annotations

import numpy as np

from .graph import Graph, Node

W_STEP = 2.0**-6
X_STEP = 2.0**-8


def _w(rng: np.random.Generator, shape, scale: float) -> np.ndarray:
    """Dyadic weights: N(0, scale) rounded to multiples of 2**-6."""
    return (np.round(rng.normal(0, scale, shape) / W_STEP) * W_STEP).astype(np.float32)


def _thr(rng: np.random.Generator) -> float:
    return float(rng.choice([0.5, 0.625, 0.75, 1.0, 1.25]))


def exact_inputs(n: int, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """``n`` inputs in [0, 1], multiples of 2**-8 (exact products with dyadic weights)."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 257, (n, *shape)) * X_STEP).astype(np.float32)


class _Builder:
    def __init__(self, rng: np.random.Generator, shape: tuple[int, int, int]):
        self.rng, self.k = rng, 0
        self.nodes: list[Node] = []
        self.shape: dict[str, tuple[int, ...]] = {"input": shape}

    def add(self, op: str, inputs: tuple[str, ...], **kw) -> str:
        self.k += 1
        name = f"{op}{self.k}"
        kw.setdefault("threshold", _thr(self.rng))
        node = Node(name, op, inputs, **kw)
        self.nodes.append(node)
        self.shape[name] = Graph(self.shape["input"], self.nodes).shapes()[name]
        return name

    def conv(self, src: str, out_ch: int, relu: bool = True, allow_map: bool = True) -> str:
        rng = self.rng
        c, h, w = self.shape[src]
        k = int(rng.choice([1, 2, 3])) if min(h, w) >= 3 else 1
        stride = int(rng.choice([1, 1, 2])) if min(h, w) >= 6 else 1
        pad = int(rng.integers(0, k))
        padding: tuple[int, ...] = (pad, pad)
        if rng.random() < 0.25 and k > 1:  # Keras 'same' with an even kernel: more at the bottom/right
            padding = (0, 0, 1, 1) if k == 2 else (pad, pad, pad + 1, pad)
        node = Node("tmp", "conv2d", (src,), weight=_w(rng, (out_ch, c, k, k), 0.4), stride=(stride, stride), padding=padding)
        oc, oh, ow = Graph(self.shape["input"], [*self.nodes, node]).shapes()["tmp"]
        r = rng.random()
        bias = None if r < 0.3 else _w(rng, (oc, oh, ow) if allow_map and r > 0.8 else (oc,), 0.1)
        return self.add("conv2d", (src,), weight=node.weight, bias=bias, stride=node.stride, padding=padding, relu=relu)

    def pool(self, src: str) -> str:
        rng = self.rng
        c, h, w = self.shape[src]
        op = str(rng.choice(["avgpool2d", "maxpool2d"]))
        if min(h, w) < 2:
            return src
        if rng.random() < 0.2:  # global average pooling
            return self.add("avgpool2d", (src,), kernel=(h, w), stride=(h, w))
        k = int(rng.choice([2, 3])) if min(h, w) >= 3 else 2
        s = int(rng.choice([1, 2])) if k == 3 else 2
        pad = int(rng.integers(0, k // 2 + 1))
        return self.add(op, (src,), kernel=(k, k), stride=(s, s), padding=(pad, pad))

    def residual(self, src: str) -> str:
        """``add(conv(src) [synaptic only], src)`` or ``add(conv_a(src), conv_b(src))``, with scales."""
        rng = self.rng
        c = self.shape[src][0]
        scales = tuple(float(v) for v in rng.choice([0.5, 1.0, 1.5], 2))
        a = self._same_shape_conv(src, c, relu=bool(rng.random() < 0.3))
        b = src if rng.random() < 0.6 else self._same_shape_conv(src, c, relu=False)
        return self.add("add", (a, b), scales=scales, relu=True)

    def _same_shape_conv(self, src: str, out_ch: int, relu: bool) -> str:
        c, h, w = self.shape[src]
        k = 3 if min(h, w) >= 3 else 1
        bias = _w(self.rng, (out_ch,), 0.1) if self.rng.random() < 0.5 else None
        return self.add("conv2d", (src,), weight=_w(self.rng, (out_ch, c, k, k), 0.3), bias=bias, padding=(k // 2, k // 2), relu=relu)

    def concat(self, src: str) -> str:
        a = self._same_shape_conv(src, int(self.rng.integers(1, 4)), relu=True)
        b = src if self.rng.random() < 0.5 else self._same_shape_conv(src, int(self.rng.integers(1, 4)), relu=True)
        return self.add("concat", (a, b), relu=False)


def random_dag(seed: int, input_shape: tuple[int, int, int] = (2, 8, 8), classes: int = 4, blocks: int = 3) -> Graph:
    """A seeded random network of ``blocks`` random blocks between a first conv and a dense head.

    Every node is valid for :meth:`Graph.validate`; weights, biases, scales and thresholds are
    dyadic (see the module docstring), so simulators can be compared for exact equality.
    """
    rng = np.random.default_rng(seed)
    b = _Builder(rng, input_shape)
    x = b.conv("input", int(rng.integers(2, 5)))
    for _ in range(blocks):
        kind = rng.choice(["conv", "pool", "residual", "concat"])
        if kind == "conv":
            x = b.conv(x, int(rng.integers(2, 6)), allow_map=False)
        elif kind == "pool":
            x = b.pool(x)
        elif kind == "residual":
            x = b.residual(x)
        else:
            x = b.concat(x)
    x = b.add("flatten", (x,))
    if rng.random() < 0.5:
        x = b.add(
            "dense", (x,), weight=_w(rng, (8, b.shape[x][0]), 0.3), bias=_w(rng, (8,), 0.1) if rng.random() < 0.5 else None, relu=True
        )
    b.add("dense", (x,), weight=_w(rng, (classes, b.shape[x][0]), 0.3), bias=_w(rng, (classes,), 0.1) if rng.random() < 0.5 else None)
    graph = Graph(input_shape, b.nodes)
    graph.validate()
    return graph


__all__ = ["exact_inputs", "random_dag"]
