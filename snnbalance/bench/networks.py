"""The networks the benchmark measures: the paper's MLP and CNN on MNIST (a given state dict, the
embedded CNN, or one cached epoch of training), or any model file read as ``snnbalance convert``
reads it."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..graph import Graph
from ..progress import Progress, ProgressEvent, emit

if TYPE_CHECKING:
    from ..pipeline import ConvertConfig

CALIBRATION = 1000  # training images for data-based normalization (and SpikingJelly's recipe)


@dataclasses.dataclass
class BenchNet:
    """One network to measure: the ANN as a graph and as a torch module (for SpikingJelly's flow),
    with its test and calibration images.

    Attributes:
        name: the row's title.
        graph: the imported (unbalanced) network.
        module: a torch module computing the same ANN (SpikingJelly's converter reads it).
        x, y: test images and labels (at least the benchmark's B of them).
        x_cal: calibration images (data-based normalization and SpikingJelly's recipe).
        how: where the network and the data came from, for the report.
    """

    name: str
    graph: Graph
    module: Any
    x: np.ndarray
    y: np.ndarray
    x_cal: np.ndarray
    how: str


def _cache() -> Path:
    from ..paths import cache_dir

    return cache_dir("bench")


def mnist_data(split: str, data_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """MNIST from the one data-root rule (``--data-dir``, ``$SNNBALANCE_DATA``, the user cache);
    None when it is not there."""
    from ..data import DataError, load_dataset

    try:
        return load_dataset("mnist", split, data_dir=data_dir)
    except DataError:
        return None


def trained_model(
    arch: str, path: str | os.PathLike | None, progress: Progress | None = None, data_dir: str | os.PathLike | None = None
) -> tuple[Any, str]:
    """The torch model of ``arch`` and a sentence on where it came from.

    Order: the given path; for the CNN the embedded ``snnbalance/assets/mnist_cnn.pt``; a cached
    quick training; else train one epoch now (seeded recipe of :mod:`snnbalance.train`) and cache it.
    """
    import torch

    from ..models import ARCHS, default_model_path

    model = ARCHS[arch]()
    if path is not None:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return model.eval(), f"loaded from {path}"
    if arch == "cnn" and default_model_path().is_file():
        model.load_state_dict(torch.load(default_model_path(), map_location="cpu", weights_only=True))
        return model.eval(), "embedded snnbalance/assets/mnist_cnn.pt"
    cached = _cache() / f"{arch}_1epoch_seed0.pt"
    how = "trained here for 1 epoch on MNIST (snnbalance.train recipe, seed 0, Adam), cached in " + str(cached)
    if not cached.is_file():
        from ..train import train

        emit(progress, ProgressEvent(f"train {arch} (1 epoch)", 0, 1))
        result = train(arch, epochs=1, seed=0, data_dir=data_dir, device="cpu")
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp")
        torch.save(result.model.state_dict(), tmp)
        os.replace(tmp, cached)
        emit(progress, ProgressEvent(f"train {arch} (1 epoch)", 1, 1))
    model.load_state_dict(torch.load(cached, map_location="cpu", weights_only=True))
    return model.eval(), how


def to_graph(model: Any) -> Graph:
    """The importer's graph of a paper model (28x28 MNIST input)."""
    from ..importers import load_model

    return load_model(model, input_shape=(1, 28, 28)).graph


def paper_networks(
    models: dict[str, Any], calibration: int, data_dir: str | os.PathLike | None, progress: Progress | None
) -> list[BenchNet]:
    """The paper's MLP and CNN on MNIST (the embedded slices when MNIST is not on disk)."""
    import torch

    from ..data import calibration_slice

    test, train = mnist_data("test", data_dir), mnist_data("train", data_dir)
    if test is None or train is None:
        from ..data import load_default_test_slice, load_default_train_slice

        test, train = load_default_test_slice(), load_default_train_slice()
    x_cal = calibration_slice(train[0], min(calibration, len(train[0])), seed=0)
    nets = []
    for name, src in models.items():
        if isinstance(src, torch.nn.Module):
            model, how = src.eval(), "given module"
        else:
            model, how = trained_model(name, src, progress, data_dir)
        nets.append(BenchNet(name, to_graph(model), model, test[0], test[1], x_cal, how))
    return nets


def model_network(job: ConvertConfig, samples: int, calibration: int) -> BenchNet:
    """Any model file, read as ``snnbalance convert`` reads it (``job`` is its
    :class:`~snnbalance.pipeline.ConvertConfig`). ``job.dataset == "random"`` draws seeded uniform
    images of the model's input shape: speed only, the accuracy means nothing."""
    from ..graph_torch import to_torch
    from ..pipeline import fit_inputs, load_data, load_network

    random = job.dataset == "random"
    if random:
        job = dataclasses.replace(job, dataset="mnist")
    job = dataclasses.replace(job, samples=samples, calibration_samples=calibration)
    job.validate()
    imported, name = load_network(job)
    graph = imported.graph
    if random:
        rng = np.random.default_rng(0)
        draw = lambda n: (rng.integers(0, 256, (n, *graph.input_shape)) / 255).astype(np.float32)  # noqa: E731
        x, y, x_cal, how = draw(samples), np.zeros(samples, np.int64), draw(calibration), "random images"
    else:
        x, y, cal, _ = load_data(job, True)
        assert cal is not None  # asked for calibration images, load_data always gives them
        x = fit_inputs(graph, x, job.dataset)
        x_cal = cal.reshape(len(cal), *graph.input_shape)
        how = f"{job.dataset} images"
    return BenchNet(Path(name).name, graph, to_torch(graph), x, y, x_cal, f"{name} ({how})")
