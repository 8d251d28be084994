"""A template snnbalance plugin: the normalizer ``template-max`` and the simulator ``template-numpy``.

Each hook returns (or yields) small records; snnbalance collects them at start-up. Keep heavy
imports (torch, ...) inside the functions that need them, so ``snnbalance --help`` stays fast.
"""

from __future__ import annotations

from snnbalance import hookimpl
from snnbalance.graph import WEIGHTED, Graph
from snnbalance.normalize import scaled
from snnbalance.plugins import option
from snnbalance.records import Balanced, NormalizeContext, Normalizer, Simulator
from snnbalance.simulate.core import SimConfig, run_batches
from snnbalance.simulate.numpy_ref import step_batch

__version__ = "0.1.0"


def layer_max(graph: Graph, ctx: NormalizeContext) -> Balanced:
    """Divide each weighted layer by its largest activation (times ``margin``) on calibration data.

    A normalizer is a pure function: copy the graph (``scaled`` does), never modify ``graph``.
    """
    margin = option(ctx.options, "margin", 1.0, float, low=1e-6, owner="normalizer 'template-max'")
    max_act = ctx.calibration.max_activations(graph)  # cached: shared with other normalizers
    previous, applied, total = 1.0, {}, {}
    for n in graph.nodes:
        if n.op in WEIGHTED:
            scale = max(max_act[n.name], 1e-12) * margin
            applied[n.name], total[n.name] = scale / previous, scale
            previous = scale
    return Balanced(scaled(graph, applied, total, ctx.threshold), applied)


def simulate(graph: Graph, x, y, config: SimConfig, progress=None, task: str = "simulate"):
    """A back end only steps one batch through time; ``run_batches`` does the rest.

    This one reuses the NumPy reference's ``step_batch``: replace it with your own.
    """
    return run_batches(graph, x, y, config, step_batch, "template-numpy", progress, task)


@hookimpl
def snnbalance_normalizers():
    yield Normalizer(
        "template-max",
        "template: divide each layer by its max activation times a margin",
        layer_max,
        needs_calibration=True,
        options={"margin": "multiply every factor by this (default 1.0)"},
    )


@hookimpl
def snnbalance_simulators():
    yield Simulator("template-numpy", "template: the NumPy reference behind a plugin's name", simulate, ("cpu",))
