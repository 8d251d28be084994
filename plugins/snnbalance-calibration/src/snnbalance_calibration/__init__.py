"""snnbalance plugin ``calibration``: layer-wise bias (or initial potential) correction.

Use it as ``--normalizer calibration`` (bias correction for 32 steps on top of data-based) or
``calibration:T=16,mode=potential,base=robust``. The method is in :mod:`snnbalance_calibration.core`.
"""

from __future__ import annotations

from snnbalance import hookimpl
from snnbalance.normalize import normalize
from snnbalance.plugins import option
from snnbalance.records import Balanced, NormalizeContext, Normalizer

from .core import Settings, calibrate, check_supported

__version__ = "0.1.0"
OWNER = "normalizer 'calibration'"
OPTIONS = {
    "T": "target duration in steps the network is calibrated for (default 32)",
    "mode": "bias (default: shift each channel's bias) or potential (shift each layer's v_init)",
    "base": "normalizer that balances the network first (default data-based; e.g. robust, threshold-balancing)",
    "samples": "calibration images simulated (default 256, the first of the calibration set)",
    "v_init": "initial potential of every layer, a fraction of the threshold (default 0.5)",
    "reset": "reset the simulation uses, as --reset: subtract (default) or zero",
    "encoding": "input encoding, as --encoding: poisson (default) or current",
}


def calibration(graph, ctx: NormalizeContext) -> Balanced:
    """Balance ``graph`` with ``base``, then correct it layer by layer on ``ctx.calibration``."""
    o = ctx.options
    s = Settings(
        steps=option(o, "T", 32, int, low=1, high=100000, owner=OWNER),
        mode=option(o, "mode", "bias", str, choices=("bias", "potential"), owner=OWNER),
        samples=option(o, "samples", 256, int, low=1, owner=OWNER),
        v_init=option(o, "v_init", 0.5, float, low=-1.0, high=0.99, owner=OWNER),
        reset=option(o, "reset", "subtract", str, choices=("subtract", "zero"), owner=OWNER),
        encoding=option(o, "encoding", "poisson", str, choices=("poisson", "current"), owner=OWNER),
    )
    base = option(o, "base", "data-based", str, owner=OWNER)
    if base == "calibration":
        from snnbalance.errors import SnnBalanceError

        raise SnnBalanceError(f"{OWNER}: option base must name another normalizer, e.g. base=data-based")
    check_supported(graph)
    balanced = normalize(graph, base, calibration=ctx.calibration, threshold=ctx.threshold)
    return Balanced(calibrate(balanced.graph, ctx.calibration.x, s), dict(balanced.scale_factors))


@hookimpl
def snnbalance_normalizers():
    yield Normalizer(
        "calibration",
        "Li 2021 (ICML): balance, then shift each layer's bias (or v_init) so its firing rate "
        "over T steps matches the ANN on calibration images",
        calibration,
        needs_calibration=True,
        options=OPTIONS,
    )
