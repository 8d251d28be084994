"""This project's two simulators measured: the fast engine on the whole run, the NumPy reference
on a capped subset (its rate is steady)."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np

from ..graph import Graph
from .machine import PeakMemory

MAX_RATE = 1000.0
NUMPY_CAP = (100, 100)  # samples, steps of the NumPy reference measurement (its rate is steady)


def image_step_rate(samples: int, steps: int, seconds: float) -> float:
    """Image-steps per second (NaN for a run too short to time)."""
    return samples * steps / seconds if seconds > 0 else float("nan")


def measure_ours(
    graph: Graph, x: np.ndarray, y: np.ndarray, device: str, steps: int, options: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Our fast engine on the whole run; with the native engine, each layer's share of its time."""
    from ..simulate import SimConfig
    from ..simulate.core import run_batches
    from ..simulate.engines import engine_used, make_stepper

    cfg = SimConfig(
        duration=float(steps),
        max_rate=MAX_RATE,
        device=device,
        batch_size=min(len(x), 10000 if device == "cuda" else 1000),
        options=dict(options or {}),
    )
    profile: dict[str, float] = {}
    stepper, engine = make_stepper(graph, cfg, profile=profile)  # also builds the native kernel first
    if device == "cuda":
        warm = dataclasses.replace(cfg, duration=min(steps, 20.0))
        n = min(256, len(x))
        stepper(graph, x[:n], np.arange(n), y[:n], warm)  # also runs a reduced precision's probe
        engine = engine_used(stepper, engine)
    with PeakMemory(device) as mem:
        t = time.perf_counter()
        res = run_batches(graph, x, y, cfg, stepper, "spikingjelly")
        wall = time.perf_counter() - t
    return {
        "image_steps_per_s": image_step_rate(len(x), steps, wall),
        "seconds": wall,
        "samples": len(x),
        "steps": steps,
        "accuracy": res.final_accuracy,
        "peak_mb": mem.peak_mb,
        "engine": engine,
        "cpu_seconds": mem.cpu_s,
        "firing_rates_hz": res.firing_rates,
        "layer_share": {k: v / sum(profile.values()) for k, v in profile.items()} if profile else {},
    }


def measure_numpy(graph: Graph, x: np.ndarray, y: np.ndarray, steps: int) -> dict[str, Any]:
    from ..simulate import SimConfig, simulate

    n, k = min(len(x), NUMPY_CAP[0]), min(steps, NUMPY_CAP[1])
    cfg = SimConfig(duration=float(k), max_rate=MAX_RATE, batch_size=n)
    with PeakMemory("cpu") as mem:
        t = time.perf_counter()
        res = simulate(graph, x[:n], y[:n], cfg, simulator="numpy")
        wall = time.perf_counter() - t
    return {
        "image_steps_per_s": image_step_rate(n, k, wall),
        "seconds": wall,
        "samples": n,
        "steps": k,
        "accuracy": res.final_accuracy,
        "peak_mb": mem.peak_mb,
        "cpu_seconds": mem.cpu_s,
    }
