"""ONNX -> :class:`~snnbalance.graph.Graph`, one handler per op type (:data:`HANDLERS`).

Every ONNX tensor is one of three things while importing: an activation (a tensor computed from the
network input, held by the :class:`~snnbalance.importers.GraphBuilder`), a constant (initializers,
``Constant`` nodes and anything computed only from constants, folded with ``onnx.reference``), or a
symbolic shape vector (:class:`_Sym`) such as ``Concat(Unsqueeze(Gather(Shape(x), 0)), [-1])``,
which is how exporters spell ``x.view(x.size(0), -1)``. Only the first kind becomes graph nodes.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import SnnBalanceError, UnsupportedError
from ..graph import WEIGHTED
from . import GraphBuilder, ImportResult, _first_line, unsupported

OPSETS = range(11, 22)
B = "B"  # the batch dimension inside a symbolic shape


@dataclass
class _Sym:
    """A shape vector whose entries are ints or the batch symbol ``B``."""

    vals: list
    scalar: bool = False


class _Ctx:
    def __init__(self, model, input_shape: tuple[int, ...] | None) -> None:
        from onnx import helper, numpy_helper

        self.helper = helper
        self.model = model
        g = model.graph
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        self.consts: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        self.syms: dict[str, _Sym] = {}
        self.uses = Counter([i for n in g.node for i in n.input] + [o.name for o in g.output])
        inputs = [i for i in g.input if i.name not in self.consts]
        if len(inputs) != 1 or len(g.output) != 1:
            raise UnsupportedError(f"the ONNX model has {len(inputs)} inputs and {len(g.output)} outputs; "
                                   "snnbalance converts networks with one input and one output")
        inp = inputs[0]
        if inp.type.tensor_type.elem_type != 1:
            raise UnsupportedError(f"the ONNX model's input {inp.name!r} is not float32")
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                for d in inp.type.tensor_type.shape.dim]
        self.batch = dims[0] if dims else None  # a fixed batch size, e.g. 1 from a torch export
        per_sample = dims[1:]
        known = bool(per_sample) and None not in per_sample
        if input_shape is None:
            if not known:
                raise SnnBalanceError(f"the ONNX model's input {inp.name!r} has dims {dims}, not fixed per "
                                      "sample; pass input_shape, e.g. (1, 28, 28)")
            input_shape = tuple(per_sample)
        elif known and tuple(per_sample) != tuple(input_shape):
            raise SnnBalanceError(f"input_shape {tuple(input_shape)} does not match the ONNX model's input "
                                  f"{tuple(per_sample)}")
        self.b = GraphBuilder(tuple(input_shape), inp.name)
        self.output = g.output[0].name
        self._inferred: dict[str, list] | None = None

    # -- values ------------------------------------------------------------------------------
    def attrs(self, node) -> dict[str, Any]:
        out = {}
        for a in node.attribute:
            v = self.helper.get_attribute_value(a)
            out[a.name] = v.decode() if isinstance(v, bytes) else v
        return out

    def const(self, name: str) -> np.ndarray | None:
        return self.consts.get(name) if name else None

    def need_const(self, node, index: int, what: str) -> np.ndarray:
        value = self.const(node.input[index]) if len(node.input) > index else None
        if value is None:
            raise unsupported(label(node), node.op_type, f"its {what} must be constant")
        return value

    def layer_name(self, node, weight: str = "") -> str:
        """Source-model name of a layer: ``conv1`` from ``conv1.weight`` or ``/conv1/Conv``."""
        m = re.fullmatch(r"(.+)\.weight", weight or "")
        if m and not weight.startswith("onnx::"):
            return m.group(1)
        if "/" in node.name:  # torch's TorchScript exporter: /module/path/OpType
            parts = [p for p in node.name.split("/") if p]
            return parts[-2] if len(parts) >= 2 else ""
        # Generated names (dynamo's node_conv2d, Gemm_3) say nothing; the builder names by kind.
        if node.name.startswith("node_") or re.fullmatch(rf"{node.op_type}(_\d+)?", node.name):
            return ""
        return node.name

    def inferred_shape(self, name: str) -> list | None:
        """Shape from ONNX shape inference (per-dim int or None), computed once, lazily."""
        if self._inferred is None:
            self._inferred = {}
            try:
                from onnx import shape_inference

                g = shape_inference.infer_shapes(self.model).graph
                for vi in list(g.value_info) + list(g.output):
                    self._inferred[vi.name] = [d.dim_value if d.HasField("dim_value") else None
                                               for d in vi.type.tensor_type.shape.dim]
            except Exception:  # noqa: BLE001 - inference is only a fallback
                pass
        return self._inferred.get(name)

    def fold(self, node) -> None:
        """Evaluate a node whose inputs are all constants with the ONNX reference runtime."""
        from onnx.reference import ReferenceEvaluator

        h = self.helper
        names = [i for i in node.input if i]
        ins = [h.make_tensor_value_info(n, h.np_dtype_to_tensor_dtype(self.consts[n].dtype), self.consts[n].shape)
               for n in names]
        outs = [h.make_empty_tensor_value_info(o) for o in node.output if o]
        model = h.make_model(h.make_graph([node], "fold", ins, outs), opset_imports=self.model.opset_import)
        try:
            results = ReferenceEvaluator(model).run(None, {n: self.consts[n] for n in names})
        except Exception as e:  # noqa: BLE001
            raise unsupported(label(node), node.op_type, f"cannot evaluate it ({_first_line(e)})") from None
        for o, r in zip([o for o in node.output if o], results):
            self.consts[o] = np.asarray(r)


def label(node) -> str:
    return node.name or f"{node.op_type}->{node.output[0]}"


# -- layers ---------------------------------------------------------------------------------------
def _gemm(ctx: _Ctx, node) -> None:
    a = ctx.attrs(node)
    w = ctx.need_const(node, 1, "weights")
    if a.get("transA", 0) or w.ndim != 2:
        raise unsupported(label(node), "Gemm", "only y = x @ W(.T) + c with a 2-d constant W is supported")
    w = (w if a.get("transB", 0) else w.T) * np.float32(a.get("alpha", 1.0))  # (out, in) as in torch
    bias = None
    if len(node.input) > 2 and node.input[2]:
        c = ctx.need_const(node, 2, "bias") * np.float32(a.get("beta", 1.0))
        if c.size not in (1, w.shape[0]) or c.ndim > 2 or (c.ndim == 2 and c.shape[0] != 1):
            raise unsupported(label(node), "Gemm", f"bias of shape {c.shape} is not per output")
        bias = np.broadcast_to(c.reshape(-1), (w.shape[0],))
    _dense(ctx, node, w, bias, node.input[1])


def _matmul(ctx: _Ctx, node) -> None:
    w = ctx.need_const(node, 1, "second operand")
    if w.ndim != 2:
        raise unsupported(label(node), "MatMul", "only x @ W with a 2-d constant W is supported")
    _dense(ctx, node, w.T, None, node.input[1])


def _dense(ctx: _Ctx, node, w, bias, weight_name: str) -> None:
    ctx.b.add(node.input[0], node.output[0], "dense", name=ctx.layer_name(node, weight_name), source=label(node),
              weight=np.ascontiguousarray(w, dtype=np.float32),
              bias=None if bias is None else np.ascontiguousarray(bias, dtype=np.float32))


def _add(ctx: _Ctx, node) -> None:
    acts = [i for i in node.input if ctx.b.has(i)]
    if not acts:
        return _arith(ctx, node)
    consts = [i for i in node.input if i in ctx.consts]
    if len(acts) != 1 or len(consts) != 1:
        raise unsupported(label(node), "Add")
    # y = layer(x) + c folds into the layer's bias when c is one value per output/channel.
    v = ctx.b.val(acts[0], label(node))
    layer = ctx.b.graph.node(v.node) if v.node in {n.name for n in ctx.b.graph.nodes} else None
    c = ctx.consts[consts[0]].astype(np.float32)
    if layer is None or layer.op not in WEIGHTED or layer.relu or ctx.uses.get(acts[0], 0) != 1 \
            or c.ndim > len(v.shape) + 1:
        raise unsupported(label(node), "Add", "only a constant bias right after Gemm/MatMul/Conv can be folded")
    try:
        full = np.broadcast_to(c, (1, *v.shape))[0]
    except ValueError:
        raise unsupported(label(node), "Add", f"constant of shape {c.shape} does not fit {v.shape}") from None
    per_out = full.reshape(full.shape[0], -1)[:, 0]
    if not np.array_equal(full, np.broadcast_to(per_out.reshape(-1, *[1] * (len(v.shape) - 1)), v.shape)):
        raise unsupported(label(node), "Add", "the constant is not one bias per output channel")
    layer.bias = per_out.copy() if layer.bias is None else layer.bias + per_out
    ctx.b.alias(acts[0], node.output[0])


def _conv(ctx: _Ctx, node) -> None:
    a = ctx.attrs(node)
    w = ctx.need_const(node, 1, "weights")
    bias = ctx.need_const(node, 2, "bias") if len(node.input) > 2 and node.input[2] else None
    name = label(node)
    if w.ndim != 4:
        raise unsupported(name, "Conv", "only 2-d convolution is supported")
    if a.get("group", 1) != 1:
        raise unsupported(name, "Conv", f"grouped/depthwise convolution (group={a['group']}) is not supported")
    if any(d != 1 for d in a.get("dilations", [1, 1])):
        raise unsupported(name, "Conv", "dilated convolution is not supported")
    stride = tuple(a.get("strides", [1, 1]))
    padding = _padding(name, "Conv", a, tuple(w.shape[2:]), stride)
    ctx.b.add(node.input[0], node.output[0], "conv2d", name=ctx.layer_name(node, node.input[1]), source=name,
              weight=np.ascontiguousarray(w, dtype=np.float32), stride=stride, padding=padding,
              bias=None if bias is None else np.ascontiguousarray(bias.reshape(-1), dtype=np.float32))


def _padding(name: str, op: str, a: dict, kernel: tuple[int, int], stride) -> tuple[int, int]:
    auto = a.get("auto_pad", "NOTSET")
    if auto == "VALID":
        return (0, 0)
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        if tuple(stride) == (1, 1) and all(k % 2 for k in kernel):
            return (kernel[0] // 2, kernel[1] // 2)
        raise unsupported(name, op, f"auto_pad={auto} pads asymmetrically here; use explicit pads")
    pads = list(a.get("pads", [0, 0, 0, 0]))
    if len(pads) != 4 or pads[0] != pads[2] or pads[1] != pads[3]:
        raise unsupported(name, op, f"asymmetric pads {pads} are not supported")
    return (int(pads[0]), int(pads[1]))


def _avgpool(ctx: _Ctx, node) -> None:
    a, name = ctx.attrs(node), label(node)
    kernel = tuple(a["kernel_shape"])
    stride = tuple(a.get("strides", [1] * len(kernel)))
    if len(kernel) != 2 or any(d != 1 for d in a.get("dilations", [1, 1])):
        raise unsupported(name, "AveragePool", "only undilated 2-d pooling is supported")
    padding = _padding(name, "AveragePool", a, kernel, stride)
    if padding != (0, 0) and not a.get("count_include_pad", 0):
        raise unsupported(name, "AveragePool", "padding without count_include_pad=1 is not supported")
    node_ = ctx.b.add(node.input[0], node.output[0], "avgpool2d", name=ctx.layer_name(node), source=name,
                      kernel=kernel, stride=stride, padding=padding)
    if a.get("ceil_mode", 0):  # harmless unless it adds a partial window
        _, h, w = ctx.b.val(node.input[0], name).shape
        ceil = [math.ceil((s + 2 * p - k) / st) + 1 for s, p, k, st in zip((h, w), padding, kernel, stride)]
        if tuple(ceil) != ctx.b.shape(node.output[0])[1:]:
            raise unsupported(node_.source, "AveragePool", "ceil_mode=1 adds partial windows here")


def _global_avgpool(ctx: _Ctx, node) -> None:
    shape = ctx.b.val(node.input[0], label(node)).shape
    if len(shape) != 3:
        raise unsupported(label(node), node.op_type, "only (C, H, W) inputs are supported")
    k = tuple(shape[1:])
    ctx.b.add(node.input[0], node.output[0], "avgpool2d", name=ctx.layer_name(node), source=label(node),
              kernel=k, stride=k)


def _relu(ctx: _Ctx, node) -> None:
    ctx.b.relu(node.input[0], node.output[0], label(node))


def _identity(ctx: _Ctx, node) -> None:
    if node.op_type == "Dropout":
        ctx.b.note(f"Dropout {label(node)!r} removed (identity at inference)")
    ctx.b.alias(node.input[0], node.output[0], label(node))


def _softmax(ctx: _Ctx, node) -> None:
    axis = ctx.attrs(node).get("axis", 1 if ctx.opset < 13 else -1)
    kind = "softmax" if node.op_type == "Softmax" else "log_softmax"
    ctx.b.final_activation(node.input[0], node.output[0], kind, label(node), axis)


def _flatten(ctx: _Ctx, node) -> None:
    shape = ctx.b.val(node.input[0], label(node), view_ok=True).shape
    axis = ctx.attrs(node).get("axis", 1)
    if axis < 0:
        axis += len(shape) + 1
    if axis != 1:
        raise unsupported(label(node), "Flatten", f"axis={axis} mixes samples; only axis=1 is supported")
    ctx.b.reshape(node.input[0], node.output[0], (math.prod(shape),), name=ctx.layer_name(node),
                  source=label(node))


def _reshape(ctx: _Ctx, node) -> None:
    if not ctx.b.has(node.input[0]):
        return _shape_op(ctx, node)
    name = label(node)
    shape = ctx.b.val(node.input[0], name, view_ok=True).shape
    feats = math.prod(shape)
    target, out = _as_list(ctx, node.input[1]), None
    if target is not None:
        if not ctx.attrs(node).get("allowzero", 0):  # 0 copies the input's dim at that position
            full = [B, *shape]
            target = [full[i] if t == 0 and i < len(full) else t for i, t in enumerate(target)]
        rest = target[1:]
        if target and (target[0] == B or (ctx.batch is not None and target[0] == ctx.batch)) \
                and B not in rest and rest.count(-1) <= 1:
            known = math.prod(d for d in rest if d != -1)
            if known and feats % known == 0:
                out = tuple(feats // known if d == -1 else d for d in rest)
        elif target and target[0] == -1 and B not in rest and -1 not in rest and math.prod(rest) == feats:
            out = tuple(rest)
    else:  # shape computed by ops we do not evaluate: trust shape inference if it says (batch, feats)
        inferred = ctx.inferred_shape(node.output[0])
        if inferred is not None and len(inferred) == 2 and inferred[1] == feats:
            out = (feats,)
    if out is None or math.prod(out) != feats:
        raise unsupported(name, "Reshape", f"reshaping {tuple(shape)} to {target} is not a flatten "
                                           "to (batch, features)")
    ctx.b.reshape(node.input[0], node.output[0], out, name=ctx.layer_name(node), source=name)


def _squeeze(ctx: _Ctx, node) -> None:
    """Squeeze/Unsqueeze of activations, e.g. (C, 1, 1) -> (C,) after global pooling."""
    name = label(node)
    shape = list(ctx.b.val(node.input[0], name, view_ok=True).shape)
    a = ctx.attrs(node)
    axes = a.get("axes") if "axes" in a else (_as_list(ctx, node.input[1]) if len(node.input) > 1 else None)
    if node.op_type == "Squeeze":
        rank = len(shape) + 1
        axes = [i for i in range(1, rank) if shape[i - 1] == 1] if axes is None else [x % rank for x in axes]
        out = [d for i, d in enumerate(shape, start=1) if i not in axes]
    else:
        rank = len(shape) + 1 + len(axes or [])
        out = [B, *shape]
        for x in sorted(i % rank for i in axes or []):
            out.insert(x, 1)
        out = out[1:] if out and out[0] == B else None
    if axes is None or 0 in axes or out is None or math.prod(out) != math.prod(shape):
        raise unsupported(name, node.op_type, "it must keep the batch dimension")
    ctx.b.reshape(node.input[0], node.output[0], tuple(out), name=ctx.layer_name(node), source=name)


# -- constants and shape vectors --------------------------------------------------------------------
def _as_list(ctx: _Ctx, name: str) -> list | None:
    if name in ctx.syms:
        return list(ctx.syms[name].vals)
    if name in ctx.consts:
        return [int(v) for v in np.asarray(ctx.consts[name]).reshape(-1)]
    return None


def _constant(ctx: _Ctx, node) -> None:
    from onnx import numpy_helper

    a = node.attribute[0]
    value = ctx.helper.get_attribute_value(a)
    ctx.consts[node.output[0]] = numpy_helper.to_array(value) if a.name == "value" else np.asarray(value)


def _shape_op(ctx: _Ctx, node) -> None:
    """Shape, Gather, Unsqueeze, Squeeze, Concat, Slice, Cast on shape vectors; folds constants."""
    ins = [i for i in node.input if i]
    if all(i in ctx.consts for i in ins):
        return ctx.fold(node)
    op, out, a = node.op_type, node.output[0], ctx.attrs(node)
    if op in ("Squeeze", "Unsqueeze") and ctx.b.has(node.input[0]):
        return _squeeze(ctx, node)
    if op == "Shape" and ctx.b.has(node.input[0]):
        full = [B, *ctx.b.val(node.input[0], label(node), view_ok=True).shape]
        ctx.syms[out] = _Sym(full[a.get("start", 0): a.get("end", len(full))])
        return
    src = ctx.syms.get(node.input[0])
    if op == "Concat" and all(i in ctx.syms or i in ctx.consts for i in ins):
        ctx.syms[out] = _Sym([v for i in ins for v in _as_list(ctx, i)])
    elif src is None:
        raise unsupported(label(node), op)
    elif op == "Cast":
        ctx.syms[out] = src
    elif op == "Gather" and node.input[1] in ctx.consts and a.get("axis", 0) == 0:
        idx = np.asarray(ctx.consts[node.input[1]])
        picked = [src.vals[int(i)] for i in idx.reshape(-1)]
        ctx.syms[out] = _Sym(picked, scalar=idx.ndim == 0)
    elif op == "Unsqueeze" and src.scalar:
        ctx.syms[out] = _Sym(src.vals)
    elif op == "Squeeze" and len(src.vals) == 1:
        ctx.syms[out] = _Sym(src.vals, scalar=True)
    elif op == "Reshape" and len(src.vals) == 1 and _as_list(ctx, node.input[1]) in ([], [1], [-1]):
        ctx.syms[out] = _Sym(src.vals, scalar=_as_list(ctx, node.input[1]) == [])  # unoptimized dynamo
    elif op == "Slice":
        bounds = [_as_list(ctx, i) for i in node.input[1:3]] if ctx.opset >= 10 else [a["starts"], a["ends"]]
        extra = [_as_list(ctx, i) for i in node.input[3:] if i]
        if None in bounds or any(e not in ([0], [1]) for e in extra):
            raise unsupported(label(node), op, "only constant 1-d slices of shapes are supported")
        ctx.syms[out] = _Sym(src.vals[bounds[0][0]: bounds[1][0]])
    else:
        raise unsupported(label(node), op)


def _arith(ctx: _Ctx, node) -> None:
    """Add/Sub/Mul/Div of constants or batch-free shape vectors (exporters compute C*H*W this way)."""
    ins = [i for i in node.input if i]
    if any(ctx.b.has(i) for i in ins):
        raise unsupported(label(node), node.op_type, "arithmetic on activations is not supported")
    for i in ins:
        if i in ctx.syms:
            vals = ctx.syms[i].vals
            if B in vals:
                raise unsupported(label(node), node.op_type, "arithmetic on the batch size is not supported")
            ctx.consts[i] = np.asarray(vals[0] if ctx.syms[i].scalar else vals, dtype=np.int64)
    if not all(i in ctx.consts for i in ins):
        raise unsupported(label(node), node.op_type)
    ctx.fold(node)


HANDLERS: dict[str, Callable[[_Ctx, Any], None]] = {
    "Gemm": _gemm, "MatMul": _matmul, "Add": _add, "Conv": _conv,
    "AveragePool": _avgpool, "GlobalAveragePool": _global_avgpool,
    "Relu": _relu, "Flatten": _flatten, "Reshape": _reshape,
    "Dropout": _identity, "Identity": _identity, "Softmax": _softmax, "LogSoftmax": _softmax,
    "Constant": _constant, "Sub": _arith, "Mul": _arith, "Div": _arith,
    **{op: _shape_op for op in ("Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Cast")},
}


def load(model):
    import onnx

    if isinstance(model, (str, Path)):
        path = Path(model)
        if not path.is_file():
            raise SnnBalanceError(f"model file not found: {path}")
        try:  # external data files are looked up next to the model file
            return onnx.load(str(path), load_external_data=True), str(path)
        except Exception as e:  # noqa: BLE001 - protobuf and file errors alike
            raise SnnBalanceError(f"cannot read ONNX model {path}: {_first_line(e)}") from None
    return model, "ONNX ModelProto"


def import_onnx(model, input_shape: tuple[int, ...] | None = None) -> ImportResult:
    """Convert an ONNX model into a validated graph, without the equivalence check.

    Args:
        model: path of a ``.onnx`` file (external data next to it) or an ``onnx.ModelProto``.
        input_shape: per-sample input shape; read from the model's input when its dims are fixed.
    Raises:
        UnsupportedError: naming the op type and node of the first layer that cannot be converted.
        SnnBalanceError: unreadable file, or input dims that are neither fixed nor given.
    """
    model, source = load(model)
    ctx = _Ctx(model, input_shape)
    if ctx.opset not in OPSETS:
        ctx.b.note(f"ONNX opset {ctx.opset} is outside the tested range 11-21")
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx"):
            raise unsupported(label(node), f"{node.domain}.{node.op_type}")
        handler = HANDLERS.get(node.op_type)
        if handler is None:
            if node.input and all(i in ctx.consts for i in node.input if i):
                ctx.fold(node)  # e.g. constant subgraphs the exporter did not fold
                continue
            raise unsupported(label(node), node.op_type)
        handler(ctx, node)
    if ctx.output in ctx.consts or ctx.output in ctx.syms:
        raise UnsupportedError("the ONNX model's output does not depend on its input")
    graph, transform = ctx.b.finish(ctx.output)
    return ImportResult(graph, ctx.b.notes, source=source, output_transform=transform)
