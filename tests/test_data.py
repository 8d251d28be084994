"""Dataset loading: raw IDX files, custom .npz files, the embedded slice, calibration sampling."""

from __future__ import annotations

import gzip
import os
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from snnbalance.data import (DATASETS, calibration_slice, data_root, load_dataset,
                             load_default_test_slice)
from snnbalance.errors import DataError, SnnBalanceError

DATA = os.environ.get("SNNBALANCE_DATA")
needs_data = pytest.mark.skipif(not DATA or not Path(DATA).is_dir(),
                                reason="set SNNBALANCE_DATA to the folder holding MNIST/ and FashionMNIST/")

# Published MNIST test-set label counts (digits 0-9).
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_data_root_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("SNNBALANCE_DATA", str(tmp_path / "env"))
    assert data_root(tmp_path / "arg") == tmp_path / "arg"
    assert data_root() == tmp_path / "env"
    monkeypatch.delenv("SNNBALANCE_DATA")
    assert data_root().parts[-2:] == ("snnbalance", "data")


@needs_data
def test_mnist_test_split():
    x, y = load_dataset("mnist", "test")
    assert x.shape == (10000, 1, 28, 28) and x.dtype == np.float32
    assert y.shape == (10000,) and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    assert np.bincount(y).tolist() == MNIST_TEST_COUNTS


@needs_data
def test_mnist_train_split_mean():
    x, y = load_dataset("mnist", "train")
    assert x.shape == (60000, 1, 28, 28) and len(y) == 60000
    assert abs(float(x.mean()) - 0.1307) < 1e-3


@needs_data
def test_fashion_mnist_balanced():
    for split, per_class in (("train", 6000), ("test", 1000)):
        x, y = load_dataset("fashion-mnist", split)
        assert x.shape[1:] == (1, 28, 28) and 0.0 <= x.min() and x.max() <= 1.0
        assert np.bincount(y).tolist() == [per_class] * 10


@needs_data
def test_gz_files_and_explicit_dir(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        src = Path(DATA) / "MNIST" / "raw" / name
        with open(src, "rb") as f, gzip.open(raw / f"{name}.gz", "wb", compresslevel=1) as dst:
            shutil.copyfileobj(f, dst)
    x, y = load_dataset("mnist", "test", data_dir=tmp_path)
    x_ref, y_ref = load_dataset("mnist", "test")
    assert np.array_equal(x, x_ref) and np.array_equal(y, y_ref)


def test_missing_data_names_folder_and_files(tmp_path):
    with pytest.raises(DataError) as err:
        load_dataset("fashion-mnist", "train", data_dir=tmp_path)
    msg = str(err.value)
    assert "\n" not in msg
    assert str(tmp_path / "FashionMNIST" / "raw") in msg
    assert "train-images-idx3-ubyte" in msg and "t10k-labels-idx1-ubyte" in msg
    assert "SNNBALANCE_DATA" in msg and "--download" in msg
    assert isinstance(err.value, SnnBalanceError)  # the CLI turns it into one line, exit 2


def _fake_torchvision(monkeypatch, mnist_cls):
    datasets = types.ModuleType("torchvision.datasets")
    datasets.MNIST = datasets.FashionMNIST = mnist_cls
    tv = types.ModuleType("torchvision")
    tv.datasets = datasets
    monkeypatch.setitem(sys.modules, "torchvision", tv)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", datasets)


def test_download_failure_is_one_line(tmp_path, monkeypatch):
    class Offline:
        def __init__(self, root, train=True, download=False):
            raise OSError("Temporary failure in name resolution")

    _fake_torchvision(monkeypatch, Offline)
    with pytest.raises(DataError, match="download failed") as err:
        load_dataset("mnist", "test", data_dir=tmp_path, download=True)
    assert "\n" not in str(err.value) and str(tmp_path / "MNIST" / "raw") in str(err.value)


@needs_data
def test_download_then_read(tmp_path, monkeypatch):
    calls = []

    class Fetch:  # stands in for torchvision: leaves the raw files where torchvision would
        def __init__(self, root, train=True, download=False):
            calls.append((root, train, download))
            raw = Path(root) / "MNIST" / "raw"
            raw.mkdir(parents=True, exist_ok=True)
            prefix = "train" if train else "t10k"
            for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
                shutil.copy(Path(DATA) / "MNIST" / "raw" / f"{prefix}-{kind}", raw)

    _fake_torchvision(monkeypatch, Fetch)
    x, y = load_dataset("mnist", "test", data_dir=tmp_path, download=True)
    assert x.shape == (10000, 1, 28, 28) and calls[0] == (str(tmp_path), True, True)


def test_malformed_idx(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + (2).to_bytes(4, "big")
                                                 + (28).to_bytes(4, "big") * 2 + b"\x00" * 100)
    (raw / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01" + (2).to_bytes(4, "big") + b"\x01\x02")
    with pytest.raises(DataError, match="truncated"):
        load_dataset("mnist", "test", data_dir=tmp_path)
    (raw / "t10k-images-idx3-ubyte").write_bytes(b"not an idx file at all")
    with pytest.raises(DataError, match="magic"):
        load_dataset("mnist", "test", data_dir=tmp_path)


def test_unknown_name_and_split():
    with pytest.raises(DataError, match="unknown dataset"):
        load_dataset("cifar10")
    with pytest.raises(DataError, match="unknown split"):
        load_dataset("mnist", "valid")
    assert DATASETS == ("mnist", "fashion-mnist")


def test_npz_uint8_nhw(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(7, 10, 12), dtype=np.uint8)
    y = np.arange(7) % 3
    np.savez(tmp_path / "d.npz", x=x, y=y)
    xs, ys = load_dataset(str(tmp_path / "d.npz"))
    assert xs.shape == (7, 1, 10, 12) and xs.dtype == np.float32
    assert np.allclose(xs[:, 0] * 255, x) and ys.dtype == np.int64 and ys.tolist() == y.tolist()


def test_npz_float_nchw_kept(tmp_path):
    x = np.linspace(0, 2, 2 * 3 * 4 * 4, dtype=np.float64).reshape(2, 3, 4, 4)
    np.savez_compressed(tmp_path / "d.npz", x=x, y=np.array([1.0, 0.0]))
    xs, ys = load_dataset(tmp_path / "d.npz", split="train")  # a Path works too; split is ignored
    assert xs.shape == (2, 3, 4, 4) and xs.dtype == np.float32
    assert np.allclose(xs, x) and ys.tolist() == [1, 0]


@pytest.mark.parametrize("arrays, match", [
    ({"x": np.zeros((3, 4, 4), np.uint8)}, "lacks array"),
    ({"x": np.zeros((3, 4), np.uint8), "y": np.zeros(3, int)}, "shape"),
    ({"x": np.zeros((3, 4, 4), np.uint8), "y": np.zeros(2, int)}, "to match x"),
    ({"x": np.zeros((3, 4, 4), np.int32), "y": np.zeros(3, int)}, "dtype"),
    ({"x": np.full((3, 4, 4), np.nan), "y": np.zeros(3, int)}, "NaN"),
    ({"x": np.zeros((3, 4, 4), np.uint8), "y": np.array([0.5, 1, 2])}, "non-integer"),
    ({"x": np.zeros((3, 4, 4), np.uint8), "y": np.array([0, -1, 2])}, "negative"),
])
def test_bad_npz(tmp_path, arrays, match):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=match):
        load_dataset(str(tmp_path / "bad.npz"))


def test_npz_not_a_zip_or_missing(tmp_path):
    (tmp_path / "junk.npz").write_text("hello")
    with pytest.raises(DataError, match="cannot read"):
        load_dataset(str(tmp_path / "junk.npz"))
    with pytest.raises(DataError, match="not found"):
        load_dataset(str(tmp_path / "absent.npz"))


def test_embedded_slice():
    x, y = load_default_test_slice()
    assert x.shape == (1000, 1, 28, 28) and x.dtype == np.float32 and y.dtype == np.int64
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert np.bincount(y, minlength=10).min() > 50


@needs_data
def test_embedded_slice_is_first_1000_mnist_test_images():
    x, y = load_default_test_slice()
    x_ref, y_ref = load_dataset("mnist", "test")
    assert np.array_equal(y, y_ref[:1000])
    assert np.array_equal(x, x_ref[:1000])


def test_calibration_slice_seeded():
    x = np.arange(500, dtype=np.float32).reshape(500, 1, 1, 1)
    a = calibration_slice(x, 100, seed=1)
    b = calibration_slice(x, 100, seed=1)
    c = calibration_slice(x, 100, seed=2)
    assert a.shape == (100, 1, 1, 1)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert len(np.unique(a)) == 100  # without replacement
    assert len(np.unique(calibration_slice(x, 500, seed=0))) == 500
    for bad in (0, 501):
        with pytest.raises(DataError):
            calibration_slice(x, bad, seed=0)
