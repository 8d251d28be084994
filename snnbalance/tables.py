"""Result tables as strings: what ``snnbalance convert`` prints with Rich, what the TUI puts in its
DataTable and what a report writes as Markdown -- built once, here, whatever renders them.

Headless: no Rich or Textual. A front end only decides how cells look (colour, markup escaping),
never what they say.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from .report import format_pct, format_si, summary_rows

if TYPE_CHECKING:  # the jobs layer above; only its type is needed here
    from .pipeline import ConversionReport


@dataclass(frozen=True)
class Table:
    """A table whose cells are already formatted.

    Attributes:
        columns: the header.
        rows: one tuple of cells per row, as many as ``columns``.
        align: one letter per column, ``l`` or ``r``.
        title: shown above the table ('' for none).
        caption: what the columns mean, shown under it ('' for none).
    """

    columns: tuple[str, ...]
    rows: list[tuple[str, ...]] = field(default_factory=list)
    align: str = ""
    title: str = ""
    caption: str = ""

    def __post_init__(self) -> None:
        if not self.align:
            object.__setattr__(self, "align", "l" * len(self.columns))
        if len(self.align) != len(self.columns) or any(len(r) != len(self.columns) for r in self.rows):
            raise ValueError("every row and the alignment need one entry per column")

    def markdown(self) -> str:
        """The table as GitHub Markdown (header, alignment row, body; no title or caption)."""
        sep = ["---:" if a == "r" else "---" for a in self.align]
        lines = ["| " + " | ".join(self.columns) + " |", "| " + " | ".join(sep) + " |"]
        lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in self.rows]
        return "\n".join(lines) + "\n"


#: The columns of :func:`results_table`; ``ANN-1 ms`` and ``ops@ANN-1`` only with ``frontier=True``.
RESULT_COLUMNS = ("normalizer", "final", "10ms", "30ms", "100ms", "±1% ms", "ANN-1 ms", "ops@ANN-1", "Hz", "synops")
_FRONTIER_COLUMNS = ("ANN-1 ms", "ops@ANN-1")
_CAPTION = (
    "±1% ms: first time from which accuracy stays within 1 point of final; Hz: mean firing rate; synops: synaptic operations per image"
)
# The wider table goes on a narrower screen (the TUI's Results tab): a terser caption.
_FRONTIER_CAPTION = (
    "% accuracy · ±1% ms: settled within 1 point · ANN-1: time and synops (constant-rate estimate) "
    "to stay within 1 point of the ANN · Hz: mean rate · synops per image"
)


def _ms(v: float) -> str:
    return "-" if not math.isfinite(v) else f"{v:g}"


def _within_1_point(row: dict) -> tuple[str, str]:
    """Time and synops to stay within 1 point of the ANN (the frontier's middle mark)."""
    f = next(f for f in row["frontier"] if f["points"] == 1.0)
    if not math.isfinite(f["time_ms"]):
        return "-", "-"
    return f"{f['time_ms']:g}", format_si(f["synaptic_ops_per_sample"])


def results_header(*, frontier: bool = False) -> Table:
    """:func:`results_table` without rows: its columns, title and caption (for a front end that
    lays out the table before there are results)."""
    columns = tuple(c for c in RESULT_COLUMNS if frontier or c not in _FRONTIER_COLUMNS)
    return Table(
        columns,
        [],
        align="l" + "r" * (len(columns) - 1),
        title="SNN accuracy [%] over simulated time",
        caption=_FRONTIER_CAPTION if frontier else _CAPTION,
    )


def results_table(report: ConversionReport, *, frontier: bool = False, mark_partial: bool = False) -> Table:
    """One row per run of ``report``: accuracy [%] at the end and at 10/30/100 ms, the time from
    which it stays within 1 point of its final value, mean rate and synaptic operations per image.

    The numbers are :func:`snnbalance.report.summary_rows`' (computed from the unrounded curves,
    not from ``results.json``, whose curves are rounded to six decimals).

    Args:
        report: the conversion's report.
        frontier: add the time and synops to stay within 1 point of the ANN (``ANN-1 ms``,
            ``ops@ANN-1``); the CLI prints the whole frontier on lines under a narrower table.
        mark_partial: append `` (partial)`` to a cancelled run's name; the CLI says it once, below.
    Returns:
        The table, with its title and caption (:func:`results_header`).
    """
    rows = []
    for run, r in zip(report.runs, summary_rows(report)):
        name = r["normalizer"] + (" (partial)" if mark_partial and run.result.cancelled else "")
        rows.append(
            (
                name,
                format_pct(r["final_accuracy"]),
                format_pct(r["accuracy_10ms"]),
                format_pct(r["accuracy_30ms"]),
                format_pct(r["accuracy_100ms"]),
                _ms(r["time_to_1pct_ms"]),
                *(_within_1_point(r) if frontier else ()),
                f"{r['mean_firing_rate_hz']:.1f}",
                format_si(r["synaptic_ops_per_sample"]),
            )
        )
    header = results_header(frontier=frontier)
    if report.config.sim.readout != "spikes":  # predictions not from output spikes: say so where the numbers are
        header = replace(header, title=f"{header.title} · {report.config.sim.readout} read-out")
    return replace(header, rows=rows)


__all__ = ["Table", "results_header", "results_table", "RESULT_COLUMNS"]
