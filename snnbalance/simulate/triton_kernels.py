"""Fused Triton kernels of the torch engine (``neuron=triton``): one pass over memory per layer.

The plain torch path spends most of a GPU step outside the matrix products (docs/performance.md):
the input hash runs as ~30 int64 tensor operations, SpikingJelly's IFNode reads the current after
a separate bias pass, spikes are cast for the next product and summed again for the statistics.
Here each of those is one kernel that keeps its state in registers over a whole chunk of steps:

* :func:`poisson_chunk`: the counter hash of :mod:`.encoding` (uint32 arithmetic, bit-identical
  to :class:`~.encoding.PoissonSource`) compared with the pixel's threshold, written straight in
  the dtype and layout of the first product, with per-pixel spike counts kept in the kernel;
* :func:`if_chunk`: bias add, refractory gate, ``V += I``, ``V >= threshold``, reset to 0 or by
  subtraction, spike write and spike count, for ``K`` steps of a block of neurons: the same float32
  operations in the same order as the torch neurons (``IFLayer`` of :mod:`.torch_kernels`), so the
  same spikes. Every IF layer runs here: dense, conv, average pooling and ``add`` layers, per-channel
  or per-position biases (a bias map is indexed per neuron); an average pooling of spikes, padded
  symmetrically or not, counts its windows inside this kernel;
* :func:`conv2d_split`: a convolution of spikes with bf16 weight parts (``bf16x2``/``bf16x3``).

What is not fused runs through :mod:`.torch_kernels`' torch ops in the same network: max-pool
gates, concats, the currents of synaptic-only layers and of adds, constant currents, convolutions
and dense products in fp32/tf32, asymmetric padding of a convolution (padded before the kernel).
So ``neuron=triton`` runs every graph the NumPy reference runs. This module does not import
:mod:`.torch_kernels` (the hash helpers come from :mod:`.torch_hash`); that one imports this lazily.

Spikes can be written ``copies`` times side by side, ``(K, B, copies * N)``: a dense layer whose
weight is split into bfloat16 parts (``bf16x2``) then needs one product of the stacked parts
``[s, s] @ [lo; hi]`` (float32 accumulation) instead of one product and one float32 add per part.

On CUDA the kernels are compiled by Triton; on the CPU they run in Triton's interpreter (NumPy,
one program after another): slow, but the same kernel source, so the tests check on any machine
what the GPU will run.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import SnnBalanceError
from . import encoding
from .torch_hash import pixel_keys, step_keys

try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - no extra of ours: it comes with torch's CUDA wheels on Linux (extras.py)
    triton = tl = None

#: Neurons (or pixels) per program: one block of a (B * N) layer.
BLOCK_CUDA = 1024
BLOCK_CPU = 16384  # the interpreter's cost is per operation: few, large programs


def available() -> str | None:
    """``None`` if the kernels can run here, else why not (one line)."""
    if triton is None:
        from ..extras import PARTS, MissingExtra

        return str(MissingExtra("neuron=triton", PARTS["triton"]))
    return None


# -- kernel sources -------------------------------------------------------------------------------
# Only core triton.language builtins are used (no tl.zeros/tl.cdiv from the standard library) and
# no helper functions (a jit'd helper cannot be called from an interpreted kernel, a plain one
# cannot be compiled): the same source then runs both compiled and in the interpreter within one
# process. That is why the kernels repeat their few lines of spike writing.


def _poisson_kernel(key_ptr, thr_ptr, step_ptr, out_ptr, cnt_ptr, total, n, k, COPIES: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < total
    key = tl.load(key_ptr + offs, mask=mask, other=0).to(tl.uint32, bitcast=True)
    thr = tl.load(thr_ptr + offs, mask=mask, other=0)
    cnt = tl.load(cnt_ptr + offs, mask=mask, other=0)
    dst = (offs // n) * (COPIES * n) + offs % n
    step = COPIES * total
    for t in range(k):
        h = key ^ tl.load(step_ptr + t).to(tl.uint32, bitcast=True)
        h = h ^ (h >> 16)
        h = h * 0x85EBCA6B  # a literal in [2**31, 2**32) is uint32: wrapping uint32 products
        h = h ^ (h >> 13)
        h = h * 0xC2B2AE35
        h = h ^ (h >> 16)
        s = h.to(tl.int64) < thr
        # through float32: exact in any output dtype (the interpreter casts int1 to bf16 by bits)
        sv = s.to(tl.float32).to(out_ptr.dtype.element_ty)
        for c in tl.static_range(COPIES):
            tl.store(out_ptr + dst + c * n, sv, mask=mask)
        cnt += s.to(tl.int32)
        dst += step
    tl.store(cnt_ptr + offs, cnt, mask=mask)


def _if_kernel(
    cur_ptr,
    bias_ptr,
    v_ptr,
    r_ptr,
    out_ptr,
    cnt_ptr,
    total,
    n,
    k,
    thr,
    refr,
    bias_div,
    bias_mod,
    table_ptr,
    in_total,
    in_h,
    in_w,
    out_h,
    out_w,
    sy,
    sx,
    py,
    px,
    HAS_BIAS: tl.constexpr,
    ZERO_RESET: tl.constexpr,
    REFR: tl.constexpr,
    COPIES: tl.constexpr,
    BLOCK: tl.constexpr,
    POOL: tl.constexpr = False,
    PKH: tl.constexpr = 1,
    PKW: tl.constexpr = 1,
):
    """IF neurons of one layer for ``k`` steps. ``POOL``: the layer is an average pooling of the
    (k, B, C, in_h, in_w) spikes at ``cur_ptr``; its input is ``table[ones in the window]``
    (:func:`snnbalance.ops.avgpool_table`: the reference's float32 mean), computed here instead
    of being written and read back as a float32 tensor."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < total
    v = tl.load(v_ptr + offs, mask=mask, other=0.0)
    cnt = tl.load(cnt_ptr + offs, mask=mask, other=0)
    j = offs % n
    if HAS_BIAS:
        bias = tl.load(bias_ptr + (j // bias_div) % bias_mod, mask=mask, other=0.0)
    if REFR:
        r = tl.load(r_ptr + offs, mask=mask, other=0)
    if POOL:  # neuron (b, ch, oy, ox) of the pooled map: its window in the input spikes of one step
        plane = (offs // (out_h * out_w)) * (in_h * in_w)  # (b * C + ch) * in_h * in_w
        y0 = ((j // out_w) % out_h) * sy - py
        x0 = (j % out_w) * sx - px
        src = plane
    else:
        src = offs
    dst = (offs // n) * (COPIES * n) + j
    step = COPIES * total
    for _t in range(k):
        if POOL:
            ones = tl.full([BLOCK], 0, tl.int32)
            for dy in tl.static_range(PKH):
                for dx in tl.static_range(PKW):
                    iy = y0 + dy
                    ix = x0 + dx
                    ok = mask & (iy >= 0) & (iy < in_h) & (ix >= 0) & (ix < in_w)
                    sp = tl.load(cur_ptr + src + iy * in_w + ix, mask=ok, other=0)
                    ones += sp.to(tl.float32).to(tl.int32)
            c = tl.load(table_ptr + ones, mask=mask, other=0.0)
            src += in_total
        else:
            c = tl.load(cur_ptr + src, mask=mask, other=0.0)
            src += total
        if HAS_BIAS:
            c = c + bias
        if REFR:
            blocked = r > 0
            c = tl.where(blocked, 0.0, c)
            r = r - blocked.to(tl.int32)
        v = v + c
        s = v >= thr
        if REFR:
            s = s & (blocked == 0)
            r = tl.where(s, refr, r)
        if ZERO_RESET:
            v = tl.where(s, 0.0, v)
        else:
            v = tl.where(s, v - thr, v)
        sv = s.to(tl.float32).to(out_ptr.dtype.element_ty)
        for c2 in tl.static_range(COPIES):
            tl.store(out_ptr + dst + c2 * n, sv, mask=mask)
        cnt += s.to(tl.int32)
        dst += step
    tl.store(v_ptr + offs, v, mask=mask)
    tl.store(cnt_ptr + offs, cnt, mask=mask)
    if REFR:
        tl.store(r_ptr + offs, r, mask=mask)


def _conv_kernel(
    x_ptr,
    w_ptr,
    out_ptr,
    m_total,
    cin,
    h,
    w,
    oh,
    ow,
    cout,
    kc,
    sh,
    sw,
    ph,
    pw,
    KH: tl.constexpr,
    KW: tl.constexpr,
    PARTS: tl.constexpr,
    BM: tl.constexpr,
    BN: tl.constexpr,
    BK: tl.constexpr,
    DOT_F32: tl.constexpr,
):
    """Implicit-GEMM convolution of 0/1 spikes with weights split into bf16 parts, float32 sums.

    Rows are output positions of all images and steps (``m_total = K * B * oh * ow``), columns
    output channels; the reduction runs over ``kc = cin * KH * KW``. Each block of input spikes is
    gathered once (zero outside the image: the padding) and multiplied with every part's weights
    on the tensor cores, smallest part first, into one float32 accumulator.

    ``DOT_F32`` (the CPU, i.e. Triton's interpreter, which multiplies bf16 operands as their raw
    16-bit patterns) does the same products on the same bf16 values converted to float32, exactly.
    """
    rows = tl.program_id(0).to(tl.int64) * BM + tl.arange(0, BM)
    cols = tl.program_id(1) * BN + tl.arange(0, BN)
    row_ok = rows < m_total
    col_ok = cols < cout
    img = rows // (oh * ow)
    pos = rows % (oh * ow)
    y0 = (pos // ow) * sh - ph
    x0 = (pos % ow) * sw - pw
    acc = tl.full([BM, BN], 0.0, tl.float32)
    for k0 in range(0, kc, BK):
        kk = k0 + tl.arange(0, BK)
        k_ok = kk < kc
        c = kk // (KH * KW)
        ky = (kk % (KH * KW)) // KW
        kx = kk % KW
        iy = y0[:, None] + ky[None, :]
        ix = x0[:, None] + kx[None, :]
        ok = row_ok[:, None] & k_ok[None, :] & (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
        a = tl.load(x_ptr + ((img[:, None] * cin + c[None, :]) * h + iy) * w + ix, mask=ok, other=0.0)
        a = a.to(tl.float32).to(tl.bfloat16)  # 0/1: exact
        for p in tl.static_range(PARTS):
            b = tl.load(w_ptr + (p * kc + kk[:, None]) * cout + cols[None, :], mask=k_ok[:, None] & col_ok[None, :], other=0.0)
            if DOT_F32:
                acc = tl.dot(a.to(tl.float32), b.to(tl.float32), acc, input_precision="ieee")
            else:
                acc = tl.dot(a, b, acc)
    dst = (img[:, None] * cout + cols[None, :]) * (oh * ow) + pos[:, None]
    tl.store(out_ptr + dst, acc, mask=row_ok[:, None] & col_ok[None, :])


_COMPILED: dict = {}


def _kernel(fn, device: torch.device):
    """``fn`` compiled by Triton for CUDA, or wrapped in Triton's interpreter for the CPU."""
    reason = available()
    if reason:
        raise SnnBalanceError(reason)
    key = (fn, device.type)
    if key not in _COMPILED:
        if device.type == "cuda":
            # sizes are plain runtime values: no recompiling when a batch or a chunk has another size
            ints = [a for a in ("total", "n", "k", "refr", "bias_div", "bias_mod", "m_total", "in_total") if a in fn.__code__.co_varnames]
            _COMPILED[key] = triton.jit(fn, do_not_specialize=ints)
        elif device.type == "cpu":
            from triton.runtime.interpreter import InterpretedFunction

            _COMPILED[key] = InterpretedFunction(fn)
        else:
            raise SnnBalanceError(f"the triton neurons run on cuda (or cpu, interpreted), not {device.type}")
    return _COMPILED[key]


def _launch(kernel, grid, *args, **meta) -> None:
    """Run ``kernel`` on ``grid``; a failure (compiler, driver) is one clear line, not a traceback."""
    try:
        kernel[grid](*args, **meta)
    except (SnnBalanceError, KeyboardInterrupt):
        raise
    except Exception as e:  # noqa: BLE001 - triton's compiler and runtime raise many kinds
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        name = getattr(kernel, "__name__", None) or getattr(getattr(kernel, "fn", None), "__name__", "?")
        raise SnnBalanceError(f"triton kernel {name} failed: {first[:300]} (use --sim-option neuron=sj)") from e


def _block(device: torch.device) -> int:
    return BLOCK_CUDA if device.type == "cuda" else BLOCK_CPU


def _grid(total: int, block: int) -> tuple[int]:
    return ((total + block - 1) // block,)


def _output(k: int, b: int, shape, dtype, copies: int, device) -> torch.Tensor:
    n = int(np.prod(shape))
    return torch.empty((k, b, copies * n), dtype=dtype, device=device)


def _shaped(out: torch.Tensor, shape, copies: int) -> torch.Tensor:
    return out.reshape(*out.shape[:2], *shape) if copies == 1 else out


class TritonPoisson:
    """Input spikes of one batch, made by :func:`_poisson_kernel`; counts per pixel kept on the device."""

    def __init__(self, x: np.ndarray, index: np.ndarray, seed: int, max_rate: float, dt: float, device):
        self.device = torch.device(device)
        b = len(x)
        self.b, self.shape = b, x.shape[1:]
        thr = encoding.thresholds(encoding.spike_probability(x.reshape(b, -1), max_rate, dt))
        self.n = thr.shape[1]
        self.thr = torch.from_numpy(thr.reshape(-1)).to(self.device)
        keys = pixel_keys(seed, torch.from_numpy(np.asarray(index, dtype=np.int64)).to(self.device), self.n)
        self.keys = keys.reshape(-1).to(torch.int32)  # uint32 bits; int64 -> int32 keeps the low 32
        self.counts = torch.zeros(b * self.n, dtype=torch.int32, device=self.device)

    def chunk(self, t0: int, k: int, dtype=torch.float32, copies: int = 1) -> torch.Tensor:
        """Spikes of steps ``t0 .. t0+k-1``: (k, B, *shape) or, for ``copies`` > 1, (k, B, copies * n)."""
        steps = step_keys(t0, k, self.device).to(torch.int32)  # uint32 bits, as the pixel keys
        out = _output(k, self.b, self.shape, dtype, copies, self.device)
        block = _block(self.device)
        _launch(
            _kernel(_poisson_kernel, self.device),
            _grid(self.b * self.n, block),
            self.keys,
            self.thr,
            steps,
            out,
            self.counts,
            self.b * self.n,
            self.n,
            k,
            COPIES=copies,
            BLOCK=block,
        )
        return _shaped(out, self.shape, copies)

    def total(self) -> torch.Tensor:
        """Spikes per pixel so far, summed over the batch: int64 of the input's shape."""
        return self.counts.reshape(self.b, *self.shape).sum(dim=0, dtype=torch.int64)


class TritonIF:
    """IF neurons of one layer (B, *shape) over chunks, stepped by :func:`_if_kernel`.

    ``pool``: ``(kernel, stride, padding, in_shape)`` of an average-pooling layer, which then takes
    the spikes of the layer before (k, B, *in_shape) instead of a current.
    """

    def __init__(
        self,
        shape,
        b: int,
        threshold: float,
        reset: str,
        refr_steps: int,
        device,
        bias: torch.Tensor | None = None,
        dtype=torch.float32,
        copies: int = 1,
        pool=None,
        v0: float = 0.0,
    ):
        from ..ops import avgpool_table

        self.device = torch.device(device)
        self.shape, self.b = tuple(shape), b
        self.n = int(np.prod(shape))
        self.thr = float(np.float32(threshold))
        self.reset, self.refr_steps = reset, refr_steps
        self.dtype, self.copies = dtype, copies
        total = b * self.n
        self.v = torch.full((total,), v0, dtype=torch.float32, device=self.device)  # v_init * threshold
        self.r = torch.zeros(total if refr_steps else 1, dtype=torch.int32, device=self.device)
        self.counts = torch.zeros(total, dtype=torch.int32, device=self.device)
        # bias of neuron j of a sample: bias[(j // div) % mod]; (C,) per channel for a conv layer
        self.bias = None if bias is None else bias.reshape(-1).to(torch.float32).contiguous()
        nb = 1 if self.bias is None else self.bias.numel()
        self.bias_div, self.bias_mod = self.n // nb, nb
        self.pool = pool
        if pool is not None:
            kernel, stride, padding, in_shape = pool
            self.table = torch.from_numpy(avgpool_table(tuple(kernel))).to(self.device)
            self.geometry = (b * int(np.prod(in_shape)), in_shape[1], in_shape[2], shape[1], shape[2], *stride, *padding)
            self.pool_kernel = tuple(kernel)
        else:
            self.table, self.geometry, self.pool_kernel = self.v, (0,) * 9, (1, 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Spikes for the currents (k, B, *shape) without bias, or for a pooling layer the input
        spikes (k, B, *in_shape); in this layer's dtype and layout."""
        k = x.shape[0]
        x = x.contiguous()
        out = _output(k, self.b, self.shape, self.dtype, self.copies, self.device)
        block = _block(self.device)
        total = self.b * self.n
        _launch(
            _kernel(_if_kernel, self.device),
            _grid(total, block),
            x,
            self.bias if self.bias is not None else self.v,
            self.v,
            self.r,
            out,
            self.counts,
            total,
            self.n,
            k,
            self.thr,
            self.refr_steps,
            self.bias_div,
            self.bias_mod,
            self.table,
            *self.geometry,
            HAS_BIAS=self.bias is not None,
            ZERO_RESET=self.reset == "zero",
            REFR=self.refr_steps > 0,
            COPIES=self.copies,
            BLOCK=block,
            POOL=self.pool is not None,
            PKH=self.pool_kernel[0],
            PKW=self.pool_kernel[1],
        )
        return _shaped(out, self.shape, self.copies)

    def total(self) -> torch.Tensor:
        """Spikes per neuron so far, summed over the batch: int64 of the layer's shape."""
        return self.counts.reshape(self.b, *self.shape).sum(dim=0, dtype=torch.int64)


def conv_weight_parts(parts: list[torch.Tensor]) -> torch.Tensor:
    """bf16 parts (largest first) of a (cout, cin, kh, kw) weight as one (parts, cin*kh*kw, cout)
    tensor, smallest part first (the order in which :func:`_conv_kernel` adds them)."""
    return torch.stack([p.reshape(p.shape[0], -1).t() for p in parts[::-1]]).contiguous()


def conv2d_split(x: torch.Tensor, w: torch.Tensor, kernel, stride, padding, tuned: bool | None = None) -> torch.Tensor:
    """``conv2d(x, sum of the parts)`` for 0/1 spikes ``x`` (rows, cin, h, w), float32 (rows, cout, oh, ow).

    ``w`` from :func:`conv_weight_parts`; no bias (the neuron kernel adds it). ``tuned`` (default:
    on CUDA) launches through Triton's autotuner over :data:`CONV_CONFIGS`; on the CPU the
    interpreter otherwise runs one large block shape, which is faster there.
    """
    x = x.contiguous()
    rows, cin, h, wd = x.shape
    parts, kc, cout = w.shape
    kh, kw = kernel
    oh = (h + 2 * padding[0] - kh) // stride[0] + 1
    ow = (wd + 2 * padding[1] - kw) // stride[1] + 1
    out = torch.empty((rows, cout, oh, ow), dtype=torch.float32, device=x.device)
    m = rows * oh * ow
    bn = max(16, min(64, 1 << (cout - 1).bit_length()))
    args = (x, w, out, m, cin, h, wd, oh, ow, cout, kc, stride[0], stride[1], padding[0], padding[1])
    cuda = x.device.type == "cuda"
    if cuda if tuned is None else tuned:  # block sizes: the autotuner's choice, once per layer shape
        grid = lambda meta: ((m + meta["BM"] - 1) // meta["BM"], (cout + bn - 1) // bn)  # noqa: E731
        _launch(_conv_tuned(x.device), grid, *args, KH=kh, KW=kw, PARTS=parts, BN=bn, DOT_F32=not cuda)
    else:
        bm, bk = 4096, 64
        grid = ((m + bm - 1) // bm, (cout + bn - 1) // bn)
        _launch(_kernel(_conv_kernel, x.device), grid, *args, KH=kh, KW=kw, PARTS=parts, BM=bm, BN=bn, BK=bk, DOT_F32=True)
    return out


#: Block shapes the autotuner tries for the convolution on CUDA (few: each one is compiled).
CONV_CONFIGS = [(64, 32, 4), (128, 32, 4), (128, 64, 4), (256, 32, 8)]


def _conv_tuned(device: torch.device):
    """:func:`_conv_kernel` behind Triton's autotuner (on the CPU: interpreted, timed by the wall clock)."""
    key = (_conv_kernel, device.type, "tuned")
    if key not in _COMPILED:
        configs = [triton.Config({"BM": bm, "BK": bk}, num_warps=nw) for bm, bk, nw in CONV_CONFIGS]
        bench = None if device.type == "cuda" else _wall_clock
        _COMPILED[key] = triton.autotune(configs, key=["cin", "h", "w", "cout", "KH", "KW", "PARTS"], do_bench=bench)(
            _kernel(_conv_kernel, device)
        )
    return _COMPILED[key]


def _wall_clock(call, quantiles=None):
    import time

    t = time.perf_counter()
    call()
    return [time.perf_counter() - t] * (len(quantiles) if quantiles else 1)
