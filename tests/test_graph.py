import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import small_cnn

from snnbalance.errors import UnsupportedError
from snnbalance.graph import Graph, Node, fanout


def test_forward_matches_torch_conv_pool_dense():
    g = small_cnn(bias=True)
    x = np.random.default_rng(1).random((3, 1, 12, 12)).astype(np.float32)
    t = torch.from_numpy(x)
    c1, c2, d = g.node("c1"), g.node("c2"), g.node("d")
    h = F.relu(F.conv2d(t, torch.from_numpy(c1.weight), torch.from_numpy(c1.bias), padding=1))
    h = F.avg_pool2d(h, 2)
    h = F.relu(F.conv2d(h, torch.from_numpy(c2.weight), torch.from_numpy(c2.bias), stride=2))
    want = F.linear(h.flatten(1), torch.from_numpy(d.weight), torch.from_numpy(d.bias)).numpy()
    np.testing.assert_allclose(g.forward(x), want, rtol=1e-5, atol=1e-6)


def test_shapes_summary_and_macs():
    g = small_cnn()
    shapes = g.shapes()
    assert shapes["c1"] == (4, 12, 12) and shapes["p1"] == (4, 6, 6) and shapes["c2"] == (6, 2, 2)
    rows = {r["name"]: r for r in g.summary()}
    assert rows["c1"]["macs"] == 4 * 12 * 12 * 9 and rows["c1"]["params"] == 36
    assert rows["d"]["macs"] == 5 * 24
    assert "total" in g.format_summary()


def test_fanout_counts_every_synapse():
    g = small_cnn()
    fo = fanout(g)
    # every synapse is counted once from its source: totals equal the weighted layers' connection counts
    # dense: each of the 24 inputs feeds 5 outputs
    assert (fo["c2"] == 5).all()
    # conv c2 (stride 2, no padding, 3x3 on 6x6): coverage sums to out positions * kernel size
    assert fo["p1"].sum() == 6 * (2 * 2) * (4 * 9)
    # padded conv c1 on the input: interior pixels are read by 9 windows of each of 4 channels
    assert fo["input"][0, 5, 5] == 36 and fo["input"][0, 0, 0] == 16
    # pooling: each c1 neuron feeds exactly one pooling neuron
    assert (fo["c1"] == 1).all()
    assert fo["d"].sum() == 0


@pytest.mark.parametrize(
    "nodes, msg",
    [
        (
            [Node("d1", "dense", weight=np.ones((3, 4), np.float32)), Node("d2", "dense", ("d1",), weight=np.ones((2, 3), np.float32))],
            "not followed by ReLU",
        ),
        ([Node("d1", "dense", weight=np.ones((3, 5), np.float32))], "expects 5 inputs"),
        ([Node("d1", "dense", ("x",), weight=np.ones((3, 4), np.float32))], "not defined"),
        (
            [Node("d1", "dense", weight=np.ones((3, 4), np.float32), relu=True), Node("f", "flatten", ("d1",))],
            "must end in a dense or conv",
        ),
    ],
)
def test_validate_rejects_unconvertible(nodes, msg):
    with pytest.raises(UnsupportedError, match=msg):
        Graph((4,), nodes).validate()


def test_pool_of_signed_values_is_rejected():
    g = Graph(
        (1, 4, 4),
        [
            Node("c", "conv2d", weight=np.ones((1, 1, 1, 1), np.float32)),
            Node("p", "avgpool2d", ("c",), kernel=(2, 2), stride=(2, 2)),
            Node("f", "flatten", ("p",)),
            Node("d", "dense", ("f",), weight=np.ones((2, 4), np.float32)),
        ],
    )
    with pytest.raises(UnsupportedError):
        g.validate()


# -- merges and max pooling ------------------------------------------------------------------------
def residual_graph(seed: int = 0) -> Graph:
    """conv -> maxpool -> [conv+relu -> conv (synaptic only)] + skip -> add+relu -> concat -> dense."""
    rng = np.random.default_rng(seed)
    w = lambda *s: rng.normal(0, 0.4, s).astype(np.float32)  # noqa: E731
    return Graph(
        (1, 8, 8),
        [
            Node("c1", "conv2d", weight=w(3, 1, 3, 3), bias=w(3), padding=(1, 1), relu=True),
            Node("mp", "maxpool2d", ("c1",), kernel=(3, 3), stride=(2, 2), padding=(1, 1)),
            Node("c2", "conv2d", ("mp",), weight=w(3, 3, 3, 3), bias=w(3), padding=(1, 1), relu=True),
            Node("c3", "conv2d", ("c2",), weight=w(3, 3, 3, 3), bias=w(3, 4, 4), padding=(1, 1)),
            Node("add", "add", ("c3", "mp"), relu=True, scales=(1.0, 0.5)),
            Node("c4", "conv2d", ("add",), weight=w(2, 3, 1, 1), relu=True),
            Node("cat", "concat", ("add", "c4")),
            Node("f", "flatten", ("cat",)),
            Node("d", "dense", ("f",), weight=w(4, 5 * 16), bias=w(4)),
        ],
    )


def test_residual_concat_maxpool_forward_matches_torch():
    g = residual_graph()
    g.validate()
    x = np.random.default_rng(1).random((3, 1, 8, 8)).astype(np.float32)
    t = {k: torch.from_numpy(v) for k, v in [("x", x)]}
    n = {k: g.node(k) for k in ("c1", "c2", "c3", "c4", "d")}
    T = lambda a: torch.from_numpy(a)  # noqa: E731
    h = F.relu(F.conv2d(t["x"], T(n["c1"].weight), T(n["c1"].bias), padding=1))
    mp = F.max_pool2d(h, 3, 2, padding=1)
    h = F.relu(F.conv2d(mp, T(n["c2"].weight), T(n["c2"].bias), padding=1))
    h = F.conv2d(h, T(n["c3"].weight), padding=1) + T(n["c3"].bias)
    add = F.relu(h + 0.5 * mp)
    cat = torch.cat([add, F.relu(F.conv2d(add, T(n["c4"].weight)))], 1)
    want = F.linear(cat.flatten(1), T(n["d"].weight), T(n["d"].bias)).numpy()
    np.testing.assert_allclose(g.forward(x), want, rtol=1e-5, atol=1e-5)
    shapes = g.shapes()
    assert shapes["mp"] == (3, 4, 4) and shapes["cat"] == (5, 4, 4)
    assert [n.name for n in g.neuron_nodes()] == ["c1", "mp", "c2", "add", "c4", "d"]  # c3 is synaptic only
    assert g.is_linear(g.node("c3")) and not g.is_linear(g.node("d"))
    rows = {r["name"]: r for r in g.summary()}
    assert rows["add"]["macs"] == 3 * 16 * 2 and rows["mp"]["macs"] == 3 * 16 * 9 and rows["cat"]["macs"] == 0
    assert g.kinds() >= {"add", "concat", "maxpool2d", "bias-map"}


def test_fanout_through_merges():
    g = residual_graph()
    fo = fanout(g)
    assert set(fo) == {"input", "c1", "mp", "c2", "add", "c4", "d"}
    # add feeds c4 (2 output channels, 1x1) and, through the concat and flatten, the 4 dense outputs
    assert (fo["add"] == 2 + 4).all()
    assert (fo["c4"] == 4).all()
    # mp feeds c2's 3x3 windows (3 channels) and one synapse into the add
    assert fo["mp"][0, 1, 1] == 3 * 9 + 1
    # c2 feeds the synaptic-only c3, whose synapses end on the add neurons
    assert fo["c2"][0, 1, 1] == 3 * 9
    # c1 feeds the max-pool gate: one synapse per window it is in (3x3 windows, stride 2, pad 1)
    assert fo["c1"][0, 1, 1] == 4 and fo["c1"][0, 2, 2] == 1  # row 1 is in two windows, row 2 in one


@pytest.mark.parametrize(
    "change, msg",
    [
        (
            lambda g: (
                setattr(g.node("c3"), "relu", False)
                or g.nodes.insert(4, Node("p", "avgpool2d", ("c3",), kernel=(1, 1)))
                or setattr(g.node("add"), "inputs", ("p", "mp"))
            ),
            "not followed by ReLU",
        ),
        (lambda g: setattr(g.node("add"), "relu", False), "add add sums values that can be negative"),
        (lambda g: setattr(g.node("add"), "inputs", ("c3", "c1")), "must be equal"),
        (lambda g: setattr(g.node("cat"), "inputs", ("add", "c1")), "only the channel"),
        (lambda g: setattr(g.node("add"), "inputs", ("c3",)), "needs two or more"),
        (lambda g: setattr(g.node("c3"), "bias", np.zeros((3, 2, 2), np.float32)), "bias of shape"),
    ],
)
def test_validate_rejects_bad_merges(change, msg):
    g = residual_graph()
    change(g)
    with pytest.raises(UnsupportedError, match=msg):
        g.validate()


def test_require_names_what_a_back_end_cannot_run():
    from snnbalance.graph import BASIC_OPS

    with pytest.raises(UnsupportedError, match=r"fast does not support maxpool2d layers \(layer mp\)"):
        residual_graph().require(BASIC_OPS, "fast")
    small_cnn().require(BASIC_OPS, "fast")
    g = small_cnn(bias=True)
    g.node("c1").bias = np.zeros((4, 12, 12), np.float32)
    with pytest.raises(UnsupportedError, match="per-position biases"):
        g.require(BASIC_OPS, "fast")


def test_maxpool_to_avgpool_and_replacement_accuracy():
    from snnbalance.graph_ops import maxpool_to_avgpool, replacement_accuracy

    g = residual_graph()
    avg, names = maxpool_to_avgpool(g)
    assert names == ["mp"] and avg.node("mp").op == "avgpool2d" and g.node("mp").op == "maxpool2d"
    x = np.random.default_rng(2).random((20, 1, 8, 8)).astype(np.float32)
    y = g.forward(x).argmax(1)
    acc = replacement_accuracy(g, avg, x, y)
    assert acc["original"] == 1.0 and acc["change"] == acc["replaced"] - 1.0
