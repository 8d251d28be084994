"""Tracing PyTorch modules for :mod:`.torch`, and TorchScript modules through the ONNX exporter."""

from __future__ import annotations

import io
import math
import warnings
from typing import Any

from ..errors import SnnBalanceError, one_line
from . import DEFAULT_INPUT_SHAPE, ImportResult

_BATCH = 2  # batch of the shape-propagation input; > 1 so reshapes that mix samples are caught


class _ShapeError(Exception):
    """The module does not run on the candidate input shape."""


def _trace(module, input_shape: tuple[int, ...]):
    """fx-trace ``module`` and annotate shapes with a zero batch of ``input_shape``."""
    import contextlib

    import torch
    from torch.fx import symbolic_trace
    from torch.fx.passes.shape_prop import ShapeProp

    try:
        gm = symbolic_trace(module)
    except Exception as e:  # noqa: BLE001 - any tracing failure has the same remedy
        raise SnnBalanceError(
            f"cannot trace {type(module).__name__} with torch.fx ({one_line(e)}); "
            "its forward must not branch on tensor values: export it to ONNX or "
            "TorchScript (torch.jit.trace) instead"
        ) from None
    errors = []
    for batch in (_BATCH, 1):
        try:  # ShapeProp prints a traceback before re-raising; the user gets one line instead
            with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):
                ShapeProp(gm).propagate(torch.zeros(batch, *input_shape))
        except Exception as e:  # noqa: BLE001
            errors.append(one_line(e.__cause__ or e))
            continue
        if batch != _BATCH:
            raise SnnBalanceError(
                f"the model runs on a batch of 1 but not of {_BATCH} ({errors[0]}); it "
                "hard-codes the batch size: flatten with x.view(x.size(0), -1)"
            )
        return gm
    raise _ShapeError(errors[0])


def _candidate_shapes(module, input_shape: tuple[int, ...] | None) -> list[tuple[int, ...]]:
    """Input shapes to try: the given one, else (1, 28, 28) and a first Linear's input size."""
    if input_shape:
        return [tuple(input_shape)]
    candidates: list[tuple[int, ...]] = [DEFAULT_INPUT_SHAPE]
    first = next((m for m in module.modules() if hasattr(m, "in_features") or hasattr(m, "in_channels")), None)
    n_in = getattr(first, "in_features", None)
    if n_in not in (None, math.prod(DEFAULT_INPUT_SHAPE)):
        candidates.append((int(n_in),))
    return candidates


def import_torchscript(module, input_shape: tuple[int, ...] | None = None, **preprocessing: Any) -> ImportResult:
    """Convert a TorchScript module by exporting it to ONNX in memory and importing that.

    The TorchScript-based ``torch.onnx`` exporter consumes scripted and traced modules directly
    and names nodes after the submodules (``/conv1/Conv``), so layer names survive. The module is
    first run on zeros so that a wrong input shape is reported as such, not as an export failure.
    """
    import onnx
    import torch

    from .onnx import import_onnx

    module.eval()
    errors, shape = [], None
    for candidate in _candidate_shapes(module, input_shape):
        try:
            with torch.no_grad():
                module(torch.zeros(_BATCH, *candidate))
        except Exception as e:  # noqa: BLE001 - the module rejected the shape; try the next one
            errors.append(f"{candidate} ({one_line(e)})")
            continue
        shape = candidate
        break
    if shape is None:
        raise SnnBalanceError(
            f"the model does not accept inputs of shape {' or '.join(errors)}; "
            "pass the shape it reads with --input-shape (C,H,W, or N for a flat input; e.g. --input-shape 3,32,32)"
        )
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (torch.zeros(1, *shape),),
                buf,  # type: ignore[arg-type]  # a file object works
                dynamo=False,
                input_names=["input"],
                output_names=["output"],
                dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
            )
    except Exception as e:  # noqa: BLE001 - report any exporter failure on one line
        raise SnnBalanceError(
            f"cannot convert the TorchScript model ({one_line(e)}); save its state_dict "
            "and pass --arch package.module:ClassName, or export it to ONNX"
        ) from None
    preprocessing.setdefault("input_layout", "nchw")
    result = import_onnx(onnx.load_from_string(buf.getvalue()), shape, **preprocessing)
    result.notes.insert(0, "TorchScript model read through torch.onnx (TorchScript-based exporter)")
    if input_shape is None:
        result.notes.insert(0, f"input shape not given; assumed {shape}")
    return result
