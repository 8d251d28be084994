"""CIFAR-10 and CIFAR-100 in torchvision's layout, read without running code from the files.

torchvision keeps the original "python version" archives unpacked::

    <root>/cifar-10-batches-py/data_batch_1 ... data_batch_5, test_batch
    <root>/cifar-100-python/train, test

Each file is a pickle of a dict with ``data`` (uint8 ``(N, 3072)``: the red, green and blue
32x32 planes of each image) and ``labels`` (CIFAR-100: ``fine_labels``). A pickle can name any
Python callable and unpickling calls it, so these are read with an unpickler that resolves only
the few NumPy names an array needs (:data:`ALLOWED`) and refuses everything else with one line.
"""

from __future__ import annotations

import importlib
import pickle
from pathlib import Path

import numpy as np

from ..errors import DataError
from . import download as fetch
from . import missing_message

#: dataset -> (folder, training files, test files, label key, classes, display name, torchvision class)
LAYOUT = {
    "cifar10": ("cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",), "labels", 10, "CIFAR-10", "CIFAR10"),
    "cifar100": ("cifar-100-python", ("train",), ("test",), "fine_labels", 100, "CIFAR-100", "CIFAR100"),
}
#: The globals a pickled NumPy array refers to (NumPy 1 and 2 spellings, pickle protocols 2-5).
ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "numpy.core.multiarray"),
    ("numpy._core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "numpy.core.multiarray"),
    ("numpy.core.numeric", "_frombuffer"): ("numpy._core.numeric", "numpy.core.numeric"),
    ("numpy._core.numeric", "_frombuffer"): ("numpy._core.numeric", "numpy.core.numeric"),
    ("numpy", "ndarray"): ("numpy",),
    ("numpy", "dtype"): ("numpy",),
    ("_codecs", "encode"): ("_codecs",),  # how Python 3 writes bytes at protocol 2
}


class _Refused(Exception):
    """A pickle named a global outside :data:`ALLOWED`."""


class _ArraysOnly(pickle.Unpickler):
    """Resolves only :data:`ALLOWED`; any other name stops the load before anything is called."""

    def find_class(self, module: str, name: str):
        homes = ALLOWED.get((module, name))
        if homes is None:
            raise _Refused(f"{module}.{name}")
        for home in homes:  # NumPy 2 moved numpy.core to numpy._core; take whichever exists
            try:
                return getattr(importlib.import_module(home), name)
            except (ImportError, AttributeError):
                continue
        raise _Refused(f"{module}.{name}")


def read_batch(path: Path) -> dict:
    """The dict in one batch file, with ``str`` keys.

    Raises:
        DataError: the file names anything but NumPy's array constructors, or is not a pickle.
    """
    try:
        with open(path, "rb") as f:
            # latin1: the original files were pickled by Python 2 (torchvision reads them so too)
            obj = _ArraysOnly(f, encoding="latin1").load()
    except _Refused as exc:
        raise DataError(
            f"{path} names {exc}: a CIFAR batch holds only arrays and lists, so it was not "
            "loaded (unpickling it would run code from the file)"
        ) from None
    except (pickle.UnpicklingError, OSError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise DataError(f"cannot read {path} as a CIFAR batch: {type(exc).__name__}: {exc}") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path} holds a {type(obj).__name__}, not a CIFAR batch dict")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def load(key: str, split: str, root: Path, download: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images ``(N, 3, 32, 32)`` and int64 labels of ``split`` of ``key`` under ``root``."""
    folder, train_files, test_files, label_key, classes, display, tv_class = LAYOUT[key]
    where = root / folder
    files = train_files if split == "train" else test_files
    missing = [f for f in files if not (where / f).is_file()]
    if missing:
        failure = fetch(tv_class, root) if download else None
        missing = [f for f in files if not (where / f).is_file()]
        if missing:
            names = ", ".join(train_files + test_files)
            raise DataError(missing_message(display, names, where, download, failure))
    xs, ys = [], []
    for name in files:
        path = where / name
        batch = read_batch(path)
        if "data" not in batch or label_key not in batch:
            raise DataError(f"{path} lacks {'data' if 'data' not in batch else label_key}: found {', '.join(batch) or 'nothing'}")
        x = np.asarray(batch["data"])
        y = np.asarray(batch[label_key])
        if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3 * 32 * 32 or y.shape != (x.shape[0],):
            raise DataError(f"{path}: data has shape {x.shape} ({x.dtype}) and {label_key} {y.shape}; expected uint8 (N, 3072) and (N,)")
        if y.size and (y.min() < 0 or y.max() >= classes):
            raise DataError(f"{path} holds label {int(y.max() if y.max() >= classes else y.min())}; expected 0-{classes - 1}")
        xs.append(x.reshape(-1, 3, 32, 32))
        ys.append(y.astype(np.int64))
    return np.concatenate(xs), np.concatenate(ys)
