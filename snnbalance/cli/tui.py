"""``snnbalance tui``: open the terminal UI."""

from __future__ import annotations

from typing import Optional

import typer


def tui_command(
    model: Optional[str] = typer.Argument(
        None, help="Trained model to open (.onnx or .pt); omitted: the embedded paper CNN trained on MNIST."),
    arch: Optional[str] = typer.Option(None, help="package.module:Class to load a state_dict into."),
) -> None:
    """Load a model, compare normalizers and watch the spiking network's accuracy grow, interactively."""
    from ..tui import make_app  # Textual is imported only for this command

    make_app(model, arch=arch).run()
