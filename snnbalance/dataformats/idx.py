"""MNIST and Fashion-MNIST from their raw IDX files (``<root>/MNIST/raw/t10k-images-idx3-ubyte``).

The files are read with NumPy directly (about 0.1 s for MNIST's training set) rather than through
torchvision, which is only imported when the user asks for a download.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from ..errors import DataError
from . import download as fetch
from . import missing_message

#: Folder name under the data root, as torchvision lays it out (``<root>/<folder>/raw``).
FOLDERS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
DISPLAY = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}
PREFIX = {"train": "train", "test": "t10k"}
ALL_FILES = tuple(f"{p}-{kind}" for p in ("train", "t10k") for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"))

# IDX magic numbers: two zero bytes, the element type (0x08 = unsigned byte), the number of dims.
_IDX_IMAGES = 0x00000803
_IDX_LABELS = 0x00000801


def load(key: str, split: str, root: Path, download: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images ``(N, 1, 28, 28)`` and int64 labels of ``split`` of ``key`` under ``root``."""
    raw = root / FOLDERS[key] / "raw"
    stems = (f"{PREFIX[split]}-images-idx3-ubyte", f"{PREFIX[split]}-labels-idx1-ubyte")
    images, labels = (_find(raw, s) for s in stems)
    if images is None or labels is None:
        failure = None
        if download:
            failure = fetch("MNIST" if key == "mnist" else "FashionMNIST", raw.parent.parent)
            images, labels = (_find(raw, s) for s in stems)
        if images is None or labels is None:
            raise DataError(missing_message(DISPLAY[key], f"{', '.join(ALL_FILES)} (or their .gz)", raw, download, failure))
    x = _read_idx(images, _IDX_IMAGES)
    y = _read_idx(labels, _IDX_LABELS)
    if x.shape[0] != y.shape[0]:
        raise DataError(f"{images} holds {x.shape[0]} images but {labels} holds {y.shape[0]} labels")
    if y.size and y.max() > 9:
        raise DataError(f"{labels} holds label {int(y.max())}; expected 0-9")
    return x[:, None], y.astype(np.int64)


def _find(raw: Path, stem: str) -> Path | None:
    """The raw file or its ``.gz`` (as downloaded before torchvision decompresses it)."""
    for candidate in (raw / stem, raw / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """Parse an IDX file of unsigned bytes (images: 3 dims, labels: 1 dim)."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header or int.from_bytes(data[:4], "big") != magic:
        raise DataError(f"{path} is not an IDX file of {'images' if ndim == 3 else 'labels'} (bad magic number); re-download it")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    count = int(np.prod(shape))
    if len(data) - header != count:
        raise DataError(f"{path} is truncated or padded: header says {shape} ({count} bytes) but {len(data) - header} bytes follow")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)
