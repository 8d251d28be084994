"""Trust: nothing in a model file runs unless the user says so, and no number comes out silently wrong.

Each test here failed before the fix it guards (issue 18): a pickle that ran code on load, a
umask flipped under running threads, a calibration cache keyed by a reused ``id()``, an export
that built another network than ``convert``, an ANN fed the wrong preprocessing without a word,
NaN weights blamed on the tool, ``--simulator auto`` picking a back end that then refused the
network, a development machine's data path in the bench, and options checked after the run.
"""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import cli

from snnbalance.errors import SnnBalanceError
from snnbalance.graph import Graph, Node


class _Payload:
    """Unpickling this creates ``marker``: the stand-in for any code a file can run."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


# -- 1. no code execution from model files --------------------------------------------------------


@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_a_malicious_pickle_is_refused_and_runs_nothing(tmp_path, writer):
    import torch

    from snnbalance.importers import load_model

    marker = tmp_path / "pwned"
    path = tmp_path / "model.pt"
    if writer == "torch":
        torch.save(_Payload(marker), path)
    else:
        path.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(SnnBalanceError) as err:
        load_model(path)
    msg = str(err.value)
    assert not marker.exists()
    assert "--trust-model" in msg and ("io.open" in msg or "builtins.open" in msg) and "\n" not in msg
    # The flag is what gates it: with trust the payload runs (and the file is then refused).
    with pytest.raises(SnnBalanceError, match="not a module or state_dict|cannot read"):
        load_model(path, trust=True)
    assert marker.exists()


def test_convert_on_a_malicious_pickle_creates_nothing(capsys, tmp_path):
    import torch

    marker = tmp_path / "pwned"
    torch.save(_Payload(marker), tmp_path / "evil.pt")
    code, out, err = cli(capsys, "convert", str(tmp_path / "evil.pt"), "--samples", "5", "-o", str(tmp_path / "o"))
    assert code == 2 and not marker.exists() and not (tmp_path / "o").exists()
    assert err.strip().startswith("error:") and "--trust-model" in err and "Traceback" not in err + out


def test_a_pickled_module_loads_only_when_trusted(tmp_path):
    import torch

    from snnbalance.importers import load_model
    from snnbalance.models import PaperCNN

    path = tmp_path / "whole.pt"
    torch.save(PaperCNN(), path)
    with pytest.raises(SnnBalanceError, match=r"snnbalance\.models\.PaperCNN.*--trust-model"):
        load_model(path)
    assert load_model(path, trust=True).graph.input_shape == (1, 28, 28)


def test_an_empty_model_file_is_called_empty(tmp_path):
    from snnbalance.importers import load_model

    (tmp_path / "m.pt").write_bytes(b"")
    with pytest.raises(SnnBalanceError, match="is empty"):
        load_model(tmp_path / "m.pt")


# -- 2. atomic writes never touch the process umask -------------------------------------------------


def test_atomic_write_reads_no_umask_at_write_time(tmp_path, monkeypatch):
    from snnbalance import files

    def forbidden(*_):
        raise AssertionError("os.umask changed while writing")

    monkeypatch.setattr(os, "umask", forbidden)
    path = files.atomic_write(tmp_path / "a.txt", "x")
    assert path.stat().st_mode & 0o777 == 0o666 & ~files.UMASK
    assert files.UMASK == _current_umask_from_a_child()


def _current_umask_from_a_child() -> int:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "import os; m = os.umask(0); print(m)"], capture_output=True, text=True, check=True)
    return int(out.stdout)


# -- 3. the calibration cache is keyed by the graph, not a reusable id --------------------------------


def test_one_calibration_reused_across_graphs_built_in_a_loop():
    from snnbalance.records import Calibration

    rng = np.random.default_rng(0)
    x = rng.random((64, 6), dtype=np.float32)
    cal = Calibration(x)
    for k in range(1, 60):
        g = Graph((6,), [Node("d", "dense", weight=np.full((3, 6), float(k), np.float32), relu=False)])
        want = float(g.forward(x).max())
        assert cal.max_activations(g)["d"] == pytest.approx(want), f"graph {k} got another graph's maxima"
        del g  # CPython hands the next graph this id


# -- 4. export builds the network convert builds ---------------------------------------------------


def _normalized_input_job(tmp_path: Path):
    """A small ONNX CNN with biases trained (here: built) for (x - 0.5) / 0.25 inputs, and its data."""
    from snnbalance.export import write
    from snnbalance.testing import reference_graph

    model = write(reference_graph(3, True), tmp_path / "ann.onnx")
    rng = np.random.default_rng(1)
    x = (rng.random((60, 1, 12, 12)) * 255).astype(np.uint8)
    np.savez(tmp_path / "data.npz", x=x, y=rng.integers(0, 10, 60))
    return model, tmp_path / "data.npz"


def test_export_and_convert_balance_a_normalized_input_model_alike(tmp_path):
    from snnbalance.export import export_model, read_npz
    from snnbalance.pipeline import ConvertConfig, convert, load_network
    from snnbalance.simulate import SimConfig

    model, data = _normalized_input_job(tmp_path)
    job = dict(
        model=str(model),
        dataset=str(data),
        normalizers=["data-based"],
        calibration_samples=30,
        input_mean=[0.5],
        input_std=[0.25],
        samples=4,
    )
    report = convert(ConvertConfig(**job, sim=SimConfig(duration=3, seed=2)))
    exported = export_model(ConvertConfig(**job, sim=SimConfig(duration=3, seed=2)), tmp_path / "snn.npz")
    graph, stored = read_npz(exported.path)
    assert stored["scale_factors"] == pytest.approx(report.runs[0].scale_factors, rel=0, abs=0)
    first = load_network(ConvertConfig(**job))[0].graph.nodes[0]
    factor = report.runs[0].scale_factors[first.name]
    np.testing.assert_array_equal(graph.nodes[0].weight, (first.weight / factor).astype(np.float32))
    # Without the normalization the network differs: the options are not ignored.
    plain = export_model(ConvertConfig(**{**job, "input_mean": None, "input_std": None}), tmp_path / "p.npz")
    assert not np.array_equal(read_npz(plain.path)[0].nodes[0].weight, graph.nodes[0].weight)


def test_export_command_takes_the_input_options_and_one_normalizer(capsys, tmp_path):
    model, data = _normalized_input_job(tmp_path)
    out = tmp_path / "snn.npz"
    code, _, err = cli(
        capsys,
        "export",
        str(model),
        "--dataset",
        str(data),
        "--calibration-samples",
        "20",
        "--input-mean",
        "0.5",
        "--input-std",
        "0.25",
        "-o",
        str(out),
    )
    assert code == 0, err
    code, _, err = cli(capsys, "export", str(model), "-n", "data-based", "-n", "model-based", "-o", str(out))
    assert code == 2 and "name one normalizer" in err


# -- 5. an ANN near chance says so, and names the preprocessing that fits ---------------------------


def _raw_pixel_model(tmp_path: Path):
    """A model that only works on 0-255 pixels (as Keras models trained on raw images do)."""
    from snnbalance.export import write

    w1 = np.zeros((16, 16), np.float32)
    np.fill_diagonal(w1, 1.0)
    hidden = Node("h", "dense", ("flat",), weight=w1, bias=np.full(16, -100.0, np.float32), relu=True)
    out = Node("o", "dense", ("h",), weight=np.eye(10, 16, dtype=np.float32), bias=np.eye(1, 10)[0].astype(np.float32))
    graph = Graph((1, 4, 4), [Node("flat", "flatten"), hidden, out])
    model = write(graph, tmp_path / "raw.onnx")
    y = np.arange(200) % 10
    x = np.zeros((200, 1, 4, 4), np.uint8)
    x.reshape(200, 16)[np.arange(200), y] = 255
    np.savez(tmp_path / "digits.npz", x=x, y=y)
    return model, tmp_path / "digits.npz"


def test_an_ann_near_chance_names_the_preprocessing_that_fits(tmp_path):
    from snnbalance.pipeline import ConvertConfig, convert
    from snnbalance.simulate import SimConfig

    model, data = _raw_pixel_model(tmp_path)
    seen = []
    report = convert(
        ConvertConfig(model=str(model), dataset=str(data), normalizers=["model-based"], samples=50, sim=SimConfig(duration=2)), seen.append
    )
    assert report.ann_accuracy == pytest.approx(0.1)
    (warning,) = report.warnings
    assert "near chance" in warning and "pixels 0-255" in warning
    assert "--input-mean 0 --input-std 0.00392157" in warning and "input_mean=" not in warning
    assert any(e.task == "note" and e.info["message"] == warning for e in seen)  # said before simulating
    fixed = convert(
        ConvertConfig(
            model=str(model),
            dataset=str(data),
            normalizers=["model-based"],
            samples=50,
            input_mean=[0.0],
            input_std=[0.00392157],
            sim=SimConfig(duration=2),
        )
    )
    assert fixed.ann_accuracy == 1.0 and not fixed.warnings


def test_a_good_ann_gets_no_preprocessing_warning():
    from snnbalance.diagnose import preprocessing_warning
    from snnbalance.pipeline import ConvertConfig

    g = Graph((4,), [Node("d", "dense", weight=np.eye(4, dtype=np.float32))])
    x = np.eye(4, dtype=np.float32).repeat(5, axis=0)
    y = np.arange(4).repeat(5)
    assert preprocessing_warning(g, x, y, 1.0, ConvertConfig()) is None


# -- 6. NaN/Inf weights are named, not blamed on the tool ------------------------------------------


def test_nan_weights_name_the_layer_and_warn_nothing(tmp_path):
    from snnbalance.export import onnx_model
    from snnbalance.importers import load_model
    from snnbalance.testing import reference_graph

    g = reference_graph(0, True)
    bad = g.nodes[-1]
    bad.weight = bad.weight.copy()
    bad.weight[0, :3] = np.nan
    path = tmp_path / "nan.onnx"
    path.write_bytes(onnx_model(g).SerializeToString())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy RuntimeWarning either
        with pytest.raises(SnnBalanceError) as err:
            load_model(path)
    msg = str(err.value)
    assert bad.name in msg and "3 NaN" in msg and "please report" not in msg


# -- 7. --simulator auto picks a back end that runs the network -------------------------------------


def test_auto_chooses_a_simulator_that_accepts_a_per_position_bias():
    from snnbalance.simulate import SimConfig, choose_simulator, explain_choice, simulate

    rng = np.random.default_rng(0)
    conv = Node(
        "c",
        "conv2d",
        weight=rng.random((2, 1, 3, 3), dtype=np.float32) * 0.3,
        padding=(1, 1),
        bias=rng.random((2, 6, 6)).astype(np.float32) * 0.1,
        relu=True,
    )
    g = Graph(
        (1, 6, 6), [conv, Node("f", "flatten", ("c",)), Node("d", "dense", ("f",), weight=rng.random((3, 72), dtype=np.float32) * 0.1)]
    )
    assert "bias-map" in g.kinds()
    name = choose_simulator(g)
    x = rng.random((2, 1, 6, 6), dtype=np.float32)
    result = simulate(g, x, np.zeros(2, np.int64), SimConfig(duration=3), simulator=name)
    assert result.samples == 2
    chosen, passed = explain_choice(g)
    assert chosen == name and all("bias-map" in p for p in passed)


# -- 8. the bench reads data by the one data-root rule ---------------------------------------------


def test_bench_data_follows_the_data_root_rule(tmp_path, monkeypatch):
    from snnbalance import bench

    monkeypatch.setenv("SNNBALANCE_DATA", str(tmp_path))
    assert bench._data("test") is None  # nothing there, and no other machine's folder is tried


def test_no_development_machine_paths_in_the_package():
    root = Path(__file__).resolve().parents[1] / "snnbalance"
    hits = [str(p) for p in root.rglob("*.py") if "/work/shared" in p.read_text()]
    assert not hits


# -- 10. every option is checked before any work --------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (["--samples", "0"], "--samples must be at least 1"),
        (["--dataset", "mnsit"], "did you mean 'mnist'"),
        (["--device", "gpu"], "unknown device 'gpu'"),
        (["-n", "data-based:varient=code"], "did you mean 'variant'"),
        (["-n", "robsut"], "unknown normalizer 'robsut'"),
        (["--encoding", "poison"], "did you mean 'poisson'"),
        (["--maxpool", "max"], "unknown --maxpool mode"),
        (["--input-std", "0"], "--input-std must be finite and non-zero"),
        (["--input-shape", "3,x2"], "--input-shape takes whole numbers"),
    ],
)
def test_bad_options_fail_before_any_work(capsys, tmp_path, monkeypatch, args, message):
    import snnbalance.pipeline as pipeline

    def no_import(*_a, **_k):
        raise AssertionError("the model was imported before the options were checked")

    monkeypatch.setattr(pipeline, "load_network", no_import)
    code, _, err = cli(capsys, "convert", *args, "-o", str(tmp_path / "out"))
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_an_output_path_that_is_a_file_fails_before_any_work(capsys, tmp_path, monkeypatch):
    import snnbalance.pipeline as pipeline

    monkeypatch.setattr(pipeline, "load_network", lambda *a, **k: pytest.fail("imported first"))
    (tmp_path / "taken").write_text("x")
    for target in (tmp_path / "taken", tmp_path / "taken" / "sub"):
        code, _, err = cli(capsys, "convert", "-o", str(target))
        assert code == 2 and "--output" in err and str(target) in err


def test_a_read_only_output_folder_fails_before_any_work(tmp_path, monkeypatch):
    from snnbalance.files import check_output_dir

    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != tmp_path)
    with pytest.raises(SnnBalanceError, match="cannot be written"):
        check_output_dir(tmp_path / "new" / "deeper")
    assert check_output_dir(tmp_path.parent / "elsewhere-not-created") and not (tmp_path / "new").exists()
