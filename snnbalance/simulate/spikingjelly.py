"""The ``spikingjelly`` simulator: the NumPy reference's semantics, fast, on ``cpu`` or ``cuda``.

Two engines share one contract (:func:`snnbalance.simulate.core.run_batches`, bit-identical input
spikes, float32 potentials, ``V >= threshold``, reset to 0 or subtract, refractory period):

* ``native`` (CPU default): an event-driven C kernel (:mod:`.native`) that does work per spike,
  not per synapse; compiled on first use with the system C compiler.
* ``torch`` (CUDA, and CPU when no compiler is found): time chunks of ``K`` steps, one matrix
  product per layer per chunk, SpikingJelly's multi-step ``IFNode`` (:mod:`.torch_kernels`).

Options (``SimConfig.options``, string values, all optional):

* ``engine``: ``auto`` (native on CPU when it builds, else torch, and the run's ``engine`` record
  says why, e.g. ``torch/sj/fp32 (native build failed: ...)``), ``native`` or ``torch``.
* ``neuron``: the torch engine's neurons (naming one selects the torch engine): ``sj``
  (SpikingJelly's IFNode, default), ``torch`` (plain ops) or
  ``triton`` (fused kernels of :mod:`.triton_kernels` for the input spikes and each layer's neurons;
  with ``bf16x2``/``bf16x3``, one product of the stacked weight parts per dense layer). On the CPU
  the triton kernels run in Triton's interpreter: for tests, not for speed.
* ``chunk``: steps per chunk ``K`` (default: 64 native; from ``memory`` on torch).
* ``memory``: torch engine's budget for one chunk's tensors, in MiB (default 512 CPU, 4096 CUDA).
* ``threads``: native engine's worker threads (default: the cores this process may use).
* ``precision``: torch engine on CUDA: ``fp32`` (default), ``tf32`` (weights rounded to tf32),
  ``tf32x2`` (dense and conv weights split into two tf32 parts), ``bf16x2`` / ``bf16x3`` (dense
  weights split into two / three bfloat16 parts; convolutions stay fp32, except with
  ``neuron=triton``, whose convolution kernel takes bf16 parts too). Every part's product is
  accumulated in float32 (see :data:`.torch_kernels.PRECISIONS`). A reduced precision is used only
  after a probe (the first 32 steps of up to 256 images of the first batch) produced exactly the
  fp32 spikes; otherwise the run falls back to fp32 (the stepper's ``state["net"].precision``
  says which one ran; ``snnbalance bench`` reports it).
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import SnnBalanceError
from ..graph import Graph
from ..hookspecs import hookimpl
from ..progress import Progress
from ..records import Simulator
from .core import SimConfig, SimResult, run_batches

OPTIONS = {
    "engine": ("auto", "native", "torch"),
    "neuron": ("sj", "torch", "triton"),
    "precision": ("fp32", "tf32", "tf32x2", "bf16x2", "bf16x3"),
}
INT_OPTIONS = ("chunk", "memory", "threads")
SUPPORTED = ("dense", "conv2d", "avgpool2d", "flatten")


def _options(cfg: SimConfig) -> dict:
    opts = {"engine": "auto", "neuron": "sj", "precision": "fp32"}
    for key, value in (cfg.options or {}).items():
        if key in OPTIONS:
            if value not in OPTIONS[key]:
                raise SnnBalanceError(f"spikingjelly option {key} must be one of {', '.join(OPTIONS[key])}, "
                                      f"got {value!r}")
            opts[key] = value
        elif key in INT_OPTIONS:
            try:
                opts[key] = int(value)
            except ValueError:
                raise SnnBalanceError(f"spikingjelly option {key} must be an integer, got {value!r}") from None
            if opts[key] < 1:
                raise SnnBalanceError(f"spikingjelly option {key} must be at least 1, got {value}")
        else:
            known = ", ".join([*OPTIONS, *INT_OPTIONS])
            raise SnnBalanceError(f"unknown spikingjelly option {key!r} (options: {known})")
    return opts


def _threads() -> int:
    """Worker threads of the native engine: the cores this process may run on."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, n or 1)


def make_stepper(graph: Graph, config: SimConfig):
    """The ``step_batch`` function for ``config`` and the name of the engine it runs."""
    opts = _options(config)
    # the paper's layer kinds; residual adds, concats, max-pool gates and per-position biases
    # run on the numpy simulator
    graph.require(SUPPORTED, "the spikingjelly simulator")
    device = config.device
    if device not in ("cpu", "cuda"):
        raise SnnBalanceError(f"the spikingjelly simulator runs on cpu or cuda, not {device!r}")
    engine = opts["engine"]
    if "neuron" in (config.options or {}):  # a neuron kind is a choice of the torch engine's
        if engine == "native":
            raise SnnBalanceError("the neuron option applies to the torch engine; use engine=torch")
        engine = "torch"
    if device == "cuda" and engine == "native":
        raise SnnBalanceError("the native engine runs on the CPU only; use engine=torch with --device cuda")
    note = ""  # why the CPU runs the torch engine although the native one was wanted
    if device == "cpu" and engine in ("auto", "native"):
        from . import native

        dll = native.load()
        why = "" if dll is not None else native.status().reason or "native build failed"
        if engine == "auto" and len(graph.neuron_nodes()) > native.MAX_LAYERS:
            dll, note = None, f" (native engine: more than {native.MAX_LAYERS} layers)"
        elif dll is None:
            note = f" ({why})"
        if dll is not None:
            plan = native.Plan(graph)
            threads, chunk = opts.get("threads") or _threads(), opts.get("chunk", 64)

            def step_native(g, x, index, y, cfg):
                return native.step_batch(dll, plan, x, index, y, cfg, threads, chunk)

            return step_native, "native"
        if engine == "native":
            raise SnnBalanceError(f"the native engine could not be built ({why}); use engine=torch")
    from . import torch_kernels as tk

    tk._check_cuda(device)
    precision = opts["precision"]
    if precision != "fp32" and device != "cuda":
        raise SnnBalanceError(f"precision {precision} needs --device cuda (tensor cores)")
    budget = opts.get("memory", 4096 if device == "cuda" else 512) * 2 ** 20
    state = {"net": None, "note": note}

    def step_torch(g, x, index, y, cfg):
        if state["net"] is None:
            state["net"] = _checked_net(graph, device, precision, opts["neuron"], x, index, y, cfg)
        chunk = opts.get("chunk") or tk.chunk_steps(graph, len(x), cfg.steps, budget)
        return tk.step_batch(state["net"], x, index, y, cfg, chunk)

    step_torch.state = state
    return step_torch, f"torch/{opts['neuron']}/{precision}{note}"


def _checked_net(graph, device, precision, neuron, x, index, y, cfg):
    """The torch network; a reduced precision only if it reproduces fp32's spikes on a first chunk."""
    import dataclasses

    from . import torch_kernels as tk

    fp32 = tk.TorchNet(graph, device, "fp32", neuron)
    if precision == "fp32":
        return fp32
    probe = dataclasses.replace(cfg, duration=min(cfg.steps, 32) * cfg.dt)
    n = min(len(x), 256)
    want = tk.step_batch(fp32, x[:n], index[:n], y[:n], probe, probe.steps)
    if any(not v.any() for v in want[1].values()):
        return fp32  # a silent layer in the probe proves nothing about its rounding: keep fp32
    try:
        fast = tk.TorchNet(graph, device, precision, neuron)
        got = tk.step_batch(fast, x[:n], index[:n], y[:n], probe, probe.steps)
    except (RuntimeError, TypeError):  # e.g. no float32-output bf16 product in this torch build
        return fp32
    same = all(np.array_equal(want[1][k], got[1][k]) for k in want[1]) and np.array_equal(want[0], got[0])
    return fast if same else fp32


def simulate(graph: Graph, x: np.ndarray, y: np.ndarray, config: SimConfig,
             progress: Progress | None = None, task: str = "simulate") -> SimResult:
    """Simulate ``graph`` on inputs ``x`` (N, ...) in [0, 1] with labels ``y`` (N,)."""
    config.validate()
    graph.validate()
    step, engine = make_stepper(graph, config)
    res = run_batches(graph, x, y, config, step, "spikingjelly", progress, task)
    res.engine = engine_used(step, engine)
    return res


def engine_used(step, engine: str) -> str:
    """The engine a stepper from :func:`make_stepper` ran: with the precision its probe kept, and
    why the native engine did not run where it was wanted (e.g. ``torch/sj/fp32 (native build
    failed: ...)``)."""
    state = getattr(step, "state", {})
    net = state.get("net")
    return f"torch/{net.neuron}/{net.precision}{state.get('note', '')}" if net is not None else engine


@hookimpl
def snnbalance_simulators():
    yield Simulator("spikingjelly",
                    "Fast back end, same semantics as numpy: event-driven C kernel on CPU, "
                    "SpikingJelly IFNode multi-step on CUDA", simulate, ("cpu", "cuda"), ops=SUPPORTED)
