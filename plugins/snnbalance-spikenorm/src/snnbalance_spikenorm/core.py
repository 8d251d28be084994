"""Spike-Norm: threshold balancing in the spiking domain (Sengupta et al. 2019).

"Going deeper in spiking neural networks: VGG and residual architectures": instead of reading
ANN activations, run the spiking network itself on calibration inputs and set each layer's
threshold to the largest input current any of its neurons receives in one time step. Layers are
balanced one after the other, each with the thresholds of the layers before it already set, so
a layer sees the spike trains it will see at test time.

Weights are left as they are. A bias is an input that arrives every step whatever the rates
upstream, so it must shrink with them: with ``Λ`` the product of the thresholds along the path
to a layer, that layer's bias is divided by ``Λ`` of its input. Then every layer's rate is the
ANN's activation divided by its own ``Λ`` (the bias-free networks of the paper are unchanged).

The simulation follows :mod:`snnbalance.simulate.numpy_ref` step for step (same kernels, same
Poisson spikes from :class:`~snnbalance.simulate.encoding.PoissonSource`), stopping at the layer
being balanced.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from snnbalance.errors import UnsupportedError
from snnbalance.graph import INPUT, Graph, apply
from snnbalance.progress import ProgressEvent
from snnbalance.simulate.encoding import PoissonSource
from snnbalance.simulate.numpy_ref import if_step

SUPPORTED = ("dense", "conv2d", "avgpool2d", "flatten")


def check_supported(graph: Graph) -> None:
    """Refuse layer kinds this small simulation loop does not model (merges, max-pool gates)."""
    for n in graph.nodes:
        if n.op not in SUPPORTED:
            raise UnsupportedError(
                f"normalizer 'spikenorm' handles {', '.join(SUPPORTED)} layers, not {n.op} (layer {n.label()}); use data-based"
            )


def _bias(n) -> np.ndarray:
    b = n.bias.astype(np.float32)
    return b.reshape(-1, 1, 1) if n.op == "conv2d" and b.ndim == 1 else b  # (C,) or a (C, H, W) map


@dataclass
class SpikeNormConfig:
    """Settings of the calibration simulation.

    Attributes:
        steps: time steps per calibration input.
        samples: calibration inputs used (the first ones).
        reset: ``zero`` or ``subtract``; use the reset you will simulate with.
        max_rate: Poisson rate of an input of value 1 [Hz] (at dt = 1 ms).
        seed: seed of the input spikes.
        batch_size: inputs simulated together (bounds memory).
    """

    steps: int = 100
    samples: int = 256
    reset: str = "zero"
    max_rate: float = 1000.0
    seed: int = 0
    batch_size: int = 64


def max_input(graph: Graph, layer: str, x: np.ndarray, index: np.ndarray, cfg: SpikeNormConfig) -> float:
    """Largest one-step input current of any neuron of ``layer`` while the network up to it runs.

    Args:
        graph: network whose layers before ``layer`` already carry their thresholds (and biases).
        layer: the spiking layer to measure.
        x: a batch of inputs (B, *input_shape).
        index: the inputs' sample indices (they seed the Poisson spikes).
        cfg: calibration settings.
    """
    b = len(x)
    shapes = graph.shapes()
    source = PoissonSource(x.reshape(b, *shapes[INPUT]), index, cfg.seed, cfg.max_rate, 1.0)
    upto = [n.name for n in graph.nodes].index(layer) + 1
    nodes = graph.nodes[:upto]
    v = {n.name: np.zeros((b, *shapes[n.name]), np.float32) for n in nodes if n.op != "flatten"}
    bias = {n.name: _bias(n) for n in nodes if n.bias is not None}
    best = -np.inf
    for t in range(cfg.steps):
        vals = {INPUT: source.step(t)}
        for n in nodes:
            inp = vals[n.inputs[0]]
            if n.op == "flatten":
                vals[n.name] = inp.reshape(b, -1)
                continue
            current = apply(n, inp)
            if n.name in bias:
                current += bias[n.name]
            if n.name == layer:
                best = max(best, float(current.max()))
                break
            vals[n.name] = if_step(v[n.name], current, n.threshold, cfg.reset).astype(np.float32)
    return best


def spike_norm(graph: Graph, x: np.ndarray, cfg: SpikeNormConfig, default: float = 1.0, progress=None) -> tuple[Graph, dict[str, float]]:
    """Set every spiking layer's threshold, in order, to its largest one-step input.

    Args:
        graph: the ANN (not modified).
        x: calibration inputs; the first ``cfg.samples`` are used.
        cfg: calibration settings.
        default: threshold of a layer that never receives positive input.
        progress: receives a ``calibrate spikenorm`` event after each batch of each layer (this
            layer-by-layer simulation takes a minute on a CNN).
    Returns:
        The balanced graph and each spiking layer's threshold.
    """
    check_supported(graph)
    out = graph.copy()
    x = x[: cfg.samples]
    lam = {INPUT: 1.0}  # product of thresholds on the path to each node's output
    thresholds = {}
    batches = -(-len(x) // cfg.batch_size)
    total, done = batches * sum(n.op != "flatten" for n in out.nodes), 0
    for n in out.nodes:
        lam_in = lam[n.inputs[0]]
        if n.op == "flatten":
            lam[n.name] = lam_in
            continue
        if n.bias is not None:
            n.bias = (n.bias / lam_in).astype(n.bias.dtype)
        best = -np.inf
        for lo in range(0, len(x), cfg.batch_size):
            idx = np.arange(lo, min(lo + cfg.batch_size, len(x)))
            best = max(best, max_input(out, n.name, x[idx], idx, cfg))
            done += 1
            if progress is not None:
                progress(ProgressEvent("calibrate spikenorm", done, total, {"layer": n.name}))
        n.threshold = float(best) if best > 0 else float(default)
        thresholds[n.name] = n.threshold
        lam[n.name] = lam_in * n.threshold
    return out, thresholds
