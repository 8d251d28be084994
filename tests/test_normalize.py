import numpy as np
import pytest

from snnbalance.errors import SnnBalanceError
from snnbalance.graph import Graph, Node
from snnbalance.normalize import normalize, parse_spec
from snnbalance.normalize.data_based import data_based_factors
from snnbalance.records import Calibration

from conftest import small_cnn


def dense_chain() -> Graph:
    return Graph((2,), [
        Node("l1", "dense", weight=np.array([[1.0, -2.0], [3.0, 0.5]], np.float32), relu=True),
        Node("l2", "dense", ("l1",), weight=np.array([[0.5, 2.0], [-1.0, 0.25]], np.float32), relu=True),
        Node("l3", "dense", ("l2",), weight=np.array([[0.1, 0.2]], np.float32)),
    ])


def test_model_based_dense_by_hand():
    b = normalize(dense_chain(), "model-based")
    # max over neurons of the sum of positive input weights
    assert b.scale_factors == pytest.approx({"l1": 3.5, "l2": 2.5, "l3": 0.3})
    np.testing.assert_allclose(b.graph.node("l1").weight, np.array([[1, -2], [3, 0.5]]) / 3.5, rtol=1e-6)
    assert all(n.threshold == 1.0 for n in b.graph.neuron_nodes())


def test_model_based_conv_uses_whole_kernel_and_positive_bias():
    w = np.array([[[[1, -1], [2, 0]]], [[[0.5, 0.5], [0.5, -3]]]], np.float32)  # (2, 1, 2, 2)
    g = Graph((1, 3, 3), [Node("c", "conv2d", weight=w, relu=True), Node("f", "flatten", ("c",)),
                          Node("d", "dense", ("f",), weight=np.ones((2, 8), np.float32))])
    assert normalize(g, "model-based").scale_factors["c"] == pytest.approx(3.0)
    g.node("c").bias = np.array([-5.0, 2.0], np.float32)  # channel 1: 1.5 + 2 = 3.5; negative bias ignored
    b = normalize(g, "model-based")
    assert b.scale_factors["c"] == pytest.approx(3.5)
    np.testing.assert_allclose(b.graph.node("c").bias, [-5 / 3.5, 2 / 3.5], rtol=1e-6)


def test_data_based_variants_by_hand():
    g = dense_chain()
    acts = {"l1": 4.0, "l2": 8.0, "l3": 16.0}  # all above the max weights (3, 2, 0.2)
    applied, total = data_based_factors(g, acts, "paper")
    assert applied == pytest.approx({"l1": 4.0, "l2": 2.0, "l3": 2.0})
    assert total == pytest.approx({"l1": 4.0, "l2": 8.0, "l3": 16.0})
    applied, total = data_based_factors(g, acts, "code")  # previous = applied
    assert applied == pytest.approx({"l1": 4.0, "l2": 2.0, "l3": 8.0})
    assert total == pytest.approx({"l1": 4.0, "l2": 8.0, "l3": 64.0})
    # the max weight wins when it exceeds the activations
    applied, _ = data_based_factors(g, {"l1": 0.5, "l2": 0.1, "l3": 0.1}, "paper")
    assert applied == pytest.approx({"l1": 3.0, "l2": 2.0 / 3.0, "l3": 0.2 / 2.0})


@pytest.mark.parametrize("variant", ["paper", "code"])
def test_data_based_on_calibration_keeps_activations_at_most_one(variant):
    g = small_cnn(bias=True)
    x = np.random.default_rng(3).random((64, 1, 12, 12)).astype(np.float32)
    b = normalize(g, f"data-based:variant={variant}", calibration=Calibration(x, batch_size=16))
    before, after = g.forward(x, keep=True), b.graph.forward(x, keep=True)
    # positive scaling of a ReLU network: every layer is the original divided by its total factor
    _, total = data_based_factors(g, Calibration(x).max_activations(g), variant)
    for name, lam in total.items():
        np.testing.assert_allclose(after[name] * lam, before[name], rtol=2e-4, atol=1e-5)
    np.testing.assert_array_equal(after["d"].argmax(1), before["d"].argmax(1))
    if variant == "paper":
        assert max(float(after[n].max()) for n in total) <= 1.0 + 1e-5
    assert g.node("c1").weight is not b.graph.node("c1").weight  # input untouched


def test_baseline_copies_weights_and_sets_threshold():
    g = dense_chain()
    b = normalize(g, "baseline", threshold=4.0)
    np.testing.assert_array_equal(b.graph.node("l2").weight, g.node("l2").weight)
    assert {n.threshold for n in b.graph.neuron_nodes()} == {4.0}
    assert {n.threshold for n in g.neuron_nodes()} == {1.0}


def test_bad_specs_are_clear():
    with pytest.raises(SnnBalanceError, match="unknown normalizer 'nope'.*data-based"):
        normalize(dense_chain(), "nope")
    with pytest.raises(SnnBalanceError, match="needs calibration"):
        normalize(dense_chain(), "data-based")
    with pytest.raises(SnnBalanceError, match="no option 'p'"):
        normalize(dense_chain(), "model-based:p=3")
    with pytest.raises(SnnBalanceError, match="variant"):
        normalize(dense_chain(), "data-based:variant=x", calibration=Calibration(np.ones((2, 2), np.float32)))
    with pytest.raises(SnnBalanceError, match="key=value"):
        parse_spec("data-based:paper")
    assert parse_spec("robust:p=99.9, mode=channel") == ("robust", {"p": "99.9", "mode": "channel"})
