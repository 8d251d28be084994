"""Turning a :class:`~snnbalance.pipeline.ConversionReport` into rows, ``results.json`` and a figure.

Every file is written atomically: to a temporary file in the target folder, then renamed, so a
crash or Ctrl-C never leaves a half-written result.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np

from .files import atomic_write
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
        rows.append({
            "normalizer": run.normalizer,
            "final_accuracy": r.final_accuracy,
            **{f"accuracy_{ms}ms": r.accuracy_at(ms) for ms in CHECKPOINTS_MS},
            "time_to_1pct_ms": r.time_to_within(0.01),
            "mean_firing_rate_hz": float(np.mean(list(r.firing_rates.values()))) if r.firing_rates else float("nan"),
            "synaptic_ops_per_sample": r.synaptic_ops_per_sample,
            "image_steps_per_second": r.image_steps_per_second,
            "samples": r.samples,
        })
    return rows


def _clean(v):
    """JSON has no NaN: write null."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


def results_dict(report: ConversionReport) -> dict:
    """The content of ``results.json`` (schema in ``docs/results-schema.md``)."""
    cfg = report.config
    return _clean({
        "schema_version": SCHEMA_VERSION,
        "model": report.model,
        "dataset": report.dataset,
        "samples": min(cfg.samples, report.runs[0].result.samples) if report.runs else cfg.samples,
        "seed": cfg.sim.seed,
        "ann_accuracy": report.ann_accuracy,
        "config": cfg.to_dict(),
        "import": {"notes": report.import_notes, "max_relative_error": report.import_max_rel_error,
                   "layers": [{**r, "shape": list(r["shape"])} for r in report.graph.summary()]},
        "data_notes": report.data_notes,
        "maxpool_replacement": report.maxpool_replacement,
        "cancelled": report.cancelled,
        "wall_seconds": report.wall_seconds,
        "runs": [{
            "normalizer": run.normalizer,
            "simulator": run.result.simulator,
            "engine": run.result.engine,
            "device": run.result.device,
            "threshold": cfg.threshold,
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
        } for run in report.runs],
    })


def plot_png(results: dict, title: str | None = None) -> bytes:
    """Classification error against time on log-log axes (as the paper's Figure 3), one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    # log axes cannot show 0 % error: draw it at half of one image's share of the error
    floor = 50.0 / max(int(results.get("samples") or 1), 1)
    for run in results["runs"]:
        acc = np.asarray(run["accuracy_over_time"], dtype=float)
        t = np.arange(1, len(acc) + 1) * run["dt"]
        err = np.clip(100.0 * (1.0 - acc), floor, None)
        ax.plot(t, err, label=f"{run['normalizer']} ({100 * run['final_accuracy']:.2f} %)", lw=1.6)
    if results.get("ann_accuracy") is not None:
        ax.axhline(max(100 * (1 - results["ann_accuracy"]), floor), color="k", ls="--", lw=1,
                   label=f"ANN ({100 * results['ann_accuracy']:.2f} %)")
    ax.set_ylim(bottom=floor * 0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("simulated time [ms]")
    ax.set_ylabel(f"test error [%] (0 drawn at {floor:.2g})")
    ax.set_title(title or f"{results['model']} on {results['dataset']} ({results['samples']} images)", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def write_results(report: ConversionReport, outdir: str | Path) -> list[Path]:
    """Write ``results.json`` and ``accuracy.png`` into ``outdir``; return their paths."""
    res = results_dict(report)
    outdir = Path(outdir)
    return [atomic_write(outdir / "results.json", json.dumps(res, indent=1) + "\n"),
            atomic_write(outdir / "accuracy.png", plot_png(res))]
