"""ONNX layer handlers: each turns one ONNX node that reads activations into graph-builder calls.

:data:`snnbalance.importers.onnx.HANDLERS` maps op types to these functions.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..graph_ops import pads4
from . import unsupported
from .onnx_shapes import B, arith, as_list, label, shape_op
from .preprocess import bn_affine


# -- weighted layers ------------------------------------------------------------------------------
def gemm(ctx, node) -> None:
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


def matmul(ctx, node) -> None:
    w = ctx.need_const(node, 1, "second operand")
    if w.ndim != 2:
        raise unsupported(label(node), "MatMul", "only x @ W with a 2-d constant W is supported")
    _dense(ctx, node, w.T, None, node.input[1])


def _dense(ctx, node, w, bias, weight_name: str) -> None:
    ctx.b.add(
        node.input[0],
        node.output[0],
        "dense",
        name=ctx.layer_name(node, weight_name),
        source=label(node),
        weight=np.ascontiguousarray(w, dtype=np.float32),
        bias=None if bias is None else np.ascontiguousarray(bias, dtype=np.float32),
    )


def conv(ctx, node) -> None:
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
    padding = _padding(ctx, node, a, tuple(w.shape[2:]), stride)
    ctx.b.add(
        node.input[0],
        node.output[0],
        "conv2d",
        name=ctx.layer_name(node, node.input[1]),
        source=name,
        weight=np.ascontiguousarray(w, dtype=np.float32),
        stride=stride,
        padding=padding,
        bias=None if bias is None else np.ascontiguousarray(bias.reshape(-1), dtype=np.float32),
    )


def _padding(ctx, node, a: dict, kernel: tuple[int, int], stride) -> tuple[int, ...]:
    """The graph padding of a Conv/pool: ``(ph, pw)``, or ``(top, left, bottom, right)`` when asymmetric.

    ``auto_pad=SAME_*`` is resolved for the input size (asymmetric for even kernels, as Keras'
    'same' writes it); end pads that no window reaches (Chainer's ``cover_all``) are dropped.
    """
    name, op = label(node), node.op_type
    auto = a.get("auto_pad", "NOTSET")
    hw = ctx.b.val(node.input[0], name, affine_ok=True).shape[1:]
    if len(hw) != 2:
        raise unsupported(name, op, "only 2-d inputs (C, H, W) are supported")
    if auto == "VALID":
        return (0, 0)
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        total = [max((-(-size // s) - 1) * s + k - size, 0) for size, k, s in zip(hw, kernel, stride)]
        small = [t // 2 for t in total]
        big = [t - t // 2 for t in total]
        pads = [*small, *big] if auto == "SAME_UPPER" else [*big, *small]
    else:
        pads = [int(p) for p in a.get("pads", [0, 0, 0, 0])]
        if len(pads) != 4:
            raise unsupported(name, op, f"pads {pads} are not 2-d")
    for axis in (0, 1):  # end padding that no window reaches changes nothing: prefer the symmetric form
        size, k, s = hw[axis], kernel[axis], stride[axis]
        begin, end = pads[axis], pads[2 + axis]
        if end == begin or a.get("ceil_mode", 0):
            continue
        out = (size + begin + end - k) // s
        same = next((e for e in (begin, 0) if e < end and (size + begin + e - k) // s == out), None)
        if same is not None:
            ctx.b.note(
                f"{op} {name!r}: end padding {end} on axis {axis + 2} reaches no window; "
                + ("dropped" if same == 0 else f"written as {same}, the symmetric equivalent")
            )
            pads[2 + axis] = same
    if pads[0] == pads[2] and pads[1] == pads[3]:
        return (pads[0], pads[1])
    ctx.b.note(
        f"{op} {name!r} pads asymmetrically (top, left, bottom, right = {tuple(pads)}); simulators "
        "that do not support asymmetric padding are passed over"
    )
    return tuple(pads)


def batchnorm(ctx, node) -> None:
    """BatchNormalization (inference): a per-channel affine map, folded into a weighted layer."""
    a, name = ctx.attrs(node), label(node)
    if a.get("training_mode", 0) or any(ctx.uses.get(o, 0) for o in node.output[1:] if o):
        raise unsupported(name, "BatchNormalization", "it runs in training mode (batch statistics); export the model in eval mode")
    gamma, beta, mean, var = (ctx.need_const(node, k, what) for k, what in ((1, "scale"), (2, "bias"), (3, "mean"), (4, "variance")))
    if any(node.output[1:]):
        ctx.b.note(f"BatchNormalization {name!r} lists its training outputs (unused): run with its running statistics, as at inference")
    scale, shift = bn_affine(gamma, beta, mean, var, a.get("epsilon", 1e-5))
    rank = len(ctx.b.val(node.input[0], name, view_ok=True, affine_ok=True, layout_ok=True).src_shape) + 1
    per = (1, -1) + (1,) * (rank - 2)
    ctx.b.affine(
        node.input[0],
        node.output[0],
        scale.reshape(per),
        shift.reshape(per),
        where=name,
        what=f"BatchNormalization {name!r}",
        sole_reader=ctx.uses.get(node.input[0], 0) == 1,
    )


# -- pooling ----------------------------------------------------------------------------------------
def pool(ctx, node) -> None:
    """AveragePool and MaxPool."""
    a, name, op = ctx.attrs(node), label(node), node.op_type
    if "kernel_shape" not in a:
        raise unsupported(name, op, "it has no kernel_shape")
    kernel = tuple(a["kernel_shape"])
    stride = tuple(a.get("strides", [1] * len(kernel)))
    if len(kernel) != 2 or any(d != 1 for d in a.get("dilations", [1, 1])):
        raise unsupported(name, op, "only undilated 2-d pooling is supported")
    if len(node.output) > 1 and node.output[1]:
        raise unsupported(name, op, "its indices output is used")
    padding = _padding(ctx, node, a, kernel, stride)
    kind = "maxpool2d" if op == "MaxPool" else "avgpool2d"
    if kind == "avgpool2d" and padding != (0, 0) and not a.get("count_include_pad", 0):
        raise unsupported(name, op, "padding without count_include_pad=1 is not supported")
    node_ = ctx.b.add(
        node.input[0], node.output[0], kind, name=ctx.layer_name(node), source=name, kernel=kernel, stride=stride, padding=padding
    )
    if a.get("ceil_mode", 0):  # harmless unless it adds a partial window
        _, h, w = ctx.b.graph.shapes()[node_.inputs[0]]
        t, left, bottom, right = pads4(padding)
        ceil = [math.ceil((s + p - k) / st) + 1 for s, p, k, st in zip((h, w), (t + bottom, left + right), kernel, stride)]
        if tuple(ceil) != ctx.b.shape(node.output[0])[1:]:
            raise unsupported(node_.source, op, "ceil_mode=1 adds partial windows here")


def global_pool(ctx, node) -> None:
    shape = ctx.b.val(node.input[0], label(node), affine_ok=True).shape
    if len(shape) != 3:
        raise unsupported(label(node), node.op_type, "only (C, H, W) inputs are supported")
    k = tuple(shape[1:])
    kind = "maxpool2d" if node.op_type == "GlobalMaxPool" else "avgpool2d"
    ctx.b.add(node.input[0], node.output[0], kind, name=ctx.layer_name(node), source=label(node), kernel=k, stride=k)


# -- activations, merges and elementwise arithmetic -------------------------------------------------
def relu(ctx, node) -> None:
    ctx.b.relu(node.input[0], node.output[0], label(node))


def identity(ctx, node) -> None:
    if node.input[0] in ctx.consts:  # torch's exporter passes BN statistics through Identity
        ctx.consts[node.output[0]] = ctx.consts[node.input[0]]
        return
    if node.op_type == "Dropout":
        train = ctx.const(node.input[2]) if len(node.input) > 2 else None
        mode = " exported in training mode" if train is not None and bool(np.asarray(train)) else ""
        ctx.b.note(f"Dropout {label(node)!r}{mode} removed (identity at inference)")
    ctx.b.alias(node.input[0], node.output[0], label(node))


def softmax(ctx, node) -> None:
    axis = ctx.attrs(node).get("axis", 1 if ctx.opset < 13 else -1)
    kind = "softmax" if node.op_type == "Softmax" else "log_softmax"
    ctx.b.final_activation(node.input[0], node.output[0], kind, label(node), axis)


def _ends_network(ctx, tensor: str) -> bool:
    """Whether ``tensor`` is the model output, or reaches it through no-op layers only."""
    if tensor == ctx.output:
        return True
    readers = [n for n in ctx.nodes if tensor in n.input]
    return bool(readers) and all(
        n.op_type in ("Identity", "Dropout", "Flatten", "Reshape", "Squeeze") and _ends_network(ctx, n.output[0]) for n in readers
    )


def monotone(ctx, node) -> None:
    """Sigmoid/Tanh: dropped at the very end of the network (argmax unchanged), refused elsewhere."""
    if len(ctx.b.val(node.input[0], label(node)).shape) != 1 or not _ends_network(ctx, node.output[0]):
        raise unsupported(label(node), node.op_type)
    ctx.b.final_activation(node.input[0], node.output[0], node.op_type.lower(), label(node), None)


def sum_(ctx, node) -> None:
    """Sum of two or more activations: a residual merge (what snnbalance's own ONNX export writes)."""
    name = label(node)
    if not all(ctx.b.has(i) for i in node.input):
        raise unsupported(name, node.op_type, "only a sum of activations is supported")
    if len(node.input) == 1:
        return identity(ctx, node)
    ctx.b.merge_add(list(node.input), node.output[0], name=ctx.layer_name(node), source=name)


def binary(ctx, node) -> None:
    """Add/Sub/Mul/Div: a residual merge of two activations, or an affine map with a constant."""
    op, name = node.op_type, label(node)
    acts = [i for i in node.input[:2] if ctx.b.has(i)]
    if not acts:
        return arith(ctx, node)
    if len(acts) == 2:
        if op not in ("Add", "Sub"):
            raise unsupported(name, op, "multiplying or dividing two activations is not supported")
        ctx.b.merge_add(acts, node.output[0], name=ctx.layer_name(node), source=name, scales=[1.0, 1.0 if op == "Add" else -1.0])
        return
    first = node.input[0] == acts[0]
    other = node.input[1] if first else node.input[0]
    c = ctx.const(other)
    if c is None:
        raise unsupported(name, op, "its other operand must be a constant or an activation")
    c = np.asarray(c, np.float64)
    one, zero = np.ones_like(c), np.zeros_like(c)
    if op == "Div" and not first:
        raise unsupported(name, op, "dividing by an activation is not supported")
    if op == "Div" and not np.all(c != 0):
        raise unsupported(name, op, "it divides by zero")
    scale, shift = {
        "Add": lambda: (one, c),
        "Sub": lambda: (one, -c) if first else (-one, c),
        "Mul": lambda: (c, zero),
        "Div": lambda: (1.0 / c, zero),
    }[op]()
    ctx.b.affine(acts[0], node.output[0], scale, shift, where=name, what=f"{op} {name!r}", sole_reader=ctx.uses.get(acts[0], 0) == 1)


def concat(ctx, node) -> None:
    ins = [i for i in node.input if i]
    if not any(ctx.b.has(i) for i in ins):
        return shape_op(ctx, node)
    ctx.b.concat(ins, node.output[0], ctx.attrs(node)["axis"], name=ctx.layer_name(node), source=label(node))


def transpose(ctx, node) -> None:
    if not ctx.b.has(node.input[0]):
        if node.input[0] in ctx.consts:
            ctx.fold(node)
        else:
            shape_op(ctx, node)
        return
    v = ctx.b.val(node.input[0], label(node), affine_ok=True, layout_ok=True)
    perm = ctx.attrs(node).get("perm", list(range(len(v.shape) + 1))[::-1])
    ctx.b.transpose(node.input[0], node.output[0], perm, label(node))


# -- reshapes ---------------------------------------------------------------------------------------
def flatten(ctx, node) -> None:
    shape = ctx.b.val(node.input[0], label(node), view_ok=True, affine_ok=True, layout_ok=True).src_shape
    axis = ctx.attrs(node).get("axis", 1)
    if axis < 0:
        axis += len(shape) + 1
    if axis != 1:
        raise unsupported(label(node), "Flatten", f"axis={axis} mixes samples; only axis=1 is supported")
    ctx.b.reshape(node.input[0], node.output[0], (math.prod(shape),), name=ctx.layer_name(node), source=label(node))


def reshape(ctx, node) -> None:
    if not ctx.b.has(node.input[0]):
        return shape_op(ctx, node)
    name = label(node)
    shape = ctx.b.val(node.input[0], name, view_ok=True, affine_ok=True, layout_ok=True).src_shape
    feats = math.prod(shape)
    target, out = as_list(ctx, node.input[1]), None
    if target is not None:
        if not ctx.attrs(node).get("allowzero", 0):  # 0 copies the input's dim at that position
            full = [B, *shape]
            target = [full[i] if t == 0 and i < len(full) else t for i, t in enumerate(target)]
        rest = target[1:]
        if target and (target[0] == B or (ctx.batch is not None and target[0] == ctx.batch)) and B not in rest and rest.count(-1) <= 1:
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
        raise unsupported(name, "Reshape", f"reshaping {tuple(shape)} to {target} is not a flatten to (batch, features)")
    ctx.b.reshape(node.input[0], node.output[0], out, name=ctx.layer_name(node), source=name)


def squeeze(ctx, node) -> None:
    """Squeeze/Unsqueeze of activations, e.g. (C, 1, 1) -> (C,) after global pooling."""
    if not ctx.b.has(node.input[0]):
        return shape_op(ctx, node)
    name = label(node)
    shape = list(ctx.b.val(node.input[0], name, view_ok=True, affine_ok=True, layout_ok=True).src_shape)
    a = ctx.attrs(node)
    axes = a.get("axes") if "axes" in a else (as_list(ctx, node.input[1]) if len(node.input) > 1 else None)
    out: list[Any] | None
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
