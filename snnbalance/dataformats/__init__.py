"""Readers of the on-disk dataset formats, one module each; :mod:`snnbalance.data` chooses among them.

- :mod:`.idx`: MNIST and Fashion-MNIST (raw IDX files, torchvision's layout).
- :mod:`.cifar`: CIFAR-10 and CIFAR-100 (torchvision's pickled batches, read without running code).
- :mod:`.images`: image folders (one subfolder per class), read with Pillow.

Every reader returns images as uint8 or float32 ``(N, C, H, W)`` and labels as int64 ``(N,)``,
and raises :class:`~snnbalance.errors.DataError` with one line naming the folder and files when
something is missing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def to_float(x: np.ndarray) -> np.ndarray:
    """uint8 pixels as float32 in [0, 1]."""
    # Multiply by the reciprocal in float32: same values torchvision's ToTensor gives, half the memory.
    return x.astype(np.float32) * np.float32(1.0 / 255.0)


def download(class_name: str, root: Path) -> str | None:
    """Fetch both splits of ``torchvision.datasets.<class_name>`` into ``root``; returns why it
    failed, or None."""
    try:
        import torchvision.datasets as tvd  # lazy: torchvision is slow to import

        cls = getattr(tvd, class_name)
        root.mkdir(parents=True, exist_ok=True)
        for train in (True, False):
            cls(str(root), train=train, download=True)
    except Exception as exc:  # noqa: BLE001 - any failure (offline, HTTP, disk) means "still missing"
        # One line: torchvision's messages can span several.
        return " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
    return None


def missing_message(what: str, files: str, folder: Path, download_asked: bool, failure: str | None) -> str:
    """The one line for a built-in dataset that is not on disk: which files, where, and the switches."""
    put = f"put {files} in {folder} (torchvision layout)"
    top = folder.parent if folder.name == "raw" else folder  # MNIST/raw: the root holds MNIST
    where = f"SNNBALANCE_DATA or --data-dir to the folder above {top.name}"
    if download_asked:
        return f"{what} download failed ({failure or 'files still missing'}; offline?): {put}, or set {where}"
    return f"{what} not found: {put}, set {where}, or pass --download when online"
