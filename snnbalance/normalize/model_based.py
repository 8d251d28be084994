"""``model-based``: Diehl et al. 2015, Algorithm 1, from the weights alone.

For every weighted layer, the factor is the largest, over output neurons, sum of that neuron's
positive input weights (for a conv neuron: its kernel, in_channels x kh x kw). Dividing the
layer's weights by it guarantees that a neuron receiving at most one spike per input per step
gets at most one threshold's worth of input, so it never needs to fire twice in one step.

Biases: a bias is one more input that is always on. In the units of the layer's input (``λ_in``,
the product of the factors of the layers before it; 1 for the first layer) it has weight
``b / λ_in``, so its positive part joins the sum: ``f = max_n(Σ W⁺ + b⁺ / λ_in)``. Weights are
divided by ``f`` and the bias by the layer's total factor ``λ_l = λ_in · f``, which keeps the
balanced network an exact positive rescaling of the ANN (argmax unchanged).

A residual ``add`` is a neuron layer too: its factor is the largest positive input sum over all
its inputs -- the synaptic-only weighted layers feeding it (weights times their input's ``λ``,
plus their bias) and the spike inputs (their ``λ``) -- and every input is mapped into the add's
unit (:mod:`snnbalance.normalize.units`). A layer reading a concat weighs each input channel by its
branch's ``λ``.
"""

from __future__ import annotations

import numpy as np

from ..graph import INPUT, WEIGHTED, Graph, Node
from ..hookspecs import hookimpl
from ..records import Balanced, NormalizeContext, Normalizer
from . import units as units_mod


def max_positive_input(weight: np.ndarray, bias: np.ndarray | None = None) -> float:
    """Max over output neurons of the sum of positive incoming weights (and positive bias)."""
    return float(positive_input(weight, bias).max())


def positive_input(weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """Per output neuron: sum of positive incoming weights plus the positive bias.

    Shaped (out,) for dense layers and per-channel conv biases, (out, H, W) for per-position biases.
    """
    pos = np.clip(weight.reshape(weight.shape[0], -1), 0, None).sum(axis=1, dtype=np.float64)
    if bias is None:
        return pos
    b = np.clip(np.asarray(bias, np.float64), 0, None)
    return pos.reshape(-1, *[1] * (b.ndim - 1)) + b


def _factor(x: float) -> float:
    return x if x > 0 else 1.0  # a layer with no positive input never fires anyway


def model_based_units(graph: Graph) -> dict[str, float]:
    """``λ`` per unit source: the largest input one neuron can receive in a step, in ANN units."""

    def compute(n: Node, units) -> float:
        if n.op in WEIGHTED:  # max_n(Σ_j W⁺_nj u_j + b⁺_n), u: the input's unit(s)
            return _factor(float(positive_input(units_weight(n, units), n.bias).max()))
        total: np.ndarray | float = 0.0
        for scale, i in zip(n.input_scales(), n.inputs):
            m = graph.node(i) if i != INPUT else None
            if m is not None and graph.is_linear(m):
                p = positive_input(units_weight(m, units) * scale, None if m.bias is None else m.bias * scale)
                total = total + (p.reshape(-1, 1, 1) if m.op == "conv2d" and p.ndim == 1 else p)
            else:
                total = total + max(scale, 0.0) * units.scalar(i, n)
        return _factor(float(np.max(total)))

    return units_mod.resolve(graph, compute)


def units_weight(n: Node, units) -> np.ndarray:
    return units_mod.weighted_input(n, units(n.inputs[0]))


def model_based(graph: Graph, ctx: NormalizeContext) -> Balanced:
    lam = model_based_units(graph)
    return Balanced(units_mod.apply_units(graph, lam, ctx.threshold), units_mod.applied_factors(graph, lam))


@hookimpl
def snnbalance_normalizers():
    yield Normalizer("model-based", "Diehl 2015 Alg. 1: divide each layer by its max sum of positive input weights", model_based)
