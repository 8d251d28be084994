"""The ``snnbalance tui`` application: a thin Textual shell over :func:`snnbalance.pipeline.convert`.

Everything slow (importing a model, a conversion run, writing results) runs in a thread worker
that talks to the UI only through the messages in :mod:`.messages`; the UI renders what the
library reports and computes nothing itself.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.lazy import Lazy
from textual.reactive import reactive
from textual.widgets import Footer, Header, Input, TabbedContent, TabPane

from ..errors import SnnBalanceError
from ..pipeline import ConversionReport, ConvertConfig
from ..plugins import Registry, registry
from ..progress import Cancelled
from ..session import DEFAULT_NAME, ModelInfo
from .messages import ModelFailed, ModelLoaded, ProgressRelay, RunDone, RunTick, abandonable
from .widgets.file_picker import FilePicker
from .widgets.help_screen import HelpScreen
from .widgets.model_view import ModelView
from .widgets.results_view import ResultsView
from .widgets.run_view import RunView
from .widgets.settings_form import SettingsForm, form_error

TICK_SECONDS = 0.15  # the live view is redrawn at most this often, however fast events arrive
# Progress (and so a cancel) arrives once per batch, so batches are sized to take about this
# long; results do not depend on the batch size.
BATCH_SECONDS = 0.3
TABS = ("model", "settings", "run", "results")


class SnnBalanceApp(App):
    """Load a model, choose settings, run the conversion live, and save the results.

    Args:
        model: model path to show first; None for the embedded default.
        arch: ``package.module:Class`` for a state_dict model.
        autoload: import the model right after start (in the background).
        deterministic: hide wall-clock times and ETAs and stop the cursor blinking, for snapshots.
        defaults: initial settings (the CLI's defaults when None).
        plugins: where the choices of normalizers and simulators come from (default: the plugin
            registry, so third-party plugins appear); tests pass a fixed set.
    """

    CSS_PATH = "app.tcss"
    TITLE = "snnbalance"
    AUTO_FOCUS = "Tabs"  # not the path input: digits and letters should reach the bindings first
    BINDINGS = [
        Binding("ctrl+r", "run", "Run", priority=True, tooltip="Run the conversion with the current settings"),
        Binding("escape", "cancel", "Cancel", priority=True, tooltip="Cancel the run (partial curves are kept)"),
        Binding("ctrl+s", "save", "Save", priority=True, tooltip="Save results.json and accuracy.png"),
        Binding("ctrl+o", "open_model", "Open", priority=True, tooltip="Pick a model file"),
        Binding("ctrl+l", "load_model", "Load", show=False, priority=True, tooltip="Load the model path"),
        Binding("f1,question_mark", "help", "Help", tooltip="Show these keys"),
        Binding("ctrl+t", "toggle_theme", "Theme", show=False, tooltip="Switch between light and dark"),
        *(Binding(str(i + 1), f"show_tab('{t}')", t.title(), show=False, tooltip=f"Show the {t.title()} tab") for i, t in enumerate(TABS)),
        Binding("ctrl+q", "quit", "Quit", priority=True, tooltip="Quit (cancels a run)"),
        # Not a priority binding: a focused text field takes the q as a letter.
        Binding("q", "quit", "Quit", show=False, tooltip="Quit when no text field has focus"),
    ]

    running: reactive[bool] = reactive(False, init=False)

    def __init__(
        self,
        model: str | None = None,
        arch: str | None = None,
        *,
        autoload: bool = True,
        deterministic: bool = False,
        defaults: ConvertConfig | None = None,
        plugins: Registry | None = None,
    ) -> None:
        super().__init__()
        self.model, self.arch, self.autoload = model or "", arch or "", autoload
        self.deterministic = deterministic
        self.defaults = defaults or ConvertConfig()
        self.plugins = plugins or registry()
        self.report: ConversionReport | None = None
        self.model_info: ModelInfo | None = None
        self.relay: ProgressRelay | None = None
        self.saved: list[Path] = []
        self._load_generation = 0
        self.closing = threading.Event()  # set on exit: workers stop waiting for their threads

    def compose(self) -> ComposeResult:
        reg = self.plugins
        # Tabs hidden at start are mounted after the first paint, so the app shows up sooner;
        # snapshots mount everything at once so every input is there to stop blinking.
        lazy = (lambda widget: widget) if self.deterministic else Lazy
        yield Header()
        with TabbedContent(initial="model", id="tabs"):
            with TabPane("Model", id="model"):
                yield ModelView(self.model, self.arch, self.defaults.trust_model, id="model-view")
            with TabPane("Settings", id="settings"):
                yield lazy(SettingsForm(reg.normalizers, reg.simulators, self.defaults, id="settings-form"))
            with TabPane("Run", id="run"):
                yield RunView(show_times=not self.deterministic, id="run-view")
            with TabPane("Results", id="results"):
                yield lazy(ResultsView(id="results-view"))
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = self.model or DEFAULT_NAME
        if self.deterministic:
            for inp in self.query(Input):
                inp.cursor_blink = False
        for problem in self.plugins.problems:
            self.notify(problem, title="plugin problem", severity="warning")
        if self.autoload:
            # After the first paint: importing torch in the worker holds the GIL for seconds.
            self.call_after_refresh(self.action_load_model)

    # -- actions ------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel":  # escape belongs to dialogs and dropdowns unless a run is going
            return self.running and self.screen is self.screen_stack[0]
        if action in ("run", "load_model", "open_model", "save"):
            return None if self.running else True  # shown dimmed while a run goes
        return True

    def watch_running(self, running: bool) -> None:
        self.query_one(RunView).set_running(running)
        for widget in (*self.query(SettingsForm), self.query_one(ModelView)):
            widget.disabled = running  # settings cannot change under a running job
        self.refresh_bindings()

    def settings(self) -> ConvertConfig:
        """The job the Model and Settings tabs describe.

        Raises:
            SnnBalanceError: a setting is not valid.
        """
        view = self.query_one(ModelView)
        for form in self.query(SettingsForm):
            if form.ready:
                return replace(form.config(view.path, view.arch), trust_model=view.trust)
        # The form is mounted lazily; until then it shows exactly the defaults.
        return replace(self.defaults, model=view.path, arch=view.arch, trust_model=view.trust, sim=replace(self.defaults.sim))

    def show_form_error(self, exc: SnnBalanceError | None) -> None:
        """A bad setting, in the form's words, next to its field (and as a notification); None clears it."""
        error = None if exc is None else form_error(exc)
        for form in self.query(SettingsForm):
            if form.ready:
                form.show_error(error)
        if error is not None:
            if error.field:
                self.action_show_tab("settings")
            self.notify(str(error), title="check the settings", severity="error", markup=False)

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_help(self) -> None:
        self.push_screen(HelpScreen(list(self.BINDINGS)))

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.current_theme.dark else "textual-dark"

    def action_open_model(self) -> None:
        def chosen(path: str | None) -> None:
            if path:
                self.query_one(ModelView).set_path(path)
                self.action_load_model()

        self.push_screen(FilePicker(Path.cwd()), chosen)

    def action_load_model(self) -> None:
        view = self.query_one(ModelView)
        try:
            cfg = self.settings()
        except SnnBalanceError as exc:
            self.show_form_error(exc)
            return
        self._load_generation += 1
        view.show_loading(cfg.model or DEFAULT_NAME)
        self.sub_title = cfg.model or DEFAULT_NAME
        self._load_worker(cfg, self._load_generation)

    async def action_run(self) -> None:
        if self.running:
            return
        try:
            cfg = self.settings()
            cfg.validate()  # every setting, before any slow work, as the CLI does
        except SnnBalanceError as exc:
            self.show_form_error(exc)
            return
        self.show_form_error(None)
        cfg.sim.batch_seconds = BATCH_SECONDS
        self.relay = ProgressRelay(self.post_message)
        self.running = True  # before the await: a second ctrl+r must not start a second run
        await self.query_one(RunView).start(cfg.normalizers, cfg.sim.dt, cfg.samples)
        self.action_show_tab("run")
        self._run_worker(cfg, self.relay)

    def action_cancel(self) -> None:
        if self.running and self.relay is not None:
            self.relay.cancel.set()
            self.query_one(RunView).set_stage("cancelling …")

    def action_save(self) -> None:
        if self.report is None:
            self.notify("nothing to save yet: run a conversion first", severity="warning")
            return
        self._save_worker(self.report, self.query_one(ResultsView).output)

    def exit(self, *args, **kwargs) -> None:
        """Exit the app; a run in progress is cancelled and no worker is waited for."""
        self.closing.set()
        if self.relay is not None:
            self.relay.cancel.set()  # the simulation thread ends at its next progress event
        super().exit(*args, **kwargs)

    # -- workers (threads: never touch widgets, only post messages) -----------------------------
    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def _load_worker(self, cfg: ConvertConfig, generation: int) -> None:
        from ..session import inspect_model

        try:
            self.post_message(ModelLoaded(abandonable(self.closing, inspect_model, cfg), generation))
        except Cancelled:
            return  # the app is closing
        except SnnBalanceError as exc:
            self.post_message(ModelFailed(str(exc), generation))
        except Exception as exc:  # a bug or an odd file: tell the user, keep the app alive
            self.post_message(ModelFailed(f"{type(exc).__name__}: {exc}", generation))

    @work(thread=True, exclusive=True, group="run", exit_on_error=False)
    def _run_worker(self, cfg: ConvertConfig, relay: ProgressRelay) -> None:
        from ..pipeline import convert

        try:
            report = abandonable(self.closing, convert, cfg, relay)
            self.post_message(RunDone(report, cancelled=report.cancelled))
        except Cancelled:  # stopped before any simulation (import, calibration)
            self.post_message(RunDone(None, cancelled=True))
        except SnnBalanceError as exc:
            self.post_message(RunDone(None, error=str(exc)))
        except Exception as exc:
            self.post_message(RunDone(None, error=f"internal error: {type(exc).__name__}: {exc}"))

    @work(thread=True, group="save", exit_on_error=False)
    def _save_worker(self, report: ConversionReport, outdir: str) -> None:
        from ..report import write_results

        try:
            paths = write_results(report, outdir)
        except (OSError, SnnBalanceError) as exc:
            self.notify(f"could not save to {outdir}: {exc}", severity="error", markup=False)
            return
        self.saved = paths
        self.notify("wrote " + ", ".join(str(p) for p in paths), title="saved", markup=False)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id in ("model-path", "model-arch"):
            self.action_load_model()
        elif event.input.id == "output":
            self.action_save()

    # -- messages from the workers ----------------------------------------------------------------
    def on_model_loaded(self, msg: ModelLoaded) -> None:
        if msg.generation != self._load_generation:
            return  # a newer load was started; this result is stale
        self.model_info = msg.info
        self.query_one(ModelView).show(msg.info)

    def on_model_failed(self, msg: ModelFailed) -> None:
        if msg.generation != self._load_generation:
            return
        # Nothing of the previous model may stay on screen under the new name: its layers, its
        # run, its results, or Ctrl+S saving them.
        self.model_info, self.report = None, None
        self.sub_title = f"{self.sub_title} (could not load)"
        self.query_one(ModelView).show_error(msg.error)
        for results in self.query(ResultsView):
            results.clear()
        self.query_one(RunView).clear()
        self.notify(msg.error, title="could not load the model", severity="error", timeout=8, markup=False)

    def on_run_tick(self, _: RunTick) -> None:
        relay = self.relay
        if relay is None or not self.running:
            return
        self.query_one(RunView).update(relay.take())
        self.set_timer(TICK_SECONDS, relay.release)

    def on_run_done(self, msg: RunDone) -> None:
        self.running = False
        state = "failed" if msg.error else "cancelled" if msg.cancelled else "done"
        self.query_one(RunView).finish(msg.report, state)
        if msg.report is not None and msg.report.runs:
            self.report = msg.report
            self.query_one(ResultsView).show(msg.report)
            for warning in msg.report.warnings:  # the library's diagnosis, e.g. how long a method needs
                self.notify(warning, title="warning", severity="warning", timeout=15, markup=False)
        self.refresh_bindings()
        if msg.error:
            self.notify(msg.error, title="the run failed", severity="error", timeout=8, markup=False)
        elif msg.cancelled:
            kept = len(msg.report.runs) if msg.report else 0
            self.notify(f"run cancelled; kept {kept} partial result(s)", severity="warning")
        else:
            self.notify("run finished: see the Results tab (ctrl+s saves)", title="done")
            self.action_show_tab("results")


def make_app(model: str | None = None, **kw) -> SnnBalanceApp:
    """Build the app; the CLI and the tests both start here.

    Args:
        model: model path, or None for the embedded default.
        **kw: see :class:`SnnBalanceApp` (``arch``, ``autoload``, ``deterministic``, ``defaults``,
            ``plugins``).
    """
    return SnnBalanceApp(model, **kw)
