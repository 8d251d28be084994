"""Headless helpers for interactive front ends: inspect a model before converting it.

The TUI shows a model's layers and ANN accuracy as soon as it is loaded, long before a run.
:func:`inspect_model` does that with the same importer, data loader and accuracy function that
:func:`snnbalance.pipeline.convert` uses, so the numbers agree with the report of a later run.
No UI code lives here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .diagnose import preprocessing_warning
from .graph import Graph
from .pipeline import DEFAULT_NAME, ConvertConfig, ann_accuracy, fit_inputs, load_data, load_network


@dataclass
class ModelInfo:
    """A model as imported for ``cfg``, with its ANN test accuracy.

    Attributes:
        name: the model path, or a description of the embedded default.
        graph: the imported network.
        ann_accuracy: accuracy of the ANN on the test images ``cfg`` selects.
        samples: how many test images that accuracy covers.
        dataset: the dataset they came from.
        notes: importer and data-loader notes, one sentence each.
        max_rel_error: the importer's equivalence check (NaN if not checked).
        warnings: what makes the numbers suspect (an ANN near chance: wrong preprocessing).
    """

    name: str
    graph: Graph
    ann_accuracy: float
    samples: int
    dataset: str
    notes: list[str] = field(default_factory=list)
    max_rel_error: float = float("nan")
    warnings: list[str] = field(default_factory=list)


def inspect_model(cfg: ConvertConfig) -> ModelInfo:
    """Import ``cfg.model`` (or the embedded default) and measure its ANN accuracy.

    Args:
        cfg: the job; ``model``, ``arch``, ``dataset``, ``samples`` and ``data_dir`` are read.
    Returns:
        The imported model and its accuracy on the first ``cfg.samples`` test images.
    Raises:
        SnnBalanceError: a missing or unreadable file, an unsupported layer, or a model whose
            input does not fit the dataset.
    """
    imported, name = load_network(cfg)
    graph = imported.graph
    x, y, _, data_notes = load_data(cfg, need_calibration=False)
    x = fit_inputs(graph, x, cfg.dataset)
    acc = ann_accuracy(graph, x, y)
    warning = preprocessing_warning(graph, x, y, acc, cfg)
    return ModelInfo(
        name=name,
        graph=graph,
        ann_accuracy=acc,
        samples=len(x),
        dataset=cfg.dataset,
        notes=list(imported.notes) + data_notes,
        max_rel_error=imported.max_rel_error,
        warnings=[warning] if warning else [],
    )


__all__ = ["ModelInfo", "inspect_model", "DEFAULT_NAME"]
