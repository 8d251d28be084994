"""NumPy kernels for the layer kinds of :mod:`snnbalance.graph`.

The ANN forward pass, calibration and the NumPy reference simulator all call these, so the
analog network and the spiking one see exactly the same synaptic arithmetic.
"""

from __future__ import annotations

import numpy as np


def _windows(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int], fill: float = 0) -> np.ndarray:
    """View of ``x`` (B, C, H, W) as (B, C, H', W', kh, kw) patches; padding holds ``fill``."""
    ph, pw = padding
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    win = np.lib.stride_tricks.sliding_window_view(x, kernel, axis=(2, 3))
    return win[:, :, :: stride[0], :: stride[1]]


def conv2d(x: np.ndarray, weight: np.ndarray, stride: tuple[int, int], padding: tuple[int, int]) -> np.ndarray:
    """Cross-correlation as in ``torch.nn.functional.conv2d`` (no bias).

    Args:
        x: input (B, C, H, W).
        weight: (O, C, kh, kw).
    Returns:
        (B, O, H', W') in the dtype of ``x``.
    """
    win = _windows(x, weight.shape[2:], stride, padding)
    out = np.tensordot(win, weight.astype(x.dtype, copy=False), axes=([1, 4, 5], [1, 2, 3]))
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def avgpool2d(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int]) -> np.ndarray:
    """Average pooling that counts padded zeros, as ``count_include_pad=True``."""
    win = _windows(x, kernel, stride, padding)
    return win.mean(axis=(4, 5), dtype=x.dtype)


def avgpool_table(kernel: tuple[int, int]) -> np.ndarray:
    """float32 (kh*kw + 1,): :func:`avgpool2d`'s value of a window holding ``c`` ones, for each ``c``.

    Spiking pooling layers read 0/1 spikes, so their input is always one of these values; fast
    engines look them up instead of dividing, and so get the reference's float32 value exactly.
    """
    kk = kernel[0] * kernel[1]
    ones = (np.arange(kk)[None, :] < np.arange(kk + 1)[:, None]).astype(np.float32)
    return np.ascontiguousarray(avgpool2d(ones.reshape(kk + 1, 1, *kernel), kernel, kernel, (0, 0)).reshape(-1))


def maxpool2d(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int]) -> np.ndarray:
    """Max pooling as ``torch.nn.functional.max_pool2d`` (padding never wins)."""
    return _windows(x, kernel, stride, padding, -np.inf).max(axis=(4, 5))


def maxpool_gate(
    counts: np.ndarray, spikes: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int]
) -> np.ndarray:
    """The spiking max pool: each window passes on the spikes of its input with the most spikes so far.

    Args:
        counts: accumulated input spike counts (B, C, H, W), this step's spikes included.
        spikes: this step's input spikes (B, C, H, W).
    Returns:
        (B, C, H', W'): per window, ``spikes`` at the position of the largest count (ties: the
        first position in row-major window order; padding never wins).
    """
    win = _windows(counts, kernel, stride, padding, -1)
    b, c, oh, ow, kh, kw = win.shape
    pick = win.reshape(b, c, oh, ow, kh * kw).argmax(axis=4)
    return np.take_along_axis(_windows(spikes, kernel, stride, padding).reshape(b, c, oh, ow, kh * kw), pick[..., None], axis=4)[..., 0]


def dense(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``x @ weight.T`` for weight (out, in)."""
    return x @ weight.T.astype(x.dtype, copy=False)


def coverage(in_hw: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int]) -> np.ndarray:
    """How many output windows read each input position (H, W): the spatial fan-out."""
    h, w = in_hw
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    counts = np.zeros((h + 2 * ph, w + 2 * pw), dtype=np.int64)
    out_h = (h + 2 * ph - kh) // sh + 1
    out_w = (w + 2 * pw - kw) // sw + 1
    for i in range(out_h):
        for j in range(out_w):
            counts[i * sh : i * sh + kh, j * sw : j * sw + kw] += 1
    return counts[ph : ph + h, pw : pw + w]
