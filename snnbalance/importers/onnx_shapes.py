"""Constants and symbolic shape vectors while importing ONNX.

Exporters compute a flatten as ``Concat(Unsqueeze(Gather(Shape(x), 0)), [-1])`` and similar
chains. Such tensors are tracked as :class:`Sym` shape vectors whose entries are ints or the batch
symbol :data:`B`; anything computed only from constants is folded with ``onnx.reference``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import unsupported

B = "B"  # the batch dimension inside a symbolic shape


@dataclass
class Sym:
    """A shape vector whose entries are ints or the batch symbol ``B``."""

    vals: list
    scalar: bool = False


def label(node) -> str:
    return node.name or f"{node.op_type}->{node.output[0]}"


def as_list(ctx, name: str) -> list | None:
    """A constant or symbolic 1-d int vector as a list, else None."""
    if name in ctx.syms:
        return list(ctx.syms[name].vals)
    if name in ctx.consts:
        return [int(v) for v in np.asarray(ctx.consts[name]).reshape(-1)]
    return None


def constant(ctx, node) -> None:
    from onnx import numpy_helper

    a = node.attribute[0]
    value = ctx.helper.get_attribute_value(a)
    ctx.consts[node.output[0]] = numpy_helper.to_array(value) if a.name == "value" else np.asarray(value)


def shape_op(ctx, node) -> None:
    """Shape, Gather, Unsqueeze, Squeeze, Concat, Slice, Cast, Reshape on shape vectors; folds constants."""
    ins = [i for i in node.input if i]
    if all(i in ctx.consts for i in ins):
        return ctx.fold(node)
    op, out, a = node.op_type, node.output[0], ctx.attrs(node)
    if op == "Shape" and ctx.b.has(node.input[0]):
        full = [B, *ctx.b.val(node.input[0], label(node), view_ok=True, affine_ok=True, layout_ok=True).src_shape]
        ctx.syms[out] = Sym(full[a.get("start", 0) : a.get("end", len(full))])
        return
    src = ctx.syms.get(node.input[0])
    if op == "Concat" and all(i in ctx.syms or i in ctx.consts for i in ins):
        ctx.syms[out] = Sym([v for i in ins for v in as_list(ctx, i) or []])  # each is known: never None
    elif src is None:
        raise unsupported(label(node), op)
    elif op == "Cast":
        ctx.syms[out] = src
    elif op == "Gather" and node.input[1] in ctx.consts and a.get("axis", 0) == 0:
        idx = np.asarray(ctx.consts[node.input[1]])
        picked = [src.vals[int(i)] for i in idx.reshape(-1)]
        ctx.syms[out] = Sym(picked, scalar=idx.ndim == 0)
    elif op == "Unsqueeze" and src.scalar:
        ctx.syms[out] = Sym(src.vals)
    elif op == "Squeeze" and len(src.vals) == 1:
        ctx.syms[out] = Sym(src.vals, scalar=True)
    elif op == "Reshape" and len(src.vals) == 1 and as_list(ctx, node.input[1]) in ([], [1], [-1]):
        ctx.syms[out] = Sym(src.vals, scalar=as_list(ctx, node.input[1]) == [])  # unoptimized dynamo
    elif op == "Slice":
        bounds = [as_list(ctx, i) for i in node.input[1:3]] if ctx.opset >= 10 else [a["starts"], a["ends"]]
        extra = [as_list(ctx, i) for i in node.input[3:] if i]
        lo, hi = bounds[0], bounds[1]
        if lo is None or hi is None or any(e not in ([0], [1]) for e in extra):
            raise unsupported(label(node), op, "only constant 1-d slices of shapes are supported")
        ctx.syms[out] = Sym(src.vals[lo[0] : hi[0]])
    else:
        raise unsupported(label(node), op)


def arith(ctx, node) -> None:
    """Add/Sub/Mul/Div of constants or batch-free shape vectors (exporters compute C*H*W this way)."""
    ins = [i for i in node.input if i]
    for i in ins:
        if i in ctx.syms:
            vals = ctx.syms[i].vals
            if B in vals:
                raise unsupported(label(node), node.op_type, "arithmetic on the batch size is not supported")
            ctx.consts[i] = np.asarray(vals[0] if ctx.syms[i].scalar else vals, dtype=np.int64)
    if not all(i in ctx.consts for i in ins):
        raise unsupported(label(node), node.op_type)
    ctx.fold(node)
