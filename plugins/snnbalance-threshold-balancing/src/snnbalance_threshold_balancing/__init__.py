"""snnbalance plugin ``threshold-balancing``: thresholds per channel chosen for a target duration.

Use it as ``--normalizer threshold-balancing`` or ``threshold-balancing:T=16,per=layer``. The method
is in :mod:`snnbalance_threshold_balancing.core`.
"""

from __future__ import annotations

from snnbalance import hookimpl
from snnbalance.plugins import option
from snnbalance.records import Balanced, NormalizeContext, Normalizer

from .core import apply_thresholds, check_supported, choose_thresholds

__version__ = "0.1.0"
OWNER = "normalizer 'threshold-balancing'"
OPTIONS = {
    "T": "target duration in steps the thresholds are chosen for (default 32)",
    "per": "channel (default: one threshold per output channel) or layer",
    "v_init": "initial potential of every layer, a fraction of the threshold (default 0.5)",
    "grid": "candidate thresholds tried per channel, between 1/grid and 1 times its max (default 64)",
}


def threshold_balancing(graph, ctx: NormalizeContext) -> Balanced:
    """Choose a threshold per channel from ``ctx.calibration``'s activations and apply it as scaling."""
    o = ctx.options
    steps = option(o, "T", 32, int, low=1, high=100000, owner=OWNER)
    per = option(o, "per", "channel", str, choices=("channel", "layer"), owner=OWNER)
    v_init = option(o, "v_init", 0.5, float, low=-1.0, high=0.99, owner=OWNER)
    grid = option(o, "grid", 64, int, low=2, high=4096, owner=OWNER)
    check_supported(graph)
    thetas = choose_thresholds(graph, ctx.calibration, steps, v_init, grid, per_channel=per == "channel")
    out, factors = apply_thresholds(graph, thetas, ctx.threshold)
    for n in out.neuron_nodes():
        n.v_init = v_init
    return Balanced(out, factors)


@hookimpl
def snnbalance_normalizers():
    yield Normalizer(
        "threshold-balancing",
        "after Bu, Li & Yu (CVPR 2025): per-channel thresholds from calibration data that "
        "minimise each layer's local error over T steps (weights rescaled, not retrained)",
        threshold_balancing,
        needs_calibration=True,
        options=OPTIONS,
    )
