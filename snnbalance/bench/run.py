"""The whole benchmark: every method on every network, as plain JSON-ready numbers."""

from __future__ import annotations

import os
from typing import Any

from ..errors import SnnBalanceError
from ..extras import require
from ..progress import Progress, ProgressEvent, emit
from .machine import load_average, machine, matmul_rate
from .measure import MAX_RATE, measure_numpy, measure_ours
from .networks import CALIBRATION, BenchNet, paper_networks
from .sj_flow import sj_flow_rows

METHODS = ("numpy", "spikingjelly", "sj_flow")


def run_bench(
    device: str = "cpu",
    samples: int = 1000,
    duration: float = 1000,
    models: dict[str, Any] | None = None,
    progress: Progress | None = None,
    options: dict[str, Any] | None = None,
    methods: tuple[str, ...] = METHODS,
    sj_steps: int | None = 100,
    calibration: int = CALIBRATION,
    gemm_seconds: float = 2.0,
    data_dir: str | os.PathLike | None = None,
    networks: list[BenchNet] | None = None,
) -> dict[str, Any]:
    """Measure every method on every network; return plain numbers (JSON-ready).

    Args:
        device: ``cpu`` or ``cuda``.
        samples: test images B.
        duration: simulated ms T (dt = 1 ms, so T steps).
        models: ``{"mlp": path-or-None, "cnn": path-or-None}``; a value may also be a torch
            module. Missing keys: both networks with their default models. Ignored when
            ``networks`` is given.
        progress: receives a ProgressEvent per finished measurement.
        options: spikingjelly simulator options.
        methods: which measurements to make (the ceiling is always measured).
        sj_steps: steps of SpikingJelly's flow (all ``samples``, at most this many steps; None or
            0: all T). Its cost per step is constant, so the rate needs no more; at its speed on
            a small CPU the full T would take the better part of an hour.
        calibration: training images for data-based normalization and SpikingJelly's recipe.
        gemm_seconds: how long to time the SGEMM of the ceiling.
        data_dir: dataset root (else ``$SNNBALANCE_DATA``, else the user cache); without MNIST
            there, the embedded 1,000-image slices are used.
        networks: the networks to measure (e.g. :func:`model_network`); default: the paper's two.
    """
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise SnnBalanceError("CUDA is not available on this machine; use --device cpu")
    if samples < 1 or duration < 1:
        raise SnnBalanceError("need at least 1 sample and 1 ms")
    if "sj_flow" in methods:
        require("spikingjelly", "the comparison with SpikingJelly's own flow")
    steps = int(round(duration))
    if networks is None:
        networks = paper_networks({"mlp": None, "cnn": None} if models is None else models, calibration, data_dir, progress)
    for net in networks:
        if samples > len(net.x):
            raise SnnBalanceError(f"only {len(net.x)} test images are available for {net.name}, asked for {samples}")
    out: dict[str, Any] = {
        "machine": machine(device),
        "samples": samples,
        "steps": steps,
        "dt_ms": 1.0,
        "max_rate_hz": MAX_RATE,
        "load_before": load_average(),
        "models": {},
    }
    gemm = matmul_rate(device, gemm_seconds)
    out["matmul"] = gemm
    total = len(networks) * len(methods)
    for i, net in enumerate(networks):
        row = measure_network(
            net,
            methods,
            samples,
            steps,
            device,
            gemm["macs_per_s"],
            options=options,
            sj_steps=sj_steps,
            progress=progress,
            done=i * len(methods),
            total=total,
        )
        out["models"][net.name] = row
    emit(progress, ProgressEvent("bench", total, total))
    out["load_after"] = load_average()
    return out


def measure_network(
    net: BenchNet,
    methods: tuple[str, ...],
    samples: int,
    steps: int,
    device: str,
    macs_per_s: float,
    options: dict[str, Any] | None = None,
    sj_steps: int | None = 100,
    progress: Progress | None = None,
    done: int = 0,
    total: int = 0,
) -> dict[str, Any]:
    """One network's row: data-based balancing, then each method on its first ``samples`` images
    for ``steps`` steps, each rate also relative to SpikingJelly's flow and to the ceiling
    (``macs_per_s`` over the network's MACs per image-step). ``done`` of ``total`` measurements
    were finished before this network (for the progress events)."""
    from ..normalize import normalize
    from ..records import Calibration

    x, y = net.x[:samples], net.y[:samples]
    balanced = normalize(net.graph, "data-based", calibration=Calibration(net.x_cal)).graph
    macs = net.graph.total_macs()
    row: dict[str, Any] = {"model": net.how, "macs_per_image_step": macs, "ceiling": {"image_steps_per_s": macs_per_s / macs}}
    for method in methods:
        emit(progress, ProgressEvent(f"{net.name}: {method}", done, total))
        if method == "numpy":
            row["numpy"] = measure_numpy(balanced, x, y, steps)
        elif method == "spikingjelly":
            row["spikingjelly"] = measure_ours(balanced, x, y, device, steps, options)
        elif method == "sj_flow":
            row.update(sj_flow_rows(net.module, net.x_cal, x, y, device, steps, sj_steps))
        done += 1
    _add_ratios(row)
    return row


def _add_ratios(row: dict[str, Any]) -> None:
    """``vs_sj_flow`` (None without the flow) and ``vs_ceiling`` on every measured rate."""
    ref = row.get("sj_flow", {}).get("image_steps_per_s")
    for key in ("numpy", "spikingjelly", "sj_flow", "ceiling"):
        if key in row:
            r = row[key]["image_steps_per_s"]
            row[key]["vs_sj_flow"] = r / ref if ref else None
            row[key]["vs_ceiling"] = r / row["ceiling"]["image_steps_per_s"]
