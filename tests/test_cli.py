"""The command line as a user meets it: help, the embedded default job, and one-line errors."""

import json
import subprocess
import sys

import numpy as np
import pytest

from snnbalance.cli import main


def cli(capsys, *args):
    """Run ``snnbalance ARGS`` in-process; return (exit code, stdout, stderr)."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_help_lists_commands(capsys):
    code, out, _ = cli(capsys, "--help")
    assert code == 0
    for cmd in ("convert", "train", "plugins", "bench", "export", "tui", "reproduce"):
        assert cmd in out


def test_convert_help_reads_well(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # option names are never cut at this width
    code, out, _ = cli(capsys, "convert", "--help")
    assert code == 0
    for opt in ("--normalizer", "--simulator", "--duration", "--dt", "--max-rate", "--threshold", "--reset",
                "--encoding", "--samples", "--calibration-samples", "--seed", "--device", "--output"):
        assert opt in out
    assert "(ms)" in out and "[default: 300.0]" in out  # units survive Rich markup


def test_plugins_lists_builtins(capsys):
    code, out, _ = cli(capsys, "plugins")
    assert code == 0
    for name in ("baseline", "model-based", "data-based", "numpy", "variant"):
        assert name in out


def _convert(capsys, tmp_path, *extra):
    return cli(capsys, "convert", "--samples", "40", "--duration", "25", "--calibration-samples", "200",
               "-n", "model-based", "-n", "data-based", "--output", str(tmp_path), *extra)


def test_convert_embedded_default_writes_results(capsys, tmp_path):
    code, out, err = _convert(capsys, tmp_path)
    assert code == 0, err
    assert "ANN accuracy" in out and "data-based" in out
    res = json.loads((tmp_path / "results.json").read_text())
    for key in ("model", "dataset", "samples", "seed", "ann_accuracy", "config", "runs"):
        assert key in res
    assert res["samples"] == 40 and [r["normalizer"] for r in res["runs"]] == ["model-based", "data-based"]
    for run in res["runs"]:
        assert len(run["accuracy_over_time"]) == 25
        assert run["final_accuracy"] == run["accuracy_over_time"][-1]
        for key in ("simulator", "threshold", "scale_factors", "firing_rates", "synaptic_ops_per_sample",
                    "wall_seconds", "image_steps_per_second"):
            assert key in run
    assert (tmp_path / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*tmp"))  # no temporary files left behind


def test_same_seed_same_numbers(capsys, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert _convert(capsys, a, "--seed", "3")[0] == 0
    assert _convert(capsys, b, "--seed", "3")[0] == 0
    ra, rb = (json.loads((d / "results.json").read_text())["runs"] for d in (a, b))
    for x, y in zip(ra, rb):
        assert x["accuracy_over_time"] == y["accuracy_over_time"] and x["spike_counts"] == y["spike_counts"]
        assert x["scale_factors"] == y["scale_factors"]


@pytest.mark.parametrize("args, msg", [
    (["convert", "no/such/model.onnx"], "not found"),
    (["convert", "-n", "nope"], "unknown normalizer 'nope'"),
    (["convert", "--simulator", "nope"], "unknown simulator"),
    (["convert", "--reset", "soft"], "reset must be one of"),
    (["convert", "--dataset", "no-such.npz"], "no-such.npz"),
])
def test_user_errors_are_one_line_exit_2(capsys, args, msg):
    code, out, err = cli(capsys, *args)
    assert code == 2
    assert msg in err and "Traceback" not in err + out
    assert len(err.strip().splitlines()) == 1


def test_unsupported_layer_is_one_line_exit_2(capsys, tmp_path):
    import torch

    path = tmp_path / "sig.pt"
    torch.save(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10), torch.nn.Sigmoid()), path)
    code, out, err = cli(capsys, "convert", str(path), "--trust-model", "--samples", "5", "--duration", "5")
    assert code == 2 and "Sigmoid" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_debug_shows_the_traceback():
    proc = subprocess.run([sys.executable, "-m", "snnbalance", "--debug", "convert", "missing.onnx"],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "Traceback" in proc.stderr
