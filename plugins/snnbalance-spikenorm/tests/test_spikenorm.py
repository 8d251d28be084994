"""Tests of the installed ``snnbalance-spikenorm`` plugin (run after ``pip install ./plugins/snnbalance-spikenorm``)."""

import numpy as np
import pytest

from snnbalance.errors import SnnBalanceError
from snnbalance.graph import Graph, Node
from snnbalance.normalize import normalize
from snnbalance.records import Calibration
from snnbalance.testing import check_normalizer, rate_view, reference_graph, reference_inputs

pytest.importorskip("snnbalance_spikenorm", reason="the plugin is not installed: pip install ./plugins/snnbalance-spikenorm")

FAST = "steps=30,samples=16"


def dense(name, w, inputs=("input",), bias=None, relu=True):
    return Node(name, "dense", inputs, weight=np.array(w, np.float32), bias=None if bias is None else np.array(bias, np.float32), relu=relu)


@pytest.mark.parametrize("options", [FAST, FAST + ",reset=subtract"])
def test_conforms(options):
    check_normalizer("spikenorm", options)


def test_threshold_is_the_largest_one_step_input():
    # inputs of value 1 spike every step, so each neuron's input is its row sum every step
    g = Graph((3,), [dense("d", [[0.5, 0.25, -1.0], [1.0, 1.0, 0.5]], relu=False)])
    b = normalize(g, "spikenorm:steps=5", calibration=Calibration(np.ones((2, 3), np.float32)))
    assert b.graph.node("d").threshold == pytest.approx(2.5)
    assert b.scale_factors == {"d": pytest.approx(2.5)}
    np.testing.assert_array_equal(b.graph.node("d").weight, g.node("d").weight)  # weights untouched


def test_layers_are_balanced_in_order_and_biases_follow_the_thresholds():
    # l1 gets 0.5 per step -> threshold 0.5; l2's bias 0.5 is then divided by 0.5 (rates upstream
    # are in units of l1's threshold), so l2's largest input is 1 * 1 + 1.0 = 2.0, not 1.5
    g = Graph((1,), [dense("l1", [[0.5]]), dense("l2", [[1.0]], ("l1",), bias=[0.5], relu=False)])
    b = normalize(g, "spikenorm:steps=4", calibration=Calibration(np.ones((1, 1), np.float32)))
    assert b.graph.node("l1").threshold == pytest.approx(0.5)
    assert b.graph.node("l2").bias[0] == pytest.approx(1.0)
    assert b.graph.node("l2").threshold == pytest.approx(2.0)


def test_rates_are_the_ann_scaled_by_one_constant_even_with_biases():
    g = reference_graph(bias=True)
    x = reference_inputs(16)
    b = normalize(g, "spikenorm:" + FAST, calibration=Calibration(x))
    ratio = g.forward(x) / rate_view(b.graph, x)
    np.testing.assert_allclose(ratio, ratio.flat[0], rtol=1e-3)
    assert {n.threshold for n in b.graph.neuron_nodes()} != {1.0}


def test_more_steps_see_a_larger_first_layer_maximum():
    g, x = reference_graph(), reference_inputs(16)
    short = normalize(g, "spikenorm:steps=5,samples=16", calibration=Calibration(x)).graph
    long = normalize(g, "spikenorm:steps=40,samples=16", calibration=Calibration(x)).graph
    assert long.node("c1").threshold >= short.node("c1").threshold


@pytest.mark.parametrize(
    "spec, message",
    [
        ("spikenorm:steps=0", "option steps must be an integer >= 1, got '0'"),
        ("spikenorm:samples=many", "option samples must be an integer"),
        ("spikenorm:reset=soft", "option reset must be one of zero, subtract"),
    ],
)
def test_bad_options_are_one_clear_line(spec, message):
    with pytest.raises(SnnBalanceError, match=message):
        normalize(reference_graph(), spec, calibration=Calibration(reference_inputs(4)))


def test_max_pooling_and_merges_are_refused_in_one_line():
    from snnbalance.errors import UnsupportedError

    g = reference_graph()
    g.node("p1").op = "maxpool2d"
    with pytest.raises(UnsupportedError, match="normalizer 'spikenorm' handles .* not maxpool2d \\(layer p1\\)"):
        normalize(g, "spikenorm:" + FAST, calibration=Calibration(reference_inputs(4)))
