"""Initial membrane potential (``v_init``): what it means, and the same spikes on every back end.

The random networks are :func:`snnbalance.dags.random_dag`'s (dyadic weights, thresholds and
inputs) with dyadic fractions, so ``v_init * threshold`` and every sum are exact in float32 and the
engines must agree with the NumPy reference spike for spike.
"""

from __future__ import annotations

import numpy as np
import pytest

from snnbalance.dags import exact_inputs, random_dag
from snnbalance.errors import SnnBalanceError
from snnbalance.graph import Graph, Node
from snnbalance.simulate import SimConfig, native, numpy_ref

FRACTIONS = (0.5, 0.25, -0.25, 0.75, 0.0)


def with_fractions(graph: Graph, seed: int) -> Graph:
    """Each layer gets its own dyadic fraction, so a back end that used one value for all fails."""
    g = graph.copy()
    for k, n in enumerate(g.nodes):
        n.v_init = FRACTIONS[(k + seed) % len(FRACTIONS)]
    return g


def labels(g: Graph, b: int):
    return np.arange(b) % g.shapes()[g.output.name][0], np.arange(b) + 3


def assert_equal(got, want) -> None:
    assert sorted(got[1]) == sorted(want[1])
    for layer in want[1]:
        np.testing.assert_array_equal(got[1][layer], want[1][layer], err_msg=f"spikes of {layer}")
    np.testing.assert_array_equal(got[0], want[0], err_msg="correct per step")
    np.testing.assert_array_equal(got[2], want[2], err_msg="output counts")


def one_neuron(v_init: float, current: float, reset: str, steps: int) -> int:
    g = Graph((1,), [Node("d", "dense", weight=np.array([[current]], np.float32), threshold=1.0, v_init=v_init)])
    cfg = SimConfig(duration=steps, encoding="current", max_rate=1000.0, reset=reset)
    _, totals, _ = numpy_ref.step_batch(g, np.ones((1, 1), np.float32), np.arange(1), np.zeros(1, int), cfg)
    return int(totals["d"].sum())


@pytest.mark.parametrize("a", [0.375, 0.625, 0.125, 0.8125])  # dyadic: the sums are exact
@pytest.mark.parametrize("steps", [1, 4, 7, 20])
def test_half_threshold_start_rounds_the_rate_to_nearest_with_reset_by_subtraction(a, steps):
    # constant current a*threshold per step: floor(a T + v_init) spikes in T steps
    assert one_neuron(0.5, a, "subtract", steps) == int(np.floor(a * steps + 0.5))
    assert one_neuron(0.0, a, "subtract", steps) == int(np.floor(a * steps))


def test_a_run_setting_replaces_every_layers_fraction():
    g = Graph((1,), [Node("d", "dense", weight=np.array([[0.25]], np.float32), v_init=0.75)])
    x, y, idx = np.ones((1, 1), np.float32), np.zeros(1, int), np.arange(1)
    spikes = lambda v: int(
        numpy_ref.step_batch(  # noqa: E731
            g, x, idx, y, SimConfig(duration=3, encoding="current", v_init=v)
        )[1]["d"].sum()
    )
    assert [spikes(None), spikes(0.0), spikes(0.5), spikes(-0.25)] == [1, 0, 1, 0]


@pytest.mark.parametrize("bad", [1.0, 1.5, -1.25, float("nan")])
def test_fractions_outside_minus_one_to_one_are_refused_in_one_line(bad):
    g = Graph((1,), [Node("d", "dense", weight=np.ones((2, 1), np.float32), v_init=bad)])
    with pytest.raises(SnnBalanceError, match=r"\[-1, 1\)"):
        g.validate()
    with pytest.raises(SnnBalanceError, match=r"--v-init"):
        SimConfig(v_init=bad).validate()


# -- every back end gives the reference's spikes --------------------------------------------------

NEEDS_NATIVE = pytest.mark.skipif(native.load() is None, reason=f"native engine unavailable: {native.status().reason}")


@NEEDS_NATIVE
@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("encoding", ["poisson", "current"])
def test_native_engine_starts_from_the_same_potentials(seed, encoding):
    g = with_fractions(random_dag(seed, blocks=2 + seed % 3), seed)
    x = exact_inputs(5, g.input_shape, seed)
    y, idx = labels(g, len(x))
    cfg = SimConfig(
        duration=24,
        encoding=encoding,
        max_rate=600,
        reset="subtract" if seed % 2 else "zero",
        refractory=2 if seed % 5 == 4 else 0,
        seed=seed,
    )
    want = numpy_ref.step_batch(g, x, idx, y, cfg)
    assert_equal(native.step_batch(native.load(), native.Plan(g), x, idx, y, cfg, 2, 1 + seed % 7), want)
    zero = numpy_ref.step_batch(g, x, idx, y, SimConfig(**{**cfg.__dict__, "v_init": 0.0}))
    assert any(not np.array_equal(zero[1][k], want[1][k]) for k in want[1])  # the fractions mattered


@NEEDS_NATIVE
def test_native_engine_applies_the_run_setting():
    g = random_dag(3)
    x = exact_inputs(4, g.input_shape, 3)
    y, idx = labels(g, len(x))
    plan = native.Plan(g)
    for v in (0.5, -0.25, 0.0):  # one plan, several runs: each starts from its own value
        cfg = SimConfig(duration=20, max_rate=500, v_init=v, seed=1)
        assert_equal(native.step_batch(native.load(), plan, x, idx, y, cfg, 1, 5), numpy_ref.step_batch(g, x, idx, y, cfg))


@pytest.mark.parametrize("neuron", ["torch", "sj", "triton"])
@pytest.mark.parametrize("seed", range(6))
def test_torch_engine_starts_from_the_same_potentials(seed, neuron):
    torch = pytest.importorskip("torch")
    from snnbalance.simulate import torch_kernels as tk
    from snnbalance.simulate import triton_kernels as tri

    if neuron == "triton" and tri.available() is not None:
        pytest.skip(f"no triton: {tri.available()}")
    device = "cuda" if neuron == "triton" and torch.cuda.is_available() else "cpu"
    if neuron == "triton" and device == "cpu" and seed > 1:
        pytest.skip("Triton's interpreter is slow: two seeds on the CPU")
    g = with_fractions(random_dag(seed), seed)
    x = exact_inputs(4, g.input_shape, seed)
    y, idx = labels(g, len(x))
    cfg = SimConfig(
        duration=16,
        max_rate=500,
        reset="subtract" if seed % 2 else "zero",
        seed=seed,
        refractory=2 if seed == 5 and neuron == "torch" else 0,
    )
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        got = tk.step_batch(tk.TorchNet(g, device, "fp32", neuron), x, idx, y, cfg, 1 + seed % 5)
    finally:
        torch.set_num_threads(saved)
    assert_equal(got, numpy_ref.step_batch(g, x, idx, y, cfg))


# -- files ----------------------------------------------------------------------------------------


def test_npz_keeps_every_layers_fraction_and_nir_refuses_it_in_one_line(tmp_path):
    from snnbalance.export import ExportSettings, read_npz, to_nir, write

    g = with_fractions(random_dag(2), 1)
    back, _ = read_npz(write(g, tmp_path / "net.npz"))
    assert [n.v_init for n in back.nodes] == [n.v_init for n in g.nodes]
    assert any(n.v_init != 0 for n in back.neuron_nodes())
    pytest.importorskip("nir")
    chain = Graph(
        (4,),
        [
            Node("h", "dense", weight=np.ones((3, 4), np.float32), relu=True, v_init=0.5),
            Node("o", "dense", ("h",), weight=np.ones((2, 3), np.float32)),
        ],
    )
    with pytest.raises(SnnBalanceError, match="no initial membrane potential.*--format npz"):
        to_nir(chain, ExportSettings())
    chain.nodes[0].v_init = 0.0
    to_nir(chain, ExportSettings())  # the same network from an empty membrane exports
