"""What exporters really write (issue 13), rewritten to what IF neurons can run.

One test model per pattern, written here with torch.onnx at the relevant opsets or by hand with
``onnx.helper`` in the CNTK/Chainer/Keras(tf2onnx) forms, from tiny networks trained for a few
seconds on MNIST. Each converts with the import check passing (the rewritten graph matches
onnxruntime on the source file), says what it rewrote, and its data-based SNN (NumPy reference)
stays within 1.5 points of its ANN.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from conftest import fit, needs_mnist  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from snnbalance.errors import SnnBalanceError, UnsupportedError  # noqa: E402
from snnbalance.graph_ops import ann_accuracy  # noqa: E402
from snnbalance.importers import load_model  # noqa: E402
from snnbalance.normalize import normalize  # noqa: E402
from snnbalance.records import Calibration  # noqa: E402
from snnbalance.simulate import SimConfig, simulate  # noqa: E402

TRAIN, TEST, CALIB = 6000, 200, 300
DURATION = 100.0  # ms; reset by subtraction (see docs/networks.md, "Converting real-world networks well")
TOLERANCE = 0.015


# -- tiny trained networks ---------------------------------------------------------------------------
class PoolThenRelu(nn.Module):
    """The PyTorch MNIST example's ``F.relu(F.max_pool2d(conv(x), 2))`` twice, small."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2, self.fc = nn.Conv2d(1, 8, 5), nn.Conv2d(8, 16, 5), nn.Linear(16 * 4 * 4, 10)

    def forward(self, x):
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2(x), 2))
        return self.fc(x.view(x.size(0), -1))


class BnAfterRelu(nn.Module):
    """torch 1.x's ``BatchNorm1d`` after ReLU (exported at opset 9 inside Unsqueeze/Squeeze)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.bn, self.fc2 = nn.Linear(784, 48), nn.BatchNorm1d(48), nn.Linear(48, 10)

    def forward(self, x):
        return self.fc2(self.bn(F.relu(self.fc1(x.flatten(1)))))


class LinearLinear(nn.Module):
    """Two Linear layers without a ReLU between them (a bottleneck), then a ReLU layer."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(784, 32), nn.Linear(32, 48), nn.Linear(48, 10)

    def forward(self, x):
        return self.fc3(F.relu(self.fc2(self.fc1(x.flatten(1)))))


class ConvLinear(nn.Module):
    """A strided conv without ReLU read by a Linear layer."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.fc1, self.fc2 = nn.Conv2d(1, 4, 4, stride=2, padding=1), nn.Linear(4 * 14 * 14, 48), nn.Linear(48, 10)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(self.conv(x).flatten(1))))


class SamePadEven(nn.Module):
    """Keras' Conv2D(4, padding='same'): pads 1 before and 2 after; then max pooling."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 6, 4), nn.Linear(6 * 14 * 14, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv(F.pad(x, (1, 2, 1, 2)))), 2)
        return self.fc(x.flatten(1))


class TwoHeads(nn.Module):
    """Logits and a feature vector: a model with several outputs."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x):
        h = F.relu(self.net.fc1(x.flatten(1)))
        return self.net.fc2(self.net.bn(h)), h


@pytest.fixture(scope="module")
def mnist():
    from snnbalance.data import load_dataset

    xtr, ytr = load_dataset("mnist", "train")
    xte, yte = load_dataset("mnist", "test")
    return xtr[:TRAIN], ytr[:TRAIN], xtr[-CALIB:], xte[:TEST], yte[:TEST]


@pytest.fixture(scope="module")
def nets(mnist):
    """Each network trained once per module (about a second each on one core)."""
    cache: dict[str, nn.Module] = {}

    def get(cls) -> nn.Module:
        if cls.__name__ not in cache:
            torch.manual_seed(0)
            cache[cls.__name__] = fit(cls(), mnist[0], mnist[1])
        return cache[cls.__name__]

    return get


_SIMULATED: dict[bytes, tuple[float, float]] = {}


def snn_vs_ann(graph, mnist) -> tuple[float, float]:
    """ANN and data-based SNN accuracy; a graph that computes what an already simulated one does (the
    same network from another exporter or opset) reuses its simulation."""
    _, _, calib, x, y = mnist
    key = (
        repr([(n.op, n.relu) for n in graph.nodes]).encode() + np.round(graph.forward(x[:50].reshape(50, *graph.input_shape)), 3).tobytes()
    )
    if key not in _SIMULATED:
        _SIMULATED[key] = _simulate(graph, mnist)
    return _SIMULATED[key]


def _simulate(graph, mnist) -> tuple[float, float]:
    _, _, calib, x, y = mnist
    balanced = normalize(graph, "data-based", calibration=Calibration(calib.reshape(len(calib), *graph.input_shape)))
    x = x.reshape(len(x), *graph.input_shape)
    result = simulate(balanced.graph, x, y, SimConfig(duration=DURATION, reset="subtract", batch_size=TEST), simulator="numpy")
    return ann_accuracy(graph, x, y), result.final_accuracy


# -- writing the files ---------------------------------------------------------------------------------
def export(model: nn.Module, opset: int, batch: int = 1, dynamic: bool = False, **kw) -> onnx.ModelProto:
    f = io.BytesIO()
    extra = {"input_names": ["x"], "dynamic_axes": {"x": {0: "batch"}}} if dynamic else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.rand(batch, 1, 28, 28),), f, dynamo=False, opset_version=opset, **extra, **kw)
    return onnx.load_from_string(f.getvalue())


def _t(name: str, a) -> onnx.TensorProto:
    a = np.asarray(a)
    return numpy_helper.from_array(a.astype(np.int64 if a.dtype.kind in "iu" else np.float32), name)


def hand(nodes, inits, in_dims, opset, outputs=("y",), producer="", inits_as_inputs=False) -> onnx.ModelProto:
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_dims))]
    if inits_as_inputs:  # what CNTK and old exporters write
        inputs += [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in inits]
    g = helper.make_graph(nodes, "m", inputs, [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name=producer)
    m.ir_version = min(m.ir_version, 7 if opset >= 9 else 3)
    return m


def params(net: nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().astype(np.float64) for k, v in net.state_dict().items() if v.dtype.is_floating_point}


def cntk_bn_opset8(net: BnAfterRelu) -> onnx.ModelProto:
    """(N, 28, 28) input, MatMul + broadcast Add, BatchNormalization with its (unused) training outputs
    inside Unsqueeze/Squeeze, Reshape of a weight initializer, initializers listed as inputs."""
    p = params(net)
    nodes = [
        helper.make_node("Reshape", ["x", "flat"], ["f"], name="flatten"),
        helper.make_node("Reshape", ["w1_flat", "w1_shape"], ["w1"], name="w1_reshape"),
        helper.make_node("MatMul", ["f", "w1"], ["h"], name="dense1"),
        helper.make_node("Add", ["h", "b1"], ["hb"], name="dense1_bias"),
        helper.make_node("Relu", ["hb"], ["hr"], name="relu1"),
        helper.make_node("Unsqueeze", ["hr"], ["hu"], name="bn_unsqueeze", axes=[2]),
        helper.make_node(
            "BatchNormalization", ["hu", "g", "b", "m", "v"], ["bn", "mean", "var", "sm", "sv"], name="bn", epsilon=1e-5, spatial=1
        ),
        helper.make_node("Squeeze", ["bn"], ["bs"], name="bn_squeeze", axes=[2]),
        helper.make_node("Gemm", ["bs", "w2", "b2"], ["y"], name="dense2", transB=1),
    ]
    inits = [
        _t("flat", [-1, 784]),
        _t("w1_flat", p["fc1.weight"].T.reshape(-1)),
        _t("w1_shape", [784, 48]),
        _t("b1", p["fc1.bias"][None]),
        _t("g", p["bn.weight"]),
        _t("b", p["bn.bias"]),
        _t("m", p["bn.running_mean"]),
        _t("v", p["bn.running_var"]),
        _t("w2", p["fc2.weight"]),
        _t("b2", p["fc2.bias"]),
    ]
    return hand(nodes, inits, ["N", 28, 28], 8, producer="CNTK", inits_as_inputs=True)


def torch1_bn_opset9(net: BnAfterRelu) -> onnx.ModelProto:
    """torch 1.x at opset 9: BatchNorm1d as Unsqueeze -> BatchNormalization -> Squeeze."""
    p = params(net)
    nodes = [
        helper.make_node("Flatten", ["x"], ["f"], name="Flatten_0", axis=1),
        helper.make_node("Gemm", ["f", "fc1.weight", "fc1.bias"], ["h"], name="Gemm_1", transB=1),
        helper.make_node("Relu", ["h"], ["hr"], name="Relu_2"),
        helper.make_node("Unsqueeze", ["hr"], ["hu"], name="Unsqueeze_3", axes=[2]),
        helper.make_node(
            "BatchNormalization",
            ["hu", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"],
            ["bn"],
            name="BatchNormalization_4",
            epsilon=1e-5,
            momentum=0.9,
        ),
        helper.make_node("Squeeze", ["bn"], ["bs"], name="Squeeze_5", axes=[2]),
        helper.make_node("Gemm", ["bs", "fc2.weight", "fc2.bias"], ["y"], name="Gemm_6", transB=1),
    ]
    return hand(nodes, [_t(k, v) for k, v in p.items() if "num_batches" not in k], ["N", 1, 28, 28], 9, producer="pytorch 1.3")


def chainer_pool(net: PoolThenRelu) -> onnx.ModelProto:
    """onnx-chainer: max pooling with cover_all writes pads [0, 0, 1, 1] that add no window here."""
    p = params(net)
    nodes = []
    for k, src in ((1, "x"), (2, "mp1")):
        nodes += [
            helper.make_node(
                "Conv",
                [src, f"W{k}", f"B{k}"],
                [f"c{k}"],
                name=f"Convolution2DFunction-{k}",
                kernel_shape=[5, 5],
                pads=[0, 0, 0, 0],
                strides=[1, 1],
            ),
            helper.make_node("Relu", [f"c{k}"], [f"r{k}"], name=f"ReLU-{k}"),
            helper.make_node(
                "MaxPool", [f"r{k}"], [f"mp{k}"], name=f"MaxPooling2D-{k}", kernel_shape=[2, 2], pads=[0, 0, 1, 1], strides=[2, 2]
            ),
        ]
    nodes += [
        helper.make_node("Reshape", ["mp2", "shape"], ["f"], name="Reshape-3"),
        helper.make_node("Gemm", ["f", "W3", "B3"], ["y"], name="LinearFunction-4", transB=1),
    ]
    inits = [
        _t("W1", p["conv1.weight"]),
        _t("B1", p["conv1.bias"]),
        _t("W2", p["conv2.weight"]),
        _t("B2", p["conv2.bias"]),
        _t("shape", [1, 256]),
        _t("W3", p["fc.weight"]),
        _t("B3", p["fc.bias"]),
    ]
    return hand(nodes, inits, [1, 1, 28, 28], 9, producer="Chainer")


def keras_same_even(net: SamePadEven) -> onnx.ModelProto:
    """tf2onnx from Keras: (N, 28, 28) input, Reshape to NHWC, Transpose, Conv auto_pad=SAME_UPPER with an
    even kernel, bias as a broadcast Add, max pooling, channels-last Flatten, MatMul + Add, Softmax."""
    p = params(net)
    w_fc = p["fc.weight"].reshape(10, 6, 14, 14).transpose(0, 2, 3, 1).reshape(10, -1)  # NHWC flatten order
    nodes = [
        helper.make_node("Reshape", ["x", "nhwc"], ["x4"], name="reshape/Reshape"),
        helper.make_node("Transpose", ["x4"], ["xt"], name="conv2d__6", perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["xt", "kernel"], ["c"], name="conv2d/Conv2D", auto_pad="SAME_UPPER", kernel_shape=[4, 4], strides=[1, 1]),
        helper.make_node("Add", ["c", "bias"], ["cb"], name="conv2d/BiasAdd"),
        helper.make_node("Relu", ["cb"], ["cr"], name="conv2d/Relu"),
        helper.make_node("MaxPool", ["cr"], ["mp"], name="max_pooling2d/MaxPool", kernel_shape=[2, 2], strides=[2, 2], auto_pad="VALID"),
        helper.make_node("Transpose", ["mp"], ["mpt"], name="max_pooling2d__14", perm=[0, 2, 3, 1]),
        helper.make_node("Reshape", ["mpt", "flat"], ["f"], name="flatten/Reshape"),
        helper.make_node("MatMul", ["f", "dense/kernel"], ["d"], name="dense/MatMul"),
        helper.make_node("Add", ["d", "dense/bias"], ["logits"], name="dense/BiasAdd"),
        helper.make_node("Softmax", ["logits"], ["y"], name="dense/Softmax", axis=1),
    ]
    inits = [
        _t("nhwc", [-1, 28, 28, 1]),
        _t("kernel", p["conv.weight"]),
        _t("bias", p["conv.bias"].reshape(1, 6, 1, 1)),
        _t("flat", [-1, 6 * 14 * 14]),
        _t("dense/kernel", w_fc.T),
        _t("dense/bias", p["fc.bias"]),
    ]
    return hand(nodes, inits, ["unk__1", 28, 28], 13, producer="tf2onnx")


def with_output_op(model: onnx.ModelProto, op: str, **attrs) -> onnx.ModelProto:
    """``model`` with ``op`` applied to its output (a monotone head); Mul takes a positive constant."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    out = m.graph.output[0].name
    m.graph.node[-1].output[0] = "pre_head"
    ins = ["pre_head", "head_scale"] if op == "Mul" else ["pre_head"]
    if op == "Mul":
        m.graph.initializer.append(_t("head_scale", np.float32(2.5)))
    m.graph.node.append(helper.make_node(op, ins, [out], name="head", **attrs))
    return m


# -- the patterns -----------------------------------------------------------------------------------------
def case(name: str, nets, mnist):
    """(ONNX model or module, load_model options, net kind, notes that must appear, graph (op, relu) list)."""
    if name == "relu-after-maxpool-torch":
        return nets(PoolThenRelu), {"input_shape": (1, 28, 28)}, ["moved before max pooling"]
    if name == "relu-after-maxpool-opset11":
        return export(nets(PoolThenRelu), 11, dynamic=True), {}, ["moved before max pooling"]
    if name == "fixed-batch-10":
        m = export(nets(PoolThenRelu), 13, batch=10)
        assert m.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 10
        return m, {}, ["moved before max pooling"]
    if name == "opset9-torch":
        return export(nets(PoolThenRelu), 9), {}, ["moved before max pooling"]
    if name == "opset8-initializers-as-inputs":
        m = export(nets(PoolThenRelu), 8, dynamic=True)
        assert len(m.graph.input) > 1  # torch writes the weights as inputs too at opset 8
        return m, {}, ["moved before max pooling"]
    if name == "bn-unsqueeze-squeeze-opset9":
        return torch1_bn_opset9(nets(BnAfterRelu)), {}, ["BatchNormalization 'BatchNormalization_4' folded"]
    if name == "cntk-opset8-no-channel-axis":
        return cntk_bn_opset8(nets(BnAfterRelu)), {}, ["no channel axis", "BatchNormalization 'bn' folded"]
    if name == "keras-same-even-kernel":
        return keras_same_even(nets(SamePadEven)), {}, ["no channel axis", "pads asymmetrically", "softmax"]
    if name == "chainer-cover-all-pads":
        return chainer_pool(nets(PoolThenRelu)), {}, ["reaches no window; dropped"]
    if name == "linear-linear":
        return export(nets(LinearLinear), 17, dynamic=True), {}, ["composed into one dense layer"]
    if name == "conv-linear":
        return export(nets(ConvLinear), 17, dynamic=True), {}, ["composed into one dense layer"]
    if name in ("sigmoid-head", "logsoftmax-head", "positive-scale-head"):
        op, attrs = {"sigmoid-head": ("Sigmoid", {}), "logsoftmax-head": ("LogSoftmax", {"axis": 1}), "positive-scale-head": ("Mul", {})}[
            name
        ]
        m = with_output_op(export(nets(LinearLinear), 17, dynamic=True), op, **attrs)
        return m, {}, {"Sigmoid": ["dropped trailing sigmoid"], "LogSoftmax": ["dropped trailing log_softmax"], "Mul": []}[op]
    if name == "two-outputs":
        m = export(TwoHeads(nets(BnAfterRelu)).eval(), 17, dynamic=True, output_names=["logits", "features"])
        return m, {"classes": 10}, ["converting 'logits', the only one shaped (batch, classes)"]
    raise KeyError(name)


CASES = [
    "relu-after-maxpool-torch",
    "relu-after-maxpool-opset11",
    "fixed-batch-10",
    "opset9-torch",
    "opset8-initializers-as-inputs",
    "bn-unsqueeze-squeeze-opset9",
    "cntk-opset8-no-channel-axis",
    "keras-same-even-kernel",
    "chainer-cover-all-pads",
    "linear-linear",
    "conv-linear",
    "sigmoid-head",
    "logsoftmax-head",
    "positive-scale-head",
    "two-outputs",
]


@needs_mnist
@pytest.mark.parametrize("name", CASES)
def test_pattern_converts_within_tolerance(name, nets, mnist):
    source, kw, notes = case(name, nets, mnist)
    r = load_model(source, **kw)
    assert r.max_rel_error < 1e-4
    for text in notes:
        assert any(text in n for n in r.notes), (text, r.notes)
    ann, snn = snn_vs_ann(r.graph, mnist)
    print(f"{name}: ANN {ann:.4f}  SNN {snn:.4f}  notes {r.notes}")
    assert ann > 0.8
    assert snn >= ann - TOLERANCE


# -- without data: what is chosen, kept or refused --------------------------------------------------------
def two_output_model() -> onnx.ModelProto:
    torch.manual_seed(0)
    return export(TwoHeads(BnAfterRelu().eval()).eval(), 17, dynamic=True, output_names=["logits", "features"])


def test_several_outputs_are_chosen_by_name_or_listed():
    m = two_output_model()
    with pytest.raises(
        SnnBalanceError,
        match=r"^the ONNX model has 2 outputs \(logits \('\?', 10\), features "
        r"\('\?', 48\)\); choose the class scores with --model-output NAME$",
    ):
        load_model(m)
    r = load_model(m, model_output="logits")
    assert r.model_output == "logits" and r.graph.output.weight.shape[0] == 10 and r.max_rel_error < 1e-4
    r = load_model(m, model_output="features")  # the check compares with that output
    assert r.graph.output.weight.shape[0] == 48 and r.max_rel_error < 1e-4
    with pytest.raises(
        SnnBalanceError,
        match=r"--model-output 'probs' is not an output of the model; its outputs: "
        r"logits",
    ):
        load_model(m, model_output="probs")


def test_hidden_sigmoid_and_conv_sigmoid_stay_refused():
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Flatten", ["x"], ["f"]),
        helper.make_node("Gemm", ["f", "w1"], ["h"], transB=1),
        helper.make_node("Sigmoid", ["h"], ["s"], name="act"),
        helper.make_node("Gemm", ["s", "w2"], ["y"], transB=1),
    ]
    m = hand(nodes, [_t("w1", rng.normal(size=(8, 16))), _t("w2", rng.normal(size=(3, 8)))], ["N", 1, 4, 4], 17)
    with pytest.raises(UnsupportedError, match=r"'act' \(Sigmoid\).*ReLU"):
        load_model(m)


def test_relu_after_maxpool_refused_when_the_pool_input_is_also_read():
    class Both(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv2d(1, 2, 3), nn.Linear(2 * 2 * 2 + 2 * 4 * 4, 2)

        def forward(self, x):
            c = self.conv(x)
            return self.fc(torch.cat([F.relu(F.max_pool2d(c, 2)).flatten(1), F.relu(c).flatten(1)], 1))

    with pytest.raises(UnsupportedError):
        load_model(Both().eval(), input_shape=(1, 6, 6))


def test_asymmetric_padding_is_a_kind_back_ends_must_support():
    r = load_model(keras_same_even(SamePadEven().eval()))
    conv = next(n for n in r.graph.nodes if n.op == "conv2d")
    assert conv.padding == (1, 1, 2, 2) and "asym-pad" in r.graph.kinds() and r.max_rel_error < 1e-4
    with pytest.raises(UnsupportedError, match=r"^fast does not support asymmetric padding \(layer .*\(1, 1, 2, 2\)"):
        r.graph.require({"conv2d", "maxpool2d", "flatten", "dense"}, "fast")


@pytest.mark.parametrize("auto,stride,kernel", [("SAME_UPPER", 2, 3), ("SAME_LOWER", 1, 2), ("SAME_UPPER", 2, 4)])
def test_auto_pad_same_matches_onnxruntime(auto, stride, kernel):
    rng = np.random.default_rng(1)
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", auto_pad=auto, kernel_shape=[kernel] * 2, strides=[stride] * 2),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Flatten", ["r"], ["f"]),
        helper.make_node("Gemm", ["f", "wd"], ["y"], transB=1),
    ]
    out = -(-7 // stride)
    m = hand(
        nodes,
        [_t("w", rng.normal(size=(2, 1, kernel, kernel))), _t("b", rng.normal(size=2)), _t("wd", rng.normal(size=(3, 2 * out * out)))],
        ["N", 1, 7, 7],
        13,
    )
    r = load_model(m)
    assert r.max_rel_error < 1e-4 and r.graph.shapes()["conv"] == (2, out, out)


def test_layer_table_widens_to_long_names():
    from snnbalance.graph import Graph, Node

    long = "features.block3.conv_with_a_long_name"
    g = Graph(
        (4,),
        [
            Node(long, "dense", weight=np.ones((3, 4), np.float32), relu=True),
            Node("fc", "dense", (long,), weight=np.ones((2, 3), np.float32)),
        ],
    )
    lines = g.format_summary().splitlines()
    kind_col = lines[0].index("kind")
    assert kind_col > len(long) and lines[2].index("dense+relu") == kind_col and lines[3].index("dense") == kind_col


def test_cli_model_output_and_calibration_dataset(tmp_path, capsys):
    from snnbalance.cli import main

    rng = np.random.default_rng(0)
    data, calib = tmp_path / "eval.npz", tmp_path / "calib.npz"
    np.savez(data, x=rng.random((20, 1, 28, 28), dtype=np.float32), y=rng.integers(0, 10, 20))
    np.savez(calib, x=rng.random((30, 1, 28, 28), dtype=np.float32), y=rng.integers(0, 10, 30))
    model = tmp_path / "two.onnx"
    onnx.save(two_output_model(), str(model))
    args = [
        "convert",
        str(model),
        "--dataset",
        str(data),
        "--samples",
        "20",
        "--duration",
        "10",
        "-n",
        "data-based",
        "--simulator",
        "numpy",
        "--calibration-samples",
        "20",
    ]

    def run(*more, code=0) -> str:
        with pytest.raises(SystemExit) as e:
            main([*args, *more])
        out = capsys.readouterr()
        assert e.value.code == code, out.err
        return " ".join((out.out + " " + out.err).split())  # notes go to stderr, results to stdout

    # an .npz dataset names no class count: two (batch, n) outputs need --model-output
    assert "choose the class scores with --model-output NAME" in run("-o", str(tmp_path / "c"), code=2)

    out = run("--model-output", "logits", "--calibration-dataset", str(calib), "-o", str(tmp_path / "a"))
    assert f"calibration: 20 seeded random images of {calib}" in out
    out = run("--model-output", "logits", "-o", str(tmp_path / "b"))  # an .npz has one split: say the evaluated images calibrate
    assert f"calibration: 20 seeded random images of {data} (an .npz file has one split" in out
