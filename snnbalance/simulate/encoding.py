"""Input encoding shared by every back end.

Poisson spikes come from a counter-based hash, not from a stateful generator: whether pixel ``j``
of sample ``i`` spikes at step ``t`` depends only on ``(seed, i, j, t)``::

    u = fmix32(fmix32(fmix32(fmix32(seed) + i * 0x9E3779B1) ^ j * 0x85EBCA77) ^ (t * 0xC2B2AE3D + 0x27D4EB2F))
    spike  <=>  u < floor(p * 2**32),   p = min(1, pixel * max_rate * dt / 1000)

(all arithmetic modulo 2**32; ``fmix32`` is MurmurHash3's finalizer). So the spike trains are the
same whatever the batch size, the order of samples, the back end or the device, and every
normalizer of one run sees exactly the same input spikes. Pixels with ``p = 0`` never spike and
are skipped; ``p = 1`` spikes every step.
"""

from __future__ import annotations

import numpy as np

M32 = 0xFFFFFFFF
C_SAMPLE, C_PIXEL, C_STEP, C_STEP_ADD = 0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D, 0x27D4EB2F


def fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer on a uint32 array (wrapping arithmetic)."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def _u32(v: int) -> np.uint32:
    return np.uint32(v & M32)


def pixel_keys(seed: int, sample_index: np.ndarray, n_pixels: int) -> np.ndarray:
    """Per (sample, pixel) hash keys, uint32 (B, n_pixels)."""
    with np.errstate(over="ignore"):
        s = fmix32(np.array([_u32(seed ^ (seed >> 32))], dtype=np.uint32))[0]
        a = fmix32(np.asarray(sample_index, dtype=np.uint64).astype(np.uint32) * _u32(C_SAMPLE) + s)
        j = np.arange(n_pixels, dtype=np.uint32) * _u32(C_PIXEL)
        return fmix32(a[:, None] ^ j[None, :])


def step_key(t: int) -> np.uint32:
    return _u32(t * C_STEP + C_STEP_ADD)


def spike_probability(x: np.ndarray, max_rate: float, dt: float) -> np.ndarray:
    """Per-step spike probability of each pixel, float64 in [0, 1]."""
    return np.clip(np.asarray(x, dtype=np.float64) * (max_rate * dt / 1000.0), 0.0, 1.0)


def thresholds(p: np.ndarray) -> np.ndarray:
    """Integer comparison thresholds ``floor(p * 2**32)`` as int64 (2**32 means always)."""
    return np.floor(p * 2.0**32).astype(np.int64)


class PoissonSource:
    """Spike trains of one batch, step by step, touching only pixels that can spike."""

    def __init__(self, x: np.ndarray, sample_index: np.ndarray, seed: int, max_rate: float, dt: float):
        b = len(x)
        self.shape = x.shape
        thr = thresholds(spike_probability(x.reshape(b, -1), max_rate, dt))
        self.active = np.flatnonzero(thr > 0)
        self.thr = thr.reshape(-1)[self.active]
        self.keys = pixel_keys(seed, sample_index, thr.shape[1]).reshape(-1)[self.active]

    def step(self, t: int) -> np.ndarray:
        """Input spikes at step ``t`` as float32 0/1 of the batch's shape."""
        with np.errstate(over="ignore"):
            u = fmix32(self.keys ^ step_key(t)).astype(np.int64)
        out = np.zeros(int(np.prod(self.shape)), dtype=np.float32)
        out[self.active] = u < self.thr
        return out.reshape(self.shape)


class CurrentSource:
    """Constant input current ``min(1, pixel * max_rate * dt / 1000)`` every step."""

    def __init__(self, x: np.ndarray, max_rate: float, dt: float):
        self.current = spike_probability(x, max_rate, dt).astype(np.float32)

    def step(self, t: int) -> np.ndarray:
        return self.current


def first_layer_current(graph, x: np.ndarray, max_rate: float, dt: float):
    """Under ``current`` encoding the first spiking layer gets the same input every step.

    Returns:
        ``(node, current)``: the first spiking node and its per-step input (bias included),
        computed in NumPy exactly as the reference computes it.
    """
    from ..graph import INPUT, apply

    vals = {INPUT: CurrentSource(x, max_rate, dt).step(0)}
    for n in graph.nodes:
        if n.op == "flatten":
            vals[n.name] = vals[n.inputs[0]].reshape(len(x), -1)
            continue
        cur = apply(n, vals[n.inputs[0]])
        if n.bias is not None:
            cur += (n.bias.reshape(-1, 1, 1) if n.op == "conv2d" else n.bias).astype(np.float32)
        return n, cur
    raise ValueError("the graph has no spiking layer")
