"""The small typed records that plugins yield and the core passes around."""

from __future__ import annotations

import functools
import weakref
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from .graph import Graph


@dataclass
class Balanced:
    """What a normalizer returns: the balanced graph and the factor each weighted layer was divided by."""

    graph: Graph
    scale_factors: dict[str, float]


class NormalizeFn(Protocol):
    def __call__(self, graph: Graph, ctx: "NormalizeContext") -> Balanced: ...


@dataclass
class Normalizer:
    """A weight/threshold balancing method.

    Attributes:
        name: what users type after ``--normalizer``.
        description: one line for ``snnbalance plugins`` and the TUI.
        normalize: pure function from (graph, context) to :class:`Balanced`; must not modify its input.
        needs_calibration: whether it reads activations on training data.
        options: option name -> one-line description (``--normalizer NAME:key=value``).
    """

    name: str
    description: str
    normalize: NormalizeFn
    needs_calibration: bool = False
    options: dict[str, str] = field(default_factory=dict)


@dataclass
class Simulator:
    """A spiking back end.

    Attributes:
        name: what users type after ``--simulator``.
        description: one line.
        simulate: ``simulate(graph, x, y, config, progress) -> SimResult`` (see :mod:`snnbalance.simulate`).
        devices: devices it can run on, e.g. ``("cpu", "cuda")``.
        ops: the node kinds it can simulate (``None``: every kind the reference knows);
            ``--simulator auto`` uses it to pick a back end.
        readouts: the read-outs it implements (``SimConfig.readout``): ``"spikes"`` (output spike
            counts, the default) and ``"membrane"`` (the output layer's accumulated potential);
            a job asking for another is refused before any work.
    """

    name: str
    description: str
    simulate: Callable
    devices: tuple[str, ...] = ("cpu",)
    ops: tuple[str, ...] | None = None
    readouts: tuple[str, ...] = ("spikes",)


@dataclass
class Dataset:
    """A dataset users name after ``--dataset``.

    Attributes:
        name: what users type (matched ignoring case, ``_`` and ``-``).
        description: one line for ``snnbalance plugins``.
        load: ``load(split, root, shape) -> (x, y)``: ``split`` is ``"train"`` or ``"test"``,
            ``root`` the data root (:func:`snnbalance.data.data_root`: ``--data-dir``,
            ``$SNNBALANCE_DATA`` or the user cache), ``shape`` the per-sample shape the model
            takes when known (a hint for data that can be resized; ``None`` otherwise). Returns
            images ``(N, C, H, W)`` (or ``(N, H, W)``, ``(N, D)``), uint8 or float in ``[0, 1]``,
            and integer labels ``(N,)``. Raise :class:`~snnbalance.errors.DataError` with one line
            naming the folder and files when they are missing.
        shape: per-sample shape ``(C, H, W)`` when it is fixed, so a PyTorch model's input shape
            is known without reading the data (``None``: the test split is read to find it).
        classes: number of classes when fixed (sizes the outputs of ``snnbalance train``).
    """

    name: str
    description: str
    load: Callable
    shape: tuple[int, ...] | None = None
    classes: int | None = None


@dataclass
class NormalizeContext:
    """What a normalizer may read besides the graph.

    Attributes:
        threshold: firing threshold to give every spiking layer.
        options: parsed ``key=value`` options of this normalizer.
        calibration: source of training activations (``None`` when not needed).
    """

    threshold: float = 1.0
    options: dict[str, str] = field(default_factory=dict)
    calibration: "Calibration | None" = None


class Calibration:
    """Training inputs used by data-based normalizers, read in batches of bounded size.

    Max activations are cached per graph object, so several normalizers share one pass. The cache
    holds a weak reference to each graph and checks identity on every lookup: an ``id()`` alone
    is reused by CPython once a graph is freed, which would hand a new graph an old one's maxima.
    """

    def __init__(self, x: np.ndarray, batch_size: int = 256, progress: Callable | None = None):
        self.x = x
        self.batch_size = batch_size
        self.progress = progress
        self._max: dict[int, tuple[weakref.ref, dict[str, float]]] = {}

    def __len__(self) -> int:
        return len(self.x)

    def activations(self, graph: Graph):
        """Yield, per batch, a dict node name -> that node's output (after ReLU)."""
        n = len(self.x)
        for start in range(0, n, self.batch_size):
            yield graph.forward(self.x[start : start + self.batch_size], keep=True)
            if self.progress:
                from .progress import ProgressEvent

                self.progress(ProgressEvent("calibrate", min(start + self.batch_size, n), n))

    def max_activations(self, graph: Graph) -> dict[str, float]:
        """Largest output of every node over the calibration set (cached per graph object)."""
        key = id(graph)
        hit = self._max.get(key)
        if hit is not None and hit[0]() is graph:
            return hit[1]
        best: dict[str, float] = {}
        for acts in self.activations(graph):
            for name, a in acts.items():
                best[name] = max(best.get(name, 0.0), float(a.max()))
        # the entry goes when the graph does, so a later graph with the same id() starts afresh
        self._max[key] = (weakref.ref(graph, functools.partial(_forget, self._max, key)), best)
        return best


def _forget(cache: dict, key: int, _ref: object) -> None:
    """Drop a freed graph's entry (the weak reference's callback)."""
    cache.pop(key, None)


def parse_options(items: list[str] | tuple[str, ...], what: str, where: str = "") -> dict[str, str]:
    """``["key=value", ...]`` as a dict: the one parser of ``--sim-option`` and normalizer options.

    Args:
        items: the ``key=value`` strings (empty ones are skipped).
        what: names the source in the error message, e.g. ``"--sim-option"``.
        where: what the items came from, appended to the message (e.g. `` in 'robust:p'``).
    """
    from .errors import SnnBalanceError

    opts: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in items)):
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise SnnBalanceError(f"{what} {part!r}{where} is not key=value")
        opts[key.strip()] = value.strip()
    return opts
