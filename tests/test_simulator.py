"""Semantics of the NumPy reference simulator, checked on single neurons and small networks."""

import numpy as np
import pytest
from conftest import single_neuron, small_cnn

from snnbalance.errors import SnnBalanceError
from snnbalance.simulate import SimConfig, simulate
from snnbalance.simulate.encoding import PoissonSource


def run(graph, x, y=None, **cfg):
    x = np.asarray(x, np.float32)
    y = np.zeros(len(x), np.int64) if y is None else np.asarray(y)
    return simulate(graph, x, y, SimConfig(**{"encoding": "current", "duration": 20, **cfg}))


@pytest.mark.parametrize("reset, spikes", [("zero", 6), ("subtract", 7)])
def test_integration_threshold_and_resets(reset, spikes):
    # 0.375 per step: zero reset fires every 3rd step (6 in 20); subtract keeps the remainder (floor(7.5))
    r = run(single_neuron(1.0), [[0.375]], reset=reset)
    assert r.spike_counts["d"] == spikes


def test_spike_exactly_at_threshold():
    assert run(single_neuron(1.0), [[0.5]], duration=2).spike_counts["d"] == 1  # V = 1.0 >= 1.0


def test_at_most_one_spike_per_step():
    for reset in ("zero", "subtract"):
        assert run(single_neuron(5.0), [[1.0]], reset=reset).spike_counts["d"] == 20


def test_refractory_period_blocks_input_and_spikes():
    # spike, then 2 blocked steps: steps 1, 4, 7, ..., 19
    assert run(single_neuron(5.0), [[1.0]], refractory=2.0).spike_counts["d"] == 7
    # dt scales the period: 2 ms at dt 0.5 ms is 4 steps; 40 steps -> 1, 6, 11, ..., 36
    assert run(single_neuron(5.0), [[1.0]], refractory=2.0, dt=0.5).spike_counts["d"] == 8


def test_threshold_per_layer():
    g = single_neuron(1.0)
    g.node("d").threshold = 2.0
    assert run(g, [[0.5]]).spike_counts["d"] == 5


def test_bias_is_a_current_every_step():
    g = single_neuron(0.0)
    g.node("d").bias = np.array([0.25], np.float32)
    assert run(g, [[1.0]]).spike_counts["d"] == 5


def test_ties_go_to_the_lowest_class():
    g = single_neuron(0.0)
    g.node("d").weight = np.zeros((3, 1), np.float32)  # three silent output neurons
    r = run(g, [[1.0], [1.0]], y=[0, 2])
    assert r.final_accuracy == 0.5 and r.accuracy_over_time[0] == 0.5


def test_prediction_follows_accumulated_counts_over_time():
    g = single_neuron(0.0)
    g.node("d").weight = np.array([[0.3], [0.5]], np.float32)  # class 1 fires first and more often
    r = run(g, [[1.0]], y=[1], duration=4)
    np.testing.assert_array_equal(r.accuracy_over_time, [0.0, 1.0, 1.0, 1.0])
    assert r.accuracy_at(1) == 0.0 and r.accuracy_at(2) == 1.0
    assert r.time_to_within(0.01) == 2.0


def test_poisson_rate_and_determinism():
    x = np.full((1, 1000), 0.3)
    src = PoissonSource(x, np.array([7]), seed=1, max_rate=1000.0, dt=1.0)
    counts = sum(src.step(t) for t in range(400))
    assert abs(counts.mean() / 400 - 0.3) < 0.01
    again = PoissonSource(x, np.array([7]), seed=1, max_rate=1000.0, dt=1.0)
    np.testing.assert_array_equal(src.step(5), again.step(5))
    other = PoissonSource(x, np.array([7]), seed=2, max_rate=1000.0, dt=1.0)
    assert (other.step(5) != src.step(5)).any()
    # rate scales with max_rate * dt; 0 never spikes, p >= 1 always does
    half = PoissonSource(np.array([[0.0, 0.5, 1.0]]), np.array([0]), 0, 2000.0, 1.0)
    spikes = np.array([half.step(t)[0] for t in range(50)])
    assert spikes[:, 0].sum() == 0 and spikes[:, 1].sum() == 50 and spikes[:, 2].sum() == 50


def test_poisson_spikes_do_not_depend_on_batching():
    x = np.random.default_rng(0).random((6, 20))
    whole = PoissonSource(x, np.arange(6), 3, 1000.0, 1.0)
    part = PoissonSource(x[4:], np.arange(4, 6), 3, 1000.0, 1.0)
    for t in (0, 1, 99):
        np.testing.assert_array_equal(whole.step(t)[4:], part.step(t))


def test_network_results_do_not_depend_on_batch_size(cnn):
    x = np.random.default_rng(0).random((10, 1, 12, 12)).astype(np.float32)
    y = np.arange(10) % 5
    a = simulate(cnn, x, y, SimConfig(duration=30, batch_size=10, seed=4))
    b = simulate(cnn, x, y, SimConfig(duration=30, batch_size=3, seed=4))
    np.testing.assert_array_equal(a.accuracy_over_time, b.accuracy_over_time)
    assert a.spike_counts == b.spike_counts
    np.testing.assert_array_equal(a.output_counts, b.output_counts)
    c = simulate(cnn, x, y, SimConfig(duration=30, batch_size=10, seed=5))
    assert c.spike_counts != a.spike_counts


def test_rates_synops_and_speed_are_reported(cnn):
    x = np.random.default_rng(0).random((4, 1, 12, 12)).astype(np.float32)
    r = simulate(cnn, x, np.zeros(4, np.int64), SimConfig(duration=50))
    assert set(r.firing_rates) == {"c1", "p1", "c2", "d"}
    assert r.firing_rates["c1"] == pytest.approx(r.spike_counts["c1"] / (4 * 144 * 4 * 0.05))
    assert r.synaptic_ops_per_sample > 0 and r.image_steps_per_second > 0
    assert len(r.accuracy_over_time) == 50 and r.samples == 4


@pytest.mark.parametrize(
    "cfg, msg",
    [
        ({"dt": 0}, "positive"),
        ({"duration": 10, "dt": 3}, "whole number"),
        ({"reset": "soft"}, "reset"),
        ({"encoding": "rank"}, "encoding"),
        ({"refractory": -1}, "refractory"),
        ({"device": "cuda"}, "cuda"),
    ],
)
def test_bad_settings_are_clear(cfg, msg):
    with pytest.raises(SnnBalanceError, match=msg):
        simulate(small_cnn(), np.zeros((1, 1, 12, 12), np.float32), np.zeros(1, np.int64), SimConfig(**cfg))


def test_negative_inputs_are_refused():
    with pytest.raises(SnnBalanceError, match="non-negative"):
        simulate(small_cnn(), -np.ones((1, 1, 12, 12), np.float32), np.zeros(1, np.int64), SimConfig(duration=2))


# -- max pooling, residual adds, concat, per-position biases -----------------------------------------
from snnbalance.graph import Graph, Node  # noqa: E402


def _ones(*shape):
    return np.ones(shape, np.float32)


def test_maxpool_gate_follows_the_most_active_input():
    # two IF neurons at 0.3 and 0.6 per step (zero reset: spikes every 4th and every 2nd step); the
    # 1x2 gate passes the spikes of the one with the larger count so far, i.e. the faster one
    g = Graph(
        (1, 1, 2),
        [
            Node("c", "conv2d", weight=_ones(1, 1, 1, 1), relu=True),
            Node("mp", "maxpool2d", ("c",), kernel=(1, 2), stride=(1, 2)),
            Node("f", "flatten", ("mp",)),
            Node("d", "dense", ("f",), weight=_ones(1, 1)),
        ],
    )
    r = run(g, [[[[0.3, 0.6]]]])
    assert r.spike_counts["c"] == 5 + 10 and r.spike_counts["mp"] == 10 and r.spike_counts["d"] == 10
    # swapped positions: the same; ties (before any spike) go to the first position, which is silent
    assert run(g, [[[[0.6, 0.3]]]]).spike_counts["mp"] == 10
    assert set(r.firing_rates) == {"c", "mp", "d"}


def test_add_integrates_a_synaptic_only_branch_and_skip_spikes():
    # lin (no neurons): current 0.25 * 0.5 each step; skip: an IF neuron spiking every 2nd step,
    # entering the add with scale 0.5. Over 20 steps the add receives 2.5 + 10 * 0.5 = 7.5.
    g = Graph(
        (1,),
        [
            Node("lin", "dense", weight=np.full((1, 1), 0.25, np.float32)),
            Node("skip", "dense", weight=_ones(1, 1), relu=True),
            Node("add", "add", ("lin", "skip"), relu=True, scales=(1.0, 0.5)),
            Node("d", "dense", ("add",), weight=_ones(1, 1)),
        ],
    )
    r = run(g, [[0.5]], reset="subtract")
    assert r.spike_counts["skip"] == 10 and r.spike_counts["add"] == 7
    assert "lin" not in r.spike_counts and "lin" not in r.firing_rates
    # with a negative bias the synaptic-only branch inhibits: 20 * (0.125 - 0.125) + 5 = 5
    g.node("lin").bias = np.array([-0.125], np.float32)
    assert run(g, [[0.5]], reset="subtract").spike_counts["add"] == 5


def test_concat_passes_spikes_and_bias_maps_vary_per_position():
    g = Graph(
        (1, 1, 2),
        [
            Node("a", "conv2d", weight=_ones(1, 1, 1, 1), relu=True),
            Node("b", "conv2d", weight=_ones(1, 1, 1, 1), bias=np.array([[[0.5, 0.0]]], np.float32), relu=True),
            Node("cat", "concat", ("a", "b")),
            Node("f", "flatten", ("cat",)),
            Node("d", "dense", ("f",), weight=np.eye(4, dtype=np.float32)),
        ],
    )
    r = run(g, [[[[0.5, 0.25]]]])
    # a: 0.5 and 0.25 per step -> 10 + 5; b: 1.0 and 0.25 -> 20 + 5; the dense copies each through
    assert r.spike_counts["a"] == 15 and r.spike_counts["b"] == 25
    np.testing.assert_array_equal(r.output_counts[0], [10, 5, 20, 5])
