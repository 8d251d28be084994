import numpy as np
import pytest
from conftest import small_cnn

from snnbalance.errors import SnnBalanceError
from snnbalance.graph import Graph, Node
from snnbalance.normalize import normalize, parse_spec
from snnbalance.normalize.data_based import data_based_factors
from snnbalance.records import Calibration


def dense_chain() -> Graph:
    return Graph(
        (2,),
        [
            Node("l1", "dense", weight=np.array([[1.0, -2.0], [3.0, 0.5]], np.float32), relu=True),
            Node("l2", "dense", ("l1",), weight=np.array([[0.5, 2.0], [-1.0, 0.25]], np.float32), relu=True),
            Node("l3", "dense", ("l2",), weight=np.array([[0.1, 0.2]], np.float32)),
        ],
    )


def test_model_based_dense_by_hand():
    b = normalize(dense_chain(), "model-based")
    # max over neurons of the sum of positive input weights
    assert b.scale_factors == pytest.approx({"l1": 3.5, "l2": 2.5, "l3": 0.3})
    np.testing.assert_allclose(b.graph.node("l1").weight, np.array([[1, -2], [3, 0.5]]) / 3.5, rtol=1e-6)
    assert all(n.threshold == 1.0 for n in b.graph.neuron_nodes())


def test_model_based_conv_uses_whole_kernel_and_positive_bias():
    w = np.array([[[[1, -1], [2, 0]]], [[[0.5, 0.5], [0.5, -3]]]], np.float32)  # (2, 1, 2, 2)
    g = Graph(
        (1, 3, 3),
        [
            Node("c", "conv2d", weight=w, relu=True),
            Node("f", "flatten", ("c",)),
            Node("d", "dense", ("f",), weight=np.ones((2, 8), np.float32)),
        ],
    )
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


# -- biases, residual adds and concat ------------------------------------------------------------------
from snnbalance.normalize.data_based import data_based_units  # noqa: E402
from snnbalance.normalize.model_based import model_based_units  # noqa: E402


def merge_graph(seed: int = 0) -> Graph:
    """conv -> maxpool -> [conv+relu -> conv] + skip -> add+relu -> concat with a conv -> dense, with biases."""
    rng = np.random.default_rng(seed)
    w = lambda *s: rng.normal(0, 0.5, s).astype(np.float32)  # noqa: E731
    return Graph(
        (1, 8, 8),
        [
            Node("c1", "conv2d", weight=w(3, 1, 3, 3), bias=w(3), padding=(1, 1), relu=True),
            Node("mp", "maxpool2d", ("c1",), kernel=(2, 2), stride=(2, 2)),
            Node("c2", "conv2d", ("mp",), weight=w(3, 3, 3, 3), bias=w(3), padding=(1, 1), relu=True),
            Node("c3", "conv2d", ("c2",), weight=w(3, 3, 3, 3), bias=w(3, 4, 4), padding=(1, 1)),
            Node("add", "add", ("c3", "mp"), relu=True),
            Node("c4", "conv2d", ("add",), weight=w(2, 3, 1, 1), bias=w(2), relu=True),
            Node("cat", "concat", ("add", "c4")),
            Node("f", "flatten", ("cat",)),
            Node("d", "dense", ("f",), weight=w(4, 5 * 16), bias=w(4)),
        ],
    )


def _check_rescaling(g, b, lam, x):
    """Every tensor of the balanced network is the ANN's divided by its unit(s): an exact rescaling."""
    from snnbalance.normalize.units import Units

    units = Units(g, lam)
    before, after = g.forward(x, keep=True), b.graph.forward(x, keep=True)
    for n in g.nodes:
        if g.is_linear(n):
            continue
        u = np.asarray(units(n.name))
        u = u.reshape(-1, *[1] * (before[n.name].ndim - 2)) if u.ndim else u
        np.testing.assert_allclose(after[n.name] * u, before[n.name], rtol=2e-4, atol=1e-4, err_msg=n.name)
    np.testing.assert_array_equal(after[g.output.name].argmax(1), before[g.output.name].argmax(1))
    return after


@pytest.mark.parametrize("name", ["data-based", "model-based"])
def test_merges_are_scaled_into_one_unit(name):
    g = merge_graph()
    x = np.random.default_rng(3).random((64, 1, 8, 8)).astype(np.float32)
    calib = Calibration(x, batch_size=16)
    b = normalize(g, name, calibration=calib)
    lam = data_based_units(g, calib.max_activations(g)) if name == "data-based" else model_based_units(g)
    after = _check_rescaling(g, b, lam, x)
    # the skip connection enters the add in the add's unit; the dense layer after the concat weighs
    # each branch's features by that branch's unit
    assert b.graph.node("add").scales == pytest.approx((1.0, lam["c1"] / lam["add"]))
    d, d0 = b.graph.node("d").weight, g.node("d").weight
    np.testing.assert_allclose(d[:, :48], d0[:, :48] * lam["add"] / lam["d"], rtol=1e-5)
    np.testing.assert_allclose(d[:, 48:], d0[:, 48:] * lam["c4"] / lam["d"], rtol=1e-5)
    if name == "data-based":  # calibration activations stay at most one spike per step
        assert max(float(after[n].max()) for n in ("c1", "c2", "add", "c4")) <= 1.0 + 1e-5
        assert b.scale_factors["c3"] == pytest.approx(lam["add"] / lam["c2"])


def test_model_based_add_never_gets_more_than_one_threshold_per_step():
    g = merge_graph(1)
    b = normalize(g, "model-based")
    c3, add = b.graph.node("c3"), b.graph.node("add")
    pos = np.clip(c3.weight, 0, None).reshape(3, -1).sum(1)[:, None, None] + np.clip(c3.bias, 0, None)
    worst = pos * add.scales[0] + max(add.scales[1], 0)
    assert float(worst.max()) == pytest.approx(1.0, rel=1e-5)


def test_model_based_biases_keep_the_network_an_exact_rescaling():
    g = dense_chain()
    for n, bias in zip(g.nodes, ([0.5, -1.0], [2.0, 0.3], [0.7])):
        n.bias = np.array(bias, np.float32)
    b = normalize(g, "model-based")
    lam = model_based_units(g)
    # layer 1: max(1 + 0.5, 3.5 + 0) = 3.5; layer 2: max(2.5 + 2 / 3.5, 0.25 + 0.3 / 3.5)
    assert b.scale_factors["l1"] == pytest.approx(3.5)
    assert b.scale_factors["l2"] == pytest.approx(2.5 + 2.0 / 3.5)
    _check_rescaling(g, b, lam, np.random.default_rng(0).random((32, 2)).astype(np.float32))
    np.testing.assert_allclose(b.graph.node("l3").bias, [0.7 / lam["l3"]], rtol=1e-6)


def test_data_based_code_variant_is_for_chains_only():
    g = merge_graph()
    calib = Calibration(np.random.default_rng(0).random((8, 1, 8, 8)).astype(np.float32))
    with pytest.raises(SnnBalanceError, match="variant=code is defined for chains"):
        normalize(g, "data-based:variant=code", calibration=calib)
    assert normalize(g, "baseline").graph.node("add").scales is None


@pytest.mark.parametrize("name", ["data-based", "model-based"])
def test_concat_of_the_raw_input_and_a_layer(name):
    g = Graph(
        (1, 2, 2),
        [
            Node("c", "conv2d", weight=np.full((1, 1, 1, 1), 5.0, np.float32), bias=np.ones(1, np.float32), relu=True),
            Node("cat", "concat", ("input", "c")),
            Node("f", "flatten", ("cat",)),
            Node("d", "dense", ("f",), weight=np.random.default_rng(0).normal(size=(2, 8)).astype(np.float32)),
        ],
    )
    x = np.random.default_rng(1).random((16, 1, 2, 2)).astype(np.float32)
    calib = Calibration(x)
    b = normalize(g, name, calibration=calib)
    lam = data_based_units(g, calib.max_activations(g)) if name == "data-based" else model_based_units(g)
    # model-based: 5 + 1; data-based: the max activation 5 * max(x) + 1
    assert lam["c"] == pytest.approx(6.0 if name == "model-based" else 5 * float(x.max()) + 1, rel=1e-6)
    _check_rescaling(g, b, lam, x)
