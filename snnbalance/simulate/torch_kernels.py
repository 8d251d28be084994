"""The torch path of the ``spikingjelly`` back end: any torch device, CUDA in particular.

Time is simulated in chunks of ``K`` steps, layer by layer: each layer's synaptic input for the
whole chunk is one large matrix product (or convolution) over ``K * B`` rows, then SpikingJelly's
multi-step IF neuron (:class:`spikingjelly.activation_based.neuron.IFNode`, ``step_mode="m"``;
SpikingJelly's CUDA/Triton kernel on a GPU) integrates it step by step. IFNode fires when
``V >= threshold`` and resets to ``v_reset`` (0) or subtracts the threshold (``v_reset=None``),
exactly as the NumPy reference. With a refractory period, which IFNode lacks, the same update is
written here in torch ops.

Input spikes are made on the device from the counter hash of :mod:`.encoding`, in int64 torch
arithmetic (every product kept below 2**63, so it is exact on CPU and CUDA alike), and are
bit-identical to :class:`~snnbalance.simulate.encoding.PoissonSource`.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import SnnBalanceError
from ..graph import INPUT, Graph
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
    return torch.tensor([(t * encoding.C_STEP + encoding.C_STEP_ADD) & M32 for t in range(t0, t0 + k)],
                        dtype=torch.int64, device=device)


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


def _check_cuda(device: str) -> None:
    if device == "cuda" and not torch.cuda.is_available():
        raise SnnBalanceError("CUDA is not available on this machine; use --device cpu")


#: Matrix-product precisions of the torch engine: (number format of the weight parts, parts).
#: A weight ``w`` is stored as a sum of ``parts`` tensors, each exactly representable in that format
#: (``w = hi + lo (+ lo2)``), and every part's product is accumulated in float32. Every weighted
#: layer reads 0/1 spikes (pooling layers spike too), exact in either format, so only the weights
#: lose bits: about 8 per bf16 part and 11 per tf32 part (fp32 keeps 24). bf16 parts apply to dense
#: layers; convolutions run in fp32 (cuDNN's bf16 convolution rounds its output to bf16) except
#: with the triton neurons, whose implicit-GEMM kernel accumulates the bf16 parts in float32
#: (:func:`.triton_kernels.conv2d_split`). tf32 parts apply to dense and convolution layers alike.
PRECISIONS = {"fp32": (None, 1), "tf32": ("tf32", 1), "tf32x2": ("tf32", 2),
              "bf16x2": ("bf16", 2), "bf16x3": ("bf16", 3)}


def round_tf32(w: torch.Tensor) -> torch.Tensor:
    """``w`` (float32) rounded to the nearest value with tf32's 10 mantissa bits (ties away from 0)."""
    i = w.contiguous().view(torch.int32)
    return ((i + 0x1000) & ~0x1FFF).view(torch.float32)


def split_weight(w: torch.Tensor, fmt: str, parts: int) -> list[torch.Tensor]:
    """``w`` as ``parts`` tensors exactly representable in ``fmt`` (largest first), summing to ~``w``.

    Each part is the residual of the ones before it, rounded to ``fmt``; bf16 parts are returned
    as bfloat16, tf32 parts as float32 holding tf32 values.
    """
    out, rest = [], w.float()
    for _ in range(parts):
        part = rest.to(torch.bfloat16) if fmt == "bf16" else round_tf32(rest)
        out.append(part)
        rest = rest - part.float()
    return out


def _mm_f32(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` of two bfloat16 matrices, accumulated and returned in float32."""
    if a.is_cuda:
        return torch.mm(a, b, out_dtype=torch.float32)
    return torch.mm(a.float(), b.float())  # CPU: same values (bf16 embeds exactly in fp32)


@contextmanager
def tf32_scope(enabled: bool) -> Iterator[None]:
    """Let cuBLAS and cuDNN use tf32 tensor cores for float32 products (or forbid it) inside the
    block only: torch's flags are process-wide, so the caller's values come back on leaving it,
    also on an exception."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        torch.backends.cuda.matmul.allow_tf32 = enabled
        torch.backends.cudnn.allow_tf32 = enabled
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


class TorchNet:
    """A graph's weights on a device, and its stepping in chunks of time."""

    def __init__(self, graph: Graph, device: str, precision: str = "fp32", neuron: str = "sj"):
        _check_cuda(device)
        if neuron == "triton":
            from .triton_kernels import available

            reason = available()
            if reason:
                raise SnnBalanceError(reason)
        if precision not in PRECISIONS:
            raise SnnBalanceError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.graph, self.device = graph, torch.device(device)
        self.shapes = graph.shapes()
        self.precision = precision
        self.fmt, self.parts = PRECISIONS[precision]
        self.tf32 = self.fmt == "tf32"
        self.neuron = neuron
        self.w, self.b, self.split, self.stacked, self.conv_parts = {}, {}, {}, {}, {}
        for n in graph.neuron_nodes():
            if n.weight is not None:
                self.w[n.name] = torch.from_numpy(n.weight.astype(np.float32)).to(self.device)
            if n.bias is not None:
                b = torch.from_numpy(n.bias.astype(np.float32)).to(self.device)
                self.b[n.name] = b.reshape(-1, 1, 1) if n.op == "conv2d" else b
            if self.fmt == "bf16" and n.op == "dense":
                # transposed once, so that each step's product is spikes (rows, in) @ (in, out)
                self.split[n.name] = [p.t().contiguous() for p in split_weight(self.w[n.name], "bf16", self.parts)]
                if neuron == "triton":  # its inputs come as `parts` copies side by side: one product
                    self.stacked[n.name] = torch.cat(self.split[n.name][::-1], dim=0)
            elif self.fmt == "bf16" and n.op == "conv2d" and neuron == "triton":
                from .triton_kernels import conv_weight_parts

                self.conv_parts[n.name] = conv_weight_parts(split_weight(self.w[n.name], "bf16", self.parts))
            elif self.fmt == "tf32" and self.parts > 1 and n.op in ("dense", "conv2d"):
                self.split[n.name] = split_weight(self.w[n.name], "tf32", self.parts)
        self.formats = _formats(self)

    def input_format(self, n) -> tuple[torch.dtype, int]:
        """(dtype, copies) in which node ``n`` takes its input spikes best.

        Only the triton neurons write other layouts: bf16 spikes, one copy per weight part, for a
        dense layer with split bf16 weights, bf16 for a convolution with bf16 parts, uint8 for a
        pooling layer (which counts its window's spikes itself); float32 otherwise.
        """
        if n.name in self.stacked:
            return torch.bfloat16, self.parts
        if n.name in self.conv_parts:
            return torch.bfloat16, 1
        if self.neuron == "triton" and n.op == "avgpool2d":  # counted in the neuron kernel
            return torch.uint8, 1
        return torch.float32, 1

    def current(self, n, s: torch.Tensor) -> torch.Tensor:
        """Synaptic input of node ``n`` (bias excluded) for a (rows, ...) batch of spikes."""
        parts = self.split.get(n.name)
        if n.name in self.stacked and s.shape[-1] == self.stacked[n.name].shape[0]:
            return _mm_f32(s.to(torch.bfloat16), self.stacked[n.name])  # [s, s] @ [lo; hi]
        if n.name in self.conv_parts:
            from .triton_kernels import conv2d_split

            return conv2d_split(s, self.conv_parts[n.name], n.weight.shape[2:], n.stride, n.padding)
        if n.op == "dense" and parts is not None and self.fmt == "bf16":
            sb = s.to(torch.bfloat16)  # 0/1: exact in bf16
            out = None
            for p in reversed(parts):  # smallest part first: less rounding in the sum
                out = _mm_f32(sb, p) if out is None else out + _mm_f32(sb, p)
            return out
        s = s.float()
        if n.op in ("dense", "conv2d"):
            out = None
            for w in reversed(parts) if parts is not None else [self.w[n.name]]:
                y = F.linear(s, w) if n.op == "dense" else F.conv2d(s, w, stride=n.stride, padding=n.padding)
                out = y if out is None else out + y
            return out
        return F.avg_pool2d(s, n.kernel, n.stride, n.padding, count_include_pad=True)


class IFLayer:
    """IF neurons of one layer over chunks: SpikingJelly's IFNode, or torch ops with refractoriness."""

    def __init__(self, shape, b: int, threshold: float, reset: str, refr_steps: int, device, use_sj: bool,
                 bias: torch.Tensor | None = None):
        self.thr = float(np.float32(threshold))
        self.reset, self.refr_steps = reset, refr_steps
        self.bias = bias
        self.counts = torch.zeros(shape, dtype=torch.int64, device=device)
        self.node = None
        if use_sj and refr_steps == 0:
            from spikingjelly.activation_based import neuron

            self.node = neuron.IFNode(v_threshold=self.thr, v_reset=0.0 if reset == "zero" else None,
                                      step_mode="m")
            self.node.v = torch.zeros((b, *shape), dtype=torch.float32, device=device)
        else:
            self.v = torch.zeros((b, *shape), dtype=torch.float32, device=device)
            self.r = torch.zeros((b, *shape), dtype=torch.int32, device=device) if refr_steps else None

    def __call__(self, cur: torch.Tensor) -> torch.Tensor:
        """Spikes (k, B, ...) float32 for input currents (k, B, ...) (bias excluded)."""
        if self.bias is not None:
            cur = cur + self.bias
        out = self.node(cur) if self.node is not None else self._step(cur)
        self.counts += out.sum(dim=(0, 1), dtype=torch.int64)  # exact at any K * B
        return out

    def _step(self, cur: torch.Tensor) -> torch.Tensor:
        out = torch.empty(cur.shape, dtype=torch.bool, device=cur.device)
        v, r = self.v, self.r
        for k in range(cur.shape[0]):
            c = cur[k]
            if r is not None:
                blocked = r > 0
                c = c.masked_fill(blocked, 0.0)
                r.sub_(blocked.to(torch.int32))
            v.add_(c)
            s = torch.ge(v, self.thr, out=out[k])
            if r is not None:
                s &= ~blocked
                r.masked_fill_(s, self.refr_steps)
            if self.reset == "zero":
                v.masked_fill_(s, 0.0)
            else:
                v.sub_(s.to(v.dtype), alpha=self.thr)
        return out.to(torch.float32)

    def total(self) -> torch.Tensor:
        """Spikes per neuron so far, summed over the batch."""
        return self.counts


def chunk_steps(graph: Graph, b: int, steps: int, budget_bytes: int) -> int:
    """Steps per chunk so that one chunk's tensors stay within ``budget_bytes``."""
    shapes = graph.shapes()
    per_step = b * 4 * (3 * int(np.prod(shapes[INPUT])) * 3
                        + sum(4 * int(np.prod(shapes[n.name])) for n in graph.nodes))
    return int(max(1, min(steps, budget_bytes // max(per_step, 1), 1024)))


def _formats(net: TorchNet) -> dict:
    """Node name -> (dtype, copies) of the spikes it writes: what its one consumer takes best
    (:attr:`TorchNet.formats`)."""
    graph, fmt = net.graph, {}
    by_name = {n.name: n for n in graph.nodes}
    for n in graph.nodes:
        if n.op == "flatten":
            continue
        src = n.inputs[0]
        while src in by_name and by_name[src].op == "flatten":  # a flatten only reshapes
            src = by_name[src].inputs[0]
        want = net.input_format(n)
        fmt[src] = want if fmt.get(src, want) == want else (torch.float32, 1)  # consumers disagree
    return fmt


def _layers(net: TorchNet, b: int, cfg, const: bool) -> dict:
    """The IF layer of every spiking node, each writing the spikes its consumer takes."""
    graph, dev, formats = net.graph, net.device, net.formats
    first, layers = graph.neuron_nodes()[0], {}
    for n in graph.neuron_nodes():
        # a constant current already includes the first layer's bias
        bias = None if (const and n is first) else net.b.get(n.name)
        if net.neuron == "triton":
            from .triton_kernels import TritonIF

            dtype, copies = formats.get(n.name, (torch.float32, 1))
            pool = None
            if n.op == "avgpool2d" and not (const and n is first):  # pools the spikes of its input
                pool = (n.kernel, n.stride, n.padding, net.shapes[n.inputs[0]])
            layers[n.name] = TritonIF(net.shapes[n.name], b, n.threshold, cfg.reset, cfg.refractory_steps, dev,
                                      bias, dtype, copies, pool)
        else:
            layers[n.name] = IFLayer(net.shapes[n.name], b, n.threshold, cfg.reset, cfg.refractory_steps, dev,
                                     net.neuron == "sj", bias)
    return layers


def step_batch(net: TorchNet, x: np.ndarray, index: np.ndarray, y: np.ndarray, cfg, chunk: int):
    """One batch; same return value as :func:`snnbalance.simulate.numpy_ref.step_batch`.

    tf32 products are allowed for ``net``'s precision during the batch only (:func:`tf32_scope`;
    the flags act on CUDA, and are scoped the same way on every device).
    """
    with tf32_scope(net.tf32):
        return _step_batch(net, x, index, y, cfg, chunk)


def _step_batch(net: TorchNet, x: np.ndarray, index: np.ndarray, y: np.ndarray, cfg, chunk: int):
    graph, dev, shapes = net.graph, net.device, net.shapes
    b = len(x)
    x = x.reshape(b, *shapes[INPUT])
    neurons = graph.neuron_nodes()
    counts = torch.zeros((b, shapes[graph.output.name][0]), dtype=torch.int32, device=dev)
    correct = torch.zeros(cfg.steps, dtype=torch.int64, device=dev)
    labels = torch.from_numpy(np.asarray(y, dtype=np.int64)).to(dev)
    first, const, source = neurons[0], None, None
    if cfg.encoding == "poisson":
        if net.neuron == "triton":
            from .triton_kernels import TritonPoisson as Source
        else:
            Source = TorchPoisson
        source = Source(x, index, cfg.seed, cfg.max_rate, cfg.dt, dev)
        in_dtype, in_copies = net.formats.get(INPUT, (torch.float32, 1))
    else:
        # a constant current gives the first layer the same input every step: compute it once,
        # in NumPy, exactly as the reference does
        _, cur = encoding.first_layer_current(graph, x, cfg.max_rate, cfg.dt)
        const = torch.from_numpy(np.ascontiguousarray(cur, dtype=np.float32)).to(dev)
    layers = _layers(net, b, cfg, const is not None)
    # with a constant current, nothing before the first spiking layer needs stepping
    nodes = graph.nodes[graph.nodes.index(first):] if const is not None else graph.nodes
    with torch.no_grad():
        for t0 in range(0, cfg.steps, chunk):
            k = min(chunk, cfg.steps - t0)
            vals = {}
            if source is not None:
                vals[INPUT] = source.chunk(t0, k, in_dtype, in_copies)
            for n in nodes:
                if n.op == "flatten":
                    vals[n.name] = vals[n.inputs[0]].reshape(k, b, -1)
                    continue
                if n is first and const is not None:
                    cur = const.expand(k, *const.shape)
                elif getattr(layers[n.name], "pool", None) is not None:
                    cur = vals[n.inputs[0]]  # the layer pools these spikes itself
                else:
                    s = vals[n.inputs[0]]
                    cur = net.current(n, s.reshape(k * b, *s.shape[2:]))
                    cur = cur.reshape(k, b, *cur.shape[1:])
                vals[n.name] = layers[n.name](cur)
            run = counts[None] + vals[graph.output.name].to(torch.int32).cumsum(dim=0)
            correct[t0: t0 + k] = (run.argmax(dim=2) == labels[None]).sum(dim=1)
            counts = run[-1]
    totals = {INPUT: source.total() if source is not None else torch.zeros(shapes[INPUT], dtype=torch.int64)}
    totals.update((k, v.total()) for k, v in layers.items())
    return (correct.cpu().numpy(), {k: v.cpu().numpy() for k, v in totals.items()},
            counts.cpu().numpy().astype(np.int32))
