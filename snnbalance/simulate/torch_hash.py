"""The input hash of :mod:`.encoding` in torch arithmetic, for the torch and triton engines.

Both engines make their input spikes on the device from the same counter hash; this module holds
the torch twin of it, so that :mod:`.torch_kernels` and :mod:`.triton_kernels` each import it
instead of each other. Values are uint32 held in int64 tensors, and every product is kept below
2**63, so the arithmetic is exact on CPU and CUDA alike and bit-identical to
:class:`~snnbalance.simulate.encoding.PoissonSource`.
"""

from __future__ import annotations

import numpy as np
import torch

from . import encoding

M32 = 0xFFFFFFFF


def mul32(h: torch.Tensor, c: int) -> torch.Tensor:
    """``(h * c) mod 2**32`` for int64 ``h`` in [0, 2**32) without int64 overflow."""
    lo, hi = c & 0xFFFF, (c >> 16) & 0xFFFF
    return (h * lo + (((h * hi) & 0xFFFF) << 16)) & M32


def fmix32(h: torch.Tensor) -> torch.Tensor:
    """MurmurHash3's finalizer on int64 tensors holding uint32 values."""
    h = h ^ (h >> 16)
    h = mul32(h, 0x85EBCA6B)
    h = h ^ (h >> 13)
    h = mul32(h, 0xC2B2AE35)
    return h ^ (h >> 16)


def pixel_keys(seed: int, sample_index: torch.Tensor, n_pixels: int) -> torch.Tensor:
    """Torch twin of :func:`encoding.pixel_keys`: int64 (B, n_pixels) holding uint32 keys."""
    dev = sample_index.device
    s = fmix32(torch.tensor([(seed ^ (seed >> 32)) & M32], dtype=torch.int64, device=dev))
    a = fmix32((mul32(sample_index.to(torch.int64) & M32, encoding.C_SAMPLE) + s) & M32)
    j = mul32(torch.arange(n_pixels, dtype=torch.int64, device=dev), encoding.C_PIXEL)
    return fmix32(a[:, None] ^ j[None, :])


def step_keys(t0: int, k: int, device) -> torch.Tensor:
    """The step keys of steps ``t0 .. t0+k-1`` (int64 holding uint32)."""
    return torch.tensor([(t * encoding.C_STEP + encoding.C_STEP_ADD) & M32 for t in range(t0, t0 + k)], dtype=torch.int64, device=device)


class TorchPoisson:
    """Input spikes of one batch for chunks of steps, made on the device.

    Only pixels whose spike threshold is positive are hashed; the integer thresholds come from
    :func:`encoding.thresholds` (computed once per batch in NumPy, as the reference does).
    """

    def __init__(self, x: np.ndarray, index: np.ndarray, seed: int, max_rate: float, dt: float, device):
        b = len(x)
        self.shape = x.shape
        thr = encoding.thresholds(encoding.spike_probability(x.reshape(b, -1), max_rate, dt))
        active = np.flatnonzero(thr > 0)
        self.device = device
        self.active = torch.from_numpy(active).to(device)
        self.thr = torch.from_numpy(thr.reshape(-1)[active]).to(device)
        n = thr.shape[1]
        keys = pixel_keys(seed, torch.from_numpy(np.asarray(index, dtype=np.int64)).to(device), n)
        self.keys = keys.reshape(-1)[self.active]
        self.counts = torch.zeros(self.shape[1:], dtype=torch.int64, device=device)

    def chunk(self, t0: int, k: int, dtype=torch.float32, copies: int = 1) -> torch.Tensor:
        """Spikes of steps ``t0 .. t0+k-1`` as (k, B, ...) 0/1 of ``dtype`` (``copies``: 1 only)."""
        out = torch.zeros((k, int(np.prod(self.shape))), dtype=dtype, device=self.device)
        if len(self.active):
            u = fmix32(self.keys[None, :] ^ step_keys(t0, k, self.device)[:, None])
            out[:, self.active] = (u < self.thr).to(dtype)
        out = out.reshape(k, *self.shape)
        self.counts += out.sum(dim=(0, 1), dtype=torch.int64)
        return out

    def total(self) -> torch.Tensor:
        """Spikes per pixel so far, summed over the batch."""
        return self.counts
