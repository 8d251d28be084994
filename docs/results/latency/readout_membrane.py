"""The tables of readout-membrane.md from the measured files (docs/results/latency/).

    .venv/bin/python docs/results/latency/readout_membrane.py [--write docs/results/latency/readout-membrane.md]

Reads readout-membrane/NETWORK/results.json (``run_latency.py --readout membrane``), the spike
read-out's NETWORK/results.json (the 44-run grids of paper-networks.md) and NETWORK/sj-recipes.json
(SpikingJelly 2.0's recipes, analog output, Poisson input), and prints per network the 0.3 / 0.5 /
1-point marks of each, and whether issue 15's targets are met. ``--write FILE`` replaces the part of
FILE between ``<!-- marks -->`` and ``<!-- /marks -->``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from summarize import NETWORKS, best, mark, ms, ops, replace, who  # noqa: I001  (this folder's script)

HERE = Path(__file__).parent
POINTS = ("0.3", "0.5", "1")


def load(path: Path) -> list[dict]:
    return json.loads(path.read_text())["runs"] if path.exists() else []


def cell(rows: list[dict], p: str, synops: bool = True) -> str:
    r = best(rows, p)
    if r is None:
        return "never"
    name = r.get("recipe")
    extra = f"`{name}`" if name else f"{who(r)}; {ops(r.get(f'ops_{p}'))} synops" if synops else who(r)
    return f"{ms(mark(r, p))} ({extra})"


def marks() -> str:
    lines = ["| network | ANN | read-out | " + " | ".join(f"≤{p} pt" for p in POINTS) + " |", "|---|---:|---|" + "---|" * len(POINTS)]
    verdicts = []
    for net in NETWORKS:
        mem = load(HERE / "readout-membrane" / net / "results.json")
        spikes = load(HERE / net / "results.json")
        today = [r for r in spikes if r.get("today")]
        sj = [r for r in load(HERE / net / "sj-recipes.json") if r["encoding"] == "poisson" and r.get("readout", "analog") == "analog"]
        ann = json.loads((HERE / net / "results.json").read_text())["ann_accuracy"]
        for i, (what, rows) in enumerate(
            (
                ("**membrane** (best of 16)", mem),
                ("spikes, today's best", today),
                ("spikes, best of 44", spikes),
                ("SpikingJelly analog (Poisson)", sj),
            )
        ):
            lines.append(
                f"| {net if i == 0 else ''} | {f'{100 * ann:.2f} %' if i == 0 else ''} | {what} | "
                + " | ".join(cell(rows, p) for p in POINTS)
                + " |"
            )
        m5, t5 = best(mem), best(today)
        ratio = mark(m5, "0.5") / mark(t5, "0.5") if m5 and t5 else math.nan
        verdicts.append(
            f"- {net}: membrane {ms(mark(m5, '0.5')) if m5 else 'never'} / today's "
            f"{ms(mark(t5, '0.5')) if t5 else 'never'} = {ratio:.2f} at the 0.5-point mark: "
            f"{'met' if ratio <= 0.5 else 'not met'}"
        )
        if net == "mnist-cnn":
            m3, t3 = best(mem, "0.3"), best(today, "0.3")
            ok = m3 and mark(m3, "0.3") <= 8 and t3 and (m3.get("ops_0.3") or math.inf) < (t3.get("ops_0.3") or 0)
            verdicts.append(
                f"- {net} (the embedded CNN), 0.3 points: membrane {ms(mark(m3, '0.3')) if m3 else 'never'}"
                f" ({ops(m3.get('ops_0.3')) if m3 else '-'} synops) against today's "
                f"{ms(mark(t3, '0.3')) if t3 else 'never'} ({ops(t3.get('ops_0.3')) if t3 else '-'} "
                f"synops): 8 ms with fewer synops {'met' if ok else 'not met'}"
            )
    return "\n".join(lines + [""] + verdicts) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--write")
    a = ap.parse_args()
    text = marks()
    if a.write:
        page = Path(a.write)
        page.write_text(replace(page.read_text(), "marks", text))
    else:
        print(text, end="")


if __name__ == "__main__":
    main()
