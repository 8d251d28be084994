"""The one progress display of the CLI, fed by the library's :class:`~snnbalance.progress.ProgressEvent` s.

On a terminal it draws Rich bars; when stderr is not a terminal (a batch job, a cluster log,
``2> log``) Rich would draw nothing until the end, so it prints a plain line per task every few
seconds instead: what, k of n, rate, ETA. It writes to stderr, so ``> out.txt`` holds results only.
``convert``, ``train`` and ``reproduce`` all use :class:`ProgressDisplay`; each passes a ``label``
that says how its events read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..progress import NOTE, ProgressEvent

PLAIN_EVERY = 5.0
"""Seconds between two plain lines of one task."""


@dataclass
class Label:
    """How one event reads: the row it updates (``slot``), what it says, and a short note."""

    slot: str
    description: str
    note: str = ""


def accuracy_label(ev: ProgressEvent) -> Label:
    """``convert``'s events: one row per task, with the accuracy so far."""
    acc = ev.info.get("accuracy")  # a curve from simulations, a number from training
    if acc is not None and not isinstance(acc, (int, float)):
        acc = acc[-1] if len(acc) else None
    return Label(ev.task, ev.task, f"acc {100 * acc:.2f} %" if acc is not None else "")


@dataclass
class _Row:
    started: float
    first_done: int
    printed: float
    task: TaskID | None = None
    last: ProgressEvent | None = None
    label: Label = field(default_factory=lambda: Label("", ""))


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _count(done: int, total: int) -> str:
    return f"{100 * done / total:5.1f} %" if total > 10**6 else f"{done}/{total}"


class ProgressDisplay:
    """A context manager whose instances are progress callbacks.

    Args:
        console: where to draw (default: stderr).
        label: how an event reads (default: :func:`accuracy_label`).
        plain: plain lines instead of bars (default: when the console is not a terminal).
        every: seconds between two plain lines of one task.
        width: width of the description column of the bars.
    """

    def __init__(
        self,
        console: Console | None = None,
        *,
        label: Callable[[ProgressEvent], Label] = accuracy_label,
        plain: bool | None = None,
        every: float = PLAIN_EVERY,
        width: int = 28,
    ):
        self.console = console or Console(stderr=True, highlight=False)
        self.label, self.every = label, every
        self.plain = (not self.console.is_terminal) if plain is None else plain
        self.bars = Progress(
            TextColumn(f"{{task.description:<{width}}}"),
            BarColumn(bar_width=24),
            TextColumn("{task.fields[count]}"),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.rows: dict[str, _Row] = {}
        self.shown: list[str] = []  # messages already printed (the caller need not print them again)

    def __enter__(self) -> "ProgressDisplay":
        if not self.plain:
            self.bars.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if not self.plain:
            self.bars.__exit__(*exc)

    def print(self, text: str, **kw) -> None:
        """A line above the bars (or between the plain lines)."""
        self.console.print(text, highlight=False, soft_wrap=True, **kw)

    def __call__(self, ev: ProgressEvent) -> None:
        if ev.task == NOTE:  # a message to read now
            self.shown.append(ev.info["message"])
            self.print(f"[yellow]warning:[/] {ev.info['message']}")
            return
        label, now = self.label(ev), time.monotonic()
        row = self.rows.get(label.slot)
        if row is None or (row.last is not None and ev.completed < row.last.completed):  # a new task in the slot
            row = self.rows[label.slot] = _Row(now, ev.completed, now, task=row.task if row else None)
        row.last, row.label = ev, label
        total = max(ev.total, 1)
        if self.plain:
            done = ev.completed >= ev.total
            # every task's end gets its line (a log shows what ran, however fast), and a long task
            # one line every `every` seconds in between
            if done or now - row.printed >= self.every:
                row.printed = now
                self.print(self.line(row, now), markup=False)
            return
        if row.task is None:
            row.task = self.bars.add_task(label.description, total=total, note="", count="")
        self.bars.update(
            row.task, completed=ev.completed, total=total, description=label.description, note=label.note, count=_count(ev.completed, total)
        )

    def line(self, row: _Row, now: float) -> str:
        """``simulate data-based: 250/1000, 83.1/s, ETA 0:09, acc 98.80 %``."""
        ev, elapsed = row.last, now - row.started
        assert ev is not None  # update() sets it before any line is made
        parts = [f"{row.label.description}: {_count(ev.completed, max(ev.total, 1)).strip()}"]
        rate = (ev.completed - row.first_done) / elapsed if elapsed > 0 else 0.0
        if ev.completed >= ev.total:
            parts.append(f"done in {_clock(elapsed)}")
        elif rate > 0:
            parts += [f"{rate:.3g}/s", f"ETA {_clock((ev.total - ev.completed) / rate)}"]
        return ", ".join(parts + ([row.label.note] if row.label.note else []))


RichProgress = ProgressDisplay  # the name convert and the docs have used
