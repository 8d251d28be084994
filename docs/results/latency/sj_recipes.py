"""SpikingJelly 2.0's own ANN-to-SNN recipes on the same trained network (docs/results/latency/).

    SNNBALANCE_DATA=../shared/data .venv/bin/python docs/results/latency/sj_recipes.py \
        [--model FILE --arch mlp|cnn --dataset D] --samples 1000 --steps 100 -o docs/results/latency/mnist-cnn

Converts the trained torch model with ``spikingjelly.activation_based.ann2snn.Converter`` (the
FX converter) and each recipe SpikingJelly 2.0.0 ships for ReLU networks, calibrated on the same
1,000 seeded training images as run_latency.py (``snnbalance.pipeline.load_data``, batches of
``--calib-batch``, as SpikingJelly's MNIST example), then simulates it with SpikingJelly's own
flow (``functional.reset_net``; the converted module called once per step; the prediction after
step t is the argmax of the output summed over steps 1..t, as in ``ann2snn/examples/cnn_mnist.py``)
for ``--steps`` steps on the same test images, with two inputs:

- ``poisson``: snnbalance's input spikes (``snnbalance.simulate.encoding.PoissonSource``, 1000 Hz,
  dt 1 ms, seed 0): the very spikes run_latency.py feeds, one step = 1 ms;
- ``direct``: SpikingJelly's default, the analog image fed as input current every step.

Recipes (``--recipes``, comma-separated):

- ``max``, ``99.9%``, ``0.5``: ``RateCodingRecipe(mode=...)``: one scale per layer from a running
  average (momentum 0.1) over calibration batches of the max, the 99.9th percentile, or half the
  max of each ReLU's output; soft-reset ``IFNode`` (reset by subtraction), threshold 1, v_init 0;
- ``99.9%-channel-half``: ``RateCodingRecipe(mode="99.9%", channel_wise=True, half_threshold=True)``:
  per-channel scales, ``HalfThresholdIFNode`` (v_init 0.5);
- ``ltb``: ``LocalThresholdBalancingRecipe`` (Bu, Li & Yu, CVPR 2025): per-channel thresholds
  from calibration, ``HalfThresholdIFNode`` (v_init 0.5), weights untouched.

The last layer (no ReLU) stays analog in every recipe: its output is accumulated, not spiked
(snnbalance's output layer spikes and counts spikes). ``--spiking-output`` adds, for each recipe,
a run (with the first of ``--encodings`` only) whose output layer spikes too, to separate the read-out from the rest: the converted
network's output divided by the largest positive output of the ANN on the calibration images (the
max rule) into IF neurons with reset by subtraction, threshold 1, and the recipe's initial
potential (0.5 for ``99.9%-channel-half`` and ``ltb``, else 0); the prediction is then the argmax
of the output spike counts, as in snnbalance. Simulated time only; no wall-clock claims.
Writes OUTPUT/sj-recipes.json and OUTPUT/sj-recipes.md.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
from pathlib import Path

import numpy as np
import torch

from snnbalance.pipeline import ConvertConfig, default_model, fit_inputs, load_data
from snnbalance.simulate.core import time_within
from snnbalance.simulate.encoding import PoissonSource

POINTS = (0.3, 0.5, 1.0)
RECIPES = ("max", "99.9%", "0.5", "99.9%-channel-half", "ltb")


def recipe(key: str, loader):
    from spikingjelly.activation_based import ann2snn

    if key == "ltb":
        return ann2snn.LocalThresholdBalancingRecipe(dataloader=loader)
    if key == "99.9%-channel-half":
        return ann2snn.RateCodingRecipe(dataloader=loader, mode="99.9%", channel_wise=True, half_threshold=True)
    return ann2snn.RateCodingRecipe(dataloader=loader, mode=float(key) if key[0].isdigit() and "%" not in key else key)


def load_torch_model(model: str | None, arch: str | None) -> tuple[torch.nn.Module, str]:
    from snnbalance.models import PaperCNN
    from snnbalance.train import build_model

    if model is None:
        net, path, name = PaperCNN(), default_model(), "embedded: paper CNN trained on MNIST"
    else:
        net, path, name = build_model(arch or "cnn")[0], Path(model), str(model)
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return net.eval(), name


HALF = ("99.9%-channel-half", "ltb")


def spiking_output(snn: torch.nn.Module, ann: torch.nn.Module, calib: np.ndarray, half: bool) -> torch.nn.Module:
    """``snn`` followed by IF neurons on its output (see the module docstring)."""
    from spikingjelly.activation_based import neuron
    from spikingjelly.activation_based.ann2snn.modules import VoltageScaler

    with torch.no_grad():
        top = float(ann(torch.from_numpy(calib)).clamp(min=0).max())
    return torch.nn.Sequential(snn, VoltageScaler(1.0 / top), neuron.HalfThresholdIFNode() if half else neuron.IFNode(v_reset=None))


def simulate_sj(snn: torch.nn.Module, x: np.ndarray, y: np.ndarray, steps: int, encoding: str, batch: int) -> np.ndarray:
    """Accuracy after each step with SpikingJelly's flow: reset, call once per step, sum the outputs."""
    from spikingjelly.activation_based import functional

    correct = np.zeros(steps, dtype=np.int64)
    with torch.no_grad():
        for i0 in range(0, len(x), batch):
            xb, yb = x[i0 : i0 + batch], torch.as_tensor(y[i0 : i0 + batch])
            src = PoissonSource(xb, np.arange(i0, i0 + len(xb)), 0, 1000.0, 1.0) if encoding == "poisson" else None
            functional.reset_net(snn)
            out = None
            for t in range(steps):
                inp = torch.from_numpy(src.step(t) if src is not None else xb)
                step = snn(inp)
                out = step if out is None else out + step
                correct[t] += int((out.argmax(1) == yb).sum())
    return correct / len(x)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model"), ap.add_argument("--arch"), ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--recipes", default=",".join(RECIPES))
    ap.add_argument("--encodings", default="poisson,direct")
    ap.add_argument("--calib-batch", type=int, default=100)
    ap.add_argument("--batch", type=int, default=250)
    ap.add_argument("--spiking-output", action="store_true", help="also each recipe with a spiking output layer")
    ap.add_argument("-o", "--output", required=True)
    a = ap.parse_args()
    import spikingjelly
    from spikingjelly.activation_based import ann2snn

    torch.manual_seed(0)
    ann, name = load_torch_model(a.model, a.arch)
    cfg = ConvertConfig(model=a.model, arch=a.arch, dataset=a.dataset, samples=a.samples)
    x, y, calib, _ = load_data(cfg, True, shape=(1, 28, 28))

    class Shape:  # fit_inputs needs only the input shape
        input_shape = (1, 28, 28)

    x = fit_inputs(Shape, x, a.dataset).astype(np.float32)
    calib = fit_inputs(Shape, calib, a.dataset).astype(np.float32)
    with torch.no_grad():
        ann_acc = float((ann(torch.from_numpy(x)).argmax(1).numpy() == y).mean())
    loader = [torch.from_numpy(calib[i : i + a.calib_batch]) for i in range(0, len(calib), a.calib_batch)]
    runs = []
    for key in a.recipes.split(","):
        snn = ann2snn.Converter(recipe=recipe(key, loader), device="cpu").convert(copy.deepcopy(ann))
        variants = [("analog", snn)] + ([("spikes", spiking_output(snn, ann, calib, key in HALF))] if a.spiking_output else [])
        encodings = a.encodings.split(",")
        for (readout, net), enc in ((v, e) for v in variants for e in (encodings if v[0] == "analog" else encodings[:1])):
            curve = simulate_sj(net, x, y, a.steps, enc, a.batch)
            run = {
                "recipe": key,
                "readout": readout,
                "encoding": enc,
                "final": float(curve[-1]),
                "acc_8": float(curve[7]),
                "acc_16": float(curve[15]),
                **{f"t_{p:g}": time_within(curve, 1.0, p / 100.0, of=ann_acc) for p in POINTS},
                "accuracy_over_time": [round(float(q), 6) for q in curve],
            }
            runs.append(run)
            print(json.dumps({k: v for k, v in run.items() if k != "accuracy_over_time"}), flush=True)
    out = Path(a.output)
    out.mkdir(parents=True, exist_ok=True)
    clean = lambda v: None if isinstance(v, float) and not math.isfinite(v) else v  # noqa: E731
    (out / "sj-recipes.json").write_text(
        json.dumps(
            {
                "model": name,
                "dataset": a.dataset,
                "samples": len(x),
                "calibration_samples": len(calib),
                "ann_accuracy": ann_acc,
                "steps": a.steps,
                "spikingjelly": spikingjelly.__version__ if hasattr(spikingjelly, "__version__") else _version("spikingjelly"),
                "torch": torch.__version__,
                "runs": [{k: clean(v) for k, v in r.items()} for r in runs],
            },
            indent=1,
        )
        + "\n"
    )
    (out / "sj-recipes.md").write_text(table(runs, ann_acc))


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


def table(runs: list[dict], ann: float) -> str:
    f = lambda v: "never" if v is None or not math.isfinite(v) else f"{v:g}"  # noqa: E731
    lines = [
        f'ANN {100 * ann:.2f} % (SpikingJelly\'s Converter and flow; "≤p pt": first step from which '
        "accuracy stays within p points of the ANN, 1 step = 1 ms)\n",
        "| recipe | output | input | 8 steps | 16 steps | final | ≤0.3 pt | ≤0.5 pt | ≤1 pt |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| `{r['recipe']}` | {r.get('readout', 'analog')} | {r['encoding']} | {100 * r['acc_8']:.2f} | "
            f"{100 * r['acc_16']:.2f} | "
            f"{100 * r['final']:.2f} | {f(r['t_0.3'])} | {f(r['t_0.5'])} | {f(r['t_1'])} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
