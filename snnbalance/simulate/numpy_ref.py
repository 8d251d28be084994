"""The NumPy reference simulator: it defines the semantics every other back end must reproduce.

Each step ``t`` (of ``T / dt``), layers are updated in topological order, each reading the spikes
its input produced in the same step (no synaptic delay):

1. input: Poisson spikes or a constant current (:mod:`snnbalance.simulate.encoding`);
2. each spiking layer: every sample starts with ``V = v_init * threshold`` (float32; ``v_init`` is
   ``SimConfig.v_init`` or else the node's fraction, 0 by default); then each step ``I = W·s (+ b)``;
   neurons in their refractory period get ``I = 0`` and
   cannot spike; ``V += I``; a neuron spikes when ``V >= threshold`` (at most once per step);
   then ``V = 0`` (reset ``zero``) or ``V -= threshold`` (reset ``subtract``);
   average pooling is such a layer with weights ``1/k²``; flatten only reshapes;
3. residual ``add`` layers are IF layers whose current is ``sum_i scales[i] * I_i``, where
   ``I_i`` is the synaptic current of a synaptic-only weighted input (``W·s + b``, no neurons of
   its own) or the spikes of any other input; ``concat`` joins spike tensors;
4. ``maxpool2d`` is a gate: it adds this step's input spikes to per-input counts, then each window
   passes on the spike (0 or 1) of its input with the largest count so far (ties: the first in
   row-major window order) -- Rueckauer et al. 2017;
5. read-out (``SimConfig.readout``): ``spikes`` (default): the output layer spikes like any other;
   the prediction after step ``t`` is the argmax of the output spike counts so far, ties to the
   lowest class index (class 0 before any output spike). ``membrane``: the output layer has no
   threshold and no reset: its potential starts at 0 and accumulates ``I = W·s (+ b)`` every step
   (``V += I``, float32); the prediction is the argmax of ``V``, ties to the lowest index. It
   records no spikes.

Potentials are float32, like the fast back ends.
"""

from __future__ import annotations

import numpy as np

from ..graph import INPUT, Graph, apply, bias_term
from ..graph_ops import maxpool_gate
from ..hookspecs import hookimpl
from ..progress import Progress
from ..records import Simulator
from .core import READOUTS, SimConfig, SimResult, initial_potential, run_batches
from .encoding import CurrentSource, PoissonSource


def if_step(
    v: np.ndarray, current: np.ndarray, threshold: float, reset: str, refr: np.ndarray | None = None, refr_steps: int = 0
) -> np.ndarray:
    """Advance IF neurons one step in place; return the spikes (bool).

    Args:
        v: membrane potentials, updated in place.
        current: input this step.
        threshold: firing threshold.
        reset: ``zero`` or ``subtract``.
        refr: remaining refractory steps per neuron (updated in place), or None.
        refr_steps: refractory steps set after a spike.
    """
    if refr is not None:
        blocked = refr > 0
        current = np.where(blocked, 0, current)
        np.subtract(refr, 1, out=refr, where=blocked)
    v += current
    spikes = v >= threshold
    if refr is not None:
        spikes &= ~blocked
        refr[spikes] = refr_steps
    if reset == "zero":
        v[spikes] = 0
    else:
        v[spikes] -= threshold
    return spikes


def step_batch(graph: Graph, x: np.ndarray, index: np.ndarray, y: np.ndarray, cfg: SimConfig):
    """Simulate one batch for all steps; see :func:`snnbalance.simulate.core.run_batches`."""
    b = len(x)
    shapes = graph.shapes()
    x = x.reshape(b, *shapes[INPUT])
    source = (
        PoissonSource(x, index, cfg.seed, cfg.max_rate, cfg.dt) if cfg.encoding == "poisson" else CurrentSource(x, cfg.max_rate, cfg.dt)
    )
    neurons = graph.neuron_nodes()
    out = graph.output.name
    membrane = cfg.membrane_readout
    cells = [n for n in neurons if n.op != "maxpool2d" and not (membrane and n.name == out)]  # IF neurons
    v = {n.name: np.full((b, *shapes[n.name]), initial_potential(n, cfg), dtype=np.float32) for n in cells}
    refr = {n.name: np.zeros((b, *shapes[n.name]), dtype=np.int32) for n in cells} if cfg.refractory_steps > 0 else {}
    pool_counts = {n.name: np.zeros((b, *shapes[n.inputs[0]]), dtype=np.float32) for n in neurons if n.op == "maxpool2d"}
    bias = {n.name: bias_term(n) for n in graph.nodes if n.bias is not None}
    totals = {k: np.zeros(shapes[k], dtype=np.int64) for k in [INPUT, *(n.name for n in neurons)]}
    counts = np.zeros((b, shapes[out][0]), dtype=np.float32 if membrane else np.int32)
    correct = np.zeros(cfg.steps, dtype=np.int64)
    for t in range(cfg.steps):
        vals = {INPUT: source.step(t)}
        for n in graph.nodes:
            ins = [vals[i] for i in n.inputs]
            if n.op in ("flatten", "concat"):
                vals[n.name] = apply(n, *ins)
                continue
            if n.op == "maxpool2d":
                pool_counts[n.name] += ins[0]
                spikes = maxpool_gate(n, pool_counts[n.name], ins[0])
                totals[n.name] += spikes.sum(axis=0).astype(np.int64)
                vals[n.name] = spikes
                continue
            current = apply(n, *ins)
            if n.name in bias:
                current += bias[n.name]
            if n.name not in v:  # synaptic only (its current flows into the add that reads it), or the
                vals[n.name] = current  # membrane read-out's output layer (its current is integrated below)
                continue
            spikes = if_step(v[n.name], current, n.threshold, cfg.reset, refr.get(n.name), cfg.refractory_steps)
            totals[n.name] += spikes.sum(axis=0)
            vals[n.name] = spikes.astype(np.float32)
        if cfg.encoding == "poisson":
            totals[INPUT] += vals[INPUT].sum(axis=0).astype(np.int64)
        counts += vals[out] if membrane else vals[out].astype(np.int32)
        correct[t] = int((counts.argmax(axis=1) == y).sum())
    return correct, totals, counts


def simulate(
    graph: Graph, x: np.ndarray, y: np.ndarray, config: SimConfig, progress: Progress | None = None, task: str = "simulate"
) -> SimResult:
    """Simulate ``graph`` on inputs ``x`` (N, ...) in [0, 1] with labels ``y`` (N,)."""
    return run_batches(graph, x, y, config, step_batch, "numpy", progress, task)


@hookimpl
def snnbalance_simulators():
    yield Simulator("numpy", "NumPy reference: defines the semantics (CPU, float32)", simulate, ("cpu",), readouts=READOUTS)
