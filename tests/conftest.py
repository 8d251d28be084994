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
