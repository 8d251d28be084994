"""Tests of the installed ``snnbalance-torchref`` plugin (run after ``pip install ./plugins/snnbalance-torchref``)."""

import numpy as np
import pytest

from snnbalance.normalize import normalize
from snnbalance.records import Calibration
from snnbalance.simulate import SimConfig, simulate
from snnbalance.testing import check_simulator, reference_graph, reference_inputs

torch = pytest.importorskip("torch")

pytest.importorskip("snnbalance_torchref",
                    reason="the plugin is not installed: pip install ./plugins/snnbalance-torchref")


def test_conforms_on_cpu():
    check_simulator("torch-ref", "cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_conforms_on_cuda():
    check_simulator("torch-ref", "cuda")


@pytest.mark.parametrize("reset, refractory", [("zero", 0.0), ("subtract", 2.0)])
def test_matches_the_reference_on_a_poisson_cnn(reset, refractory):
    g = normalize(reference_graph(), "model-based").graph
    x, y = reference_inputs(10, seed=4), np.arange(10) % 5
    cfg = dict(duration=80, seed=2, reset=reset, refractory=refractory, batch_size=10)
    mine = simulate(g, x, y, SimConfig(**cfg), simulator="torch-ref")
    ref = simulate(g, x, y, SimConfig(**cfg), simulator="numpy")
    for layer, n in ref.spike_counts.items():
        assert abs(mine.spike_counts[layer] - n) <= 0.01 * max(n, 100), layer
    assert mine.simulator == "torch-ref" and mine.synaptic_ops_per_sample > 0
    assert np.sum(mine.output_counts.argmax(1) != ref.output_counts.argmax(1)) <= 1


def test_layers_beyond_the_papers_are_refused_in_one_line():
    from snnbalance.errors import UnsupportedError

    g = reference_graph()
    g.node("p1").op = "maxpool2d"
    with pytest.raises(UnsupportedError, match="simulator 'torch-ref' handles .* not maxpool2d \\(layer p1\\)"):
        simulate(g, reference_inputs(2), np.zeros(2, np.int64), SimConfig(duration=5), simulator="torch-ref")
