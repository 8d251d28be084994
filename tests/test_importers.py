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
    return nn.Sequential(nn.Flatten(), nn.Linear(36, 16, bias=bias), nn.ReLU(), nn.Dropout(0.3),
                         nn.Linear(16, 5, bias=bias))


def cnn(bias: bool = True) -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=bias), nn.ReLU(inplace=True)),
        nn.AvgPool2d(2),
        nn.Conv2d(4, 6, 3, stride=2, padding=(1, 1), bias=bias), nn.ReLU(),
        nn.AvgPool2d(kernel_size=3, stride=1, padding=1),
        nn.Flatten(), nn.Dropout(), nn.Linear(6 * 3 * 3, 5, bias=bias))


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
    assert ops == [("conv0.0", "conv2d", True), ("pool1", "avgpool2d", False), ("conv2", "conv2d", True),
                   ("pool4", "avgpool2d", False), ("flatten5", "flatten", False), ("fc7", "dense", False)]
    assert r.graph.node("conv2").stride == (2, 2) and r.graph.node("pool4").padding == (1, 1)
    assert r.max_rel_error < 1e-5
    assert_close_to(r, cnn(bias), (1, 12, 12))


def test_functional_module():
    r = load_model(FunctionalNet(), input_shape=(1, 6, 6))
    assert [(n.name, n.op) for n in r.graph.nodes] == [
        ("conv1", "conv2d"), ("avg_pool2d", "avgpool2d"), ("flatten", "flatten"), ("fc1", "dense"),
        ("fc2", "dense")]
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
    r = load_model(str(path), input_shape=(1, 12, 12))
    assert r.max_rel_error < 1e-5 and "pickled" in r.source


def test_state_dict_with_arch(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(SmallNet().state_dict(), path)
    r = load_model(path, arch=f"{__name__}:SmallNet", input_shape=(1, 6, 6))
    assert [n.op for n in r.graph.nodes] == ["conv2d", "avgpool2d", "flatten", "dense"]
    with pytest.raises(SnnBalanceError, match="state_dict.*arch="):
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
    kwargs = {"dynamic_shapes": ({0: torch.export.Dim("batch")},)} if dynamo else \
        {"input_names": ["x"], "dynamic_axes": {"x": {0: "batch"}}}
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
    return numpy_helper.from_array(np.asarray(arr, dtype=np.float32 if np.asarray(arr).dtype.kind == "f"
                                              else np.int64), name)


def hand_model(nodes, inits, in_dims=("N", 1, 4, 4), opset=17):
    g = helper.make_graph(nodes, "hand", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_dims))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def gemm_model(opset=17):
    rng = np.random.default_rng(0)
    w1, b1 = rng.normal(size=(8, 16)), rng.normal(size=8)   # Gemm transB=1: (out, in) like torch
    w2, b2 = rng.normal(size=(8, 3)), rng.normal(size=3)    # MatMul: (in, out)
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
        ("flatten", "flatten", False), ("fc1", "dense", True), ("fc2", "dense", False)]
    np.testing.assert_array_equal(r.graph.node("fc1").weight, w1.astype(np.float32))
    np.testing.assert_array_equal(r.graph.node("fc2").weight, w2.T.astype(np.float32))
    np.testing.assert_array_equal(r.graph.node("fc2").bias, b2.astype(np.float32))
    assert any("softmax 'prob'" in n for n in r.notes) and r.output_transform == "softmax"
    assert r.max_rel_error < 1e-5


def _batch_dim_nodes(spelling: str) -> list:
    """Nodes computing ``batch1`` = [batch size] from ``p`` the way exporters spell it."""
    if spelling == "legacy":  # torch.onnx TorchScript exporter: Shape -> Gather -> Unsqueeze
        return [helper.make_node("Shape", ["p"], ["s"]),
                helper.make_node("Constant", [], ["zero"], value=numpy_helper.from_array(np.array(0, np.int64))),
                helper.make_node("Gather", ["s", "zero"], ["batch"], axis=0),
                helper.make_node("Unsqueeze", ["batch", "axes"], ["batch1"])]
    # dynamo without optimization: Shape(start, end) -> Squeeze -> Reshape to [1]
    return [helper.make_node("Shape", ["x"], ["s"], start=0, end=1),
            helper.make_node("Squeeze", ["s"], ["batch"]),
            helper.make_node("Reshape", ["batch", "one"], ["batch1"])]


@pytest.mark.parametrize("spelling", ["legacy", "dynamo"])
def test_hand_built_conv_pool_shape_chain(spelling):
    rng = np.random.default_rng(1)
    w, b = rng.normal(size=(3, 1, 3, 3)), rng.normal(size=3)
    wd = rng.normal(size=(2, 12))
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="/conv/Conv", pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c"], ["cr"], name="/Relu"),
        helper.make_node("AveragePool", ["cr"], ["p"], name="/pool/AveragePool", kernel_shape=[2, 2],
                         strides=[2, 2]),
        *_batch_dim_nodes(spelling),
        helper.make_node("Concat", ["batch1", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["p", "target"], ["f"], name="/Reshape"),
        helper.make_node("Gemm", ["f", "wd"], ["y"], name="/fc/Gemm", transB=1),
    ]
    inits = [_init("w", w), _init("b", b), _init("wd", wd), _init("axes", [0]), _init("minus1", [-1]),
             _init("one", [1])]
    r = load_model(hand_model(nodes, inits))
    assert [(n.name, n.op, n.relu) for n in r.graph.nodes] == [
        ("conv", "conv2d", True), ("pool", "avgpool2d", False), ("flatten2", "flatten", False),
        ("fc", "dense", False)]
    assert r.graph.node("conv").padding == (1, 1) and r.max_rel_error < 1e-5


def test_external_data(tmp_path):
    model, _ = gemm_model()
    path = tmp_path / "ext" / "model.onnx"
    path.parent.mkdir()
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    assert (path.parent / "weights.bin").is_file()
    r = load_model(path)
    assert r.max_rel_error < 1e-5
    (path.parent / "weights.bin").unlink()
    with pytest.raises(SnnBalanceError, match="cannot read ONNX model"):
        load_model(path)


def test_onnx_needs_input_shape_when_dims_are_free():
    model, _ = gemm_model()
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "H"
    with pytest.raises(SnnBalanceError, match="input_shape"):
        load_model(model)
    assert load_model(model, input_shape=(1, 4, 4)).graph.input_shape == (1, 4, 4)


# -- clear errors ------------------------------------------------------------------------------------
@pytest.mark.parametrize("layer,kind,hint", [
    (nn.Sigmoid(), "Sigmoid", "ReLU"),
    (nn.MaxPool2d(2), "MaxPool2d", "average pooling"),
    (nn.BatchNorm2d(2), "BatchNorm2d", "fold BatchNorm"),
])
def test_unsupported_torch_layers(layer, kind, hint):
    model = nn.Sequential()
    model.add_module("features", nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), layer))
    model.add_module("head", nn.Sequential(nn.Flatten(), nn.Linear(8 if kind == "MaxPool2d" else 32, 2)))
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

    with pytest.raises(UnsupportedError, match=r"'add' \(add\).*residual"):
        load_model(Residual(), input_shape=(4,))

    class Tanh(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return torch.tanh(self.fc(x))

    with pytest.raises(UnsupportedError, match=r"'tanh' \(torch.tanh\)"):
        load_model(Tanh(), input_shape=(4,))
    # ReLU after a pool of unrectified values cannot be merged into the conv.
    bad = nn.Sequential(nn.Conv2d(1, 2, 3), nn.AvgPool2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(8, 2))
    with pytest.raises(UnsupportedError, match="ReLU '2'.*avgpool2d"):
        load_model(bad, input_shape=(1, 6, 6))
    with pytest.raises(UnsupportedError, match="not followed by ReLU"):
        load_model(nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2)), input_shape=(4,))
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
    model.graph.node[2].op_type = "MaxPool"
    with pytest.raises(UnsupportedError, match=r"'relu1' \(MaxPool\).*average pooling"):
        load_model(model)


def test_check_equivalence_catches_a_mismatch():
    model = mlp()
    r = load_model(model, input_shape=(1, 6, 6))
    r.graph.node("fc1").weight[0, 0] += 1.0
    with pytest.raises(SnnBalanceError, match="differs from the source model"):
        check_equivalence(r.graph, model, (1, 6, 6))
    assert check_equivalence(r.graph, model, (1, 6, 6), rtol=10.0) > 1e-4
