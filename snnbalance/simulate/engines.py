"""The one place that chooses the engine a fast simulation runs on, and builds its stepper.

Engines (each its own module; all reproduce :mod:`.numpy_ref`'s spikes):

* ``native`` (:mod:`.native`, C source in ``native.c``): event-driven, CPU only, every graph kind;
  the default on the CPU when it builds.
* ``torch`` (:mod:`.torch_kernels`): chunks of steps, one product per layer per chunk, on any torch
  device; its neurons are SpikingJelly's ``IFNode`` (``neuron=sj``, the default), plain torch ops
  (``neuron=torch``) or fused Triton kernels (``neuron=triton``, :mod:`.triton_kernels`).
  SpikingJelly is an extra (:mod:`snnbalance.extras`): without it the default neurons are the
  torch ones (the same spikes), and the engine name says so; ``neuron=sj`` named explicitly is
  refused in one line (:func:`require_parts`), as is ``neuron=triton`` without Triton.

:func:`make_stepper` reads the options (see :mod:`.spikingjelly` for the list), picks the engine,
and says in the engine name why an engine that was wanted did not run
(e.g. ``torch/sj/fp32 (native build failed: ...)``).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .. import extras
from ..errors import SnnBalanceError, UnsupportedError
from ..graph import Graph
from .core import SimConfig

OPTIONS = {
    "engine": ("auto", "native", "torch"),
    "neuron": ("sj", "torch", "triton"),
    "precision": ("fp32", "tf32", "tf32x2", "bf16x2", "bf16x3"),
}
INT_OPTIONS = ("chunk", "memory", "threads")


def options(cfg: SimConfig) -> dict:
    """The engine options of ``cfg`` with their defaults, checked (one line for a bad one)."""
    opts: dict[str, Any] = {"engine": "auto", "neuron": "sj", "precision": "fp32"}
    for key, value in (cfg.options or {}).items():
        if key in OPTIONS:
            if value not in OPTIONS[key]:
                raise SnnBalanceError(f"spikingjelly option {key} must be one of {', '.join(OPTIONS[key])}, got {value!r}")
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


def require_parts(cfg: SimConfig) -> None:
    """One line naming the extra when the options ask for neurons whose package is missing
    (``neuron=sj`` without SpikingJelly, ``neuron=triton`` without Triton); called by
    :func:`make_stepper` and by ``ConvertConfig.validate`` before any work."""
    neuron = (cfg.options or {}).get("neuron")
    if neuron == "sj":
        extras.require("spikingjelly", "--sim-option neuron=sj")
    elif neuron == "triton":
        extras.require("triton", "--sim-option neuron=triton")


def threads() -> int:
    """Worker threads of the native engine: the cores this process may run on."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, n or 1)


def make_stepper(graph: Graph, config: SimConfig, profile: dict | None = None):
    """The ``step_batch`` function for ``config`` and the name of the engine it runs.

    ``profile``: a dict that the native engine adds each node's seconds to (``snnbalance bench``'s
    per-layer shares); other engines leave it empty.
    """
    opts = options(config)
    require_parts(config)
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

        why = native_reason(graph, config)
        if not why:
            dll = native.load()
            plan = native.Plan(graph)
            n_threads, chunk = opts.get("threads") or threads(), opts.get("chunk", 64)

            def step_native(g, x, index, y, cfg):
                return native.step_batch(dll, plan, x, index, y, cfg, n_threads, chunk, profile)

            return step_native, "native"
        if engine == "native":
            raise SnnBalanceError(f"the native engine cannot run this ({why}); use engine=torch")
        note = f" ({why})"
    from . import torch_kernels as tk

    graph.require(tk.SUPPORTED_KINDS, "the torch engine")
    tk.check_cuda(device)
    precision = opts["precision"]
    if precision != "fp32" and device != "cuda":
        raise SnnBalanceError(f"precision {precision} needs --device cuda (tensor cores)")
    budget = opts.get("memory", 4096 if device == "cuda" else 512) * 2**20
    neuron = opts["neuron"]
    if neuron == "sj" and not extras.installed("spikingjelly"):  # the default, not asked for: same spikes
        neuron = "torch"
        note = f"{note[:-1]}; SpikingJelly not installed)" if note else " (SpikingJelly not installed)"
    state = {"net": None, "note": note}

    def step_torch(g, x, index, y, cfg):
        if state["net"] is None:
            state["net"] = _checked_net(graph, device, precision, neuron, x, index, y, cfg)
        chunk = opts.get("chunk") or tk.chunk_steps(graph, len(x), cfg.steps, budget)
        return tk.step_batch(state["net"], x, index, y, cfg, chunk)

    step_torch.state = state  # type: ignore[attr-defined]  # read by engine_used
    return step_torch, f"torch/{neuron}/{precision}{note}"


def native_reason(graph: Graph, config: SimConfig) -> str:
    """Why the native engine cannot run ``graph`` with ``config`` here ("" when it can)."""
    from . import native

    if native.load() is None:
        return native.status().reason or "native build failed"
    try:
        graph.require(native.SUPPORTED_KINDS, "the native engine")
    except UnsupportedError as exc:
        return str(exc)
    reason = native.unsupported_reason(graph, config.encoding)
    return f"native engine: {reason}" if reason else ""


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


def engine_used(step, engine: str) -> str:
    """The engine a stepper from :func:`make_stepper` ran: with the precision its probe kept, and
    why the native engine did not run where it was wanted (e.g. ``torch/sj/fp32 (native build
    failed: ...)``)."""
    state = getattr(step, "state", {})
    net = state.get("net")
    return f"torch/{net.neuron}/{net.precision}{state.get('note', '')}" if net is not None else engine
