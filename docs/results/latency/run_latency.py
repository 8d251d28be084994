"""Measure how fast each method gets close to the ANN on one network (docs/results/latency/).

    SNNBALANCE_DATA=../shared/data .venv/bin/python docs/results/latency/run_latency.py \
        [--model FILE --arch A --dataset D] --samples 1000 --duration 100 -o docs/results/latency/mnist-cnn

Every method runs with reset zero and subtract, from an empty membrane and from half the threshold,
on the same input spikes (Poisson 1000 Hz, dt 1 ms, seed 0). For each, the time from which accuracy
stays within 0.3 / 0.5 / 1 points of the ANN, and the synaptic operations per image spent by then
*measured* by simulating only up to that time (not the constant-rate estimate of results.json).
Writes results.json (one convert-style report per run) and table.md.

Methods (``--methods`` picks some by key, comma-separated; default all):

- today's (the issue's "best of today's methods" when run at v_init 0): ``copy`` (``baseline``,
  threshold 1), ``copy-tuned`` (``baseline`` at the threshold the reproduction's sweep picks:
  :func:`snnbalance.reproduce.sweep_thresholds` on the last ``--sweep-samples`` training images,
  reset to zero, for ``--duration``, best final accuracy), ``model-based``, ``data-based``,
  ``robust``, ``robust-channel`` (``robust:per=channel``), ``spikenorm`` (calibrated with the
  run's reset). Built-ins take the run's ``--v-init``.
- the plugins, which set ``v_init`` themselves (their ``v_init`` option) for ``--T`` steps:
  ``threshold-balancing``, ``calibration``, ``calibration-tb`` (``base=threshold-balancing``),
  ``calibration-potential`` (``mode=potential``). ``--plugins-only`` keeps just these.

``--readout membrane`` predicts from the output layer's accumulated potential instead of its spike
counts (``docs/semantics.md``, "Read-out"; default ``spikes``).

``--append`` keeps the runs already in OUTPUT/results.json and replaces those measured again
(same normalizer label, reset and v_init).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

from snnbalance.normalize import normalize
from snnbalance.pipeline import ConvertConfig, ann_accuracy, fit_inputs, load_data, load_network
from snnbalance.records import Calibration
from snnbalance.simulate import SimConfig, simulate

POINTS = (0.3, 0.5, 1.0)
SIMULATOR = "spikingjelly"


@dataclass(frozen=True)
class Method:
    key: str
    spec: str  # normalizer spec, as `convert -n` takes it
    v_init: float | None  # the simulation's --v-init (None: each layer's own, which the plugins set)
    plugin: bool  # a calibration plugin of issue 15 (sets its own v_init)
    threshold: float = 1.0  # baseline's threshold (the tuned copy's from the sweep)

    @property
    def label(self) -> str:
        return f"{self.spec} (tuned θ={self.threshold:g})" if self.key == "copy-tuned" else self.spec

    def today(self, v: float) -> bool:
        """One of the methods the issue's targets compare with (built-ins and robust/spikenorm, v_init 0)."""
        return not self.plugin and v == 0


KEYS = (
    "copy",
    "copy-tuned",
    "model-based",
    "data-based",
    "robust",
    "robust-channel",
    "spikenorm",
    "threshold-balancing",
    "calibration",
    "calibration-tb",
    "calibration-potential",
)


def key_of(spec: str) -> str:
    """The method key of a normalizer spec (rows written before keys were recorded)."""
    name, _, opts = spec.partition(":")
    if name == "calibration":
        return (
            "calibration-tb"
            if "base=threshold-balancing" in opts
            else "calibration-potential"
            if "mode=potential" in opts
            else "calibration"
        )
    return {"baseline": "copy", "robust": "robust-channel" if "per=channel" in opts else "robust"}.get(name, name)


def methods(reset: str, v: float, steps: int = 16, tuned: float | None = None) -> list[Method]:
    """Every method of one (reset, v_init) cell; the tuned copy only when ``tuned`` (its threshold) is given."""
    sim_v = None if v == 0 else v
    built = [Method("copy", "baseline", sim_v, False)]
    if tuned is not None:
        built.append(Method("copy-tuned", "baseline", sim_v, False, threshold=tuned))
    built += [
        Method("model-based", "model-based", sim_v, False),
        Method("data-based", "data-based", sim_v, False),
        Method("robust", "robust", sim_v, False),
        Method("robust-channel", "robust:per=channel", sim_v, False),
        Method("spikenorm", f"spikenorm:reset={reset}", sim_v, False),
    ]
    t = f"T={steps},v_init={v:g}"
    plugins = [
        Method("threshold-balancing", f"threshold-balancing:{t}", None, True),
        Method("calibration", f"calibration:{t},reset={reset}", None, True),
        Method("calibration-tb", f"calibration:{t},reset={reset},base=threshold-balancing", None, True),
        Method("calibration-potential", f"calibration:{t},reset={reset},mode=potential", None, True),
    ]
    return built + plugins


def tuned_threshold(cfg: ConvertConfig, graph, duration: float, sweep_samples: int) -> dict:
    """The reproduction's threshold sweep of the copied network on the last training images."""
    from snnbalance import data as datasets
    from snnbalance.reproduce import StudyConfig, sweep_thresholds

    xt, yt = datasets.load_dataset(cfg.dataset, "train", cfg.data_dir, shape=graph.input_shape)
    xs, ys = fit_inputs(graph, xt[-sweep_samples:], cfg.dataset), yt[-sweep_samples:]
    study = StudyConfig(duration=duration, sweep_duration=duration, sweep_samples=sweep_samples, simulator=SIMULATOR, seed=0)
    sweep = sweep_thresholds(graph, xs, ys, study, "poisson", simulate)
    sweep["train_indices"] = [len(xt) - sweep_samples, len(xt)]
    return sweep


def marks(g, x, y, r, ann: float, cfg, synops: bool = True) -> dict:
    """``t_P``: the first time from which run ``r`` stays within P points of ``ann``; ``ops_P``: the
    synaptic operations per image until then, measured by simulating ``g`` only up to that time
    (``cfg(duration)`` gives the run's config; once per distinct time; NaN when never or not ``synops``)."""
    out: dict[str, float] = {}
    measured: dict[float, float] = {}
    for p in POINTS:
        t = r.time_to_within(p / 100.0, of=ann)
        out[f"t_{p:g}"] = t
        if math.isfinite(t) and synops and t not in measured:
            measured[t] = simulate(g, x, y, cfg(t), simulator=SIMULATOR).synaptic_ops_per_sample
        out[f"ops_{p:g}"] = measured.get(t, float("nan"))
    return out


def measure(
    graph, x, y, ann: float, m: Method, reset: str, v: float, duration: float, calibration: Calibration, readout: str = "spikes"
) -> dict:
    t0 = time.perf_counter()
    g = normalize(graph, m.spec, calibration=calibration, threshold=m.threshold).graph
    cfg = lambda d: SimConfig(duration=d, reset=reset, v_init=m.v_init, seed=0, readout=readout)  # noqa: E731
    r = simulate(g, x, y, cfg(duration), simulator=SIMULATOR)
    row = {
        "normalizer": m.label,
        "spec": m.spec,
        "key": m.key,
        "threshold": m.threshold,
        "reset": reset,
        "v_init": v,
        "readout": readout,
        "today": m.today(v) and readout == "spikes",
        "plugin": m.plugin,
        "final": r.final_accuracy,
        "acc_8ms": r.accuracy_at(8),
        "acc_16ms": r.accuracy_at(16),
        "synops_full": r.synaptic_ops_per_sample,
    }
    row.update(marks(g, x, y, r, ann, cfg))
    row["seconds"] = time.perf_counter() - t0
    row["accuracy_over_time"] = [round(float(q), 6) for q in r.accuracy_over_time]
    return row


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
    ap.add_argument("--methods", default=",".join(KEYS), help=f"comma-separated keys of {', '.join(KEYS)}")
    ap.add_argument("--sweep-samples", type=int, default=1000, help="training images of the tuned copy's sweep")
    ap.add_argument("--append", action="store_true", help="keep the runs already in OUTPUT/results.json")
    ap.add_argument(
        "--readout",
        default="spikes",
        choices=("spikes", "membrane"),
        help="prediction from output spike counts or from the output layer's potential",
    )
    a = ap.parse_args()
    keys = [k for k in a.methods.split(",") if k]
    if unknown := sorted(set(keys) - set(KEYS)):
        ap.error(f"unknown method keys {unknown}; choose from {', '.join(KEYS)}")
    cfg = ConvertConfig(model=a.model, arch=a.arch, dataset=a.dataset, samples=a.samples)
    imported, name = load_network(cfg)
    graph = imported.graph
    x, y, calib, _ = load_data(cfg, True, shape=graph.input_shape)
    x = fit_inputs(graph, x, cfg.dataset)
    ann = ann_accuracy(graph, x, y)
    calibration = Calibration(calib.reshape(len(calib), *graph.input_shape))
    out = Path(a.output)
    old = json.loads((out / "results.json").read_text()) if a.append and (out / "results.json").exists() else {}
    for r in old.get("runs", []):  # rows of an earlier version of this script
        r.setdefault("spec", r["normalizer"])
        r.setdefault("key", key_of(r["normalizer"]))
        r.setdefault("plugin", r["key"] in KEYS[7:])
        r.setdefault("today", not r["plugin"] and float(r["v_init"]) == 0)
    sweep = old.get("tuned_copy_sweep")
    if "copy-tuned" in keys and not a.plugins_only and sweep is None:
        sweep = tuned_threshold(cfg, graph, a.duration, a.sweep_samples)
        print(json.dumps({"tuned_copy_sweep": sweep}), flush=True)
    tuned = sweep["best_threshold"] if sweep else None
    rows = []
    for reset in a.resets.split(","):
        for v in map(float, a.v_inits.split(",")):
            for m in methods(reset, v, a.T, tuned):
                if m.key not in keys or (a.plugins_only and not m.plugin):
                    continue
                row = measure(graph, x, y, ann, m, reset, v, a.duration, calibration, a.readout)
                rows.append(row)
                print(
                    json.dumps({k: (round(q, 4) if isinstance(q, float) else q) for k, q in row.items() if k != "accuracy_over_time"}),
                    flush=True,
                )
    out.mkdir(parents=True, exist_ok=True)
    clean = lambda q: None if isinstance(q, float) and not math.isfinite(q) else q  # noqa: E731
    key = lambda r: (r["normalizer"], r["reset"], float(r["v_init"]))  # noqa: E731
    new = {key(r) for r in rows}
    runs = [r for r in old.get("runs", []) if key(r) not in new] + [{k: clean(q) for k, q in r.items()} for r in rows]
    (out / "results.json").write_text(
        json.dumps(
            {
                "model": name,
                "dataset": a.dataset,
                "samples": len(x),
                "ann_accuracy": ann,
                "duration_ms": a.duration,
                "simulator": SIMULATOR,
                "readout": a.readout,
                "seed": 0,
                "calibration_samples": len(calib),
                "plugin_T": a.T,
                **({"tuned_copy_sweep": sweep} if sweep else {}),
                "runs": runs,
            },
            indent=1,
        )
        + "\n"
    )
    (out / "table.md").write_text(table(runs, ann))


def table(rows: list[dict], ann: float) -> str:
    num = lambda v: float("nan") if v is None else v  # noqa: E731
    f = lambda v: "never" if not math.isfinite(num(v)) else f"{v:g}"  # noqa: E731
    s = lambda v: "-" if not math.isfinite(num(v)) else (f"{v / 1e6:.2f}M" if v >= 1e6 else f"{v / 1e3:.0f}k")  # noqa: E731
    pct = lambda v: "-" if not math.isfinite(num(v)) else f"{100 * v:.2f}"  # noqa: E731
    order = {k: i for i, k in enumerate(KEYS)}
    rows = sorted(rows, key=lambda r: (r["reset"] != "zero", float(r["v_init"]), order.get(r.get("key", ""), len(KEYS)), r["normalizer"]))
    lines = [
        f'ANN {100 * ann:.2f} % ({len(rows)} runs; "≤p pt": first time from which accuracy stays within p '
        'points of the ANN up to the run\'s duration, "never": not within it; synops measured by simulating '
        "only to that time)\n",
        "| normalizer | reset | v_init | 8 ms | 16 ms | final | ≤0.3 pt [ms] | synops | ≤0.5 pt [ms] | synops | ≤1 pt [ms] | synops |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| `{r['normalizer']}` | {r['reset']} | {float(r['v_init']):g} | {pct(r['acc_8ms'])} | "
            f"{pct(r['acc_16ms'])} | {pct(r['final'])} | {f(r['t_0.3'])} | {s(r['ops_0.3'])} | "
            f"{f(r['t_0.5'])} | {s(r['ops_0.5'])} | {f(r['t_1'])} | {s(r['ops_1'])} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
