"""snnbalance plugin ``robust``: percentile-based normalization, layer-wise or channel-wise.

Use it as ``--normalizer robust`` (99.9th percentile, layer-wise), ``robust:p=99.99`` or
``robust:p=99.9,per=channel``. The method is described in :mod:`snnbalance_robust.core`.
"""

from __future__ import annotations

from snnbalance import hookimpl
from snnbalance.plugins import option
from snnbalance.records import Balanced, NormalizeContext, Normalizer

from .core import channel_wise, check_supported, layer_wise, merged, percentiles

__version__ = "0.1.0"
OWNER = "normalizer 'robust'"


def robust(graph, ctx: NormalizeContext) -> Balanced:
    """Balance ``graph`` by the p-th percentile of its activations on ``ctx.calibration``."""
    p = option(ctx.options, "p", 99.9, float, low=0.0, high=100.0, owner=OWNER)
    per = option(ctx.options, "per", "layer", str, choices=("layer", "channel"), owner=OWNER)
    check_supported(graph, per)
    if per == "layer" and any(n.op in ("add", "concat") for n in graph.nodes):
        return Balanced(*merged(graph, ctx.calibration, p, ctx.threshold))
    layer_lam, channel_lam = percentiles(graph, ctx.calibration, p, per_channel=per == "channel")
    if per == "layer":
        out, factors = layer_wise(graph, layer_lam, ctx.threshold)
    else:
        out, factors = channel_wise(graph, channel_lam, layer_lam, ctx.threshold)
    return Balanced(out, factors)


@hookimpl
def snnbalance_normalizers():
    yield Normalizer(
        "robust",
        "Rueckauer 2017: scale by the p-th percentile of the activations, not the max (layer- or channel-wise)",
        robust,
        needs_calibration=True,
        options={
            "p": "percentile of the positive activations, 0-100 (default 99.9)",
            "per": "layer (default) or channel (Kim 2020: one factor per output channel)",
        },
    )
