"""The target table of paper-networks.md from the measured files (docs/results/latency/).

    .venv/bin/python docs/results/latency/summarize.py [--write docs/results/latency/paper-networks.md]

Reads NETWORK/results.json (run_latency.py) and NETWORK/sj-recipes.json (sj_recipes.py) of the
paper's four networks and prints, per network, today's best 0.5-point mark (copy, tuned copy,
model-based, data-based, robust, spikenorm; either reset; v_init 0), the best method's, whether
the best needs at most half the time, and SpikingJelly's recipes' marks (a second table: every
recipe, analog or spiking output, Poisson or direct input). ``--write FILE`` replaces the parts of
FILE between the ``<!-- summary -->`` / ``<!-- /summary -->`` and ``<!-- sj -->`` / ``<!-- /sj -->`` lines.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

HERE = Path(__file__).parent
NETWORKS = ("mnist-mlp", "mnist-cnn", "fashion-mnist-mlp", "fashion-mnist-cnn")


def mark(r: dict, p: str) -> float:
    t = r.get(f"t_{p}")
    return math.inf if t is None or not math.isfinite(t) else t


def best(rows: list[dict], p: str = "0.5") -> dict | None:
    """The run that gets within ``p`` points first; ties go to fewer synaptic operations by then."""
    ok = [r for r in rows if math.isfinite(mark(r, p))]
    return min(ok, key=lambda r: (mark(r, p), r.get(f"ops_{p}") or math.inf)) if ok else None


def ms(t: float) -> str:
    return "never" if not math.isfinite(t) else f"{t:g} ms"


def ops(v) -> str:
    return "-" if v is None else (f"{v / 1e6:.2f}M" if v >= 1e6 else f"{v / 1e3:.0f}k")


def who(r: dict) -> str:
    return f"`{r['normalizer']}`, {r['reset']}, v_init {float(r['v_init']):g}"


def summary() -> str:
    head = [
        "| network | ANN | today's best ≤0.5 pt | best ≤0.5 pt | ratio | half the time? | today's / best ≤1 pt "
        "| SpikingJelly best ≤0.5 / ≤1 pt (Poisson) |",
        "|---|---:|---|---|---:|---|---|---|",
    ]
    lines, notes = list(head), []
    for net in NETWORKS:
        f = HERE / net / "results.json"
        if not f.exists():
            lines.append(f"| {net} | - | not measured | | | | | |")
            continue
        d = json.loads(f.read_text())
        runs = d["runs"]
        today = [r for r in runs if r.get("today")]
        t, b = best(today), best(runs)
        t1, b1 = best(today, "1"), best(runs, "1")
        tt, bt = (mark(t, "0.5") if t else math.inf), (mark(b, "0.5") if b else math.inf)
        ratio = bt / tt if math.isfinite(tt) and math.isfinite(bt) else math.nan
        met = "yes" if ratio <= 0.5 else ("no" if math.isfinite(ratio) else "-")
        sj = HERE / net / "sj-recipes.json"
        sjtxt = "-"
        if sj.exists():
            s = [r for r in json.loads(sj.read_text())["runs"] if r["encoding"] == "poisson"]
            s5, s1 = best(s), best(s, "1")
            sjtxt = (
                f"{ms(mark(s5, '0.5')) if s5 else 'never'} (`{s5['recipe'] if s5 else '-'}`) / "
                f"{ms(mark(s1, '1')) if s1 else 'never'} (`{s1['recipe'] if s1 else '-'}`)"
            )
        lines.append(
            f"| [{net}]({net}/table.md) | {100 * d['ann_accuracy']:.2f} % | {ms(tt)} ({who(t) if t else '-'}; "
            f"{ops(t.get('ops_0.5')) if t else '-'} synops) | {ms(bt)} ({who(b) if b else '-'}; "
            f"{ops(b.get('ops_0.5')) if b else '-'} synops) | {ratio:.2f} | {met} | "
            f"{ms(mark(t1, '1')) if t1 else 'never'} / {ms(mark(b1, '1')) if b1 else 'never'} | {sjtxt} |"
        )
        notes.append(
            f"- {net}: {len(runs)} runs ({len(today)} of today's methods at v_init 0), "
            f"{d['samples']} images, {d.get('duration_ms', 100):g} ms"
            + (f"; tuned copy θ = {d['tuned_copy_sweep']['best_threshold']:g}" if "tuned_copy_sweep" in d else "")
        )
    return "\n".join(lines + [""] + notes) + "\n"


def pick(runs: list[dict], recipe: str, readout: str, encoding: str) -> dict | None:
    return next((r for r in runs if r["recipe"] == recipe and r.get("readout", "analog") == readout and r["encoding"] == encoding), None)


def sj_section() -> str:
    """SpikingJelly's recipes next to snnbalance's best, per network: ≤0.5 / ≤1 pt marks in ms."""
    lines = [
        "| network | snnbalance best ≤0.5 / ≤1 pt | SpikingJelly recipe | analog output, Poisson | analog, direct "
        "input | spiking output, Poisson |",
        "|---|---|---|---|---|---|",
    ]
    pair = lambda r: f"{ms(mark(r, '0.5'))} / {ms(mark(r, '1'))}" if r else "-"  # noqa: E731
    for net in NETWORKS:
        f, sj = HERE / net / "results.json", HERE / net / "sj-recipes.json"
        if not (f.exists() and sj.exists()):
            continue
        runs = json.loads(f.read_text())["runs"]
        b5, b1 = best(runs), best(runs, "1")
        ours = f"{ms(mark(b5, '0.5')) if b5 else 'never'} / {ms(mark(b1, '1')) if b1 else 'never'}"
        s = json.loads(sj.read_text())["runs"]
        for i, key in enumerate(dict.fromkeys(r["recipe"] for r in s)):
            cells = [pair(pick(s, key, out, enc)) for out, enc in (("analog", "poisson"), ("analog", "direct"), ("spikes", "poisson"))]
            lines.append(f"| {net if i == 0 else ''} | {ours if i == 0 else ''} | `{key}` | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def replace(page: str, tag: str, text: str) -> str:
    start, end = f"<!-- {tag} -->\n", f"<!-- /{tag} -->"
    i, j = page.index(start) + len(start), page.index(end)
    return page[:i] + text + page[j:]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--write")
    a = ap.parse_args()
    text, sj = summary(), sj_section()
    if not a.write:
        print(text + "\n" + sj, end="")
        return
    page = Path(a.write).read_text()
    Path(a.write).write_text(replace(replace(page, "summary", text), "sj", sj))


if __name__ == "__main__":
    main()
