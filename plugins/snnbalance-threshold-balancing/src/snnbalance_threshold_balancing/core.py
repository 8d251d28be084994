"""Local threshold balancing: a threshold per channel chosen for a target duration ``T``.

After Bu, Li & Yu, "Inference-scale complexity in ANN-SNN conversion for high-performance and
low-power applications" (CVPR 2025), whose local threshold balancing sets channel-wise thresholds
from calibration data without retraining the weights (also a SpikingJelly 2.0 recipe). Their
thresholds are optimised per layer by gradient descent on the layer's local conversion error; here
the same local objective is minimised by a grid search, which needs no autograd and is exact for
the model below:

    err_c(θ) = E[(a - θ · clip(floor(a T / θ + v_init), 0, T) / T)²]   over the channel's activations a

that is, the ANN activation against what an IF neuron with threshold ``θ``, initial potential
``v_init · θ`` and a constant input ``a`` per step sends in ``T`` steps (reset by subtraction).
Candidates are ``θ = max_c · k / grid`` for ``k = 1..grid``; the activations are the ANN's on the
calibration images (local: each layer on the ANN's own inputs). A low ``T`` favours thresholds
below the maximum (less flooring error, a little clipping); a long ``T`` tends to the maximum,
i.e. Diehl's data-based normalization per channel.

snnbalance's thresholds are one number per layer, so a channel threshold is applied as the
equivalent scaling: for IF neurons ``V += I``, spike at ``V >= θ``, reset to 0 or ``V -= θ``, from
``V = v_init · θ``, dividing ``V``, ``I`` and ``θ`` by ``θ`` changes no spike (exactly in real
arithmetic; in float32 only through rounding). So channel ``c``'s weights and bias are divided by
``θ_c / τ`` (``τ`` is ``--threshold``, every layer's threshold), and since its spikes now stand for
``θ_c`` of activation, the next weighted layer's weights reading channel ``c`` are multiplied by
``θ_c``. Pooling and flatten carry the factors through. The output layer gets one threshold (per
class thresholds would change which class spikes most).

Layers supported: chains of dense, conv2d, avgpool2d, maxpool2d and flatten.
"""

from __future__ import annotations

import numpy as np

from snnbalance.errors import UnsupportedError
from snnbalance.graph import INPUT, WEIGHTED, Graph
from snnbalance.normalize import with_thresholds
from snnbalance.records import Calibration

SUPPORTED = ("dense", "conv2d", "avgpool2d", "maxpool2d", "flatten")
MAX_VALUES = 200_000  # activations kept per channel (an even subsample beyond it)


def check_supported(graph: Graph) -> None:
    for n in graph.nodes:
        if n.op not in SUPPORTED:
            raise UnsupportedError(
                f"normalizer 'threshold-balancing' handles chains of {', '.join(SUPPORTED)} "
                f"layers, not {n.op} (layer {n.label()}); use data-based"
            )


def local_error(a: np.ndarray, theta: np.ndarray, steps: int, v_init: float) -> np.ndarray:
    """``err(θ)`` of the module docstring for activations ``a`` (n,) and candidates ``theta`` (k,)."""
    q = np.clip(np.floor(a[None, :] * steps / theta[:, None] + v_init), 0, steps) / steps
    return np.mean((a[None, :] - theta[:, None] * q) ** 2, axis=1)


def best_threshold(a: np.ndarray, steps: int, v_init: float, grid: int) -> float:
    """The candidate threshold with the least local error (1 for a channel that never fires)."""
    top = float(a.max()) if a.size else 0.0
    if top <= 0:
        return 1.0
    theta = top * np.arange(1, grid + 1) / grid
    return float(theta[int(np.argmin(local_error(a, theta, steps, v_init)))])


def choose_thresholds(
    graph: Graph, calibration: Calibration, steps: int, v_init: float, grid: int, per_channel: bool
) -> dict[str, np.ndarray]:
    """Per weighted layer, the threshold of each output channel (one value for the output layer
    and with ``per_channel=False``) in the ANN's units."""
    names = [n.name for n in graph.nodes if n.op in WEIGHTED]
    chunks: dict[str, list[np.ndarray]] = {k: [] for k in names}
    for acts in calibration.activations(graph):
        for k in names:
            a = np.maximum(acts[k], 0)  # the output layer has no ReLU: only what it can fire counts
            chunks[k].append(np.moveaxis(a, 1, 0).reshape(a.shape[1], -1))
    out = {}
    for k in names:
        a = np.concatenate(chunks.pop(k), axis=1)
        rows = a if per_channel and k != graph.output.name else a.reshape(1, -1)
        out[k] = np.array([best_threshold(_thin(r), steps, v_init, grid) for r in rows], np.float64)
    return out


def _thin(r: np.ndarray) -> np.ndarray:
    return r if r.size <= MAX_VALUES else r[:: -(-r.size // MAX_VALUES)]


def apply_thresholds(graph: Graph, thetas: dict[str, np.ndarray], threshold: float) -> tuple[Graph, dict[str, float]]:
    """The graph with channel thresholds applied as weight scaling (module docstring); every
    spiking layer's threshold is ``threshold``. Returns the graph and, per weighted layer, the
    largest factor its weights were divided by."""
    out = with_thresholds(graph, threshold)
    shapes = graph.shapes()
    carried = {INPUT: np.ones(shapes[INPUT][0])}  # per channel (or feature): what one unit stands for
    factors: dict[str, float] = {}
    for n in out.nodes:
        src = carried[n.inputs[0]]
        if n.op == "flatten":
            in_shape = shapes[n.inputs[0]]
            carried[n.name] = np.repeat(src, int(np.prod(in_shape[1:]))) if len(in_shape) > 1 else src
            continue
        if n.op not in WEIGHTED:  # pools act within a channel
            carried[n.name] = src
            continue
        theta = thetas[n.name]
        lam = np.broadcast_to(theta, (n.weight.shape[0],)).astype(np.float64)
        div = lam / threshold
        extra = (1,) * (n.weight.ndim - 2)
        w = n.weight.astype(np.float64) * src.reshape(1, -1, *extra) / div.reshape(-1, 1, *extra)
        n.weight = w.astype(graph.node(n.name).weight.dtype)
        if n.bias is not None:
            n.bias = (n.bias / div.reshape(-1, *(1,) * (n.bias.ndim - 1))).astype(graph.node(n.name).bias.dtype)
        carried[n.name] = lam
        factors[n.name] = float(np.max(div / np.max(src)))
    return out, factors
