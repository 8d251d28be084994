"""SpikingJelly's own ann2snn flow on the same trained network, the reference point of every rate:
``Converter`` with ``RateCodingRecipe(mode="max")`` and IF neurons reset to 0, driven by
SpikingJelly's ``PoissonEncoder`` and stepped as its documentation does, single-step and
multi-step."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from .machine import PeakMemory
from .measure import image_step_rate


def sj_convert(model: Any, x_cal: np.ndarray, device: str) -> Any:
    """SpikingJelly's ann2snn: Converter + RateCodingRecipe(mode="max"), IF neurons reset to 0."""
    import copy

    import torch
    from spikingjelly.activation_based import ann2snn, neuron

    loader = [torch.from_numpy(x_cal[i : i + 250]) for i in range(0, len(x_cal), 250)]
    recipe = ann2snn.RateCodingRecipe(
        dataloader=loader, mode="max", neuron_factory=lambda scale: neuron.IFNode(v_threshold=1.0, v_reset=0.0)
    )
    import logging

    logging.getLogger("spikingjelly").setLevel(logging.WARNING)
    saved = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"  # its calibration's progress bar would cut through ours
    try:
        return ann2snn.Converter(recipe=recipe, device=device).convert(copy.deepcopy(model).eval())
    finally:
        if saved is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = saved


def measure_sj_flow(snn: Any, x: np.ndarray, y: np.ndarray, device: str, steps: int, mode: str, batch: int) -> dict[str, Any]:
    """SpikingJelly's converted network, stepped single-step (``s``) or multi-step (``m``)."""
    import torch
    from spikingjelly.activation_based import encoding, functional

    dev = torch.device(device)
    per_sample = max(int(np.prod(p.shape[1:])) for p in _activation_shapes(snn, x[:1], dev))
    functional.set_step_mode(snn, mode)
    enc = encoding.PoissonEncoder()
    chunk = max(1, min(steps, (512 * 2**20) // (4 * batch * per_sample * 3)))
    correct = 0
    with torch.no_grad(), PeakMemory(device) as mem:
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        for lo in range(0, len(x), batch):
            img = torch.from_numpy(x[lo : lo + batch]).to(dev)
            label = torch.from_numpy(y[lo : lo + batch]).to(dev)
            functional.reset_net(snn)
            out: Any = None
            if mode == "s":
                for _ in range(steps):
                    step = snn(enc(img))
                    out = step if out is None else out + step
                    (out.argmax(dim=1) == label).sum()  # per-step accuracy, as the docs' val()
            else:
                for t0 in range(0, steps, chunk):
                    k = min(chunk, steps - t0)
                    seq = snn(enc(img.unsqueeze(0).expand(k, *img.shape)))
                    run = seq.cumsum(0) + (0 if out is None else out)
                    (run.argmax(dim=2) == label).sum(dim=1)
                    out = run[-1]
            correct += int((out.argmax(dim=1) == label).sum())
        if device == "cuda":
            torch.cuda.synchronize()
        wall = time.perf_counter() - t
    functional.set_step_mode(snn, "s")
    return {
        "image_steps_per_s": image_step_rate(len(x), steps, wall),
        "seconds": wall,
        "samples": len(x),
        "steps": steps,
        "accuracy": correct / len(x),
        "peak_mb": mem.peak_mb,
        "mode": mode,
        "cpu_seconds": mem.cpu_s,
        "chunk": chunk if mode == "m" else 1,
    }


def _activation_shapes(snn: Any, x1: np.ndarray, dev: Any) -> list[Any]:
    import torch

    shapes = []
    hooks = [m.register_forward_hook(lambda m, i, o: shapes.append(o)) for m in snn.modules() if not list(m.children())]
    try:
        from spikingjelly.activation_based import functional

        functional.set_step_mode(snn, "s")
        with torch.no_grad():
            snn(torch.from_numpy(x1).to(dev))
        functional.reset_net(snn)
    finally:
        for h in hooks:
            h.remove()
    return [s for s in shapes if isinstance(s, torch.Tensor)]


def sj_flow_rows(
    module: Any, x_cal: np.ndarray, x: np.ndarray, y: np.ndarray, device: str, steps: int, sj_steps: int | None
) -> dict[str, Any]:
    """A network's SpikingJelly-flow entries of the bench row: both modes (``sj_flow_single``,
    ``sj_flow_multi``) and the faster as ``sj_flow``; or ``sj_flow_error`` when its converter
    refuses the network."""
    try:
        snn = sj_convert(module, x_cal, device)
    except Exception as exc:  # noqa: BLE001 - its converter's limits, reported in the row
        return {"sj_flow_error": f"SpikingJelly's converter refused it: {str(exc).splitlines()[0][:200]}"}
    batch = min(len(x), 10000 if device == "cuda" else 1000)
    k = min(steps, sj_steps) if sj_steps else steps
    if device == "cuda":  # first calls compile SpikingJelly's kernels: not part of its speed
        for m in ("s", "m"):
            measure_sj_flow(snn, x[:batch], y[:batch], device, min(k, 5), m, batch)
    single, multi = (measure_sj_flow(snn, x, y, device, k, m, batch) for m in ("s", "m"))
    return {"sj_flow_single": single, "sj_flow_multi": multi, "sj_flow": max((single, multi), key=lambda f: f["image_steps_per_s"])}
