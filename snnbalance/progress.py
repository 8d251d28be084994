"""One progress-event interface for every long computation: the CLI's Rich bars and the TUI read it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class ProgressEvent:
    """Where a task stands.

    Attributes:
        task: what is running, e.g. ``"calibrate"`` or ``"simulate data-based"``.
        completed: units done (samples, batches, epochs).
        total: units in all.
        info: task-specific extras; simulations put ``accuracy`` (the curve over time so far,
            averaged over the samples done) and ``firing_rates`` here.
    """

    task: str
    completed: int
    total: int
    info: dict[str, Any] = field(default_factory=dict)


Progress = Callable[[ProgressEvent], None]

NOTE = "note"
"""Task name of an event that carries a message for the user (``info["message"]``), not progress:
something found before the slow part that the user should read now, not after it."""


class Cancelled(Exception):
    """Raised by a progress callback to stop a run; partial results are kept by the caller."""


def emit(progress: Progress | None, event: ProgressEvent) -> None:
    if progress is not None:
        progress(event)
