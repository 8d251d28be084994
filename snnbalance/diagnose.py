"""Checks that turn a silently wrong number into a sentence the user reads before the slow part.

An ANN that scores near chance on its dataset is almost always fed the wrong preprocessing (a
Keras model trained on 0-255 pixels, a torchvision model trained on normalized ones): every SNN
number after it would be meaningless. :func:`preprocessing_warning` says so and, by running the
imported network on the usual candidates, names the flags that fit when one does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .graph import Graph
    from .pipeline import ConvertConfig

# (what the model was trained on, --input-mean, --input-std): x_model = (x - mean) / std, x in [0, 1]
CANDIDATES: tuple[tuple[str, tuple[float, ...], tuple[float, ...]], ...] = (
    ("pixels 0-255", (0.0,), (1 / 255,)),
    ("inputs in [-1, 1]", (0.5,), (0.5,)),
    ("MNIST mean/std", (0.1307,), (0.3081,)),
    ("Fashion-MNIST mean/std", (0.2860,), (0.3530,)),
    ("CIFAR-10 mean/std", (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    ("ImageNet mean/std", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
)
PROBE_SAMPLES = 500


def chance_level(graph: "Graph", y: np.ndarray) -> float:
    """What guessing scores: one over the classes, or the share of the most frequent label."""
    classes = int(np.prod(graph.shapes()[graph.output.name]))
    share = float(np.bincount(y).max() / len(y)) if len(y) else 0.0
    return max(1.0 / max(classes, 1), share)


def near_chance(accuracy: float, chance: float) -> bool:
    """An accuracy no better than about twice guessing (20 % or less on ten balanced classes)."""
    return accuracy <= min(2 * chance, chance + 0.25)


def _flag(values: tuple[float, ...]) -> str:
    return ",".join(f"{v:.6g}" for v in values)


def preprocessing_warning(graph: "Graph", x: np.ndarray, y: np.ndarray, accuracy: float, cfg: "ConvertConfig") -> str | None:
    """One line when the ANN scores near chance, naming the ``--input-mean/--input-std`` that fit.

    Args:
        graph: the imported network (it reads what the dataset holds, [0, 1] pixels).
        x, y: the test images the accuracy was measured on.
        accuracy: the ANN's accuracy on them.
        cfg: the job (which preprocessing the user already gave).
    Returns:
        The warning, or None when the accuracy is well above chance.
    """
    chance = chance_level(graph, y)
    if not near_chance(accuracy, chance):
        return None
    head = (
        f"the ANN scores {100 * accuracy:.2f} % on {cfg.dataset}, near chance ({100 * chance:.0f} %): "
        "the model probably expects other input preprocessing"
    )
    if cfg.input_mean is not None or cfg.input_std is not None:
        return head + "; check --input-mean/--input-std (and --input-layout nchw|nhwc)"
    xs, ys = x[:PROBE_SAMPLES], y[:PROBE_SAMPLES]
    channels = graph.input_shape[0] if len(graph.input_shape) == 3 else 1
    best: tuple[float, str, tuple, tuple] | None = None
    for what, mean, std in CANDIDATES:
        if len(mean) not in (1, channels):
            continue
        shape = (1, len(mean)) + (1,) * (xs.ndim - 2) if len(mean) > 1 else (1,)
        z = (xs - np.reshape(mean, shape)) / np.reshape(std, shape)
        with np.errstate(all="ignore"):
            out = np.asarray(graph.forward(z.astype(np.float32)))
            acc = float((out.argmax(axis=1) == ys).mean())
        if best is None or acc > best[0]:
            best = (acc, what, mean, std)
    if best is not None and best[0] > accuracy + 0.25 and not near_chance(best[0], chance):
        acc, what, mean, std = best
        return head + f"; it scores {100 * acc:.2f} % on {what}: pass --input-mean {_flag(mean)} --input-std {_flag(std)}"
    return head + (
        "; none of the usual ones (0-255, [-1, 1], MNIST, CIFAR-10, ImageNet mean/std) fits: pass "
        "the model's training normalization with --input-mean/--input-std (and --input-layout nchw|nhwc)"
    )


__all__ = ["CANDIDATES", "chance_level", "near_chance", "preprocessing_warning"]
