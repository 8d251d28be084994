"""Shared fixtures: small graphs built by hand, and the dataset folder CI provides."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from snnbalance.graph import Graph, Node
from snnbalance.testing import reference_graph

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("SNNBALANCE_DATA", str(ROOT.parent / "shared" / "data"))


def cli(capsys, *args):
    """Run ``snnbalance ARGS`` in-process; return (exit code, stdout, stderr)."""
    from snnbalance.cli import main

    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out = capsys.readouterr()
    return code, out.out, out.err


def fit(model, x: np.ndarray, y: np.ndarray, lr: float = 3e-3, mean: float = 0.0, std: float = 1.0):
    """One seeded epoch of Adam (batches of 50) on ``(x - mean) / std``; the model in eval mode.

    For the tests' small networks trained on a few thousand MNIST images in seconds.
    """
    import torch
    from torch.nn import functional as F

    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small batches: threads only add overhead (and nondeterminism)
    try:
        opt = torch.optim.Adam(model.parameters(), lr)
        xt, yt = (torch.from_numpy(x) - mean) / std, torch.from_numpy(y)
        model.train()
        for i in range(0, len(xt), 50):
            opt.zero_grad()
            F.cross_entropy(model(xt[i : i + 50]), yt[i : i + 50]).backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval()


def has_data(name: str = "MNIST") -> bool:
    return (Path(os.environ["SNNBALANCE_DATA"]) / name / "raw").is_dir()


needs_mnist = pytest.mark.skipif(not has_data(), reason="MNIST not found under $SNNBALANCE_DATA")


def small_cnn(seed: int = 0, bias: bool = False) -> Graph:
    """A random conv -> pool -> conv -> flatten -> dense network on 1x12x12 inputs."""
    return reference_graph(seed, bias)


def single_neuron(weight: float, n_in: int = 1) -> Graph:
    """One IF neuron (the output layer) fed by ``n_in`` inputs through equal weights."""
    return Graph((n_in,), [Node("d", "dense", weight=np.full((1, n_in), weight, dtype=np.float32))])


@pytest.fixture
def cnn() -> Graph:
    return small_cnn()


def fake_trainer(calls: list):
    """A stand-in for ``snnbalance.train.train`` in study tests: the arch's paper network with
    seeded, non-negative random weights (so it fires), no training; each call is appended to ``calls``."""
    import torch

    from snnbalance.models import PaperCNN, PaperMLP
    from snnbalance.train import TrainResult

    def train(arch, dataset, *, epochs, seed, device, data_dir, progress):
        calls.append((arch, dataset, epochs))
        torch.manual_seed(seed)
        model = {"mlp": PaperMLP, "cnn": PaperCNN}[arch]().eval()
        with torch.no_grad():
            for p in model.parameters():
                p.abs_()  # non-negative weights: the random network fires
        return TrainResult(
            model=model,
            train_accuracy=0.1,
            test_accuracy=0.1,
            epochs=epochs,
            seed=seed,
            seconds=0.0,
            config={"arch": arch, "dataset": dataset, "epochs": epochs},
        )

    return train
