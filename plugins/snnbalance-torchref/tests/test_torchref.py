"""Tests of the installed ``snnbalance-torchref`` plugin (run after ``pip install ./plugins/snnbalance-torchref``)."""

import numpy as np
import pytest

from snnbalance.normalize import normalize
from snnbalance.simulate import SimConfig, simulate
from snnbalance.testing import check_simulator, reference_graph, reference_inputs

torch = pytest.importorskip("torch")

pytest.importorskip("snnbalance_torchref", reason="the plugin is not installed: pip install ./plugins/snnbalance-torchref")


def test_conforms_on_cpu():
    check_simulator("torch-ref", "cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_conforms_on_cuda():
    check_simulator("torch-ref", "cuda")


@pytest.mark.parametrize("reset, refractory", [("zero", 0.0), ("subtract", 2.0)])
def test_matches_the_reference_on_a_poisson_cnn(reset, refractory):
    g = normalize(reference_graph(), "model-based").graph
    # Weights and biases on multiples of 2**-8, thresholds 1: with 0/1 input spikes every potential
    # is a float32 sum that is exact in any order, so torch's sums must give the reference's spikes.
    for n in g.nodes:
        for attr in ("weight", "bias"):
            if getattr(n, attr) is not None:
                setattr(n, attr, (np.round(getattr(n, attr) * 256) / 256).astype(np.float32))
    assert {n.threshold for n in g.neuron_nodes()} == {1.0}
    x, y = reference_inputs(10, seed=4), np.arange(10) % 5
    cfg = dict(duration=80, seed=2, reset=reset, refractory=refractory, batch_size=10)
    mine = simulate(g, x, y, SimConfig(**cfg), simulator="torch-ref")
    ref = simulate(g, x, y, SimConfig(**cfg), simulator="numpy")
    assert ref.spike_counts["c2"] > 100  # the comparison is about real activity
    assert mine.spike_counts == ref.spike_counts
    np.testing.assert_array_equal(mine.output_counts, ref.output_counts)
    np.testing.assert_array_equal(mine.accuracy_over_time, ref.accuracy_over_time)
    assert mine.simulator == "torch-ref" and mine.synaptic_ops_per_sample > 0


def test_layers_beyond_the_papers_are_refused_in_one_line():
    from snnbalance.errors import UnsupportedError

    g = reference_graph()
    g.node("p1").op = "maxpool2d"
    with pytest.raises(UnsupportedError, match="simulator 'torch-ref' handles .* not maxpool2d \\(layer p1\\)"):
        simulate(g, reference_inputs(2), np.zeros(2, np.int64), SimConfig(duration=5), simulator="torch-ref")
