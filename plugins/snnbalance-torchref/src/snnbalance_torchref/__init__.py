"""snnbalance plugin ``torch-ref``: the reference semantics, step by step, in plain PyTorch.

Deliberately small: it shows everything a back end has to write. The batch loop, accuracy per
step, spike bookkeeping, progress and cancellation come from
:func:`snnbalance.simulate.core.run_batches`; the input spikes come from the same counter-based
:class:`~snnbalance.simulate.encoding.PoissonSource` as every back end (computed on the CPU, then
moved to the device), so only the network's arithmetic runs in PyTorch. Every step follows
:mod:`snnbalance.simulate.numpy_ref`: integrate ``W·s + b``, spike at ``V >= threshold`` at most
once per step, reset to zero or by subtraction, refractory neurons ignore their input.
"""

from __future__ import annotations

import numpy as np

from snnbalance import hookimpl
from snnbalance.errors import UnsupportedError
from snnbalance.graph import INPUT, Graph
from snnbalance.records import Simulator
from snnbalance.simulate.core import SimConfig, run_batches
from snnbalance.simulate.encoding import CurrentSource, PoissonSource

__version__ = "0.1.0"
SUPPORTED = ("dense", "conv2d", "avgpool2d", "flatten")  # the paper's vocabulary; keep it small


def _layers(graph: Graph, device):
    """Per node: its weights and bias as tensors, made once per batch."""
    import torch

    def t(a):
        return None if a is None else torch.as_tensor(np.asarray(a, np.float32), device=device)

    return {n.name: (t(n.weight), t(n.bias)) for n in graph.nodes}


def _linear(n, inp, weight):
    import torch.nn.functional as F

    if n.op == "dense":
        return inp @ weight.T
    if n.op == "conv2d":
        return F.conv2d(inp, weight, stride=n.stride, padding=n.padding)
    return F.avg_pool2d(inp, n.kernel, n.stride, n.padding, count_include_pad=True)


def step_batch(graph: Graph, x: np.ndarray, index: np.ndarray, y: np.ndarray, cfg: SimConfig):
    """Simulate one batch for all steps; see :func:`snnbalance.simulate.core.run_batches`."""
    import torch

    device = torch.device(cfg.device)
    b = len(x)
    shapes = graph.shapes()
    x = x.reshape(b, *shapes[INPUT])
    source = (
        PoissonSource(x, index, cfg.seed, cfg.max_rate, cfg.dt) if cfg.encoding == "poisson" else CurrentSource(x, cfg.max_rate, cfg.dt)
    )
    params = _layers(graph, device)
    neurons = graph.neuron_nodes()
    v = {n.name: torch.zeros((b, *shapes[n.name]), device=device) for n in neurons}
    refr = (
        {n.name: torch.zeros((b, *shapes[n.name]), dtype=torch.int32, device=device) for n in neurons} if cfg.refractory_steps > 0 else {}
    )
    totals = {k: torch.zeros(shapes[k], dtype=torch.int64, device=device) for k in [INPUT, *v]}
    counts = torch.zeros((b, shapes[graph.output.name][0]), dtype=torch.int32, device=device)
    correct = torch.zeros(cfg.steps, dtype=torch.int64, device=device)
    labels = torch.as_tensor(y, device=device)
    with torch.no_grad():
        for t in range(cfg.steps):
            vals = {INPUT: torch.as_tensor(source.step(t), device=device)}
            for n in graph.nodes:
                inp = vals[n.inputs[0]]
                if n.op == "flatten":
                    vals[n.name] = inp.reshape(b, -1)
                    continue
                weight, bias = params[n.name]
                current = _linear(n, inp, weight)
                if bias is not None:  # per channel, or a per-position (C, H, W) map
                    current = current + (bias.reshape(-1, 1, 1) if n.op == "conv2d" and bias.dim() == 1 else bias)
                spikes = _if_step(v[n.name], current, n.threshold, cfg, refr.get(n.name))
                totals[n.name] += spikes.sum(dim=0)
                vals[n.name] = spikes.float()
            if cfg.encoding == "poisson":
                totals[INPUT] += vals[INPUT].sum(dim=0).long()
            counts += vals[graph.output.name].int()
            # torch.argmax returns the first maximum: ties go to the lowest class, as in the reference
            correct[t] = (counts.argmax(dim=1) == labels).sum()
    return correct.cpu().numpy(), {k: t.cpu().numpy() for k, t in totals.items()}, counts.cpu().numpy()


def _if_step(v, current, threshold: float, cfg: SimConfig, refr):
    """Advance IF neurons one step in place (as ``numpy_ref.if_step``); return the spikes (bool)."""
    if refr is not None:
        blocked = refr > 0
        current = current.masked_fill(blocked, 0.0)
        refr -= blocked.int()
    v += current
    spikes = v >= threshold
    if refr is not None:
        spikes &= ~blocked
        refr.masked_fill_(spikes, cfg.refractory_steps)
    if cfg.reset == "zero":
        v.masked_fill_(spikes, 0.0)
    else:
        v -= spikes.float() * np.float32(threshold)
    return spikes


def simulate(graph: Graph, x: np.ndarray, y: np.ndarray, config: SimConfig, progress=None, task: str = "simulate"):
    """Simulate ``graph`` on inputs ``x`` (N, ...) in [0, 1] with labels ``y`` (N,)."""
    for n in graph.nodes:
        if n.op not in SUPPORTED:
            raise UnsupportedError(
                f"simulator 'torch-ref' handles {', '.join(SUPPORTED)} layers, not {n.op} (layer {n.label()}); use the numpy simulator"
            )
    return run_batches(graph, x, y, config, step_batch, "torch-ref", progress, task)


@hookimpl
def snnbalance_simulators():
    yield Simulator("torch-ref", "plain PyTorch step loop with the reference semantics (an example back end)", simulate, ("cpu", "cuda"))
