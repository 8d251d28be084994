"""Model importers: PyTorch modules, TorchScript, pickled modules, state_dicts and ONNX files.

:func:`load_model` is the entry point. Every importer builds a :class:`~snnbalance.graph.Graph`
through :class:`GraphBuilder`, which knows how ReLU, flatten, dropout and a trailing softmax map
onto graph nodes, so the PyTorch and ONNX importers only translate their own op vocabularies.
After importing, :func:`load_model` runs the graph and the source model on the same random
inputs (:func:`~snnbalance.importers.check.check_equivalence`) and refuses a mismatch.

Torch and ONNX are imported inside functions so that ``import snnbalance.importers`` is cheap.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SnnBalanceError, UnsupportedError
from ..graph import INPUT, WEIGHTED, Graph, Node

__all__ = ["ImportResult", "GraphBuilder", "load_model", "SUPPORTED", "unsupported"]

DEFAULT_INPUT_SHAPE = (1, 28, 28)
SUPPORTED = "snnbalance converts Linear, Conv2d, AvgPool2d, ReLU, Flatten, Dropout"

# What to tell the user for well-known layers we cannot convert (keys are lower-case op names).
_HINTS = {
    "maxpool": "replace max pooling with average pooling and retrain",
    "batchnorm": "fold BatchNorm into the preceding layer first "
                 "(torch.nn.utils.fusion.fuse_conv_bn_eval / fuse_linear_bn_eval)",
    "batchnormalization": "fold BatchNorm into the preceding layer first",
    "add": "adding two tensors (residual connections) is not supported",
    "lstm": "recurrent layers cannot be converted",
    "gru": "recurrent layers cannot be converted",
    "rnn": "recurrent layers cannot be converted",
}
_ACTIVATIONS = ("sigmoid", "tanh", "gelu", "elu", "selu", "silu", "leakyrelu", "leaky_relu", "relu6",
                "hardtanh", "softplus", "prelu", "mish", "hardswish", "hardsigmoid", "celu")


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
        output_transform: ``"softmax"`` or ``"log_softmax"`` when such a trailing layer was
            dropped (argmax is unchanged), else None.
    """

    graph: Graph
    notes: list[str] = field(default_factory=list)
    max_rel_error: float = float("nan")
    source: str = ""
    output_transform: str | None = None


@dataclass
class _Val:
    """A tensor of the source model, as the graph node that computes it."""

    node: str               # graph node name, or INPUT
    shape: tuple[int, ...]  # per sample
    nonneg: bool            # known to be >= 0 (input rates, ReLU outputs and their pools)
    final: str | None = None  # "softmax"/"log_softmax" once a dropped trailing activation applies
    stale: str = ""         # set when a ReLU was merged into the node after this value was read
    view_of: Any = None     # a reshape the graph cannot hold (e.g. (C, 1)): the value it reshapes


_PREFIX = {"dense": "fc", "conv2d": "conv", "avgpool2d": "pool", "flatten": "flatten"}


class GraphBuilder:
    """Assemble a :class:`Graph` from source-model tensors (keyed by the importer's value ids).

    Args:
        input_shape: per-sample shape of the network input.
        input_value: the importer's id for the input tensor.
    """

    def __init__(self, input_shape: tuple[int, ...], input_value: Any) -> None:
        self.graph = Graph(tuple(int(s) for s in input_shape))
        self.vals: dict[Any, _Val] = {input_value: _Val(INPUT, self.graph.input_shape, True)}
        self.notes: list[str] = []

    # -- lookups -----------------------------------------------------------------------------
    def has(self, value: Any) -> bool:
        return value in self.vals

    def val(self, value: Any, where: str, view_ok: bool = False) -> _Val:
        """The tensor ``value`` as read by layer ``where``; refuses reads the graph cannot express."""
        v = self.vals.get(value)
        if v is None:
            raise UnsupportedError(f"layer {where!r} reads a tensor that does not come from the network input "
                                   "(constants and extra inputs are not supported)")
        if v.stale:
            raise UnsupportedError(f"layer {where!r} reads the output of {v.stale!r} before its ReLU, which is "
                                   "also used after the ReLU; snnbalance converts plain feed-forward chains")
        if v.final:
            raise UnsupportedError(f"layer {where!r} follows a {v.final}; only a {v.final} at the very end "
                                   "of the network can be dropped")
        if v.view_of is not None and not view_ok:
            raise UnsupportedError(f"layer {where!r} reads a tensor reshaped to {v.shape}; only flattening "
                                   "to (batch, features) is supported")
        return v

    def shape(self, value: Any) -> tuple[int, ...]:
        return self.vals[value].shape

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    # -- building ------------------------------------------------------------------------------
    def unique_name(self, candidate: str, op: str) -> str:
        """A node name from the source name: numeric names (Sequential) get a kind prefix."""
        base = candidate.strip().strip("/.")
        if not base or re.fullmatch(r"[\d.]+", base):  # "3" or "0.1" from nn.Sequential
            base = f"{_PREFIX[op]}{base or len(self.graph.nodes)}"
        taken = {n.name for n in self.graph.nodes} | {INPUT}
        name, k = base, 1
        while name in taken:
            name, k = f"{base}_{k}", k + 1
        return name

    def add(self, src: Any, out: Any, op: str, *, name: str, source: str = "", **attrs: Any) -> Node:
        """Append a node of kind ``op`` reading ``src``; ``out`` becomes its output tensor."""
        v = self.val(src, source or name)
        node = Node(self.unique_name(name, op), op, (v.node,), source=source or name, **attrs)
        self.graph.nodes.append(node)
        try:
            shape = self.graph.shapes()[node.name]  # also checks weights against the input shape
        except UnsupportedError:
            self.graph.nodes.pop()
            raise
        nonneg = False if op in WEIGHTED else v.nonneg
        self.vals[out] = _Val(node.name, shape, nonneg)
        return node

    def alias(self, src: Any, out: Any, where: str = "") -> None:
        """``out`` is the same tensor as ``src`` (dropout, identity, a no-op reshape)."""
        v = self.vals.get(src)
        if v is None:
            self.val(src, where)  # raises the explanatory error
        self.vals[out] = v

    def flatten(self, src: Any, out: Any, *, name: str, source: str = "") -> None:
        """Flatten to (batch, features); a no-op when the tensor already is flat."""
        if len(self.val(src, source or name).shape) == 1:
            self.alias(src, out)
        else:
            self.add(src, out, "flatten", name=name, source=source)

    def reshape(self, src: Any, out: Any, shape: tuple[int, ...], *, name: str, source: str = "") -> None:
        """Reshape to per-sample ``shape``: a no-op, a flatten, or a view that a later reshape flattens.

        Intermediate views such as ``x.squeeze(-1).squeeze(-1)`` after global pooling are kept
        as pending views of the real tensor, since the graph only holds (C, H, W) and flat shapes.
        """
        v = self.val(src, source or name, view_ok=True)
        real = v.view_of if v.view_of is not None else src
        base = self.vals[real]
        shape = tuple(int(s) for s in shape)
        if shape == base.shape:
            self.alias(real, out)
        elif len(shape) == 1 and shape[0] == math.prod(base.shape):
            self.flatten(real, out, name=name, source=source)
        elif math.prod(shape) == math.prod(base.shape):
            self.vals[out] = _Val(base.node, shape, base.nonneg, view_of=real)
        else:
            raise UnsupportedError(f"layer {source or name!r} reshapes {base.shape} to {shape}, which does not "
                                   "keep the batch dimension; flatten with torch.flatten(x, 1)")

    def relu(self, src: Any, out: Any, where: str) -> None:
        """Apply ReLU: merged into the weighted layer that computes ``src``.

        ReLU commutes with flatten, so it may also reach back through flatten nodes; on values
        that are already non-negative (pools of rectified values, the input) it is a no-op.
        """
        v = self.val(src, where)
        if v.nonneg:
            if v.node == INPUT:
                self.note(f"ReLU {where!r} on the network input dropped (inputs are non-negative rates)")
            self.vals[out] = v
            return
        node = self.graph.node(v.node)
        while node.op == "flatten":
            node = self.graph.node(node.inputs[0])
        if node.op not in WEIGHTED or node.relu:
            raise UnsupportedError(
                f"ReLU {where!r} follows {node.op} layer {node.label()!r}, whose input can be negative; "
                "snnbalance needs ReLU directly after Linear/Conv2d layers (put it before the pooling)")
        node.relu = True
        # Tensors read before this ReLU now look rectified; any later read of them is an error.
        for key, other in list(self.vals.items()):
            if other is v or self._reads_through_flatten(other.node, node.name):
                self.vals[key] = _Val(other.node, other.shape, other.nonneg, other.final, stale=node.label())
        self.vals[out] = _Val(v.node, v.shape, True)

    def _reads_through_flatten(self, name: str, target: str) -> bool:
        while name != target and name != INPUT:
            n = self.graph.node(name)
            if n.op != "flatten":
                return False
            name = n.inputs[0]
        return name == target

    def final_activation(self, src: Any, out: Any, kind: str, where: str, axis: int | None) -> None:
        """Drop a softmax/log_softmax over the class axis; it must end the network."""
        v = self.val(src, where)
        if len(v.shape) != 1 or axis not in (None, 1, -1):
            raise UnsupportedError(f"{kind} {where!r} is over axis {axis} of a {len(v.shape) + 1}-d tensor; "
                                   "only a softmax over the classes of (batch, classes) outputs can be dropped")
        self.vals[out] = _Val(v.node, v.shape, v.nonneg, final=kind)
        self.note(f"dropped trailing {kind} {where!r} (does not change argmax)")

    def finish(self, out: Any, where: str = "output") -> tuple[Graph, str | None]:
        """Validate the graph whose output is ``out``; returns it and the dropped output transform."""
        v = self.vals.get(out)
        if v is None or v.stale:
            self.val(out, where)
        if v.node == INPUT:
            raise UnsupportedError("the network has no layers")
        # Nodes computed after the output node would be dead code the graph cannot hold.
        if v.node != self.graph.output.name:
            raise UnsupportedError(f"the model's output is layer {v.node!r}, but layers follow it that "
                                   "are never used")
        self.graph.validate()
        return self.graph, v.final


def load_model(source: Any, *, arch: str | None = None,
               input_shape: tuple[int, ...] | None = None) -> ImportResult:
    """Import a trained ReLU network and check that the import computes what the source does.

    Args:
        source: an ``nn.Module`` (or TorchScript module, or ``onnx.ModelProto``), or a path: ``.onnx``
            goes to the ONNX importer; anything else is tried as TorchScript (``torch.jit.load``),
            then as a pickled whole module or a state_dict (``torch.load``).
        arch: ``"package.module:ClassName"`` (or ``"path/file.py:ClassName"``) of a class that
            builds the network with no arguments; needed when the file holds only a state_dict.
        input_shape: per-sample input shape, e.g. ``(1, 28, 28)``. ONNX models carry their own;
            PyTorch models default to ``(1, 28, 28)`` (noted in the result).
    Returns:
        The validated graph with notes and the measured max relative error.
    Raises:
        SnnBalanceError: unreadable files, missing arch, or an import that differs from the source.
        UnsupportedError: layers that cannot be converted, naming the layer.
    """
    from . import check

    if input_shape is not None:
        input_shape = tuple(int(s) for s in input_shape)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise SnnBalanceError(f"model file not found: {path}")
        if path.suffix.lower() == ".onnx":
            return _onnx_path(path, input_shape, check)
        return _torch_path(path, arch, input_shape, check)
    if type(source).__name__ == "ModelProto":
        from .onnx import import_onnx

        result = import_onnx(source, input_shape)
        result.max_rel_error = check.check_equivalence(result.graph, check.onnx_session(source),
                                                       result.graph.input_shape,
                                                       output_transform=result.output_transform)
        return result
    try:
        import torch
    except ImportError as e:  # pragma: no cover - torch is a dependency
        raise SnnBalanceError(f"PyTorch is needed to import {type(source).__name__} objects: {e}") from None
    if isinstance(source, torch.nn.Module):
        return _torch_module(source, input_shape, check, f"{type(source).__name__} object")
    raise SnnBalanceError(f"cannot import a {type(source).__name__}; pass an nn.Module or the path of a "
                          ".onnx/.pt/.pth file")


def _onnx_path(path: Path, input_shape, check) -> ImportResult:
    from .onnx import import_onnx

    result = import_onnx(path, input_shape)
    result.max_rel_error = check.check_equivalence(result.graph, check.onnx_session(path), result.graph.input_shape,
                                                   output_transform=result.output_transform)
    return result


def _torch_module(module, input_shape, check, source: str) -> ImportResult:
    import torch

    from .torch import import_module, import_torchscript

    if isinstance(module, torch.jit.ScriptModule):
        result = import_torchscript(module, input_shape)
    else:
        result = import_module(module, input_shape)
    result.source = source
    result.max_rel_error = check.check_equivalence(result.graph, module, result.graph.input_shape,
                                                   output_transform=result.output_transform)
    return result


def _torch_path(path: Path, arch: str | None, input_shape, check) -> ImportResult:
    import pickle
    import warnings

    import torch

    try:  # TorchScript archives are zip files that torch.load would also accept; try them first.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = torch.jit.load(str(path), map_location="cpu")
        return _torch_module(module, input_shape, check, f"TorchScript file {path}")
    except (RuntimeError, ValueError, pickle.UnpicklingError, OSError):
        pass
    try:
        try:  # weights_only first: a state_dict loads without running arbitrary pickled code
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            obj = torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - pickle can raise anything; the user needs one line
        hint = "; torch.export archives are not supported: export the model to ONNX" \
            if path.suffix.lower() == ".pt2" else ""
        raise SnnBalanceError(f"cannot read {path}: not a TorchScript file, pickled PyTorch module or "
                              f"state_dict ({_first_line(e)}){hint}") from None
    if isinstance(obj, torch.nn.Module):
        result = _torch_module(obj, input_shape, check, f"pickled module file {path}")
        if arch:
            result.notes.append(f"{path.name} holds a whole module; arch {arch!r} was not needed")
        return result
    state = _state_dict(obj)
    if state is None:
        raise SnnBalanceError(f"{path} holds a {type(obj).__name__}, not a module or state_dict")
    if not arch:
        raise SnnBalanceError(f"{path} holds only weights (a state_dict); pass arch='package.module:ClassName' "
                              "naming the class that builds the network")
    module = _instantiate(arch)
    try:
        module.load_state_dict(state, strict=True)
    except Exception as e:  # noqa: BLE001
        raise SnnBalanceError(f"the weights in {path} do not fit {arch}: {_first_line(e)}") from None
    return _torch_module(module, input_shape, check, f"state_dict {path} with arch {arch}")


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
    """Build ``module:Class`` (or ``file.py:Class``) with no arguments."""
    import importlib
    import importlib.util

    import torch

    mod_name, sep, cls_name = arch.rpartition(":")
    if not sep or not mod_name or not cls_name:
        raise SnnBalanceError(f"arch {arch!r} must look like 'package.module:ClassName'")
    try:
        if mod_name.endswith(".py"):
            spec = importlib.util.spec_from_file_location(Path(mod_name).stem, mod_name)
            if spec is None or not Path(mod_name).is_file():
                raise ImportError(f"no file {mod_name}")
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
        else:
            mod = importlib.import_module(mod_name)
        cls = getattr(mod, cls_name)
        module = cls()
    except Exception as e:  # noqa: BLE001 - user code; report it on one line
        raise SnnBalanceError(f"cannot build arch {arch!r}: {_first_line(e)}") from None
    if not isinstance(module, torch.nn.Module):
        raise SnnBalanceError(f"arch {arch!r} builds a {type(module).__name__}, not an nn.Module")
    return module


def _first_line(e: BaseException) -> str:
    """``Type: first line`` of an exception (the last line for TorchScript interpreter errors)."""
    text = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
    if not text:
        return type(e).__name__
    if text[0].startswith("The following operation failed in the TorchScript interpreter"):
        return text[-1]  # the real error, already "Type: message"
    return f"{type(e).__name__}: {text[0]}"
