"""Datasets: MNIST and Fashion-MNIST from their raw IDX files, custom ``.npz`` files, the embedded slice.

Images come back as float32 ``(N, C, H, W)`` in ``[0, 1]`` and labels as int64 ``(N,)``. The
pixels are *not* mean/std normalised: a rate-coded SNN turns each pixel into a firing rate, so
the ANN must be trained on the same non-negative ``[0, 1]`` intensities it will be converted with.

The IDX files are read with NumPy directly (about 0.1 s for MNIST's training set) rather than
through torchvision, which is only imported when the user asks for a download.
"""

from __future__ import annotations

import gzip
import os
import sys
from importlib import resources
from pathlib import Path

import numpy as np

from .errors import DataError, did_you_mean

DATASETS = ("mnist", "fashion-mnist")

#: Folder name under the data root, as torchvision lays it out (``<root>/<folder>/raw``).
_FOLDERS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
_DISPLAY = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}
_PREFIX = {"train": "train", "test": "t10k"}
_ALL_FILES = tuple(f"{p}-{kind}" for p in ("train", "t10k")
                   for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"))

_DEFAULT_SLICE = "mnist_test_1000.npz"

# IDX magic numbers: two zero bytes, the element type (0x08 = unsigned byte), the number of dims.
_IDX_IMAGES = 0x00000803
_IDX_LABELS = 0x00000801


def data_root(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder that holds ``MNIST/raw`` and ``FashionMNIST/raw``.

    Args:
        data_dir: explicit folder (``--data-dir``); wins over everything else.

    Returns:
        ``data_dir`` if given, else ``$SNNBALANCE_DATA`` if set, else the user's cache folder
        (``~/.cache/snnbalance/data`` on Linux, ``~/Library/Caches/snnbalance/data`` on macOS,
        ``%LOCALAPPDATA%\\snnbalance\\data`` on Windows).
    """
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get("SNNBALANCE_DATA")
    if env:
        return Path(env).expanduser()
    return _cache_dir() / "snnbalance" / "data"


def _cache_dir() -> Path:
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA")
        return Path(base) if base else Path.home() / "AppData" / "Local"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg) if xdg else Path.home() / ".cache"


def dataset_key(name: str | os.PathLike[str]) -> str:
    """The canonical name of a built-in dataset, or the path of an ``.npz`` file, checked without
    reading any data (so a misspelt name is refused before a model is imported).

    Raises:
        DataError: an unknown name (with the closest built-in name) or a missing ``.npz`` file.
    """
    if str(name).lower().endswith(".npz"):
        if not Path(name).is_file():
            raise DataError(f"dataset file {name} not found")
        return str(name)
    key = str(name).lower().replace("_", "-")
    if key == "fashionmnist":
        key = "fashion-mnist"
    if key not in DATASETS:
        raise DataError(f"unknown dataset {str(name)!r}: use one of {', '.join(DATASETS)} "
                        f"or a .npz file with arrays x and y{did_you_mean(key, DATASETS)}")
    return key


def load_dataset(name: str | os.PathLike[str], split: str = "test",
                 data_dir: str | os.PathLike[str] | None = None,
                 download: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Load a split of MNIST, Fashion-MNIST or a custom ``.npz`` file.

    Args:
        name: ``"mnist"``, ``"fashion-mnist"``, or a path ending in ``.npz`` holding ``x``
            (``(N, H, W)`` or ``(N, C, H, W)``; uint8 is divided by 255, floats are kept) and
            ``y`` (``(N,)`` integer labels). A custom file has a single split, so ``split`` is
            ignored for it.
        split: ``"test"`` or ``"train"``.
        data_dir: data root (see :func:`data_root`).
        download: fetch a missing MNIST/Fashion-MNIST with torchvision (needs internet).

    Returns:
        ``(x, y)``: float32 images ``(N, C, H, W)`` in the file's range (``[0, 1]`` for the
        built-in datasets) and int64 labels ``(N,)``.

    Raises:
        DataError: unknown name or split, missing files (the message says which files to put
            where), a failed download, or malformed files.
    """
    if str(name).lower().endswith(".npz"):
        return load_npz(name)
    key = dataset_key(name)
    if split not in _PREFIX:
        raise DataError(f"unknown split {split!r}: use 'train' or 'test'")
    raw = data_root(data_dir) / _FOLDERS[key] / "raw"
    images = _find(raw, f"{_PREFIX[split]}-images-idx3-ubyte")
    labels = _find(raw, f"{_PREFIX[split]}-labels-idx1-ubyte")
    if images is None or labels is None:
        failure = None
        if download:
            failure = _download(key, raw.parent.parent)
            images = _find(raw, f"{_PREFIX[split]}-images-idx3-ubyte")
            labels = _find(raw, f"{_PREFIX[split]}-labels-idx1-ubyte")
        if images is None or labels is None:
            raise DataError(_missing_message(key, raw, download, failure))
    x = _read_idx(images, _IDX_IMAGES)
    y = _read_idx(labels, _IDX_LABELS)
    if x.shape[0] != y.shape[0]:
        raise DataError(f"{images} holds {x.shape[0]} images but {labels} holds {y.shape[0]} labels")
    if y.size and y.max() > 9:
        raise DataError(f"{labels} holds label {int(y.max())}; expected 0-9")
    return _to_float(x)[:, None], y.astype(np.int64)


def _find(raw: Path, stem: str) -> Path | None:
    """The raw file or its ``.gz`` (as downloaded before torchvision decompresses it)."""
    for candidate in (raw / stem, raw / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _missing_message(key: str, raw: Path, download: bool, failure: str | None) -> str:
    what = _DISPLAY[key]
    files = f"{', '.join(_ALL_FILES)} (or their .gz) in {raw} (torchvision layout)"
    where = f"SNNBALANCE_DATA or --data-dir to the folder above {_FOLDERS[key]}"
    if download:
        return (f"{what} download failed ({failure or 'files still missing'}; offline?): "
                f"put {files}, or set {where}")
    return f"{what} not found: put {files}, set {where}, or pass --download when online"


def _download(key: str, root: Path) -> str | None:
    """Fetch both splits with torchvision; returns why it failed, or None."""
    try:
        import torchvision.datasets as tvd  # lazy: torchvision is slow to import

        cls = tvd.MNIST if key == "mnist" else tvd.FashionMNIST
        root.mkdir(parents=True, exist_ok=True)
        for train in (True, False):
            cls(str(root), train=train, download=True)
    except Exception as exc:  # noqa: BLE001 - any failure (offline, HTTP, disk) means "still missing"
        # One line: torchvision's messages can span several.
        return " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
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
        raise DataError(f"{path} is not an IDX file of {'images' if ndim == 3 else 'labels'} "
                        "(bad magic number); re-download it")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    count = int(np.prod(shape))
    if len(data) - header != count:
        raise DataError(f"{path} is truncated or padded: header says {shape} "
                        f"({count} bytes) but {len(data) - header} bytes follow")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _to_float(x: np.ndarray) -> np.ndarray:
    # Multiply by the reciprocal in float32: same values torchvision's ToTensor gives, half the memory.
    return x.astype(np.float32) * np.float32(1.0 / 255.0)


def load_npz(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Load and validate a custom dataset file (see :func:`load_dataset`).

    Raises:
        DataError: the file is missing, not a ``.npz``, or its arrays have the wrong keys,
            shapes, dtypes or values.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"dataset file {path} not found")
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in ("x", "y") if k not in f.files]
            if missing:
                raise DataError(f"{path} lacks array(s) {', '.join(missing)}: expected x (N,H,W) "
                                f"or (N,C,H,W) and y (N,); found {', '.join(f.files) or 'none'}")
            x, y = f["x"], f["y"]
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - zip/format errors, object arrays without pickle
        raise DataError(f"cannot read {path} as a .npz file: {exc}") from exc
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise DataError(f"{path}: x has shape {x.shape}; expected (N,H,W) or (N,C,H,W)")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise DataError(f"{path}: y has shape {y.shape}; expected ({x.shape[0]},) to match x")
    if x.shape[0] == 0:
        raise DataError(f"{path}: x holds no samples")
    if x.dtype == np.uint8:
        x = _to_float(x)
    elif np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32, copy=False)
        if not np.isfinite(x).all():
            raise DataError(f"{path}: x contains NaN or infinite values")
    else:
        raise DataError(f"{path}: x has dtype {x.dtype}; use uint8 (0-255) or float")
    if np.issubdtype(y.dtype, np.floating):
        # Labels saved as floats are fine if they are whole numbers (np.savetxt round trips).
        if not np.isfinite(y).all() or (y != np.round(y)).any():
            raise DataError(f"{path}: y holds non-integer labels")
    elif not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{path}: y has dtype {y.dtype}; use integer class labels")
    y = y.astype(np.int64)
    if (y < 0).any():
        raise DataError(f"{path}: y holds negative labels")
    return np.ascontiguousarray(x), y


def _embedded(filename: str, what: str) -> tuple[np.ndarray, np.ndarray]:
    asset = resources.files("snnbalance") / "assets" / filename
    try:
        with resources.as_file(asset) as path:
            return load_npz(path)
    except (FileNotFoundError, DataError) as exc:
        raise DataError(f"the embedded {what} snnbalance/assets/{filename} is missing "
                        f"or damaged; reinstall snnbalance ({exc})") from exc


def load_default_test_slice() -> tuple[np.ndarray, np.ndarray]:
    """The first 1,000 MNIST test images shipped with the package (no download needed).

    Returns:
        ``(x, y)``: float32 ``(1000, 1, 28, 28)`` in ``[0, 1]`` and int64 ``(1000,)``.

    Raises:
        DataError: the asset is missing from the installation.
    """
    return _embedded(_DEFAULT_SLICE, "MNIST test slice")


def load_default_train_slice() -> tuple[np.ndarray, np.ndarray]:
    """1,000 MNIST training images (seeded draw, indices in the file) for offline calibration.

    Returns:
        ``(x, y)``: float32 ``(1000, 1, 28, 28)`` in ``[0, 1]`` and int64 ``(1000,)``.
    """
    return _embedded("mnist_train_1000.npz", "MNIST calibration slice")


def calibration_slice(x: np.ndarray, n: int, seed: int) -> np.ndarray:
    """A seeded random subset of ``n`` images drawn without replacement.

    Data-based normalization takes its maximum activations from this subset, so the same
    seed must give the same images on every platform: NumPy's PCG64 ``default_rng`` guarantees
    that stream.

    Args:
        x: training images ``(N, ...)``.
        n: how many to draw, ``1 <= n <= N``.
        seed: random seed.

    Returns:
        ``x[idx]`` for ``n`` distinct indices, in draw order.

    Raises:
        DataError: ``n`` is not between 1 and ``N``.
    """
    total = len(x)
    if not 1 <= n <= total:
        raise DataError(f"calibration size {n} must be between 1 and the {total} images available")
    idx = np.random.default_rng(seed).choice(total, size=n, replace=False)
    return x[idx]
