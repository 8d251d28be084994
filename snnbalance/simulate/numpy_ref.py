"""The NumPy reference simulator: it defines the semantics every other back end must reproduce.

Each step ``t`` (of ``T / dt``), layers are updated in topological order, each reading the spikes
its input produced in the same step (no synaptic delay):

1. input: Poisson spikes or a constant current (:mod:`snnbalance.simulate.encoding`);
2. each spiking layer: ``I = W·s (+ b)``; neurons in their refractory period get ``I = 0`` and
   cannot spike; ``V += I``; a neuron spikes when ``V >= threshold`` (at most once per step);
   then ``V = 0`` (reset ``zero``) or ``V -= threshold`` (reset ``subtract``);
   average pooling is such a layer with weights ``1/k²``; flatten only reshapes;
3. the output layer spikes like any other; the prediction after step ``t`` is the argmax of the
   output spike counts so far, ties to the lowest class index (class 0 before any output spike).

Potentials are float32, like the fast back ends.
"""

from __future__ import annotations

import numpy as np

from ..graph import INPUT, Graph, apply
from ..hookspecs import hookimpl
from ..progress import Progress
from ..records import Simulator
from .core import SimConfig, SimResult, run_batches
from .encoding import CurrentSource, PoissonSource


def if_step(v: np.ndarray, current: np.ndarray, threshold: float, reset: str,
            refr: np.ndarray | None = None, refr_steps: int = 0) -> np.ndarray:
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
    source = (PoissonSource(x, index, cfg.seed, cfg.max_rate, cfg.dt) if cfg.encoding == "poisson"
              else CurrentSource(x, cfg.max_rate, cfg.dt))
    neurons = graph.neuron_nodes()
    v = {n.name: np.zeros((b, *shapes[n.name]), dtype=np.float32) for n in neurons}
    refr = ({n.name: np.zeros((b, *shapes[n.name]), dtype=np.int32) for n in neurons}
            if cfg.refractory_steps > 0 else {})
    bias = {n.name: (n.bias.reshape(-1, 1, 1) if n.op == "conv2d" else n.bias).astype(np.float32)
            for n in neurons if n.bias is not None}
    totals = {k: np.zeros(shapes[k], dtype=np.int64) for k in [INPUT, *v]}
    counts = np.zeros((b, shapes[graph.output.name][0]), dtype=np.int32)
    correct = np.zeros(cfg.steps, dtype=np.int64)
    for t in range(cfg.steps):
        vals = {INPUT: source.step(t)}
        for n in graph.nodes:
            inp = vals[n.inputs[0]]
            if n.op == "flatten":
                vals[n.name] = inp.reshape(b, -1)
                continue
            current = apply(n, inp)
            if n.name in bias:
                current += bias[n.name]
            spikes = if_step(v[n.name], current, n.threshold, cfg.reset,
                             refr.get(n.name), cfg.refractory_steps)
            totals[n.name] += spikes.sum(axis=0)
            vals[n.name] = spikes.astype(np.float32)
        if cfg.encoding == "poisson":
            totals[INPUT] += vals[INPUT].sum(axis=0).astype(np.int64)
        counts += vals[graph.output.name].astype(np.int32)
        correct[t] = int((counts.argmax(axis=1) == y).sum())
    return correct, totals, counts


def simulate(graph: Graph, x: np.ndarray, y: np.ndarray, config: SimConfig,
             progress: Progress | None = None, task: str = "simulate") -> SimResult:
    """Simulate ``graph`` on inputs ``x`` (N, ...) in [0, 1] with labels ``y`` (N,)."""
    return run_batches(graph, x, y, config, step_batch, "numpy", progress, task)


@hookimpl
def snnbalance_simulators():
    yield Simulator("numpy", "NumPy reference: defines the semantics (CPU, float32)", simulate, ("cpu",))
