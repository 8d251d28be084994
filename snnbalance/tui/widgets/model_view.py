"""The Model tab: which network to convert, and its layers once it is loaded."""

from __future__ import annotations

import math

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.markup import escape
from textual.widgets import Button, Checkbox, DataTable, Input, Static

from ...session import ModelInfo

LAYER_COLUMNS = ("layer", "type", "output", "params", "MACs")


class ModelView(Vertical):
    """A model path with a file picker and a load button, a one-line summary and the layer table.

    Args:
        model: initial path (empty: the embedded default).
        arch: initial ``package.module:Class`` for state_dict files.
    """

    def __init__(self, model: str = "", arch: str = "", trust: bool = False, **kw) -> None:
        super().__init__(**kw)
        self._model, self._arch, self._trust = model, arch, trust

    def compose(self) -> ComposeResult:
        with Horizontal(classes="row"):
            yield Input(self._model, placeholder="model .pt/.onnx; empty: embedded CNN", id="model-path", compact=True)
            yield Input(self._arch, placeholder="arch (state_dict)", id="model-arch", compact=True)
            yield Button("Browse", id="browse", action="app.open_model", compact=True)
            yield Button("Load", id="load", action="app.load_model", variant="primary", compact=True)
        yield Checkbox("trust this file: a pickled module runs code from the file when loaded", self._trust, id="model-trust", compact=True)
        yield Static("no model loaded yet", id="model-info")
        table = DataTable(id="layers", cursor_type="row", zebra_stripes=True)
        table.add_columns(*LAYER_COLUMNS)
        yield table

    @property
    def path(self) -> str | None:
        """The model path typed in, or None for the embedded default."""
        return self.query_one("#model-path", Input).value.strip() or None

    @property
    def arch(self) -> str | None:
        return self.query_one("#model-arch", Input).value.strip() or None

    @property
    def trust(self) -> bool:
        """Whether a pickled module may be unpickled (``--trust-model``)."""
        return self.query_one("#model-trust", Checkbox).value

    def set_path(self, path: str) -> None:
        self.query_one("#model-path", Input).value = path

    def show_loading(self, what: str) -> None:
        self.query_one("#model-info", Static).update(f"loading {escape(what)} …")

    def show_error(self, error: str) -> None:
        self.query_one("#model-info", Static).update(f"[b $error]could not load:[/] {escape(error)}")
        self.query_one("#layers", DataTable).clear()  # not the previous model's layers under the new name

    def show(self, info: ModelInfo) -> None:
        """Fill the summary line and the layer table from an inspected model."""
        err = "" if math.isnan(info.max_rel_error) else f" · import check: max rel. error {info.max_rel_error:.1e}"
        lines = [
            f"[b]{escape(info.name)}[/] · ANN accuracy [b]{100 * info.ann_accuracy:.2f} %[/] "
            f"on {info.samples} {escape(info.dataset)} test images{err}"
        ]
        lines += [f"[b $warning]warning:[/] {escape(w)}" for w in info.warnings]
        lines += [f"[dim]note: {escape(n)}[/]" for n in info.notes]
        self.query_one("#model-info", Static).update("\n".join(lines))
        table = self.query_one("#layers", DataTable)
        table.clear()
        rows = info.graph.summary()
        for r in rows:
            table.add_row(r["name"], r["op"], "x".join(map(str, r["shape"])), f"{r['params']:,}", f"{r['macs']:,}")
        table.add_row("total", "", "", f"{sum(r['params'] for r in rows):,}", f"{sum(r['macs'] for r in rows):,}")
