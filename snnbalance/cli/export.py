"""``snnbalance export``: balance a trained ANN with one normalizer and write the spiking network."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console


def export_command(
    model: Optional[str] = typer.Argument(
        None, help="Trained model: .onnx, TorchScript or pickled nn.Module (.pt), or a state_dict with --arch. "
                   "Omitted: the embedded paper CNN trained on MNIST."),
    normalizer: str = typer.Option(
        "data-based", "--normalizer", "-n",
        help="NAME or NAME:key=value,... (see `snnbalance plugins`)."),
    output: Path = typer.Option(..., "--output", "-o", help="File to write (.nir, .npz or .onnx)."),
    fmt: Optional[str] = typer.Option(
        None, "--format", "-f", help="nir, npz or onnx [default: from the --output suffix]."),
    arch: Optional[str] = typer.Option(None, help="package.module:Class to load a state_dict into."),
    dataset: str = typer.Option("mnist", help="Calibration data: mnist, fashion-mnist, or an .npz with x and y."),
    calibration_samples: int = typer.Option(1000, help="Training images for data-based normalizers (seeded)."),
    threshold: float = typer.Option(1.0, help="Firing threshold of every spiking layer."),
    dt: float = typer.Option(1.0, help="Time step (ms) stored with the network (NIR: r = 1000 / dt)."),
    reset: str = typer.Option("zero", help="Membrane reset stored with the network: zero or subtract (not NIR)."),
    max_rate: float = typer.Option(1000.0, help="Poisson rate of an input of value 1 (Hz), stored as metadata."),
    seed: int = typer.Option(0, help="Seed of the calibration sampling."),
    data_dir: Optional[str] = typer.Option(None, help="Dataset root [default: $SNNBALANCE_DATA or the user cache]."),
    download: bool = typer.Option(False, help="Download a missing dataset (needs internet)."),
) -> None:
    """Write the converted spiking network: NIR (IF neurons, thresholds, resets, balanced weights),
    a self-contained .npz, or ONNX of the balanced weights (see docs/export.md)."""
    from ..errors import SnnBalanceError
    from ..export import ExportSettings, export_model
    from ..simulate.core import RESETS

    if reset not in RESETS:
        raise SnnBalanceError(f"reset must be one of {', '.join(RESETS)}, got {reset!r}")
    if dt <= 0:
        raise SnnBalanceError(f"dt must be positive, got {dt}")
    result = export_model(model, normalizer, output, fmt, arch=arch, dataset=dataset, data_dir=data_dir,
                          calibration_samples=calibration_samples, threshold=threshold, seed=seed,
                          settings=ExportSettings(dt=dt, reset=reset, max_rate=max_rate), download=download)
    console = Console(highlight=False)
    for note in result.notes:
        console.print(f"[dim]note:[/] {note}")
    layers = result.graph.neuron_nodes()
    thresholds = ", ".join(f"{n.name} {n.threshold:g}" for n in layers)
    console.print(f"balanced with {normalizer}: {len(layers)} spiking layers (thresholds: {thresholds})")
    console.print(f"wrote {result.path} ({result.format})")
