"""Robust normalization: scale by the p-th percentile of the activations instead of their maximum.

Rueckauer et al. 2017 ("Conversion of continuous-valued deep networks to efficient event-driven
networks for image classification"): a single large activation sets Diehl's max-based factor,
so most neurons of the layer fire far below their maximum rate and need long to be read out.
The p-th percentile (e.g. 99.9) of the layer's non-zero activations on training data ignores
those outliers; the few neurons above it saturate at one spike per step.

``per=layer``: one factor ``λ_l`` per weighted layer, applied as in Diehl's data-based
normalization (weights times ``λ_{l-1} / λ_l``, bias divided by ``λ_l``).

``per=channel`` (Kim et al. 2020, Spiking-YOLO): one factor per output channel of a conv layer
(per output neuron of a hidden dense layer). Node thresholds stay scalar: channel ``c`` of layer
``l`` is divided by ``λ_l[c]`` and the next weighted layer's input channel ``c`` is multiplied
by ``λ_l[c]``, so every channel fires relative to its own percentile. Average pooling and
flatten pass the factors through (pooling acts within a channel; flatten maps channel ``c`` to
its ``H*W`` consecutive features); max pooling passes them through as well. The output layer keeps one factor, since per-class factors
would change which class has the most spikes.
"""

from __future__ import annotations

import numpy as np

from snnbalance.errors import UnsupportedError
from snnbalance.graph import INPUT, WEIGHTED, Graph
from snnbalance.normalize import scaled, with_thresholds
from snnbalance.records import Calibration

SUPPORTED = ("dense", "conv2d", "avgpool2d", "maxpool2d", "flatten")


def check_supported(graph: Graph, per: str = "channel") -> None:
    """Channel-wise factors need a chain (a residual add would mix channels of different factors);
    layer-wise factors take any graph (:func:`merged`)."""
    if per == "layer":
        return
    for n in graph.nodes:
        if n.op not in SUPPORTED:
            raise UnsupportedError(
                f"normalizer 'robust' with per=channel handles chains of {', '.join(SUPPORTED)} "
                f"layers, not {n.op} (layer {n.label()}); use per=layer"
            )


def merged(graph: Graph, calibration: Calibration, p: float, threshold: float) -> tuple[Graph, dict[str, float]]:
    """Layer-wise robust factors for a graph with residual adds or concats: the p-th percentile of
    each unit source's positive activations (weighted layers with neurons, and adds) is its ``λ``,
    applied by :mod:`snnbalance.normalize.units` exactly as data-based normalization applies the max."""
    from snnbalance.normalize import units

    names = [n.name for n in graph.nodes if units.is_source(graph, n) and not graph.is_linear(n)]
    chunks: dict[str, list[np.ndarray]] = {k: [] for k in names}
    for acts in calibration.activations(graph):
        for k in names:
            chunks[k].append(acts[k].reshape(-1))
    pct = {k: float(_pct(np.concatenate(chunks[k])[None, :], p)[0]) for k in names}

    def compute(n, _units):
        value = pct[n.name]
        return value if np.isfinite(value) and value > 0 else 1.0  # a silent source keeps its unit

    lam = units.resolve(graph, compute)
    return units.apply_units(graph, lam, threshold), units.applied_factors(graph, lam)


def percentiles(graph: Graph, calibration: Calibration, p: float, per_channel: bool) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The p-th percentile of each weighted layer's positive activations on the calibration data.

    Args:
        graph: the ANN.
        calibration: training inputs.
        p: percentile in [0, 100].
        per_channel: also compute one value per output channel (axis 1).
    Returns:
        Per layer: node name -> array of shape ``(1,)``; per channel (empty unless
        ``per_channel``): node name -> ``(channels,)``. NaN where nothing was positive.
    """
    names = [n.name for n in graph.nodes if n.op in WEIGHTED]
    # Gather channel-major (C, values) so that both granularities read the same arrays.
    chunks: dict[str, list[np.ndarray]] = {k: [] for k in names}
    for acts in calibration.activations(graph):
        for k in names:
            a = acts[k]
            chunks[k].append(np.moveaxis(a, 1, 0).reshape(a.shape[1], -1))
    layer, channel = {}, {}
    for k in names:
        a = np.concatenate(chunks.pop(k), axis=1)
        layer[k] = _pct(a.reshape(1, -1), p)
        if per_channel:
            channel[k] = _pct(a, p)
    return layer, channel


def _pct(rows: np.ndarray, p: float) -> np.ndarray:
    # Rueckauer's toolbox takes the percentile of the non-zero activations: zeros (silent ReLUs)
    # would otherwise pull it down in sparse layers.
    return np.array([np.percentile(r[r > 0], p) if np.any(r > 0) else np.nan for r in rows])


def layer_factors(graph: Graph, lam: dict[str, np.ndarray]) -> tuple[dict[str, float], dict[str, float]]:
    """Weight divisors ``λ_l / λ_{l-1}`` and bias divisors ``λ_l`` from one percentile per layer."""
    previous = 1.0
    applied, total = {}, {}
    for n in graph.nodes:
        if n.op in WEIGHTED:
            value = float(lam[n.name][0])
            scale = value if np.isfinite(value) and value > 0 else previous  # silent layer: no change
            applied[n.name], total[n.name] = scale / previous, scale
            previous = scale
    return applied, total


def layer_wise(graph: Graph, lam: dict[str, np.ndarray], threshold: float) -> tuple[Graph, dict[str, float]]:
    applied, total = layer_factors(graph, lam)
    return scaled(graph, applied, total, threshold), applied


def channel_wise(
    graph: Graph, lam: dict[str, np.ndarray], layer_lam: dict[str, np.ndarray], threshold: float
) -> tuple[Graph, dict[str, float]]:
    """Per-channel factors, compensated in the next weighted layer's input weights.

    Args:
        graph: the ANN.
        lam: per-channel percentiles (NaN for a channel that never fired).
        layer_lam: per-layer percentiles, the fallback for silent channels and the output's factor.
        threshold: threshold of every spiking layer.
    Returns:
        The balanced graph and, per weighted layer, its largest channel factor divided by the
        previous weighted layer's largest (the layer-wise ``applied`` factor when all are equal).
    """
    out = with_thresholds(graph, threshold)
    shapes = graph.shapes()
    scale = {INPUT: np.ones(shapes[INPUT][0])}  # factor of each channel (or feature) of a node's output
    report, prev_max = {}, 1.0
    for n in out.nodes:
        s_in = scale[n.inputs[0]]
        if n.op == "flatten":
            in_shape = shapes[n.inputs[0]]
            scale[n.name] = np.repeat(s_in, int(np.prod(in_shape[1:]))) if len(in_shape) == 3 else s_in
            continue
        if n.op not in WEIGHTED:  # pooling stays within a channel
            scale[n.name] = s_in
            continue
        layer_value = float(layer_lam[n.name][0])
        fallback = layer_value if np.isfinite(layer_value) and layer_value > 0 else 1.0
        if n is out.output:
            s_out = np.full(n.weight.shape[0], fallback)
        else:
            s_out = np.where(np.isfinite(lam[n.name]) & (lam[n.name] > 0), lam[n.name], fallback)
        col = s_in.reshape((1, -1) + (1,) * (n.weight.ndim - 2))
        row = s_out.reshape((-1,) + (1,) * (n.weight.ndim - 1))
        n.weight = (n.weight.astype(np.float64) * col / row).astype(n.weight.dtype)
        if n.bias is not None:  # per channel (C,) or a per-position map (C, H, W)
            n.bias = (n.bias / s_out.reshape((-1,) + (1,) * (n.bias.ndim - 1))).astype(n.bias.dtype)
        scale[n.name] = s_out
        report[n.name] = float(s_out.max() / prev_max)
        prev_max = float(s_out.max())
    return out, report
