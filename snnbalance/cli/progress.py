"""Rich progress bars fed by the library's :class:`~snnbalance.progress.ProgressEvent` s."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..progress import NOTE, ProgressEvent


class RichProgress:
    """A context manager whose instances are progress callbacks: one bar per event task."""

    def __init__(self, console: Console | None = None):
        self.bars = Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("{task.fields[note]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                             console=console, transient=False)
        self.tasks: dict[str, int] = {}

    def __enter__(self) -> "RichProgress":
        self.bars.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bars.__exit__(*exc)

    def __call__(self, ev: ProgressEvent) -> None:
        if ev.task == NOTE:  # a message to read now, printed above the bars
            self.bars.console.print(f"[yellow]warning:[/] {ev.info['message']}", highlight=False, soft_wrap=True)
            return
        if ev.task not in self.tasks:
            self.tasks[ev.task] = self.bars.add_task(ev.task, total=ev.total, note="")
        acc = ev.info.get("accuracy")  # a curve from simulations, a number from training
        if acc is not None and not isinstance(acc, (int, float)):
            acc = acc[-1] if len(acc) else None
        note = f"acc {100 * acc:.2f} %" if acc is not None else ""
        self.bars.update(self.tasks[ev.task], completed=ev.completed, total=ev.total, note=note)
