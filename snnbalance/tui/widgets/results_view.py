"""The Results tab: the numbers ``snnbalance convert`` prints, a larger plot, and where to save."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.markup import escape
from textual.widgets import Button, DataTable, Input, Label

from ...pipeline import ConversionReport
from ...report import format_pct
from ...tables import results_header, results_table
from .plot import AccuracyPlot, Curve, color_of

DEFAULT_OUTPUT = "snnbalance-output"  # as `snnbalance convert --output`


class ResultsView(Vertical):
    """The summary table (one row per normalizer), the accuracy plot and the output folder.

    Args:
        output: initial output folder.
    """

    def __init__(self, output: str = DEFAULT_OUTPUT, **kw) -> None:
        super().__init__(**kw)
        self._output = output

    def compose(self) -> ComposeResult:
        # The table `snnbalance convert` prints, with the time and cost to stay within 1 point of
        # the ANN as columns (the CLI prints them as lines under it).
        header = results_header(frontier=True)
        table = DataTable(id="results-table", cursor_type="row", zebra_stripes=True)
        table.add_columns(*map(escape, header.columns))
        yield table
        yield Label(header.caption, id="results-caption", markup=False)
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
        for i, (name, *cells) in enumerate(results_table(report, frontier=True, mark_partial=True).rows):
            table.add_row(f"[{color_of(i)}]■[/] {escape(name)}", *cells)
        plot = self.query_one(AccuracyPlot)
        plot.reference = report.ann_accuracy
        plot.curves = tuple(
            Curve(
                f"{run.normalizer} {format_pct(run.result.final_accuracy)}",
                tuple(map(float, run.result.accuracy_over_time)),
                run.result.dt,
                color_of(i),
            )
            for i, run in enumerate(report.runs)
        )
