"""The Settings tab: every option of ``snnbalance convert`` that a run needs, with the same defaults.

The defaults come from :class:`~snnbalance.pipeline.ConvertConfig` and
:class:`~snnbalance.simulate.SimConfig` themselves, and the normalizer and simulator choices from
the plugin registry, so a third-party plugin appears here without any change to the TUI.
"""

from __future__ import annotations

import dataclasses

from textual.app import ComposeResult
from textual.containers import Grid, VerticalScroll
from textual.markup import escape
from textual.suggester import SuggestFromList
from textual.widgets import Input, Label, Select, SelectionList, Static
from textual.widgets.selection_list import Selection

from ...data import DATASETS
from ...errors import SnnBalanceError
from ...executors import EXECUTORS
from ...normalize import parse_spec
from ...pipeline import ConvertConfig
from ...records import Normalizer, Simulator
from ...simulate import SimConfig
from ...simulate.core import ENCODINGS, READOUTS, RESETS

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


class FieldError(SnnBalanceError):
    """A bad value in one field of the form: the form shows ``str(self)`` next to ``field``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


# What ConvertConfig.validate names as a CLI flag, in the form's own words (and the field it is).
FLAG_FIELDS = {
    "--samples": ("samples", "samples"),
    "--calibration-samples": ("calibration", "calibration samples"),
    "--threshold": ("threshold", "threshold"),
    "--input-std": ("input-std", "input std"),
    "--input-mean": ("input-mean", "input mean"),
    "--input-shape": ("input-shape", "input shape"),
    "--input-layout": ("input-layout", "input layout"),
    "--dataset": ("dataset", "dataset"),
    "--v-init": ("v-init", "v_init"),
    "--duration": ("duration", "duration"),
    "--dt": ("dt", "dt"),
    "--executor": ("executor", "executor"),
    "--ray-address": ("ray-address", "ray address"),
}


def form_error(exc: SnnBalanceError) -> FieldError:
    """``exc`` in the form's words, attached to the field it is about (``""``: none in particular)."""
    if isinstance(exc, FieldError):
        return exc
    text = str(exc)
    for flag in sorted(FLAG_FIELDS, key=len, reverse=True):
        if flag in text:
            fid, label = FLAG_FIELDS[flag]
            return FieldError(fid, text.replace(flag, label))
    return FieldError("", text)


def _numbers(raw: str, fid: str, label: str, kind=float) -> list | None:
    """``"0.5"`` or ``"0.485,0.456,0.406"`` (empty: None)."""
    if not raw.strip():
        return None
    try:
        return [kind(v) for v in raw.replace("x", ",").split(",")]
    except ValueError:
        raise FieldError(fid, f"{label}: {raw!r} is not a list of {'whole ' if kind is int else ''}numbers separated by commas") from None


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

    def __init__(
        self, normalizers: dict[str, Normalizer], simulators: dict[str, Simulator], defaults: ConvertConfig | None = None, **kw
    ) -> None:
        super().__init__(**kw)
        self.normalizers, self.simulators = normalizers, simulators
        self.defaults = defaults or ConvertConfig()
        self.ready = False  # the fields exist (the form may be mounted after the app starts)

    def on_mount(self) -> None:
        self.ready = True

    def compose(self) -> ComposeResult:
        d = self.defaults
        yield Label("Normalizers to compare (space toggles)", classes="section")
        yield SelectionList[str](
            *(
                Selection(f"[b]{escape(name)}[/]  [dim]{escape(rec.description)}[/]", name, name in d.normalizers)
                for name, rec in self.normalizers.items()
            ),
            id="normalizers",
        )
        yield Input(
            " ".join(n for n in d.normalizers if ":" in n),
            id="variants",
            compact=True,
            placeholder="with options, space-separated: robust:p=99.99 data-based:variant=code",
            tooltip="Normalizers with options (NAME:key=value,...), compared as well; see `snnbalance plugins`",
        )
        with Grid(id="fields"):
            yield Label("dataset")
            yield Input(
                d.dataset, id="dataset", compact=True, suggester=SuggestFromList(DATASETS), tooltip="mnist, fashion-mnist or an .npz file"
            )
            yield Label("simulator")
            yield Select([(n, n) for n in ("auto", *self.simulators)], value=d.simulator, allow_blank=False, id="simulator", compact=True)
            for fid, label, kind, attr in FIELDS:
                yield Label(label, markup=False)
                yield Input(f"{_get(d, attr):g}" if kind == "number" else str(_get(d, attr)), id=fid, type=kind, compact=True)
            yield Label("device")
            yield Select(self._devices(d.simulator), value=d.sim.device, allow_blank=False, id="device", compact=True)
            yield Label("reset")
            yield Select([(r, r) for r in RESETS], value=d.sim.reset, allow_blank=False, id="reset", compact=True)
            yield Label("read-out")
            yield Select(
                [(r, r) for r in READOUTS],
                value=d.sim.readout,
                allow_blank=False,
                id="readout",
                compact=True,
                tooltip="spikes: argmax of output spike counts; membrane: the output layer "
                "integrates without spiking, argmax of its potential (--readout)",
            )
            yield Label("encoding")
            yield Select([(e, e) for e in ENCODINGS], value=d.sim.encoding, allow_blank=False, id="encoding", compact=True)
            yield Label("v_init")
            yield Input(
                "" if d.sim.v_init is None else f"{d.sim.v_init:g}",
                id="v-init",
                type="number",
                compact=True,
                placeholder="per layer (0)",
                tooltip="Initial membrane potential of every spiking layer as a fraction of its threshold, "
                "in [-1, 1); 0.5 gives earlier first spikes (--v-init)",
            )
            yield Label("input mean")
            yield Input(
                ",".join(f"{v:g}" for v in d.input_mean or []),
                id="input-mean",
                compact=True,
                placeholder="none",
                tooltip="The model was trained on (x - mean) / std: one value, or one per channel, e.g. 0.485,0.456,0.406",
            )
            yield Label("input std")
            yield Input(
                ",".join(f"{v:g}" for v in d.input_std or []),
                id="input-std",
                compact=True,
                placeholder="none",
                tooltip="The std of that normalization",
            )
            yield Label("input layout")
            yield Select(
                [("detect", "detect"), ("nchw", "nchw"), ("nhwc", "nhwc")],
                value=d.input_layout or "detect",
                allow_blank=False,
                id="input-layout",
                compact=True,
            )
            yield Label("input shape")
            yield Input(
                ",".join(map(str, d.input_shape or [])),
                id="input-shape",
                compact=True,
                placeholder="the dataset's",
                tooltip="Per-sample input shape of a PyTorch model, e.g. 3,32,32",
            )
            yield Label("max pooling")
            yield Select([("spiking", "spiking"), ("avg", "avg")], value=d.maxpool, allow_blank=False, id="maxpool", compact=True)
            yield Label("executor")
            yield Select(
                [(k, k) for k in EXECUTORS],
                value=d.executor.kind,
                allow_blank=False,
                id="executor",
                compact=True,
                tooltip="local: this process; ray: test-image slices as Ray tasks (same numbers)",
            )
            yield Label("ray address")
            yield Input(
                d.executor.address or "",
                id="ray-address",
                compact=True,
                placeholder="a new local instance",
                tooltip="auto, ray://host:port or host:port of a running cluster (--ray-address)",
            )
        yield Static("", id="form-error")
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
                raise FieldError(fid, f"{label}: {raw!r} is not a{'n integer' if kind == 'integer' else ' number'}") from None
        chosen = set(self.query_one("#normalizers", SelectionList).selected)
        variants = self.query_one("#variants", Input).value.split()
        for spec in variants:
            name, options = parse_spec(spec)
            rec = self.normalizers.get(name)
            if rec is None:
                raise SnnBalanceError(f"normalizer {name!r} in {spec!r} is not installed (installed: {', '.join(self.normalizers)})")
            unknown = sorted(set(options) - set(rec.options))
            if unknown:
                raise SnnBalanceError(
                    f"normalizer {name!r} has no option {unknown[0]!r} (options: {', '.join(sorted(rec.options)) or 'none'})"
                )
        if not chosen and not variants:
            raise FieldError("normalizers", "select at least one normalizer")
        raw = self.query_one("#v-init", Input).value.strip()
        try:
            v_init = float(raw) if raw else None
        except ValueError:
            raise FieldError("v-init", f"v_init: {raw!r} is not a number") from None
        sim = SimConfig(
            duration=values["sim.duration"],
            dt=values["sim.dt"],
            max_rate=values["sim.max_rate"],
            encoding=str(self.query_one("#encoding", Select).value),
            reset=str(self.query_one("#reset", Select).value),
            refractory=values["sim.refractory"],
            seed=values["sim.seed"],
            batch_size=d.sim.batch_size,
            device=str(self.query_one("#device", Select).value),
            options=dict(d.sim.options),
            v_init=v_init,
            readout=str(self.query_one("#readout", Select).value),
        )
        layout = str(self.query_one("#input-layout", Select).value)
        return ConvertConfig(
            model=model,
            arch=arch,
            dataset=self.query_one("#dataset", Input).value.strip() or "mnist",
            normalizers=[n for n in self.normalizers if n in chosen] + [v for v in dict.fromkeys(variants) if v not in chosen],
            simulator=str(self.query_one("#simulator", Select).value),
            threshold=values["threshold"],
            samples=values["samples"],
            calibration_samples=values["calibration_samples"],
            data_dir=d.data_dir,
            download=d.download,
            sim=sim,
            input_mean=_numbers(self.query_one("#input-mean", Input).value, "input-mean", "input mean"),
            input_std=_numbers(self.query_one("#input-std", Input).value, "input-std", "input std"),
            input_layout=None if layout == "detect" else layout,
            input_shape=_numbers(self.query_one("#input-shape", Input).value, "input-shape", "input shape", int),
            maxpool=str(self.query_one("#maxpool", Select).value),
            executor=dataclasses.replace(
                d.executor,
                kind=str(self.query_one("#executor", Select).value),
                address=self.query_one("#ray-address", Input).value.strip() or None,
            ),
        )

    def show_error(self, error: FieldError | None) -> None:
        """The message under the fields, and the field it is about marked; None clears both."""
        for widget in self.query(".-invalid"):
            widget.remove_class("-invalid")
        self.query_one("#form-error", Static).update(escape(str(error)) if error else "")
        if error and error.field:
            field = self.query_one(f"#{error.field}")
            field.add_class("-invalid")
            field.focus()
