"""The ``spikingjelly`` simulator: the NumPy reference's semantics, fast, on ``cpu`` or ``cuda``.

Two engines share one contract (:func:`snnbalance.simulate.core.run_batches`, bit-identical input
spikes, float32 potentials, ``V >= threshold``, reset to 0 or subtract, refractory period):

* ``native`` (CPU default): an event-driven C kernel (:mod:`.native`, source ``native.c``) that
  does work per spike, not per synapse; compiled on first use with the system C compiler.
* ``torch`` (CUDA, and CPU when no compiler is found): time chunks of ``K`` steps, one matrix
  product per layer per chunk, SpikingJelly's multi-step ``IFNode`` (:mod:`.torch_kernels`).

Both run every graph kind (dense, conv, average and max pooling, residual adds, concatenation,
per-position biases, asymmetric padding) with either read-out (``SimConfig.readout``: output spike
counts, or the output layer's integrated potential); :mod:`.engines` chooses between them.

Options (``SimConfig.options``, string values, all optional):

* ``engine``: ``auto`` (native on CPU when it builds, else torch, and the run's ``engine`` record
  says why, e.g. ``torch/sj/fp32 (native build failed: ...)``), ``native`` or ``torch``.
* ``neuron``: the torch engine's neurons (naming one selects the torch engine): ``sj``
  (SpikingJelly's IFNode, default; SpikingJelly is the ``spikingjelly`` extra, and without it the
  default becomes ``torch``, the same spikes, noted in the engine name), ``torch`` (plain ops) or
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

import numpy as np

from ..graph import Graph
from ..hookspecs import hookimpl
from ..progress import Progress
from ..records import Simulator
from .core import READOUTS, SimConfig, SimResult, run_batches
from .engines import INT_OPTIONS, OPTIONS, engine_used, make_stepper, options  # noqa: F401  (re-exported)
from .native import SUPPORTED_KINDS


def simulate(
    graph: Graph, x: np.ndarray, y: np.ndarray, config: SimConfig, progress: Progress | None = None, task: str = "simulate"
) -> SimResult:
    """Simulate ``graph`` on inputs ``x`` (N, ...) in [0, 1] with labels ``y`` (N,)."""
    config.validate()
    graph.validate()
    step, engine = make_stepper(graph, config)
    res = run_batches(graph, x, y, config, step, "spikingjelly", progress, task)
    res.engine = engine_used(step, engine)
    return res


@hookimpl
def snnbalance_simulators():
    yield Simulator(
        "spikingjelly",
        "Fast back end, same semantics as numpy: event-driven C kernel on CPU, SpikingJelly IFNode multi-step on CUDA",
        simulate,
        ("cpu", "cuda"),
        ops=SUPPORTED_KINDS,
        readouts=READOUTS,
    )
