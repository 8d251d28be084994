"""Dataset loading: raw IDX files, custom .npz files, the embedded slice, calibration sampling."""

from __future__ import annotations

import gzip
import json
import os
import pickle
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from snnbalance.data import (
    DATASETS,
    calibration_slice,
    data_root,
    dataset_classes,
    dataset_key,
    load_dataset,
    load_default_test_slice,
    sample_shape,
)
from snnbalance.errors import DataError, SnnBalanceError

DATA = os.environ.get("SNNBALANCE_DATA")
needs_data = pytest.mark.skipif(
    not DATA or not Path(DATA).is_dir(), reason="set SNNBALANCE_DATA to the folder holding MNIST/ and FashionMNIST/"
)

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
    (raw / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + (2).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + b"\x00" * 100)
    (raw / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01" + (2).to_bytes(4, "big") + b"\x01\x02")
    with pytest.raises(DataError, match="truncated"):
        load_dataset("mnist", "test", data_dir=tmp_path)
    (raw / "t10k-images-idx3-ubyte").write_bytes(b"not an idx file at all")
    with pytest.raises(DataError, match="magic"):
        load_dataset("mnist", "test", data_dir=tmp_path)


def test_unknown_name_and_split():
    with pytest.raises(DataError, match="unknown dataset 'cifar-1O'.*cifar10.*image folder.*did you mean 'cifar10'"):
        load_dataset("cifar-1O")
    with pytest.raises(DataError, match="unknown split"):
        load_dataset("mnist", "valid")
    assert DATASETS == ("mnist", "fashion-mnist", "cifar10", "cifar100")
    assert [dataset_key(n) for n in ("MNIST", "Fashion_MNIST", "fashionmnist", "CIFAR-10", "cifar_100")] == [
        "mnist",
        "fashion-mnist",
        "fashion-mnist",
        "cifar10",
        "cifar100",
    ]


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


@pytest.mark.parametrize(
    "arrays, match",
    [
        ({"x": np.zeros((3, 4, 4), np.uint8)}, "lacks array"),
        ({"x": np.zeros(3, np.uint8), "y": np.zeros(3, int)}, "shape"),
        ({"x": np.zeros((3, 1, 1, 4, 4), np.uint8), "y": np.zeros(3, int)}, "shape"),
        ({"x": np.zeros((3, 4, 4), np.uint8), "y": np.zeros(2, int)}, "to match x"),
        ({"x": np.zeros((3, 4, 4), np.int32), "y": np.zeros(3, int)}, "dtype"),
        ({"x": np.full((3, 4, 4), np.nan), "y": np.zeros(3, int)}, "NaN"),
        ({"x": np.zeros((3, 4, 4), np.uint8), "y": np.array([0.5, 1, 2])}, "non-integer"),
        ({"x": np.zeros((3, 4, 4), np.uint8), "y": np.array([0, -1, 2])}, "negative"),
    ],
)
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


# -- .npz of any shape, CIFAR in torchvision's layout, image folders --------------------------
@pytest.mark.parametrize("shape, per_sample", [((5, 3, 4, 6), (3, 4, 6)), ((5, 4, 6), (1, 4, 6)), ((5, 24), (24,))])
def test_npz_any_shape_and_its_header_shape(tmp_path, shape, per_sample):
    x = np.arange(np.prod(shape), dtype=np.uint8).reshape(shape)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(5))
    xs, ys = load_dataset(tmp_path / "d.npz")
    assert xs.shape == (5, *per_sample) and np.array_equal(np.round(xs.reshape(x.shape) * 255).astype(np.uint8), x)
    assert sample_shape(tmp_path / "d.npz") == per_sample  # read from the header
    assert dataset_classes(tmp_path / "d.npz") is None


def write_cifar(root: Path, key: str = "cifar10", n: int = 20, protocol: int = pickle.DEFAULT_PROTOCOL) -> dict:
    """A fake CIFAR in torchvision's layout, pickled like the originals (bytes keys, uint8 arrays)."""
    folder, names, label_key, classes = (
        ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"], b"labels", 10)
        if key == "cifar10"
        else ("cifar-100-python", ["train", "test"], b"fine_labels", 100)
    )
    (root / folder).mkdir(parents=True)
    rng = np.random.default_rng(3)
    written = {}
    for name in names:
        batch = {
            b"batch_label": b"fake",
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            label_key: rng.integers(0, classes, n).tolist(),
            b"filenames": [b"img.png"] * n,
        }
        if key == "cifar100":
            batch[b"coarse_labels"] = [0] * n
        with open(root / folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=protocol)
        written[name] = batch
    return written


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])  # 2: bytes via _codecs; 5: out-of-band
def test_cifar10_in_torchvision_layout(tmp_path, protocol):
    written = write_cifar(tmp_path, protocol=protocol)
    x, y = load_dataset("cifar10", "train", data_dir=tmp_path)
    assert x.shape == (100, 3, 32, 32) and x.dtype == np.float32 and y.dtype == np.int64
    first = written["data_batch_1"]
    # row-major R, G, B planes of 32x32: pixel (row 1, col 2) of the green plane is byte 1024 + 34
    assert round(float(x[0, 1, 1, 2]) * 255) == first[b"data"][0, 1024 + 34]
    assert np.array_equal(np.round(x[:20] * 255).astype(np.uint8).reshape(20, 3072), first[b"data"])
    assert y.tolist() == sum((written[f"data_batch_{i}"][b"labels"] for i in range(1, 6)), [])
    xt, yt = load_dataset("cifar10", "test", data_dir=tmp_path)
    assert xt.shape == (20, 3, 32, 32) and yt.tolist() == written["test_batch"][b"labels"]
    assert sample_shape("cifar10") == (3, 32, 32) and dataset_classes("cifar10") == 10


def test_cifar100_fine_labels(tmp_path):
    written = write_cifar(tmp_path, "cifar100", n=12)
    x, y = load_dataset("cifar100", "test", data_dir=tmp_path)
    assert x.shape == (12, 3, 32, 32) and y.tolist() == written["test"][b"fine_labels"]
    assert dataset_classes("cifar100") == 100


def test_cifar_missing_is_one_line_naming_folder_and_files(tmp_path):
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", "test", data_dir=tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and str(tmp_path / "cifar-10-batches-py") in msg
    assert "data_batch_1" in msg and "data_batch_5" in msg and "test_batch" in msg and "SNNBALANCE_DATA" in msg


def test_cifar_download_goes_through_torchvision_into_the_data_root(tmp_path, monkeypatch):
    calls = []

    class Fetch:  # stands in for torchvision.datasets.CIFAR10: writes the batches where it would
        def __init__(self, root, train=True, download=False):
            calls.append((root, train, download))
            if not (Path(root) / "cifar-10-batches-py").exists():
                write_cifar(Path(root), n=3)

    datasets = types.ModuleType("torchvision.datasets")
    datasets.CIFAR10 = Fetch
    monkeypatch.setitem(sys.modules, "torchvision", types.ModuleType("torchvision"))
    monkeypatch.setitem(sys.modules, "torchvision.datasets", datasets)
    sys.modules["torchvision"].datasets = datasets
    x, _ = load_dataset("cifar10", "test", data_dir=tmp_path, download=True)
    assert x.shape == (3, 3, 32, 32) and calls == [(str(tmp_path), True, True), (str(tmp_path), False, True)]


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_cifar_pickle_that_names_code_is_refused_and_nothing_runs(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    marker = tmp_path / "ran"
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": _RunsCode(marker), b"labels": [0]}, f)
    with pytest.raises(DataError, match=r"test_batch names (posix|os|nt)\.system: a CIFAR batch holds only") as err:
        load_dataset("cifar10", "test", data_dir=tmp_path)
    assert "\n" not in str(err.value) and not marker.exists()
    (folder / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="cannot read .*test_batch as a CIFAR batch"):
        load_dataset("cifar10", "test", data_dir=tmp_path)


def write_images(folder: Path, classes: dict[str, list[np.ndarray]]) -> None:
    from PIL import Image

    for name, images in classes.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i, pixels in enumerate(images):
            Image.fromarray(pixels).save(folder / name / f"{i:03d}.png")


def test_image_folder_classes_splits_and_notes(tmp_path):
    rng = np.random.default_rng(0)
    gray = [rng.integers(0, 256, (6, 5), dtype=np.uint8) for _ in range(3)]
    write_images(tmp_path / "flat", {"zebra": gray[:1], "apple": gray[1:]})
    notes: list[str] = []
    x, y = load_dataset(tmp_path / "flat", "test", notes=notes)
    assert x.shape == (3, 1, 6, 5) and y.tolist() == [0, 0, 1]  # sorted class names: apple=0, zebra=1
    assert np.array_equal(np.round(x[0, 0] * 255).astype(np.uint8), gray[1])
    assert len(notes) == 1 and "no train/ and test/ subfolders" in notes[0]
    assert dataset_key(tmp_path / "flat") == str(tmp_path / "flat") and sample_shape(tmp_path / "flat") == (1, 6, 5)

    rgb = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    write_images(tmp_path / "split" / "train", {"a": [gray[0]], "b": [rgb]})
    write_images(tmp_path / "split" / "test", {"b": [gray[2]]})
    xt, yt = load_dataset(tmp_path / "split", "train")
    assert xt.shape == (2, 3, 6, 5) and yt.tolist() == [0, 1]  # one RGB image: all read as RGB
    assert np.array_equal(np.round(xt[1] * 255).astype(np.uint8), rgb.transpose(2, 0, 1))
    assert np.array_equal(xt[0, 0], xt[0, 2])  # grayscale read as RGB: equal planes
    xe, ye = load_dataset(tmp_path / "split", "test", notes=(notes := []))
    assert xe.shape == (1, 1, 6, 5) and ye.tolist() == [1] and notes == []  # labels follow train's classes


def test_image_folder_scales_to_cover_then_center_crops(tmp_path):
    wide = np.zeros((4, 8), np.uint8)
    wide[:, 2:6] = np.arange(1, 5, dtype=np.uint8) * 50  # the centre 4 columns
    write_images(tmp_path, {"c": [wide]})
    x, _ = load_dataset(tmp_path, shape=(1, 4, 4))  # covers 4x4 at scale 1: crop columns 2-5
    assert np.array_equal(np.round(x[0, 0] * 255), wide[:, 2:6].astype(np.float32))
    x3, _ = load_dataset(tmp_path, shape=(3, 2, 2))  # channels from the target; scale 0.5 then crop
    assert x3.shape == (1, 3, 2, 2) and np.array_equal(x3[:, 0], x3[:, 1])
    notes: list[str] = []
    x8, _ = load_dataset(tmp_path, shape=(1, 8, 8), notes=notes)  # scale 2: 8x16, crop columns 4-11
    assert x8.shape == (1, 1, 8, 8) and "scaled to cover 8x8 and center-cropped" in notes[-1]
    with pytest.raises(DataError, match="1 \\(grayscale\\) or 3 \\(RGB\\) channels; the model takes 2"):
        load_dataset(tmp_path, shape=(2, 4, 4))


def test_image_folder_problems_are_one_line(tmp_path):
    with pytest.raises(DataError, match="dataset folder .* not found"):
        dataset_key(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class subfolders"):
        load_dataset(tmp_path / "empty")
    (tmp_path / "noimg" / "cat").mkdir(parents=True)
    (tmp_path / "noimg" / "cat" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="holds no images"):
        load_dataset(tmp_path / "noimg")
    (tmp_path / "noimg" / "cat" / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="cannot read image .*bad.png"):
        load_dataset(tmp_path / "noimg")


def test_a_dataset_name_wins_over_a_same_named_folder(tmp_path, monkeypatch):
    (tmp_path / "mnist").mkdir()
    monkeypatch.chdir(tmp_path)
    assert dataset_key("mnist") == "mnist" and dataset_key("./mnist") == "./mnist"


# -- the model's input shape and the dataset's ------------------------------------------------
def test_fit_inputs_names_both_shapes_and_refuses_a_same_size_different_shape():
    from types import SimpleNamespace

    from snnbalance.pipeline import fit_inputs

    x = np.zeros((2, 3, 32, 32), np.float32)
    with pytest.raises(
        SnnBalanceError,
        match=r"^the model takes inputs of shape 1x96x32, the dataset 'd' has "
        r"3x32x32 per sample; .*--input-shape C,H,W\)$",
    ):
        fit_inputs(SimpleNamespace(input_shape=(1, 96, 32)), x, "d")  # same size, other shape
    with pytest.raises(SnnBalanceError, match="takes inputs of shape 1x28x28, the dataset 'd' has 3x32x32"):
        fit_inputs(SimpleNamespace(input_shape=(1, 28, 28)), x, "d")
    assert fit_inputs(SimpleNamespace(input_shape=(3072,)), x, "d").shape == (2, 3072)  # flat: no ambiguity
    flat = np.zeros((2, 784), np.float32)
    assert fit_inputs(SimpleNamespace(input_shape=(1, 28, 28)), flat, "d").shape == (2, 1, 28, 28)
    assert fit_inputs(SimpleNamespace(input_shape=(28, 28)), flat.reshape(2, 1, 28, 28), "d").shape == (2, 28, 28)


def test_a_pytorch_model_takes_the_datasets_shape_and_onnx_keeps_its_own(tmp_path):
    torch = pytest.importorskip("torch")
    from snnbalance.models import VGG
    from snnbalance.pipeline import ConvertConfig, load_network

    np.savez(tmp_path / "c.npz", x=np.zeros((2, 3, 16, 16), np.uint8), y=np.zeros(2, int))
    model = VGG(in_channels=3, input_size=16).eval()
    torch.save(model.state_dict(), tmp_path / "v.pt")
    imported, _ = load_network(
        ConvertConfig(model=str(tmp_path / "v.pt"), arch="vgg:in_channels=3,input_size=16", dataset=str(tmp_path / "c.npz"))
    )
    assert imported.graph.input_shape == (3, 16, 16)
    assert f"input shape 3x16x16 from the dataset '{tmp_path / 'c.npz'}'" in imported.notes[0]
    with pytest.raises(SnnBalanceError, match="does not accept inputs of shape"):  # --input-shape wins
        load_network(
            ConvertConfig(
                model=str(tmp_path / "v.pt"),
                arch="vgg:in_channels=3,input_size=16",
                dataset=str(tmp_path / "c.npz"),
                input_shape=[1, 28, 28],
            )
        )
    torch.onnx.export(model, torch.zeros(1, 3, 16, 16), tmp_path / "v.onnx", dynamo=False)
    imported, _ = load_network(ConvertConfig(model=str(tmp_path / "v.onnx"), dataset="mnist"))
    assert imported.graph.input_shape == (3, 16, 16)  # from the file, not from MNIST


def test_an_mlp_without_flatten_reads_the_images_flat(tmp_path):
    torch = pytest.importorskip("torch")
    from snnbalance.pipeline import ConvertConfig, load_network

    torch.save(torch.nn.Sequential(torch.nn.Linear(768, 10)), tmp_path / "mlp.pt")
    np.savez(tmp_path / "c.npz", x=np.zeros((2, 3, 16, 16), np.uint8), y=np.zeros(2, int))
    imported, _ = load_network(ConvertConfig(model=str(tmp_path / "mlp.pt"), dataset=str(tmp_path / "c.npz"), trust_model=True))
    assert imported.graph.input_shape == (768,)
    assert "input shape 768 (the dataset's 3x16x16 flattened)" in imported.notes


def test_cli_converts_a_pickled_cifar_vgg_on_cifar_layout_and_on_an_image_folder(tmp_path):
    """The issue's case: a pickled 3x32x32 VGG converts from the CLI; its shape comes from the data."""
    torch = pytest.importorskip("torch")
    from typer.testing import CliRunner

    from snnbalance.cli import app
    from snnbalance.models import VGG

    torch.manual_seed(0)
    torch.save(VGG(in_channels=3, input_size=32).eval(), tmp_path / "vgg.pt")
    write_cifar(tmp_path / "data", n=4)
    rng = np.random.default_rng(1)
    write_images(tmp_path / "folder", {c: [rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)] * 2 for c in "ab"})
    for name, data in (
        ("cifar", ["--dataset", "cifar10", "--data-dir", str(tmp_path / "data")]),
        ("folder", ["--dataset", str(tmp_path / "folder"), "--input-shape", "3,32,32"]),
    ):
        out = tmp_path / name
        res = CliRunner().invoke(
            app,
            [
                "convert",
                str(tmp_path / "vgg.pt"),
                "--trust-model",
                *data,
                "--samples",
                "4",
                "--duration",
                "5",
                "-n",
                "model-based",
                "--simulator",
                "numpy",
                "--calibration-samples",
                "4",
                "-o",
                str(out),
            ],
        )
        assert res.exit_code == 0, res.output
        results = json.loads((out / "results.json").read_text())
        assert results["config"]["samples"] == 4
        if name == "cifar":
            assert any("input shape 3x32x32 from the dataset 'cifar10'" in n for n in results["import"]["notes"])
        else:  # the 40x36 images were scaled to cover 32x32 and center-cropped
            assert any("4 of 4 test images" in n and "scaled to cover 32x32" in n for n in results["data_notes"])
    # without --input-shape the folder's own size (the first image's, 3x40x36) does not fit this VGG: one line
    res = CliRunner().invoke(
        app, ["convert", str(tmp_path / "vgg.pt"), "--trust-model", "--dataset", str(tmp_path / "folder"), "-o", str(tmp_path / "no")]
    )
    assert isinstance(res.exception, SnnBalanceError) and "(3, 40, 36)" in str(res.exception)
