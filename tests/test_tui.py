"""The TUI as a user drives it (headless, with Textual's Pilot), and snapshots of its main screens.

Runs are tiny (20 images, 20 ms, NumPy simulator) to keep the file fast.
Snapshots are fed seeded, fabricated data (no simulation, no wall-clock numbers); regenerate them
with ``pytest tests/test_tui.py --snapshot-update`` after an intended change to the UI.
"""

from __future__ import annotations

import asyncio
import functools
import json
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
from textual.notifications import Notify
from textual.widgets import DataTable, Input, Select, SelectionList, Sparkline

from snnbalance.errors import SnnBalanceError
from snnbalance.graph import Graph, Node
from snnbalance.pipeline import ConversionReport, ConvertConfig, Run, default_model
from snnbalance.plugins import registry
from snnbalance.progress import Cancelled, ProgressEvent
from snnbalance.session import DEFAULT_NAME, ModelInfo
from snnbalance.simulate import SimConfig, SimResult
from snnbalance.tui import make_app
from snnbalance.tui.messages import ProgressRelay, RunTick
from snnbalance.tui.widgets.model_view import ModelView
from snnbalance.tui.widgets.plot import AccuracyPlot
from snnbalance.tui.widgets.results_view import ResultsView
from snnbalance.tui.widgets.run_view import RunView
from snnbalance.tui.widgets.settings_form import SettingsForm

needs_model = pytest.mark.skipif(not default_model().is_file(), reason="embedded model not built yet")
SIZES = [(80, 24), (120, 40)]


def sync(test):
    """Run an async test with asyncio (the project does not depend on a pytest async plugin)."""

    @functools.wraps(test)
    def run(*args, **kwargs):
        return asyncio.run(test(*args, **kwargs))

    return run


def fast_defaults() -> ConvertConfig:
    """The CLI's defaults, but with few images so that loading and running take seconds."""
    return ConvertConfig(samples=20, calibration_samples=100)


async def wait_until(pilot, condition, timeout: float = 30.0) -> None:
    """Let the app run until ``condition()`` holds (workers post their messages meanwhile)."""
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out waiting for the app"
        await pilot.pause(0.05)


async def started(pilot) -> None:
    """Wait for the tabs that are mounted after the first paint."""
    await wait_until(pilot, lambda: pilot.app.query(SettingsForm) and pilot.app.query(ResultsView))


async def type_into(pilot, selector: str, text: str) -> None:
    """Replace an input's text the way a user does: focus it (selects all) and type."""
    pilot.app.query_one(selector, Input).focus()
    await pilot.pause()
    await pilot.press("ctrl+shift+a", "backspace", *text)


class Notes(list):
    """A ``run_test(message_hook=...)`` that keeps every notification (toasts expire, these do not)."""

    def __call__(self, message) -> None:
        if isinstance(message, Notify):
            self.append(message.notification)

    def errors(self) -> list[str]:
        return [n.message for n in self if n.severity == "error"]


# -- behaviour ------------------------------------------------------------------------------------


def test_cli_command_imports_textual_only_when_it_runs(monkeypatch):
    import subprocess
    import sys

    code = "import sys, snnbalance.cli.tui; print('textual' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    from snnbalance.cli.tui import tui_command
    from snnbalance.tui.app import SnnBalanceApp

    started = []
    monkeypatch.setattr(SnnBalanceApp, "run", lambda self: started.append((self.model, self.arch)))
    tui_command("net.pt", arch="pkg.mod:Net")
    assert started == [("net.pt", "pkg.mod:Net")]


# Settings control id -> the ``snnbalance convert`` option it stands for
CLI_OPTION = {
    "dataset": "dataset",
    "simulator": "simulator",
    "duration": "duration",
    "dt": "dt",
    "max-rate": "max_rate",
    "threshold": "threshold",
    "refractory": "refractory",
    "samples": "samples",
    "calibration": "calibration_samples",
    "seed": "seed",
    "device": "device",
    "reset": "reset",
    "readout": "readout",
    "encoding": "encoding",
    "normalizers": "normalizer",
    "variants": "normalizer",
    "v-init": "v_init",
    "input-mean": "input_mean",
    "input-std": "input_std",
    "input-layout": "input_layout",
    "input-shape": "input_shape",
    "maxpool": "maxpool",
    "executor": "executor",
    "ray-address": "ray_address",
}


def cli_defaults(command: str) -> dict:
    """The defaults of a command's options as the CLI parser holds them (Typer's Click command)."""
    import typer.main

    from snnbalance.cli import app as cli

    return {p.name: p.default for p in typer.main.get_command(cli).commands[command].params}


@sync
async def test_settings_start_at_the_cli_defaults(monkeypatch):
    """What ``snnbalance tui`` shows in its Settings tab is what ``snnbalance convert`` runs with no
    options: read from the widgets and from the CLI's parser, so a field that starts elsewhere shows."""
    from snnbalance.cli.tui import tui_command
    from snnbalance.tui.app import SnnBalanceApp

    apps = []
    monkeypatch.setattr(SnnBalanceApp, "run", lambda self: apps.append(self))
    tui_command(None)  # the app as the CLI builds it
    (app,) = apps
    app.autoload = False
    cli = cli_defaults("convert")
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        form = app.query_one(SettingsForm)
        controls = {w.id for w in form.query(Input)} | {w.id for w in form.query(Select)} | {"normalizers"}
        assert controls == set(CLI_OPTION)  # a new control needs its CLI option named here
        for fid, option in CLI_OPTION.items():
            if option == "normalizer":
                continue
            widget = form.query_one(f"#{fid}")
            shown = widget.value if isinstance(widget, Select) else widget.value.strip()
            shown = "" if shown == "detect" else shown  # the layout Select's name for None
            want = "" if cli[option] is None else cli[option]  # an empty field: the option left out
            if isinstance(want, (int, float)) and not isinstance(want, bool):
                shown = type(want)(shown)
            assert shown == want, f"Settings {fid!r} starts at {shown!r}, convert --{option} defaults to {want!r}"
        ticked = form.query_one("#normalizers", SelectionList).selected
        variants = form.query_one("#variants", Input).value.split()
        assert sorted([*ticked, *variants]) == sorted(cli["normalizer"])
        assert app.query_one(ModelView).trust == cli_defaults("tui")["trust_model"]


@sync
async def test_every_registered_plugin_is_offered_with_its_description():
    app = make_app(autoload=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        norms = app.query_one("#normalizers", SelectionList)
        offered = [norms.get_option_at_index(i) for i in range(norms.option_count)]
        assert [o.value for o in offered] == list(registry().normalizers)  # third-party ones included
        for o in offered:
            assert registry().normalizers[o.value].description[:20] in str(o.prompt)
        assert sorted(norms.selected) == sorted(ConvertConfig().normalizers)


@sync
async def test_form_reads_back_the_defaults_and_rejects_bad_numbers():
    app = make_app(autoload=False)
    notes = Notes()
    async with app.run_test(message_hook=notes) as pilot:
        await started(pilot)
        form = app.query_one(SettingsForm)
        assert form.config() == ConvertConfig()
        await pilot.press("2")  # Settings tab
        assert app.query_one("#tabs").active == "settings"
        await type_into(pilot, "#duration", "abc")  # type=number drops the letters
        assert app.query_one("#duration", Input).value == ""
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert not app.running and any("duration" in e for e in notes.errors())


@sync
async def test_normalizer_options_refractory_and_calibration_reach_the_job():
    app = make_app(autoload=False)
    notes = Notes()
    async with app.run_test(size=(120, 40), message_hook=notes) as pilot:
        await started(pilot)
        await pilot.press("2")
        form = app.query_one(SettingsForm)
        await type_into(pilot, "#variants", "robust:p=99 data-based:variant=code robust:p=99")
        await type_into(pilot, "#refractory", "2")
        await type_into(pilot, "#calibration", "300")
        cfg = form.config()
        # the ticked ones first, then each variant once
        assert cfg.normalizers == [*ConvertConfig().normalizers, "robust:p=99", "data-based:variant=code"]
        assert cfg.sim.refractory == 2.0 and cfg.calibration_samples == 300
        for bad, why in (("robustt:p=99", "not installed"), ("robust:q=1", "has no option 'q'"), ("robust:p", "not key=value")):
            await type_into(pilot, "#variants", bad)
            with pytest.raises(SnnBalanceError, match=why):
                form.config()
        await pilot.press("ctrl+r")  # the same error reaches the user as one notification, no run
        await pilot.pause()
        assert not app.running and any("not key=value" in e for e in notes.errors())


def test_abandonable_returns_raises_and_gives_up_when_told():
    from textual.worker import active_worker

    from snnbalance.tui.messages import abandonable

    token = active_worker.set(SimpleNamespace(is_cancelled=False))  # as inside a thread worker
    try:
        stop = threading.Event()
        assert abandonable(stop, lambda a, b: a + b, 2, 3) == 5
        with pytest.raises(ZeroDivisionError):
            abandonable(stop, lambda: 1 / 0)
        stop.set()
        start = time.monotonic()
        with pytest.raises(Cancelled):
            abandonable(stop, time.sleep, 30)  # the sleeping daemon thread is left behind
        assert time.monotonic() - start < 5
    finally:
        active_worker.reset(token)


def test_relay_posts_one_tick_until_released_and_raises_when_cancelled():
    posted = []
    relay = ProgressRelay(posted.append)
    for k in range(50):
        relay(ProgressEvent("simulate a", k, 50))
    assert len(posted) == 1 and isinstance(posted[0], RunTick)
    assert relay.take()["simulate a"].completed == 49
    relay.release()  # nothing new since take: no tick
    assert len(posted) == 1
    relay(ProgressEvent("simulate a", 50, 50))
    assert len(posted) == 2  # released, so the next event posts at once
    relay(ProgressEvent("simulate b", 1, 50))
    relay.release()  # b arrived after the last take: tick again
    assert len(posted) == 3
    relay.cancel.set()
    with pytest.raises(Cancelled):
        relay(ProgressEvent("simulate b", 2, 50))


@sync
async def test_bad_model_paths_give_a_notification_not_a_crash(tmp_path):
    torch = pytest.importorskip("torch")
    nn = torch.nn
    (tmp_path / "garbage.pt").write_bytes(b"not a model")
    torch.save(nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.Sigmoid(), nn.Linear(32, 10)), tmp_path / "sigmoid.pt")
    torch.save(nn.Sequential(nn.Flatten(), nn.Linear(100, 10)), tmp_path / "small.pt")
    cases = {
        "missing.pt": "not found",
        "garbage.pt": "cannot read",
        "sigmoid.pt": "Sigmoid",
        "small.pt": "does not accept inputs of shape (1, 28, 28)",
    }
    app = make_app(str(tmp_path / "missing.pt"), autoload=False, defaults=ConvertConfig(samples=20, trust_model=True))
    notes = Notes()
    async with app.run_test(message_hook=notes) as pilot:
        await started(pilot)
        for k, (name, expected) in enumerate(cases.items()):
            await type_into(pilot, "#model-path", str(tmp_path / name))
            await pilot.press("enter")
            await wait_until(pilot, lambda k=k: len(notes.errors()) > k)
            assert expected in notes.errors()[k]
            assert expected in str(app.query_one("#model-info").render())
        assert app.is_running and app.model_info is None


@sync
async def test_file_picker_shows_model_files_and_loads_the_chosen_one(tmp_path, monkeypatch):
    (tmp_path / "net.pt").write_bytes(b"not a model")
    (tmp_path / "notes.txt").write_text("not a model either")
    (tmp_path / "runs").mkdir()
    monkeypatch.chdir(tmp_path)
    app = make_app(autoload=False)
    notes = Notes()
    async with app.run_test(message_hook=notes) as pilot:
        await started(pilot)
        await pilot.press("ctrl+o")
        tree = app.screen.query_one("#tree")
        await wait_until(pilot, lambda: tree.root.children)
        shown = sorted(str(node.label) for node in tree.root.children)
        assert shown == ["net.pt", "runs"]
        net = next(node for node in tree.root.children if str(node.label) == "net.pt")
        tree.select_node(net)
        await wait_until(pilot, lambda: len(app.screen_stack) == 1)
        assert app.query_one("#model-path", Input).value == str(tmp_path / "net.pt")
        await wait_until(pilot, lambda: notes.errors())
        assert "cannot read" in notes.errors()[0]


@needs_model
@sync
async def test_load_run_save_the_embedded_default(tmp_path):
    app = make_app(autoload=True, defaults=fast_defaults())
    notes = Notes()
    async with app.run_test(size=(100, 32), message_hook=notes) as pilot:
        await started(pilot)
        await wait_until(pilot, lambda: app.model_info is not None)
        info = app.model_info
        assert info.name == DEFAULT_NAME and info.ann_accuracy > 0.9
        assert app.query_one("#layers", DataTable).row_count == len(info.graph.nodes) + 1  # + total

        # Settings: a short run, and exactly two normalizers picked with the keyboard.
        await pilot.press("2")
        await type_into(pilot, "#samples", "16")
        await type_into(pilot, "#duration", "20")
        norms = app.query_one("#normalizers", SelectionList)
        norms.focus()
        norms.deselect_all()  # whatever the defaults are
        norms.highlighted = 0
        await pilot.press("space")  # + baseline
        await pilot.press("down", "space")  # + model-based
        assert sorted(norms.selected) == ["baseline", "model-based"]

        await pilot.press("ctrl+r")  # with the fast back end the run may already be over here
        await wait_until(pilot, lambda: not app.running and app.report is not None, timeout=60)
        assert not notes.errors(), notes.errors()
        report = app.report
        assert [r.normalizer for r in report.runs] == ["baseline", "model-based"]
        assert app.query_one("#tabs").active == "results"
        for panel in app.query_one(RunView).panels.values():
            assert len(panel.curve) == 20 and panel.query_one(Sparkline).data  # one point per simulated ms
        assert app.query_one("#results-table", DataTable).row_count == 2
        assert len(app.query_one(AccuracyPlot).curves) == 2
        assert app.relay.ticks <= app.relay.events

        await type_into(pilot, "#output", str(tmp_path / "out"))
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: app.saved)
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["samples"] == 16 and [r["normalizer"] for r in res["runs"]] == ["baseline", "model-based"]
    assert all(len(r["accuracy_over_time"]) == 20 for r in res["runs"])
    assert res["config"]["sim"]["duration"] == 20 and res["ann_accuracy"] == report.ann_accuracy
    assert (tmp_path / "out" / "accuracy.png").read_bytes()[:4] == b"\x89PNG"


@needs_model
@sync
async def test_cancel_keeps_the_partial_curves():
    # the numpy reference is slow enough that the cancel lands in the first normalizer's run
    defaults = ConvertConfig(
        samples=200, calibration_samples=100, normalizers=["model-based", "data-based"], simulator="numpy", sim=SimConfig(duration=50)
    )
    app = make_app(autoload=False, defaults=defaults)
    notes = Notes()
    async with app.run_test(size=(100, 32), message_hook=notes) as pilot:
        await started(pilot)
        await pilot.press("ctrl+r")
        panel = app.query_one(RunView).panels["model-based"]
        await wait_until(pilot, lambda: panel.query_one(Sparkline).data, timeout=60)
        await pilot.press("escape")
        asked = time.monotonic()
        await wait_until(pilot, lambda: not app.running, timeout=30)
        waited = time.monotonic() - asked
        report = app.report
        assert report.cancelled and [r.normalizer for r in report.runs] == ["model-based"]
        result = report.runs[0].result
        assert result.cancelled and 0 < result.samples < 200 and len(result.accuracy_over_time) == 50
        assert len(panel.curve) == 50 and panel.query_one(Sparkline).data  # the partial curve stays
        assert app.query_one("#results-table", DataTable).row_count == 1
        assert waited < 10, f"cancel took {waited:.1f} s"


@needs_model
@sync
async def test_cancel_before_any_simulation_keeps_the_app_running(monkeypatch):
    # The run's pipeline is held at its start until escape has been pressed, so the cancel always
    # lands before the first progress event (the import), however fast or loaded the machine.
    import snnbalance.pipeline as pipeline

    started_run, cancel_pressed = threading.Event(), threading.Event()
    real_convert = pipeline.convert

    def held_convert(cfg, progress):
        started_run.set()
        cancel_pressed.wait(60)
        return real_convert(cfg, progress)

    monkeypatch.setattr(pipeline, "convert", held_convert)
    app = make_app(autoload=False, defaults=ConvertConfig(normalizers=["data-based"], samples=20, calibration_samples=100))
    notes = Notes()
    try:
        async with app.run_test(message_hook=notes) as pilot:
            await started(pilot)
            await pilot.press("ctrl+r")
            await wait_until(pilot, started_run.is_set)  # the worker is inside convert, held
            await pilot.press("escape")
            assert app.relay.cancel.is_set()
            cancel_pressed.set()
            await wait_until(pilot, lambda: not app.running, timeout=60)
            assert app.report is None and not notes.errors()
            assert any("run cancelled; kept 0 partial result(s)" in n.message for n in notes)
            assert app.is_running
    finally:
        cancel_pressed.set()  # never leave the convert thread waiting


@sync
async def test_help_lists_every_binding_and_escape_closes_it():
    app = make_app(autoload=False)
    async with app.run_test() as pilot:
        await started(pilot)
        await pilot.press("f1")
        table = app.screen.query_one("#help-table", DataTable)
        assert table.row_count == len(app.BINDINGS)
        await pilot.press("escape")
        assert len(app.screen_stack) == 1


# -- snapshots ------------------------------------------------------------------------------------


def paper_cnn_graph() -> Graph:
    """The embedded model's architecture with seeded random weights (no torch needed)."""
    rng = np.random.default_rng(0)
    w = lambda *s: rng.normal(0, 0.1, s).astype(np.float32)  # noqa: E731
    return Graph(
        (1, 28, 28),
        [
            Node("conv1", "conv2d", weight=w(12, 1, 5, 5), relu=True),
            Node("pool1", "avgpool2d", ("conv1",), kernel=(2, 2), stride=(2, 2)),
            Node("conv2", "conv2d", ("pool1",), weight=w(64, 12, 5, 5), relu=True),
            Node("pool2", "avgpool2d", ("conv2",), kernel=(2, 2), stride=(2, 2)),
            Node("flatten", "flatten", ("pool2",)),
            Node("fc", "dense", ("flatten",), weight=w(10, 1024)),
        ],
    )


def fake_curve(final: float, tau: float, steps: int = 1000) -> np.ndarray:
    t = np.arange(1, steps + 1, dtype=float)
    return np.clip(final * (1 - np.exp(-t / tau)) + 0.1 * np.exp(-t / tau), 0, 1)


def fake_result(final: float, tau: float, samples: int = 1000, cancelled: bool = False) -> SimResult:
    acc = fake_curve(final, tau)
    return SimResult(
        accuracy_over_time=acc,
        final_accuracy=float(acc[-1]),
        firing_rates={"conv1": 41.2, "pool1": 35.0, "conv2": 18.7, "pool2": 16.1, "fc": 9.4},
        spike_counts={},
        synaptic_ops_per_sample=1.234e6 * final,
        output_counts=np.zeros((0, 10)),
        samples=samples,
        steps=1000,
        dt=1.0,
        wall_seconds=1.0,
        image_steps_per_second=1.0,
        simulator="numpy",
        cancelled=cancelled,
    )


def fake_report() -> ConversionReport:
    runs = [Run("model-based", {}, {}, fake_result(0.962, 60.0)), Run("data-based", {}, {}, fake_result(0.987, 9.0))]
    return ConversionReport(
        model=DEFAULT_NAME,
        dataset="mnist",
        config=ConvertConfig(),
        ann_accuracy=0.989,
        graph=paper_cnn_graph(),
        import_notes=[],
        import_max_rel_error=1e-7,
        data_notes=[],
        runs=runs,
    )


def paper_plugins() -> SimpleNamespace:
    """The paper's normalizers and the reference simulator only: later plugins must not change
    the snapshots."""
    reg = registry()
    return SimpleNamespace(
        normalizers={k: reg.normalizers[k] for k in ("baseline", "model-based", "data-based")},
        simulators={"numpy": reg.simulators["numpy"]},
        problems=[],
    )


def snapshot_app(tab: str, theme: str = "textual-dark"):
    """A deterministic app showing ``tab`` filled with fabricated data."""
    app = make_app(autoload=False, deterministic=True, plugins=paper_plugins())

    async def fill(pilot) -> None:
        app.theme = theme
        app.model_info = ModelInfo(DEFAULT_NAME, paper_cnn_graph(), 0.989, 1000, "mnist", max_rel_error=2.4e-7)
        app.query_one("#model-view").show(app.model_info)
        if tab == "run":
            view = app.query_one(RunView)
            await view.start(["model-based", "data-based"], 1.0, 1000)
            app.running = True  # as during a run: Cancel enabled, settings locked
            done = {"model-based": 1000, "data-based": 360}
            view.update(
                {
                    f"simulate {n}": ProgressEvent(
                        f"simulate {n}",
                        done[n],
                        1000,
                        {"accuracy": fake_curve(0.96 + 0.02 * i, 60.0 / (1 + 5 * i)), "firing_rates": fake_result(0.9, 1).firing_rates},
                    )
                    for i, n in enumerate(done)
                }
            )
        if tab == "results":
            app.report = fake_report()
            app.query_one(ResultsView).show(app.report)
        await pilot.pause()
        app.action_help() if tab == "help" else app.action_show_tab(tab)
        await pilot.pause()

    return app, fill


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("tab", ["model", "settings", "run", "results", "help"])
def test_snapshot(snap_compare, tab, size):
    app, fill = snapshot_app(tab)
    assert snap_compare(app, terminal_size=size, run_before=fill)


def test_snapshot_results_light_theme(snap_compare):
    app, fill = snapshot_app("results", theme="textual-light")
    assert snap_compare(app, terminal_size=(80, 24), run_before=fill)


@sync
async def test_cli_and_tui_show_the_one_results_table():
    """`snnbalance convert` and the Results tab render the same library table
    (:func:`snnbalance.tables.results_table`): same cells under the same column names."""
    import io

    from rich.console import Console
    from rich.text import Text

    from snnbalance.cli.convert import print_report
    from snnbalance.tables import results_table

    report = fake_report()
    report.runs[1].result.cancelled = True
    out = Console(file=io.StringIO(), width=300)
    print_report(out, Console(file=io.StringIO()), report, report.config, [])
    printed = out.file.getvalue().splitlines()
    cli = results_table(report)
    header = next(line for line in printed if line.startswith("┃ normalizer"))
    assert [c.strip() for c in header.strip("┃").split("┃")] == list(cli.columns)
    cli_rows = [[c.strip() for c in line.strip("│").split("│")] for line in printed if line.startswith("│ ")]
    assert cli_rows == [list(r) for r in cli.rows] and len(cli_rows) == 2

    app = make_app(autoload=False, deterministic=True, plugins=paper_plugins())
    async with app.run_test() as pilot:
        await started(pilot)
        app.query_one(ResultsView).show(report)
        table = app.query_one("#results-table", DataTable)
        columns = [c.label.plain for c in table.columns.values()]
        tui_rows = [[Text.from_markup(str(c)).plain for c in table.get_row_at(i)] for i in range(table.row_count)]
    tui = results_table(report, frontier=True, mark_partial=True)
    assert columns == list(tui.columns)
    assert [[r[0].removeprefix("■ "), *r[1:]] for r in tui_rows] == [list(r) for r in tui.rows]
    assert tui_rows[1][0].endswith("data-based (partial)")
    for cli_row, tui_row in zip(cli_rows, tui_rows):  # the columns both show hold the same cells
        cells = dict(zip(columns, tui_row))
        assert [cells[c] for c in cli.columns[1:]] == cli_row[1:]


@sync
async def test_failed_load_clears_the_previous_model_and_its_run(tmp_path):
    """After a failed load nothing of the previous model stays: layers, results, Ctrl+S."""
    (tmp_path / "garbage.pt").write_bytes(b"not a model")
    app, fill = snapshot_app("results")
    notes = Notes()
    async with app.run_test(size=(100, 32), message_hook=notes) as pilot:
        await fill(pilot)
        assert app.query_one("#results-table", DataTable).row_count == 2
        await type_into(pilot, "#model-path", str(tmp_path / "garbage.pt"))
        await pilot.press("enter")
        await wait_until(pilot, lambda: notes.errors())
        assert app.report is None and app.model_info is None
        assert app.query_one("#layers", DataTable).row_count == 0
        assert app.query_one("#results-table", DataTable).row_count == 0
        assert "could not load" in app.sub_title
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "nothing to save yet" in notes[-1].message  # not the previous model's results


@sync
async def test_bad_setting_is_shown_next_to_its_field_in_the_forms_words():
    app = make_app(autoload=False, deterministic=True, plugins=paper_plugins())
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        await pilot.press("2")
        await type_into(pilot, "#samples", "0")
        await pilot.press("ctrl+r")
        await pilot.pause()
        form = app.query_one(SettingsForm)
        text = str(form.query_one("#form-error").render())
        assert "samples must be at least 1" in text and "--samples" not in text
        assert form.query_one("#samples").has_class("-invalid") and not app.running


@sync
async def test_q_quits_unless_a_text_field_has_focus():
    app = make_app(autoload=False, deterministic=True, plugins=paper_plugins())
    async with app.run_test() as pilot:
        await started(pilot)
        app.query_one("#model-path", Input).focus()
        await pilot.press("q")
        assert app.is_running and app.query_one("#model-path", Input).value.endswith("q")
        app.query_one("#tabs").focus()
        await pilot.press("q")
        await pilot.pause()
    assert not app.is_running


@sync
async def test_settings_choose_the_executor_as_the_cli_does():
    """Ray from the TUI too (issue 16): the Settings form's executor and address reach the job."""
    app = make_app(autoload=False, defaults=ConvertConfig())
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        app.action_show_tab("settings")
        await pilot.pause()
        assert app.settings().executor.kind == "local"
        app.query_one("#executor", Select).value = "ray"
        app.query_one("#ray-address", Input).value = "127.0.0.1:6379"
        await pilot.pause()
        job = app.settings()
        assert (job.executor.kind, job.executor.address) == ("ray", "127.0.0.1:6379")
