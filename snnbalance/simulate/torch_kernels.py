"""The torch engine of the ``spikingjelly`` back end: any torch device, CUDA in particular.

Time is simulated in chunks of ``K`` steps, node by node in the graph's order: each weighted
layer's synaptic input for the whole chunk is one large matrix product (or convolution) over
``K * B`` rows, then SpikingJelly's multi-step IF neuron
(:class:`spikingjelly.activation_based.neuron.IFNode`, ``step_mode="m"``; SpikingJelly's
CUDA/Triton kernel on a GPU) integrates it step by step. IFNode fires when ``V >= threshold`` and
resets to ``v_reset`` (0) or subtracts the threshold (``v_reset=None``), exactly as the NumPy
reference. With a refractory period, which IFNode lacks, the same update is written here in torch
ops (``neuron=torch`` always uses them; ``neuron=triton``: :mod:`.triton_kernels`).

Every graph kind runs (:data:`SUPPORTED_KINDS`), with the reference's semantics
(:mod:`.numpy_ref`):

* synaptic-only weighted layers (:meth:`Graph.is_linear`) pass on their current ``W·s + b``;
* an ``add`` is an IF layer whose current is ``term0 * scale0 + term1 * scale1 + ...`` in float32,
  in input order (a scale of 1 multiplies nothing), a term being a synaptic-only current or spikes;
* ``concat`` joins spike tensors on the channel axis; ``flatten`` reshapes;
* ``maxpool2d`` is a gate (:class:`MaxPoolGate`): counts of input spikes so far (a cumulative sum
  over the chunk plus the counts carried from before), per window the spike of the input with the
  largest count, ties to the first in row-major order (``torch.argmax``), padding never wins;
* average pooling counts padded zeros; a window of ``k`` positions that is not a power of two is
  summed (exact) and looked up in :func:`snnbalance.ops.avgpool_table` (the reference's float32
  mean); per-position biases broadcast; asymmetric padding is applied with ``F.pad`` first.

Under ``current`` encoding, every node whose value is the same at every step (the input, and
flatten, concat and synaptic-only layers of it) and the current of every IF layer that reads only
such nodes are computed once per batch in NumPy, exactly as the reference computes them.

Input spikes are made on the device from the counter hash of :mod:`.encoding`
(:mod:`.torch_hash`), bit-identical to :class:`~snnbalance.simulate.encoding.PoissonSource`.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import SnnBalanceError
from ..graph import INPUT, OPS, Graph, apply, bias_term
from ..graph_ops import is_asymmetric, pads4
from ..ops import avgpool_table
from . import encoding
from .core import initial_potential
from .torch_hash import M32, TorchPoisson, fmix32, mul32, pixel_keys, step_keys  # noqa: F401 (re-exported)

#: Graph kinds (:meth:`Graph.kinds`) the torch engine runs, with either neuron kind: all of them.
SUPPORTED_KINDS = (*OPS, "bias-map", "asym-pad")


def check_cuda(device: str) -> None:
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
PRECISIONS = {"fp32": (None, 1), "tf32": ("tf32", 1), "tf32x2": ("tf32", 2), "bf16x2": ("bf16", 2), "bf16x3": ("bf16", 3)}


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
        check_cuda(device)
        if neuron == "sj":
            from ..extras import require

            require("spikingjelly", "neuron=sj")
        if neuron == "triton":
            from .triton_kernels import available

            reason = available()
            if reason:
                raise SnnBalanceError(reason)
        if precision not in PRECISIONS:
            raise SnnBalanceError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        graph.require(SUPPORTED_KINDS, "the torch engine")
        self.graph, self.device = graph, torch.device(device)
        self.shapes = graph.shapes()
        self.precision = precision
        self.fmt, self.parts = PRECISIONS[precision]
        self.tf32 = self.fmt == "tf32"
        self.neuron = neuron
        self.w, self.b, self.split, self.stacked, self.conv_parts, self.tables = {}, {}, {}, {}, {}, {}
        for n in graph.nodes:
            if n.bias is not None:
                self.b[n.name] = torch.from_numpy(np.ascontiguousarray(bias_term(n))).to(self.device)
            if n.op == "avgpool2d" and (n.kernel[0] * n.kernel[1]) & (n.kernel[0] * n.kernel[1] - 1):
                self.tables[n.name] = torch.from_numpy(avgpool_table(tuple(n.kernel))).to(self.device)
            if n.weight is None:
                continue
            self.w[n.name] = torch.from_numpy(n.weight.astype(np.float32)).to(self.device)
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
        pooling layer (which counts its window's spikes itself); float32 otherwise (and for every
        node that is not a weighted or average-pooling layer: adds, concats, max-pool gates).
        """
        if n.name in self.stacked:
            return torch.bfloat16, self.parts
        if n.name in self.conv_parts:
            return torch.bfloat16, 1
        if self.neuron == "triton" and n.op == "avgpool2d":  # counted in the neuron kernel
            return torch.uint8, 1
        return torch.float32, 1

    def current(self, n, s: torch.Tensor, binary: bool = True) -> torch.Tensor:
        """Synaptic input of weighted or average-pooling node ``n`` (bias excluded) for a
        (rows, ...) batch of its input; ``binary``: the input holds 0/1 spikes only."""
        parts = self.split.get(n.name)
        if n.name in self.stacked and s.shape[-1] == self.stacked[n.name].shape[0]:
            return _mm_f32(s.to(torch.bfloat16), self.stacked[n.name])  # [s, s] @ [lo; hi]
        if n.op == "dense" and parts is not None and self.fmt == "bf16" and binary:
            sb = s.to(torch.bfloat16)  # 0/1: exact in bf16
            out = None
            for p in reversed(parts):  # smallest part first: less rounding in the sum
                out = _mm_f32(sb, p) if out is None else out + _mm_f32(sb, p)
            return out
        if n.op == "dense":
            s = s.float()
            out = None
            for w in reversed(parts) if parts is not None else [self.w[n.name]]:
                y = F.linear(s, w if w.dtype == torch.float32 else w.t().float())
                out = y if out is None else out + y
            return out
        k = n.weight.shape[2:] if n.op == "conv2d" else n.kernel
        s, pad = _padded(s, n.padding, k, n.op == "avgpool2d")
        if n.name in self.conv_parts and binary:
            from .triton_kernels import conv2d_split

            return conv2d_split(s, self.conv_parts[n.name], k, n.stride, pad)
        s = s.float()
        if n.op == "conv2d":
            out = None
            for w in reversed(parts) if parts is not None else [self.w[n.name]]:
                y = F.conv2d(s, w, stride=n.stride, padding=pad)
                out = y if out is None else out + y
            return out
        if n.name in self.tables and binary:  # exact window sums, then the reference's float32 mean
            ones = F.avg_pool2d(s, n.kernel, n.stride, pad, count_include_pad=True, divisor_override=1)
            return self.tables[n.name][ones.to(torch.int64)]
        return F.avg_pool2d(s, n.kernel, n.stride, pad, count_include_pad=True)


def _padded(s: torch.Tensor, padding, kernel, pool: bool) -> tuple[torch.Tensor, tuple[int, int]]:
    """``s`` and the symmetric padding to give the torch op: an asymmetric padding (or one torch's
    pooling refuses, over half the window) is applied here, with zeros."""
    t, left, b, r = pads4(padding)
    if not is_asymmetric(padding) and not (pool and (2 * t > kernel[0] or 2 * left > kernel[1])):
        return s, (t, left)
    return F.pad(s, (left, r, t, b)), (0, 0)


class MaxPoolGate:
    """The spiking max pool of node ``n`` over chunks (see :func:`snnbalance.ops.maxpool_gate`).

    Counts are float32, as the reference's (exact integers for spikes). For 0/1 spikes the counts
    of a chunk are one cumulative sum; for other inputs (a constant current) they are added step by
    step, as the reference adds them.
    """

    def __init__(self, n, in_shape, b: int, device):
        c, h, w = in_shape
        (kh, kw), (sh, sw) = n.kernel, n.stride
        self.pad = pads4(n.padding)  # top, left, bottom, right
        t, left, bo, r = self.pad
        wp = w + left + r
        oh, ow = (h + t + bo - kh) // sh + 1, (w + left + r - kw) // sw + 1
        self.kernel, self.stride, self.out_shape = (kh, kw), (sh, sw), (c, oh, ow)
        self.counts = torch.zeros((b, c, h, w), dtype=torch.float32, device=device)
        self.totals = torch.zeros(self.out_shape, dtype=torch.int64, device=device)
        # flat index in the padded (hp, wp) plane of each window's top-left corner, and of each
        # position of a window relative to it (row-major: argmax's first maximum is the reference's)
        base = (torch.arange(oh, device=device) * sh)[:, None] * wp + (torch.arange(ow, device=device) * sw)[None, :]
        self.base = base.reshape(-1)
        self.offsets = ((torch.arange(kh, device=device) * wp)[:, None] + torch.arange(kw, device=device)[None, :]).reshape(-1)

    def __call__(self, s: torch.Tensor, binary: bool) -> torch.Tensor:
        """The gate's output (k, B, C, H', W') float32 for input ``s`` (k, B, C, H, W)."""
        k, b, c = s.shape[:3]
        s = s.float()
        if binary:
            cum = s.cumsum(dim=0).add_(self.counts)
        else:
            cum, run = torch.empty_like(s), self.counts
            for i in range(k):
                run = run + s[i]
                cum[i] = run
        self.counts = cum[-1].clone()
        t, left, bo, r = self.pad
        (kh, kw), (sh, sw) = self.kernel, self.stride
        win = F.pad(cum, (left, r, t, bo), value=-1.0).unfold(3, kh, sh).unfold(4, kw, sw)
        del cum
        pick = win.reshape(*win.shape[:5], kh * kw).argmax(dim=5)  # (k, B, C, H', W')
        del win
        idx = (self.base.reshape(self.out_shape[1:]) + self.offsets[pick]).reshape(k, b, c, -1)
        del pick
        sp = F.pad(s, (left, r, t, bo)).reshape(k, b, c, -1)
        out = sp.gather(3, idx).reshape(k, b, *self.out_shape)
        if binary:
            self.totals += out.sum(dim=(0, 1), dtype=torch.int64)
        else:  # as the reference: per step, the batch's float32 sum truncated to an integer
            for i in range(k):
                self.totals += out[i].sum(dim=0).to(torch.int64)
        return out

    def total(self) -> torch.Tensor:
        """Spikes per gate output so far, summed over the batch."""
        return self.totals


class IFLayer:
    """IF neurons of one layer over chunks: SpikingJelly's IFNode, or torch ops with refractoriness."""

    def __init__(
        self,
        shape,
        b: int,
        threshold: float,
        reset: str,
        refr_steps: int,
        device,
        use_sj: bool,
        bias: torch.Tensor | None = None,
        v0: float = 0.0,
    ):
        self.thr = float(np.float32(threshold))
        self.reset, self.refr_steps = reset, refr_steps
        self.bias = bias
        self.counts = torch.zeros(shape, dtype=torch.int64, device=device)
        self.node = None
        if use_sj and refr_steps == 0:
            from spikingjelly.activation_based import neuron

            self.node = neuron.IFNode(v_threshold=self.thr, v_reset=0.0 if reset == "zero" else None, step_mode="m")
            self.node.v = torch.full((b, *shape), v0, dtype=torch.float32, device=device)
        else:
            self.v = torch.full((b, *shape), v0, dtype=torch.float32, device=device)
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
    """Steps per chunk so that one chunk's tensors stay within ``budget_bytes``.

    Per step and sample, in float32 words: the input's hash (int64 keys and thresholds), and for
    every node its current, spikes and a cast of them (as if all were alive at once; each value
    is freed after its last reader); a max-pool gate adds its counts, the padded windows, the
    int64 picks and indices; an add or concat the terms it sums or joins. Never fewer than one
    step: a batch whose one step exceeds the budget takes what one step needs (measured: SpikingJelly's
    ResNet-18 shape on 3x32x32 at B = 64 gets K = 1 from 512 MiB and adds 0.36 GiB to the process).
    """
    shapes = graph.shapes()

    def size(name: str) -> int:
        return int(np.prod(shapes[name]))

    words = 9 * size(INPUT)
    for n in graph.nodes:
        if n.op == "flatten":
            continue
        words += 4 * size(n.name)
        if n.op == "maxpool2d":
            words += 4 * size(n.inputs[0]) + (n.kernel[0] * n.kernel[1] + 4) * size(n.name)
        elif n.op in ("add", "concat"):
            words += sum(size(i) for i in n.inputs)
    per_step = b * 4 * words
    return int(max(1, min(steps, budget_bytes // max(per_step, 1), 1024)))


def _formats(net: TorchNet) -> dict:
    """Node name -> (dtype, copies) of the spikes it writes (:attr:`TorchNet.formats`): what its
    readers take best when they all agree, float32 otherwise. Flattens are looked through (they
    only reshape); adds, concats and max-pool gates take float32."""
    graph, wants = net.graph, {}
    by_name = {n.name: n for n in graph.nodes}
    for n in graph.nodes:
        if n.op == "flatten":
            continue
        want = net.input_format(n) if n.op in ("dense", "conv2d", "avgpool2d") else (torch.float32, 1)
        for src in n.inputs:
            while src in by_name and by_name[src].op == "flatten":
                src = by_name[src].inputs[0]
            wants.setdefault(src, set()).add(want)
    return {src: w.pop() if len(w) == 1 else (torch.float32, 1) for src, w in wants.items()}


def _constants(graph: Graph, x: np.ndarray, cfg) -> tuple[dict, dict]:
    """Under ``current`` encoding: the values (B, ...) of the nodes that are the same every step
    (the input; flatten, concat and synaptic-only layers of such values), and the currents (bias
    included) of the IF layers that read only such values, in NumPy as the reference computes them.

    A max-pool gate of the input current is not constant (its counts grow); it is stepped.
    """
    vals = {INPUT: encoding.CurrentSource(x, cfg.max_rate, cfg.dt).step(0)}
    currents = {}
    for n in graph.nodes:
        if n.op == "maxpool2d" or not all(i in vals for i in n.inputs):
            continue
        value = apply(n, *(vals[i] for i in n.inputs))
        if n.bias is not None:
            value = value + bias_term(n)
        if graph.is_neuron(n):
            currents[n.name] = value
        else:
            vals[n.name] = value
    return vals, currents


def _binary(graph: Graph, poisson: bool) -> dict:
    """Node name -> whether its value holds 0/1 spikes only (else currents)."""
    binary = {INPUT: poisson}
    for n in graph.nodes:
        if n.op in ("flatten", "concat", "maxpool2d"):
            binary[n.name] = all(binary[i] for i in n.inputs)
        else:
            binary[n.name] = not graph.is_linear(n)
    return binary


def _layers(net: TorchNet, b: int, cfg, const: dict, binary: dict) -> dict:
    """The IF layer of every spiking node (each writing the spikes its readers take) and the gate of
    every max-pool node."""
    graph, dev, formats = net.graph, net.device, net.formats
    layers = {}
    for n in graph.neuron_nodes():
        if cfg.membrane_readout and n is graph.output:
            continue  # no neurons: its current is integrated by the read-out (_step_batch)
        if n.op == "maxpool2d":
            layers[n.name] = MaxPoolGate(n, net.shapes[n.inputs[0]], b, dev)
            continue
        bias = None if n.name in const else net.b.get(n.name)  # a constant current includes it
        if net.neuron == "triton":
            from .triton_kernels import TritonIF

            dtype, copies = formats.get(n.name, (torch.float32, 1))
            pool = None
            if n.op == "avgpool2d" and n.name not in const and binary[n.inputs[0]]:  # pools its input's spikes
                pool = (n.kernel, n.stride, pads4(n.padding)[:2], net.shapes[n.inputs[0]])
            layers[n.name] = TritonIF(
                net.shapes[n.name],
                b,
                n.threshold,
                cfg.reset,
                cfg.refractory_steps,
                dev,
                bias,
                dtype,
                copies,
                pool,
                v0=float(initial_potential(n, cfg)),
            )
        else:
            layers[n.name] = IFLayer(
                net.shapes[n.name],
                b,
                n.threshold,
                cfg.reset,
                cfg.refractory_steps,
                dev,
                net.neuron == "sj",
                bias,
                v0=float(initial_potential(n, cfg)),
            )
    return layers


def _add(n, terms: list[torch.Tensor]) -> torch.Tensor:
    """The current of add node ``n``: as :func:`snnbalance.graph.apply`, in float32 and input order."""
    out = None
    for s, term in zip(n.input_scales(), terms):
        term = term.float()
        term = term * s if s != 1.0 else term
        out = term if out is None else out + term
    return out


def step_batch(net: TorchNet, x: np.ndarray, index: np.ndarray, y: np.ndarray, cfg, chunk: int):
    """One batch; same return value as :func:`snnbalance.simulate.numpy_ref.step_batch`.

    tf32 products are allowed for ``net``'s precision during the batch only (:func:`tf32_scope`;
    the flags act on CUDA, and are scoped the same way on every device).
    """
    with tf32_scope(net.tf32):
        return _step_batch(net, x, index, y, cfg, chunk)


def _inputs(net: TorchNet, x: np.ndarray, index: np.ndarray, cfg) -> tuple[Any, dict, dict]:
    """What feeds the network: a Poisson spike source (None with current input), and for current
    input the values and currents that are the same every step (computed once, in NumPy, as the
    reference does), on the device."""
    if cfg.encoding == "poisson":
        if net.neuron == "triton":
            from .triton_kernels import TritonPoisson as Source
        else:
            Source = TorchPoisson
        return Source(x, index, cfg.seed, cfg.max_rate, cfg.dt, net.device), {}, {}
    fixed, const = _constants(net.graph, x, cfg)

    def on_device(arrays: dict) -> dict:
        return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)).to(net.device) for k, v in arrays.items()}

    return None, on_device(fixed), on_device(const)


def _node_output(net: TorchNet, n, ins: list, layer, const: dict, binary: dict, k: int, b: int):
    """Node ``n``'s output for ``k`` steps of ``b`` samples, from its inputs' (steps first)."""
    if n.op == "flatten":
        return ins[0].reshape(k, b, -1)
    if n.op == "concat":
        return torch.cat([v.float() for v in ins], dim=2)
    if n.op == "maxpool2d":
        return layer(ins[0], binary[n.inputs[0]])
    if n.name in const:
        cur = const[n.name].expand(k, *const[n.name].shape)
    elif getattr(layer, "pool", None) is not None:
        cur = ins[0]  # the layer pools these spikes itself
    elif n.op == "add":
        cur = _add(n, ins)
    else:
        s = ins[0]
        cur = net.current(n, s.reshape(k * b, *s.shape[2:]), binary[n.inputs[0]])
        cur = cur.reshape(k, b, *cur.shape[1:])
    if layer is None:  # synaptic only (its current, bias included, flows into an add), or the read-out's
        return cur + net.b[n.name] if n.name in net.b and n.name not in const else cur
    return layer(cur)


def _step_batch(net: TorchNet, x: np.ndarray, index: np.ndarray, y: np.ndarray, cfg, chunk: int):
    graph, dev, shapes = net.graph, net.device, net.shapes
    b = len(x)
    x = x.reshape(b, *shapes[INPUT])
    membrane = cfg.membrane_readout
    counts = torch.zeros((b, shapes[graph.output.name][0]), dtype=torch.float32 if membrane else torch.int32, device=dev)
    correct = torch.zeros(cfg.steps, dtype=torch.int64, device=dev)
    labels = torch.from_numpy(np.asarray(y, dtype=np.int64)).to(dev)
    poisson = cfg.encoding == "poisson"
    source, fixed, const = _inputs(net, x, index, cfg)
    in_dtype, in_copies = net.formats.get(INPUT, (torch.float32, 1))
    binary = _binary(graph, poisson)
    layers = _layers(net, b, cfg, const, binary)
    nodes = [n for n in graph.nodes if n.name not in fixed]
    last_use = {i: k for k, n in enumerate(nodes) for i in n.inputs}
    with torch.no_grad():
        for t0 in range(0, cfg.steps, chunk):
            k = min(chunk, cfg.steps - t0)
            vals = {name: v.expand(k, *v.shape) for name, v in fixed.items()}
            if source is not None:
                vals[INPUT] = source.chunk(t0, k, in_dtype, in_copies)
            for j, n in enumerate(nodes):
                vals[n.name] = _node_output(net, n, [vals[i] for i in n.inputs], layers.get(n.name), const, binary, k, b)
                for i in n.inputs:  # free what no later node reads
                    if last_use[i] == j and i != graph.output.name:
                        vals.pop(i, None)
            if membrane:  # V += I step by step, in float32 as the reference adds (no scan's reordering)
                out, run = vals[graph.output.name].float(), []
                for s in range(k):
                    counts = counts + out[s]
                    run.append(counts)
                run = torch.stack(run)
            else:
                run = counts[None] + vals[graph.output.name].to(torch.int32).cumsum(dim=0)
                counts = run[-1]
            correct[t0 : t0 + k] = (run.argmax(dim=2) == labels[None]).sum(dim=1)  # ties: the first
            del vals
    totals = {INPUT: source.total() if source is not None else torch.zeros(shapes[INPUT], dtype=torch.int64)}
    totals.update((k, v.total()) for k, v in layers.items())
    if membrane:  # the read-out's output layer spikes never
        totals[graph.output.name] = torch.zeros(shapes[graph.output.name], dtype=torch.int64)
    return (
        correct.cpu().numpy(),
        {k: v.cpu().numpy() for k, v in totals.items()},
        counts.cpu().numpy().astype(np.float32 if membrane else np.int32),
    )
