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

Graphs with residual ``add`` or ``concat`` merges (paper variant only) use the same rule per unit
source (:mod:`snnbalance.normalize.units`): ``λ`` of a weighted layer is its ``scale`` above, ``λ``
of an ``add`` is the max of its output over the calibration data, and each input of the add is
mapped into that one unit by its scale factor ``λ_input / λ_add``. A layer reading a concat scales
each input channel by its own branch's unit.
"""

from __future__ import annotations

from ..errors import SnnBalanceError
from ..graph import WEIGHTED, Graph
from ..hookspecs import hookimpl
from ..records import Balanced, NormalizeContext, Normalizer
from . import scaled, units

VARIANTS = ("paper", "code")


def _positive(x: float) -> float:
    return x if x > 0 else 1.0  # nothing positive ever reaches this layer; leave it unscaled


def data_based_factors(graph: Graph, max_act: dict[str, float], variant: str = "paper") -> tuple[dict[str, float], dict[str, float]]:
    """Per-layer weight divisors (``applied``) and bias divisors (the layer's total factor ``λ_l``).

    Args:
        graph: the ANN (a chain; see :func:`data_based_units` for graphs with merges).
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
        assert n.weight is not None  # a WEIGHTED node
        scale = _positive(max(float(n.weight.max()), max_act[n.name]))
        applied = scale / previous
        total *= applied  # the layer's total factor λ_l: equals ``scale`` in the paper variant
        applied_f[n.name], scale_f[n.name] = applied, total
        previous = scale if variant == "paper" else applied
    return applied_f, scale_f


def data_based_units(graph: Graph, max_act: dict[str, float]) -> dict[str, float]:
    """``λ`` per unit source (paper variant) for any graph, merges included."""

    def compute(n, units):
        if n.op == "add":
            return _positive(max_act[n.name])
        return _positive(max(float(n.weight.max()), max_act[n.name]))

    return units.resolve(graph, compute)


def data_based(graph: Graph, ctx: NormalizeContext) -> Balanced:
    variant = ctx.options.get("variant", "paper")
    assert ctx.calibration is not None  # the record says needs_calibration: the registry supplies it
    max_act = ctx.calibration.max_activations(graph)
    if units.has_merges(graph):
        if variant != "paper":
            raise SnnBalanceError(
                f"data-based variant={variant} is defined for chains of layers only; this network "
                "has residual/concat merges: use variant=paper"
            )
        lam = data_based_units(graph, max_act)
        return Balanced(units.apply_units(graph, lam, ctx.threshold), units.applied_factors(graph, lam))
    applied, scale = data_based_factors(graph, max_act, variant)
    return Balanced(scaled(graph, applied, scale, ctx.threshold), applied)


@hookimpl
def snnbalance_normalizers():
    yield Normalizer(
        "data-based",
        "Diehl 2015 Alg. 2: scale each layer by its max activation on training data",
        data_based,
        needs_calibration=True,
        options={"variant": "paper (default; previous = scale) or code (authors' MATLAB: previous = applied)"},
    )
