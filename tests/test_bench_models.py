"""`snnbalance bench --model`: any network, the same table as the paper's two, and per-layer shares.

Speed is never asserted here (that is the benchmark's job, on a quiet machine); these tests hold
the plumbing: the network read as convert reads it, the torch module SpikingJelly's flow runs is
the same ANN, each method measured on it, and the native engine's time split over its layers.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from snnbalance.dags import exact_inputs, random_dag
from snnbalance.export import write
from snnbalance.graph_torch import to_torch


@pytest.mark.parametrize("seed", range(12))
def test_the_torch_module_of_a_graph_computes_the_graph(seed):
    g = random_dag(seed)
    x = exact_inputs(4, g.input_shape, seed)
    with torch.no_grad():
        got = to_torch(g)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, g.forward(x), rtol=0, atol=1e-5)


def _model(tmp_path, seed):
    g = random_dag(seed)
    return write(g, tmp_path / f"net{seed}.onnx"), g


def test_bench_measures_any_model_file(tmp_path):
    from snnbalance.bench import model_network, run_bench
    from snnbalance.pipeline import ConvertConfig

    path, g = _model(tmp_path, 4)  # max pooling and concat
    assert "maxpool2d" in g.kinds() and "asym-pad" not in g.kinds()
    net = model_network(ConvertConfig(model=str(path), dataset="random"), samples=6, calibration=6)
    assert net.graph.input_shape == g.input_shape and net.x.shape == (6, *g.input_shape)
    out = run_bench("cpu", samples=6, duration=4, networks=[net], sj_steps=2, calibration=6, gemm_seconds=0.05)
    row = out["models"][net.name]
    assert row["macs_per_image_step"] == g.total_macs()
    ours = row["spikingjelly"]
    assert ours["engine"] == "native" and ours["image_steps_per_s"] > 0
    assert set(ours["layer_share"]) == {n.name for n in g.nodes if n.op != "flatten"}
    assert sum(ours["layer_share"].values()) == pytest.approx(1.0)
    assert row["sj_flow"]["image_steps_per_s"] > 0 and row["numpy"]["samples"] == 6


def test_a_network_spikingjellys_converter_refuses_is_reported_not_fatal(tmp_path):
    from snnbalance.bench import model_network, run_bench
    from snnbalance.pipeline import ConvertConfig

    path, g = _model(tmp_path, 0)  # asymmetric padding: SpikingJelly's converter has no module for it
    assert "asym-pad" in g.kinds()
    net = model_network(ConvertConfig(model=str(path), dataset="random"), samples=3, calibration=3)
    out = run_bench(
        "cpu", samples=3, duration=3, networks=[net], sj_steps=2, calibration=3, gemm_seconds=0.05, methods=("spikingjelly", "sj_flow")
    )
    row = out["models"][net.name]
    assert "SpikingJelly's converter refused it" in row["sj_flow_error"] and "sj_flow" not in row
    assert row["spikingjelly"]["vs_sj_flow"] is None


def test_bench_command_takes_a_model(tmp_path, capsys):
    from snnbalance.cli import main

    path, _ = _model(tmp_path, 2)
    try:
        main(["bench", "--model", str(path), "--dataset", "random", "--samples", "3", "--duration", "3", "--sj-steps", "2"])
    except SystemExit as exc:
        assert exc.code in (0, None)
    both = capsys.readouterr()
    out = both.out
    assert "native engine time by layer" in out and "SJ ann2snn" in out
    assert "done in" not in out and "done in" in both.err  # progress on stderr, results on stdout
    assert "a CIFAR-10-sized evaluation (10,000 images x 400 steps) takes" in out


@pytest.mark.parametrize("seed", range(10))
def test_an_onnx_export_imports_back_to_the_same_network(tmp_path, seed):
    """snnbalance's own ONNX (residual adds written as Mul + Sum, asymmetric pads, bias maps) reads back."""
    from snnbalance.importers import load_model

    g = random_dag(seed)
    back = load_model(write(g, tmp_path / "g.onnx")).graph
    x = exact_inputs(3, g.input_shape, seed)
    np.testing.assert_allclose(back.forward(x), g.forward(x), rtol=0, atol=1e-5)
