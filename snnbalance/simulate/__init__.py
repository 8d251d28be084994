"""Spiking simulation: settings, results, and the dispatch to simulator plugins.

:mod:`.numpy_ref` defines the semantics; every other back end is tested against it.
"""

from __future__ import annotations

import numpy as np

from ..errors import SnnBalanceError
from ..graph import Graph
from ..progress import Progress
from .core import SimConfig, SimResult

AUTO_PREFERENCE = ("spikingjelly", "numpy")


def choose_simulator(graph: Graph, device: str = "cpu") -> str:
    """The back end ``--simulator auto`` uses: the first of :data:`AUTO_PREFERENCE` that is
    installed, runs on ``device`` and supports every node kind of ``graph`` (``graph.kinds()``:
    layer ops, and ``bias-map`` for per-position biases)."""
    return explain_choice(graph, device)[0]


def explain_choice(graph: Graph, device: str = "cpu") -> tuple[str, list[str]]:
    """:func:`choose_simulator`'s choice, and why each back end it prefers was passed over.

    Returns:
        The simulator's name and one phrase per preferred back end that was not chosen.
    Raises:
        SnnBalanceError: no installed simulator runs ``graph`` on ``device``.
    """
    from ..plugins import registry

    sims = registry().simulators
    kinds = graph.kinds()
    passed: list[str] = []
    for name in AUTO_PREFERENCE:
        sim = sims.get(name)
        if sim is None:
            passed.append(f"{name} is not installed")
        elif device not in sim.devices:
            passed.append(f"{name} does not run on {device}")
        elif sim.ops is not None and not kinds <= set(sim.ops):
            passed.append(f"{name} does not support {', '.join(sorted(kinds - set(sim.ops)))}")
        else:
            return name, passed
    raise SnnBalanceError(f"no installed simulator runs this network on {device!r} ({'; '.join(passed)})")


def simulate(
    graph: Graph,
    x: np.ndarray,
    y: np.ndarray,
    config: SimConfig | None = None,
    *,
    simulator: str = "numpy",
    progress: Progress | None = None,
    task: str = "simulate",
) -> SimResult:
    """Simulate a balanced graph on inputs ``x`` (N, ...) in [0, 1] with labels ``y``.

    Args:
        graph: a balanced network (see :func:`snnbalance.normalize.normalize`).
        x: inputs, one row per sample, reshaped to ``graph.input_shape``.
        y: integer labels (N,).
        config: simulation settings (defaults: 1000 ms, dt 1 ms, Poisson 1000 Hz, reset to zero).
        simulator: name of a simulator plugin (``snnbalance plugins`` lists them).
        progress: receives a :class:`~snnbalance.progress.ProgressEvent` after each batch.
        task: label of those events.
    Returns:
        The measured :class:`SimResult`.
    """
    from ..plugins import registry

    config = config or SimConfig()
    sim = registry().simulator(simulator)
    if config.device not in sim.devices:
        raise SnnBalanceError(f"simulator {simulator!r} runs on {', '.join(sim.devices)}, not {config.device!r}")
    return sim.simulate(graph, np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.int64), config, progress=progress, task=task)


__all__ = ["SimConfig", "SimResult", "choose_simulator", "explain_choice", "simulate"]
