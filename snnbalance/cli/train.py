"""``snnbalance train``: train the paper's MLP or CNN, a VGG, a ResNet (or a ``module:Class``) and save its
state_dict with a JSON record that lets ``convert`` rebuild it without ``--arch``."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Callable, Optional

import typer
from rich.console import Console

from ..progress import ProgressEvent
from .progress import Label, ProgressDisplay


def _train_label(ev: ProgressEvent) -> Label:
    """One row over all batches, with the epoch's loss and accuracy."""
    info = ev.info
    return Label(
        "train",
        f"epoch {info.get('epoch', '?')}/{info.get('epochs', '?')}",
        f"loss {info.get('loss', float('nan')):.4f}  acc {100 * info.get('accuracy', 0):.2f} %",
    )


def _train_progress(display: ProgressDisplay) -> Callable[[ProgressEvent], None]:
    """``display``, plus a printed line per epoch with the test accuracy (so the history stays on screen)."""

    def progress(ev: ProgressEvent) -> None:
        display(ev)
        info = ev.info
        if "test_accuracy" in info:
            display.print(
                f"epoch {info['epoch']:>3}: loss {info['loss']:.4f}, training batches "
                f"{100 * info['accuracy']:.2f} %, test {100 * info['test_accuracy']:.2f} %"
            )

    return progress


def _default_output(dataset: str, arch: str) -> Path:
    from ..models import is_arch_spec

    # "pkg.mod:MyNet" -> "mynet", "vgg:width=16" -> "vgg", "data/flowers" -> "flowers": keep the
    # file name tidy and free of path separators.
    arch_name = (arch.partition(":")[0] if is_arch_spec(arch) else arch.rpartition(":")[2]).lower() or "model"
    data_name = Path(dataset.rstrip("/\\")).stem or "data"
    return Path(re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{data_name}_{arch_name}") + ".pt")


def train_command(
    arch: str = typer.Option(
        ...,
        "--arch",
        help="mlp, cnn (the paper's networks), vgg (batch norm, max pooling, "
        "biases), resnet (batch norm, residual adds), or "
        "package.module:Class.",
    ),
    dataset: str = typer.Option(
        "mnist", "--dataset", help="mnist, fashion-mnist, cifar10, cifar100, an image folder, or an .npz file with x and y."
    ),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Passes over the training set (default: the arch's recipe)."),
    seed: int = typer.Option(0, "--seed", help="Seed of weights, dropout, batch order and augmentation."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Samples per step (default: the arch's recipe)."),
    lr: Optional[float] = typer.Option(
        None, "--lr", help="Adam's initial learning rate, decayed to 0 on a cosine (default: the arch's recipe)."
    ),
    shift: Optional[int] = typer.Option(
        None, "--shift", min=0, help="Largest random shift in pixels; 0 disables (default: 2 on MNIST, 0 on Fashion-MNIST)."
    ),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Dataset root (default: $SNNBALANCE_DATA or the user cache)."),
    download: bool = typer.Option(False, "--download", help="Download a missing dataset (needs internet)."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu or cuda (default: cuda if available)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Use only the first N training and test images (quick trials)."),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", help="State_dict file (default: ./<dataset>_<arch>.pt); a JSON record of the run is written next to it."
    ),
) -> None:
    """Train a ReLU network for conversion and save its state_dict.

    vgg and resnet take their input channels, image size and classes from the dataset. The JSON
    record written next to the model names the built-in arch, so `snnbalance convert MODEL.pt
    --dataset DATASET` rebuilds it without --arch; the command is printed at the end.
    """
    from ..train import save_model, train, write_provenance

    console, err = Console(), Console(stderr=True, highlight=False)  # results to stdout, progress to stderr
    out = output if output is not None else _default_output(dataset, arch)
    with ProgressDisplay(err, label=_train_label, width=14) as bars:
        result = train(
            arch,
            dataset,
            epochs=epochs,
            seed=seed,
            batch_size=batch_size,
            lr=lr,
            shift=shift,
            data_dir=data_dir,
            download=download,
            limit=limit,
            device=device,
            progress=_train_progress(bars),
        )
    if result.cancelled:
        err.print(f"[yellow]cancelled after {result.epochs} epoch(s); saving the model so far[/]")
    plural = "" if result.epochs == 1 else "s"
    console.print(
        f"train accuracy {100 * result.train_accuracy:.2f} %, "
        f"test accuracy {100 * result.test_accuracy:.2f} % "
        f"({result.epochs} epoch{plural}, {result.seconds:.0f} s)",
        highlight=False,
    )
    command = _reproducing_command(arch, dataset, seed, limit, result.config)
    path = save_model(result.model, out)
    record_path = path.with_suffix(".json")
    if record_path == path:  # the user named the model *.json; do not overwrite it
        record_path = path.with_name(path.name + ".record.json")
    record = write_provenance(result, record_path, shlex.join(command))
    console.print(f"saved {path} (record: {record})", highlight=False)
    nxt = _convert_command(path, record, arch, dataset, data_dir)
    console.print(f"next: {shlex.join(nxt)}", highlight=False, soft_wrap=True)


def _reproducing_command(arch: str, dataset: str, seed: int, limit: int | None, cfg: dict) -> list[str]:
    """The command as it would reproduce this run, every recipe default spelled out (``cfg`` is
    the run's :attr:`~snnbalance.train.TrainResult.config`)."""
    command = [
        "snnbalance",
        "train",
        "--arch",
        arch,
        "--dataset",
        dataset,
        "--seed",
        str(seed),
        "--epochs",
        str(cfg["epochs"]),
        "--batch-size",
        str(cfg["batch_size"]),
        "--lr",
        f"{cfg['lr']:g}",
        "--shift",
        str(cfg["shift"]),
        "--device",
        cfg["device"],
    ]
    if limit is not None:
        command += ["--limit", str(limit)]
    return command


def _convert_command(path: Path, record: Path, arch: str, dataset: str, data_dir: str | None) -> list[str]:
    """The ``snnbalance convert`` command for the saved model (``--arch`` only where the record
    cannot name it)."""
    nxt = ["snnbalance", "convert", str(path), "--dataset", dataset]
    if not record_has_arch(record):
        nxt[3:3] = ["--arch", arch]
    if data_dir is not None:
        nxt += ["--data-dir", data_dir]
    return nxt


def record_has_arch(record: Path) -> bool:
    """Whether ``convert`` can read the arch from the record (a built-in arch spec)."""
    import json

    return bool(json.loads(record.read_text()).get("arch"))
