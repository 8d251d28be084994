"""Which optional part of snnbalance needs which extra, and the one line a user sees when it is missing.

``pip install snnbalance`` installs what the main job needs: import a model, balance it, simulate
it with the NumPy reference or the native C engine (or the torch engine with plain torch neurons),
write ``results.json`` and the figures. Heavier parts are extras (``pyproject.toml``), and this
module is the one place that knows which import each extra provides:

* ``spikingjelly``: SpikingJelly's IF neurons in the torch engine (``--sim-option neuron=sj``; without
  it the torch engine uses its plain torch neurons, which give the same spikes) and
  ``snnbalance bench``'s comparison with SpikingJelly's own ann2snn flow;
* ``tui``: ``snnbalance tui`` (Textual);
* ``nir``: ``snnbalance export --format nir``;
* ``ray``: ``--executor ray``;
* ``all``: all of them; ``test`` installs ``all`` and the test tools, so the test suite checks every part.

Triton (``--sim-option neuron=triton``) is no extra of ours: it comes with torch's CUDA wheels on
Linux, and :func:`require` names it with that hint.

A missing part is refused before any work with one :class:`MissingExtra` line, e.g.
``snnbalance tui needs Textual (the 'tui' extra), which is not installed: pip install 'snnbalance[tui]'``.
"""

from __future__ import annotations

import dataclasses
import importlib.util

from .errors import SnnBalanceError


@dataclasses.dataclass(frozen=True)
class Part:
    """An optional dependency: the module imported, what it is called, and how to install it."""

    module: str
    label: str
    extra: str | None  # None: no extra of ours installs it (see ``hint``)
    used_for: str
    hint: str = ""

    def install(self) -> str:
        """How to install it: ``pip install 'snnbalance[EXTRA]'`` or the hint."""
        return f"pip install 'snnbalance[{self.extra}]'" if self.extra else self.hint


#: module name -> the part it is; the extras in ``pyproject.toml`` list the same packages
#: (tests/test_extras.py checks that every extra here exists there and that ``test`` pulls all)
PARTS: dict[str, Part] = {
    p.module: p
    for p in (
        Part(
            "spikingjelly",
            "SpikingJelly",
            "spikingjelly",
            "SpikingJelly's IF neurons (neuron=sj) and snnbalance bench's comparison with SpikingJelly's flow",
        ),
        Part("textual", "Textual", "tui", "snnbalance tui"),
        Part("nir", "NIR", "nir", "snnbalance export --format nir"),
        Part("ray", "Ray", "ray", "--executor ray"),
        Part("triton", "the triton package", None, "the triton neurons (neuron=triton)", "it comes with torch's CUDA wheels on Linux"),
    )
}

#: the extras of ``pyproject.toml`` that install a part (``all`` and ``test`` pull every one)
EXTRAS: tuple[str, ...] = tuple(sorted({p.extra for p in PARTS.values() if p.extra}))


class MissingExtra(SnnBalanceError):
    """An optional part was asked for and its package is not installed (one line, exit code 2)."""

    def __init__(self, what: str, part: Part) -> None:
        self.part = part
        if part.extra:
            text = f"{what} needs {part.label} (the {part.extra!r} extra), which is not installed: {part.install()}"
        else:
            text = f"{what} needs {part.label}, which is not installed ({part.hint})"
        super().__init__(text)


def installed(module: str) -> bool:
    """Whether ``module`` can be imported here (found, not imported: SpikingJelly takes seconds)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a blocked import, or a module whose __spec__ is None
        return False


def require(module: str, what: str | None = None) -> None:
    """Raise :class:`MissingExtra` naming the extra when ``module`` (a key of :data:`PARTS`) is missing.

    Args:
        module: the top-level module the caller is about to import.
        what: what the user asked for, starting the message (default: the part's use).
    """
    part = PARTS[module]
    if not installed(module):
        raise MissingExtra(what or part.used_for, part)


def missing() -> dict[str, str]:
    """Every part that is not installed -> one line on what is unavailable and how to install it."""
    return {m: f"{p.used_for}: needs {p.label}; {p.install()}" for m, p in PARTS.items() if not installed(m)}


def explain(exc: BaseException) -> str | None:
    """For an import error of a known part (e.g. a plugin that imports SpikingJelly): which extra
    installs it, on one line; None for anything else."""
    name = getattr(exc, "name", None)
    part = PARTS.get(name.split(".")[0]) if isinstance(exc, ImportError) and name else None
    if part is None:
        return None
    return f"{NEEDS}{part.label}, which is not installed: {part.install()}"


#: how :func:`explain`'s lines start (the plugin registry finds skipped plugins by it)
NEEDS = "needs "
