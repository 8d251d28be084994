"""``snnbalance convert``: balance a trained ANN with one or more normalizers and simulate each."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from ..pipeline import ConvertConfig

_D = ConvertConfig()  # the defaults live in the library; the TUI shows the same ones


def _floats(text: Optional[str], option: str) -> Optional[list[float]]:
    """``"0.5"`` or ``"0.485,0.456,0.406"`` as floats."""
    from ..errors import SnnBalanceError

    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise SnnBalanceError(f"{option} takes numbers separated by commas, got {text!r}") from None


def convert_command(
    model: Optional[str] = typer.Argument(
        None, help="Trained model: .onnx, TorchScript or pickled nn.Module (.pt), or a state_dict with --arch. "
                   "Omitted: the embedded paper CNN trained on MNIST."),
    arch: Optional[str] = typer.Option(None, help="package.module:Class to load a state_dict into."),
    dataset: str = typer.Option(_D.dataset, help="mnist, fashion-mnist, or an .npz file with x and y."),
    normalizer: list[str] = typer.Option(
        _D.normalizers, "--normalizer", "-n",
        help="Normalizer to compare (repeat the option); NAME or NAME:key=value,... (see `snnbalance plugins`)."),
    simulator: str = typer.Option(
        _D.simulator, help="Simulator back end (see `snnbalance plugins`); auto: spikingjelly when it supports "
                     "the network, else the numpy reference."),
    sim_option: list[str] = typer.Option(
        [], "--sim-option", help="Back-end option KEY=VALUE (repeatable), e.g. engine=torch, chunk=64."),
    duration: float = typer.Option(_D.sim.duration, help="Simulated time per image (ms)."),
    dt: float = typer.Option(_D.sim.dt, help="Time step (ms)."),
    max_rate: float = typer.Option(_D.sim.max_rate, help="Poisson rate of a pixel of value 1 (Hz)."),
    threshold: float = typer.Option(_D.threshold, help="Firing threshold of every spiking layer."),
    reset: str = typer.Option(_D.sim.reset, help="Membrane reset after a spike: zero or subtract."),
    refractory: float = typer.Option(_D.sim.refractory, help="Refractory period (ms)."),
    encoding: str = typer.Option(_D.sim.encoding, help="Input encoding: poisson or current."),
    samples: int = typer.Option(_D.samples, help="Simulate the first N test images."),
    calibration_samples: int = typer.Option(_D.calibration_samples, help="Training images for data-based normalization (seeded)."),
    batch_size: int = typer.Option(_D.sim.batch_size, help="Images simulated together (bounds memory)."),
    seed: int = typer.Option(_D.sim.seed, help="Seed of input spikes and calibration sampling."),
    device: str = typer.Option(_D.sim.device, help="cpu or cuda (back ends that support it)."),
    data_dir: Optional[str] = typer.Option(None, help="Dataset root [default: $SNNBALANCE_DATA or the user cache]."),
    download: bool = typer.Option(False, help="Download a missing dataset (needs internet)."),
    output: Path = typer.Option(Path("snnbalance-output"), "--output", "-o", help="Folder for results.json and accuracy.png."),
    input_mean: Optional[str] = typer.Option(
        None, help="The model was trained on (x - mean) / std: the mean, one value or one per channel, "
                   "comma-separated (e.g. 0.5 or 0.485,0.456,0.406). Folded into the first layer; the SNN "
                   "reads raw 0-1 pixels."),
    input_std: Optional[str] = typer.Option(None, help="The std of that normalization (see --input-mean)."),
    input_layout: Optional[str] = typer.Option(
        None, help="Input layout of the model: nchw or nhwc (channels-last, e.g. Keras); default: detected."),
    maxpool: str = typer.Option(
        _D.maxpool, help="Max pooling: spiking (gated by accumulated spike counts) or avg (replaced by "
                         "average pooling; the ANN accuracy change is reported)."),
) -> None:
    """Convert a trained ReLU network to a spiking one with each normalizer, on the same input spikes,
    and report accuracy over simulated time."""
    from ..records import parse_options
    from ..pipeline import convert
    from ..report import format_pct, format_si, summary_rows, write_results
    from ..simulate import SimConfig
    from .progress import RichProgress

    cfg = ConvertConfig(
        model=model, arch=arch, dataset=dataset, normalizers=list(normalizer), simulator=simulator,
        threshold=threshold, samples=samples, calibration_samples=calibration_samples, data_dir=data_dir,
        download=download, input_mean=_floats(input_mean, "--input-mean"),
        input_std=_floats(input_std, "--input-std"), input_layout=input_layout, maxpool=maxpool,
        sim=SimConfig(duration=duration, dt=dt, max_rate=max_rate, encoding=encoding, reset=reset,
                      refractory=refractory, seed=seed, batch_size=batch_size, device=device,
                      options=parse_options(sim_option, "--sim-option")))
    console = Console()
    with RichProgress(console) as progress:
        report = convert(cfg, progress)

    console.print(f"[bold]model[/]   {report.model}")
    for note in report.import_notes + report.data_notes:
        console.print(f"[dim]note:[/] {note}")
    console.print(f"imported graph matches the source model (max relative error {report.import_max_rel_error:.1e})")
    console.print(report.graph.format_summary(), highlight=False)
    if report.maxpool_replacement:
        r = report.maxpool_replacement
        console.print(f"max pooling replaced by average pooling: ANN accuracy {format_pct(r['original'])} % -> "
                      f"{format_pct(r['replaced'])} % ({100 * r['change']:+.2f} points)")
    n = report.runs[0].result.samples if report.runs else 0
    console.print(f"\n[bold]ANN accuracy[/] {format_pct(report.ann_accuracy)} %  ({len(report.runs)} normalizers, "
                  f"{n} {dataset} test images, {duration:g} ms, dt {dt:g} ms, {encoding}, seed {seed})")
    table = Table(title="SNN accuracy [%] over simulated time", caption=(
        "±1% ms: first time from which accuracy stays within 1 point of final; Hz: mean firing rate; "
        "synops: synaptic operations per image"))
    table.add_column("normalizer", no_wrap=True)
    for col in ("final", "10ms", "30ms", "100ms", "±1% ms", "Hz", "synops"):
        table.add_column(col, justify="right")
    for r in summary_rows(report):
        t1 = r["time_to_1pct_ms"]
        table.add_row(r["normalizer"], format_pct(r["final_accuracy"]), format_pct(r["accuracy_10ms"]),
                      format_pct(r["accuracy_30ms"]), format_pct(r["accuracy_100ms"]), "-" if math.isnan(t1) else f"{t1:g}",
                      f"{r['mean_firing_rate_hz']:.1f}", format_si(r["synaptic_ops_per_sample"]))
    console.print(table)
    simulator = report.runs[0].result.simulator if report.runs else simulator
    speed = ", ".join(f"{r['normalizer']} {format_si(r['image_steps_per_second'])}" for r in summary_rows(report))
    engines = sorted({r.result.engine for r in report.runs if r.result.engine})
    engine = f" ({', '.join(engines)})" if engines else ""
    console.print(f"simulator {simulator}{engine} on {device}: image-steps/s {speed}; "
                  f"whole job {report.wall_seconds:.1f} s")
    out_layer = report.graph.output.name
    for run in report.runs:
        if run.result.spike_counts.get(out_layer, 1) == 0:
            console.print(f"[yellow]note:[/] {run.normalizer}: the output layer did not spike in {duration:g} ms, "
                          "so every prediction is class 0; this normalization needs a longer --duration")
    if report.cancelled:
        console.print("[yellow]cancelled: the results cover the finished images only[/]")
    for path in write_results(report, output):
        console.print(f"wrote {path}")
