"""Chase the issue-15 target on one network: within 0.3 points of the ANN from 8 ms (docs/results/latency/).

    SNNBALANCE_DATA=../shared/data .venv/bin/python docs/results/latency/run_8ms.py --samples 1000 \
        --duration 100 -o docs/results/latency/mnist-cnn-8ms \
        --run "threshold-balancing:T=8|subtract|-|poisson" --run "data-based|subtract|0.5|current" ...

Each ``--run`` is ``SPEC|RESET|V_INIT|ENCODING``: a normalizer spec as ``convert -n`` takes it (an
experiment: ``SPEC@out*G`` then multiplies the output layer's weights by ``G``, i.e. lowers its
threshold G times relative to its input; no normalizer does that), the
reset, ``--v-init`` (``-``: leave each layer's own, which the plugins set) and the input encoding
(``poisson`` at 1000 Hz or ``current``: the pixel as a constant current into the first layer every
step). Same data, seed and marks as run_latency.py: for each run, accuracy at 8 ms, the first time
from which accuracy stays within 0.3 / 0.5 / 1 points of the ANN up to ``--duration``, and the
synaptic operations per image *measured* by simulating only up to that time. With current
input the first layer's input is not spikes, so its multiply-accumulates are not counted as
synaptic operations (the engines count only spikes times fan-out): compare synops within one
encoding. Writes results.json and table.md (appending to earlier runs in the same folder with
``--append``).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from run_latency import marks  # (this folder's script: the marks and their measured synops)

from snnbalance.normalize import normalize
from snnbalance.pipeline import ConvertConfig, ann_accuracy, fit_inputs, load_data, load_network
from snnbalance.records import Calibration
from snnbalance.simulate import SimConfig, simulate


def parse_run(text: str) -> tuple[str, str, float | None, str]:
    spec, reset, v, enc = text.split("|")
    return spec, reset, None if v == "-" else float(v), enc


def measure(
    graph,
    x,
    y,
    ann: float,
    spec: str,
    reset: str,
    v: float | None,
    enc: str,
    duration: float,
    calibration: Calibration,
    seed: int = 0,
    synops: bool = True,
) -> dict:
    t0 = time.perf_counter()
    base, _, gain = spec.partition("@out*")
    g = normalize(graph, base, calibration=calibration).graph
    if gain:  # an experiment, not a normalizer: the output layer's threshold lowered by GAIN (weights x GAIN)
        o = g.output
        o.weight = (o.weight * float(gain)).astype(o.weight.dtype)
        if o.bias is not None:
            o.bias = (o.bias * float(gain)).astype(o.bias.dtype)
    cfg = lambda d: SimConfig(duration=d, reset=reset, v_init=v, encoding=enc, seed=seed)  # noqa: E731
    r = simulate(g, x, y, cfg(duration), simulator="spikingjelly")
    row = {
        "normalizer": spec,
        "reset": reset,
        "v_init": "-" if v is None else v,
        "encoding": enc,
        "acc_8ms": r.accuracy_at(8),
        "acc_10ms": r.accuracy_at(10),
        "acc_16ms": r.accuracy_at(16),
        "final": r.final_accuracy,
        "duration_ms": duration,
        "synops_full": r.synaptic_ops_per_sample,
    }
    row.update(marks(g, x, y, r, ann, cfg, synops))
    row["layer_v_init"] = {n.name: round(float(n.v_init), 4) for n in g.neuron_nodes()}
    row["seconds"] = time.perf_counter() - t0
    row["accuracy_over_time"] = [round(float(q), 6) for q in r.accuracy_over_time]
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model"), ap.add_argument("--arch"), ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--offset", type=int, default=0, help="skip the first OFFSET test images (a held-out check)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the input spikes")
    ap.add_argument("--no-synops", action="store_true", help="marks only (skip the shorter runs that measure synops)")
    ap.add_argument("--duration", type=float, default=100.0)
    ap.add_argument("--run", action="append", required=True, help="SPEC|RESET|V_INIT|ENCODING (repeat)")
    ap.add_argument("-o", "--output")
    ap.add_argument("--append", action="store_true", help="keep the runs already in OUTPUT/results.json")
    a = ap.parse_args()
    cfg = ConvertConfig(model=a.model, arch=a.arch, dataset=a.dataset, samples=a.offset + a.samples)
    imported, name = load_network(cfg)
    graph = imported.graph
    x, y, calib, _ = load_data(cfg, True, shape=graph.input_shape)
    x, y = fit_inputs(graph, x, cfg.dataset)[a.offset :], y[a.offset :]
    ann = ann_accuracy(graph, x, y)
    calibration = Calibration(calib.reshape(len(calib), *graph.input_shape))
    out = Path(a.output) if a.output else None
    old = []
    if out and a.append and (out / "results.json").exists():
        old = json.loads((out / "results.json").read_text())["runs"]
    rows = []
    for text in a.run:
        row = measure(graph, x, y, ann, *parse_run(text), a.duration, calibration, a.seed, not a.no_synops)
        rows.append(row)
        print(
            json.dumps(
                {
                    "ann": ann,
                    **{
                        k: (round(v, 4) if isinstance(v, float) else v)
                        for k, v in row.items()
                        if k not in ("accuracy_over_time", "layer_v_init")
                    },
                }
            ),
            flush=True,
        )
    if out is None:
        return
    out.mkdir(parents=True, exist_ok=True)
    clean = lambda v: None if isinstance(v, float) and not math.isfinite(v) else v  # noqa: E731
    runs = old + [
        {**{k: clean(v) for k, v in r.items()}, "offset": a.offset, "seed": a.seed, "ann_accuracy": ann, "samples": len(x)} for r in rows
    ]
    (out / "results.json").write_text(json.dumps({"model": name, "dataset": a.dataset, "samples": len(x), "runs": runs}, indent=1) + "\n")
    (out / "table.md").write_text(table(runs))


def table(runs: list[dict]) -> str:
    """The runs on the first images with seed 0 (one row each), then the others as a held-out check."""
    main = [r for r in runs if r["offset"] == 0 and r["seed"] == 0]
    held = [r for r in runs if r not in main]
    return full_table(main) + ("\n" + held_out(held) if held else "")


def full_table(rows: list[dict]) -> str:
    ann = rows[0]["ann_accuracy"]
    num = lambda v: float("nan") if v is None else v  # noqa: E731
    f = lambda v: "never" if not math.isfinite(num(v)) else f"{v:g}"  # noqa: E731
    s = lambda v: "-" if not math.isfinite(num(v)) else (f"{v / 1e6:.2f}M" if v >= 1e6 else f"{v / 1e3:.0f}k")  # noqa: E731
    pct = lambda v: "-" if not math.isfinite(num(v)) else f"{100 * v:.2f}"  # noqa: E731
    lines = [
        f'ANN {100 * ann:.2f} % ({len(rows)} runs; "≤p pt": first time from which accuracy stays within p '
        "points up to the run's duration; synops measured by simulating only to that time)\n",
        "| normalizer | reset | v_init | input | 8 ms | 10 ms | 16 ms | to [ms] | ≤0.3 pt [ms] | synops "
        "| ≤0.5 pt [ms] | synops | ≤1 pt [ms] | synops |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| `{r['normalizer']}` | {r['reset']} | {r['v_init']} | {r['encoding']} | "
            f"{pct(r['acc_8ms'])} | {pct(r['acc_10ms'])} | {pct(r['acc_16ms'])} | {r['duration_ms']:g} | "
            f"{f(r['t_0.3'])} | {s(r['ops_0.3'])} | {f(r['t_0.5'])} | {s(r['ops_0.5'])} | "
            f"{f(r['t_1'])} | {s(r['ops_1'])} |"
        )
    return "\n".join(lines) + "\n"


def held_out(rows: list[dict]) -> str:
    """One line per setting: per (images, seed), the gap to the ANN at 8 ms and the 0.3 / 0.5-point marks."""
    combos = sorted({(r["offset"], r["seed"]) for r in rows})
    by: dict[tuple, dict] = {}
    for r in rows:
        by.setdefault((r["normalizer"], r["reset"], str(r["v_init"]), r["encoding"]), {})[(r["offset"], r["seed"])] = r
    f = lambda v: "never" if v is None else f"{v:g}"  # noqa: E731
    n = rows[0]["samples"]
    ann = {(r["offset"], r["seed"]): r["ann_accuracy"] for r in rows}
    lines = [
        "Held-out check: ANN minus SNN accuracy at 8 ms [points] / ≤0.3 pt [ms] / ≤0.5 pt [ms], marks up to "
        f"{rows[0]['duration_ms']:g} ms (current input has no randomness: there the seed changes nothing)\n",
        "| normalizer | reset | v_init | input | "
        + " | ".join(f"images {o}-{o + n - 1}, seed {s} (ANN {100 * ann[o, s]:.1f} %)" for o, s in combos)
        + " | mean gap at 8 ms |",
        "|---|---|---:|---|" + "---:|" * (len(combos) + 1),
    ]
    for key, runs in by.items():
        gaps = [100 * (runs[c]["ann_accuracy"] - runs[c]["acc_8ms"]) if c in runs else float("nan") for c in combos]
        cells = [f"{g:.1f} / {f(runs[c]['t_0.3'])} / {f(runs[c]['t_0.5'])}" if c in runs else "-" for g, c in zip(gaps, combos)]
        lines.append(f"| `{key[0]}` | {key[1]} | {key[2]} | {key[3]} | " + " | ".join(cells) + f" | {sum(gaps) / len(gaps):.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
