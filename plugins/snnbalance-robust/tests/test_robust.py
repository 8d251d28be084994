"""Tests of the installed ``snnbalance-robust`` plugin (run after ``pip install ./plugins/snnbalance-robust``)."""

import numpy as np
import pytest

from snnbalance.errors import SnnBalanceError
from snnbalance.normalize import normalize
from snnbalance.records import Calibration
from snnbalance.testing import check_normalizer, reference_graph, reference_inputs, snnbalance_conformance  # noqa: F401

pytest.importorskip("snnbalance_robust", reason="the plugin is not installed: pip install ./plugins/snnbalance-robust")

HIDDEN = ("c1", "c2")  # the reference graph's rectified weighted layers


def balance(spec, graph=None, n=48):
    graph = graph or reference_graph()
    x = reference_inputs(n)
    return graph, x, normalize(graph, spec, calibration=Calibration(x, batch_size=16))


@pytest.mark.parametrize("options", [None, "p=99", {"p": "99.99", "per": "channel"}])
def test_conforms(options):
    check_normalizer("robust", options)


def test_fixture_for_third_party_suites(snnbalance_conformance):  # noqa: F811  (the fixture imported above)
    snnbalance_conformance.check_normalizer("robust", {"per": "channel", "p": "100"})


def test_p100_layer_wise_puts_every_layer_max_at_one():
    graph, x, b = balance("robust:p=100")
    after = b.graph.forward(x, keep=True)
    for name in HIDDEN:
        assert float(after[name].max()) == pytest.approx(1.0, rel=1e-5)


def test_percentile_lets_the_top_activations_exceed_one():
    graph, x, b = balance("robust:p=90")
    before, after = graph.forward(x, keep=True), b.graph.forward(x, keep=True)
    pos = after["c1"][before["c1"] > 0]
    assert np.mean(pos <= 1 + 1e-6) == pytest.approx(0.90, abs=0.01)  # 90 % of the non-zero ones
    # and the balanced layer is the original divided by its factor (positive rescaling)
    np.testing.assert_allclose(after["c1"] * b.scale_factors["c1"], before["c1"], rtol=1e-4, atol=1e-6)


def test_channel_wise_scales_each_channel_to_its_own_max_and_compensates():
    graph, x, b = balance("robust:p=100,per=channel")
    before, after = graph.forward(x, keep=True), b.graph.forward(x, keep=True)
    for name in HIDDEN:
        per_channel = after[name].max(axis=(0, 2, 3))
        live = before[name].max(axis=(0, 2, 3)) > 0
        np.testing.assert_allclose(per_channel[live], 1.0, rtol=1e-5)
    # through pooling and flatten, the output is the ANN's output times one positive constant
    ratio = before["d"] / after["d"]
    np.testing.assert_allclose(ratio, ratio.flat[0], rtol=1e-3)
    np.testing.assert_array_equal(after["d"].argmax(1), before["d"].argmax(1))


def test_channel_wise_differs_from_layer_wise():
    _, _, lw = balance("robust:p=100")
    _, _, cw = balance("robust:p=100,per=channel")
    assert not np.allclose(lw.graph.node("c2").weight, cw.graph.node("c2").weight)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("robust:p=abc", "option p must be a number in \\[0, 100\\], got 'abc'"),
        ("robust:p=120", "option p must be a number"),
        ("robust:per=row", "option per must be one of layer, channel"),
        ("robust:q=1", "has no option 'q'"),
    ],
)
def test_bad_options_are_one_clear_line(spec, message):
    with pytest.raises(SnnBalanceError, match=message):
        balance(spec)


def test_needs_calibration():
    with pytest.raises(SnnBalanceError, match="needs calibration data"):
        normalize(reference_graph(), "robust")


def residual_graph():
    from snnbalance.graph import Graph, Node

    rng = np.random.default_rng(0)
    return Graph(
        (1, 4, 4),
        [
            Node("c1", "conv2d", weight=rng.normal(0, 0.5, (2, 1, 3, 3)).astype(np.float32), padding=(1, 1), relu=True),
            Node("c2", "conv2d", ("c1",), weight=rng.normal(0, 0.5, (2, 2, 3, 3)).astype(np.float32), padding=(1, 1)),
            Node("a", "add", ("c2", "c1"), relu=True),
            Node("f", "flatten", ("a",)),
            Node("d", "dense", ("f",), weight=rng.normal(0, 0.5, (3, 32)).astype(np.float32)),
        ],
    )


def test_max_pooling_passes_channel_factors_through():
    graph = reference_graph()
    p1 = graph.node("p1")
    p1.op = "maxpool2d"
    _, x, b = balance("robust:p=100,per=channel", graph)
    before, after = graph.forward(x), b.graph.forward(x)
    ratio = before / after
    np.testing.assert_allclose(ratio, ratio.flat[0], rtol=1e-3)


def test_residual_merges_are_balanced_layer_wise_and_refused_channel_wise():
    from snnbalance.errors import UnsupportedError
    from snnbalance.normalize import units

    graph, x, b = balance("robust:p=100", residual_graph())
    # p=100 is the maximum: exactly data-based's units (the max activation per unit source), so the
    # balanced network is the one data-based builds for this graph
    cal = Calibration(x, batch_size=16)
    lam = {}
    for acts in cal.activations(graph):
        for k in ("c1", "a", "d"):
            lam[k] = max(lam.get(k, 0.0), float(acts[k].max()))
    lam["c2"] = lam["a"]  # the synaptic-only branch takes its add's unit
    want = units.apply_units(graph, lam, 1.0)
    for n, m in zip(b.graph.nodes, want.nodes):
        if n.weight is not None:
            np.testing.assert_allclose(n.weight, m.weight, rtol=1e-6)
        assert n.input_scales() == pytest.approx(m.input_scales())
    # the rate view reproduces the ANN's predictions (units are consistent through the add)
    from snnbalance.testing import rate_view

    np.testing.assert_array_equal(rate_view(b.graph, x).argmax(1), graph.forward(x).argmax(1))
    with pytest.raises(UnsupportedError, match="per=channel handles chains of .*not add \\(layer a\\)"):
        balance("robust:per=channel", residual_graph())
