"""ONNX -> :class:`~snnbalance.graph.Graph`, one handler per op type (:data:`HANDLERS`).

Every ONNX tensor is one of three things while importing: an activation (a tensor computed from the
network input, held by the :class:`~snnbalance.importers.builder.GraphBuilder`), a constant
(initializers, ``Constant`` nodes and anything computed only from constants, folded with
``onnx.reference``), or a symbolic shape vector (:class:`~.onnx_shapes.Sym`) such as
``Concat(Unsqueeze(Gather(Shape(x), 0)), [-1])``, which is how exporters spell
``x.view(x.size(0), -1)``. Only the first kind becomes graph nodes. Layer handlers live in
:mod:`.onnx_layers`, shape-vector handlers in :mod:`.onnx_shapes`.

Channels-last (NHWC) models, e.g. from Keras via tf2onnx, are detected from a leading
``Transpose(0, 3, 1, 2)`` or an (H, W, C) input, or declared with ``input_layout="nhwc"``; the
graph stays channels-first (see :mod:`.preprocess`).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any, Callable, cast

import numpy as np

from ..errors import SnnBalanceError, UnsupportedError, one_line
from ..graph import INPUT
from . import ImportResult, preprocess, unsupported
from . import onnx_layers as L
from .builder import GraphBuilder, _Val
from .onnx_shapes import Sym, constant, label, shape_op

OPSETS = range(8, 22)  # what real files use: CNTK and Chainer write 8 and 9, torch.onnx 9-20, tf2onnx 9-18


class _Ctx:
    def __init__(
        self,
        model,
        input_shape: tuple[int, ...] | None,
        input_layout: str | None = None,
        output: str | None = None,
        classes: int | None = None,
    ) -> None:
        from onnx import helper, numpy_helper

        self.helper = helper
        self.model = model
        g = model.graph
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        self.consts: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        self.syms: dict[str, Sym] = {}
        self.notes_early: list[str] = []
        self._inferred: dict[str, list] | None = None
        inputs = [i for i in g.input if i.name not in self.consts]  # old exporters list initializers too
        if len(inputs) != 1:
            raise UnsupportedError(f"the ONNX model has {len(inputs)} inputs; snnbalance converts networks with one input")
        self.output = self._choose_output(output, classes)
        self.nodes = _needed(g.node, self.output)  # what the chosen output depends on
        self.uses = Counter([i for n in self.nodes for i in n.input] + [self.output])
        inp = inputs[0]
        if inp.type.tensor_type.elem_type != 1:
            raise UnsupportedError(f"the ONNX model's input {inp.name!r} is not float32")
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in inp.type.tensor_type.shape.dim]
        self.batch = dims[0] if dims else None  # a fixed batch size, e.g. 1 from a torch export
        per_sample = dims[1:]
        known = bool(per_sample) and None not in per_sample
        if input_shape is None:
            if not known:
                raise SnnBalanceError(
                    f"the ONNX model's input {inp.name!r} has dims {dims}, not fixed per "
                    "sample; pass --input-shape, e.g. --input-shape 1,28,28"
                )
            input_shape = tuple(cast("list[int]", per_sample))  # known: no None in it
        elif known and tuple(per_sample) != tuple(input_shape):
            raise SnnBalanceError(f"--input-shape {tuple(input_shape)} does not match the ONNX model's input {tuple(per_sample)}")
        self.source_shape = tuple(input_shape)
        self.nhwc = self._channels_last(inp.name, tuple(input_shape), input_layout)
        if len(input_shape) == 2:  # (H, W) images without a channel axis (tf2onnx, CNTK): one channel
            self.b = GraphBuilder((1, *input_shape), (inp.name, "with channel axis"))
            self.b.vals[inp.name] = _Val(INPUT, tuple(input_shape), True, view_of=self.b.input_value)
            self.notes_early.append(f"input of shape {tuple(input_shape)} has no channel axis: read as {(1, *input_shape)} (one channel)")
            return
        c_first = (input_shape[2], input_shape[0], input_shape[1]) if self.nhwc else input_shape
        self.b = GraphBuilder(tuple(c_first), inp.name, nhwc=self.nhwc)

    def _choose_output(self, output: str | None, classes: int | None) -> str:
        """The model output to convert: ``output`` when given, the only one, or the only one shaped
        (batch, classes) -- ``classes`` outputs when given, else the only 2-d one (noted)."""
        outs = [o.name for o in self.model.graph.output]
        shapes = {
            o.name: (
                [d.dim_value if d.HasField("dim_value") else None for d in o.type.tensor_type.shape.dim]
                if o.type.tensor_type.HasField("shape")
                else None
            )
            or self.inferred_shape(o.name)
            for o in self.model.graph.output
        }
        listing = ", ".join(f"{n} {tuple('?' if d is None else d for d in shapes[n] or [])}" for n in outs)
        if output is not None:
            if output not in outs:
                raise SnnBalanceError(f"--model-output {output!r} is not an output of the model; its outputs: {listing}")
            return output
        if len(outs) == 1:
            return outs[0]
        flat = {n: s for n, s in shapes.items() if s is not None and len(s) == 2}  # (batch, scores)
        two_d = [n for n in outs if n in flat]
        fits = [n for n in two_d if flat[n][1] == classes] if classes else two_d
        if len(fits) != 1 and classes and len(two_d) == 1:
            fits = two_d
        if len(fits) != 1:
            raise SnnBalanceError(f"the ONNX model has {len(outs)} outputs ({listing}); choose the class scores with --model-output NAME")
        self.notes_early.append(
            f"the model has {len(outs)} outputs ({listing}); converting {fits[0]!r}, the only "
            "one shaped (batch, classes); choose another with --model-output NAME"
        )
        return fits[0]

    def _channels_last(self, name: str, shape: tuple[int, ...], layout: str | None) -> bool:
        """Whether the model reads its input channels-last (declared, or detected and noted)."""
        if layout is not None or len(shape) != 3:
            if layout == "nhwc" and len(shape) not in (2, 3):  # (H, W): one channel, either layout
                raise SnnBalanceError(f"input layout nhwc needs an (H, W, C) input, the model's is {shape}")
            return layout == "nhwc" and len(shape) == 3
        readers = [n for n in self.model.graph.node if name in n.input]
        perms = [list(self.attrs(n).get("perm", [])) for n in readers if n.op_type == "Transpose"]
        if perms and perms[0] == [0, 3, 1, 2]:
            return True  # a Keras/tf2onnx model: the Transpose says so
        if shape[2] in (1, 3, 4) and shape[0] not in (1, 3, 4) and shape[0] == shape[1] and shape[0] > 4:
            self.notes_early.append(f"input of shape {shape} assumed channels-last (H, W, C); pass --input-layout nchw if it is not")
            return True
        return False

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
                    self._inferred[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]
            except Exception:  # noqa: BLE001 - inference is only a fallback
                pass
        return self._inferred.get(name)

    def fold(self, node) -> None:
        """Evaluate a node whose inputs are all constants with the ONNX reference runtime."""
        from onnx.reference import ReferenceEvaluator

        h = self.helper
        names = [i for i in node.input if i]
        ins = [h.make_tensor_value_info(n, h.np_dtype_to_tensor_dtype(self.consts[n].dtype), self.consts[n].shape) for n in names]
        outs = [h.make_empty_tensor_value_info(o) for o in node.output if o]
        model = h.make_model(h.make_graph([node], "fold", ins, outs), opset_imports=self.model.opset_import)
        try:
            results = ReferenceEvaluator(model).run(None, {n: self.consts[n] for n in names})
        except Exception as e:  # noqa: BLE001
            raise unsupported(label(node), node.op_type, f"cannot evaluate it ({one_line(e)})") from None
        for o, r in zip([o for o in node.output if o], results):
            self.consts[o] = np.asarray(r)


HANDLERS: dict[str, Callable[[_Ctx, Any], None]] = {
    # weighted layers and batch norm (folded into them)
    "Gemm": L.gemm,
    "MatMul": L.matmul,
    "Conv": L.conv,
    "BatchNormalization": L.batchnorm,
    # pooling
    "AveragePool": L.pool,
    "MaxPool": L.pool,
    "GlobalAveragePool": L.global_pool,
    "GlobalMaxPool": L.global_pool,
    # activations, merges, elementwise arithmetic with constants (folded)
    "Relu": L.relu,
    "Softmax": L.softmax,
    "LogSoftmax": L.softmax,
    "Sigmoid": L.monotone,
    "Tanh": L.monotone,
    "Dropout": L.identity,
    "Identity": L.identity,
    "Add": L.binary,
    "Sub": L.binary,
    "Mul": L.binary,
    "Div": L.binary,
    "Sum": L.sum_,
    "Concat": L.concat,
    # layout and reshapes
    "Transpose": L.transpose,
    "Flatten": L.flatten,
    "Reshape": L.reshape,
    "Squeeze": L.squeeze,
    "Unsqueeze": L.squeeze,
    # constants and shape vectors
    "Constant": constant,
    **{op: shape_op for op in ("Shape", "Gather", "Slice", "Cast")},
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
            missing = _missing_external_data(path)
            if missing:
                raise SnnBalanceError(
                    f"cannot read ONNX model {path}: its weights are in a separate file that is "
                    f"not there: {missing[0]} (put it next to the model)"
                ) from None
            raise SnnBalanceError(f"cannot read ONNX model {path}: {one_line(e)}") from None
    return model, "ONNX ModelProto"


def _missing_external_data(path: Path) -> list[Path]:
    """External-data files the model names that do not exist (looked up next to the model)."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - not even the graph reads: not an external-data problem
        return []
    missing = []
    for t in proto.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            loc = next((e.value for e in t.external_data if e.key == "location"), None)
            if loc and not (path.parent / loc).is_file() and path.parent / loc not in missing:
                missing.append(path.parent / loc)
    return missing


def _needed(nodes, output: str) -> list:
    """The nodes ``output`` depends on, in order (a model with several outputs computes more)."""
    want, kept = {output}, []
    for node in reversed(list(nodes)):
        if any(o in want for o in node.output):
            kept.append(node)
            want.update(i for i in node.input if i)
    return kept[::-1]


def import_onnx(
    model,
    input_shape: tuple[int, ...] | None = None,
    *,
    input_layout: str | None = None,
    input_mean: Any = None,
    input_std: Any = None,
    output: str | None = None,
    classes: int | None = None,
) -> ImportResult:
    """Convert an ONNX model into a validated graph, without the equivalence check.

    Args:
        model: path of a ``.onnx`` file (external data next to it) or an ``onnx.ModelProto``.
        input_shape: per-sample input shape; read from the model's input when its dims are fixed.
        input_layout: ``"nchw"``/``"nhwc"``; None detects it.
        input_mean, input_std: the model reads ``(x - mean) / std``; folded into the first layer.
        output: the model output to convert (``--model-output``); None: the only one, or the only
            one shaped (batch, classes).
        classes: the dataset's class count, to recognise the class scores among several outputs.
    Raises:
        UnsupportedError: naming the op type and node of the first layer that cannot be converted.
        SnnBalanceError: unreadable file, or input dims that are neither fixed nor given.
    """
    model, source = load(model)
    ctx = _Ctx(model, input_shape, input_layout, output, classes)
    ctx.b.notes.extend(ctx.notes_early)
    ctx.b.normalize_input(input_mean, input_std)
    if ctx.opset not in OPSETS:
        ctx.b.note(f"ONNX opset {ctx.opset} is outside the tested range {OPSETS[0]}-{OPSETS[-1]}")
    for node in ctx.nodes:
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
    shape = ctx.source_shape if len(ctx.source_shape) == 2 else None
    return ImportResult(
        graph,
        ctx.b.notes,
        source=source,
        output_transform=transform,
        to_source=preprocess.source_input(input_mean, input_std, ctx.nhwc, shape),
        model_output=ctx.output if len(model.graph.output) > 1 else None,
    )
