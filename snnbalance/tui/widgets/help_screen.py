"""The key bindings, listed from the app's own ``BINDINGS`` so the help cannot drift from them."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label


class HelpScreen(ModalScreen[None]):
    """A modal table of keys and what they do; any of escape, q, f1 or ? closes it.

    Args:
        bindings: the bindings to list, in order.
    """

    BINDINGS = [Binding("escape,q,f1,question_mark", "dismiss", "Close", show=False)]

    def __init__(self, bindings: list[Binding]) -> None:
        super().__init__()
        self.bindings = bindings

    def compose(self) -> ComposeResult:
        with Vertical(id="help"):
            yield Label("[b]snnbalance tui[/] — keys", id="help-title")
            yield DataTable(id="help-table", show_cursor=False, zebra_stripes=True)
            yield Label("[dim]escape closes this · mouse works too · ctrl+p: commands and themes[/]")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("key", "action")
        for b in self.bindings:
            keys = ", ".join(self.app.get_key_display(Binding(k.strip(), b.action)) for k in b.key.split(","))
            table.add_row(keys, b.tooltip or b.description)
