"""Shared fixtures: small graphs built by hand, and the dataset folder CI provides."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from snnbalance.graph import Graph, Node

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("SNNBALANCE_DATA", str(ROOT.parent / "shared" / "data"))


def has_data(name: str = "MNIST") -> bool:
    return (Path(os.environ["SNNBALANCE_DATA"]) / name / "raw").is_dir()


needs_mnist = pytest.mark.skipif(not has_data(), reason="MNIST not found under $SNNBALANCE_DATA")


def small_cnn(seed: int = 0, bias: bool = False) -> Graph:
    """A random conv -> pool -> conv -> flatten -> dense network on 1x12x12 inputs."""
    rng = np.random.default_rng(seed)
    b = (lambda n: rng.normal(0, 0.05, n).astype(np.float32)) if bias else (lambda n: None)
    return Graph((1, 12, 12), [
        Node("c1", "conv2d", weight=rng.normal(0, 0.4, (4, 1, 3, 3)).astype(np.float32), bias=b(4),
             padding=(1, 1), relu=True),
        Node("p1", "avgpool2d", ("c1",), kernel=(2, 2), stride=(2, 2)),
        Node("c2", "conv2d", ("p1",), weight=rng.normal(0, 0.3, (6, 4, 3, 3)).astype(np.float32), bias=b(6),
             stride=(2, 2), relu=True),
        Node("f", "flatten", ("c2",)),
        Node("d", "dense", ("f",), weight=rng.normal(0, 0.3, (5, 6 * 2 * 2)).astype(np.float32), bias=b(5)),
    ])


def single_neuron(weight: float, n_in: int = 1) -> Graph:
    """One IF neuron (the output layer) fed by ``n_in`` inputs through equal weights."""
    return Graph((n_in,), [Node("d", "dense", weight=np.full((1, n_in), weight, dtype=np.float32))])


@pytest.fixture
def cnn() -> Graph:
    return small_cnn()
