"""PyTorch ``nn.Module`` -> :class:`~snnbalance.graph.Graph` through ``torch.fx``.

Symbolic tracing sees through ``nn.Sequential`` nesting and custom ``forward`` methods, so the
functional spellings (``F.relu``, ``torch.flatten``, ``x.view(x.size(0), -1)``, ``F.avg_pool2d``,
``F.max_pool2d``, ``F.batch_norm``, ``F.dropout``, ``x + y``, ``torch.cat``) convert like their module
counterparts. Reshapes are judged by the shapes that
``ShapeProp`` measures on a batch of two zero inputs: two, so a hard-coded batch size shows up.

TorchScript modules cannot be fx-traced; :func:`import_torchscript` exports them with the
TorchScript-based ``torch.onnx`` exporter (which consumes TorchScript natively) and imports the
result with the ONNX importer.
"""

from __future__ import annotations

import operator
from typing import Any, Callable

import numpy as np

from ..errors import SnnBalanceError, UnsupportedError
from . import GraphBuilder, ImportResult, preprocess, unsupported
from .torch_trace import _BATCH, _candidate_shapes, _ShapeError, _trace, import_torchscript

__all__ = ["import_module", "import_torchscript"]


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


_BINARY = {
    operator.add: "add",
    operator.iadd: "add",
    operator.sub: "sub",
    operator.isub: "sub",
    operator.mul: "mul",
    operator.imul: "mul",
    operator.truediv: "div",
    operator.itruediv: "div",
}


#: a ``call_function`` handler: (node, the callable, its first argument, node name, kind)
_Handler = Callable[[Any, Any, Any, str, str], None]


class _Importer:
    def __init__(self, gm, input_shape: tuple[int, ...], nhwc: bool = False, mean: Any = None, std: Any = None) -> None:
        import torch

        self.torch = torch
        self.gm = gm
        self.modules = dict(gm.named_modules())
        self.input_shape = input_shape
        self.nhwc, self.mean, self.std = nhwc, mean, std
        self.b: GraphBuilder  # made by run(), once the input placeholder is known
        self.consts: dict[Any, Any] = {}
        self.binary_fns: dict[Any, str] = {**_BINARY, torch.add: "add", torch.sub: "sub", torch.mul: "mul", torch.div: "div"}
        self.functions = self.function_table()

    # -- shapes ----------------------------------------------------------------------------------
    def out_shape(self, node) -> tuple[int, ...]:
        """Per-sample output shape measured by ShapeProp (batch dim checked, then dropped)."""
        shape = tuple(node.meta["tensor_meta"].shape)
        if not shape or shape[0] != _BATCH:
            kind = getattr(node.target, "__name__", node.target)
            raise UnsupportedError(
                f"layer {node.name!r} ({kind}) turns a batch of {_BATCH} into shape "
                f"{shape}, mixing samples; flatten with torch.flatten(x, 1) or "
                "x.view(x.size(0), -1)"
            )
        return shape[1:]

    def reshape(self, node, src, name: str = "") -> None:
        """view/reshape/flatten/squeeze: accepted when it flattens (or does nothing)."""
        self.b.reshape(src, node, self.out_shape(node), name=name or node.name)

    # -- layers --------------------------------------------------------------------------------
    def dense(self, node, src, weight, bias, name: str) -> None:
        self.b.add(src, node, "dense", name=name, weight=_np(weight), bias=None if bias is None else _np(bias))

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
        self.b.add(
            src,
            node,
            "conv2d",
            name=name,
            weight=_np(weight),
            bias=None if bias is None else _np(bias),
            stride=_pair(stride),
            padding=_pair(padding),
        )

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

    def adaptive(self, node, src, output_size, name, kind, op: str = "avgpool2d") -> None:
        c, h, w = self.b.val(src, name, affine_ok=True).shape
        oh, ow = _pair(output_size) if output_size is not None else (h, w)
        oh, ow = oh or h, ow or w
        if h % oh or w % ow:
            raise unsupported(name, kind, f"output size {(oh, ow)} does not divide the input {h}x{w}")
        k = (h // oh, w // ow)
        self.b.add(src, node, op, name=name, kernel=k, stride=k)

    def maxpool(self, node, src, kernel, stride, padding, dilation, ceil_mode, return_indices, name, kind):
        if return_indices:
            raise unsupported(name, kind, "return_indices=True is not supported")
        if _pair(dilation) != (1, 1):
            raise unsupported(name, kind, "dilated max pooling is not supported")
        kernel = _pair(kernel)
        stride = kernel if stride is None or stride == [] or stride == () else _pair(stride)
        self.b.add(src, node, "maxpool2d", name=name, kernel=kernel, stride=stride, padding=_pair(padding))
        if ceil_mode and self.b.shape(node) != self.out_shape(node):
            raise unsupported(name, kind, "ceil_mode=True adds partial windows here; use ceil_mode=False")

    def batchnorm(self, node, src, mean, var, weight, bias, eps, name, kind) -> None:
        """Inference batch norm: a per-channel affine map, folded into a weighted layer."""
        if mean is None or var is None:
            raise unsupported(name, kind, "it has no running statistics (track_running_stats=False)")
        c = mean.shape[0]
        gamma = _np(weight) if weight is not None else np.ones(c, np.float32)
        beta = _np(bias) if bias is not None else np.zeros(c, np.float32)
        scale, shift = preprocess.bn_affine(gamma, beta, _np(mean), _np(var), eps)
        rank = len(self.b.val(src, name, affine_ok=True, layout_ok=True).src_shape) + 1
        if rank not in (2, 4):
            raise unsupported(name, kind, "only (batch, features) and (batch, C, H, W) inputs are supported")
        per = (1, -1) + (1,) * (rank - 2)
        self.b.affine(
            src, node, scale.reshape(per), shift.reshape(per), where=name, what=f"{kind} {name!r}", sole_reader=len(src.users) == 1
        )

    def _is_act(self, x) -> bool:
        return not isinstance(x, (int, float)) and self.b.has(x)

    def binary(self, node, op: str, a, b, alpha=1.0) -> None:
        """``a op b``: a residual merge of two activations, or an affine map with a constant."""
        name = node.name
        acts = [x for x in (a, b) if self._is_act(x)]
        if len(acts) == 2:
            if op not in ("add", "sub"):
                raise unsupported(name, op, "multiplying or dividing two activations is not supported")
            self.b.merge_add([a, b], node, name=name, scales=[1.0, float(alpha) * (1 if op == "add" else -1)])
            return
        if not acts:
            raise unsupported(name, op, "arithmetic that does not involve the network input")
        first = self._is_act(a)
        c = self._const_value(b if first else a, name, op)
        one, zero = np.ones_like(c), np.zeros_like(c)
        if op == "div" and not first:
            raise unsupported(name, op, "dividing by an activation is not supported")
        scale, shift = {
            "add": (one, c * alpha) if first else (one * alpha, c),
            "sub": (one, -c * alpha) if first else (-one * alpha, c),
            "mul": (c, zero),
            "div": (1.0 / c, zero),
        }[op]
        act = acts[0]
        self.b.affine(act, node, scale, shift, where=name, what=f"{op} {name!r}", sole_reader=len(act.users) == 1)

    def _const_value(self, x, name: str, kind: str) -> np.ndarray:
        if isinstance(x, (int, float)):
            return np.asarray(float(x))
        if x in self.consts:
            return np.asarray(_np(self.consts[x]), np.float64)
        raise unsupported(name, kind, "its other operand must be a constant or an activation")

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
            self.avgpool(node, src, m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad, m.divisor_override, name, kind)
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            self.adaptive(node, src, m.output_size, name, kind)
        elif isinstance(m, nn.MaxPool2d):
            self.maxpool(node, src, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode, m.return_indices, name, kind)
        elif isinstance(m, nn.AdaptiveMaxPool2d):
            if m.return_indices:
                raise unsupported(name, kind, "return_indices=True is not supported")
            self.adaptive(node, src, m.output_size, name, kind, op="maxpool2d")
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            self.batchnorm(node, src, m.running_mean, m.running_var, m.weight, m.bias, m.eps, name, kind)
        elif isinstance(m, nn.ReLU):
            self.b.relu(src, node, name)
        elif isinstance(m, (nn.Flatten, nn.Unflatten)):
            self.reshape(node, src, name)
        elif isinstance(m, (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.Identity)):
            if not isinstance(m, nn.Identity):
                self.b.note(f"{kind} {name!r} removed (identity at inference)")
            self.b.alias(src, node, name)
        elif isinstance(m, (nn.Softmax, nn.LogSoftmax)):
            self.b.final_activation(src, node, "softmax" if isinstance(m, nn.Softmax) else "log_softmax", name, m.dim)
        elif isinstance(m, (nn.Sigmoid, nn.Tanh)):  # a monotone head: dropped when it ends the network
            self.monotone_head(node, src, "sigmoid" if isinstance(m, nn.Sigmoid) else "tanh", name, kind)
        else:
            raise unsupported(name, kind)

    def function(self, node) -> None:
        """A ``call_function`` node: its handler from :meth:`function_table`."""
        fn, name = node.target, node.name
        kind = f"{getattr(fn, '__module__', None) or 'torch'}.{getattr(fn, '__name__', fn)}".replace(
            "torch._C._nn", "torch.nn.functional"
        ).replace("torch._C._VariableFunctions", "torch")
        handler = self.functions.get(fn)
        if handler is None:
            raise unsupported(name, kind)
        handler(node, fn, node.args[0] if node.args else None, name, kind)

    def function_table(self) -> dict[Any, _Handler]:
        """Every supported callable -> its handler (first listing wins; absent spellings skipped)."""
        torch, F = self.torch, self.torch.nn.functional
        groups: tuple[tuple[tuple[Any, ...], _Handler], ...] = (
            ((F.relu, torch.relu, torch.relu_, getattr(F, "relu_", None)), self._relu),
            ((torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze), self._reshape),
            ((F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout, torch.dropout), self._dropout),
            ((F.softmax, torch.softmax, F.log_softmax, torch.log_softmax), self._softmax),
            ((torch.sigmoid, F.sigmoid, torch.tanh, F.tanh), self._monotone),
            ((F.avg_pool2d,), self._avg_pool),
            ((F.adaptive_avg_pool2d,), self._adaptive_avg_pool),
            ((F.max_pool2d, getattr(F, "max_pool2d_with_indices", None)), self._max_pool),
            ((F.adaptive_max_pool2d,), self._adaptive_max_pool),
            ((F.batch_norm,), self._batch_norm),
            (tuple(self.binary_fns), self._binary),
            ((torch.cat, getattr(torch, "concat", None), getattr(torch, "concatenate", None)), self._cat),
            ((torch.permute,), self._permute),
            ((F.linear,), self._linear),
            ((F.conv2d,), self._conv2d),
        )
        table: dict[Any, _Handler] = {}
        for fns, handler in groups:
            for fn in fns:
                if fn is not None:
                    table.setdefault(fn, handler)
        return table

    # -- call_function handlers: (node, the callable, its first argument, node name, kind) -------------
    def _relu(self, node, fn, src, name: str, kind: str) -> None:
        self.b.relu(src, node, name)

    def _reshape(self, node, fn, src, name: str, kind: str) -> None:
        self.reshape(node, src)

    def _dropout(self, node, fn, src, name: str, kind: str) -> None:
        a = _args(node, ("input", "p", "training"), {"training": fn is not self.torch.nn.functional.alpha_dropout})
        a["training"] = a.get("train", a["training"])  # torch.dropout spells it "train"
        if a["training"] is True:
            self.b.note(f"{name!r} calls dropout with training=True; removed (pass training=self.training)")
        else:
            self.b.note(f"dropout {name!r} removed (identity at inference)")
        self.b.alias(src, node, name)

    def _softmax(self, node, fn, src, name: str, kind: str) -> None:
        a = _args(node, ("input", "dim"), {"dim": None})
        log = fn in (self.torch.nn.functional.log_softmax, self.torch.log_softmax)
        self.b.final_activation(src, node, "log_softmax" if log else "softmax", name, a["dim"])

    def _monotone(self, node, fn, src, name: str, kind: str) -> None:
        self.monotone_head(node, src, "sigmoid" if fn in (self.torch.sigmoid, self.torch.nn.functional.sigmoid) else "tanh", name, kind)

    def monotone_head(self, node, src, act: str, name: str, kind: str) -> None:
        """Sigmoid/Tanh on the (batch, classes) output that ends the network: dropped (argmax
        unchanged, the import check compares after applying it); anywhere else refused, as ONNX's."""
        if len(self.b.val(src, name).shape) != 1 or any(u.op != "output" for u in node.users):
            raise unsupported(name, kind)
        self.b.final_activation(src, node, act, name, None)

    def _avg_pool(self, node, fn, src, name: str, kind: str) -> None:
        a = _args(
            node,
            ("input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"),
            {"stride": None, "padding": 0, "ceil_mode": False, "count_include_pad": True, "divisor_override": None},
        )
        self.avgpool(
            node,
            src,
            a["kernel_size"],
            a["stride"],
            a["padding"],
            a["ceil_mode"],
            a["count_include_pad"],
            a["divisor_override"],
            name,
            kind,
        )

    def _adaptive_avg_pool(self, node, fn, src, name: str, kind: str) -> None:
        self.adaptive(node, src, _args(node, ("input", "output_size"), {})["output_size"], name, kind)

    def _max_pool(self, node, fn, src, name: str, kind: str) -> None:
        a = _args(
            node,
            ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"),
            {"stride": None, "padding": 0, "dilation": 1, "ceil_mode": False, "return_indices": False},
        )
        self.maxpool(
            node,
            src,
            a["kernel_size"],
            a["stride"],
            a["padding"],
            a["dilation"],
            a["ceil_mode"],
            a["return_indices"] or fn is not self.torch.nn.functional.max_pool2d,
            name,
            kind,
        )

    def _adaptive_max_pool(self, node, fn, src, name: str, kind: str) -> None:
        a = _args(node, ("input", "output_size", "return_indices"), {"return_indices": False})
        if a["return_indices"]:
            raise unsupported(name, kind, "return_indices=True is not supported")
        self.adaptive(node, src, a["output_size"], name, kind, op="maxpool2d")

    def _batch_norm(self, node, fn, src, name: str, kind: str) -> None:
        a = _args(
            node,
            ("input", "running_mean", "running_var", "weight", "bias", "training", "momentum", "eps"),
            {"weight": None, "bias": None, "training": False, "eps": 1e-5},
        )
        if a["training"]:
            raise unsupported(name, kind, "it runs with training=True (batch statistics)")
        mean, var, weight, bias = (self.const(a[k], name, kind) for k in ("running_mean", "running_var", "weight", "bias"))
        self.batchnorm(node, src, mean, var, weight, bias, a["eps"], name, kind)

    def _binary(self, node, fn, src, name: str, kind: str) -> None:
        a = _args(node, ("input", "other"), {"alpha": 1})
        self.binary(node, self.binary_fns[fn], a["input"], a["other"], a["alpha"])

    def _cat(self, node, fn, src, name: str, kind: str) -> None:
        a = _args(node, ("tensors", "dim"), {"dim": 0})
        self.b.concat(list(a["tensors"]), node, a["dim"], name=name)

    def _permute(self, node, fn, src, name: str, kind: str) -> None:
        self.b.transpose(src, node, _args(node, ("input", "dims"), {})["dims"], name)

    def _linear(self, node, fn, src, name: str, kind: str) -> None:
        a = _args(node, ("input", "weight", "bias"), {"bias": None})
        self.dense(node, src, self.const(a["weight"], name, kind), self.const(a["bias"], name, kind), self.param_name(a["weight"], name))

    def _conv2d(self, node, fn, src, name: str, kind: str) -> None:
        a = _args(
            node,
            ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
            {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1},
        )
        self.conv(
            node,
            src,
            self.const(a["weight"], name, kind),
            self.const(a["bias"], name, kind),
            a["stride"],
            a["padding"],
            a["dilation"],
            a["groups"],
            self.param_name(a["weight"], name),
            kind,
        )

    def method(self, node) -> None:
        name, src = node.name, node.args[0]
        if node.target in ("relu", "relu_"):
            self.b.relu(src, node, name)
        elif node.target in ("view", "reshape", "flatten", "squeeze", "unsqueeze", "view_as", "reshape_as"):
            self.reshape(node, src)
        elif node.target in ("contiguous", "float", "clone", "detach"):
            self.b.alias(src, node, name)
        elif node.target in ("add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_"):
            a = _args(node, ("self", "other"), {"alpha": 1})
            self.binary(node, node.target.rstrip("_"), src, a["other"], a["alpha"])
        elif node.target == "permute":
            dims = node.args[1] if len(node.args) == 2 and isinstance(node.args[1], (tuple, list)) else node.args[1:]
            self.b.transpose(src, node, dims, name)
        elif node.target in ("softmax", "log_softmax"):
            a = _args(node, ("self", "dim"), {"dim": None})
            self.b.final_activation(src, node, node.target, name, a["dim"])
        elif node.target in ("sigmoid", "tanh"):
            self.monotone_head(node, src, node.target, name, f"Tensor.{node.target}")
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
            raise UnsupportedError(
                f"the model's forward takes {len(placeholders)} inputs; snnbalance converts networks with one input tensor"
            )
        shape = self.input_shape
        self.b = GraphBuilder((shape[2], shape[0], shape[1]) if self.nhwc else shape, placeholders[0], self.nhwc)
        self.b.normalize_input(self.mean, self.std)
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                continue
            if node.op == "get_attr":
                self.consts[node] = _fetch(self.gm, node.target)
                continue
            if node.op == "output":
                out = node.args[0]
                if isinstance(out, (tuple, list, dict)):
                    raise UnsupportedError("the model returns several outputs; snnbalance converts networks with one output tensor")
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


def import_module(
    module, input_shape: tuple[int, ...] | None = None, *, input_mean: Any = None, input_std: Any = None, input_layout: str | None = None
) -> ImportResult:
    """Convert an ``nn.Module`` (not TorchScript) into a validated graph, without the equivalence check.

    Args:
        module: the network; it is traced in eval mode and its training flag is restored.
        input_shape: per-sample input shape; None tries ``(1, 28, 28)`` and, for a network whose
            first layer is a Linear, its flat input size.
        input_mean, input_std: the model reads ``(x - mean) / std``; folded into the first layer.
        input_layout: ``"nhwc"`` when the module reads (H, W, C) inputs (it must permute them).
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
            nhwc = input_layout == "nhwc"
            if nhwc and len(shape) != 3:
                raise SnnBalanceError(f"input layout nhwc needs an (H, W, C) input shape, got {shape}")
            imp = _Importer(gm, shape, nhwc, input_mean, input_std)
            graph, transform = imp.run()
            return ImportResult(
                graph,
                notes + imp.b.notes,
                source=f"{type(module).__name__} object",
                output_transform=transform,
                to_source=preprocess.source_input(input_mean, input_std, nhwc),
            )
        raise SnnBalanceError(
            f"the model does not accept inputs of shape {' or '.join(errors)}; "
            "pass the shape it reads with --input-shape (C,H,W, or N for a flat input; e.g. --input-shape 3,32,32)"
        )
    finally:
        module.train(was_training)
