"""Every snnbalance hook, in one module. Plugins implement them with ``@snnbalance.hookimpl``."""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("snnbalance")
hookimpl = pluggy.HookimplMarker("snnbalance")


@hookspec
def snnbalance_normalizers():
    """Return (or yield) :class:`snnbalance.records.Normalizer` records this plugin provides."""


@hookspec
def snnbalance_simulators():
    """Return (or yield) :class:`snnbalance.records.Simulator` records this plugin provides."""


@hookspec
def snnbalance_datasets():
    """Return (or yield) :class:`snnbalance.records.Dataset` records this plugin provides."""
