"""The Results tab: the numbers ``snnbalance convert`` prints, a larger plot, and where to save."""

from __future__ import annotations

import math

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.markup import escape
from textual.widgets import Button, DataTable, Input, Label

from ...pipeline import ConversionReport
from ...report import format_pct, format_si, summary_rows
from .plot import AccuracyPlot, Curve, color_of

# The same columns as the table `snnbalance convert` prints.
COLUMNS = ("normalizer", "final", "10ms", "30ms", "100ms", "±1% ms", "ANN-1 ms", "ops@ANN-1", "Hz", "synops")
CAPTION = ("% accuracy · ±1% ms: settled within 1 point · ANN-1: time and synops (constant-rate estimate) "
           "to stay within 1 point of the ANN · Hz: mean rate · synops per image")
DEFAULT_OUTPUT = "snnbalance-output"  # as `snnbalance convert --output`


def _frontier_cells(row: dict) -> tuple[str, str]:
    """Time and synops to stay within 1 point of the ANN (the frontier's middle mark)."""
    f = next(f for f in row["frontier"] if f["points"] == 1.0)
    if not math.isfinite(f["time_ms"]):
        return "-", "-"
    return f"{f['time_ms']:g}", format_si(f["synaptic_ops_per_sample"])


class ResultsView(Vertical):
    """The summary table (one row per normalizer), the accuracy plot and the output folder.

    Args:
        output: initial output folder.
    """

    def __init__(self, output: str = DEFAULT_OUTPUT, **kw) -> None:
        super().__init__(**kw)
        self._output = output

    def compose(self) -> ComposeResult:
        table = DataTable(id="results-table", cursor_type="row", zebra_stripes=True)
        table.add_columns(*map(escape, COLUMNS))
        yield table
        yield Label(CAPTION, id="results-caption", markup=False)
        yield AccuracyPlot(id="plot")
        with Horizontal(classes="row"):
            yield Label("save to ")
            yield Input(self._output, id="output", compact=True)
            yield Button("Save", id="save", action="app.save", variant="primary", compact=True)

    @property
    def output(self) -> str:
        return self.query_one("#output", Input).value.strip() or DEFAULT_OUTPUT

    def clear(self) -> None:
        """Show no run (after a model failed to load: its predecessor's results must go)."""
        self.query_one(DataTable).clear()
        plot = self.query_one(AccuracyPlot)
        plot.reference, plot.curves = None, ()

    def show(self, report: ConversionReport) -> None:
        """Fill the table and the plot from a (possibly cancelled) report."""
        table = self.query_one(DataTable)
        table.clear()
        for i, r in enumerate(summary_rows(report)):
            t1 = r["time_to_1pct_ms"]
            name = r["normalizer"] + (" (partial)" if report.runs[i].result.cancelled else "")
            table.add_row(f"[{color_of(i)}]■[/] {escape(name)}", format_pct(r["final_accuracy"]), format_pct(r["accuracy_10ms"]),
                          format_pct(r["accuracy_30ms"]), format_pct(r["accuracy_100ms"]),
                          "-" if not math.isfinite(t1) else f"{t1:g}", *_frontier_cells(r),
                          f"{r['mean_firing_rate_hz']:.1f}",
                          format_si(r["synaptic_ops_per_sample"]))
        plot = self.query_one(AccuracyPlot)
        plot.reference = report.ann_accuracy
        plot.curves = tuple(
            Curve(f"{run.normalizer} {format_pct(run.result.final_accuracy)}", tuple(map(float, run.result.accuracy_over_time)),
                  run.result.dt, color_of(i)) for i, run in enumerate(report.runs))
