"""Importers: PyTorch (fx, TorchScript, pickles, state_dicts) and ONNX produce equivalent graphs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from snnbalance.errors import SnnBalanceError, UnsupportedError  # noqa: E402
from snnbalance.importers import ImportResult, load_model  # noqa: E402
from snnbalance.importers.check import check_equivalence  # noqa: E402


def mlp(bias: bool = True) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(36, 16, bias=bias), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 5, bias=bias))


def cnn(bias: bool = True) -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=bias), nn.ReLU(inplace=True)),
        nn.AvgPool2d(2),
        nn.Conv2d(4, 6, 3, stride=2, padding=(1, 1), bias=bias),
        nn.ReLU(),
        nn.AvgPool2d(kernel_size=3, stride=1, padding=1),
        nn.Flatten(),
        nn.Dropout(),
        nn.Linear(6 * 3 * 3, 5, bias=bias),
    )


class FunctionalNet(nn.Module):
    """F.relu, torch.relu, torch.flatten, x.view(x.size(0), -1), F.avg_pool2d and F.dropout."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.conv1 = nn.Conv2d(1, 3, 3)
        self.fc1 = nn.Linear(3 * 2 * 2, 8)
        self.fc2 = nn.Linear(8, 4)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.avg_pool2d(x, 2)
        x = torch.flatten(x, 1)
        x = F.dropout(x, 0.5, self.training)
        x = torch.relu(self.fc1(x))
        x = self.drop(x).view(x.size(0), -1)
        return F.softmax(self.fc2(x), dim=1)


class ViewNet(nn.Module):
    """Flattens with view; ReLU after the flatten reaches back into the conv."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.conv = nn.Conv2d(1, 2, 3, bias=False)
        self.fc = nn.Linear(2 * 4 * 4, 3)

    def forward(self, x):
        x = self.conv(x)
        x = x.view(x.size(0), -1).relu()
        return self.fc(x)


class SmallNet(nn.Sequential):
    """Built with no arguments, for the arch + state_dict route."""

    def __init__(self) -> None:
        super().__init__(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(2 * 2 * 2, 3))


class Branchy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow: not traceable
            return self.fc(x)
        return -self.fc(x)


def relu_flags(result: ImportResult) -> dict[str, bool]:
    return {n.name: n.relu for n in result.graph.nodes if n.op in ("dense", "conv2d")}


def assert_close_to(result: ImportResult, module: nn.Module, shape) -> None:
    x = torch.rand(5, *shape)
    with torch.no_grad():
        ref = module.eval()(x).numpy()
    out = result.graph.forward(x.numpy())
    if result.output_transform == "softmax":
        out = torch.softmax(torch.from_numpy(out), 1).numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)


# -- nn.Module objects ----------------------------------------------------------------------------
@pytest.mark.parametrize("bias", [True, False])
def test_sequential_mlp(bias):
    model = mlp(bias)
    r = load_model(model, input_shape=(1, 6, 6))
    r.graph.validate()
    assert [n.op for n in r.graph.nodes] == ["flatten", "dense", "dense"]
    assert relu_flags(r) == {"fc1": True, "fc4": False}
    assert (r.graph.nodes[1].bias is not None) == bias
    assert r.graph.nodes[1].weight.dtype == np.float32
    assert r.max_rel_error < 1e-5
    assert any("Dropout" in n for n in r.notes)
    assert model.training  # the user's module is left as it was
    assert_close_to(r, model, (1, 6, 6))


@pytest.mark.parametrize("bias", [True, False])
def test_sequential_cnn(bias):
    r = load_model(cnn(bias), input_shape=(1, 12, 12))
    ops = [(n.name, n.op, n.relu) for n in r.graph.nodes]
    assert ops == [
        ("conv0.0", "conv2d", True),
        ("pool1", "avgpool2d", False),
        ("conv2", "conv2d", True),
        ("pool4", "avgpool2d", False),
        ("flatten5", "flatten", False),
        ("fc7", "dense", False),
    ]
    assert r.graph.node("conv2").stride == (2, 2) and r.graph.node("pool4").padding == (1, 1)
    assert r.max_rel_error < 1e-5
    assert_close_to(r, cnn(bias), (1, 12, 12))


def test_functional_module():
    r = load_model(FunctionalNet(), input_shape=(1, 6, 6))
    assert [(n.name, n.op) for n in r.graph.nodes] == [
        ("conv1", "conv2d"),
        ("avg_pool2d", "avgpool2d"),
        ("flatten", "flatten"),
        ("fc1", "dense"),
        ("fc2", "dense"),
    ]
    assert relu_flags(r) == {"conv1": True, "fc1": True, "fc2": False}
    assert r.output_transform == "softmax"
    assert any("softmax" in n and "argmax" in n for n in r.notes)
    assert_close_to(r, FunctionalNet(), (1, 6, 6))


def test_relu_after_view_merges_into_conv():
    r = load_model(ViewNet(), input_shape=(1, 6, 6))
    assert relu_flags(r) == {"conv": True, "fc": False}
    assert r.max_rel_error < 1e-5


class GlobalPool(nn.Module):
    """Global average pooling then squeeze(3).squeeze(2): the intermediate (C, 1) view is allowed."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(4)
        self.conv = nn.Conv2d(1, 4, 3)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.gap(F.relu(self.conv(x))).squeeze(3).squeeze(2))


def test_global_pool_and_squeeze(tmp_path):
    r = load_model(GlobalPool(), input_shape=(1, 6, 6))
    assert [(n.op, n.kernel) for n in r.graph.nodes][1:3] == [("avgpool2d", (4, 4)), ("flatten", None)]
    path = tmp_path / "gap.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(GlobalPool().eval(), (torch.zeros(1, 1, 6, 6),), str(path), dynamo=False)
    assert load_model(path).max_rel_error < 1e-5


def test_weights_are_copies():
    model = mlp()
    r = load_model(model, input_shape=(1, 6, 6))
    r.graph.node("fc1").weight[:] = 0
    assert model[1].weight.abs().sum() > 0


def test_default_input_shape_is_noted():
    r = load_model(nn.Sequential(nn.Flatten(), nn.Linear(784, 3)))
    assert r.graph.input_shape == (1, 28, 28)
    assert any("assumed (1, 28, 28)" in n for n in r.notes)


# -- files -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["script", "trace"])
def test_torchscript_file(tmp_path, how):
    model = FunctionalNet().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ts = torch.jit.script(model) if how == "script" else torch.jit.trace(model, torch.rand(1, 1, 6, 6))
    path = tmp_path / "model.pt"
    ts.save(str(path))
    r = load_model(path, input_shape=(1, 6, 6))
    assert relu_flags(r) == {"conv1": True, "fc1": True, "fc2": False}
    assert r.output_transform == "softmax" and r.max_rel_error < 1e-5
    assert "TorchScript" in r.source
    assert_close_to(r, model, (1, 6, 6))


def test_torchscript_object_default_shape():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ts = torch.jit.script(nn.Sequential(nn.Linear(10, 3), nn.ReLU(), nn.Linear(3, 2)))
    r = load_model(ts)
    assert r.graph.input_shape == (10,) and any("assumed (10,)" in n for n in r.notes)
    assert relu_flags(r) == {"fc0": True, "fc2": False}


def test_pickled_module_file(tmp_path):
    path = tmp_path / "whole.pth"
    torch.save(cnn(), path)
    r = load_model(str(path), input_shape=(1, 12, 12), trust=True)  # a whole module: the user trusts it
    assert r.max_rel_error < 1e-5 and "pickled" in r.source


def test_state_dict_with_arch(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(SmallNet().state_dict(), path)
    r = load_model(path, arch=f"{__name__}:SmallNet", input_shape=(1, 6, 6))
    assert [n.op for n in r.graph.nodes] == ["conv2d", "avgpool2d", "flatten", "dense"]
    with pytest.raises(SnnBalanceError, match="state_dict.*--arch "):
        load_model(path, input_shape=(1, 6, 6))
    with pytest.raises(SnnBalanceError, match="do not fit"):
        load_model(path, arch=f"{__name__}:FunctionalNet", input_shape=(1, 6, 6))
    with pytest.raises(SnnBalanceError, match="cannot build arch"):
        load_model(path, arch="no_such_module:Net")


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(SnnBalanceError, match="model file not found"):
        load_model(tmp_path / "nope.onnx")
    with pytest.raises(SnnBalanceError, match="model file not found"):
        load_model(tmp_path / "nope.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(SnnBalanceError, match="cannot read") as e:
        load_model(junk)
    assert "\n" not in str(e.value)
    bad = tmp_path / "junk.onnx"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(SnnBalanceError, match="cannot read ONNX model"):
        load_model(bad)


# -- ONNX exported from torch -------------------------------------------------------------------------
@pytest.mark.parametrize("dynamo", [False, True])
def test_onnx_from_torch(tmp_path, dynamo):
    model = FunctionalNet().eval()
    path = tmp_path / "m.onnx"
    x = torch.rand(2, 1, 6, 6)
    kwargs = (
        {"dynamic_shapes": ({0: torch.export.Dim("batch")},)} if dynamo else {"input_names": ["x"], "dynamic_axes": {"x": {0: "batch"}}}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(model, (x,), str(path), dynamo=dynamo, **kwargs)
        except ImportError as e:  # the dynamo exporter needs onnxscript
            pytest.skip(f"torch.onnx.export(dynamo={dynamo}) unavailable: {e}")
    r = load_model(path)
    assert r.graph.input_shape == (1, 6, 6)
    assert relu_flags(r) == {"conv1": True, "fc1": True, "fc2": False}
    assert r.output_transform == "softmax" and r.max_rel_error < 1e-5
    assert_close_to(r, model, (1, 6, 6))


def test_onnx_fixed_batch_view(tmp_path):
    path = tmp_path / "fixed.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(ViewNet().eval(), (torch.rand(1, 1, 6, 6),), str(path), dynamo=False)
    r = load_model(path)
    assert relu_flags(r) == {"conv": True, "fc": False} and r.max_rel_error < 1e-5


# -- ONNX built by hand -----------------------------------------------------------------------------
def _init(name, arr):
    return numpy_helper.from_array(np.asarray(arr, dtype=np.float32 if np.asarray(arr).dtype.kind == "f" else np.int64), name)


def hand_model(nodes, inits, in_dims=("N", 1, 4, 4), opset=17):
    g = helper.make_graph(
        nodes,
        "hand",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_dims))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def gemm_model(opset=17):
    rng = np.random.default_rng(0)
    w1, b1 = rng.normal(size=(8, 16)), rng.normal(size=8)  # Gemm transB=1: (out, in) like torch
    w2, b2 = rng.normal(size=(8, 3)), rng.normal(size=3)  # MatMul: (in, out)
    nodes = [
        helper.make_node("Reshape", ["x", "shape"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "w1", "b1"], ["h"], name="fc1", transB=1),
        helper.make_node("Relu", ["h"], ["hr"], name="relu1"),
        helper.make_node("Dropout", ["hr"], ["hd"], name="drop"),
        helper.make_node("MatMul", ["hd", "w2"], ["m"], name="fc2"),
        helper.make_node("Add", ["m", "b2"], ["logits"], name="fc2_bias"),
        helper.make_node("Softmax", ["logits"], ["y"], name="prob", axis=1),
    ]
    inits = [_init("shape", [-1, 16]), _init("w1", w1), _init("b1", b1), _init("w2", w2), _init("b2", b2)]
    return hand_model(nodes, inits, opset=opset), (w1, b1, w2, b2)


@pytest.mark.parametrize("opset", [11, 13, 21])
def test_hand_built_gemm_matmul(tmp_path, opset):
    model, (w1, b1, w2, b2) = gemm_model(opset)
    path = tmp_path / "hand.onnx"
    onnx.save(model, str(path))
    r = load_model(path)
    assert [(n.name, n.op, n.relu) for n in r.graph.nodes] == [
        ("flatten", "flatten", False),
        ("fc1", "dense", True),
        ("fc2", "dense", False),
    ]
    np.testing.assert_array_equal(r.graph.node("fc1").weight, w1.astype(np.float32))
    np.testing.assert_array_equal(r.graph.node("fc2").weight, w2.T.astype(np.float32))
    np.testing.assert_array_equal(r.graph.node("fc2").bias, b2.astype(np.float32))
    assert any("softmax 'prob'" in n for n in r.notes) and r.output_transform == "softmax"
    assert r.max_rel_error < 1e-5


def _batch_dim_nodes(spelling: str) -> list:
    """Nodes computing ``batch1`` = [batch size] from ``p`` the way exporters spell it."""
    if spelling == "legacy":  # torch.onnx TorchScript exporter: Shape -> Gather -> Unsqueeze
        return [
            helper.make_node("Shape", ["p"], ["s"]),
            helper.make_node("Constant", [], ["zero"], value=numpy_helper.from_array(np.array(0, np.int64))),
            helper.make_node("Gather", ["s", "zero"], ["batch"], axis=0),
            helper.make_node("Unsqueeze", ["batch", "axes"], ["batch1"]),
        ]
    # dynamo without optimization: Shape(start, end) -> Squeeze -> Reshape to [1]
    return [
        helper.make_node("Shape", ["x"], ["s"], start=0, end=1),
        helper.make_node("Squeeze", ["s"], ["batch"]),
        helper.make_node("Reshape", ["batch", "one"], ["batch1"]),
    ]


@pytest.mark.parametrize("spelling", ["legacy", "dynamo"])
def test_hand_built_conv_pool_shape_chain(spelling):
    rng = np.random.default_rng(1)
    w, b = rng.normal(size=(3, 1, 3, 3)), rng.normal(size=3)
    wd = rng.normal(size=(2, 12))
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="/conv/Conv", pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c"], ["cr"], name="/Relu"),
        helper.make_node("AveragePool", ["cr"], ["p"], name="/pool/AveragePool", kernel_shape=[2, 2], strides=[2, 2]),
        *_batch_dim_nodes(spelling),
        helper.make_node("Concat", ["batch1", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["p", "target"], ["f"], name="/Reshape"),
        helper.make_node("Gemm", ["f", "wd"], ["y"], name="/fc/Gemm", transB=1),
    ]
    inits = [_init("w", w), _init("b", b), _init("wd", wd), _init("axes", [0]), _init("minus1", [-1]), _init("one", [1])]
    r = load_model(hand_model(nodes, inits))
    assert [(n.name, n.op, n.relu) for n in r.graph.nodes] == [
        ("conv", "conv2d", True),
        ("pool", "avgpool2d", False),
        ("flatten2", "flatten", False),
        ("fc", "dense", False),
    ]
    assert r.graph.node("conv").padding == (1, 1) and r.max_rel_error < 1e-5


def test_external_data(tmp_path):
    model, _ = gemm_model()
    path = tmp_path / "ext" / "model.onnx"
    path.parent.mkdir()
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    assert (path.parent / "weights.bin").is_file()
    r = load_model(path)
    assert r.max_rel_error < 1e-5
    (path.parent / "weights.bin").unlink()
    with pytest.raises(SnnBalanceError, match="cannot read ONNX model"):
        load_model(path)


def test_onnx_needs_input_shape_when_dims_are_free():
    model, _ = gemm_model()
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "H"
    with pytest.raises(SnnBalanceError, match="--input-shape"):
        load_model(model)
    assert load_model(model, input_shape=(1, 4, 4)).graph.input_shape == (1, 4, 4)


class _Head(nn.Module):
    """An MLP whose logits go through ``head`` (a function or a Tensor method)."""

    def __init__(self, head):
        super().__init__()
        self.fc1, self.fc2, self.head = nn.Linear(16, 8), nn.Linear(8, 3), head

    def forward(self, x):
        return self.head(self.fc2(F.relu(self.fc1(x))))


@pytest.mark.parametrize(
    "model,act",
    [
        (nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3), nn.Sigmoid()), "sigmoid"),
        (nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3), nn.Tanh()), "tanh"),
        (_Head(torch.sigmoid), "sigmoid"),
        (_Head(F.tanh), "tanh"),
        (_Head(lambda t: t.sigmoid()), "sigmoid"),
    ],
)
def test_a_monotone_head_of_a_torch_module_is_dropped(model, act):
    """Sigmoid/Tanh ending the network do not change the argmax: dropped with a note, the import
    check applies them before comparing (as the ONNX importer does)."""
    r = load_model(model, input_shape=(16,))
    assert r.output_transform == act and r.max_rel_error < 1e-5
    assert any(f"dropped trailing {act}" in n for n in r.notes)
    x = torch.rand(64, 16)
    with torch.no_grad():
        want = model.eval()(x).numpy()
    got = r.graph.forward(x.numpy())
    np.testing.assert_array_equal(got.argmax(1), want.argmax(1))
    np.testing.assert_allclose(
        torch.sigmoid(torch.from_numpy(got)).numpy() if act == "sigmoid" else np.tanh(got), want, rtol=1e-4, atol=1e-5
    )


@pytest.mark.parametrize(
    "model",
    [
        nn.Sequential(nn.Linear(16, 8), nn.Sigmoid(), nn.Linear(8, 3)),  # hidden
        nn.Sequential(nn.Linear(16, 3), nn.Sigmoid(), nn.Softmax(1)),  # not the last operation
    ],
)
def test_a_sigmoid_that_does_not_end_the_network_stays_refused(model):
    with pytest.raises(UnsupportedError, match=r"'1' \(Sigmoid\).*ReLU"):
        load_model(model, input_shape=(16,))


# -- clear errors ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "layer,kind,hint",
    [
        (nn.Sigmoid(), "Sigmoid", "ReLU"),
        (nn.GELU(), "GELU", "ReLU"),
        (nn.Upsample(scale_factor=1), "Upsample", "Linear, Conv2d"),
    ],
)
def test_unsupported_torch_layers(layer, kind, hint):
    model = nn.Sequential()
    model.add_module("features", nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), layer))
    model.add_module("head", nn.Sequential(nn.Flatten(), nn.Linear(32, 2)))
    with pytest.raises(UnsupportedError) as e:
        load_model(model, input_shape=(1, 6, 6))
    msg = str(e.value)
    assert f"'features.2' ({kind})" in msg and hint in msg and "\n" not in msg
    assert isinstance(e.value, SnnBalanceError)


def test_unsupported_functional_and_structure():
    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return self.fc(x) + x

    with pytest.raises(UnsupportedError, match=r"must end in a dense or conv layer, not add"):
        load_model(Residual(), input_shape=(4,))

    class Tanh(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.out = nn.Linear(4, 4), nn.Linear(4, 2)

        def forward(self, x):  # a hidden tanh (a trailing one is dropped: see the monotone-head test)
            return self.out(torch.tanh(self.fc(x)))

    with pytest.raises(UnsupportedError, match=r"'tanh' \(torch.tanh\)"):
        load_model(Tanh(), input_shape=(4,))
    # ReLU after a pool of unrectified values cannot be merged into the conv.
    bad = nn.Sequential(nn.Conv2d(1, 2, 3), nn.AvgPool2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(8, 2))
    with pytest.raises(UnsupportedError, match="ReLU '2'.*avgpool2d"):
        load_model(bad, input_shape=(1, 6, 6))
    # Linear -> Linear composes into one layer (tests/test_rewrites.py); Conv -> Conv stays refused.
    with pytest.raises(UnsupportedError, match="not followed by ReLU"):
        load_model(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Conv2d(2, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 2)), input_shape=(1, 6, 6))
    with pytest.raises(SnnBalanceError, match="cannot trace Branchy"):
        load_model(Branchy(), input_shape=(4,))

    class FixedBatch(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(16, 2)

        def forward(self, x):
            return self.fc(x.view(1, -1))

    with pytest.raises(SnnBalanceError, match="hard-codes the batch size"):
        load_model(FixedBatch(), input_shape=(1, 4, 4))
    with pytest.raises(SnnBalanceError, match=r"does not accept inputs of shape \(1, 5, 5\)"):
        load_model(FixedBatch(), input_shape=(1, 5, 5))


def test_unsupported_onnx_op():
    model, _ = gemm_model()
    model.graph.node[2].op_type = "Tanh"
    model.graph.node[2].name = "act1"
    with pytest.raises(UnsupportedError, match=r"'act1' \(Tanh\)") as e:
        load_model(model)
    assert "ReLU" in str(e.value)
    model, _ = gemm_model()
    model.graph.node[2].op_type = "LSTM"
    with pytest.raises(UnsupportedError, match=r"'relu1' \(LSTM\).*recurrent"):
        load_model(model)


def test_check_equivalence_catches_a_mismatch():
    model = mlp()
    r = load_model(model, input_shape=(1, 6, 6))
    r.graph.node("fc1").weight[0, 0] += 1.0
    with pytest.raises(SnnBalanceError, match="differs from the source model"):
        check_equivalence(r.graph, model, (1, 6, 6))
    assert check_equivalence(r.graph, model, (1, 6, 6), rtol=10.0) > 1e-4


# -- real-world constructs: each import is checked against its source (1e-4) ---------------------------
def _randomize_bn(model: nn.Module) -> nn.Module:
    """Give every batch norm non-trivial statistics, so that folding it is actually tested."""
    g = torch.Generator().manual_seed(5)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.3)
    return model.eval()


class ResBlock(nn.Module):
    """conv-bn-relu, conv-bn, plus a 1x1 conv + bn shortcut (a downsampling ResNet block), relu."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3)
        self.conv2, self.bn2 = nn.Conv2d(3, 3, 3, padding=1, bias=False), nn.BatchNorm2d(3)
        self.short = nn.Sequential(nn.Conv2d(2, 3, 1, bias=False), nn.BatchNorm2d(3))
        self.fc = nn.Linear(3 * 6 * 6, 4)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.short(x)
        return self.fc(torch.flatten(F.relu(out), 1))


class Identity(nn.Module):
    """An identity shortcut from a pooled layer, a subtraction of two branches, and torch.cat."""

    def __init__(self) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(2, 3, 3, padding=1)
        self.conv1 = nn.Conv2d(3, 3, 3, padding=1)
        self.conv2 = nn.Conv2d(3, 2, 1)
        self.fc = nn.Linear(8 * 3 * 3, 4)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv0(x)), 3, stride=2, padding=1)
        y = torch.relu(x + self.conv1(x))
        z = F.relu(self.conv2(y) - 0.5 * self.conv2(x))  # torch.sub of activations, constant scale
        return self.fc(torch.cat([y, x, z], dim=1).flatten(1))


class Arith(nn.Module):
    """Constant arithmetic after ReLU (folded forward) and after a conv (folded backward)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3)
        self.fc = nn.Linear(3 * 4 * 4, 4)

    def forward(self, x):
        x = F.relu(self.conv(x) * 2.0 - 0.1)
        return self.fc((x / 4.0 + 1.0).flatten(1))


def _bn_models():
    return {
        "bn after conv and linear": nn.Sequential(
            nn.Conv2d(2, 3, 3, padding=1),
            nn.BatchNorm2d(3),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(3 * 6 * 6, 5),
            nn.BatchNorm1d(5),
            nn.ReLU(),
            nn.Linear(5, 4),
        ),
        "bn after relu, into a padded conv": nn.Sequential(
            nn.Conv2d(2, 3, 3, padding=1),
            nn.ReLU(),
            nn.BatchNorm2d(3),
            nn.Conv2d(3, 2, 3, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(2 * 6 * 6, 4),
        ),
        "bn after pooling, into a linear": nn.Sequential(
            nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(3 * 3 * 3, 4)
        ),
        "max pooling (adaptive, ceil_mode without partial windows)": nn.Sequential(
            nn.Conv2d(2, 3, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2, ceil_mode=True),
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(),
            nn.Linear(3, 4),
        ),
        "residual block with a projection shortcut": ResBlock(),
        "identity shortcut, subtraction and concat": Identity(),
        "constant arithmetic": Arith(),
    }


@pytest.mark.parametrize("case", list(_bn_models()))
def test_real_world_torch_constructs_are_equivalent(case):
    torch.manual_seed(0)
    model = _randomize_bn(_bn_models()[case])
    r = load_model(model, input_shape=(2, 6, 6))
    assert r.max_rel_error < 1e-4
    assert_close_to(r, model, (2, 6, 6))
    ops = [n.op for n in r.graph.nodes]
    assert "batchnorm" not in ops
    if case.startswith("residual"):
        assert ops.count("add") == 1 and sum(r.graph.is_linear(n) for n in r.graph.nodes) == 2
    if case.startswith("bn after relu"):
        assert r.graph.nodes[1].bias.shape == (2, 6, 6)  # padding needs a per-position bias
        assert any("folded into the next layer" in n for n in r.notes)


def test_input_normalization_per_channel_and_channels_last_torch():
    class NHWC(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.fc = nn.Linear(4 * 5 * 5, 2)

        def forward(self, x):
            return self.fc(F.relu(self.conv(x.permute(0, 3, 1, 2))).flatten(1))

    torch.manual_seed(0)
    model = NHWC().eval()
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    r = load_model(model, input_shape=(5, 5, 3), input_mean=mean, input_std=std, input_layout="nhwc")
    assert r.graph.input_shape == (3, 5, 5) and r.max_rel_error < 1e-4
    x = np.random.default_rng(0).random((4, 3, 5, 5)).astype(np.float32)
    src = (x - np.array(mean, np.float32)[:, None, None]) / np.array(std, np.float32)[:, None, None]
    with torch.no_grad():
        want = model(torch.from_numpy(src.transpose(0, 2, 3, 1).copy())).numpy()
    np.testing.assert_allclose(r.graph.forward(x), want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(r.to_source(x), src.transpose(0, 2, 3, 1), rtol=1e-6)
    with pytest.raises(SnnBalanceError, match="input mean has 2 values"):
        load_model(model, input_shape=(5, 5, 3), input_mean=(0.1, 0.2), input_layout="nhwc")


def test_normalized_input_into_pooling_is_folded_through_or_refused():
    pooled = nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2, 2)).eval()
    r = load_model(pooled, input_shape=(1, 6, 6), input_mean=0.5, input_std=0.5)
    assert [n.op for n in r.graph.nodes][:2] == ["avgpool2d", "conv2d"] and r.max_rel_error < 1e-4
    signed = nn.Sequential(nn.ReLU(), nn.Flatten(), nn.Linear(36, 2)).eval()
    with pytest.raises(UnsupportedError, match="network input is normalized.*cannot stay non-negative"):
        load_model(signed, input_shape=(1, 6, 6), input_mean=0.5, input_std=0.5)


# -- ONNX: batch norm, max pooling, merges, channels-last, training-mode exports --------------------
def _bn_inits(prefix, n, rng):
    return [
        _init(f"{prefix}.{k}", v)
        for k, v in (("g", rng.random(n) + 0.5), ("b", rng.normal(size=n)), ("m", rng.normal(size=n)), ("v", rng.random(n) + 0.5))
    ]


@pytest.mark.parametrize("opset", [11, 15, 21])
def test_hand_built_bn_maxpool_residual_concat(opset):
    rng = np.random.default_rng(3)
    bn = lambda x, p, y: helper.make_node(
        "BatchNormalization",
        [x, f"{p}.g", f"{p}.b", f"{p}.m", f"{p}.v"],
        [y],  # noqa
        name=p,
        epsilon=1e-3,
    )
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        bn("c1", "bn1", "n1"),
        helper.make_node("Relu", ["n1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], name="conv2", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        bn("c2", "bn2", "n2"),
        helper.make_node("Add", ["n2", "p1"], ["s"], name="residual"),
        helper.make_node("Relu", ["s"], ["r2"], name="relu2"),
        helper.make_node("GlobalMaxPool", ["r2"], ["g"], name="gmp"),
        helper.make_node("GlobalAveragePool", ["r2"], ["ga"], name="gap"),
        helper.make_node("Concat", ["g", "ga"], ["cat"], name="cat", axis=1),
        helper.make_node("Flatten", ["cat"], ["f"], name="flat"),
        helper.make_node("Identity", ["f"], ["fi"], name="id"),
        helper.make_node("Gemm", ["fi", "wd", "bd"], ["y"], name="fc"),  # transB=0: (in, out)
    ]
    inits = [
        _init("w1", rng.normal(size=(3, 1, 3, 3))),
        _init("w2", rng.normal(size=(3, 3, 3, 3))),
        _init("b2", rng.normal(size=3)),
        _init("wd", rng.normal(size=(6, 4))),
        _init("bd", rng.normal(size=4)),
        *_bn_inits("bn1", 3, rng),
        *_bn_inits("bn2", 3, rng),
    ]
    r = load_model(hand_model(nodes, inits, opset=opset))
    assert [(n.name, n.op, n.relu) for n in r.graph.nodes] == [
        ("conv1", "conv2d", True),
        ("pool1", "maxpool2d", False),
        ("conv2", "conv2d", False),
        ("residual", "add", True),
        ("gmp", "maxpool2d", False),
        ("gap", "avgpool2d", False),
        ("cat", "concat", False),
        ("flat", "flatten", False),
        ("fc", "dense", False),
    ]
    assert r.max_rel_error < 1e-4


def _nhwc_conv_model(channels_first_input: bool = False):
    """tf2onnx style: NHWC input, Sub/Div per channel, Transpose, Conv, Transpose back, Flatten, MatMul."""
    rng = np.random.default_rng(4)
    nodes = [
        helper.make_node("Sub", ["x", "mean"], ["xs"], name="norm/sub"),
        helper.make_node("Div", ["xs", "std"], ["xn"], name="norm/div"),
        helper.make_node("Transpose", ["xn"], ["xt"], name="to_nchw", perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["xt", "w"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["cr"], name="relu"),
        helper.make_node("Transpose", ["cr"], ["ct"], name="to_nhwc", perm=[0, 2, 3, 1]),
        helper.make_node("Reshape", ["ct", "shape"], ["f"], name="flatten"),
        helper.make_node("MatMul", ["f", "wd"], ["m"], name="dense/MatMul"),
        helper.make_node("Add", ["m", "bd"], ["logits"], name="dense/BiasAdd"),
        helper.make_node("Softmax", ["logits"], ["y"], name="softmax", axis=-1),
    ]
    inits = [
        _init("mean", [0.4, 0.5, 0.6]),
        _init("std", [0.2, 0.3, 0.4]),
        _init("w", rng.normal(size=(4, 3, 3, 3))),
        _init("shape", [-1, 5 * 5 * 4]),
        _init("wd", rng.normal(size=(100, 3))),
        _init("bd", rng.normal(size=3)),
    ]
    return hand_model(nodes, inits, in_dims=("N", 5, 5, 3))


def test_channels_last_conv_model_is_transposed_and_permuted():
    r = load_model(_nhwc_conv_model())
    assert r.graph.input_shape == (3, 5, 5) and r.max_rel_error < 1e-4
    assert [n.op for n in r.graph.nodes] == ["conv2d", "flatten", "dense"]
    assert r.graph.node("conv").bias.shape == (4, 5, 5)  # normalization folded into a padded conv
    # the Keras flatten of the channels-last tensor permuted the dense layer's columns
    x = np.random.default_rng(0).random((2, 3, 5, 5)).astype(np.float32)
    sess = __import__("snnbalance.importers.check", fromlist=["onnx_session"]).onnx_session(_nhwc_conv_model())
    want = sess.run(None, {"x": r.to_source(x)})[0]
    out = r.graph.forward(x)
    np.testing.assert_allclose(np.exp(out) / np.exp(out).sum(1, keepdims=True), want, rtol=1e-4, atol=1e-6)


def test_channels_last_mlp_with_three_channels_and_declared_layout():
    rng = np.random.default_rng(5)
    nodes = [
        helper.make_node("Flatten", ["x"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "w", "b"], ["h"], name="dense", transB=1),
        helper.make_node("Relu", ["h"], ["hr"], name="relu"),
        helper.make_node("Gemm", ["hr", "w2"], ["y"], name="out", transB=1),
    ]
    inits = [_init("w", rng.normal(size=(6, 5 * 5 * 3))), _init("b", rng.normal(size=6)), _init("w2", rng.normal(size=(2, 6)))]
    model = hand_model(nodes, inits, in_dims=("N", 5, 5, 3))
    r = load_model(model)  # detected from the (H, W, 3) input
    assert r.graph.input_shape == (3, 5, 5) and any("assumed channels-last" in n for n in r.notes)
    # declared channels-first instead: the graph keeps the (4, 4, 3) input as it is
    r2 = load_model(model, input_layout="nchw")
    assert r2.graph.input_shape == (5, 5, 3) and r2.max_rel_error < 1e-4
    assert not np.array_equal(r.graph.node("dense").weight, r2.graph.node("dense").weight)


def test_training_mode_dropout_export(tmp_path):
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3))
    path = tmp_path / "train.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.rand(2, 1, 4, 4),),
            str(path),
            dynamo=False,
            opset_version=13,
            training=torch.onnx.TrainingMode.TRAINING,
            do_constant_folding=False,
        )
    assert any(n.op_type == "Dropout" for n in onnx.load(str(path)).graph.node)
    r = load_model(path)
    assert r.max_rel_error < 1e-5 and any("training mode" in n for n in r.notes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bn = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(8, 2))
        torch.onnx.export(
            bn,
            (torch.rand(2, 1, 4, 4),),
            str(path),
            dynamo=False,
            opset_version=15,
            training=torch.onnx.TrainingMode.TRAINING,
            do_constant_folding=False,
        )
    with pytest.raises(UnsupportedError, match="training mode"):
        load_model(path)


def test_legacy_export_with_batchnorm_after_relu(tmp_path):
    model = _randomize_bn(_bn_models()["bn after relu, into a padded conv"])
    path = tmp_path / "bn.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.rand(1, 2, 6, 6),), str(path), dynamo=False, opset_version=11)
    assert any(n.op_type == "BatchNormalization" for n in onnx.load(str(path)).graph.node)
    r = load_model(path)
    assert r.max_rel_error < 1e-4 and [n.op for n in r.graph.nodes] == ["conv2d", "conv2d", "flatten", "dense"]


def test_unconvertible_merges_and_arithmetic():
    class Mul(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 2)

        def forward(self, x):
            h = F.relu(self.a(x))
            return self.b(h * h)

    with pytest.raises(UnsupportedError, match="multiplying or dividing two activations"):
        load_model(Mul(), input_shape=(4,))

    class PreAct(nn.Module):  # BN-ReLU after a residual add: a pre-activation ResNet
        def __init__(self):
            super().__init__()
            self.conv, self.bn, self.fc = nn.Conv2d(1, 1, 3, padding=1), nn.BatchNorm2d(1), nn.Linear(16, 2)

        def forward(self, x):
            y = F.relu(self.conv(x)) + x
            return self.fc(F.relu(self.bn(y)).flatten(1))

    with pytest.raises(UnsupportedError, match=r"BatchNorm2d 'bn' cannot be folded.*'relu_1'"):
        load_model(PreAct().eval(), input_shape=(1, 4, 4))
