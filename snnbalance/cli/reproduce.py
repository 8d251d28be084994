"""``snnbalance reproduce``: the paper's Tables 1-2 and Figures 3-4 (see ``docs/reproduce.md``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from ..progress import ProgressEvent
from ..reproduce import StudyConfig
from . import options as o
from .progress import Label, ProgressDisplay


def study_label(ev: ProgressEvent) -> Label:
    """Two rows: the whole study ("run k of n", ETA from image-steps done) and the current task."""
    info = ev.info
    if ev.task == "study":
        return Label("study", f"run {info.get('run')} of {info.get('runs')}: {info.get('label')}")
    if ev.task == "train":
        return Label("current", "train", f"epoch {info.get('epoch')}/{info.get('epochs')} loss {info.get('loss', float('nan')):.3f}")
    acc = info.get("accuracy")
    return Label("current", ev.task, f"acc {100 * acc[-1]:.2f} %" if acc is not None and len(acc) else "")


def _print_table2(console: Console, runs: list[dict]) -> None:
    from ..reproduce_report import table2_rows, table2_table
    from .tables import rich_table

    console.print(rich_table(table2_table(table2_rows(runs))))


_S = StudyConfig()  # the defaults live in the library


def _split(v: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in v.split(",") if p.strip())


def reproduce_command(
    datasets: str = typer.Option(",".join(_S.datasets), help="Comma-separated: mnist, fashion-mnist."),
    archs: str = typer.Option(",".join(_S.archs), help="Comma-separated: mlp, cnn."),
    encodings: str = typer.Option(",".join(_S.encodings), help="Comma-separated input encodings: poisson, current."),
    duration: float = typer.Option(_S.duration, help="Simulated time per image, in ms."),
    samples: int = typer.Option(_S.samples, help="Simulate the first N test images."),
    device: str = typer.Option(_S.device, help="cpu or cuda (training and simulation)."),
    output: Path = typer.Option(Path(_S.output), "--output", "-o", help="Folder for tables, figures, runs/."),
    resume: bool = typer.Option(_S.resume, "--resume", help="Keep finished runs found in OUTPUT/runs/ and continue the rest."),
    seed: int = typer.Option(_S.seed, help="Seed of training, calibration sampling and input spikes."),
    simulator: str = typer.Option(_S.simulator, help="Simulator back end (see `snnbalance plugins`)."),
    train_epochs: Optional[str] = typer.Option(
        None, help="Override the training recipe's epochs: N, or KEY=N,... with KEY a dataset, arch or dataset/arch."
    ),
    no_train: bool = typer.Option(False, "--no-train", help="Fail instead of training a network missing from the cache."),
    cache: Optional[str] = typer.Option(None, help="Trained-network cache (default: ~/.cache/snnbalance/models)."),
    sweep_samples: int = typer.Option(_S.sweep_samples, help="Held-out training images (the last N) for the threshold sweep."),
    sweep_duration: Optional[float] = typer.Option(None, help="Sweep's simulated time in ms (default: min(duration, 1000))."),
    calibration_samples: int = typer.Option(_S.calibration_samples, help="Seeded training images for data-based normalization."),
    batch_size: int = typer.Option(_S.batch_size, help="Images simulated together."),
    data_dir: Optional[str] = typer.Option(None, help="Dataset root (default: $SNNBALANCE_DATA, else the user cache)."),
    report_only: bool = typer.Option(
        False, "--report-only", help="Only write tables and figures from the run files in OUTPUT/runs (same settings)."
    ),
    sim_option: list[str] = typer.Option(
        [], "--sim-option", help="Back-end option KEY=VALUE (repeatable), e.g. precision=tf32x2 with --device cuda."
    ),
    executor: o.ExecutorKind = "local",
    ray_address: o.RayAddress = None,
    slice_size: o.SliceSize = None,
) -> None:
    """Reproduce Diehl et al. (2015): train/load four networks, convert each five ways, simulate with Poisson
    and constant-current input, and write Tables 1-2, a latency table, results.json and Figures 3-4."""
    from ..records import parse_options
    from ..reproduce import run_study

    cfg = StudyConfig(
        output=str(output),
        datasets=_split(datasets),
        archs=_split(archs),
        encodings=_split(encodings),
        duration=duration,
        samples=samples,
        seed=seed,
        device=device,
        simulator=simulator,
        cache=cache,
        train_epochs=train_epochs,
        resume=resume,
        allow_train=not no_train,
        sweep_samples=sweep_samples,
        sweep_duration=sweep_duration,
        calibration_samples=calibration_samples,
        batch_size=batch_size,
        data_dir=data_dir,
        sim_options=parse_options(sim_option, "--sim-option"),
        report_only=report_only,
        executor=o.executor(executor, ray_address, slice_size),
    )
    console = Console()
    if report_only:  # nothing to wait for: no progress display
        result = run_study(cfg, None)
    else:
        with ProgressDisplay(label=study_label, width=44) as progress:  # on stderr
            result = run_study(cfg, progress)
    if report_only:
        unfinished = [r["key"] for r in result.runs if not r.get("complete")]
        console.print(
            f"report only: {len(result.runs)} run files read from {output / 'runs'}"
            + (f" (unfinished: {', '.join(unfinished)})" if unfinished else "")
        )
    elif result.skipped:
        console.print(f"resumed: kept {len(result.skipped)} finished runs ({', '.join(result.skipped)})")
    _print_table2(console, result.runs)
    if not report_only:
        console.print(f"wall time {result.wall_seconds:.0f} s")
    for path in result.files:
        console.print(f"wrote {path}")
