"""The native C engine runs every graph kind with exactly the NumPy reference's spikes.

The networks are :func:`snnbalance.dags.random_dag`'s: dyadic weights, thresholds and inputs,
so every float32 sum is exact in any order and a correct engine must agree spike for spike
(not nearly). Each seed draws a different mix of convolutions (strides, symmetric and
asymmetric padding, per-channel and per-position biases), average and max pooling, residual adds
(of spikes and of synaptic-only branches, with scales), concatenations and dense layers.
"""

from __future__ import annotations

import numpy as np
import pytest

from snnbalance.dags import exact_inputs, random_dag
from snnbalance.graph import Graph, Node
from snnbalance.simulate import SimConfig, native, numpy_ref

pytestmark = pytest.mark.skipif(native.load() is None, reason=f"native engine unavailable: {native.status().reason}")


def assert_same(graph: Graph, x: np.ndarray, cfg: SimConfig, chunk: int = 7, threads: int = 2) -> dict:
    """Every layer's spike counts, the accuracy curve and the output counts equal the reference's."""
    b = len(x)
    y, index = np.arange(b) % graph.shapes()[graph.output.name][0], np.arange(b)
    want = numpy_ref.step_batch(graph, x, index, y, cfg)
    got = native.step_batch(native.load(), native.Plan(graph), x, index, y, cfg, threads, chunk)
    assert set(got[1]) == set(want[1])
    for layer in want[1]:
        np.testing.assert_array_equal(got[1][layer], want[1][layer], err_msg=f"layer {layer}")
    np.testing.assert_array_equal(got[0], want[0], err_msg="correct predictions per step")
    np.testing.assert_array_equal(got[2], want[2], err_msg="output counts")
    return want[1]


@pytest.mark.parametrize("seed", range(24))
@pytest.mark.parametrize("encoding", ["poisson", "current"])
def test_random_networks_match_the_reference_spike_for_spike(seed, encoding):
    graph = random_dag(seed, blocks=3 + seed % 3)
    cfg = SimConfig(
        duration=30,
        encoding=encoding,
        max_rate=600,
        reset="subtract" if seed % 2 else "zero",
        refractory=2 if seed % 4 == 3 else 0,
        seed=seed,
    )
    totals = assert_same(graph, exact_inputs(5, graph.input_shape, seed), cfg, chunk=1 + seed % 9)
    assert sum(int(v.sum()) for k, v in totals.items() if k != "input") > 0  # something happened


def test_the_random_networks_cover_every_kind():
    kinds = set().union(*(random_dag(s, blocks=3 + s % 3).kinds() for s in range(24)))
    assert kinds >= set(native.SUPPORTED_KINDS)


def _conv(name, src, w, **kw):
    return Node(name, "conv2d", (src,), weight=np.asarray(w, np.float32), **kw)


def test_max_pool_gate_ties_go_to_the_first_position_and_padding_never_wins():
    # one channel, 2x2 windows with padding 1: equal counts everywhere, so the first position wins
    ones = np.ones((1, 1, 1, 1), np.float32)
    g = Graph(
        (1, 4, 4),
        [
            _conv("c", "input", ones, relu=True, threshold=0.5),
            Node("m", "maxpool2d", ("c",), kernel=(2, 2), stride=(2, 2), padding=(1, 1)),
            Node("f", "flatten", ("m",)),
            Node("d", "dense", ("f",), weight=np.ones((2, 9), np.float32)),
        ],
    )
    x = np.zeros((2, 1, 4, 4), np.float32)
    x[0, 0, ::2, ::2] = 1.0  # every other pixel fires every step
    x[1] = 1.0
    totals = assert_same(g, x, SimConfig(duration=10, encoding="current"), chunk=3)
    assert totals["m"].sum() > 0


def test_add_of_a_synaptic_branch_and_spikes_with_scales():
    rng = np.random.default_rng(1)
    w = lambda *s: (np.round(rng.normal(0, 0.5, s) * 64) / 64).astype(np.float32)  # noqa: E731
    g = Graph(
        (2, 5, 5),
        [
            _conv("a", "input", w(3, 2, 3, 3), padding=(1, 1), relu=True, threshold=0.75),
            _conv("s", "a", w(3, 3, 3, 3), padding=(1, 1), bias=w(3)),  # synaptic only: feeds the add
            Node("r", "add", ("s", "a"), scales=(1.5, 0.5), relu=True, threshold=1.0),
            Node("f", "flatten", ("r",)),
            Node("d", "dense", ("f",), weight=w(3, 75)),
        ],
    )
    assert g.is_linear(g.node("s"))
    assert_same(g, exact_inputs(4, (2, 5, 5), 3), SimConfig(duration=40, max_rate=800), chunk=5)


def test_concat_of_layers_with_different_channel_counts_then_dense():
    rng = np.random.default_rng(2)
    w = lambda *s: (np.round(rng.normal(0, 0.5, s) * 64) / 64).astype(np.float32)  # noqa: E731
    g = Graph(
        (1, 6, 6),
        [
            _conv("a", "input", w(17, 1, 3, 3), padding=(1, 1), relu=True),  # 17: crosses a 16-channel pad
            _conv("b", "input", w(2, 1, 1, 1), relu=True),
            Node("c", "concat", ("a", "b")),
            _conv("e", "c", w(4, 19, 3, 3), relu=True),  # reads the joined spikes (gather path)
            Node("f", "flatten", ("e",)),
            Node("d", "dense", ("f",), weight=w(3, 64)),
        ],
    )
    assert_same(g, exact_inputs(3, (1, 6, 6), 4), SimConfig(duration=30, max_rate=700))


def test_per_position_bias_and_asymmetric_padding():
    rng = np.random.default_rng(3)
    w = lambda *s: (np.round(rng.normal(0, 0.4, s) * 64) / 64).astype(np.float32)  # noqa: E731
    g = Graph(
        (1, 6, 6),
        [
            _conv("a", "input", w(2, 1, 2, 2), padding=(0, 0, 1, 1), bias=w(2, 6, 6), relu=True),
            Node("p", "avgpool2d", ("a",), kernel=(2, 2), stride=(2, 2), padding=(1, 1, 0, 0)),
            Node("f", "flatten", ("p",)),
            Node("d", "dense", ("f",), weight=w(3, 18)),
        ],
    )
    assert g.kinds() >= {"bias-map", "asym-pad"}
    for encoding in ("poisson", "current"):
        assert_same(g, exact_inputs(3, (1, 6, 6), 5), SimConfig(duration=25, encoding=encoding))


def test_current_encoding_into_a_gate_on_the_input_is_refused_by_name():
    g = Graph(
        (1, 4, 4),
        [
            Node("m", "maxpool2d", kernel=(2, 2), stride=(2, 2)),
            Node("f", "flatten", ("m",)),
            Node("d", "dense", ("f",), weight=np.ones((2, 4), np.float32)),
        ],
    )
    assert "maxpool2d m reads the input" in native.unsupported_reason(g, "current")
    assert native.unsupported_reason(g, "poisson") == ""
    assert_same(g, exact_inputs(2, (1, 4, 4), 1), SimConfig(duration=20))


def test_auto_runs_every_kind_on_the_native_engine():
    from snnbalance.simulate import choose_simulator
    from snnbalance.simulate.engines import make_stepper

    for seed in range(6):
        g = random_dag(seed)
        assert choose_simulator(g) == "spikingjelly"
        assert make_stepper(g, SimConfig())[1] == "native"


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("encoding", ["poisson", "current"])
@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_membrane_readout_matches_the_reference(seed, encoding, reset):
    # the output layer integrates without spiking: same correct count per step, same potentials
    graph = random_dag(seed, blocks=3 + seed % 3)
    cfg = SimConfig(
        duration=30, encoding=encoding, max_rate=600, reset=reset, seed=seed, readout="membrane", v_init=0.5 if seed % 2 else None
    )
    totals = assert_same(graph, exact_inputs(5, graph.input_shape, seed), cfg, chunk=1 + seed % 9)
    assert not totals[graph.output.name].any()  # the output layer records no spikes
    b = 5
    y, index = np.arange(b) % graph.shapes()[graph.output.name][0], np.arange(b)
    pot = native.step_batch(native.load(), native.Plan(graph), exact_inputs(b, graph.input_shape, seed), index, y, cfg, 2, 4)[2]
    assert pot.dtype == np.float32 and np.abs(pot).sum() > 0
