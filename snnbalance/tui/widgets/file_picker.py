"""A modal file picker that shows folders and model files (PyTorch and ONNX) only."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DirectoryTree, Label

# What load_model reads: .onnx goes to the ONNX importer, anything else is tried as a PyTorch
# file; these are the names PyTorch files usually carry.
MODEL_SUFFIXES = (".pt", ".pth", ".onnx", ".pt2", ".pkl", ".ckpt", ".bin", ".jit", ".torchscript")


class ModelTree(DirectoryTree):
    """A directory tree without hidden entries and without files that are not models."""

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [p for p in paths if not p.name.startswith(".") and (p.is_dir() or p.suffix.lower() in MODEL_SUFFIXES)]


class FilePicker(ModalScreen[str | None]):
    """Choose a model file; dismisses with its path, or None when cancelled.

    Args:
        start: the folder shown first.
    """

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel"), Binding("backspace", "up", "Parent folder")]

    def __init__(self, start: str | Path = ".") -> None:
        super().__init__()
        self.start = Path(start).expanduser().resolve()

    def compose(self) -> ComposeResult:
        with Vertical(id="picker"):
            yield Label(f"Open a model ({', '.join(MODEL_SUFFIXES[:3])}, …)", id="picker-title")
            yield ModelTree(self.start, id="tree")
            with Horizontal(classes="row"):
                yield Button("Parent folder", id="up", action="screen.up", compact=True)
                yield Button("Cancel", id="picker-cancel", action="screen.dismiss(None)", compact=True)

    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        event.stop()
        self.dismiss(str(event.path))

    def action_up(self) -> None:
        tree = self.query_one(ModelTree)
        tree.path = Path(tree.path).parent
