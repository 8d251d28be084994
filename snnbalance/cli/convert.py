"""``snnbalance convert``: balance a trained ANN with one or more normalizers and simulate each."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from . import options as o

_D = o.D


def convert_command(
    model: o.ModelArg = None,
    arch: o.Arch = None,
    dataset: o.Dataset = _D.dataset,
    normalizer: list[str] = typer.Option(
        _D.normalizers, "--normalizer", "-n",
        help="Normalizer to compare (repeat the option); NAME or NAME:key=value,... (see `snnbalance plugins`)."),
    simulator: str = typer.Option(
        _D.simulator, help="Simulator back end (see `snnbalance plugins`); auto: spikingjelly when it supports "
                     "the network, else the numpy reference."),
    sim_option: list[str] = typer.Option(
        [], "--sim-option", help="Back-end option KEY=VALUE (repeatable), e.g. engine=torch, chunk=64."),
    duration: float = typer.Option(_D.sim.duration, help="Simulated time per image (ms)."),
    dt: o.Dt = _D.sim.dt,
    max_rate: o.MaxRate = _D.sim.max_rate,
    threshold: o.Threshold = _D.threshold,
    reset: o.Reset = _D.sim.reset,
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
        None, "--json", metavar="<FILE>", help="Also write the results (results.json's schema) to FILE; '-' prints "
                                               "them to stdout and everything else to stderr."),
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
    from ..files import check_output_dir
    from ..records import parse_options
    from ..report import format_frontier, format_pct, format_si, summary_rows, write_results
    from ..simulate import SimConfig
    from ..sweep import convert_grid
    from .progress import ProgressDisplay

    cfg = o.job(
        model=model, arch=arch, dataset=dataset, normalizers=list(normalizer), simulator=simulator,
        threshold=threshold, samples=samples, calibration_samples=calibration_samples, data_dir=data_dir,
        download=download, input_mean=input_mean, input_std=input_std, input_layout=input_layout,
        input_shape=input_shape, maxpool=maxpool, trust_model=trust_model, model_output=model_output,
        calibration_dataset=calibration_dataset, executor=o.executor(executor, ray_address, slice_size),
        sim=SimConfig(duration=duration, dt=dt, max_rate=max_rate, encoding=encoding, reset=reset,
                      refractory=refractory, seed=seed, batch_size=batch_size, device=device,
                      options=parse_options(sim_option, "--sim-option"), v_init=v_init[0] if v_init else None))
    for v in v_init or []:  # every value, before any slow work
        dataclasses.replace(cfg.sim, v_init=v).validate()
    cfg.validate()  # every option, and the output folder, before any slow work
    check_output_dir(output)
    cfg.sim.batch_seconds = 1.0  # the first batch is one image: the bar and its ETA show at once
    # Results to stdout, progress and notes to stderr: `> out.txt` holds no progress frames.
    err = Console(stderr=True, highlight=False)
    console = err if json_out == "-" else Console()
    with ProgressDisplay(err) as progress:
        report = convert_grid(cfg, list(v_init or [None]), progress)

    console.print(f"[bold]model[/]   {report.model}")
    for note in report.import_notes + report.data_notes:
        err.print(f"[dim]note:[/] {note}", soft_wrap=True)
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
    console.print("time and synaptic operations per image to stay within 0.5 / 1 / 2 points of the ANN "
                  "(synops: constant-rate estimate):")
    for r in summary_rows(report):
        console.print(f"  {r['normalizer']}: {format_frontier(r)}", highlight=False)
    simulator = report.runs[0].result.simulator if report.runs else simulator
    speed = ", ".join(f"{r['normalizer']} {format_si(r['image_steps_per_second'])}" for r in summary_rows(report))
    engines = sorted({r.result.engine for r in report.runs if r.result.engine})
    engine = f" ({', '.join(engines)})" if engines else ""
    console.print(f"simulator {simulator}{engine} on {device}: image-steps/s {speed}; "
                  f"whole job {report.wall_seconds:.1f} s")
    for warning in report.warnings:  # the library's diagnosis (e.g. how long a silent output needs)
        if warning not in progress.shown:
            err.print(f"[yellow]warning:[/] {warning}", soft_wrap=True)
    if report.cancelled:
        console.print("[yellow]cancelled: the results cover the finished images only[/]")
    for path in write_results(report, output):
        err.print(f"wrote {path}")
    if json_out:
        write_json(report, json_out)


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
