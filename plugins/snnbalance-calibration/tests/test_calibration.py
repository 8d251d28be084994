"""Tests of the installed ``snnbalance-calibration`` plugin (after ``pip install ./plugins/snnbalance-calibration``)."""

import numpy as np
import pytest

from snnbalance.errors import SnnBalanceError, UnsupportedError
from snnbalance.graph import Graph, Node
from snnbalance.normalize import normalize
from snnbalance.records import Calibration
from snnbalance.testing import check_normalizer, reference_graph, reference_inputs

pytest.importorskip("snnbalance_calibration", reason="the plugin is not installed: pip install ./plugins/snnbalance-calibration")


@pytest.mark.parametrize("options", [None, "T=8,mode=potential", {"T": "16", "reset": "zero", "encoding": "current"}])
def test_conforms(options):
    check_normalizer("calibration", options)


def two_layers() -> Graph:
    return Graph(
        (1,),
        [
            Node("h", "dense", weight=np.array([[0.3]], np.float32), relu=True),
            Node("o", "dense", ("h",), weight=np.array([[2.0]], np.float32)),
        ],
    )


def test_bias_correction_matches_a_hand_computed_two_layer_case():
    # Input 1 as a constant current for T = 4 steps, v_init 0, reset by subtraction, threshold 1.
    # Hidden: current 0.3/step -> V .3 .6 .9 1.2: one spike, rate 1/4; the ANN says 0.3, so its
    # bias becomes 0.3 - 0.25 = 0.05. Then it spikes at step 3 only (V .35 .7 1.05 -> .05 .4).
    # Output: current 2 at step 3 -> spike (V 1), step 4: V 1 -> spike: rate 2/4; the ANN says
    # 2 * 0.3 = 0.6, so its bias becomes 0.6 - 0.5 = 0.1.
    b = normalize(
        two_layers(),
        "calibration:T=4,v_init=0,reset=subtract,encoding=current,base=baseline",
        calibration=Calibration(np.ones((3, 1), np.float32)),
    )
    np.testing.assert_allclose(b.graph.node("h").bias, [0.05], atol=1e-6)
    np.testing.assert_allclose(b.graph.node("o").bias, [0.1], atol=1e-6)
    assert [n.v_init for n in b.graph.neuron_nodes()] == [0.0, 0.0]


def test_potential_mode_moves_v_init_instead_of_the_bias():
    # the same case: the hidden layer is 0.05 spikes/step short over 4 steps: v_init += 4 * 0.05
    b = normalize(
        two_layers(),
        "calibration:T=4,v_init=0,mode=potential,encoding=current,base=baseline",
        calibration=Calibration(np.ones((3, 1), np.float32)),
    )
    assert b.graph.node("h").bias is None
    assert b.graph.node("h").v_init == pytest.approx(0.2, abs=1e-6)


def test_calibration_brings_short_runs_closer_to_the_ann():
    from snnbalance.simulate import SimConfig, simulate

    graph, x = reference_graph(), reference_inputs(200)
    test = reference_inputs(100, seed=5)
    y = graph.forward(test).argmax(1)
    cfg = SimConfig(duration=16, reset="subtract", v_init=None)
    plain = normalize(graph, "data-based", calibration=Calibration(x)).graph
    cal = normalize(graph, "calibration:T=16", calibration=Calibration(x)).graph
    assert any(not np.array_equal(a.bias, b.bias) for a, b in zip(plain.nodes, cal.nodes) if a.bias is not None)
    acc = [simulate(g, test, y, cfg).final_accuracy for g in (plain, cal)]
    assert acc[1] >= acc[0]


def test_merges_and_self_reference_are_refused_in_one_line():
    from snnbalance.dags import random_dag

    g = next(random_dag(s) for s in range(20) if "add" in random_dag(s).kinds())
    with pytest.raises(UnsupportedError, match="chains of"):
        normalize(g, "calibration", calibration=Calibration(np.zeros((2, *g.input_shape), np.float32)))
    with pytest.raises(SnnBalanceError, match="another normalizer"):
        normalize(reference_graph(), "calibration:base=calibration", calibration=Calibration(reference_inputs(4)))
