"""What the TUI's worker threads send, the progress callback that sends it, and how workers wait.

Workers never touch widgets: they post these messages (``post_message`` is thread-safe) and the
app renders them on its own thread.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from textual.message import Message
from textual.worker import get_current_worker

from ..pipeline import ConversionReport
from ..progress import NOTE, Cancelled, ProgressEvent
from ..session import ModelInfo


def abandonable(stop: threading.Event, fn: Callable[..., Any], *args: Any) -> Any:
    """Call ``fn(*args)`` in a daemon thread from a Textual thread worker; return its result.

    Textual waits for its worker threads when the app exits, and neither a model import (torch
    tracing) nor a batch of simulation can be interrupted, so quitting could leave the user
    without a prompt for many seconds. The worker waits here instead and gives up when ``stop``
    is set (the app is closing) or the worker is cancelled (a newer load replaced it): the daemon
    thread is then abandoned, and the interpreter does not wait for daemon threads. Only use it
    for work that writes nothing.

    Raises:
        Cancelled: given up before ``fn`` returned.
        Exception: whatever ``fn`` raised.
    """
    worker = get_current_worker()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the worker below
            box["error"] = exc

    thread = threading.Thread(target=target, name=f"snnbalance-{getattr(fn, '__name__', 'work')}", daemon=True)
    thread.start()
    while thread.is_alive():
        if stop.is_set() or worker.is_cancelled:
            raise Cancelled()
        thread.join(0.1)
    if "error" in box:
        raise box["error"]
    return box["result"]


class RunTick(Message):
    """New progress is waiting in the relay; read it with :meth:`ProgressRelay.take`."""


class RunDone(Message):
    """A run ended.

    Attributes:
        report: the report (``report.cancelled`` when stopped early), or None when the run
            failed or was cancelled before any normalizer ran.
        cancelled: the user stopped the run.
        error: one line for the user when the run failed.
    """

    def __init__(self, report: ConversionReport | None, cancelled: bool = False, error: str = "") -> None:
        super().__init__()
        self.report, self.cancelled, self.error = report, cancelled, error


class ModelLoaded(Message):
    """A model was imported and its ANN accuracy measured (by load number ``generation``)."""

    def __init__(self, info: ModelInfo, generation: int = 0) -> None:
        super().__init__()
        self.info, self.generation = info, generation


class ModelFailed(Message):
    """Importing a model failed; ``error`` is one line for the user."""

    def __init__(self, error: str, generation: int = 0) -> None:
        super().__init__()
        self.error, self.generation = error, generation


class ProgressRelay:
    """The progress callback of a run: keeps the latest event per task and paces the redraws.

    Simulations report after every batch, which may be far more often than a terminal can be
    redrawn. The relay stores each event and posts a :class:`RunTick` only when none is
    outstanding. The app handles a tick by calling :meth:`take` and, ``interval`` seconds
    later, :meth:`release`, which posts the next tick only if events arrived meanwhile. So at
    most one tick is ever queued, the screen is redrawn at most once per interval, and it is
    never more than one interval behind. Setting :attr:`cancel` makes the next event raise
    :class:`~snnbalance.progress.Cancelled`.

    Args:
        post: thread-safe function that delivers a message to the app.
    """

    def __init__(self, post: Callable[[Message], object]) -> None:
        self.post = post
        self.cancel = threading.Event()
        self._lock = threading.Lock()
        self._latest: dict[str, ProgressEvent] = {}
        self._outstanding = False  # a tick was posted and not yet released
        self._dirty = False  # events arrived since the last take
        self.events = 0
        self.ticks = 0

    def __call__(self, event: ProgressEvent) -> None:
        if self.cancel.is_set():
            raise Cancelled()
        if event.task == NOTE:  # messages reach the screen with the report, not as a progress row
            return
        with self._lock:
            self._latest[event.task] = event
            self.events += 1
            self._dirty = True
            if self._outstanding:
                return
            self._outstanding = True
            self.ticks += 1
        self.post(RunTick())

    def take(self) -> dict[str, ProgressEvent]:
        """The latest event of every task so far (in the order the tasks started)."""
        with self._lock:
            self._dirty = False
            return dict(self._latest)

    def release(self) -> None:
        """Allow the next tick; post it at once if events arrived since :meth:`take`."""
        with self._lock:
            if not self._dirty:
                self._outstanding = False
                return
            self.ticks += 1
        self.post(RunTick())
