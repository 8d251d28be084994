"""Model importers: PyTorch modules, TorchScript, pickled modules, state_dicts and ONNX files.

:func:`load_model` is the entry point. Every importer builds a :class:`~snnbalance.graph.Graph`
through :class:`~snnbalance.importers.builder.GraphBuilder`, which knows how ReLU, flatten,
dropout, a trailing softmax, batch norm, constant arithmetic, residual adds, concatenation and
channels-last tensors map onto graph nodes, so the PyTorch and ONNX importers only translate their
own op vocabularies.
After importing, :func:`load_model` runs the graph and the source model on the same random
inputs (:func:`~snnbalance.importers.check.check_equivalence`) and refuses a mismatch.

Torch and ONNX are imported inside functions so that ``import snnbalance.importers`` is cheap.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import SnnBalanceError, UnsupportedError, one_line
from ..graph import Graph

__all__ = ["ImportOptions", "ImportResult", "GraphBuilder", "load_model", "SUPPORTED", "unsupported"]

DEFAULT_INPUT_SHAPE = (1, 28, 28)
SUPPORTED = "snnbalance converts Linear, Conv2d, AvgPool2d, MaxPool2d, BatchNorm, ReLU, Flatten, Dropout, residual add and channel concat"
MAXPOOL_MODES = ("spiking", "avg")
LAYOUTS = ("nchw", "nhwc")

# What to tell the user for well-known layers we cannot convert (keys are lower-case op names).
_HINTS = {
    "lstm": "recurrent layers cannot be converted",
    "gru": "recurrent layers cannot be converted",
    "rnn": "recurrent layers cannot be converted",
}
_ACTIVATIONS = (
    "sigmoid",
    "tanh",
    "gelu",
    "elu",
    "selu",
    "silu",
    "leakyrelu",
    "leaky_relu",
    "relu6",
    "hardtanh",
    "softplus",
    "prelu",
    "mish",
    "hardswish",
    "hardsigmoid",
    "celu",
)


def unsupported(name: str, kind: str, hint: str = "") -> UnsupportedError:
    """The one-line error for a layer that cannot be converted.

    Args:
        name: the layer's name in the source model (module path or ONNX node name).
        kind: what it is (module class, function or ONNX op type).
        hint: what the user can do; a default is chosen from ``kind`` when empty.
    """
    key = re.sub(r"[^a-z0-9_]", "", kind.lower().rsplit(".", 1)[-1])
    if not hint:
        hint = next((h for k, h in _HINTS.items() if key.startswith(k)), "")
    if not hint and key.rstrip("_") in _ACTIVATIONS:
        hint = "integrate-and-fire neurons only represent ReLU; retrain with ReLU"
    return UnsupportedError(f"unsupported layer {name!r} ({kind}): {SUPPORTED}" + (f"; {hint}" if hint else ""))


@dataclass
class ImportResult:
    """What :func:`load_model` returns.

    Attributes:
        graph: the imported network, validated.
        notes: what the importer changed or assumed, one sentence each.
        max_rel_error: max |graph - source| / max |source| on random inputs (NaN if not checked).
        source: description of where the model came from.
        output_transform: ``"softmax"``, ``"log_softmax"``, ``"sigmoid"`` or ``"tanh"`` when such a
            trailing layer was dropped (argmax is unchanged), else None.
        to_source: maps a batch of graph inputs (raw [0, 1], channels-first) to what the source
            model reads (input normalization, channels-last); None when they are the same.
        original_graph: the imported graph before max pooling was replaced (``maxpool="avg"``).
        replaced: names of the max-pooling layers replaced by average pooling.
        model_output: the source output that was converted, when the model has several.
    """

    graph: Graph
    notes: list[str] = field(default_factory=list)
    max_rel_error: float = float("nan")
    source: str = ""
    output_transform: str | None = None
    to_source: Callable | None = None
    original_graph: Graph | None = None
    replaced: list[str] = field(default_factory=list)
    model_output: str | None = None


@dataclass
class ImportOptions:
    """How to read the source model (the keyword arguments of :func:`load_model`)."""

    input_shape: tuple[int, ...] | None = None
    input_mean: Any = None
    input_std: Any = None
    input_layout: str | None = None
    maxpool: str = "spiking"
    trust: bool = False
    model_output: str | None = None
    classes: int | None = None


def load_model(
    source: Any,
    *,
    arch: str | None = None,
    input_shape: tuple[int, ...] | None = None,
    input_mean: Any = None,
    input_std: Any = None,
    input_layout: str | None = None,
    maxpool: str = "spiking",
    trust: bool = False,
    model_output: str | None = None,
    classes: int | None = None,
) -> ImportResult:
    """Import a trained ReLU network and check that the import computes what the source does.

    Args:
        source: an ``nn.Module`` (or TorchScript module, or ``onnx.ModelProto``), or a path: ``.onnx``
            goes to the ONNX importer; anything else is tried as TorchScript (``torch.jit.load``),
            then as a pickled whole module or a state_dict (``torch.load``).
        arch: ``"package.module:ClassName"`` (or ``"path/file.py:ClassName"``) of a class that
            builds the network with no arguments; needed when the file holds only a state_dict.
        input_shape: per-sample input shape as the source model reads it, e.g. ``(1, 28, 28)``.
            ONNX models carry their own; PyTorch models default to ``(1, 28, 28)`` (noted).
        input_mean, input_std: the model was trained on ``(x - mean) / std`` of [0, 1] pixels (one
            value, or one per channel); the normalization is folded into the first layer, so the
            graph (and the spiking network) reads raw [0, 1] pixels.
        input_layout: ``"nchw"`` or ``"nhwc"`` (channels-last, e.g. Keras); None detects it (ONNX:
            a leading Transpose(0, 3, 1, 2), or an (H, W, C) input with 1, 3 or 4 channels). The
            graph is always channels-first.
        maxpool: ``"spiking"`` (max-pool gates in the SNN) or ``"avg"`` (replace max pooling by
            average pooling; ``original_graph`` keeps the imported one, see
            :func:`snnbalance.graph_ops.replacement_accuracy`).
        trust: allow unpickling a whole pickled module (``torch.load(weights_only=False)``), which
            runs whatever code the file names. Off by default: such a file is refused with one line
            naming what it holds, and nothing in it runs (``--trust-model`` on the command line).
        model_output: the ONNX output to convert when the model has several (``--model-output``);
            None picks the only one shaped (batch, classes), or refuses, listing the outputs.
        classes: the dataset's class count, which tells the class scores among several outputs.
    Returns:
        The validated graph with notes and the measured max relative error.
    Raises:
        SnnBalanceError: unreadable files, missing arch, or an import that differs from the source.
        UnsupportedError: layers that cannot be converted, naming the layer.
    """
    if maxpool not in MAXPOOL_MODES:
        raise SnnBalanceError(f"maxpool must be one of {', '.join(MAXPOOL_MODES)}, got {maxpool!r}")
    if input_layout is not None and input_layout.lower() not in LAYOUTS:
        raise SnnBalanceError(f"input layout must be one of {', '.join(LAYOUTS)}, got {input_layout!r}")
    opts = ImportOptions(
        None if input_shape is None else tuple(int(s) for s in input_shape),
        input_mean,
        input_std,
        input_layout and input_layout.lower(),
        maxpool,
        bool(trust),
        model_output,
        classes,
    )
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise SnnBalanceError(f"model file not found: {path}")
        if path.suffix.lower() == ".onnx":
            return _onnx(path, opts)
        if path.stat().st_size == 0:
            raise SnnBalanceError(f"model file {path} is empty")
        return _torch_path(path, arch, opts)
    if type(source).__name__ == "ModelProto":
        return _onnx(source, opts)
    try:
        import torch
    except ImportError as e:  # pragma: no cover - torch is a dependency
        raise SnnBalanceError(f"PyTorch is needed to import {type(source).__name__} objects: {e}") from None
    if isinstance(source, torch.nn.Module):
        return _torch_module(source, opts, f"{type(source).__name__} object")
    raise SnnBalanceError(f"cannot import a {type(source).__name__}; pass an nn.Module or the path of a .onnx/.pt/.pth file")


def _checked(result: ImportResult, reference: Any, opts: ImportOptions) -> ImportResult:
    """Compare the import with its source, then apply the requested rewrites."""
    from ..graph_ops import maxpool_to_avgpool
    from . import check

    result.max_rel_error = check.check_equivalence(
        result.graph, reference, result.graph.input_shape, output_transform=result.output_transform, to_source=result.to_source
    )
    if opts.maxpool == "avg":
        replaced, names = maxpool_to_avgpool(result.graph)
        if names:
            result.original_graph, result.graph, result.replaced = result.graph, replaced, names
            result.notes.append(
                f"max pooling replaced by average pooling in {', '.join(names)} (the ANN changes: compare its accuracy with the original's)"
            )
    return result


def _onnx(model, opts: ImportOptions) -> ImportResult:
    from . import check
    from .onnx import import_onnx

    result = import_onnx(
        model,
        opts.input_shape,
        input_layout=opts.input_layout,
        input_mean=opts.input_mean,
        input_std=opts.input_std,
        output=opts.model_output,
        classes=opts.classes,
    )
    return _checked(result, check.onnx_session(model, result.model_output), opts)


def _torch_module(module, opts: ImportOptions, source: str) -> ImportResult:
    import torch

    from .torch import import_module, import_torchscript

    kw = {"input_mean": opts.input_mean, "input_std": opts.input_std, "input_layout": opts.input_layout}
    if isinstance(module, torch.jit.ScriptModule):
        result = import_torchscript(module, opts.input_shape, **kw)
    else:
        result = import_module(module, opts.input_shape, **kw)
    result.source = source
    return _checked(result, module, opts)


def _torch_path(path: Path, arch: str | None, opts: ImportOptions) -> ImportResult:
    import pickle
    import warnings

    import torch

    try:  # TorchScript archives are zip files that torch.load would also accept; try them first.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = torch.jit.load(str(path), map_location="cpu")
        return _torch_module(module, opts, f"TorchScript file {path}")
    except (RuntimeError, ValueError, pickle.UnpicklingError, OSError):
        pass
    try:  # weights_only: tensors and containers only; nothing the file names is run
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if not opts.trust:
            raise SnnBalanceError(_untrusted(path, e)) from None
        obj = _load_trusted(path)
    except Exception as e:  # noqa: BLE001 - pickle can raise anything; the user needs one line
        raise SnnBalanceError(_unreadable(path, e)) from None
    if isinstance(obj, torch.nn.Module):
        result = _torch_module(obj, opts, f"pickled module file {path}")
        if arch:
            result.notes.append(f"{path.name} holds a whole module; arch {arch!r} was not needed")
        return result
    state = _state_dict(obj)
    if state is None:
        raise SnnBalanceError(f"{path} holds a {type(obj).__name__}, not a module or state_dict")
    if not arch:
        raise SnnBalanceError(
            f"{path} holds only weights (a state_dict); pass --arch package.module:ClassName naming the class that builds the network"
        )
    module = _instantiate(arch)
    try:
        module.load_state_dict(state, strict=True)
    except Exception as e:  # noqa: BLE001
        raise SnnBalanceError(f"the weights in {path} do not fit {arch}: {one_line(e)}") from None
    return _torch_module(module, opts, f"state_dict {path} with arch {arch}")


def _load_trusted(path: Path) -> Any:
    """``torch.load`` with pickled code allowed: only when the user said they trust the file."""
    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - unpickling user code can raise anything
        raise SnnBalanceError(_unreadable(path, e)) from None


def _unreadable(path: Path, e: BaseException) -> str:
    hint = "; torch.export archives are not supported: export the model to ONNX" if path.suffix.lower() == ".pt2" else ""
    return f"cannot read {path}: not a TorchScript file, pickled PyTorch module or state_dict ({one_line(e)}){hint}"


def _untrusted(path: Path, e: BaseException) -> str:
    """The refusal for a pickle that names Python objects: what it holds, why, and the flag."""
    names = pickle_globals(path)
    if names is None:  # not a pickle we can scan: say what torch said
        return _unreadable(path, e)
    plumbing = ("builtins.", "__builtin__.", "collections.", "_codecs.", "copyreg.", "torch._utils.")
    shown = [n for n in names if not n.startswith(plumbing) and not n.endswith("Storage")] or names
    what = ", ".join(shown[:3]) + (f" and {len(shown) - 3} more" if len(shown) > 3 else "")
    return (
        f"{path} is a pickle that names Python objects ({what}); unpickling it would run code from "
        "the file, so it was not loaded; pass --trust-model if you trust where it came from, or save "
        "a state_dict (with --arch) or an ONNX file instead"
    )


def pickle_globals(path: str | os.PathLike) -> list[str] | None:
    """The ``module.name`` globals a pickle (plain, or torch's zip archive) refers to, read with
    :mod:`pickletools` without running anything; None when ``path`` is neither."""
    import pickletools
    import zipfile

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                data = b"".join(z.read(n) for n in z.namelist() if n.endswith("data.pkl"))
        else:
            data = Path(path).read_bytes()
        found: list[str] = []
        strings: list[str] = []
        for op, arg, _ in pickletools.genops(data):
            if op.name in ("GLOBAL", "INST"):
                found.append(str(arg).replace(" ", "."))
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                found.append(f"{strings[-2]}.{strings[-1]}")
            if isinstance(arg, str):
                strings.append(arg)
    except Exception:  # noqa: BLE001 - a damaged file: the caller reports torch's own error
        return None
    return list(dict.fromkeys(found)) or None


def _state_dict(obj: Any) -> dict | None:
    """The state_dict in ``obj``, also inside common checkpoint dicts."""
    if not isinstance(obj, dict):
        return None
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj.get(key), dict):
            return obj[key]
    import torch

    return obj if obj and all(isinstance(v, torch.Tensor) for v in obj.values()) else None


def _instantiate(arch: str):
    """Build ``module:Class`` (or ``file.py:Class``) with no arguments, or a built-in arch by its
    short name (``vgg``, ``resnet:in_channels=3``; see :func:`snnbalance.models.build`)."""
    import importlib
    import importlib.util

    import torch

    from ..models import build, is_arch_spec

    if is_arch_spec(arch):
        return build(arch)
    mod_name, sep, cls_name = arch.rpartition(":")
    if not sep or not mod_name or not cls_name:
        raise SnnBalanceError(f"--arch {arch!r} must be mlp, cnn, vgg, resnet, package.module:ClassName or path/file.py:ClassName")
    try:
        if mod_name.endswith(".py"):
            spec = importlib.util.spec_from_file_location(Path(mod_name).stem, mod_name)
            if spec is None or spec.loader is None or not Path(mod_name).is_file():
                raise ImportError(f"no file {mod_name}")
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
        else:
            mod = importlib.import_module(mod_name)
        cls = getattr(mod, cls_name)
        module = cls()
    except Exception as e:  # noqa: BLE001 - user code; report it on one line
        raise SnnBalanceError(f"cannot build arch {arch!r}: {one_line(e)}") from None
    if not isinstance(module, torch.nn.Module):
        raise SnnBalanceError(f"arch {arch!r} builds a {type(module).__name__}, not an nn.Module")
    return module


from .builder import GraphBuilder  # noqa: E402  (re-exported: importers build graphs through it)
