"""``snnbalance tui``: open the terminal UI."""

from __future__ import annotations

from typing import Optional

import typer

from ..pipeline import ConvertConfig
from . import options as o


def tui_command(
    model: Optional[str] = typer.Argument(
        None, help="Trained model to open (.onnx or .pt); omitted: the embedded paper CNN trained on MNIST."
    ),
    arch: o.Arch = None,
    trust_model: o.TrustModel = False,
    executor: o.ExecutorKind = "local",
    ray_address: o.RayAddress = None,
) -> None:
    """Load a model, compare normalizers and watch the spiking network's accuracy grow, interactively."""
    from ..extras import require

    require("textual", "snnbalance tui")
    from ..tui import make_app  # Textual is imported only for this command

    make_app(model, arch=arch, defaults=ConvertConfig(trust_model=trust_model, executor=o.executor(executor, ray_address, None))).run()
