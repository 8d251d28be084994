"""Summarise `snnbalance convert` runs of several normalizers into one Markdown table.

Usage::

    python3 scripts/normalizer_table.py DIR [DIR ...] > table.md

Each DIR holds the ``results.json`` of one `snnbalance convert` run (one network, several
``--normalizer``). Per network and normalizer the table gives the final accuracy, the accuracy at
10, 30 and 100 ms, and the first time from which the accuracy stays within 1 point of the ANN's
(what the issue calls "time to within 1 % of the ANN"), read from the stored curves.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def time_within(curve: list[float], target: float, dt: float) -> float | None:
    """First time (ms) from which ``curve`` stays >= ``target``; None if it never does."""
    k = len(curve)
    while k > 0 and curve[k - 1] >= target:
        k -= 1
    return None if k == len(curve) else (k + 1) * dt


def rows(folder: Path) -> list[str]:
    res = json.loads((folder / "results.json").read_text())
    ann = res["ann_accuracy"]
    dataset = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}.get(res["dataset"], res["dataset"])
    stem = Path(res["model"]).stem  # mlp-mnist-s0-e20 (reproduce's cache) or fashion-mnist_vgg (train)
    name = f"{dataset} {(stem.rsplit('_', 1)[-1] if '_' in stem else stem.split('-')[0]).upper()}"
    reset = res.get("config", {}).get("sim", {}).get("reset", "zero")
    out = []
    for run in res["runs"]:
        curve, dt = run["accuracy_over_time"], run["dt"]
        at = {ms: curve[int(ms / dt) - 1] for ms in (10, 30, 100) if int(ms / dt) <= len(curve)}
        t1 = time_within(curve, ann - 0.01, dt)
        within = f"{t1:g}" if t1 is not None else f"never (in {len(curve) * dt:g})"
        out.append(
            f"| {name} | {reset} | {100 * ann:.2f} | `{run['normalizer']}` | {100 * run['final_accuracy']:.2f} | "
            + " | ".join(f"{100 * at[ms]:.2f}" if ms in at else "-" for ms in (10, 30, 100))
            + f" | {within} | {run['firing_rates'] and sum(run['firing_rates'].values()) / len(run['firing_rates']):.1f} |"
        )
    return out


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit(__doc__)
    print("| network | reset | ANN | normalizer | final | 10 ms | 30 ms | 100 ms | within 1 pt of ANN [ms] | mean layer rate [Hz] |")
    print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for d in argv:
        print("\n".join(rows(Path(d))))


if __name__ == "__main__":
    main(sys.argv[1:])
