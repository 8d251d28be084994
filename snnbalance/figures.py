"""The error-vs-time figure every report draws: ``accuracy.png`` of ``snnbalance convert`` and
Figures 3/4 of ``snnbalance reproduce`` (as the paper's Figure 3: test error against simulated
time on log-log axes).

Matplotlib is imported inside the functions, with the headless Agg back end, so importing this
module costs nothing.
"""

from __future__ import annotations

import io
from typing import Any, Iterable, Sequence

import numpy as np


def pyplot():
    """``matplotlib.pyplot`` on the Agg back end (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def error_vs_time(
    ax,
    curves: Iterable[tuple[Sequence[float], float, dict[str, Any]]],
    *,
    floor: float,
    reference: tuple[float, str] | None = None,
    bottom: float | None = None,
) -> None:
    """Draw test error [%] against simulated time [ms] on log-log axes.

    Args:
        ax: the matplotlib axes.
        curves: per line, the accuracy (0-1) after each step, the step [ms] and ``ax.plot``'s
            keyword arguments (colour, line style, label, ...).
        floor: the smallest error drawn: log axes cannot show 0 %, so lower errors are drawn here.
        reference: a dashed black line at this accuracy (0-1) with this legend label (the ANN's).
        bottom: the lower end of the error axis; None leaves it to matplotlib.
    """
    for accuracy, dt, style in curves:
        acc = np.asarray(accuracy, dtype=float)
        t = np.arange(1, len(acc) + 1) * dt  # the accuracy after step k is the one at k * dt
        ax.plot(t, np.clip(100.0 * (1.0 - acc), floor, None), **style)
    if reference is not None:
        ax.axhline(max(100 * (1 - reference[0]), floor), color="k", ls="--", lw=1, label=reference[1])
    if bottom is not None:
        ax.set_ylim(bottom=bottom)  # before the log scale: the top then stays where the data put it
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("simulated time [ms]")


def png_bytes(fig) -> bytes:
    """The figure as PNG bytes; the figure is closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    pyplot().close(fig)
    return buf.getvalue()


__all__ = ["error_vs_time", "png_bytes", "pyplot"]
