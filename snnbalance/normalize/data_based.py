"""``data-based``: Diehl et al. 2015, Algorithm 2, from activations on training data.

For each weighted layer ``l`` in order::

    scale    = max(max weight of l, max ReLU activation of l over the calibration data)
    applied  = scale / previous
    weights /= applied
    previous = scale          # variant "paper" (the algorithm as printed)
    previous = applied        # variant "code"  (the authors' MATLAB code)

``previous`` starts at 1. Biases are divided by the layer's total factor ``λ_l`` (the product of
the ``applied`` factors up to ``l``; in the paper variant that is ``scale``), since a bias adds
directly to an activation measured in units of ``λ_l``. Pooling and flatten layers
pass values through unchanged and are not scaled.

The two variants agree on the first two layers and differ from the third on; "paper" is the
one that keeps every layer's activations at most 1 (proof: by induction, the weights of layer
``l`` end up multiplied by ``λ_{l-1} / λ_l``).
"""

from __future__ import annotations

from ..errors import SnnBalanceError
from ..graph import WEIGHTED, Graph
from ..hookspecs import hookimpl
from ..records import Balanced, NormalizeContext, Normalizer
from . import scaled

VARIANTS = ("paper", "code")


def data_based_factors(graph: Graph, max_act: dict[str, float], variant: str = "paper"
                       ) -> tuple[dict[str, float], dict[str, float]]:
    """Per-layer weight divisors (``applied``) and bias divisors (the layer's total factor ``λ_l``).

    Args:
        graph: the ANN.
        max_act: node name -> max activation over the calibration data.
        variant: ``"paper"`` or ``"code"``.
    """
    if variant not in VARIANTS:
        raise SnnBalanceError(f"data-based variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    previous = total = 1.0
    applied_f, scale_f = {}, {}
    for n in graph.nodes:
        if n.op not in WEIGHTED:
            continue
        scale = max(float(n.weight.max()), max_act[n.name])
        if scale <= 0:
            scale = 1.0  # nothing positive ever reaches this layer; leave it unscaled
        applied = scale / previous
        total *= applied  # the layer's total factor λ_l: equals ``scale`` in the paper variant
        applied_f[n.name], scale_f[n.name] = applied, total
        previous = scale if variant == "paper" else applied
    return applied_f, scale_f


def data_based(graph: Graph, ctx: NormalizeContext) -> Balanced:
    variant = ctx.options.get("variant", "paper")
    max_act = ctx.calibration.max_activations(graph)
    applied, scale = data_based_factors(graph, max_act, variant)
    return Balanced(scaled(graph, applied, scale, ctx.threshold), applied)


@hookimpl
def snnbalance_normalizers():
    yield Normalizer("data-based",
                     "Diehl 2015 Alg. 2: scale each layer by its max activation on training data",
                     data_based, needs_calibration=True,
                     options={"variant": "paper (default; previous = scale) or code (authors' MATLAB: previous = applied)"})
