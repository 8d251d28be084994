"""Layer-wise calibration of a converted network for a target duration (Li et al. 2021).

Li, Deng, Dong, Gong & Gu, "A free lunch from ANN: towards efficient, accurate spiking neural
networks calibration", ICML 2021. After a conversion, the firing rate of a layer over ``T`` steps
differs from the ANN's (clipped, threshold-scaled) activation: rates are quantized to ``k / T``
(flooring error), and errors of earlier layers propagate. Their light pipeline corrects it layer by
layer with a few hundred training images: simulate the SNN, measure per channel the mean difference
``e_c = E[a_c / θ - r_c]`` between the ANN's rate target and the SNN's rate, and add ``θ · e_c`` to
the channel's bias (a constant current of ``θ e_c`` per step raises the rate by about ``e_c``). The
next layer is calibrated on the corrected network's spikes, so each correction also absorbs what
the layers before it left.

``mode=potential``: Li et al.'s potential calibration in its reduced form (one value per layer, as
snnbalance's ``v_init`` is per layer): adding ``Δv`` to the initial potential adds about ``Δv / θ``
spikes in ``T`` steps, so the layer's ``v_init`` moves by ``T · mean(e)`` (clipped to [-1, 0.99]).
Unlike a bias it costs nothing after the first spikes and leaves the rate for long runs alone.

Targets ``a`` are the balanced ANN's activations (the true ANN path, not the SNN's inputs), divided
by the layer's threshold and clipped to [0, 1] (no neuron fires more than once per step). Layers
supported: chains of dense, conv2d (per-channel or per-position biases), avgpool2d, maxpool2d and
flatten; pools have no bias and are not corrected in ``bias`` mode (their rates follow their inputs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from snnbalance.errors import UnsupportedError
from snnbalance.graph import WEIGHTED, Graph
from snnbalance.simulate import SimConfig

SUPPORTED = ("dense", "conv2d", "avgpool2d", "maxpool2d", "flatten")
BATCH = 256


@dataclass
class Settings:
    """What the calibration simulates: ``steps`` (T), ``mode``, ``samples``, ``v_init``, ``reset``,
    ``encoding`` (1 ms steps, 1000 Hz for a pixel of 1, as the defaults of ``convert``)."""

    steps: int = 32
    mode: str = "bias"
    samples: int = 256
    v_init: float = 0.5
    reset: str = "subtract"
    encoding: str = "poisson"

    def sim(self) -> SimConfig:
        return SimConfig(
            duration=float(self.steps), dt=1.0, max_rate=1000.0, encoding=self.encoding, reset=self.reset, seed=12345, batch_size=BATCH
        )


def check_supported(graph: Graph) -> None:
    """Refuse merges: calibrating a chain needs one input per layer."""
    for n in graph.nodes:
        if n.op not in SUPPORTED:
            raise UnsupportedError(
                f"normalizer 'calibration' handles chains of {', '.join(SUPPORTED)} layers, not {n.op} (layer {n.label()}); use data-based"
            )


def _stepper(graph: Graph, cfg: SimConfig):
    """The fast engine's batch stepper when it runs this graph, else the NumPy reference's (same spikes)."""
    from snnbalance.simulate import numpy_ref

    try:
        from snnbalance.simulate.engines import make_stepper

        return make_stepper(graph, cfg)[0]
    except Exception:  # no compiler, no torch: the reference defines the same spikes
        return numpy_ref.step_batch


def spike_rates(graph: Graph, x: np.ndarray, cfg: SimConfig) -> dict[str, np.ndarray]:
    """Per spiking layer, each neuron's spikes per step averaged over the samples (layer's shape)."""
    step = _stepper(graph, cfg)
    totals: dict[str, np.ndarray] = {}
    for lo in range(0, len(x), BATCH):
        xb = x[lo : lo + BATCH]
        _, tot, _ = step(graph, xb, np.arange(lo, lo + len(xb)), np.zeros(len(xb), np.int64), cfg)
        for k, v in tot.items():
            totals[k] = totals.get(k, 0) + np.asarray(v, np.float64)
    return {k: v / (len(x) * cfg.steps) for k, v in totals.items()}


def channel_mean(a: np.ndarray) -> np.ndarray:
    """Mean per channel (axis 0 of a layer's shape) over every other axis; per neuron for flat layers."""
    return a.reshape(a.shape[0], -1).mean(axis=1) if a.ndim > 1 else a


def calibrate(balanced: Graph, x: np.ndarray, s: Settings) -> Graph:
    """Correct ``balanced`` layer by layer; return the corrected copy.

    Args:
        balanced: what the base normalizer produced (its ANN view is the imported ANN up to the
            balancing factors, so it supplies the targets); not modified.
        x: calibration inputs; the first ``s.samples`` are used.
        s: the settings.
    """
    out = balanced.copy()
    for n in out.neuron_nodes():
        n.v_init = float(s.v_init)
    x = np.asarray(x[: s.samples], np.float32).reshape(-1, *out.input_shape)
    acts = out.forward(x, keep=True)  # the ANN's activations in the balanced units
    target = {
        n.name: channel_mean(np.clip(acts[n.name] / n.threshold, 0.0, 1.0).mean(axis=0)) for n in out.neuron_nodes() if n.op != "maxpool2d"
    }
    cfg = s.sim()
    for n in out.neuron_nodes():
        if n.op == "maxpool2d" or (s.mode == "bias" and n.op not in WEIGHTED):
            continue
        err = target[n.name] - channel_mean(spike_rates(out, x, cfg)[n.name])
        if s.mode == "bias":
            shift = (np.float32(n.threshold) * err).astype(np.float32)
            shape = (len(shift),) + (1,) * (n.bias.ndim - 1 if n.bias is not None else 0)
            base = n.bias if n.bias is not None else np.zeros(len(shift), np.float32)
            n.bias = (base + shift.reshape(shape)).astype(np.float32)
        else:
            n.v_init = float(np.clip(n.v_init + s.steps * float(err.mean()), -1.0, 0.99))
    return out
