"""The plugin manager: built-ins and third-party entry points (group ``snnbalance``), loaded alike.

Environment switches:
    SNNBALANCE_PLUGINS: comma-separated names; load only these third-party plugins.
    SNNBALANCE_BLOCK_PLUGINS: comma-separated names of plugins never to load.

A plugin that fails to import, raises from a hook, registers a name twice or returns something
that is not a record is skipped and reported in :func:`problems`, never fatal.
"""

from __future__ import annotations

import importlib
import os
from functools import lru_cache
from importlib.metadata import entry_points

import pluggy

from . import hookspecs
from .errors import SnnBalanceError
from .records import Normalizer, Simulator

GROUP = "snnbalance"
DEFAULT_PLUGINS = (
    "snnbalance.normalize.baseline",
    "snnbalance.normalize.model_based",
    "snnbalance.normalize.data_based",
    "snnbalance.simulate.numpy_ref",
)


class Registry:
    """Loaded plugins and what they provide."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.problems: list[str] = []
        self.dists: dict[str, str] = {}  # plugin name -> "dist version"
        self.provider: dict[tuple[str, str], str] = {}  # (record kind, record name) -> plugin name
        self._load()
        self.normalizers: dict[str, Normalizer] = self._collect("snnbalance_normalizers", Normalizer)
        self.simulators: dict[str, Simulator] = self._collect("snnbalance_simulators", Simulator)

    def _names(self, var: str) -> set[str] | None:
        raw = os.environ.get(var, "").strip()
        return {x.strip() for x in raw.split(",") if x.strip()} if raw else None

    def _load(self) -> None:
        allow = self._names("SNNBALANCE_PLUGINS")
        block = self._names("SNNBALANCE_BLOCK_PLUGINS") or set()
        for mod in DEFAULT_PLUGINS:
            if mod not in block:
                self.pm.register(importlib.import_module(mod), name=mod)
                self.dists[mod] = "snnbalance (built-in)"
        for ep in entry_points(group=GROUP):
            if ep.name in block or (allow is not None and ep.name not in allow):
                continue
            if self.pm.has_plugin(ep.name):
                self.problems.append(f"plugin {ep.name!r}: a plugin of that name is already loaded; skipped")
                continue
            try:
                plugin = ep.load()
                self.pm.register(plugin, name=ep.name)
            except Exception as exc:  # a broken plugin must not take the tool down
                self.problems.append(f"plugin {ep.name!r} failed to load: {type(exc).__name__}: {exc}")
                continue
            dist = ep.dist
            self.dists[ep.name] = f"{dist.name} {dist.version}" if dist else "?"
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            self.problems.append(f"plugin {exc.plugin!r}: {exc}")
            self.pm.unregister(exc.plugin)

    def _collect(self, hook: str, kind: type) -> dict:
        found: dict = {}
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            pname = self.pm.get_name(impl.plugin)
            try:
                records = list(impl.function() or ())
            except Exception as exc:
                self.problems.append(f"plugin {pname!r}: {hook} raised {type(exc).__name__}: {exc}")
                continue
            for rec in records:
                if not isinstance(rec, kind) or not rec.name or not callable(
                        getattr(rec, "normalize", None) or getattr(rec, "simulate", None)):
                    self.problems.append(f"plugin {pname!r}: {hook} returned {rec!r}, not a valid {kind.__name__}")
                    continue
                if rec.name in found:
                    self.problems.append(
                        f"plugin {pname!r}: {kind.__name__.lower()} {rec.name!r} is already provided by "
                        f"{found[rec.name][1]!r}; skipped")
                    continue
                found[rec.name] = (rec, pname)
        self.provider.update({(kind.__name__, k): v[1] for k, v in found.items()})
        return {k: v[0] for k, v in found.items()}

    def normalizer(self, name: str) -> Normalizer:
        if name not in self.normalizers:
            raise SnnBalanceError(
                f"unknown normalizer {name!r}; available: {', '.join(sorted(self.normalizers))}")
        return self.normalizers[name]

    def simulator(self, name: str) -> Simulator:
        if name not in self.simulators:
            raise SnnBalanceError(
                f"unknown simulator {name!r}; available: {', '.join(sorted(self.simulators))}")
        return self.simulators[name]


@lru_cache(maxsize=1)
def registry() -> Registry:
    """The process-wide registry (loaded on first use)."""
    return Registry()
