"""The network representation that every importer produces and every normalizer and simulator reads.

A :class:`Graph` is a list of :class:`Node` in topological order. Each node names its inputs
(``"input"`` is the network's input). Weights are NumPy arrays in PyTorch's layout: dense
``(out, in)``, conv2d ``(out, in, kh, kw)``; tensors are channels-first ``(C, H, W)`` or flat.

Layer kinds (``Node.op``):

- ``dense``, ``conv2d``: weighted layers; ``relu=True`` when the ANN applies ReLU after them.
  A hidden weighted layer without ReLU is allowed only when every reader is an ``add``: it is
  then *synaptic only* (:meth:`Graph.is_linear`), i.e. its current flows into the add's neurons.
- ``avgpool2d``: average pooling (a spiking layer with weights ``1/k²`` in the SNN).
- ``maxpool2d``: max pooling; in the SNN a gate that passes on, per window, the spikes of the
  input with the most spikes so far (no membrane, no threshold).
- ``add``: elementwise ``sum_i scales[i] * inputs[i]`` (then ReLU if ``relu``); a layer of IF
  neurons whose input current is the sum of its inputs' currents (residual merges).
- ``concat``: concatenation of its inputs along the channel (or feature) axis; no neurons.
- ``flatten``: reshape to ``(B, -1)``; it holds no neurons.

See ``docs/semantics.md`` for what each kind does in the spiking network.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np

from .errors import SnnBalanceError, UnsupportedError
from .graph_ops import apply, bias_term, fanout, is_asymmetric, macs, out_shape
from .node import BASIC_OPS, INPUT, MERGES, NEURON_OPS, OPS, POOLS, WEIGHTED, Node


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

    def is_linear(self, n: Node) -> bool:
        """A hidden weighted node without ReLU: synaptic only, its current feeds ``add`` neurons."""
        return n.op in WEIGHTED and not n.relu and n is not self.output

    def is_neuron(self, n: Node) -> bool:
        """Whether ``n``'s output is a spike train the simulators record (IF layers, max-pool gates)."""
        return n.op in ("avgpool2d", "maxpool2d", "add") or (n.op in WEIGHTED and not self.is_linear(n))

    def neuron_nodes(self) -> list[Node]:
        """Nodes whose output spikes are recorded, in order: IF layers and max-pool gates."""
        return [n for n in self.nodes if self.is_neuron(n)]

    def consumers(self, name: str) -> list[Node]:
        return [n for n in self.nodes if name in n.inputs]

    def kinds(self) -> set[str]:
        """The node kinds used, plus ``"bias-map"`` when a conv has a per-position bias and
        ``"asym-pad"`` when a layer pads asymmetrically."""
        kinds = {n.op for n in self.nodes}
        if any(n.bias is not None and n.bias.ndim > 1 for n in self.nodes):
            kinds.add("bias-map")
        if any(is_asymmetric(n.padding) for n in self.nodes):
            kinds.add("asym-pad")
        return kinds

    def require(self, supported, who: str) -> None:
        """Refuse a graph that uses node kinds outside ``supported`` (for back ends and plugins).

        Raises:
            UnsupportedError: naming the first node that ``who`` cannot handle.
        """
        for n in self.nodes:
            if n.op not in supported:
                raise UnsupportedError(f"{who} does not support {n.op} layers (layer {n.label()}); use the numpy simulator")
            if n.bias is not None and n.bias.ndim > 1 and "bias-map" not in supported:
                raise UnsupportedError(
                    f"{who} does not support per-position biases (layer {n.label()}, from a "
                    "folded input normalization); use the numpy simulator"
                )
            if is_asymmetric(n.padding) and "asym-pad" not in supported:
                raise UnsupportedError(
                    f"{who} does not support asymmetric padding (layer {n.label()}, padding {tuple(n.padding)}); use the numpy simulator"
                )

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
            if n.op in MERGES:
                if len(n.inputs) < 2:
                    raise UnsupportedError(f"{n.op} node {n.label()} has {len(n.inputs)} input; it needs two or more")
            elif len(n.inputs) != 1:
                raise UnsupportedError(f"node {n.label()} has {len(n.inputs)} inputs; {n.op} takes one")
            shapes[n.name] = out_shape(n, [shapes[i] for i in n.inputs])
        return shapes

    def check_finite(self) -> None:
        """Refuse NaN or infinite parameters, naming the layer that holds them (a damaged file
        or a diverged training, not something a conversion can fix).

        Raises:
            SnnBalanceError: the first layer with a non-finite weight, bias or input scale.
        """
        for n in self.nodes:
            for what, arr in (("weights", n.weight), ("biases", n.bias), ("input scales", n.scales)):
                if arr is None:
                    continue
                a = np.asarray(arr, dtype=np.float64)
                if not np.isfinite(a).all():
                    nan, inf = int(np.isnan(a).sum()), int(np.isinf(a).sum())
                    raise SnnBalanceError(
                        f"layer {n.label()} holds {nan} NaN and {inf} infinite {what} (of {a.size}): the model "
                        "file is damaged or its training diverged; fix the model, a conversion cannot"
                    )

    def validate(self) -> None:
        """Check that the graph is well formed and can become an IF network.

        Raises:
            UnsupportedError: naming the node and what is wrong.
        """
        if not self.nodes:
            raise UnsupportedError("the network has no layers")
        self.check_finite()
        for n in self.nodes:
            if not (math.isfinite(n.v_init) and -1.0 <= n.v_init < 1.0):
                raise SnnBalanceError(
                    f"layer {n.label()} has initial potential {n.v_init} (a fraction of the "
                    "threshold); it must lie in [-1, 1), e.g. --v-init 0.5"
                )
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
        # rectified (or feed only adds, whose neurons rectify the sum), and pools read rectified values.
        nonneg = {INPUT: True}
        for n in self.nodes:
            signed = [i for i in n.inputs if not nonneg[i]]
            if n.op in WEIGHTED:
                if self.is_linear(n) and not all(c.op == "add" for c in self.consumers(n.name)):
                    raise UnsupportedError(
                        f"layer {n.label()} is not followed by ReLU; integrate-and-fire neurons can only "
                        "represent ReLU activations (hidden layers need ReLU)"
                    )
                nonneg[n.name] = n.relu
            elif n.op == "add":
                if signed and not n.relu:
                    raise UnsupportedError(
                        f"add {n.label()} sums values that can be negative and is not followed by ReLU; "
                        "integrate-and-fire neurons can only represent ReLU activations"
                    )
                if n.scales is not None and len(n.scales) != len(n.inputs):
                    raise UnsupportedError(f"add {n.label()} has {len(n.scales)} scales for {len(n.inputs)} inputs")
                nonneg[n.name] = True
            else:
                if signed:
                    what = "pooling" if n.op in POOLS else n.op
                    raise UnsupportedError(f"{what} {n.label()} reads values that can be negative ({signed[0]}); put ReLU before it")
                nonneg[n.name] = True

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
        last_use = {i: k for k, n in enumerate(self.nodes) for i in n.inputs}
        vals = {INPUT: x}
        for k, n in enumerate(self.nodes):
            y = apply(n, *(vals[i] for i in n.inputs))
            if n.bias is not None:
                y = y + bias_term(n)
            if n.relu:
                y = np.maximum(y, 0)
            vals[n.name] = y
            if not keep:  # free what no later node reads
                for i in n.inputs:
                    if i != INPUT and last_use[i] == k:
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
            rows.append(
                {
                    "name": n.name,
                    "op": n.op + ("+relu" if n.relu else ""),
                    "shape": out,
                    "params": int(params),
                    "macs": macs(n, shapes[n.inputs[0]], out),
                    "threshold": n.threshold,
                }
            )
        return rows

    def total_macs(self) -> int:
        return sum(r["macs"] for r in self.summary())

    def format_summary(self) -> str:
        """The layer table; columns widen to the longest name, so names never run into the next."""
        rows = self.summary()
        shapes = ["x".join(str(s) for s in r["shape"]) for r in rows]
        wn = max([12, *(len(r["name"]) for r in rows)]) + 2
        wk = max([14, *(len(r["op"]) for r in rows)]) + 2
        ws = max([14, *(len(s) for s in shapes)]) + 2
        head = f"{'layer':<{wn}}{'kind':<{wk}}{'output':<{ws}}{'params':>10}{'MACs':>12}"
        lines = [head, "-" * len(head)]
        for r, shape in zip(rows, shapes):
            lines.append(f"{r['name']:<{wn}}{r['op']:<{wk}}{shape:<{ws}}{r['params']:>10,}{r['macs']:>12,}")
        lines.append(f"{'total':<{wn + wk + ws}}{sum(r['params'] for r in rows):>10,}{sum(r['macs'] for r in rows):>12,}")
        return "\n".join(lines)


# The node and the per-node arithmetic live in node.py and graph_ops.py; they are re-exported here,
# where callers import them from.
__all__ = [
    "BASIC_OPS",
    "INPUT",
    "MERGES",
    "NEURON_OPS",
    "OPS",
    "POOLS",
    "WEIGHTED",
    "Graph",
    "Node",
    "apply",
    "bias_term",
    "fanout",
    "is_asymmetric",
    "macs",
    "out_shape",
]
