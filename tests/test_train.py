"""The paper's models, seeded training, atomic saving, the embedded model and the train command."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from snnbalance.data import load_default_test_slice
from snnbalance.errors import SnnBalanceError
from snnbalance.models import (
    ARCHS,
    VGG,
    PaperCNN,
    PaperMLP,
    ResNet,
    build,
    default_model_path,
    load_default_model,
    spec_of,
)
from snnbalance.progress import Cancelled
from snnbalance.train import build_model, evaluate, save_model, train

DATA = os.environ.get("SNNBALANCE_DATA")
needs_data = pytest.mark.skipif(
    not DATA or not Path(DATA).is_dir(), reason="set SNNBALANCE_DATA to the folder holding MNIST/ and FashionMNIST/"
)

torch.set_num_threads(min(2, torch.get_num_threads()))


def _same_shapes(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(sa[k].shape == sb[k].shape for k in sa)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize(
    "cls, n_params",
    [
        (PaperMLP, 784 * 1200 + 1200 * 1200 + 1200 * 10),
        (PaperCNN, 12 * 25 + 64 * 12 * 25 + 1024 * 10),
    ],
)
def test_paper_models_have_no_biases(cls, n_params):
    model = cls()
    assert sum(p.numel() for p in model.parameters()) == n_params
    assert all(name.endswith("weight") for name, _ in model.named_parameters())
    for m in model.modules():
        if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
            assert m.bias is None
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in model.modules())
    out = model.eval()(torch.rand(3, 1, 28, 28))
    assert out.shape == (3, 10)


def test_cnn_layer_shapes():
    model = PaperCNN().eval()
    x = torch.rand(2, 1, 28, 28)
    shapes = []
    for m in model:
        x = m(x)
        shapes.append(tuple(x.shape[1:]))
    assert shapes[:6] == [(12, 24, 24), (12, 24, 24), (12, 12, 12), (64, 8, 8), (64, 8, 8), (64, 4, 4)]
    assert shapes[-1] == (10,)


def test_arch_specs():
    assert ARCHS == {"mlp": PaperMLP, "cnn": PaperCNN, "vgg": VGG, "resnet": ResNet}
    model, key = build_model("snnbalance.models:PaperCNN")
    assert isinstance(model, PaperCNN) and key == "cnn"
    model, key = build_model("vgg", (3, 32, 32), 100)  # sized by the data
    assert key == "vgg" and model.conv1a.in_channels == 3 and model.fc2.out_features == 100
    assert model.fc1.in_features == 32 * 4 * 4
    assert spec_of("vgg", model) == "vgg:in_channels=3,num_classes=100,input_size=32"
    model, key = build_model("resnet:width=4", (3, 20, 24), 10)  # given arguments win; any image size
    assert key == "resnet" and spec_of(key, model) == "resnet:in_channels=3,width=4" and model.fc.in_features == 16
    assert _same_shapes(build(spec_of(key, model)), model)
    assert spec_of("vgg", build_model("vgg")[0]) == "vgg"  # MNIST's shape is the default
    with pytest.raises(SnnBalanceError, match="paper's cnn takes 1x28x28 images.*3x32x32.*--arch vgg"):
        build_model("cnn", (3, 32, 32))
    with pytest.raises(SnnBalanceError, match="needs square images"):
        build_model("vgg", (1, 20, 24))
    with pytest.raises(SnnBalanceError, match="'depth=x' is not key=number"):
        build("vgg:depth=x")
    with pytest.raises(SnnBalanceError, match="unexpected keyword argument 'depth'"):
        build("vgg:depth=3")
    with pytest.raises(SnnBalanceError, match="unknown architecture"):
        build_model("resnet50")
    with pytest.raises(SnnBalanceError, match="cannot build"):
        build_model("snnbalance.models:NoSuchNet")
    with pytest.raises(SnnBalanceError, match="not a torch.nn.Module"):
        build_model("snnbalance.models:default_model_path")


@needs_data
def test_training_smoke_is_reproducible():
    events = []
    a = train("cnn", "mnist", epochs=1, seed=7, limit=512, device="cpu", progress=events.append)
    b = train("cnn", "mnist", epochs=1, seed=7, limit=512, device="cpu")
    c = train("cnn", "mnist", epochs=1, seed=8, limit=512, device="cpu")
    assert _same_weights(a.model, b.model)
    assert not _same_weights(a.model, c.model)
    assert a.train_accuracy == b.train_accuracy and a.test_accuracy == b.test_accuracy
    assert a.epochs == 1 and a.seed == 7 and not a.model.training
    assert a.config["train_size"] == 512 and a.config["test_size"] == 512
    assert a.config["epochs"] == 1 and a.config["batch_size"] == 128 and a.config["lr"] == 2e-3
    assert a.test_accuracy > 0.2  # one short epoch is already far above chance
    assert [e.completed for e in events[:4]] == [1, 2, 3, 4] and events[0].total == 4
    assert events[-1].info["test_accuracy"] == a.history[-1]["test_accuracy"]
    assert {"loss", "accuracy", "epoch", "lr"} <= events[0].info.keys()


@needs_data
def test_training_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train("mlp", "mnist", epochs=1, seed=0, limit=64, device="cpu")
    assert torch.equal(torch.rand(3), expected)


@needs_data
def test_training_cancel_keeps_model():
    def stop(ev):
        if ev.completed == 2:
            raise Cancelled

    result = train("mlp", "mnist", epochs=3, limit=512, device="cpu", progress=stop)
    assert result.cancelled and result.epochs == 0
    assert 0.0 <= result.test_accuracy <= 1.0


def test_bad_settings():
    with pytest.raises(SnnBalanceError, match="epochs"):
        train("cnn", epochs=0)
    with pytest.raises(SnnBalanceError, match="limit"):
        train("cnn", limit=0)
    with pytest.raises(SnnBalanceError, match="device"):
        train("cnn", device="tpu9")


def test_save_model_atomic(tmp_path, monkeypatch):
    model = PaperCNN()
    path = save_model(model, tmp_path / "sub" / "m.pt")
    loaded = PaperCNN()
    loaded.load_state_dict(torch.load(path, weights_only=True))
    assert _same_weights(model, loaded)
    assert sorted(p.name for p in path.parent.iterdir()) == ["m.pt"]  # no temp file left behind

    # A failure while writing keeps the old file intact and removes the temporary one.
    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(RuntimeError):
        save_model(PaperCNN(), path)
    loaded.load_state_dict(torch.load(path, weights_only=True))
    assert _same_weights(model, loaded)
    assert sorted(p.name for p in path.parent.iterdir()) == ["m.pt"]


def test_save_model_unwritable(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SnnBalanceError, match="cannot write"):
        save_model(PaperCNN(), blocker / "m.pt")


def test_embedded_model_scores_on_embedded_slice():
    model = load_default_model()
    assert isinstance(model, PaperCNN) and not model.training
    x, y = load_default_test_slice()
    assert evaluate(model, x, y) >= 0.985
    record = json.loads(default_model_path().with_suffix(".json").read_text())
    assert record["test_accuracy"] >= 0.99
    assert record["command"].startswith("snnbalance train --arch cnn --dataset mnist")


@needs_data
def test_train_command(tmp_path):
    typer = pytest.importorskip("typer")
    from typer.testing import CliRunner

    from snnbalance.cli.train import train_command

    app = typer.Typer()
    app.command()(train_command)
    out = tmp_path / "m.pt"
    res = CliRunner().invoke(app, ["--arch", "mlp", "--epochs", "1", "--limit", "256", "--device", "cpu", "--output", str(out)])
    assert res.exit_code == 0, res.output
    assert "test accuracy" in res.output
    assert f"next: snnbalance convert {out} --dataset mnist" in res.output.replace("\n", "")
    PaperMLP().load_state_dict(torch.load(out, weights_only=True))
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["command"].startswith("snnbalance train --arch mlp --dataset mnist --seed 0 --epochs 1")
    assert record["arch"] == "mlp"

    res = CliRunner().invoke(app, ["--arch", "nope", "--output", str(out)])
    assert isinstance(res.exception, SnnBalanceError)


# -- VGG and ResNet: trained on any dataset, imported with batch norm folded ---------------------
def _random_bn(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Batch norm with non-trivial statistics, so that folding it is tested."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=gen) * 0.4 - 0.2)
    return model.eval()


@pytest.mark.parametrize("arch", ["vgg", "resnet"])
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_vgg_and_resnet_import_as_the_module_computes(tmp_path, arch, shape):
    from snnbalance.importers import load_model

    torch.manual_seed(0)
    model = _random_bn(build_model(arch, shape)[0])
    imported = load_model(model, input_shape=shape)  # load_model checks the graph against the module
    ops = [n.op for n in imported.graph.nodes]
    assert imported.max_rel_error < 1e-5 and imported.graph.input_shape == shape
    assert "batchnorm" not in " ".join(ops)  # folded into the convolutions
    if arch == "vgg":
        assert ops.count("maxpool2d") == 3 and ops.count("conv2d") == 6 and ops.count("dense") == 2
    else:
        assert ops.count("add") == 3 and "maxpool2d" not in ops
    # the state_dict file and the short spec rebuild the same network through the importer
    path = save_model(model, tmp_path / "m.pt")
    again = load_model(path, arch=spec_of(arch, model), input_shape=shape)
    for a, b in zip(imported.graph.nodes, again.graph.nodes):
        assert a.op == b.op and (a.weight is None or np.array_equal(a.weight, b.weight))


def test_train_then_convert_without_arch(tmp_path):
    """`train` saves what `convert` rebuilds from the record (no --arch) and prints that command."""
    pytest.importorskip("typer")
    from typer.testing import CliRunner

    from snnbalance.cli import app

    rng = np.random.default_rng(0)
    y = np.arange(48) % 2
    x = np.zeros((48, 3, 12, 12), np.uint8)  # class 0 bright on the left, class 1 on the right
    x[y == 0, :, :, :6] = rng.integers(128, 256, (24, 3, 12, 6))
    x[y == 1, :, :, 6:] = rng.integers(128, 256, (24, 3, 12, 6))
    np.savez(tmp_path / "toy.npz", x=x, y=y)
    out = tmp_path / "toy_vgg.pt"
    res = CliRunner().invoke(
        app,
        ["train", "--arch", "vgg", "--dataset", str(tmp_path / "toy.npz"), "--epochs", "2", "--device", "cpu", "-o", str(out)],
        env={"COLUMNS": "400"},
    )
    assert res.exit_code == 0, res.output
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["arch"] == "vgg:in_channels=3,num_classes=2,input_size=12"
    nxt = next(line for line in res.output.splitlines() if line.startswith("next: "))[6:]
    assert nxt == f"snnbalance convert {out} --dataset {tmp_path / 'toy.npz'}"
    conv = CliRunner().invoke(
        app,
        nxt.split()[1:] + ["--samples", "4", "--duration", "5", "-n", "model-based", "--simulator", "numpy", "-o", str(tmp_path / "res")],
    )
    assert conv.exit_code == 0, conv.output
    results = json.loads((tmp_path / "res" / "results.json").read_text())
    assert results["model"] == str(out)
    notes = " ".join(results["import"]["notes"])
    assert "arch vgg:in_channels=3,num_classes=2,input_size=12 read from toy_vgg.json" in notes
    assert "input shape 3x12x12 from the dataset" in notes


def test_resnet_trains_on_a_cifar_layout_dataset(tmp_path):
    from test_data import write_cifar

    write_cifar(tmp_path, n=16)
    result = train("resnet", "cifar10", epochs=1, data_dir=tmp_path, device="cpu", batch_size=32)
    assert result.config["arch"] == "resnet:in_channels=3" and result.config["train_size"] == 80
    assert result.model.stem[0].in_channels == 3 and result.model.fc.out_features == 10
    assert 0.0 <= result.test_accuracy <= 1.0 and result.config["shift"] == 2


@pytest.mark.parametrize("arch", ["vgg", "resnet"])
def test_the_committed_realnets_import_without_arch(arch):
    """docs/results/realnets: the state_dict and its record rebuild the trained network exactly."""
    from snnbalance.pipeline import ConvertConfig, load_network

    root = Path(__file__).resolve().parents[1] / "docs" / "results" / "realnets"
    record = json.loads((root / f"fashion-mnist_{arch}.json").read_text())
    assert record["arch"] == arch and record["seed"] == 0 and record["test_accuracy"] > 0.88
    imported, _ = load_network(ConvertConfig(model=str(root / f"fashion-mnist_{arch}.pt"), dataset="fashion-mnist"))
    assert imported.max_rel_error < 1e-5 and imported.graph.input_shape == (1, 28, 28)
    ops = [n.op for n in imported.graph.nodes]
    assert ops.count("maxpool2d" if arch == "vgg" else "add") == 3
