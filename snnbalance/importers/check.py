"""Check that an imported graph computes what its source model computes.

Every import ends here: a silent mismatch (a transposed weight, a misread padding) would show up
much later as a poor spiking accuracy that looks like a normalization problem.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import SnnBalanceError
from ..graph import Graph

TINY = 1e-12


def _softmax(x: np.ndarray, log: bool) -> np.ndarray:
    z = x - x.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=1, keepdims=True))
    return z - lse if log else np.exp(z - lse)


#: What a dropped trailing activation computes from the graph's output.
TRANSFORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "softmax": lambda a: _softmax(a, False),
    "log_softmax": lambda a: _softmax(a, True),
    "sigmoid": lambda a: 1.0 / (1.0 + np.exp(-a)),
    "tanh": np.tanh,
}


class _Picked:
    """An onnxruntime session that answers with one chosen output of a model that has several."""

    def __init__(self, session, output: str) -> None:
        self.session, self.output = session, output

    def get_inputs(self):
        return self.session.get_inputs()

    def run(self, _names, feed):
        return self.session.run([self.output], feed)


def _run_reference(reference_fn: Any, x: np.ndarray) -> np.ndarray:
    """Run a torch module, an onnxruntime session or a NumPy callable on the batch ``x``."""
    if hasattr(reference_fn, "get_inputs") and hasattr(reference_fn, "run"):  # onnxruntime session
        inp = reference_fn.get_inputs()[0]
        batch = inp.shape[0] if inp.shape else None
        # A model exported with a fixed batch size only accepts batches of exactly that size:
        # run it on whole batches (the samples repeated to fill the last one) and keep the first rows.
        step = batch if isinstance(batch, int) and batch > 0 else len(x)
        xs = x[np.arange(-(-len(x) // step) * step) % len(x)]
        outs = [reference_fn.run(None, {inp.name: xs[i : i + step]})[0] for i in range(0, len(xs), step)]
        return np.concatenate([np.asarray(o, dtype=np.float64).reshape(step, -1) for o in outs])[: len(x)]
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    else:
        if isinstance(reference_fn, torch.nn.Module):
            was_training = reference_fn.training
            reference_fn.eval()
            try:
                with torch.no_grad():
                    out = reference_fn(torch.from_numpy(x))
            finally:
                reference_fn.train(was_training)
            if isinstance(out, (tuple, list)):
                out = out[0]
            return out.detach().cpu().double().numpy().reshape(len(x), -1)
    return np.asarray(reference_fn(x), dtype=np.float64).reshape(len(x), -1)


def check_equivalence(
    graph: Graph,
    reference_fn: Any,
    input_shape: tuple[int, ...],
    *,
    samples: int = 8,
    seed: int = 0,
    rtol: float = 1e-4,
    output_transform: str | None = None,
    to_source: Callable | None = None,
) -> float:
    """Compare ``graph.forward`` with the source model on seeded random inputs in [0, 1].

    Args:
        graph: the imported network.
        reference_fn: a ``torch.nn.Module`` (run in eval mode without gradients, its training flag
            restored afterwards), a TorchScript module, an ``onnxruntime.InferenceSession``, or a
            callable mapping a float32 batch to outputs.
        input_shape: per-sample input shape.
        samples: batch size of the random inputs (a multiple of an ONNX model's fixed batch size).
        seed: seed of the inputs.
        rtol: largest accepted max relative error.
        output_transform: a :data:`TRANSFORMS` key the source applies after the graph's
            output (the importer dropped it); it is applied to the graph output before comparing.
        to_source: maps the graph's inputs to the source model's (a folded input normalization,
            channels-last); None when they are the same.
    Returns:
        max |graph - reference| / max(max |reference|, tiny).
    Raises:
        SnnBalanceError: when the error exceeds ``rtol`` or the outputs differ in size.
    """
    rng = np.random.default_rng(seed)
    x = rng.random((samples, *input_shape), dtype=np.float32)
    a = np.asarray(graph.forward(x), dtype=np.float64).reshape(samples, -1)
    if output_transform in TRANSFORMS:
        a = TRANSFORMS[output_transform](a)
    elif output_transform is not None:
        raise ValueError(f"unknown output transform {output_transform!r}")
    b = _run_reference(reference_fn, to_source(x) if to_source is not None else x)
    if a.shape != b.shape:
        raise SnnBalanceError(f"imported network has {a.shape[1]} outputs, the source model {b.shape[1]}; please report this model")
    err = float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), TINY)) if b.size else 0.0
    if not np.isfinite(err) or err > rtol:
        raise SnnBalanceError(f"imported network differs from the source model (max relative error {err:.3g}); please report this model")
    return err


def onnx_session(model, output: str | None = None):
    """An onnxruntime CPU session for a path or ModelProto (onnxruntime is imported lazily);
    with ``output``, one that answers with that output of a model that has several."""
    session = _session(model)
    return _Picked(session, output) if output is not None else session


def _session(model):
    from ..errors import one_line
    from .onnx import load

    try:
        import onnxruntime as ort
    except ImportError as e:  # pragma: no cover - onnxruntime is a dependency
        raise SnnBalanceError(f"onnxruntime is needed to check ONNX imports: {e}") from None
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    try:
        if isinstance(model, (str, Path)) and _has_dropout(load(model)[0]):
            model = load(model)[0]
        src = str(model) if isinstance(model, (str, Path)) else _inference_mode(model).SerializeToString()
        return ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001
        err = e
    if isinstance(model, (str, Path)):
        # onnxruntime refuses external tensors that it must read while loading (e.g. a Reshape's
        # shape); the model with its data inlined, as onnx.load returns it, works.
        try:
            return ort.InferenceSession(_inference_mode(load(model)[0]).SerializeToString(), opts, providers=["CPUExecutionProvider"])
        except Exception:  # noqa: BLE001 - report the first error
            pass
    raise SnnBalanceError(f"onnxruntime cannot run the model: {one_line(err)}")


def _has_dropout(model) -> bool:
    """Whether the model holds training-mode forms: Dropout, or batch norms with their optional
    statistics outputs (old opsets: onnxruntime then normalizes with the batch's statistics)."""
    return any(n.op_type == "Dropout" or (n.op_type == "BatchNormalization" and any(n.output[1:])) for n in model.graph.node)


def _inference_mode(model):
    """A copy where Dropout nodes are Identity and batch norms have only their output, so that
    training-mode exports run as the converted network does (running statistics, no dropout)."""
    if not _has_dropout(model):
        return model
    from onnx import helper

    out = type(model)()
    out.CopyFrom(model)
    for k, n in enumerate(out.graph.node):
        if n.op_type == "Dropout":
            out.graph.node[k].CopyFrom(helper.make_node("Identity", [n.input[0]], [n.output[0]], name=n.name))
        elif n.op_type == "BatchNormalization" and any(n.output[1:]):
            del out.graph.node[k].output[1:]
    return out
