import numpy as np
import pytest
import torch
import torch.nn.functional as F

from snnbalance.errors import UnsupportedError
from snnbalance.graph import Graph, Node, fanout

from conftest import small_cnn


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
    shapes = g.shapes()
    # dense: each of the 24 inputs feeds 5 outputs
    assert (fo["c2"] == 5).all()
    # conv c2 (stride 2, no padding, 3x3 on 6x6): coverage sums to out positions * kernel size
    assert fo["p1"].sum() == 6 * (2 * 2) * (4 * 9)
    # padded conv c1 on the input: interior pixels are read by 9 windows of each of 4 channels
    assert fo["input"][0, 5, 5] == 36 and fo["input"][0, 0, 0] == 16
    # pooling: each c1 neuron feeds exactly one pooling neuron
    assert (fo["c1"] == 1).all()
    assert fo["d"].sum() == 0


@pytest.mark.parametrize("nodes, msg", [
    ([Node("d1", "dense", weight=np.ones((3, 4), np.float32)),
      Node("d2", "dense", ("d1",), weight=np.ones((2, 3), np.float32))], "not followed by ReLU"),
    ([Node("d1", "dense", weight=np.ones((3, 5), np.float32))], "expects 5 inputs"),
    ([Node("d1", "dense", ("x",), weight=np.ones((3, 4), np.float32))], "not defined"),
    ([Node("d1", "dense", weight=np.ones((3, 4), np.float32), relu=True),
      Node("f", "flatten", ("d1",))], "must end in a dense or conv"),
])
def test_validate_rejects_unconvertible(nodes, msg):
    with pytest.raises(UnsupportedError, match=msg):
        Graph((4,), nodes).validate()


def test_pool_of_signed_values_is_rejected():
    g = Graph((1, 4, 4), [
        Node("c", "conv2d", weight=np.ones((1, 1, 1, 1), np.float32)),
        Node("p", "avgpool2d", ("c",), kernel=(2, 2), stride=(2, 2)),
        Node("f", "flatten", ("p",)), Node("d", "dense", ("f",), weight=np.ones((2, 4), np.float32))])
    with pytest.raises(UnsupportedError):
        g.validate()
