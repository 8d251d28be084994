"""``snnbalance export``: balance a trained ANN with one normalizer and write the spiking network."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from . import options as o

_D = o.D


def export_command(
    model: o.ModelArg = None,
    normalizer: list[str] = typer.Option(
        ["data-based"], "--normalizer", "-n", help="NAME or NAME:key=value,... (see `snnbalance plugins`); one."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="File to write (.nir, .npz or .onnx)."),
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help="nir, npz or onnx [default: from the --output suffix]."),
    arch: o.Arch = None,
    dataset: o.Dataset = _D.dataset,
    calibration_samples: o.CalibrationSamples = _D.calibration_samples,
    threshold: o.Threshold = _D.threshold,
    dt: float = typer.Option(_D.sim.dt, help="Time step (ms) stored with the network (NIR: r = 1000 / dt)."),
    reset: str = typer.Option(_D.sim.reset, help="Membrane reset stored with the network: zero or subtract (not NIR)."),
    max_rate: float = typer.Option(_D.sim.max_rate, help="Poisson rate of an input of value 1 (Hz), stored as metadata."),
    readout: str = typer.Option(_D.sim.readout, help="Read-out stored with the network: spikes or membrane (not NIR)."),
    seed: int = typer.Option(_D.sim.seed, help="Seed of the calibration sampling."),
    v_init: Optional[float] = typer.Option(
        None,
        "--v-init",
        help="Initial membrane potential of every spiking layer, as a fraction of its threshold, "
        "in [-1, 1), stored with the network as convert simulates it (npz, onnx; NIR "
        "refuses v_init != 0). Default: each layer's own (0, or a calibration normalizer's).",
    ),
    data_dir: o.DataDir = None,
    download: o.Download = False,
    input_mean: o.InputMean = None,
    input_std: o.InputStd = None,
    input_layout: o.InputLayout = None,
    input_shape: o.InputShape = None,
    maxpool: o.MaxPool = _D.maxpool,
    trust_model: o.TrustModel = False,
) -> None:
    """Write the converted spiking network: NIR (IF neurons, thresholds, resets, balanced weights),
    a self-contained .npz, or ONNX of the balanced weights (see docs/export.md). The network is the
    one `snnbalance convert` simulates with the same options."""
    from ..export import export_model
    from ..simulate import SimConfig
    from .progress import ProgressDisplay

    job = o.job(
        model=model,
        arch=arch,
        dataset=dataset,
        normalizers=list(normalizer),
        threshold=threshold,
        calibration_samples=calibration_samples,
        data_dir=data_dir,
        download=download,
        input_mean=input_mean,
        input_std=input_std,
        input_layout=input_layout,
        input_shape=input_shape,
        maxpool=maxpool,
        trust_model=trust_model,
        sim=SimConfig(duration=dt, dt=dt, reset=reset, max_rate=max_rate, seed=seed, v_init=v_init, readout=readout),
    )
    err, console = Console(stderr=True, highlight=False), Console(highlight=False)
    with ProgressDisplay(err) as progress:  # importing and calibrating take seconds to minutes
        result = export_model(job, output, fmt, progress=progress)
    for note in result.notes:
        err.print(f"[dim]note:[/] {note}", soft_wrap=True)
    layers = result.graph.neuron_nodes()
    thresholds = ", ".join(f"{n.name} {n.threshold:g}" for n in layers)
    console.print(f"balanced with {job.normalizers[0]}: {len(layers)} spiking layers (thresholds: {thresholds})")
    console.print(f"wrote {result.path} ({result.format})")
