"""The one copy of the results tables (snnbalance.tables) and of the error-vs-time figure (snnbalance.figures)."""

from __future__ import annotations

import numpy as np
import pytest

from snnbalance.graph import Graph
from snnbalance.pipeline import ConversionReport, ConvertConfig, Run
from snnbalance.simulate import SimResult
from snnbalance.tables import Table, results_header, results_table


def _result(curve, dt=1.0, cancelled=False) -> SimResult:
    acc = np.asarray(curve, dtype=float)
    return SimResult(
        accuracy_over_time=acc,
        final_accuracy=float(acc[-1]),
        firing_rates={"a": 10.0, "b": 30.0},
        spike_counts={},
        synaptic_ops_per_sample=2.5e6,
        output_counts=np.zeros((0, 10)),
        samples=100,
        steps=len(acc),
        dt=dt,
        wall_seconds=1.0,
        image_steps_per_second=1.0,
        cancelled=cancelled,
    )


def _report(*runs: Run) -> ConversionReport:
    return ConversionReport(
        model="m",
        dataset="mnist",
        config=ConvertConfig(),
        ann_accuracy=0.95,
        graph=Graph((1,)),
        import_notes=[],
        import_max_rel_error=0.0,
        data_notes=[],
        runs=list(runs),
    )


def test_results_table_cells():
    # 40 steps of 1 ms: 0.5 until 9 ms, 0.9 until 29 ms, then 0.945 (within 1 point of the ANN from 30 ms)
    curve = [0.5] * 9 + [0.9] * 20 + [0.945] * 11
    report = _report(Run("data-based", {}, {}, _result(curve)), Run("copy", {}, {}, _result([0.1] * 4, cancelled=True)))
    table = results_table(report)
    assert table.columns == ("normalizer", "final", "10ms", "30ms", "100ms", "±1% ms", "Hz", "synops")
    assert table.rows[0] == ("data-based", "94.50", "90.00", "94.50", "-", "30", "20.0", "2.5M")
    assert table.rows[1] == ("copy", "10.00", "-", "-", "-", "1", "20.0", "2.5M")  # 4 ms run: '-' past its end
    wide = results_table(report, frontier=True, mark_partial=True)
    assert wide.columns[6:8] == ("ANN-1 ms", "ops@ANN-1")
    assert wide.rows[0][6:8] == ("30", "1.88M")  # 30 of 40 steps of 2.5M synops (constant-rate estimate)
    assert wide.rows[1][0] == "copy (partial)" and wide.rows[1][6:8] == ("-", "-")
    assert wide.align == "l" + "r" * 9 and wide.caption != table.caption
    assert results_header(frontier=True).columns == wide.columns and results_header().rows == []


def test_table_markdown_and_shape():
    t = Table(("name", "value"), [("a", "1"), ("b", "22")], "lr")
    assert t.markdown() == "| name | value |\n| --- | ---: |\n| a | 1 |\n| b | 22 |\n"
    assert Table(("x",)).align == "l"
    with pytest.raises(ValueError):
        Table(("name", "value"), [("a",)])


def test_error_vs_time_draws_error_percent_at_step_ends():
    from snnbalance.figures import error_vs_time, png_bytes, pyplot

    fig, ax = pyplot().subplots()
    error_vs_time(ax, [([0.5, 0.99, 1.0], 2.0, {"label": "x"})], floor=0.1, reference=(0.9, "ANN"), bottom=0.08)
    line, ann = ax.get_lines()
    assert list(line.get_xdata()) == [2.0, 4.0, 6.0]
    assert np.allclose(line.get_ydata(), [50.0, 1.0, 0.1])  # 0 % error drawn at the floor
    assert np.allclose(ann.get_ydata(), [10.0, 10.0]) and ann.get_label() == "ANN"
    assert ax.get_xscale() == ax.get_yscale() == "log" and ax.get_ylim()[0] == pytest.approx(0.08)
    assert png_bytes(fig)[:8] == b"\x89PNG\r\n\x1a\n"


def test_numbers_are_never_cut_on_an_80_column_terminal():
    """A long normalizer name folds; every number stays whole (it used to print "100.…")."""
    from rich.console import Console

    from snnbalance.cli.tables import rich_table
    from snnbalance.tables import Table

    rows = [("threshold-balancing:T=8,v_init=0.5", "100.00", "99.67", "-", "-", "3", "81.5", "3.84M")]
    table = Table(("normalizer", "final", "10ms", "30ms", "100ms", "±1% ms", "Hz", "synops"), rows, "lrrrrrrr")
    console = Console(width=80, record=True)
    console.print(rich_table(table, no_wrap=("normalizer",), width=console.width))
    text = console.export_text()
    assert "…" not in text and all(len(line) <= 80 for line in text.splitlines())
    for cell in rows[0][1:]:
        assert f" {cell} " in text
