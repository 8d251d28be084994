"""An accuracy-over-time line plot drawn with Braille dots (2x4 per character cell).

Time runs on a logarithmic axis, as in the paper's figures, because the interesting part of
a rate-coded network's curve is its first few tens of milliseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from ...simulate.core import accuracy_at

#: Matplotlib's default colour cycle, so the terminal plot and accuracy.png agree; these read
#: well on light and dark backgrounds alike.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")

# Bit of each dot in a Braille cell, indexed [row][column] (Unicode block U+2800).
_DOTS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))


def color_of(index: int) -> str:
    """The colour of the ``index``-th curve."""
    return PALETTE[index % len(PALETTE)]


@dataclass(frozen=True)
class Curve:
    """One line: accuracy (0-1) after each step of ``dt`` milliseconds."""

    label: str
    accuracy: tuple[float, ...]
    dt: float
    color: str


class AccuracyPlot(Widget):
    """Accuracy [%] against simulated time [ms, log scale], one coloured line per curve."""

    DEFAULT_CSS = """
    AccuracyPlot {
        height: 1fr;
        min-height: 6;
    }
    """

    curves: reactive[tuple[Curve, ...]] = reactive(tuple)
    """The lines to draw; assign a new tuple to redraw."""
    reference: reactive[float | None] = reactive(None)
    """A dashed horizontal line (the ANN's accuracy, 0-1), or None."""

    def render(self) -> Text:
        width, height = self.size.width, self.size.height
        curves = [c for c in self.curves if len(c.accuracy)]
        if not curves or width < 16 or height < 4:
            return Text("no results yet", style="dim")
        left, rows, cols = 5, height - 2, width - 6  # y labels + axis, legend and x labels
        t_lo = min(c.dt for c in curves)
        t_hi = max(c.dt * len(c.accuracy) for c in curves)
        log = t_hi / t_lo >= 10
        xs = _x_positions(t_lo, t_hi, cols * 2, log)
        grid = np.zeros((rows, cols), dtype=np.int32)
        owner = np.full((rows, cols), -1, dtype=np.int32)
        if self.reference is not None:
            y = _y_pixel(self.reference, rows * 4)
            for px in range(0, cols * 2, 3):  # dashed
                _dot(grid, owner, px, y, len(curves))
        for i, c in enumerate(curves):
            prev = None
            for px, t in enumerate(xs):
                a = accuracy_at(c.accuracy, c.dt, t)  # the one reading of a curve at a time
                if math.isnan(a):  # before the first step ends, or after the run
                    if t < c.dt:
                        continue
                    break
                y = _y_pixel(a, rows * 4)
                lo, hi = (y, y) if prev is None else (min(prev, y), max(prev, y))
                for yy in range(lo, hi + 1):  # vertical fill keeps steep steps connected
                    _dot(grid, owner, px, yy, i)
                prev = y
        out = Text(no_wrap=True, overflow="crop")
        out.append_text(self._legend(curves))
        labels = {0: "100", rows // 2: " 50", rows - 1: "  0"}
        for r in range(rows):
            out.append("\n" + labels.get(r, "").rjust(left - 1) + (" ┤" if r in labels else " │"), style="dim")
            for col in range(cols):
                bits = int(grid[r, col])
                if not bits:
                    out.append(" ")
                    continue
                who = int(owner[r, col])
                style = "dim" if who >= len(curves) else curves[who].color
                out.append(chr(0x2800 + bits), style=style)
        out.append("\n" + _x_axis(t_lo, t_hi, cols, log, left + 1), style="dim")
        return out

    def _legend(self, curves: list[Curve]) -> Text:
        text = Text("  acc %   ", style="dim")
        for c in curves:
            text.append("━━ ", style=c.color)
            text.append(f"{c.label}  ")
        if self.reference is not None:
            text.append("┄┄ ", style="dim")
            text.append(f"ANN {100 * self.reference:.2f}")
        return text


def _x_positions(t_lo: float, t_hi: float, n: int, log: bool) -> np.ndarray:
    """The time (ms) at each of ``n`` horizontal dot positions."""
    if n < 2:
        return np.array([t_hi])
    if log:
        return np.exp(np.linspace(math.log(t_lo), math.log(t_hi), n))
    return np.linspace(t_lo, t_hi, n)


def _y_pixel(accuracy: float, n: int) -> int:
    a = 0.0 if not math.isfinite(accuracy) else min(max(accuracy, 0.0), 1.0)
    return int(round((1.0 - a) * (n - 1)))


def _dot(grid: np.ndarray, owner: np.ndarray, px: int, py: int, who: int) -> None:
    r, c = py // 4, px // 2
    if 0 <= r < grid.shape[0] and 0 <= c < grid.shape[1]:
        grid[r, c] |= _DOTS[py % 4][px % 2]
        owner[r, c] = who  # the reference is drawn first, so curves win a shared cell


def _x_axis(t_lo: float, t_hi: float, cols: int, log: bool, indent: int) -> str:
    """Tick labels under the plot: powers of ten on a log axis, else the ends and the middle."""
    line = [" "] * (indent + cols + 8)
    if log:
        ticks = [10**e for e in range(math.ceil(math.log10(t_lo)), math.floor(math.log10(t_hi)) + 1)]
        pos = [(math.log(t) - math.log(t_lo)) / (math.log(t_hi) - math.log(t_lo)) for t in ticks]
    else:
        ticks = [t_lo, (t_lo + t_hi) / 2, t_hi]
        pos = [0.0, 0.5, 1.0]
    for t, p in zip(ticks, pos):
        label = f"{t:g}"
        at = indent + int(round(p * (cols - 1))) - len(label) // 2
        at = max(indent, min(at, indent + cols - len(label)))
        line[at : at + len(label)] = label
    text = "".join(line).rstrip()
    return text + "  ms" if len(text) + 4 <= indent + cols else text
