"""Tests of the installed ``snnbalance-threshold-balancing`` plugin."""

import numpy as np
import pytest

from snnbalance.errors import UnsupportedError
from snnbalance.graph import Graph, Node
from snnbalance.normalize import normalize
from snnbalance.records import Calibration
from snnbalance.simulate import SimConfig, numpy_ref
from snnbalance.testing import check_normalizer, rate_view, reference_graph, reference_inputs

tb = pytest.importorskip(
    "snnbalance_threshold_balancing.core", reason="the plugin is not installed: pip install ./plugins/snnbalance-threshold-balancing"
)


@pytest.mark.parametrize("options", [None, "T=8", {"per": "layer", "T": "128", "v_init": "0"}])
def test_conforms(options):
    check_normalizer("threshold-balancing", options)


def test_the_local_error_is_the_if_neurons_quantization():
    # a = 0.3 for T = 4 from an empty membrane: threshold 0.3 sends 4 spikes = 0.3 exactly; threshold
    # 0.6 sends floor(2) = 2 spikes = 0.3 too; threshold 0.5 sends floor(2.4) = 2 -> 0.25: error 0.05^2
    err = tb.local_error(np.array([0.3]), np.array([0.3, 0.6, 0.5]), 4, 0.0)
    np.testing.assert_allclose(err, [0.0, 0.0, 0.0025], atol=1e-12)
    # v_init 0.5 rounds to nearest: threshold 0.5 -> floor(2.4 + 0.5) = 2 still; 0.7 -> floor(2.21) = 2 -> 0.35
    np.testing.assert_allclose(tb.local_error(np.array([0.3]), np.array([0.7]), 4, 0.5), [0.05**2], atol=1e-12)


def test_short_durations_choose_thresholds_below_the_maximum():
    rng = np.random.default_rng(0)
    a = np.concatenate([rng.exponential(0.1, 5000), [1.0]])  # one outlier sets the max
    assert tb.best_threshold(a, 8, 0.5, 64) < 0.75 * a.max()
    assert tb.best_threshold(a, 8, 0.5, 64) < tb.best_threshold(a, 4096, 0.5, 64)


def test_a_channel_threshold_is_the_same_as_dividing_its_weights():
    # threshold 0.75 with weight 0.375 and threshold 1 with weight 0.5 (both / 0.75), from v_init 0.5,
    # either reset: the same spikes (dyadic numbers: exact)
    x, y, idx = np.ones((1, 1), np.float32), np.zeros(1, int), np.arange(1)
    for reset in ("zero", "subtract"):
        cfg = SimConfig(duration=40, encoding="current", reset=reset)
        spikes = [
            numpy_ref.step_batch(
                Graph((1,), [Node("d", "dense", weight=np.array([[w]], np.float32), threshold=t, v_init=0.5)]), x, idx, y, cfg
            )[1]["d"]
            for w, t in ((0.375, 0.75), (0.5, 1.0))
        ]
        np.testing.assert_array_equal(*spikes)


def test_balanced_network_is_the_ann_up_to_one_output_factor():
    graph = reference_graph(bias=False)
    x = reference_inputs(64)
    b = normalize(graph, "threshold-balancing:T=16", calibration=Calibration(x))
    assert all(n.v_init == 0.5 for n in b.graph.neuron_nodes())
    ratio = graph.forward(x) / rate_view(b.graph, x)
    np.testing.assert_allclose(ratio, ratio.flat[0], rtol=1e-4)
    # channel-wise: the hidden convs' channels are not all scaled alike
    c1 = b.graph.node("c1").weight.reshape(4, -1) / graph.node("c1").weight.reshape(4, -1)
    assert np.ptp(c1[:, 0]) > 0


def test_merges_are_refused_in_one_line():
    from snnbalance.dags import random_dag

    g = next(random_dag(s) for s in range(20) if "add" in random_dag(s).kinds())
    with pytest.raises(UnsupportedError, match="chains of"):
        normalize(g, "threshold-balancing", calibration=Calibration(np.zeros((2, *g.input_shape), np.float32)))
