"""The Settings tab: every option of ``snnbalance convert`` that a run needs, with the same defaults.

The defaults come from :class:`~snnbalance.pipeline.ConvertConfig` and
:class:`~snnbalance.simulate.SimConfig` themselves, and the normalizer and simulator choices from
the plugin registry, so a third-party plugin appears here without any change to the TUI.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Grid, VerticalScroll
from textual.markup import escape
from textual.suggester import SuggestFromList
from textual.widgets import Input, Label, Select, SelectionList, Static
from textual.widgets.selection_list import Selection

from ...data import DATASETS
from ...errors import SnnBalanceError
from ...normalize import parse_spec
from ...pipeline import ConvertConfig
from ...records import Normalizer, Simulator
from ...simulate import SimConfig
from ...simulate.core import ENCODINGS, RESETS

# (field id, label, kind, attribute path) of the plain inputs; kind picks the Input type and parser.
FIELDS = (
    ("duration", "duration [ms]", "number", "sim.duration"),
    ("dt", "dt [ms]", "number", "sim.dt"),
    ("max-rate", "max rate [Hz]", "number", "sim.max_rate"),
    ("threshold", "threshold", "number", "threshold"),
    ("refractory", "refractory [ms]", "number", "sim.refractory"),
    ("samples", "samples", "integer", "samples"),
    ("calibration", "calibration samples", "integer", "calibration_samples"),
    ("seed", "seed", "integer", "sim.seed"),
)


def _get(cfg: ConvertConfig, path: str):
    obj = cfg
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


class SettingsForm(VerticalScroll, can_focus=False):
    """Dataset, normalizers, simulator and simulation settings.

    Args:
        normalizers: the registered normalizers (name -> record), in registry order.
        simulators: the registered simulators.
        defaults: the initial settings; ``ConvertConfig()`` gives the CLI's defaults.
    """

    def __init__(self, normalizers: dict[str, Normalizer], simulators: dict[str, Simulator],
                 defaults: ConvertConfig | None = None, **kw) -> None:
        super().__init__(**kw)
        self.normalizers, self.simulators = normalizers, simulators
        self.defaults = defaults or ConvertConfig()
        self.ready = False  # the fields exist (the form may be mounted after the app starts)

    def on_mount(self) -> None:
        self.ready = True

    def compose(self) -> ComposeResult:
        d = self.defaults
        yield Label("Normalizers to compare (space toggles)", classes="section")
        yield SelectionList[str](*(
            Selection(f"[b]{escape(name)}[/]  [dim]{escape(rec.description)}[/]", name, name in d.normalizers)
            for name, rec in self.normalizers.items()), id="normalizers")
        yield Input(" ".join(n for n in d.normalizers if ":" in n), id="variants", compact=True,
                    placeholder="with options, space-separated: robust:p=99.99 data-based:variant=code",
                    tooltip="Normalizers with options (NAME:key=value,...), compared as well; see `snnbalance plugins`")
        with Grid(id="fields"):
            yield Label("dataset")
            yield Input(d.dataset, id="dataset", compact=True,
                        suggester=SuggestFromList(DATASETS), tooltip="mnist, fashion-mnist or an .npz file")
            yield Label("simulator")
            yield Select([(n, n) for n in ("auto", *self.simulators)], value=d.simulator, allow_blank=False,
                         id="simulator", compact=True)
            for fid, label, kind, attr in FIELDS:
                yield Label(label, markup=False)
                yield Input(f"{_get(d, attr):g}" if kind == "number" else str(_get(d, attr)), id=fid,
                            type=kind, compact=True)
            yield Label("device")
            yield Select(self._devices(d.simulator), value=d.sim.device, allow_blank=False, id="device",
                         compact=True)
            yield Label("reset")
            yield Select([(r, r) for r in RESETS], value=d.sim.reset, allow_blank=False, id="reset", compact=True)
            yield Label("encoding")
            yield Select([(e, e) for e in ENCODINGS], value=d.sim.encoding, allow_blank=False, id="encoding",
                         compact=True)
            yield Label("v_init")
            yield Input("" if d.sim.v_init is None else f"{d.sim.v_init:g}", id="v-init", type="number",
                        compact=True, placeholder="per layer (0)",
                        tooltip="Initial membrane potential of every spiking layer as a fraction of its threshold, "
                                "in [-1, 1); 0.5 gives earlier first spikes (--v-init)")
        yield Static(self._describe(d.simulator), id="simulator-info")

    def _devices(self, simulator: str) -> list[tuple[str, str]]:
        if simulator == "auto":  # any device some back end offers; auto picks one that has it
            devices = dict.fromkeys(d for rec in self.simulators.values() for d in rec.devices)
            return [(dev, dev) for dev in devices]
        rec = self.simulators.get(simulator)
        return [(dev, dev) for dev in (rec.devices if rec else ("cpu",))]

    def _describe(self, simulator: str) -> str:
        if simulator == "auto":
            return "[dim]auto: spikingjelly when it supports the network and device, else numpy[/]"
        rec = self.simulators.get(simulator)
        return f"[dim]{escape(simulator)}: {escape(rec.description)}[/]" if rec else ""

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id != "simulator" or event.value is Select.NULL:
            return
        # Only the chosen back end's devices are valid; the CLI would reject the others later.
        device = self.query_one("#device", Select)
        keep = device.value
        options = self._devices(str(event.value))
        device.set_options(options)
        device.value = keep if any(v == keep for _, v in options) else options[0][1]
        self.query_one("#simulator-info", Static).update(self._describe(str(event.value)))

    def config(self, model: str | None = None, arch: str | None = None) -> ConvertConfig:
        """The settings as a job for :func:`snnbalance.pipeline.convert`.

        Raises:
            SnnBalanceError: a field is empty or not a number, or no normalizer is selected.
        """
        d = self.defaults
        values = {}
        for fid, label, kind, attr in FIELDS:
            raw = self.query_one(f"#{fid}", Input).value.strip()
            try:
                values[attr] = int(raw) if kind == "integer" else float(raw)
            except ValueError:
                raise SnnBalanceError(f"{label}: {raw!r} is not a{'n integer' if kind == 'integer' else ' number'}")
        chosen = set(self.query_one("#normalizers", SelectionList).selected)
        variants = self.query_one("#variants", Input).value.split()
        for spec in variants:
            name, options = parse_spec(spec)
            rec = self.normalizers.get(name)
            if rec is None:
                raise SnnBalanceError(f"normalizer {name!r} in {spec!r} is not installed "
                                      f"(installed: {', '.join(self.normalizers)})")
            unknown = sorted(set(options) - set(rec.options))
            if unknown:
                raise SnnBalanceError(f"normalizer {name!r} has no option {unknown[0]!r} "
                                      f"(options: {', '.join(sorted(rec.options)) or 'none'})")
        if not chosen and not variants:
            raise SnnBalanceError("select at least one normalizer")
        raw = self.query_one("#v-init", Input).value.strip()
        try:
            v_init = float(raw) if raw else None
        except ValueError:
            raise SnnBalanceError(f"v_init: {raw!r} is not a number") from None
        sim = SimConfig(duration=values["sim.duration"], dt=values["sim.dt"], max_rate=values["sim.max_rate"],
                        encoding=str(self.query_one("#encoding", Select).value),
                        reset=str(self.query_one("#reset", Select).value), refractory=values["sim.refractory"],
                        seed=values["sim.seed"], batch_size=d.sim.batch_size,
                        device=str(self.query_one("#device", Select).value), options=dict(d.sim.options),
                        v_init=v_init)
        return ConvertConfig(model=model, arch=arch, dataset=self.query_one("#dataset", Input).value.strip() or "mnist",
                             normalizers=[n for n in self.normalizers if n in chosen]
                             + [v for v in dict.fromkeys(variants) if v not in chosen],
                             simulator=str(self.query_one("#simulator", Select).value),
                             threshold=values["threshold"], samples=values["samples"],
                             calibration_samples=values["calibration_samples"], data_dir=d.data_dir,
                             download=d.download, sim=sim)
