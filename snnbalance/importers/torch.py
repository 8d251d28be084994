"""PyTorch ``nn.Module`` -> :class:`~snnbalance.graph.Graph` through ``torch.fx``.

Symbolic tracing sees through ``nn.Sequential`` nesting and custom ``forward`` methods, so the
functional spellings (``F.relu``, ``torch.flatten``, ``x.view(x.size(0), -1)``, ``F.avg_pool2d``,
``F.dropout``) convert like their module counterparts. Reshapes are judged by the shapes that
``ShapeProp`` measures on a batch of two zero inputs: two, so a hard-coded batch size shows up.

TorchScript modules cannot be fx-traced; :func:`import_torchscript` exports them with the
TorchScript-based ``torch.onnx`` exporter (which consumes TorchScript natively) and imports the
result with the ONNX importer.
"""

from __future__ import annotations

import io
import math
import operator
import warnings
from typing import Any

import numpy as np

from ..errors import SnnBalanceError, UnsupportedError
from . import DEFAULT_INPUT_SHAPE, GraphBuilder, ImportResult, _first_line, unsupported

_BATCH = 2  # batch of the shape-propagation input; > 1 so reshapes that mix samples are caught


def _np(t) -> np.ndarray:
    # A copy: the graph is scaled in place by normalizers and must not alias the user's parameters.
    return np.array(t.detach().cpu().numpy(), dtype=np.float32, order="C", copy=True)


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _args(node, names: tuple[str, ...], defaults: dict[str, Any]) -> dict[str, Any]:
    """Positional and keyword arguments of an fx call, by parameter name."""
    out = dict(defaults)
    out.update(zip(names, node.args))
    out.update(node.kwargs)
    return out


class _Importer:
    def __init__(self, gm, input_shape: tuple[int, ...]) -> None:
        import torch

        self.torch = torch
        self.gm = gm
        self.modules = dict(gm.named_modules())
        self.input_shape = input_shape
        self.b: GraphBuilder | None = None
        self.consts: dict[Any, Any] = {}

    # -- shapes ----------------------------------------------------------------------------------
    def out_shape(self, node) -> tuple[int, ...]:
        """Per-sample output shape measured by ShapeProp (batch dim checked, then dropped)."""
        shape = tuple(node.meta["tensor_meta"].shape)
        if not shape or shape[0] != _BATCH:
            kind = getattr(node.target, "__name__", node.target)
            raise UnsupportedError(f"layer {node.name!r} ({kind}) turns a batch of {_BATCH} into shape "
                                   f"{shape}, mixing samples; flatten with torch.flatten(x, 1) or "
                                   "x.view(x.size(0), -1)")
        return shape[1:]

    def reshape(self, node, src, name: str = "") -> None:
        """view/reshape/flatten/squeeze: accepted when it flattens (or does nothing)."""
        self.b.reshape(src, node, self.out_shape(node), name=name or node.name)

    # -- layers --------------------------------------------------------------------------------
    def dense(self, node, src, weight, bias, name: str) -> None:
        self.b.add(src, node, "dense", name=name, weight=_np(weight),
                   bias=None if bias is None else _np(bias))

    def conv(self, node, src, weight, bias, stride, padding, dilation, groups, name: str, kind: str) -> None:
        if groups != 1:
            raise unsupported(name, kind, f"grouped/depthwise convolution (groups={groups}) is not supported")
        if _pair(dilation) != (1, 1):
            raise unsupported(name, kind, "dilated convolution is not supported")
        if weight.dim() != 4:
            raise unsupported(name, kind, "only 2-d convolution is supported")
        if isinstance(padding, str):
            k = tuple(weight.shape[2:])
            if padding == "valid":
                padding = 0
            elif padding == "same" and all(s % 2 for s in k) and _pair(stride) == (1, 1):
                padding = (k[0] // 2, k[1] // 2)
            else:
                raise unsupported(name, kind, f"padding={padding!r} with kernel {k} is not symmetric")
        self.b.add(src, node, "conv2d", name=name, weight=_np(weight), bias=None if bias is None else _np(bias),
                   stride=_pair(stride), padding=_pair(padding))

    def avgpool(self, node, src, kernel, stride, padding, ceil_mode, count_include_pad, divisor, name, kind):
        kernel = _pair(kernel)
        stride = kernel if stride is None or stride == [] or stride == () else _pair(stride)
        padding = _pair(padding)
        if padding != (0, 0) and not count_include_pad:
            raise unsupported(name, kind, "count_include_pad=False with padding is not supported")
        if divisor is not None and divisor != kernel[0] * kernel[1]:
            raise unsupported(name, kind, "divisor_override is not supported")
        self.b.add(src, node, "avgpool2d", name=name, kernel=kernel, stride=stride, padding=padding)
        # ceil_mode only matters when it adds a partial window: compare with the measured shape.
        if ceil_mode and self.b.shape(node) != self.out_shape(node):
            raise unsupported(name, kind, "ceil_mode=True adds partial windows here; use ceil_mode=False")

    def adaptive(self, node, src, output_size, name, kind) -> None:
        c, h, w = self.b.val(src, name).shape
        oh, ow = _pair(output_size) if output_size is not None else (h, w)
        oh, ow = oh or h, ow or w
        if h % oh or w % ow:
            raise unsupported(name, kind, f"output size {(oh, ow)} does not divide the input {h}x{w}")
        k = (h // oh, w // ow)
        self.b.add(src, node, "avgpool2d", name=name, kernel=k, stride=k)

    # -- dispatch --------------------------------------------------------------------------------
    def module(self, node) -> None:
        nn = self.torch.nn
        m = self.modules[node.target]
        name, kind, src = node.target, type(m).__name__, node.args[0]
        if isinstance(m, nn.Linear):
            self.dense(node, src, m.weight, m.bias, name)
        elif isinstance(m, nn.Conv2d):
            if m.padding_mode != "zeros":
                raise unsupported(name, kind, f"padding_mode={m.padding_mode!r}; use zero padding")
            self.conv(node, src, m.weight, m.bias, m.stride, m.padding, m.dilation, m.groups, name, kind)
        elif isinstance(m, nn.AvgPool2d):
            self.avgpool(node, src, m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad,
                         m.divisor_override, name, kind)
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            self.adaptive(node, src, m.output_size, name, kind)
        elif isinstance(m, nn.ReLU):
            self.b.relu(src, node, name)
        elif isinstance(m, (nn.Flatten, nn.Unflatten)):
            self.reshape(node, src, name)
        elif isinstance(m, (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.Identity)):
            if not isinstance(m, nn.Identity):
                self.b.note(f"{kind} {name!r} removed (identity at inference)")
            self.b.alias(src, node, name)
        elif isinstance(m, (nn.Softmax, nn.LogSoftmax)):
            self.b.final_activation(src, node, "softmax" if isinstance(m, nn.Softmax) else "log_softmax",
                                    name, m.dim)
        else:
            raise unsupported(name, kind)

    def function(self, node) -> None:
        torch, F = self.torch, self.torch.nn.functional
        fn, name = node.target, node.name
        kind = f"{getattr(fn, '__module__', None) or 'torch'}.{getattr(fn, '__name__', fn)}".replace(
            "torch._C._nn", "torch.nn.functional").replace("torch._C._VariableFunctions", "torch")
        src = node.args[0] if node.args else None
        if fn in (F.relu, torch.relu, torch.relu_, getattr(F, "relu_", None)):
            self.b.relu(src, node, name)
        elif fn in (torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze):
            self.reshape(node, src)
        elif fn in (F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout, torch.dropout):
            a = _args(node, ("input", "p", "training"), {"training": fn is not F.alpha_dropout})
            a["training"] = a.get("train", a["training"])  # torch.dropout spells it "train"
            if a["training"] is True:
                self.b.note(f"{name!r} calls dropout with training=True; removed (pass training=self.training)")
            else:
                self.b.note(f"dropout {name!r} removed (identity at inference)")
            self.b.alias(src, node, name)
        elif fn in (F.softmax, torch.softmax, F.log_softmax, torch.log_softmax):
            a = _args(node, ("input", "dim"), {"dim": None})
            log = fn in (F.log_softmax, torch.log_softmax)
            self.b.final_activation(src, node, "log_softmax" if log else "softmax", name, a["dim"])
        elif fn is F.avg_pool2d:
            a = _args(node, ("input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
                             "divisor_override"),
                      {"stride": None, "padding": 0, "ceil_mode": False, "count_include_pad": True,
                       "divisor_override": None})
            self.avgpool(node, src, a["kernel_size"], a["stride"], a["padding"], a["ceil_mode"],
                         a["count_include_pad"], a["divisor_override"], name, kind)
        elif fn is F.adaptive_avg_pool2d:
            self.adaptive(node, src, _args(node, ("input", "output_size"), {})["output_size"], name, kind)
        elif fn is F.linear:
            a = _args(node, ("input", "weight", "bias"), {"bias": None})
            self.dense(node, src, self.const(a["weight"], name, kind), self.const(a["bias"], name, kind),
                       self.param_name(a["weight"], name))
        elif fn is F.conv2d:
            a = _args(node, ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
                      {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1})
            self.conv(node, src, self.const(a["weight"], name, kind), self.const(a["bias"], name, kind),
                      a["stride"], a["padding"], a["dilation"], a["groups"], self.param_name(a["weight"], name),
                      kind)
        else:
            if fn in (operator.add, operator.iadd, torch.add):
                kind = "add"
            raise unsupported(name, kind)

    def method(self, node) -> None:
        name, src = node.name, node.args[0]
        if node.target in ("relu", "relu_"):
            self.b.relu(src, node, name)
        elif node.target in ("view", "reshape", "flatten", "squeeze", "unsqueeze", "view_as", "reshape_as"):
            self.reshape(node, src)
        elif node.target in ("contiguous", "float", "clone", "detach"):
            self.b.alias(src, node, name)
        elif node.target in ("softmax", "log_softmax"):
            a = _args(node, ("self", "dim"), {"dim": None})
            self.b.final_activation(src, node, node.target, name, a["dim"])
        else:
            raise unsupported(name, f"Tensor.{node.target}")

    def const(self, arg, name: str, kind: str):
        if arg is None:
            return None
        if arg in self.consts:
            return self.consts[arg]
        raise unsupported(name, kind, "its weights must be parameters of the module")

    def param_name(self, arg, fallback: str) -> str:
        target = getattr(arg, "target", "")
        return target.rsplit(".", 1)[0] if isinstance(target, str) and "." in target else fallback

    def run(self) -> tuple:
        torch = self.torch
        placeholders = [n for n in self.gm.graph.nodes if n.op == "placeholder"]
        if len(placeholders) != 1:
            raise UnsupportedError(f"the model's forward takes {len(placeholders)} inputs; snnbalance converts "
                                   "networks with one input tensor")
        self.b = GraphBuilder(self.input_shape, placeholders[0])
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                continue
            if node.op == "get_attr":
                self.consts[node] = _fetch(self.gm, node.target)
                continue
            if node.op == "output":
                out = node.args[0]
                if isinstance(out, (tuple, list, dict)):
                    raise UnsupportedError("the model returns several outputs; snnbalance converts networks "
                                           "with one output tensor")
                graph, transform = self.b.finish(out)
                return graph, transform
            typ = node.meta.get("type")
            if typ is not None and not (isinstance(typ, type) and issubclass(typ, torch.Tensor)):
                if typ in (int, float, bool, torch.Size) or node.target in ("size", "dim"):
                    continue  # shape arithmetic such as x.size(0): consumed by reshapes
            if node.op == "call_module":
                self.module(node)
            elif node.op == "call_function":
                if node.target is getattr and node.args[1] in ("shape", "ndim"):
                    continue
                self.function(node)
            elif node.op == "call_method":
                self.method(node)
        raise UnsupportedError("the model has no output")  # pragma: no cover - fx always has one


def _fetch(gm, target: str):
    obj = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


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
        raise SnnBalanceError(f"cannot trace {type(module).__name__} with torch.fx ({_first_line(e)}); "
                              "its forward must not branch on tensor values: export it to ONNX or "
                              "TorchScript (torch.jit.trace) instead") from None
    errors = []
    for batch in (_BATCH, 1):
        try:  # ShapeProp prints a traceback before re-raising; the user gets one line instead
            with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):
                ShapeProp(gm).propagate(torch.zeros(batch, *input_shape))
        except Exception as e:  # noqa: BLE001
            errors.append(_first_line(e.__cause__ or e))
            continue
        if batch != _BATCH:
            raise SnnBalanceError(f"the model runs on a batch of 1 but not of {_BATCH} ({errors[0]}); it "
                                  "hard-codes the batch size: flatten with x.view(x.size(0), -1)")
        return gm
    raise _ShapeError(errors[0])


def _candidate_shapes(module, input_shape: tuple[int, ...] | None) -> list[tuple[int, ...]]:
    """Input shapes to try: the given one, else (1, 28, 28) and a first Linear's input size."""
    if input_shape:
        return [tuple(input_shape)]
    candidates = [DEFAULT_INPUT_SHAPE]
    first = next((m for m in module.modules() if hasattr(m, "in_features") or hasattr(m, "in_channels")), None)
    if getattr(first, "in_features", None) not in (None, math.prod(DEFAULT_INPUT_SHAPE)):
        candidates.append((int(first.in_features),))
    return candidates


def import_module(module, input_shape: tuple[int, ...] | None = None) -> ImportResult:
    """Convert an ``nn.Module`` (not TorchScript) into a validated graph, without the equivalence check.

    Args:
        module: the network; it is traced in eval mode and its training flag is restored.
        input_shape: per-sample input shape; None tries ``(1, 28, 28)`` and, for a network whose
            first layer is a Linear, its flat input size.
    Raises:
        UnsupportedError: naming the first layer that cannot be converted.
        SnnBalanceError: the module cannot be traced or does not accept the input shape.
    """
    notes = []
    candidates = _candidate_shapes(module, input_shape)
    was_training = module.training
    module.eval()
    try:
        errors = []
        for shape in candidates:
            try:
                gm = _trace(module, shape)
            except _ShapeError as e:  # the model rejected the shape; try the next one
                errors.append(f"{shape} ({e})")
                continue
            if input_shape is None:
                notes.append(f"input shape not given; assumed {shape}")
            imp = _Importer(gm, shape)
            graph, transform = imp.run()
            return ImportResult(graph, notes + imp.b.notes, source=f"{type(module).__name__} object",
                                output_transform=transform)
        raise SnnBalanceError(f"the model does not accept inputs of shape {' or '.join(errors)}; "
                              "pass the model's per-sample input_shape, e.g. (1, 28, 28)")
    finally:
        module.train(was_training)


def import_torchscript(module, input_shape: tuple[int, ...] | None = None) -> ImportResult:
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
            errors.append(f"{candidate} ({_first_line(e)})")
            continue
        shape = candidate
        break
    if shape is None:
        raise SnnBalanceError(f"the model does not accept inputs of shape {' or '.join(errors)}; "
                              "pass the model's per-sample input_shape, e.g. (1, 28, 28)")
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (torch.zeros(1, *shape),), buf, dynamo=False,
                              input_names=["input"], output_names=["output"],
                              dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    except Exception as e:  # noqa: BLE001 - report any exporter failure on one line
        raise SnnBalanceError(f"cannot convert the TorchScript model ({_first_line(e)}); save its state_dict "
                              "and pass arch='package.module:ClassName', or export it to ONNX") from None
    result = import_onnx(onnx.load_from_string(buf.getvalue()), shape)
    result.notes.insert(0, "TorchScript model read through torch.onnx (TorchScript-based exporter)")
    if input_shape is None:
        result.notes.insert(0, f"input shape not given; assumed {shape}")
    return result
