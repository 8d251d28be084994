"""The plugin manager: built-ins and third-party entry points (group ``snnbalance``), loaded alike.

Environment switches (comma-separated names; a plugin's name is its entry-point name, and its
distribution's name matches too):
    SNNBALANCE_PLUGINS: load only these third-party plugins (``none``: none of them).
    SNNBALANCE_BLOCK_PLUGINS: never load these (built-ins too, by module name).
    SNNBALANCE_TRACE_PLUGINS=1: print every hook call and its result to stderr (pluggy's tracing).

Hooks are called through the plugin manager, one plugin at a time, so pluggy's hook wrappers,
``tryfirst``/``trylast`` and tracing apply, and a failing plugin is the one reported.

A plugin that fails to import, raises from a hook, registers a name twice or returns something
that is not a valid record is skipped and reported in :attr:`Registry.problems` (name and
reason), never fatal. A third-party normalizer, simulator or dataset that raises or returns
malformed data when it runs is reported as a one-line :class:`~snnbalance.errors.SnnBalanceError` that
names the plugin.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import os
import re
import sys
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Callable

import pluggy

from . import extras, hookspecs
from .errors import SnnBalanceError, choice_error
from .records import Dataset, Normalizer, Simulator

GROUP = "snnbalance"
DEFAULT_PLUGINS = (
    "snnbalance.data",
    "snnbalance.normalize.baseline",
    "snnbalance.normalize.model_based",
    "snnbalance.normalize.data_based",
    "snnbalance.simulate.numpy_ref",
    "snnbalance.simulate.spikingjelly",
)
# What users type after --normalizer/--simulator must survive "NAME:key=value,key=value".
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


class Problem(str):
    """One plugin that was skipped: reads as ``plugin 'NAME': REASON`` and keeps both parts."""

    plugin: str
    reason: str

    def __new__(cls, plugin: str, reason: str) -> Problem:
        self = super().__new__(cls, f"plugin {plugin!r}: {reason}")
        self.plugin, self.reason = plugin, reason
        return self


def _env_names(var: str) -> set[str] | None:
    raw = os.environ.get(var, "").strip()
    return {_canon(x) for x in raw.split(",") if x.strip()} if raw else None


def _canon(name: str) -> str:
    """Distribution-style normalisation, so ``snnbalance_robust`` matches ``snnbalance-robust``."""
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


def _why(exc: BaseException) -> str:
    """``Type: message`` on one line (pluggy's validation messages span several)."""
    text = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Registry:
    """Loaded plugins and what they provide.

    Attributes:
        pm: the pluggy manager.
        normalizers, simulators, datasets: record name -> record, built-ins first.
        problems: one :class:`Problem` per skipped plugin or record.
        dists: plugin name -> ``"distribution version"``.
        provider: (``"Normalizer"``/``"Simulator"``/``"Dataset"``, record name) -> plugin name.
        builtin: names of the built-in plugins that loaded.
    """

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)
        if os.environ.get("SNNBALANCE_TRACE_PLUGINS", "").strip() not in ("", "0"):
            self.pm.trace.root.setwriter(sys.stderr.write)  # every hook call and result, indented
            self.pm.enable_tracing()
        self.problems: list[Problem] = []
        self.dists: dict[str, str] = {}
        self.provider: dict[tuple[str, str], str] = {}
        self.builtin: set[str] = set()
        self.normalizers: dict[str, Normalizer] = {}
        self.simulators: dict[str, Simulator] = {}
        self.datasets: dict[str, Dataset] = {}
        self._load()
        self._collect_all()

    def register(self, plugin: Any, name: str | None = None) -> list[Problem]:
        """Add a plugin object (a module, class or instance with hook implementations) at run time.

        For notebooks and tests; installed plugins arrive through entry points instead. The
        plugin is checked like any other.

        Args:
            plugin: the object holding ``@hookimpl`` functions.
            name: its plugin name (default: pluggy's name for the object).
        Returns:
            The problems it caused (also appended to :attr:`problems`); empty when it loaded cleanly.
        """
        before = len(self.problems)
        name = name or self.pm.get_canonical_name(plugin)
        if self.pm.has_plugin(name):
            self.problems.append(Problem(name, "a plugin of that name is already loaded; skipped"))
        elif self._register(name, lambda: plugin):
            self.dists[name] = "registered at run time"
            self._check_pending()
            if self.pm.has_plugin(name):
                self._collect_all(only=name)
        return self.problems[before:]

    # -- loading ---------------------------------------------------------------------------
    def _load(self) -> None:
        allow = _env_names("SNNBALANCE_PLUGINS")
        block = _env_names("SNNBALANCE_BLOCK_PLUGINS") or set()
        for mod in DEFAULT_PLUGINS:
            if _canon(mod) in block or _canon(mod.rsplit(".", 1)[-1]) in block:
                continue
            if self._register(mod, lambda m=mod: importlib.import_module(m)):
                self.dists[mod] = "snnbalance (built-in)"
                self.builtin.add(mod)
        seen: set[str] = set()
        for ep in self._entry_points():
            dist = getattr(ep, "dist", None)
            keys = {_canon(ep.name)} | ({_canon(dist.name)} if dist else set())
            if keys & block or (allow is not None and not keys & allow):
                continue
            seen |= keys
            if self.pm.has_plugin(ep.name):
                self.problems.append(Problem(ep.name, "a plugin of that name is already loaded; skipped"))
                continue
            if self._register(ep.name, ep.load):
                self.dists[ep.name] = f"{dist.name} {dist.version}" if dist else "?"
        for name in sorted((allow or set()) - seen - {"none"}):
            self.problems.append(Problem(name, "named in SNNBALANCE_PLUGINS but not installed"))
        self._check_pending()

    @staticmethod
    def _entry_points() -> list[EntryPoint]:
        # The same distribution on sys.path twice lists its entry points twice: keep one.
        unique: dict[tuple[str, str], EntryPoint] = {}
        for ep in entry_points(group=GROUP):
            unique.setdefault((ep.name, ep.value), ep)
        return list(unique.values())

    def _register(self, name: str, load: Callable[[], Any]) -> bool:
        try:
            plugin = load()
        except (Exception, SystemExit) as exc:  # a broken plugin must not take the tool down
            self.problems.append(Problem(name, f"failed to import: {extras.explain(exc) or _why(exc)}"))
            return False
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:  # wrong hook signature, or the same object registered twice
            self.problems.append(Problem(name, f"failed to register: {_why(exc)}"))
            return False
        return True

    def _check_pending(self) -> None:
        # check_pending reports one offender at a time: drop it and look again.
        while True:
            try:
                self.pm.check_pending()
                return
            except pluggy.PluginValidationError as exc:
                name = self.pm.get_name(exc.plugin) or repr(exc.plugin)
                self.problems.append(Problem(name, f"{_why(exc)} (misspelled hook?)"))
                self.pm.unregister(exc.plugin)
                self.builtin.discard(name)
                self.dists.pop(name, None)

    # -- collecting records ----------------------------------------------------------------
    def _collect_all(self, only: str | None = None) -> None:
        self._collect("snnbalance_normalizers", Normalizer, self.normalizers, only)
        self._collect("snnbalance_simulators", Simulator, self.simulators, only)
        self._collect("snnbalance_datasets", Dataset, self.datasets, only)

    def _collect(self, hook: str, kind: type, into: dict, only: str | None) -> None:
        found: dict[str, tuple[Any, str]] = {k: (v, self.provider[(kind.__name__, k)]) for k, v in into.items()}
        order = [name for name, _ in self.pm.list_name_plugin()]
        every = getattr(self.pm.hook, hook).get_hookimpls()
        wrappers = {id(i.plugin) for i in every if i.hookwrapper or i.wrapper}
        impls = sorted(
            (i for i in every if id(i.plugin) not in wrappers),  # built-ins first, then as loaded
            key=lambda i: order.index(self.pm.get_name(i.plugin)),
        )
        plugins = [i.plugin for i in impls]
        for impl in impls:
            pname = self.pm.get_name(impl.plugin)
            if only is not None and pname != only:
                continue
            try:
                # through pluggy, one plugin at a time: wrappers, tracing and tryfirst/trylast apply,
                # and a plugin that fails is the one that is named
                call = self.pm.subset_hook_caller(hook, [p for p in plugins if p is not impl.plugin])
                results = call()
                out = results[0] if results else None
                records = [out] if isinstance(out, kind) else list(out or ())
            except (Exception, SystemExit) as exc:
                self.problems.append(Problem(pname, f"{hook} raised {_why(exc)}"))
                continue
            for rec in records:
                reason = _invalid(rec, kind)
                if reason:
                    self.problems.append(Problem(pname, f"{hook} returned {_short(rec)}: {reason}; skipped"))
                elif rec.name in found or (kind is Dataset and dataset_canon(rec.name) in {dataset_canon(k) for k in found}):
                    self.problems.append(
                        Problem(
                            pname, f"{kind.__name__.lower()} {rec.name!r} is already provided by {_owner(found, rec.name, kind)!r}; skipped"
                        )
                    )
                else:
                    found[rec.name] = (rec if pname in self.builtin else _guarded(rec, pname), pname)
        self.provider.update({(kind.__name__, k): v[1] for k, v in found.items()})
        into.update({k: v[0] for k, v in found.items()})

    # -- lookup ----------------------------------------------------------------------------
    def normalizer(self, name: str) -> Normalizer:
        if name not in self.normalizers:
            raise self._unknown("normalizer", name, sorted(self.normalizers))
        return self.normalizers[name]

    def simulator(self, name: str) -> Simulator:
        if name not in self.simulators:
            raise self._unknown("simulator", name, sorted(self.simulators))
        return self.simulators[name]

    def _unknown(self, what: str, name: str, choices: list[str]) -> SnnBalanceError:
        """The one-line "unknown" error, naming the plugins skipped for a missing extra (the name
        may be theirs)."""
        err = choice_error(what, name, choices)
        skipped = [p for p in self.problems if p.reason.startswith(f"failed to import: {extras.NEEDS}")]
        return SnnBalanceError(f"{err}; skipped {'; '.join(skipped)}") if skipped else err

    def dataset(self, name: str) -> Dataset | None:
        """The dataset record named ``name`` (ignoring case, ``_`` and ``-``), or None."""
        key = dataset_canon(name)
        return next((rec for k, rec in self.datasets.items() if dataset_canon(k) == key), None)


def dataset_canon(name: str) -> str:
    """Dataset names match ignoring case, ``_`` and ``-``: ``Fashion_MNIST`` is ``fashion-mnist``."""
    return re.sub(r"[-_]+", "", str(name)).lower()


def _owner(found: dict, name: str, kind: type) -> str:
    if name in found:
        return found[name][1]
    return next(v[1] for k, v in found.items() if dataset_canon(k) == dataset_canon(name))


def _short(rec: Any) -> str:
    text = repr(rec)
    return text if len(text) <= 80 else text[:77] + "..."


def _invalid(rec: Any, kind: type) -> str:
    """Why ``rec`` is not a usable record of ``kind`` (empty when it is)."""
    if not isinstance(rec, kind):
        return f"not a {kind.__name__}"
    if not isinstance(rec.name, str) or not NAME_RE.match(rec.name):
        return "its name must be letters, digits, '_', '-', '.' or '+' (no ':', ',', '=' or spaces)"
    if not isinstance(rec.description, str):
        return "its description must be a string"
    if kind is Dataset:
        if not callable(rec.load):
            return "load is not callable"
        for what, value in (("shape", rec.shape), ("classes", rec.classes)):
            items = value if what == "shape" else (value,)
            if value is not None and (
                isinstance(items, str) or not items or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in items)
            ):
                return f"{what} must be None or {'a tuple of ' if what == 'shape' else ''}positive int(s)"
    elif kind is Normalizer:
        if not callable(rec.normalize):
            return "normalize is not callable"
        if not isinstance(rec.needs_calibration, bool):
            return "needs_calibration must be True or False"
        opts = rec.options
        if not isinstance(opts, dict) or not all(isinstance(k, str) and NAME_RE.match(k) and isinstance(v, str) for k, v in opts.items()):
            return "options must map option names (no ':', ',', '=') to one-line descriptions"
    else:
        if not callable(rec.simulate):
            return "simulate is not callable"
        devs = rec.devices
        if isinstance(devs, str) or not devs or not all(isinstance(d, str) for d in devs):
            return "devices must be a non-empty tuple of device names"
    return ""


def _guarded(rec: Any, plugin: str) -> Any:
    """The record with its function wrapped so that a failing third-party plugin is reported by name."""
    from .graph import Graph
    from .records import Balanced
    from .simulate.core import SimResult

    if isinstance(rec, Dataset):
        return _guarded_dataset(rec, plugin)
    is_norm = isinstance(rec, Normalizer)
    fn = rec.normalize if is_norm else rec.simulate
    what = f"{'normalizer' if is_norm else 'simulator'} {rec.name!r} (plugin {plugin!r})"

    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            out = fn(*args, **kwargs)
        except SnnBalanceError:
            raise  # already a message for the user (bad option, unsupported layer)
        except Exception as exc:
            raise SnnBalanceError(f"{what} failed: {_why(exc)}") from exc
        if is_norm:
            if not isinstance(out, Balanced) or not isinstance(out.graph, Graph) or not isinstance(out.scale_factors, dict):
                raise SnnBalanceError(f"{what} returned {_short(out)}, not a Balanced(graph, scale_factors)")
            try:
                out.graph.validate()
            except SnnBalanceError as exc:
                raise SnnBalanceError(f"{what} returned an invalid network: {exc}") from exc
        elif not isinstance(out, SimResult):
            raise SnnBalanceError(f"{what} returned {_short(out)}, not a SimResult")
        return out

    return dataclasses.replace(rec, **{"normalize" if is_norm else "simulate": call})


def _guarded_dataset(rec: Dataset, plugin: str) -> Dataset:
    """A plugin dataset whose failures name it; what it returns is checked by :mod:`snnbalance.data`."""
    what = f"dataset {rec.name!r} (plugin {plugin!r})"
    fn = rec.load

    @functools.wraps(fn)
    def load(*args, **kwargs):
        try:
            out = fn(*args, **kwargs)
        except SnnBalanceError:
            raise  # already a message for the user (missing files)
        except Exception as exc:
            raise SnnBalanceError(f"{what} failed: {_why(exc)}") from exc
        if not isinstance(out, tuple) or len(out) != 2:
            raise SnnBalanceError(f"{what} returned {_short(out)}, not an (x, y) pair of arrays")
        return out

    return dataclasses.replace(rec, load=load)


def option(
    options: dict[str, str],
    key: str,
    default: Any,
    kind: Callable = float,
    *,
    low: float | None = None,
    high: float | None = None,
    choices: tuple | None = None,
    owner: str = "",
) -> Any:
    """Read one ``key=value`` plugin option, converted and checked, with a one-line error.

    Args:
        options: ``NormalizeContext.options`` (or ``SimConfig.options``).
        key: the option's name.
        default: returned when the option is absent.
        kind: converter, e.g. ``float``, ``int`` or ``str``.
        low, high: inclusive bounds for numbers.
        choices: allowed values.
        owner: what the option belongs to, for the message (``"normalizer 'robust'"``).
    Raises:
        SnnBalanceError: e.g. ``normalizer 'robust': option p must be a number in [0, 100], got 'x'``.
    """
    if key not in options:
        return default
    raw = options[key]
    where = f"{owner}: " if owner else ""
    rng = (
        f" in [{low:g}, {high:g}]"
        if low is not None and high is not None
        else f" >= {low:g}"
        if low is not None
        else f" <= {high:g}"
        if high is not None
        else ""
    )
    want = (
        f"one of {', '.join(map(str, choices))}"
        if choices
        else f"{'an integer' if kind is int else 'a number' if kind is float else 'a value'}{rng}"
    )
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        raise SnnBalanceError(f"{where}option {key} must be {want}, got {raw!r}") from None
    if (
        (choices and value not in choices)
        or (low is not None and value < low)
        or (high is not None and value > high)
        or (kind is float and value != value)
    ):
        raise SnnBalanceError(f"{where}option {key} must be {want}, got {raw!r}")
    return value


@lru_cache(maxsize=1)
def registry() -> Registry:
    """The process-wide registry (loaded on first use)."""
    return Registry()


__all__ = ["DEFAULT_PLUGINS", "GROUP", "Problem", "Registry", "option", "registry"]
