"""Measure how fast each method gets close to the ANN on one network (docs/results/latency/).

    SNNBALANCE_DATA=../shared/data .venv/bin/python docs/results/latency/run_latency.py \
        [--model FILE --arch A --dataset D] --samples 1000 --duration 100 -o docs/results/latency/mnist-cnn

Every method runs with reset zero and subtract, from an empty membrane and from half the threshold,
on the same input spikes (Poisson 1000 Hz, dt 1 ms, seed 0). For each, the time from which accuracy
stays within 0.3 / 0.5 / 1 points of the ANN, and the synaptic operations per image spent by then
*measured* by simulating only up to that time (not the constant-rate estimate of results.json).
Writes results.json (one convert-style report per run) and table.md.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from snnbalance.normalize import normalize
from snnbalance.pipeline import ConvertConfig, ann_accuracy, fit_inputs, load_data, load_network
from snnbalance.records import Calibration
from snnbalance.simulate import SimConfig, simulate

POINTS = (0.3, 0.5, 1.0)


def methods(reset: str, v: float, steps: int = 16) -> list[tuple[str, float | None]]:
    """(normalizer spec, --v-init) pairs: built-ins take the run's v_init, plugins their own option."""
    sim_v = None if v == 0 else v
    built = [(s, sim_v) for s in ("baseline", "data-based", "robust", "robust:per=channel")]
    t = f"T={steps},v_init={v:g}"
    plugins = [(f"threshold-balancing:{t}", None),
               (f"calibration:{t},reset={reset}", None),
               (f"calibration:{t},reset={reset},base=threshold-balancing", None),
               (f"calibration:{t},reset={reset},mode=potential", None)]
    return built + plugins


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model"), ap.add_argument("--arch"), ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--duration", type=float, default=100.0)
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--resets", default="zero,subtract")
    ap.add_argument("--v-inits", default="0,0.5")
    ap.add_argument("--T", type=int, default=16, help="the plugins' target steps")
    ap.add_argument("--plugins-only", action="store_true")
    a = ap.parse_args()
    cfg = ConvertConfig(model=a.model, arch=a.arch, dataset=a.dataset, samples=a.samples)
    imported, name = load_network(cfg)
    graph = imported.graph
    x, y, calib, _ = load_data(cfg, True, shape=graph.input_shape)
    x = fit_inputs(graph, x, cfg.dataset)
    ann = ann_accuracy(graph, x, y)
    calibration = Calibration(calib.reshape(len(calib), *graph.input_shape))
    rows, runs = [], []
    for reset in a.resets.split(","):
        for v in map(float, a.v_inits.split(",")):
            for spec, sim_v in methods(reset, v, a.T)[4 if a.plugins_only else 0:]:
                t0 = time.perf_counter()
                g = normalize(graph, spec, calibration=calibration).graph
                sim = SimConfig(duration=a.duration, reset=reset, v_init=sim_v, seed=0)
                r = simulate(g, x, y, sim, simulator="spikingjelly")
                row = {"normalizer": spec, "reset": reset, "v_init": v, "final": r.final_accuracy,
                       "acc_8ms": r.accuracy_at(8), "acc_16ms": r.accuracy_at(16),
                       "synops_full": r.synaptic_ops_per_sample}
                for p in POINTS:
                    t = r.time_to_within(p / 100.0, of=ann)
                    row[f"t_{p:g}"] = t
                    if math.isfinite(t):  # measured: simulate only up to t
                        short = SimConfig(duration=t, reset=reset, v_init=sim_v, seed=0)
                        row[f"ops_{p:g}"] = simulate(g, x, y, short, simulator="spikingjelly").synaptic_ops_per_sample
                    else:
                        row[f"ops_{p:g}"] = float("nan")
                row["seconds"] = time.perf_counter() - t0
                rows.append(row)
                runs.append({**row, "accuracy_over_time": [round(float(q), 6) for q in r.accuracy_over_time]})
                print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
    out = Path(a.output)
    out.mkdir(parents=True, exist_ok=True)
    clean = lambda v: None if isinstance(v, float) and not math.isfinite(v) else v  # noqa: E731
    (out / "results.json").write_text(json.dumps(
        {"model": name, "dataset": a.dataset, "samples": len(x), "ann_accuracy": ann, "duration_ms": a.duration,
         "runs": [{k: clean(v) for k, v in r.items()} for r in runs]}, indent=1) + "\n")
    (out / "table.md").write_text(table(rows, ann))


def table(rows: list[dict], ann: float) -> str:
    f = lambda v: "never" if not math.isfinite(v) else f"{v:g}"  # noqa: E731
    s = lambda v: "-" if not math.isfinite(v) else (f"{v / 1e6:.2f}M" if v >= 1e6 else f"{v / 1e3:.0f}k")  # noqa: E731
    lines = [f"ANN {100 * ann:.2f} %\n",
             "| normalizer | reset | v_init | 8 ms | 16 ms | final | ≤0.3 pt [ms] | synops | ≤0.5 pt [ms] | synops "
             "| ≤1 pt [ms] | synops |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| `{r['normalizer']}` | {r['reset']} | {r['v_init']:g} | {100 * r['acc_8ms']:.2f} | "
                     f"{100 * r['acc_16ms']:.2f} | {100 * r['final']:.2f} | {f(r['t_0.3'])} | {s(r['ops_0.3'])} | "
                     f"{f(r['t_0.5'])} | {s(r['ops_0.5'])} | {f(r['t_1'])} | {s(r['ops_1'])} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
