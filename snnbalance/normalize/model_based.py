"""``model-based``: Diehl et al. 2015, Algorithm 1, from the weights alone.

For every weighted layer, the factor is the largest, over output neurons, sum of that neuron's
positive input weights (for a conv neuron: its kernel, in_channels x kh x kw). Dividing the
layer's weights by it guarantees that a neuron receiving at most one spike per input per step
gets at most one threshold's worth of input, so it never needs to fire twice in one step.

A bias is treated as one more input that is always on: its positive part joins the sum, and the
bias is divided by the same factor as the weights.
"""

from __future__ import annotations

import numpy as np

from ..graph import WEIGHTED, Graph
from ..hookspecs import hookimpl
from ..records import Balanced, NormalizeContext, Normalizer
from . import scaled


def max_positive_input(weight: np.ndarray, bias: np.ndarray | None = None) -> float:
    """Max over output neurons of the sum of positive incoming weights (and positive bias)."""
    pos = np.clip(weight.reshape(weight.shape[0], -1), 0, None).sum(axis=1, dtype=np.float64)
    if bias is not None:
        pos = pos + np.clip(bias, 0, None)
    return float(pos.max())


def model_based(graph: Graph, ctx: NormalizeContext) -> Balanced:
    factors = {}
    for n in graph.nodes:
        if n.op in WEIGHTED:
            f = max_positive_input(n.weight, n.bias)
            factors[n.name] = f if f > 0 else 1.0  # a layer with no positive input never fires anyway
    return Balanced(scaled(graph, factors, factors, ctx.threshold), factors)


@hookimpl
def snnbalance_normalizers():
    yield Normalizer("model-based", "Diehl 2015 Alg. 1: divide each layer by its max sum of positive input weights",
                     model_based)
