"""Datasets: built-in names, image folders, ``.npz`` files and plugin datasets, read offline.

Built-ins (records of the ``snnbalance_datasets`` hook, like a plugin's): ``mnist``,
``fashion-mnist`` (raw IDX files), ``cifar10``, ``cifar100`` (torchvision's pickled batches,
read without running code); all under one data root (:func:`data_root`). A path names an ``.npz``
file (:func:`load_npz`) or an image folder (:mod:`snnbalance.dataformats.images`).

Images come back as float32 ``(N, C, H, W)`` (``.npz`` and plugins may give ``(N, D)``) in
``[0, 1]`` and labels as int64 ``(N,)``. The pixels are *not* mean/std normalised: a rate-coded
SNN turns each pixel into a firing rate, so the ANN must be trained on the same non-negative
``[0, 1]`` intensities it will be converted with.
"""

from __future__ import annotations

import functools
import os
import zipfile
from importlib import resources
from pathlib import Path

import numpy as np

from .dataformats import cifar, idx, images
from .dataformats import to_float as _to_float
from .errors import DataError, did_you_mean
from .hookspecs import hookimpl
from .paths import cache_dir
from .records import Dataset

DATASETS = ("mnist", "fashion-mnist", "cifar10", "cifar100")
SPLITS = ("train", "test")

_DEFAULT_SLICE = "mnist_test_1000.npz"


def data_root(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder that holds ``MNIST/raw``, ``FashionMNIST/raw``, ``cifar-10-batches-py``, ...

    Args:
        data_dir: explicit folder (``--data-dir``); wins over everything else.

    Returns:
        ``data_dir`` if given, else ``$SNNBALANCE_DATA`` if set, else the user's cache folder
        (:func:`snnbalance.paths.cache_dir`: ``~/.cache/snnbalance/data`` on Linux,
        ``~/Library/Caches/snnbalance/data`` on macOS, ``%LOCALAPPDATA%\\snnbalance\\data`` on Windows).
    """
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get("SNNBALANCE_DATA")
    if env:
        return Path(env).expanduser()
    return cache_dir("data")


# -- the built-in datasets, provided through the same hook as a plugin's ----------------------
def _idx_load(key: str, split: str, root: Path, shape=None, download: bool = False):
    return idx.load(key, split, root, download)


def _cifar_load(key: str, split: str, root: Path, shape=None, download: bool = False):
    return cifar.load(key, split, root, download)


@hookimpl
def snnbalance_datasets():
    yield Dataset(
        "mnist", "MNIST digits, 1x28x28, raw IDX files in <data root>/MNIST/raw", functools.partial(_idx_load, "mnist"), (1, 28, 28), 10
    )
    yield Dataset(
        "fashion-mnist",
        "Fashion-MNIST garments, 1x28x28, in <data root>/FashionMNIST/raw",
        functools.partial(_idx_load, "fashion-mnist"),
        (1, 28, 28),
        10,
    )
    yield Dataset(
        "cifar10",
        "CIFAR-10, 3x32x32, torchvision's <data root>/cifar-10-batches-py",
        functools.partial(_cifar_load, "cifar10"),
        (3, 32, 32),
        10,
    )
    yield Dataset(
        "cifar100",
        "CIFAR-100 (fine labels), 3x32x32, torchvision's <data root>/cifar-100-python",
        functools.partial(_cifar_load, "cifar100"),
        (3, 32, 32),
        100,
    )


def _record(key: str) -> Dataset | None:
    from .plugins import registry  # lazy: the registry loads this module as a plugin

    return registry().dataset(key)


def _known(key: str) -> Dataset:
    """The record of ``key``, a dataset name :func:`dataset_key` accepted."""
    rec = _record(key)
    if rec is None:  # pragma: no cover - dataset_key refuses unknown names first
        raise DataError(f"unknown dataset {key!r}")
    return rec


def _is_path(name: str | os.PathLike[str]) -> bool:
    """A file or folder rather than a dataset name (a name wins over a same-named folder here)."""
    text = str(name)
    if text.lower().endswith(".npz") or os.sep in text or "/" in text:
        return True
    return Path(text).is_dir() and _record(text) is None


def dataset_key(name: str | os.PathLike[str]) -> str:
    """The canonical name of a dataset (built-in or plugin), or the path of an ``.npz`` file or an
    image folder, checked without reading any data (so a misspelt name is refused before a model
    is imported).

    Raises:
        DataError: an unknown name (with the closest name) or a missing file or folder.
    """
    if _is_path(name):
        path = Path(name).expanduser()
        if str(name).lower().endswith(".npz"):
            if not path.is_file():
                raise DataError(f"dataset file {name} not found")
        elif not path.is_dir():
            raise DataError(f"dataset folder {name} not found (an image folder needs one subfolder per class)")
        return str(name)
    rec = _record(str(name))
    if rec is None:
        from .plugins import registry

        known = list(registry().datasets)
        raise DataError(
            f"unknown dataset {str(name)!r}: use one of {', '.join(known)}, an image folder "
            f"or a .npz file with arrays x and y{did_you_mean(str(name).lower(), known)}"
        )
    return rec.name


def dataset_classes(name: str | os.PathLike[str]) -> int | None:
    """The number of classes of a named dataset when it is fixed (None for files and folders)."""
    if _is_path(name):
        return None
    rec = _record(str(name))
    return rec.classes if rec is not None else None


def sample_shape(name: str | os.PathLike[str], data_dir: str | os.PathLike[str] | None = None) -> tuple[int, ...]:
    """The per-sample shape of a dataset's test split, read cheaply: from the dataset's record,
    an ``.npz`` file's array header, or an image folder's first image header (by the image-folder
    rule, :mod:`snnbalance.dataformats.images`); only a plugin dataset without a fixed shape is
    loaded to find it.

    Raises:
        DataError: as :func:`load_dataset`.
    """
    key = dataset_key(name)
    if _is_path(key):
        path = Path(key).expanduser()
        if key.lower().endswith(".npz"):
            return npz_sample_shape(path)
        return images.sample_shape(path)
    rec = _known(key)
    if rec.shape is not None:
        return tuple(rec.shape)
    return tuple(load_dataset(key, "test", data_dir)[0].shape[1:])


def load_dataset(
    name: str | os.PathLike[str],
    split: str = "test",
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = False,
    shape: tuple[int, ...] | None = None,
    notes: list[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Load a split of a built-in or plugin dataset, an image folder or a custom ``.npz`` file.

    Args:
        name: ``"mnist"``, ``"fashion-mnist"``, ``"cifar10"``, ``"cifar100"``, a plugin
            dataset's name, a folder of images (one subfolder per class), or a path ending in
            ``.npz`` holding ``x`` (``(N, C, H, W)``, ``(N, H, W)`` or ``(N, D)``; uint8 is
            divided by 255, floats are kept) and ``y`` (``(N,)`` integer labels). A custom file
            has a single split, so ``split`` is ignored for it.
        split: ``"test"`` or ``"train"``.
        data_dir: data root (see :func:`data_root`).
        download: fetch a missing built-in dataset with torchvision (needs internet).
        shape: the per-sample shape the model takes, when known: image folders are scaled and
            cropped to it; other datasets ignore it.
        notes: receives one sentence per assumption made (an image folder without splits).

    Returns:
        ``(x, y)``: float32 images in the file's range (``[0, 1]`` for the built-in datasets and
        image folders) and int64 labels ``(N,)``.

    Raises:
        DataError: unknown name or split, missing files (the message says which files to put
            where), a failed download, or malformed files.
    """
    key = dataset_key(name)
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}: use 'train' or 'test'")
    if key.lower().endswith(".npz"):
        return load_npz(key)
    if _is_path(key):
        x, y = images.load(Path(key).expanduser(), split, shape, notes)
        return _to_float(x), y
    rec = _known(key)
    extra = {"download": True} if download and key in DATASETS else {}
    x, y = rec.load(split, data_root(data_dir), shape, **extra)
    return check_arrays(x, y, f"dataset {key!r} ({split})")


def check_arrays(x, y, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Validated float32 images (uint8 divided by 255) and int64 labels; ``where`` names the source.

    Raises:
        DataError: wrong shapes, dtypes or values, on one line.
    """
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim not in (2, 4):
        raise DataError(f"{where}: x has shape {x.shape}; expected (N,C,H,W), (N,H,W) or (N,D)")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise DataError(f"{where}: y has shape {y.shape}; expected ({x.shape[0]},) to match x")
    if x.shape[0] == 0:
        raise DataError(f"{where}: x holds no samples")
    if x.dtype == np.uint8:
        x = _to_float(x)
    elif np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32, copy=False)
        if not np.isfinite(x).all():
            raise DataError(f"{where}: x contains NaN or infinite values")
    else:
        raise DataError(f"{where}: x has dtype {x.dtype}; use uint8 (0-255) or float")
    if np.issubdtype(y.dtype, np.floating):
        # Labels saved as floats are fine if they are whole numbers (np.savetxt round trips).
        if not np.isfinite(y).all() or (y != np.round(y)).any():
            raise DataError(f"{where}: y holds non-integer labels")
    elif not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{where}: y has dtype {y.dtype}; use integer class labels")
    y = y.astype(np.int64)
    if (y < 0).any():
        raise DataError(f"{where}: y holds negative labels")
    return np.ascontiguousarray(x), y


def npz_sample_shape(path: Path) -> tuple[int, ...]:
    """The per-sample shape of ``x`` in an ``.npz`` file, from the array's header (no data read)."""
    try:
        with zipfile.ZipFile(path) as z, z.open("x.npy") as f:
            version = np.lib.format.read_magic(f)
            shape = (np.lib.format.read_array_header_1_0(f) if version == (1, 0) else np.lib.format.read_array_header_2_0(f))[0]
    except Exception:  # noqa: BLE001 - not a zip, no x, odd header: load it and say what is wrong
        shape = load_npz(path)[0].shape
    return (1, *shape[1:]) if len(shape) == 3 else tuple(shape[1:])


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
                raise DataError(
                    f"{path} lacks array(s) {', '.join(missing)}: expected x (N,C,H,W), "
                    f"(N,H,W) or (N,D) and y (N,); found {', '.join(f.files) or 'none'}"
                )
            x, y = f["x"], f["y"]
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - zip/format errors, object arrays without pickle
        raise DataError(f"cannot read {path} as a .npz file: {exc}") from exc
    return check_arrays(x, y, str(path))


def _embedded(filename: str, what: str) -> tuple[np.ndarray, np.ndarray]:
    asset = resources.files("snnbalance") / "assets" / filename
    try:
        with resources.as_file(asset) as path:
            return load_npz(path)
    except (FileNotFoundError, DataError) as exc:
        raise DataError(f"the embedded {what} snnbalance/assets/{filename} is missing or damaged; reinstall snnbalance ({exc})") from exc


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
