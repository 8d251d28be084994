"""The Run tab: one panel per normalizer with progress, a live accuracy sparkline and firing rates."""

from __future__ import annotations

import numpy as np
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.markup import escape
from textual.widgets import Button, Label, ProgressBar, Sparkline, Static

from ...pipeline import ConversionReport
from ...progress import ProgressEvent
from ...simulate import SimResult
from .plot import color_of

SIM_PREFIX = "simulate "
SPARK_POINTS = 120


def log_time_samples(curve: list[float], points: int = SPARK_POINTS) -> list[float]:
    """``curve`` read at log-spaced steps, so the first milliseconds, where accuracy climbs,
    are not squeezed into the first character of the sparkline."""
    if len(curve) <= 2:
        return list(curve)
    idx = np.unique(np.geomspace(1, len(curve), num=min(points, len(curve))).round().astype(int)) - 1
    return [curve[i] for i in idx]


class NormalizerPanel(Vertical):
    """Progress of one normalizer's simulation.

    Args:
        normalizer: the normalizer spec, as in ``ProgressEvent.task`` after ``simulate ``.
        index: its position, which picks its colour (the same as in the results plot).
        dt: the simulation's time step [ms].
        samples: images to simulate (until the first event says otherwise).
        show_times: show wall-clock times and the ETA (off in snapshot tests).
    """

    def __init__(self, normalizer: str, index: int, dt: float, samples: int, show_times: bool = True, **kw) -> None:
        super().__init__(classes="panel", **kw)
        self.normalizer, self.index, self.dt, self.show_times = normalizer, index, dt, show_times
        self.samples = samples
        self.curve: list[float] = []  # accuracy after each step, over the images done so far
        self.border_title = escape(normalizer)
        self.border_subtitle = "waiting"

    def compose(self) -> ComposeResult:
        color = color_of(self.index)
        yield ProgressBar(total=self.samples, show_eta=self.show_times, classes="bar")
        yield Sparkline([], min_color=color, max_color=color, classes="spark")
        yield Static("", classes="rates")

    def update(self, event: ProgressEvent) -> None:
        """Show the latest progress event of this normalizer's simulation."""
        self.query_one(ProgressBar).update(total=event.total, progress=event.completed)
        if event.completed >= event.total:
            self._stop_eta()
        acc = event.info.get("accuracy")
        if acc is not None and len(acc):
            self._show(list(map(float, acc)), event.completed, event.total)
        rates = event.info.get("firing_rates") or {}
        self.query_one(".rates", Static).update(_rates(rates))

    def finish(self, result: SimResult) -> None:
        """Show a finished (or cancelled) simulation from its result."""
        bar = self.query_one(ProgressBar)
        bar.update(total=bar.total if result.cancelled else result.samples, progress=result.samples)
        self._stop_eta()
        self._show(
            list(map(float, result.accuracy_over_time)),
            result.samples,
            None,
            "cancelled" if result.cancelled else "done",
            result.wall_seconds,
        )
        self.query_one(".rates", Static).update(_rates(result.firing_rates))

    def mark(self, text: str) -> None:
        """Say why this panel will not advance (cancelled, failed)."""
        self.border_subtitle = text
        self._stop_eta()

    def _stop_eta(self) -> None:
        for eta in self.query("#eta"):  # a finished or stopped bar has nothing left to estimate
            eta.display = False

    def _show(self, acc: list[float], done: int, total: int | None, state: str = "", wall: float | None = None) -> None:
        self.curve = acc
        self.query_one(Sparkline).data = log_time_samples(acc)
        span = f" at {len(acc) * self.dt:g} ms"
        images = f"{done}/{total} images" if total else f"{done} images"
        took = f" in {wall:.1f} s" if self.show_times and wall is not None else ""
        tail = f" · {state}{took}" if state else ""
        self.border_subtitle = f"acc {100 * acc[-1]:.2f} %{span} · {images}{tail}"


def _rates(rates: dict[str, float]) -> str:
    if not rates:
        return ""
    return "[dim]rate Hz[/] " + "  ".join(f"{escape(k)} [b]{v:.1f}[/]" for k, v in rates.items())


class RunView(Vertical):
    """Run and Cancel buttons, the current stage and a :class:`NormalizerPanel` per normalizer.

    Args:
        show_times: show wall-clock times and ETAs (off in snapshot tests).
    """

    def __init__(self, show_times: bool = True, **kw) -> None:
        super().__init__(**kw)
        self.show_times = show_times
        self.panels: dict[str, NormalizerPanel] = {}

    def compose(self) -> ComposeResult:
        with Horizontal(classes="row"):
            yield Button("Run", id="run", action="app.run", variant="success", compact=True)
            yield Button("Cancel", id="cancel", action="app.cancel", variant="error", compact=True, disabled=True)
            yield Label("ctrl+r runs · sparklines: accuracy against log time", id="stage")
        yield VerticalScroll(id="panels")

    def set_stage(self, text: str) -> None:
        self.query_one("#stage", Label).update(text)

    def set_running(self, running: bool) -> None:
        self.query_one("#run", Button).disabled = running
        self.query_one("#cancel", Button).disabled = not running

    async def start(self, normalizers: list[str], dt: float, samples: int) -> None:
        """Replace the panels with fresh ones for a run of ``samples`` images, time step ``dt`` [ms]."""
        box = self.query_one("#panels", VerticalScroll)
        await box.remove_children()
        self.panels = {n: NormalizerPanel(n, i, dt, samples, self.show_times) for i, n in enumerate(normalizers)}
        await box.mount_all(self.panels.values())
        self.set_stage("starting …")

    def clear(self) -> None:
        """No panels: the previous model's run is gone."""
        self.query_one("#panels", VerticalScroll).remove_children()
        self.panels = {}
        self.set_stage("ctrl+r runs · sparklines: accuracy against log time")

    def update(self, events: dict[str, ProgressEvent]) -> None:
        """Show the latest event of every task (``import``, ``calibrate``, ``simulate NAME``)."""
        for task, ev in events.items():
            name = task.removeprefix(SIM_PREFIX)
            if task.startswith(SIM_PREFIX) and name in self.panels:
                self.panels[name].update(ev)
        if events:
            task, ev = list(events.items())[-1]  # the newest task is the one running
            self.set_stage(escape(f"{task}: {ev.completed}/{ev.total}"))

    def finish(self, report: ConversionReport | None, state: str) -> None:
        """Show the final curves of the runs in ``report``; mark the others with ``state``."""
        done = {run.normalizer: run for run in report.runs} if report else {}
        for name, panel in self.panels.items():
            if name in done:
                panel.finish(done[name].result)
            else:
                panel.mark(state)
        self.set_stage(escape(state))
