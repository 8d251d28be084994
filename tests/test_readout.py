"""The membrane read-out (``SimConfig.readout="membrane"``, docs/semantics.md "Read-out"): the
output layer integrates its input current without threshold or reset and the prediction is the
argmax of that potential; every back end gives the reference's predictions and potentials."""

from __future__ import annotations

import numpy as np
import pytest

from snnbalance.errors import SnnBalanceError, UnsupportedError
from snnbalance.graph import Graph, Node
from snnbalance.simulate import SimConfig, numpy_ref
from snnbalance.simulate.core import run_batches


def _net() -> Graph:
    # one hidden IF neuron (threshold 1) fed 0.5 per step spikes every other step (steps 2, 4, ...);
    # the output: class 0 gets 0.5 + s per step, class 1 gets 3 s
    return Graph(
        (1,),
        [
            Node("h", "dense", ("input",), weight=np.ones((1, 1), np.float32), relu=True, threshold=1.0),
            Node("o", "dense", ("h",), weight=np.array([[1.0], [3.0]], np.float32), bias=np.array([0.5, 0.0], np.float32), threshold=1.0),
        ],
    )


def test_reference_integrates_the_output_current_by_hand():
    x, y = np.array([[0.5]], np.float32), np.array([1])
    cfg = SimConfig(duration=4, encoding="current", readout="membrane")
    correct, totals, pot = numpy_ref.step_batch(_net(), x, np.arange(1), y, cfg)
    # potentials after steps 1..4: [0.5, 0], [2, 3], [2.5, 3], [4, 6]
    np.testing.assert_array_equal(pot, [[4.0, 6.0]])
    np.testing.assert_array_equal(correct, [0, 1, 1, 1])
    assert totals["h"].sum() == 2 and totals["o"].sum() == 0


def test_spike_readout_is_unchanged_by_the_option():
    x, y = np.array([[0.5]], np.float32), np.array([1])
    a = numpy_ref.step_batch(_net(), x, np.arange(1), y, SimConfig(duration=6, encoding="current"))
    b = numpy_ref.step_batch(_net(), x, np.arange(1), y, SimConfig(duration=6, encoding="current", readout="spikes"))
    assert a[2].dtype == np.int32 and a[1]["o"].sum() > 0
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u if not isinstance(u, dict) else u["o"], v if not isinstance(v, dict) else v["o"])


def test_ties_go_to_class_zero():
    g = Graph((1,), [Node("o", "dense", ("input",), weight=np.ones((3, 1), np.float32), threshold=1.0)])
    correct, _, pot = numpy_ref.step_batch(
        g, np.array([[1.0], [1.0]], np.float32), np.arange(2), np.array([0, 2]), SimConfig(duration=3, readout="membrane")
    )
    np.testing.assert_array_equal(pot, [[3, 3, 3], [3, 3, 3]])
    np.testing.assert_array_equal(correct, [1, 1, 1])


def test_readout_is_checked_with_a_suggestion():
    with pytest.raises(SnnBalanceError, match="readout must be one of spikes, membrane.*membrane"):
        SimConfig(readout="membran").validate()


def test_a_back_end_that_returns_spike_counts_is_refused_for_membrane():
    def spikes_only(graph, x, index, y, cfg):
        return np.zeros(cfg.steps, np.int64), {}, np.zeros((len(x), 2), np.int32)

    with pytest.raises(UnsupportedError, match="--readout membrane"):
        run_batches(_net(), np.ones((2, 1), np.float32), np.zeros(2, int), SimConfig(duration=2, readout="membrane"), spikes_only, "plugin")


@pytest.mark.parametrize("encoding", ["poisson", "current"])
def test_spikingjelly_simulator_gives_the_reference_result(encoding):
    from snnbalance.dags import exact_inputs, random_dag
    from snnbalance.simulate import spikingjelly

    g = random_dag(3)
    x = exact_inputs(7, g.input_shape, 3)
    y = np.arange(7) % g.shapes()[g.output.name][0]
    cfg = SimConfig(duration=25, max_rate=600, encoding=encoding, reset="subtract", readout="membrane", batch_size=3)
    want = numpy_ref.simulate(g, x, y, cfg)
    got = spikingjelly.simulate(g, x, y, cfg)
    np.testing.assert_array_equal(got.accuracy_over_time, want.accuracy_over_time)
    np.testing.assert_array_equal(got.output_counts, want.output_counts)
    assert want.output_counts.dtype == np.float32
    assert g.output.name not in want.spike_counts and g.output.name not in want.firing_rates
    assert set(got.spike_counts) == set(want.spike_counts) and got.spike_counts == want.spike_counts
    assert got.synaptic_ops_per_sample == want.synaptic_ops_per_sample > 0


def test_the_results_table_names_the_membrane_readout():
    from snnbalance.pipeline import ConversionReport, ConvertConfig
    from snnbalance.tables import results_table

    def title(readout: str) -> str:
        cfg = ConvertConfig(sim=SimConfig(duration=10, readout=readout))
        report = ConversionReport(
            model="m",
            dataset="mnist",
            config=cfg,
            ann_accuracy=0.9,
            graph=_net(),
            import_notes=[],
            import_max_rel_error=0.0,
            data_notes=[],
            runs=[],
        )
        return results_table(report).title

    assert "read-out" not in title("spikes")
    assert title("membrane").endswith("membrane read-out")


def test_npz_export_stores_the_readout_and_nir_refuses_membrane(tmp_path):
    from snnbalance.export import ExportSettings, read_npz, write

    path = write(_net(), tmp_path / "net.npz", "npz", ExportSettings(readout="membrane"))
    assert read_npz(path)[1]["readout"] == "membrane"
    with pytest.raises(SnnBalanceError, match="membrane read-out.*NIR"):
        write(_net(), tmp_path / "net.nir", "nir", ExportSettings(readout="membrane"))


def test_a_simulator_without_the_membrane_readout_is_refused_before_any_work(monkeypatch):
    """A plugin simulator declares its read-outs; asking it for another is one line at validation."""
    from snnbalance.pipeline import ConvertConfig
    from snnbalance.plugins import registry
    from snnbalance.records import Simulator

    def never(*args, **kwargs):  # pragma: no cover - validation must stop the job first
        raise AssertionError("simulated although the read-out is not implemented")

    reg = registry()
    monkeypatch.setitem(reg.simulators, "spikes-only", Simulator("spikes-only", "test back end", never))
    cfg = ConvertConfig(simulator="spikes-only", sim=SimConfig(readout="membrane"))
    with pytest.raises(UnsupportedError, match=r"reads out spikes only, not --readout membrane \(simulators that do: numpy, spikingjelly"):
        cfg.validate()
    ConvertConfig(simulator="spikes-only", sim=SimConfig(readout="spikes")).validate()
