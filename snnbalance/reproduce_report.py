"""Tables, ``results.json`` and Figures 3/4 of ``snnbalance reproduce``, from the per-run JSON files.

Every file is written atomically (:func:`snnbalance.report.atomic_write`).
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import replace
from pathlib import Path

from .report import atomic_write, format_pct, json_clean
from .simulate.core import accuracy_at, time_within
from .tables import Table

#: Checkpoints of the latency table [ms].
LATENCY_MS = (10, 20, 30, 50, 100, 1000)
DATASET_NAMES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}
ARCH_NAMES = {"mlp": "MLP", "cnn": "CNN"}
#: Final test accuracy [%] after 10,000 ms in the report being reproduced, per method key.
REPORT_SNN = {
    ("mnist", "mlp"): {"copy": 98.64, "copy-tuned": 98.68, "model-based": 98.65, "data-based": 98.66},
    ("mnist", "cnn"): {"copy": 98.87, "copy-tuned": 99.11, "model-based": 99.10, "data-based": 99.10},
    ("fashion-mnist", "mlp"): {"copy": 89.75, "copy-tuned": 90.00, "model-based": 89.69, "data-based": 89.85},
    ("fashion-mnist", "cnn"): {"copy": 89.33, "copy-tuned": 90.18, "model-based": 90.15, "data-based": 90.20},
}
REPORT_TUNED_THRESHOLD = {"mlp": 4.0, "cnn": 20.0}
#: ANN test accuracy [%]: the report's (dropout left active at evaluation) and the paper's.
REPORT_ANN = {("mnist", "mlp"): 97.91, ("mnist", "cnn"): 98.93, ("fashion-mnist", "mlp"): 88.10, ("fashion-mnist", "cnn"): 89.50}
PAPER_ANN = {("mnist", "mlp"): 98.84, ("mnist", "cnn"): 99.14}

METHOD_COLOURS = {
    "copy": "#7f7f7f",
    "copy-tuned": "#9467bd",
    "model-based": "#1f77b4",
    "data-based": "#d62728",
    "data-based-code": "#ff7f0e",
}
ARCH_STYLES = {"mlp": "-", "cnn": "--"}


def _ms(v) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:g}"


def _ref(v) -> str:
    return "-" if v is None else f"{v:.2f}"


def _methods():
    from .reproduce import METHODS

    return METHODS


# --------------------------------------------------------------------------- rows


def table1_rows(runs: list[dict]) -> list[dict]:
    rows, seen = [], set()
    for r in runs:
        key = (r["dataset"], r["arch"])
        if key in seen:
            continue
        seen.add(key)
        n = r["network"]
        rows.append(
            {
                "dataset": DATASET_NAMES[r["dataset"]],
                "network": ARCH_NAMES[r["arch"]],
                "epochs": n.get("epochs"),
                "seed": n.get("seed"),
                "train_accuracy": n.get("train_accuracy"),
                "test_accuracy": n.get("test_accuracy"),
                "report_test_accuracy": REPORT_ANN.get(key),
                "paper_test_accuracy": PAPER_ANN.get(key),
            }
        )
    return rows


def table2_rows(runs: list[dict]) -> list[dict]:
    rows = []
    for r in runs:
        row = {
            "dataset": DATASET_NAMES[r["dataset"]],
            "network": ARCH_NAMES[r["arch"]],
            "encoding": r["encoding"],
            "samples": r["fingerprint"]["samples"],
            "duration_ms": r["fingerprint"]["duration"],
            "ann_accuracy": r.get("ann_accuracy"),
            "tuned_threshold": r.get("sweep", {}).get("best_threshold"),
        }
        for m in _methods():
            row[m.key] = r["methods"].get(m.key, {}).get("final_accuracy")
        rows.append(row)
    return rows


def latency_rows(runs: list[dict]) -> list[dict]:
    rows = []
    for r in runs:
        for m in _methods():
            res = r["methods"].get(m.key)
            if res is None:
                continue
            c, dt = res["accuracy_over_time"], res["dt"]
            rows.append(
                {
                    "dataset": DATASET_NAMES[r["dataset"]],
                    "network": ARCH_NAMES[r["arch"]],
                    "encoding": r["encoding"],
                    "method": m.key,
                    "threshold": res["threshold"],
                    **{f"acc_{t}ms": accuracy_at(c, dt, t) for t in LATENCY_MS},
                    "final_accuracy": res["final_accuracy"],
                    "t_within_1pct_ms": time_within(c, dt, 0.01),
                    "t_within_0.1pct_ms": time_within(c, dt, 0.001),
                }
            )
    return rows


# --------------------------------------------------------------------------- rendering


def _csv(rows: list[dict]) -> str:
    if not rows:
        return ""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: ("" if v is None or (isinstance(v, float) and math.isnan(v)) else v) for k, v in row.items()})
    return buf.getvalue()


def _setting(cfg) -> str:
    return (
        f"{cfg.samples} test images, {cfg.duration:g} ms, dt {cfg.dt:g} ms, Poisson input at {cfg.max_rate:g} Hz "
        f"(or the same value as constant current), reset to zero, seed {cfg.seed}, simulator {cfg.simulator}"
    )


def table1_md(rows: list[dict]) -> str:
    body = [
        (
            r["dataset"],
            r["network"],
            r["epochs"],
            r["seed"],
            format_pct(r["train_accuracy"]),
            format_pct(r["test_accuracy"]),
            _ref(r["report_test_accuracy"]),
            _ref(r["paper_test_accuracy"]),
        )
        for r in rows
    ]
    table = Table(("dataset", "network", "epochs", "seed", "train", "test", "report's test (dropout on)", "paper's test"), body, "llrrrrrr")
    return (
        "# Table 1: ANN accuracy [%] (eval mode: dropout off)\n\n"
        + table.markdown()
        + "\nTrain accuracy is on the un-augmented training images.\n"
    )


def table2_table(rows: list[dict]) -> Table:
    """Table 2 as strings (:func:`table2_rows`): the ANN's and each method's final accuracy [%],
    the tuned θ in brackets where the sweep ran. ``snnbalance reproduce`` prints it; ``table2.md``
    adds the report's numbers under each Poisson row."""
    ms = _methods()
    body = [
        (
            r["dataset"],
            r["network"],
            r["encoding"],
            format_pct(r["ann_accuracy"]),
            *(
                format_pct(r[m.key]) + (f" (θ={_ms(r['tuned_threshold'])})" if m.tuned and r["tuned_threshold"] is not None else "")
                for m in ms
            ),
        )
        for r in rows
    ]
    return Table(
        ("dataset", "network", "encoding", "ANN", *(m.label for m in ms)),
        body,
        "lllr" + "r" * len(ms),
        title="Table 2: SNN test accuracy [%] at the end of the simulation",
    )


def table2_md(rows: list[dict], cfg) -> str:
    ms = _methods()
    table = table2_table(rows)
    body = []
    for r, cells in zip(rows, table.rows):
        body.append(cells)
        if r["encoding"] == "poisson":
            ref = REPORT_SNN.get(
                ({v: k for k, v in DATASET_NAMES.items()}[r["dataset"]], {v: k for k, v in ARCH_NAMES.items()}[r["network"]])
            )
            if ref:
                arch = {v: k for k, v in ARCH_NAMES.items()}[r["network"]]
                body.append(
                    (
                        "",
                        "",
                        "*report, 10,000 ms*",
                        "",
                        *(
                            (
                                "-"
                                if m.key not in ref
                                else f"*{ref[m.key]:.2f}*" + (f" (θ={REPORT_TUNED_THRESHOLD[arch]:g})" if m.tuned else "")
                            )
                            for m in ms
                        ),
                    )
                )
    return (
        f"# {table.title}\n\n{_setting(cfg)}.\n\n"
        + replace(table, rows=body).markdown()
        + "\nθ: the copy's threshold chosen by the sweep on held-out training images. "
        "Italic rows: the report's numbers (Poisson input, 10,000 ms, all 10,000 test images).\n"
    )


def latency_md(rows: list[dict], cfg) -> str:
    body = [
        (
            r["dataset"],
            r["network"],
            r["encoding"],
            r["method"],
            _ms(r["threshold"]),
            *(format_pct(r[f"acc_{t}ms"]) for t in LATENCY_MS),
            format_pct(r["final_accuracy"]),
            _ms(r["t_within_1pct_ms"]),
            _ms(r["t_within_0.1pct_ms"]),
        )
        for r in rows
    ]
    table = Table(
        (
            "dataset",
            "network",
            "encoding",
            "method",
            "θ",
            *(f"{t} ms" for t in LATENCY_MS),
            "final",
            "within 1 % [ms]",
            "within 0.1 % [ms]",
        ),
        body,
        "lllll" + "r" * (len(LATENCY_MS) + 3),
    )
    return (
        f"# Latency: test accuracy [%] after t ms of simulated time\n\n{_setting(cfg)}.\n\n"
        + table.markdown()
        + "\n'-': beyond the simulated time. 'within x %': first time from which the accuracy stays within "
        "x percentage points of the final accuracy.\n"
    )


def plot_dataset(runs: list[dict], dataset: str, title: str) -> bytes:
    """Error vs time, log-log: one panel per encoding, colour = method, line style = network."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter

    from .figures import error_vs_time, png_bytes, pyplot

    plt = pyplot()
    runs = [r for r in runs if r["dataset"] == dataset]
    encs = [e for e in ("poisson", "current") if any(r["encoding"] == e for r in runs)]
    panels = max(len(encs), 1)
    # one panel is made wider than half of two, so that the title and legend still fit
    fig, axes = plt.subplots(1, panels, figsize=(max(6.0 * panels, 9.0), 4.9 if panels > 1 else 5.4), dpi=110, sharey=True, squeeze=False)
    for ax, enc in zip(axes[0], encs):
        error_vs_time(
            ax,
            [
                (res["accuracy_over_time"], res["dt"], {"color": METHOD_COLOURS[m.key], "ls": ARCH_STYLES[r["arch"]], "lw": 1.5})
                for r in runs
                if r["encoding"] == enc
                for m in _methods()
                if (res := r["methods"].get(m.key)) is not None
            ],
            floor=1e-2,
        )
        plain = FuncFormatter(lambda v, _pos: f"{v:g}")
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _pos: f"{v:g}" if str(f"{v:g}")[0] in "25" else ""))
        ax.set_title({"poisson": "Poisson input (as the paper)", "current": "constant current (as the report's code)"}[enc], fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("test error [%]")
    handles = [Line2D([], [], color=METHOD_COLOURS[m.key], lw=2, label=m.label) for m in _methods()]
    handles += [
        Line2D([], [], color="k", ls=ARCH_STYLES[a], lw=1.5, label=ARCH_NAMES[a])
        for a in ("mlp", "cnn")
        if any(r["arch"] == a for r in runs)
    ]
    ncol = min(len(handles), 7 if panels > 1 else 4)
    fig.legend(handles=handles, fontsize=8.5, loc="lower center", ncol=ncol, frameon=False)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.07 if panels > 1 else 0.12, 1, 1))
    return png_bytes(fig)


def write_report(cfg, runs: list[dict], out: str | Path, wall_seconds: float) -> list[Path]:
    """Write the tables (.md and .csv), results.json and one figure per dataset; return the paths."""
    out = Path(out)
    t1, t2, lat = table1_rows(runs), table2_rows(runs), latency_rows(runs)
    files = [
        atomic_write(out / "table1.md", table1_md(t1)),
        atomic_write(out / "table1.csv", _csv(t1)),
        atomic_write(out / "table2.md", table2_md(t2, cfg)),
        atomic_write(out / "table2.csv", _csv(t2)),
        atomic_write(out / "latency.md", latency_md(lat, cfg)),
        atomic_write(out / "latency.csv", _csv(lat)),
    ]
    results = {
        "schema": "snnbalance-reproduce/1",
        "config": cfg.to_dict(),
        "wall_seconds": wall_seconds,
        "simulation_wall_seconds": sum(r.get("wall_seconds", 0.0) for r in runs),
        "runs": runs,
    }
    files.append(atomic_write(out / "results.json", json.dumps(json_clean(results)) + "\n"))
    for fig, d in (("figure3", "mnist"), ("figure4", "fashion-mnist")):
        if getattr(cfg, "figures", True) and any(r["dataset"] == d for r in runs):
            title = f"{DATASET_NAMES[d]}: test error over time ({cfg.samples} images, seed {cfg.seed}; solid MLP, dashed CNN)"
            files.append(atomic_write(out / f"{fig}_{d}.png", plot_dataset(runs, d, title)))
    return files


__all__ = [
    "write_report",
    "table1_rows",
    "table2_rows",
    "table2_table",
    "latency_rows",
    "plot_dataset",
    "LATENCY_MS",
    "REPORT_SNN",
    "REPORT_ANN",
    "PAPER_ANN",
]
