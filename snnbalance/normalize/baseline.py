"""``baseline``: copy the ANN's weights unchanged; only the threshold is set (the paper's manual tuning)."""

from __future__ import annotations

from ..graph import WEIGHTED, Graph
from ..hookspecs import hookimpl
from ..records import Balanced, NormalizeContext, Normalizer
from . import with_thresholds


def baseline(graph: Graph, ctx: NormalizeContext) -> Balanced:
    out = with_thresholds(graph, ctx.threshold)
    return Balanced(out, {n.name: 1.0 for n in out.nodes if n.op in WEIGHTED})


@hookimpl
def snnbalance_normalizers():
    yield Normalizer("baseline", "copy the ANN weights unchanged; threshold from --threshold (manual tuning)", baseline)
