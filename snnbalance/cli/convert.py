"""``snnbalance convert``: balance a trained ANN with one or more normalizers and simulate each."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.console import Console

from . import options as o

if TYPE_CHECKING:
    from ..pipeline import ConversionReport, ConvertConfig

_D = o.D


def convert_command(
    model: o.ModelArg = None,
    arch: o.Arch = None,
    dataset: o.Dataset = _D.dataset,
    normalizer: list[str] = typer.Option(
        _D.normalizers,
        "--normalizer",
        "-n",
        help="Normalizer to compare (repeat the option); NAME or NAME:key=value,... (see `snnbalance plugins`).",
    ),
    simulator: str = typer.Option(
        _D.simulator,
        help="Simulator back end (see `snnbalance plugins`); auto: spikingjelly when it supports the network, else the numpy reference.",
    ),
    sim_option: list[str] = typer.Option([], "--sim-option", help="Back-end option KEY=VALUE (repeatable), e.g. engine=torch, chunk=64."),
    duration: float = typer.Option(_D.sim.duration, help="Simulated time per image (ms)."),
    dt: o.Dt = _D.sim.dt,
    max_rate: o.MaxRate = _D.sim.max_rate,
    threshold: o.Threshold = _D.threshold,
    reset: o.Reset = _D.sim.reset,
    readout: o.Readout = _D.sim.readout,
    refractory: float = typer.Option(_D.sim.refractory, help="Refractory period (ms)."),
    encoding: str = typer.Option(_D.sim.encoding, help="Input encoding: poisson or current."),
    samples: int = typer.Option(_D.samples, help="Simulate the first N test images."),
    calibration_samples: o.CalibrationSamples = _D.calibration_samples,
    batch_size: int = typer.Option(_D.sim.batch_size, help="Images simulated together (bounds memory)."),
    seed: o.Seed = _D.sim.seed,
    device: str = typer.Option(_D.sim.device, help="cpu or cuda (back ends that support it)."),
    data_dir: o.DataDir = None,
    download: o.Download = False,
    output: Path = typer.Option(Path("snnbalance-output"), "--output", "-o", help="Folder for results.json and accuracy.png."),
    json_out: Optional[str] = typer.Option(
        None,
        "--json",
        metavar="<FILE>",
        help="Also write the results (results.json's schema) to FILE; '-' prints them to stdout and everything else to stderr.",
    ),
    input_mean: o.InputMean = None,
    input_std: o.InputStd = None,
    input_layout: o.InputLayout = None,
    input_shape: o.InputShape = None,
    maxpool: o.MaxPool = _D.maxpool,
    trust_model: o.TrustModel = False,
    model_output: o.ModelOutput = None,
    calibration_dataset: o.CalibrationDataset = None,
    v_init: o.VInit = None,
    executor: o.ExecutorKind = "local",
    ray_address: o.RayAddress = None,
    slice_size: o.SliceSize = None,
) -> None:
    """Convert a trained ReLU network to a spiking one with each normalizer, on the same input spikes,
    and report accuracy over simulated time."""
    from ..records import parse_options
    from ..report import write_results
    from ..simulate import SimConfig

    cfg = o.job(
        model=model,
        arch=arch,
        dataset=dataset,
        normalizers=list(normalizer),
        simulator=simulator,
        threshold=threshold,
        samples=samples,
        calibration_samples=calibration_samples,
        data_dir=data_dir,
        download=download,
        input_mean=input_mean,
        input_std=input_std,
        input_layout=input_layout,
        input_shape=input_shape,
        maxpool=maxpool,
        trust_model=trust_model,
        model_output=model_output,
        calibration_dataset=calibration_dataset,
        executor=o.executor(executor, ray_address, slice_size),
        sim=SimConfig(
            duration=duration,
            dt=dt,
            max_rate=max_rate,
            encoding=encoding,
            reset=reset,
            refractory=refractory,
            seed=seed,
            batch_size=batch_size,
            device=device,
            options=parse_options(sim_option, "--sim-option"),
            v_init=v_init[0] if v_init else None,
            readout=readout,
        ),
    )
    v_inits = list(v_init or [None])
    check(cfg, v_inits, output)
    # Results to stdout, progress and notes to stderr: `> out.txt` holds no progress frames.
    err = Console(stderr=True, highlight=False)
    report, shown = run(cfg, v_inits, err)
    print_report(err if json_out == "-" else Console(), err, report, cfg, shown)
    for path in write_results(report, output):
        err.print(f"wrote {path}")
    if json_out:
        write_json(report, json_out)


def check(cfg: ConvertConfig, v_inits: list[float | None], output: Path) -> None:
    """Every option, each ``--v-init`` value and the output folder, before any slow work."""
    from ..files import check_output_dir

    for v in v_inits:
        if v is not None:
            dataclasses.replace(cfg.sim, v_init=v).validate()
    cfg.validate()
    check_output_dir(output)


def run(cfg: ConvertConfig, v_inits: list[float | None], err: Console) -> tuple[ConversionReport, list[str]]:
    """The job once per ``--v-init`` value, with progress on ``err``; the report and the warnings
    the progress display already showed."""
    from ..sweep import convert_grid
    from .progress import ProgressDisplay

    cfg.sim.batch_seconds = 1.0  # the first batch is one image: the bar and its ETA show at once
    with ProgressDisplay(err) as progress:
        report = convert_grid(cfg, v_inits, progress)
    return report, progress.shown


def print_report(console: Console, err: Console, report: ConversionReport, cfg: ConvertConfig, shown: list[str]) -> None:
    """What the job found: the import, the ANN, the results table, the accuracy frontier and the
    speed on ``console``; notes and warnings (those not ``shown`` already) on ``err``."""
    from ..report import format_frontier, format_pct, format_si, summary_rows
    from ..tables import results_table
    from .tables import rich_table

    console.print(f"[bold]model[/]   {report.model}")
    for note in report.import_notes + report.data_notes:
        err.print(f"[dim]note:[/] {note}", soft_wrap=True)
    console.print(f"imported graph matches the source model (max relative error {report.import_max_rel_error:.1e})")
    console.print(report.graph.format_summary(), highlight=False)
    if report.maxpool_replacement:
        r = report.maxpool_replacement
        console.print(
            f"max pooling replaced by average pooling: ANN accuracy {format_pct(r['original'])} % -> "
            f"{format_pct(r['replaced'])} % ({100 * r['change']:+.2f} points)"
        )
    sim = cfg.sim
    n = report.runs[0].result.samples if report.runs else 0
    console.print(
        f"\n[bold]ANN accuracy[/] {format_pct(report.ann_accuracy)} %  ({len(report.runs)} normalizers, "
        f"{n} {cfg.dataset} test images, {sim.duration:g} ms, dt {sim.dt:g} ms, {sim.encoding}, seed {sim.seed})"
    )
    console.print(rich_table(results_table(report), no_wrap=("normalizer",), width=console.width))
    console.print("time and synaptic operations per image to stay within 0.5 / 1 / 2 points of the ANN (synops: constant-rate estimate):")
    rows = summary_rows(report)
    for r in rows:
        console.print(f"  {r['normalizer']}: {format_frontier(r)}", highlight=False)
    simulator = report.runs[0].result.simulator if report.runs else cfg.simulator
    speed = ", ".join(f"{r['normalizer']} {format_si(r['image_steps_per_second'])}" for r in rows)
    engines = sorted({r.result.engine for r in report.runs if r.result.engine})
    engine = f" ({', '.join(engines)})" if engines else ""
    console.print(f"simulator {simulator}{engine} on {sim.device}: image-steps/s {speed}; whole job {report.wall_seconds:.1f} s")
    for warning in report.warnings:  # the library's diagnosis (e.g. how long a silent output needs)
        if warning not in shown:
            err.print(f"[yellow]warning:[/] {warning}", soft_wrap=True)
    if report.cancelled:
        console.print("[yellow]cancelled: the results cover the finished images only[/]")


def write_json(report, target: str) -> None:
    """The results as ``results.json`` holds them, to stdout (``-``) or a file."""
    import json
    import sys

    from ..files import atomic_write
    from ..report import results_dict

    text = json.dumps(results_dict(report), indent=1) + "\n"
    if target == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        Console(stderr=True, highlight=False).print(f"wrote {atomic_write(Path(target), text)}")
