"""How long a balanced network needs: the advice a run gets when its output has not settled.

A normalizer that scales weights down hard (model-based on a CNN) can leave the output layer
silent for the whole default duration: every prediction is then class 0, and the table shows
8.5 % beside 99.6 %. Rather than guessing from rates, a short check simulates a few images much
longer and measures when their accuracy settles, so the advice names a duration that works
("--duration 1500"). :func:`snnbalance.pipeline.convert` calls :func:`duration_advice` once per
run and adds its message to ``ConversionReport.warnings``; the CLI and the TUI only show it.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .graph import Graph
from .progress import Progress
from .simulate import SimConfig, SimResult, simulate

CHECK_IMAGES = 100
"""Images the check simulates: enough to see when accuracy settles, few enough to take seconds."""
CHECK_FACTOR = 10
"""The check simulates this many times the run's duration (at least 2 s, at most 20 s)."""


def silent_output(result: SimResult, output: str) -> bool:
    """The output layer never spiked: every prediction is class 0."""
    return result.spike_counts.get(output, 1) == 0


def unsettled(result: SimResult, ann_accuracy: float) -> bool:
    """Accuracy is well below the ANN's and was still changing in the second half of the run."""
    if result.cancelled or not len(result.accuracy_over_time):
        return False
    duration = result.steps * result.dt
    t = result.time_to_within(0.01)
    return result.final_accuracy < ann_accuracy - 0.02 and not (math.isfinite(t) and t <= duration / 2)


def suggest_duration(ms: float, dt: float) -> float:
    """A round duration (1, 1.5, 2, 3, 5 x 10^k ms) of at least ``ms``, a whole number of ``dt`` steps."""
    k = 10 ** math.floor(math.log10(max(ms, dt, 1e-9)))
    nice = next(m * k for m in (1, 1.5, 2, 3, 5, 10) if m * k >= ms)
    return math.ceil(nice / dt - 1e-9) * dt


def duration_advice(
    graph: Graph,
    x: np.ndarray,
    y: np.ndarray,
    sim: SimConfig,
    result: SimResult,
    ann_accuracy: float,
    name: str,
    *,
    simulator: str,
    progress: Progress | None = None,
) -> str | None:
    """One line for a run whose output never spiked or had not settled; None when it is fine.

    Args:
        graph: the balanced network that ran.
        x, y: the images it ran on (the check takes the first :data:`CHECK_IMAGES`).
        sim: the run's settings; the check simulates ``CHECK_FACTOR`` times longer.
        result: what the run measured.
        ann_accuracy: the ANN's accuracy on the same images.
        name: the normalizer, as the message names it.
        simulator: the back end that ran.
        progress: receives the check's events (task ``check NAME``).
    Returns:
        e.g. ``"model-based: no output spike within 300 ms (every prediction is class 0); a
        3000 ms check on 100 images settles after about 1.2 s: --duration 1500"``.
    """
    silent = silent_output(result, graph.output.name)
    if not (silent or unsettled(result, ann_accuracy)) or result.cancelled:
        return None
    duration = result.steps * result.dt
    what = (
        f"{name}: no output spike within {duration:g} ms (every prediction is class 0)"
        if silent
        else f"{name}: still settling at {duration:g} ms ({100 * result.final_accuracy:.2f} % against the ANN's {100 * ann_accuracy:.2f} %)"
    )
    longer = suggest_duration(min(max(CHECK_FACTOR * duration, 2000.0), 20000.0), sim.dt)
    n = min(CHECK_IMAGES, len(x))
    check = simulate(
        graph,
        x[:n],
        y[:n],
        dataclasses.replace(sim, duration=longer, batch_seconds=1.0),
        simulator=simulator,
        progress=progress,
        task=f"check {name}",
    )
    if check.cancelled:
        return f"{what}; it needs a longer --duration"
    probe = f"a {longer:g} ms check on {n} images"
    if silent_output(check, graph.output.name):
        return f"{what}; {probe} saw no output spike either: this normalization does not fit this network"
    settle = check.time_to_within(0.01)
    if check.final_accuracy < ann_accuracy - 0.05 or not math.isfinite(settle):
        return f"{what}; {probe} reaches {100 * check.final_accuracy:.2f} %: it needs more than --duration {longer:g}"
    return f"{what}; {probe} settles after about {settle / 1000:.2g} s: --duration {suggest_duration(1.2 * settle, sim.dt):g}"


__all__ = ["duration_advice", "silent_output", "suggest_duration", "unsettled"]
