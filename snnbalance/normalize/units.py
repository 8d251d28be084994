"""Units of a balanced network, for any graph: chains, residual ``add`` and ``concat`` merges.

Every tensor of a balanced network has a *unit* ``λ``: an ANN activation ``a`` is represented by
a firing rate of ``a / λ`` spikes per step. The network input has ``λ = 1``; every layer that
computes something new (a weighted layer with neurons, an ``add``) is a *unit source* with its own
``λ``; pooling and flatten pass their input's unit on, and a ``concat`` joins its inputs' units,
so its output has one unit per channel. A normalizer chooses ``λ`` per unit source
(:func:`resolve`) and :func:`apply_units` rewrites the graph so that it computes exactly ``a / λ``:

- weighted layer ``l`` reading a tensor of unit ``u`` (a number, or one per input channel/feature
  behind a concat): ``W[:, j] ← W[:, j] · u_j / λ_l``, ``b ← b / λ_l``;
- ``add`` node ``a``: ``scales[i] ← scales[i] · u_i / λ_a`` for input ``i`` of unit ``u_i`` (a
  synaptic-only weighted input has its own ``λ``, the add's, so its scale stays 1). An add reading
  a concat of differently scaled layers is refused.

For a chain this is exactly Diehl et al.'s per-layer scaling (applied factor ``λ_l / λ_{l-1}``).
"""

from __future__ import annotations

from typing import Callable, Union

import numpy as np

from ..errors import UnsupportedError
from ..graph import INPUT, MERGES, WEIGHTED, Graph, Node
from . import with_thresholds

Unit = Union[float, np.ndarray]  # one unit, or one per channel (C, H, W tensors) / feature (flat)


def has_merges(graph: Graph) -> bool:
    return any(n.op in MERGES for n in graph.nodes)


def is_source(graph: Graph, n: Node) -> bool:
    """Whether ``n`` has a ``λ`` of its own (weighted layers, synaptic-only ones included, and adds)."""
    return n.op in (*WEIGHTED, "add")


class Units:
    """The unit of every tensor, given ``λ`` of the unit sources computed so far."""

    def __init__(self, graph: Graph, lam: dict[str, float]) -> None:
        self.graph, self.lam = graph, lam
        self.shapes = graph.shapes()
        self._memo: dict[str, Unit] = {}

    def __call__(self, name: str) -> Unit:
        if name == INPUT:
            return 1.0
        n = self.graph.node(name)
        if is_source(self.graph, n):
            return self.lam[name]
        if name not in self._memo:
            self._memo[name] = self._derive(n)
        return self._memo[name]

    def _derive(self, n: Node) -> Unit:
        if n.op == "concat":
            parts = [np.broadcast_to(np.asarray(self(i), np.float64), (self.shapes[i][0],)) for i in n.inputs]
            cat = np.concatenate(parts)
            return float(cat[0]) if np.all(cat == cat[0]) else cat
        u = self(n.inputs[0])
        if n.op == "flatten" and isinstance(u, np.ndarray):
            s = self.shapes[n.inputs[0]]
            return np.repeat(u, int(np.prod(s[1:])) if len(s) > 1 else 1)
        return u  # pools keep channels

    def scalar(self, name: str, where: Node) -> float:
        u = self(name)
        if isinstance(u, np.ndarray):
            raise UnsupportedError(
                f"add {where.label()} reads {name!r}, a concat of layers with different spike "
                "rate scales; put a Linear/Conv between the concat and the add"
            )
        return float(u)


def weighted_input(n: Node, u: Unit) -> np.ndarray:
    """``W`` with each input column (dense) or input channel (conv) multiplied by its unit."""
    w = np.asarray(n.weight, np.float64)
    if not isinstance(u, np.ndarray):
        return w * u
    return w * (u.reshape(1, -1, 1, 1) if n.op == "conv2d" else u.reshape(1, -1))


def resolve(graph: Graph, compute: Callable[[Node, Units], float]) -> dict[str, float]:
    """``λ`` of every unit source, in topological order.

    Args:
        graph: the ANN.
        compute: ``compute(node, units)`` gives the ``λ`` of a weighted layer with neurons or of an
            ``add``, where ``units(name)`` is the unit of any tensor before it. Synaptic-only
            layers take the ``λ`` of the add they feed.
    """
    lam: dict[str, float] = {}
    units = Units(graph, lam)
    for n in graph.nodes:
        if not is_source(graph, n) or graph.is_linear(n):
            continue
        lam[n.name] = float(compute(n, units))
        if n.op == "add":  # its synaptic-only inputs are scaled straight into its unit
            for i in n.inputs:
                if i != INPUT and graph.is_linear(graph.node(i)):
                    lam.setdefault(i, lam[n.name])
    return lam


def apply_units(graph: Graph, lam: dict[str, float], threshold: float) -> Graph:
    """A copy of ``graph`` rescaled so that every tensor carries its unit (see the module doc)."""
    units = Units(graph, lam)
    out = with_thresholds(graph, threshold)
    for n in out.nodes:
        old = graph.node(n.name)
        if n.op in WEIGHTED:
            assert old.weight is not None  # a WEIGHTED node
            n.weight = (weighted_input(old, units(n.inputs[0])) / lam[n.name]).astype(old.weight.dtype)
            if old.bias is not None:  # n is old's copy: the same biases
                n.bias = (old.bias / lam[n.name]).astype(old.bias.dtype)
        elif n.op == "add":
            n.scales = tuple(float(s * units.scalar(i, old) / lam[n.name]) for s, i in zip(old.input_scales(), old.inputs))
    return out


def applied_factors(graph: Graph, lam: dict[str, float]) -> dict[str, float]:
    """What each weighted layer's weights were divided by: ``λ_l / λ_in`` (the largest input unit
    behind a concat)."""
    units = Units(graph, lam)
    return {n.name: lam[n.name] / float(np.max(units(n.inputs[0]))) for n in graph.nodes if n.op in WEIGHTED}
