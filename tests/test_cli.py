"""The command line as a user meets it: help, the embedded default job, and one-line errors."""

import json
import subprocess
import sys

import pytest
from conftest import cli


def test_help_lists_commands(capsys):
    code, out, _ = cli(capsys, "--help")
    assert code == 0
    for cmd in ("convert", "train", "plugins", "bench", "export", "tui", "reproduce"):
        assert cmd in out


def test_convert_help_reads_well(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # option names are never cut at this width
    code, out, _ = cli(capsys, "convert", "--help")
    assert code == 0
    for opt in (
        "--normalizer",
        "--simulator",
        "--duration",
        "--dt",
        "--max-rate",
        "--threshold",
        "--reset",
        "--encoding",
        "--samples",
        "--calibration-samples",
        "--seed",
        "--device",
        "--output",
    ):
        assert opt in out
    assert "(ms)" in out and "[default: 300.0]" in out  # units survive Rich markup


def test_plugins_lists_builtins(capsys):
    code, out, _ = cli(capsys, "plugins")
    assert code == 0
    for name in ("baseline", "model-based", "data-based", "numpy", "variant"):
        assert name in out


def _convert(capsys, tmp_path, *extra):
    return cli(
        capsys,
        "convert",
        "--samples",
        "40",
        "--duration",
        "25",
        "--calibration-samples",
        "200",
        "-n",
        "model-based",
        "-n",
        "data-based",
        "--output",
        str(tmp_path),
        *extra,
    )


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
        for key in (
            "simulator",
            "threshold",
            "scale_factors",
            "firing_rates",
            "synaptic_ops_per_sample",
            "wall_seconds",
            "image_steps_per_second",
        ):
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


@pytest.mark.parametrize(
    "args, msg",
    [
        (["convert", "no/such/model.onnx"], "not found"),
        (["convert", "-n", "nope"], "unknown normalizer 'nope'"),
        (["convert", "--simulator", "nope"], "unknown simulator"),
        (["convert", "--reset", "soft"], "reset must be one of"),
        (["convert", "--dataset", "no-such.npz"], "no-such.npz"),
    ],
)
def test_user_errors_are_one_line_exit_2(capsys, args, msg):
    code, out, err = cli(capsys, *args)
    assert code == 2
    assert msg in err and "Traceback" not in err + out
    assert len(err.strip().splitlines()) == 1


def test_unsupported_layer_is_one_line_exit_2(capsys, tmp_path):
    import torch

    path = tmp_path / "sig.pt"
    torch.save(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10), torch.nn.Sigmoid(), torch.nn.Linear(10, 10)), path)
    code, out, err = cli(capsys, "convert", str(path), "--trust-model", "--samples", "5", "--duration", "5")
    assert code == 2 and "Sigmoid" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_debug_shows_the_traceback():
    proc = subprocess.run([sys.executable, "-m", "snnbalance", "--debug", "convert", "missing.onnx"], capture_output=True, text=True)
    assert proc.returncode != 0 and "Traceback" in proc.stderr


# -- issue 17: a newcomer's first ten minutes ---------------------------------------------------
def _all_options():
    """(command, option) for every option of every command, walked from the Click tree."""
    import typer

    from snnbalance.cli import app

    group = typer.main.get_command(app)
    for name, cmd in group.commands.items():
        for param in cmd.params:
            for opt in [*param.opts, *param.secondary_opts]:
                if opt.startswith("--") and opt != "--help":
                    yield name, opt


def test_every_option_is_in_usage_md():
    from pathlib import Path

    text = (Path(__file__).parent.parent / "docs" / "usage.md").read_text()
    missing = sorted({f"{c} {o}" for c, o in _all_options() if f"`{o}" not in text and f" {o}" not in text})
    assert not missing, f"not in docs/usage.md: {missing}"


def test_boolean_flags_have_one_spelling():
    import typer

    from snnbalance.cli import app

    for name, cmd in typer.main.get_command(app).commands.items():
        for param in cmd.params:
            assert not param.secondary_opts, f"{name} {param.opts}: {param.secondary_opts}"


@pytest.mark.parametrize("command", ["convert", "train", "plugins", "bench", "export", "tui", "reproduce"])
def test_help_short_flag_examples_and_no_cut_names(capsys, monkeypatch, command):
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = cli(capsys, command, "-h")
    assert code == 0 and "Examples:" in out and f"snnbalance {command}" in out.split("Examples:")[1]
    assert "<bool>" not in out and "…" not in out and "list[" not in out
    for c, opt in _all_options():
        if c == command:
            assert opt in out, f"{opt} cut or missing at 80 columns"


def test_version(capsys):
    from importlib.metadata import version

    code, out, _ = cli(capsys, "--version")
    assert code == 0 and out.strip() == f"snnbalance {version('snnbalance')}"


def test_debug_after_the_command():
    proc = subprocess.run([sys.executable, "-m", "snnbalance", "convert", "missing.onnx", "--debug"], capture_output=True, text=True)
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "No such option" not in proc.stderr


def test_default_normalizers_are_built_in_or_installed():
    from snnbalance.pipeline import ConvertConfig
    from snnbalance.plugins import registry

    norms = ConvertConfig().normalizers
    assert norms[0] == "data-based" and "model-based" not in norms
    assert set(norms) <= set(registry().normalizers)


def test_json_to_stdout_progress_and_notes_to_stderr(capsys, tmp_path):
    code, out, err = _convert(capsys, tmp_path, "--json", "-", "-n", "data-based")
    assert code == 0, err
    res = json.loads(out)  # stdout is the JSON and nothing else
    assert res == json.loads((tmp_path / "results.json").read_text())
    assert [r["normalizer"] for r in res["runs"]] == ["model-based", "data-based"]  # -n X -n X: once
    assert "named more than once" in err and "note:" in err and "ANN accuracy" in err
    assert "wrote" in err


def test_results_to_stdout_not_progress(capsys, tmp_path):
    code, out, err = _convert(capsys, tmp_path, "--json", str(tmp_path / "r.json"))
    assert code == 0, err
    assert "ANN accuracy" in out and "done in" not in out
    assert "note:" not in out and "━" in out  # the table; notes went to stderr
    assert "done in" in err  # a plain progress line (stderr is not a terminal here)
    assert json.loads((tmp_path / "r.json").read_text())["samples"] == 40


def test_silent_output_gets_a_duration_from_the_library(tmp_path):
    from snnbalance.pipeline import ConvertConfig, convert
    from snnbalance.simulate import SimConfig

    cfg = ConvertConfig(normalizers=["model-based", "data-based"], samples=20, calibration_samples=100, sim=SimConfig(duration=30.0))
    report = convert(cfg)
    advice = [w for w in report.warnings if w.startswith("model-based")]
    assert len(advice) == 1 and "no output spike within 30 ms" in advice[0] and "--duration " in advice[0]
    assert not [w for w in report.warnings if w.startswith("data-based")]


def test_suggest_duration_is_round_and_whole_steps():
    from snnbalance.settling import suggest_duration

    assert suggest_duration(1440, 1.0) == 1500
    assert suggest_duration(300, 1.0) == 300
    assert suggest_duration(2100, 0.7) == 4286 * 0.7  # 3000 ms is not a whole number of 0.7 ms steps


def test_plugins_json_and_full_names(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = cli(capsys, "plugins", "--json")
    data = json.loads(out)
    assert code == 0 and {"plugins", "normalizers", "simulators", "datasets", "problems"} <= set(data)
    assert "data-based" in [n["name"] for n in data["normalizers"]]
    code, out, _ = cli(capsys, "plugins")
    assert "snnbalance.normalize.data_based" in out and "…" not in out


def test_plain_progress_lines_when_not_a_terminal(monkeypatch):
    import io

    from rich.console import Console

    from snnbalance.cli import progress as p
    from snnbalance.progress import ProgressEvent

    clock = iter([0.0, 6.0, 7.0, 12.0, 13.0])
    monkeypatch.setattr(p.time, "monotonic", lambda: next(clock))
    buf = io.StringIO()
    display = p.ProgressDisplay(Console(file=buf, width=200))
    assert display.plain  # a StringIO is not a terminal
    with display:
        for k in (1, 10, 20, 30, 40):
            display(ProgressEvent("simulate data-based", k, 40, {"accuracy": [0.5]}))
    lines = buf.getvalue().splitlines()
    assert lines == [
        "simulate data-based: 10/40, 1.5/s, ETA 0:20, acc 50.00 %",
        "simulate data-based: 30/40, 2.42/s, ETA 0:04, acc 50.00 %",
        "simulate data-based: 40/40, done in 0:13, acc 50.00 %",
    ]


def test_nir_named_npz_gets_a_word(capsys, tmp_path):
    fake = tmp_path / "net.npz"
    fake.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    code, _, err = cli(capsys, "convert", "--dataset", str(fake))
    assert code == 2 and "is a NIR file (HDF5) named .npz" in err
