"""Affine maps that a spiking network cannot hold, and how they are folded into weighted layers.

Three things in real networks are per-element affine maps ``y = scale * x + shift``: batch norm,
an input normalization ``(x - mean) / std``, and arithmetic with constants (Keras' ``Rescaling``,
``Sub``/``Div`` at the start of an ONNX graph). IF neurons cannot represent them, so the importer
folds each one into a weighted layer:

- *backward*, into the Linear/Conv that computes ``x`` (``W ← scale·W``, ``b ← scale·b + shift``),
  when that layer has no ReLU yet and nothing else reads its output (a BN right after a conv);
- *forward*, into the next Linear/Conv that reads ``y`` (``W ← W·scale`` per input,
  ``b ← b + W·shift``); a conv with zero padding then gets a per-position bias, because padded
  zeros of ``y`` are not ``shift``. Flatten, and pooling with a per-channel positive map, commute
  with the affine map and are looked through.

Anything else that reads a pending affine map (a ReLU, a residual add) cannot be converted, and the
importer says which map could not be folded and why.

This module also holds the channels-last (NHWC) bookkeeping: the graph is always channels-first,
and a flatten of a channels-last tensor permutes the following dense layer's columns instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import ops
from ..errors import SnnBalanceError, UnsupportedError
from ..graph_ops import padded

INPUT_KIND, LAYER_KIND = "input", "layer"


@dataclass
class Affine:
    """A pending ``y = scale * x + shift``; arrays have the tensor's per-sample shape (graph layout).

    Attributes:
        kind: ``"input"`` for a normalization of the network input, else ``"layer"``.
        what: the source layer(s), for messages, e.g. ``BatchNorm 'bn2'``.
    """

    scale: np.ndarray
    shift: np.ndarray
    kind: str
    what: str

    def then(self, scale: np.ndarray, shift: np.ndarray, what: str) -> Affine:
        """This map followed by ``scale * y + shift``."""
        return Affine(self.scale * scale, self.shift * scale + shift, self.kind, f"{self.what} and {what}")

    def per_channel(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(scale, shift) per channel when both are constant over H, W of a (C, H, W) tensor."""
        if self.scale.ndim != 3:
            return None
        s, c = self.scale[:, :1, :1], self.shift[:, :1, :1]
        if np.array_equal(np.broadcast_to(s, self.scale.shape), self.scale) and np.array_equal(
            np.broadcast_to(c, self.shift.shape), self.shift
        ):
            return s, c
        return None

    def reshaped(self, shape: tuple[int, ...]) -> Affine:
        return Affine(self.scale.reshape(shape), self.shift.reshape(shape), self.kind, self.what)

    def pooled(self, out_shape: tuple[int, ...]) -> Affine:
        """The same per-channel map on a pooled (C, H', W') tensor."""
        pc = self.per_channel()
        assert pc is not None, "only a per-channel map reaches a pooling layer"
        s, c = pc
        return Affine(np.broadcast_to(s, out_shape).copy(), np.broadcast_to(c, out_shape).copy(), self.kind, self.what)

    def error(self, where: str) -> UnsupportedError:
        if self.kind == INPUT_KIND:
            return UnsupportedError(
                f"the network input is normalized ({self.what}) and then read by {where!r}; the normalization can "
                "only be folded into a first Linear/Conv layer (through flatten and pooling), so the spiking input "
                "cannot stay non-negative: train on [0, 1] pixels or start the network with a Linear/Conv layer"
            )
        return UnsupportedError(
            f"{self.what} cannot be folded: it follows a ReLU, pooling or merge, and its output is read by "
            f"{where!r}; only batch norm (or constant arithmetic) directly after Linear/Conv, or read only by "
            "Linear/Conv layers, can be folded"
        )


def full(const, src_shape: tuple[int, ...], where: str) -> np.ndarray:
    """A constant broadcast, as ONNX/NumPy would against a (batch, *src_shape) tensor, to src_shape."""
    c = np.asarray(const, dtype=np.float64)
    if c.ndim > len(src_shape) + 1 or (c.ndim == len(src_shape) + 1 and c.shape[0] != 1):
        raise UnsupportedError(f"layer {where!r} uses a constant of shape {c.shape} that does not broadcast per sample over {src_shape}")
    try:
        return np.broadcast_to(c.reshape(c.shape[1:]) if c.ndim == len(src_shape) + 1 else c, src_shape).copy()
    except ValueError:
        raise UnsupportedError(f"layer {where!r} uses a constant of shape {c.shape} that does not fit {src_shape}") from None


def bn_affine(gamma, beta, mean, var, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (scale, shift) of an inference-mode batch norm."""
    scale = np.asarray(gamma, np.float64) / np.sqrt(np.asarray(var, np.float64) + float(eps))
    return scale, np.asarray(beta, np.float64) - np.asarray(mean, np.float64) * scale


def nhwc_perm(c: int, h: int, w: int) -> np.ndarray | None:
    """Index map of a channels-last flatten: source feature k is channels-first feature perm[k].

    None when it is the identity (a single channel).
    """
    if c == 1:
        return None
    return np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).reshape(-1)


# -- folding -----------------------------------------------------------------------------------
def fold_into_dense(weight, bias, aff: Affine | None, perm: np.ndarray | None):
    """Weights and bias of a dense layer that reads ``aff(x)`` (source features permuted by ``perm``)."""
    w = np.asarray(weight, np.float64)
    if perm is not None:
        unperm = np.empty_like(w)
        unperm[:, perm] = w
        w = unperm
    b = np.zeros(w.shape[0]) if bias is None else np.asarray(bias, np.float64)
    if aff is not None:
        b = b + w @ aff.shift.reshape(-1)
        w = w * aff.scale.reshape(1, -1)
    elif bias is None:
        return _f32(w), None
    return _f32(w), _f32(b)


def fold_into_conv(weight, bias, aff: Affine, stride, padding, where: str):
    """Weights and bias of a conv that reads ``aff(x)``; the bias is per position where padding needs it."""
    pc = aff.per_channel()
    if pc is None:
        raise UnsupportedError(f"{aff.what} varies over the image and cannot be folded into conv {where!r}")
    s = pc[0].reshape(-1)
    w = np.asarray(weight, np.float64)
    # What shift contributes through the original weights, with the conv's own zero padding.
    x, pad = padded(aff.shift[None], padding)
    bmap = ops.conv2d(x, w, tuple(stride), pad)[0]
    if bias is not None:
        b = np.asarray(bias, np.float64)
        bmap = bmap + (b.reshape(-1, 1, 1) if b.ndim == 1 else b)
    return _f32(w * s.reshape(1, -1, 1, 1)), _f32(collapse(bmap))


def fold_after(op: str, weight, bias, scale: np.ndarray, shift: np.ndarray, where: str):
    """Weights and bias of a layer followed by ``scale * y + shift`` (per output; for conv per channel)."""
    w = np.asarray(weight, np.float64)
    if op == "conv2d":
        s = scale[:, :1, :1]
        if not np.array_equal(np.broadcast_to(s, scale.shape), scale):
            raise UnsupportedError(f"the scale after conv {where!r} varies over the image and cannot be folded")
        b = (
            np.zeros(scale.shape)
            if bias is None
            else np.broadcast_to(np.asarray(bias, np.float64).reshape(-1, 1, 1) if np.ndim(bias) == 1 else bias, scale.shape)
        )
        return _f32(w * s.reshape(-1, 1, 1, 1)), _f32(collapse(b * s + shift))
    b = np.zeros(w.shape[0]) if bias is None else np.asarray(bias, np.float64)
    return _f32(w * scale.reshape(-1, 1)), _f32(b * scale + shift)


def collapse(bmap: np.ndarray) -> np.ndarray:
    """A (C, H, W) bias that is constant per channel as (C,), else unchanged."""
    if bmap.ndim == 3 and np.array_equal(np.broadcast_to(bmap[:, :1, :1], bmap.shape), bmap):
        return bmap[:, 0, 0]
    if bmap.ndim == 3 and np.allclose(bmap, bmap[:, :1, :1], rtol=1e-7, atol=1e-9 * max(1.0, np.abs(bmap).max())):
        return bmap.mean(axis=(1, 2))
    return bmap


def _f32(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32)


# -- input normalization -----------------------------------------------------------------------
def input_affine(mean, std, shape: tuple[int, ...]) -> Affine | None:
    """The map ``(x - mean) / std`` per channel (or per feature of a flat input), or None."""
    if mean is None and std is None:
        return None
    m = np.atleast_1d(np.asarray(0.0 if mean is None else mean, np.float64)).reshape(-1)
    s = np.atleast_1d(np.asarray(1.0 if std is None else std, np.float64)).reshape(-1)
    c = shape[0]
    for name, v in (("mean", m), ("std", s)):
        if v.size not in (1, c):
            raise SnnBalanceError(
                f"input {name} has {v.size} values; the input {shape} has {c} "
                f"{'channels' if len(shape) == 3 else 'features'} (give 1 or {c})"
            )
    if np.any(s == 0) or not np.all(np.isfinite(s)) or not np.all(np.isfinite(m)):
        raise SnnBalanceError("input std must be finite and non-zero")
    per = (-1,) + (1,) * (len(shape) - 1)
    scale = np.broadcast_to((1.0 / s).reshape(per), shape).copy()
    shift = np.broadcast_to((-m / s).reshape(per), shape).copy()
    what = f"mean {_fmt(m)}, std {_fmt(s)}"
    return Affine(scale, shift, INPUT_KIND, what)


def _fmt(v: np.ndarray) -> str:
    return ", ".join(f"{x:g}" for x in v) if v.size <= 4 else f"{v.size} values"


def source_input(mean, std, nhwc: bool, shape: tuple[int, ...] | None = None):
    """The function that maps graph inputs (raw, channels-first) to what the source model reads
    (``shape``: the source's per-sample shape where it differs, e.g. (H, W) without a channel axis)."""
    if mean is None and std is None and not nhwc and shape is None:
        return None

    def to_source(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32)
        if mean is not None or std is not None:
            input_affine(mean, std, x.shape[1:])  # checks the sizes
            per = (-1,) + (1,) * (x.ndim - 2)
            m = np.asarray(0.0 if mean is None else mean, np.float32).reshape(per)
            s = np.asarray(1.0 if std is None else std, np.float32).reshape(per)
            x = (x - m) / s
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if nhwc else x
        return x.reshape(len(x), *shape) if shape is not None else x

    return to_source
