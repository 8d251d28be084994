"""snnbalance plugin ``spikenorm``: Spike-Norm threshold balancing (Sengupta et al. 2019).

Use it as ``--normalizer spikenorm`` or e.g. ``spikenorm:steps=200,samples=500,reset=subtract``.
The method is described in :mod:`snnbalance_spikenorm.core`.
"""

from __future__ import annotations

from snnbalance import hookimpl
from snnbalance.graph import WEIGHTED
from snnbalance.plugins import option
from snnbalance.records import Balanced, NormalizeContext, Normalizer
from snnbalance.simulate.core import RESETS

from .core import SpikeNormConfig, max_input, spike_norm

__version__ = "0.1.0"
__all__ = ["SpikeNormConfig", "max_input", "spike_norm", "spikenorm"]
OWNER = "normalizer 'spikenorm'"


def config_from(options: dict[str, str]) -> SpikeNormConfig:
    """The calibration settings named in ``spikenorm:key=value,...`` (defaults elsewhere)."""
    d = SpikeNormConfig()
    return SpikeNormConfig(
        steps=option(options, "steps", d.steps, int, low=1, owner=OWNER),
        samples=option(options, "samples", d.samples, int, low=1, owner=OWNER),
        reset=option(options, "reset", d.reset, str, choices=RESETS, owner=OWNER),
        max_rate=option(options, "max_rate", d.max_rate, float, low=0.0, owner=OWNER),
        seed=option(options, "seed", d.seed, int, owner=OWNER),
        batch_size=option(options, "batch", d.batch_size, int, low=1, owner=OWNER),
    )


def spikenorm(graph, ctx: NormalizeContext) -> Balanced:
    """Thresholds from the spiking network's own largest inputs on ``ctx.calibration``.

    ``ctx.threshold`` only stands in for a layer that never receives positive input. The scale
    factor reported for a weighted layer is its threshold: the divisor its weights would need
    to behave the same at threshold 1.
    """
    out, thresholds = spike_norm(
        graph, ctx.calibration.x, config_from(ctx.options), default=ctx.threshold, progress=getattr(ctx.calibration, "progress", None)
    )
    return Balanced(out, {n.name: thresholds[n.name] for n in out.nodes if n.op in WEIGHTED})


@hookimpl
def snnbalance_normalizers():
    yield Normalizer(
        "spikenorm",
        "Sengupta 2019 Spike-Norm: each threshold = the largest one-step input the layer "
        "receives while the SNN runs on calibration data, layer by layer",
        spikenorm,
        needs_calibration=True,
        options={
            "steps": "time steps per calibration input (default 100)",
            "samples": "calibration inputs simulated, the first N (default 256)",
            "reset": "zero (default) or subtract: the reset you will simulate with",
            "max_rate": "Poisson rate of an input of value 1 in Hz at dt 1 ms (default 1000)",
            "seed": "seed of the input spikes (default 0)",
            "batch": "inputs simulated together (default 64)",
        },
    )
