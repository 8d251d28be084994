"""The network representation that every importer produces and every normalizer and simulator reads.

A :class:`Graph` is a list of :class:`Node` in topological order. Each node names its inputs
(``"input"`` is the network's input), so residual ``add`` and ``concat`` merges fit the same
structure later. Weights are NumPy arrays in PyTorch's layout: dense ``(out, in)``, conv2d
``(out, in, kh, kw)``.

Layer kinds (``Node.op``):

- ``dense``, ``conv2d``: weighted layers; ``relu=True`` when the ANN applies ReLU after them.
- ``avgpool2d``: average pooling (a spiking layer with weights ``1/k²`` in the SNN).
- ``flatten``: reshape to ``(B, -1)``; it holds no neurons.

In the spiking network every ``dense``, ``conv2d`` and ``avgpool2d`` node is a layer of
integrate-and-fire neurons with threshold ``Node.threshold``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np

from . import ops
from .errors import UnsupportedError

INPUT = "input"
WEIGHTED = ("dense", "conv2d")
NEURON_OPS = ("dense", "conv2d", "avgpool2d")
OPS = (*NEURON_OPS, "flatten")


@dataclass
class Node:
    """One layer of the network.

    Attributes:
        name: unique name; other nodes refer to it in ``inputs``.
        op: one of ``dense``, ``conv2d``, ``avgpool2d``, ``flatten``.
        inputs: names of the nodes (or ``"input"``) this node reads.
        weight: weights of ``dense``/``conv2d``, float32.
        bias: optional bias of ``dense``/``conv2d``, float32.
        stride, padding: for ``conv2d`` and ``avgpool2d``.
        kernel: pooling window of ``avgpool2d``.
        relu: whether the ANN applies ReLU to this node's output.
        threshold: firing threshold of the node's IF neurons in the SNN.
        source: the layer's name in the source model, for messages.
    """

    name: str
    op: str
    inputs: tuple[str, ...] = (INPUT,)
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    kernel: tuple[int, int] | None = None
    relu: bool = False
    threshold: float = 1.0
    source: str = ""

    def label(self) -> str:
        return f"{self.name} ({self.source})" if self.source and self.source != self.name else self.name


@dataclass
class Graph:
    """A feed-forward network: input shape per sample plus nodes in topological order."""

    input_shape: tuple[int, ...]
    nodes: list[Node] = field(default_factory=list)

    # -- structure -------------------------------------------------------------------------
    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    @property
    def output(self) -> Node:
        return self.nodes[-1]

    def neuron_nodes(self) -> list[Node]:
        """Nodes that hold spiking neurons, in order."""
        return [n for n in self.nodes if n.op in NEURON_OPS]

    def consumers(self, name: str) -> list[Node]:
        return [n for n in self.nodes if name in n.inputs]

    def copy(self) -> Graph:
        return copy.deepcopy(self)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Output shape per sample of every node (and of ``"input"``); checks consistency."""
        shapes: dict[str, tuple[int, ...]] = {INPUT: tuple(self.input_shape)}
        for n in self.nodes:
            if n.op not in OPS:
                raise UnsupportedError(f"unknown layer kind {n.op!r} in node {n.label()}")
            missing = [i for i in n.inputs if i not in shapes]
            if missing:
                raise UnsupportedError(f"node {n.label()} reads {missing[0]!r}, which is not defined before it")
            if len(n.inputs) != 1:
                raise UnsupportedError(f"node {n.label()} has {len(n.inputs)} inputs; {n.op} takes one")
            s = shapes[n.inputs[0]]
            shapes[n.name] = _out_shape(n, s)
        return shapes

    def validate(self) -> None:
        """Check that the graph is well formed and can become an IF network.

        Raises:
            UnsupportedError: naming the node and what is wrong.
        """
        if not self.nodes:
            raise UnsupportedError("the network has no layers")
        names = [n.name for n in self.nodes]
        dup = {x for x in names if names.count(x) > 1 or x == INPUT}
        if dup:
            raise UnsupportedError(f"duplicate node name {sorted(dup)[0]!r}")
        self.shapes()
        if self.output.op not in WEIGHTED:
            raise UnsupportedError(f"the network must end in a dense or conv layer, not {self.output.op}")
        used = {i for n in self.nodes for i in n.inputs}
        for n in self.nodes[:-1]:
            if n.name not in used:
                raise UnsupportedError(f"node {n.label()} is computed but never used")
        # IF neurons can only represent non-negative values: every hidden weighted layer must be
        # rectified, and pooling must read rectified values.
        nonneg = {INPUT: True}
        for n in self.nodes:
            src = nonneg[n.inputs[0]]
            if n.op in WEIGHTED:
                if not n.relu and n is not self.output:
                    raise UnsupportedError(
                        f"layer {n.label()} is not followed by ReLU; integrate-and-fire neurons can only "
                        "represent ReLU activations (hidden layers need ReLU)")
                nonneg[n.name] = n.relu
            else:
                if n.op == "avgpool2d" and not src:
                    raise UnsupportedError(
                        f"pooling {n.label()} reads values that can be negative; put ReLU before it")
                nonneg[n.name] = src

    # -- analog forward pass ---------------------------------------------------------------
    def forward(self, x: np.ndarray, keep: bool = False) -> np.ndarray | dict[str, np.ndarray]:
        """Run the network as an ANN in NumPy.

        Args:
            x: batch (B, *input_shape), float.
            keep: return every node's output (after its ReLU) instead of the last one.
        Returns:
            The output logits (B, classes), or a dict of all node outputs when ``keep``.
        """
        x = np.asarray(x, dtype=np.float32).reshape(-1, *self.input_shape)
        vals = {INPUT: x}
        for n in self.nodes:
            y = apply(n, vals[n.inputs[0]])
            if n.bias is not None:
                y = y + (n.bias.reshape(-1, 1, 1) if n.op == "conv2d" else n.bias)
            if n.relu:
                y = np.maximum(y, 0)
            vals[n.name] = y
            if not keep:
                # free what no later node reads
                for i in n.inputs:
                    if i != INPUT and all(i not in m.inputs for m in self.nodes[self.nodes.index(n) + 1:]):
                        vals.pop(i, None)
        return vals if keep else vals[self.output.name]

    # -- reporting -------------------------------------------------------------------------
    def summary(self) -> list[dict]:
        """One row per node: name, op, output shape, parameters, MACs per sample."""
        shapes = self.shapes()
        rows = []
        for n in self.nodes:
            out = shapes[n.name]
            params = sum(a.size for a in (n.weight, n.bias) if a is not None)
            rows.append({"name": n.name, "op": n.op + ("+relu" if n.relu else ""),
                         "shape": out, "params": int(params), "macs": macs(n, shapes[n.inputs[0]], out),
                         "threshold": n.threshold})
        return rows

    def total_macs(self) -> int:
        return sum(r["macs"] for r in self.summary())

    def format_summary(self) -> str:
        rows = self.summary()
        head = f"{'layer':<14}{'kind':<16}{'output':<16}{'params':>10}{'MACs':>12}"
        lines = [head, "-" * len(head)]
        for r in rows:
            shape = "x".join(str(s) for s in r["shape"])
            lines.append(f"{r['name']:<14}{r['op']:<16}{shape:<16}{r['params']:>10,}{r['macs']:>12,}")
        lines.append(f"{'total':<46}{sum(r['params'] for r in rows):>10,}{sum(r['macs'] for r in rows):>12,}")
        return "\n".join(lines)


def apply(n: Node, x: np.ndarray) -> np.ndarray:
    """The linear part of node ``n`` (no bias, no ReLU) on a batch."""
    if n.op == "dense":
        return ops.dense(x, n.weight)
    if n.op == "conv2d":
        return ops.conv2d(x, n.weight, n.stride, n.padding)
    if n.op == "avgpool2d":
        return ops.avgpool2d(x, n.kernel, n.stride, n.padding)
    if n.op == "flatten":
        return x.reshape(x.shape[0], -1)
    raise UnsupportedError(f"unknown layer kind {n.op!r}")


def _out_shape(n: Node, s: tuple[int, ...]) -> tuple[int, ...]:
    if n.op == "flatten":
        return (math.prod(s),)
    if n.op == "dense":
        if len(s) != 1:
            raise UnsupportedError(f"dense layer {n.label()} reads a {len(s)}-d input {s}; flatten it first")
        if n.weight.shape[1] != s[0]:
            raise UnsupportedError(f"dense layer {n.label()} expects {n.weight.shape[1]} inputs, gets {s[0]}")
        return (n.weight.shape[0],)
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
    oh = (h + 2 * n.padding[0] - k[0]) // n.stride[0] + 1
    ow = (w + 2 * n.padding[1] - k[1]) // n.stride[1] + 1
    if oh < 1 or ow < 1:
        raise UnsupportedError(f"layer {n.label()} has a {k} window larger than its {h}x{w} input")
    return (o, oh, ow)


def macs(n: Node, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates per sample of one node."""
    if n.op == "dense":
        return int(n.weight.size)
    if n.op == "conv2d":
        return int(math.prod(out_shape) * math.prod(n.weight.shape[1:]))
    if n.op == "avgpool2d":
        return int(math.prod(out_shape) * n.kernel[0] * n.kernel[1])
    return 0


def fanout(graph: Graph) -> dict[str, np.ndarray]:
    """Number of outgoing synapses of every neuron, per source (``"input"`` and neuron nodes).

    Flatten nodes are looked through: a neuron feeding a flatten feeds its consumers.
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
            if c.op == "flatten":
                total += of(c.name).reshape(shape)
            elif c.op == "dense":
                total += c.weight.shape[0]
            else:
                k = c.weight.shape[2:] if c.op == "conv2d" else c.kernel
                per_channel = c.weight.shape[0] if c.op == "conv2d" else 1
                total += per_channel * ops.coverage(shape[1:], k, c.stride, c.padding)[None]
        memo[name] = total
        return total

    return {name: of(name) for name in [INPUT] + [n.name for n in graph.neuron_nodes()]}
