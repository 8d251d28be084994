"""The paper's models, seeded training, atomic saving, the embedded model and the train command."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from snnbalance.data import load_default_test_slice
from snnbalance.errors import SnnBalanceError
from snnbalance.models import ARCHS, PaperCNN, PaperMLP, default_model_path, load_default_model
from snnbalance.progress import Cancelled
from snnbalance.train import build_model, evaluate, save_model, train

DATA = os.environ.get("SNNBALANCE_DATA")
needs_data = pytest.mark.skipif(not DATA or not Path(DATA).is_dir(),
                                reason="set SNNBALANCE_DATA to the folder holding MNIST/ and FashionMNIST/")

torch.set_num_threads(min(2, torch.get_num_threads()))


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("cls, n_params", [
    (PaperMLP, 784 * 1200 + 1200 * 1200 + 1200 * 10),
    (PaperCNN, 12 * 25 + 64 * 12 * 25 + 1024 * 10),
])
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
    assert ARCHS == {"mlp": PaperMLP, "cnn": PaperCNN}
    model, key = build_model("snnbalance.models:PaperCNN")
    assert isinstance(model, PaperCNN) and key == "cnn"
    with pytest.raises(SnnBalanceError, match="unknown architecture"):
        build_model("resnet")
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
    res = CliRunner().invoke(app, ["--arch", "mlp", "--epochs", "1", "--limit", "256", "--device", "cpu",
                                   "--output", str(out)])
    assert res.exit_code == 0, res.output
    assert "test accuracy" in res.output
    PaperMLP().load_state_dict(torch.load(out, weights_only=True))
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["command"].startswith("snnbalance train --arch mlp --dataset mnist --seed 0 --epochs 1")

    res = CliRunner().invoke(app, ["--arch", "nope", "--output", str(out)])
    assert isinstance(res.exception, SnnBalanceError)
