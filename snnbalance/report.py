"""Turning a :class:`~snnbalance.pipeline.ConversionReport` into rows, ``results.json`` and figures.

Every file is written atomically: to a temporary file in the target folder, then renamed, so a
crash or Ctrl-C never leaves a half-written result.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .files import atomic_write
from .simulate.core import FRONTIER_POINTS, frontier

if TYPE_CHECKING:  # the jobs layer above; only its type is needed here
    from .pipeline import ConversionReport

SCHEMA_VERSION = 1
CHECKPOINTS_MS = (10, 30, 100)


def format_si(v: float) -> str:
    """Compact number for tables: 4.2M, 366k, 12."""
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= div:
            return f"{v / div:.3g}{unit}"
    return f"{v:.3g}"


def format_pct(v: float | None) -> str:
    """An accuracy in percent with two decimals, ``-`` when missing."""
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.2f}"


def summary_rows(report: ConversionReport) -> list[dict]:
    """One row per normalizer: the numbers the CLI table and the TUI show."""
    rows = []
    for run in report.runs:
        r = run.result
        rows.append(
            {
                "normalizer": run.normalizer,
                "final_accuracy": r.final_accuracy,
                **{f"accuracy_{ms}ms": r.accuracy_at(ms) for ms in CHECKPOINTS_MS},
                "time_to_1pct_ms": r.time_to_within(0.01),
                "frontier": frontier(r, report.ann_accuracy),
                "mean_firing_rate_hz": float(np.mean(list(r.firing_rates.values()))) if r.firing_rates else float("nan"),
                "synaptic_ops_per_sample": r.synaptic_ops_per_sample,
                "image_steps_per_second": r.image_steps_per_second,
                "samples": r.samples,
            }
        )
    return rows


def json_clean(v):
    """JSON has no NaN: write null."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: json_clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_clean(x) for x in v]
    return v


def results_dict(report: ConversionReport) -> dict:
    """The content of ``results.json`` (schema in ``docs/results-schema.md``)."""
    cfg = report.config
    return json_clean(
        {
            "schema_version": SCHEMA_VERSION,
            "model": report.model,
            "dataset": report.dataset,
            "samples": min(cfg.samples, report.runs[0].result.samples) if report.runs else cfg.samples,
            "seed": cfg.sim.seed,
            "ann_accuracy": report.ann_accuracy,
            "config": cfg.to_dict(),
            "import": {
                "notes": report.import_notes,
                "max_relative_error": report.import_max_rel_error,
                "layers": [{**r, "shape": list(r["shape"])} for r in report.graph.summary()],
            },
            "data_notes": report.data_notes,
            "maxpool_replacement": report.maxpool_replacement,
            "cancelled": report.cancelled,
            "wall_seconds": report.wall_seconds,
            "runs": [
                {
                    "normalizer": run.normalizer,
                    "simulator": run.result.simulator,
                    "engine": run.result.engine,
                    "device": run.result.device,
                    "threshold": cfg.threshold,
                    "v_init": getattr(run, "v_init", cfg.sim.v_init),
                    "thresholds": run.thresholds,
                    "scale_factors": run.scale_factors,
                    "accuracy_over_time": [round(float(a), 6) for a in run.result.accuracy_over_time],
                    "final_accuracy": run.result.final_accuracy,
                    "firing_rates": run.result.firing_rates,
                    "spike_counts": run.result.spike_counts,
                    "synaptic_ops_per_sample": run.result.synaptic_ops_per_sample,
                    "samples": run.result.samples,
                    "steps": run.result.steps,
                    "dt": run.result.dt,
                    "wall_seconds": run.result.wall_seconds,
                    "image_steps_per_second": run.result.image_steps_per_second,
                    "cancelled": run.result.cancelled,
                    "frontier": frontier(run.result, report.ann_accuracy),
                }
                for run in report.runs
            ],
        }
    )


def plot_png(results: dict, title: str | None = None) -> bytes:
    """Classification error against time on log-log axes (as the paper's Figure 3), one line per run."""
    from .figures import error_vs_time, pyplot

    fig, ax = pyplot().subplots(figsize=(6.4, 4.2), dpi=120)
    # log axes cannot show 0 % error: draw it at half of one image's share of the error
    floor = 50.0 / max(int(results.get("samples") or 1), 1)
    ann = results.get("ann_accuracy")
    error_vs_time(
        ax,
        [
            (run["accuracy_over_time"], run["dt"], {"label": f"{run['normalizer']} ({100 * run['final_accuracy']:.2f} %)", "lw": 1.6})
            for run in results["runs"]
        ],
        floor=floor,
        reference=None if ann is None else (ann, f"ANN ({100 * ann:.2f} %)"),
        bottom=floor * 0.8,
    )
    ax.set_ylabel(f"test error [%] (0 drawn at {floor:.2g})")
    return _png(fig, ax, results, title, "lower left")


def format_frontier(row: dict) -> str:
    """``0.5 pt 12 ms 1.2M · 1 pt 9 ms 900k · 2 pt -``: one run's frontier on one line."""
    parts = []
    for f in row["frontier"]:
        t, ops = f["time_ms"], f["synaptic_ops_per_sample"]
        done = t is not None and math.isfinite(t)
        parts.append(f"{f['points']:g} pt " + (f"{t:g} ms {format_si(ops)}" if done else "never"))
    return " · ".join(parts)


def frontier_curve(run: dict) -> tuple[np.ndarray, np.ndarray]:
    """Synaptic operations per image spent by each step (constant-rate estimate, as
    :func:`~snnbalance.simulate.core.synops_to`) and the accuracy then, for one run of
    :func:`results_dict`."""
    acc = np.asarray(run["accuracy_over_time"], dtype=float)
    ops = (run["synaptic_ops_per_sample"] or 0.0) * np.arange(1, len(acc) + 1) / max(len(acc), 1)
    return ops, acc


def frontier_png(results: dict, title: str | None = None) -> bytes:
    """Accuracy against synaptic operations per image, one line per run, with the ANN's
    accuracy and the 0.5/1/2-point marks: the cost of each accuracy, whatever the method."""
    from .figures import pyplot

    fig, ax = pyplot().subplots(figsize=(6.4, 4.2), dpi=120)
    ann = results.get("ann_accuracy")
    lo = 100.0
    for run in results["runs"]:
        ops, acc = frontier_curve(run)
        keep = ops > 0
        if keep.any():
            ax.plot(ops[keep], 100 * acc[keep], lw=1.6, label=f"{run['normalizer']} ({100 * run['final_accuracy']:.2f} %)")
            lo = min(lo, float(np.percentile(100 * acc[keep], 10)))
    if ann is not None:
        for k, p in enumerate((0.0, *FRONTIER_POINTS)):
            ax.axhline(
                100 * ann - p,
                color="k",
                ls="--" if p == 0 else ":",
                lw=1 if p == 0 else 0.7,
                label=f"ANN ({100 * ann:.2f} %)" if p == 0 else ("ANN - 0.5/1/2 points" if k == 1 else None),
            )
        lo = min(lo, 100 * ann - 5)
    ax.set_ylim(max(lo, 0.0), 100.5)
    ax.set_xscale("log")
    ax.set_xlabel("synaptic operations per image (spent so far; constant-rate estimate)")
    ax.set_ylabel("test accuracy [%]")
    return _png(fig, ax, results, title, "lower right")


def _png(fig, ax, results: dict, title: str | None, legend: str) -> bytes:
    """Title, grid and legend of a results figure, then its PNG bytes (the figure is closed)."""
    from .figures import png_bytes

    ax.set_title(title or f"{results['model']} on {results['dataset']} ({results['samples']} images)", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc=legend)
    fig.tight_layout()
    return png_bytes(fig)


def write_results(report: ConversionReport, outdir: str | Path) -> list[Path]:
    """Write ``results.json``, ``accuracy.png`` and ``frontier.png`` into ``outdir``; return their paths."""
    res = results_dict(report)
    outdir = Path(outdir)
    return [
        atomic_write(outdir / "results.json", json.dumps(res, indent=1) + "\n"),
        atomic_write(outdir / "accuracy.png", plot_png(res)),
        atomic_write(outdir / "frontier.png", frontier_png(res)),
    ]
