"""Optional parts (snnbalance/extras.py): a missing one is one line naming its extra and exit code 2
before any work, the main job runs without any of them, and the test extra pulls every one."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import tomllib
from importlib.metadata import EntryPoint
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, cli

from snnbalance import extras
from snnbalance.errors import SnnBalanceError


def missing(monkeypatch, *modules: str) -> None:
    """Make ``import MODULE`` fail here as if it were not installed."""
    for m in modules:
        monkeypatch.setitem(sys.modules, m, None)


def one_error_line(code: int, err: str, *parts: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for p in parts:
        assert p in lines[0], (p, err)


# -- pyproject ------------------------------------------------------------------------------------


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _names(reqs: list[str]) -> set[str]:
    import re

    return {re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0].lower() for r in reqs}


def test_every_extra_exists_and_the_test_extra_pulls_all_of_them():
    project = _pyproject()
    optional = project["optional-dependencies"]
    for extra in extras.EXTRAS:
        assert extra in optional, f"extras.py names the extra {extra!r}; pyproject.toml has none"
    [everything] = optional["all"]
    assert everything.startswith("snnbalance[") and everything.endswith("]")
    assert set(everything[len("snnbalance[") : -1].split(",")) == set(extras.EXTRAS) == set(optional) - {"all", "test"}
    assert "snnbalance[all]" in optional["test"]  # so CI (README's test command, .ci/run) tests every part
    for part in extras.PARTS.values():
        if part.extra:  # the module's distribution is in its extra, and not required by the main job
            assert part.module in _names(optional[part.extra]), part
            assert part.module not in _names(project["dependencies"]), part
    assert "triton" not in _names(project["dependencies"])  # torch's CUDA wheels bring it


def test_readme_and_ci_run_the_same_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci.strip() in readme
    assert "-e '.[test]'" in ci


# -- each entry point, one line -------------------------------------------------------------------


def test_tui_without_textual(monkeypatch, capsys):
    missing(monkeypatch, "textual")
    code, _, err = cli(capsys, "tui")
    one_error_line(code, err, "snnbalance tui needs Textual", "pip install 'snnbalance[tui]'")


def test_export_nir_without_nir_before_any_work(monkeypatch, capsys, tmp_path):
    missing(monkeypatch, "nir")
    out = tmp_path / "net.nir"
    code, _, err = cli(capsys, "export", "-o", str(out), "--format", "nir")
    one_error_line(code, err, "the nir format needs NIR", "pip install 'snnbalance[nir]'")
    assert not out.exists()


def test_neuron_sj_asked_for_without_spikingjelly(monkeypatch, capsys, tmp_path):
    missing(monkeypatch, "spikingjelly")
    code, _, err = cli(
        capsys,
        "convert",
        "--samples",
        "3",
        "--duration",
        "5",
        "--simulator",
        "spikingjelly",
        "--sim-option",
        "neuron=sj",
        "-o",
        str(tmp_path / "out"),
    )
    one_error_line(code, err, "--sim-option neuron=sj needs SpikingJelly", "pip install 'snnbalance[spikingjelly]'")
    assert not (tmp_path / "out").exists()  # refused before the import and the simulation


def test_neuron_triton_asked_for_without_triton(monkeypatch, capsys, tmp_path):
    missing(monkeypatch, "triton")
    code, _, err = cli(capsys, "convert", "--samples", "3", "--duration", "5", "--sim-option", "neuron=triton", "-o", str(tmp_path / "out"))
    one_error_line(code, err, "neuron=triton needs the triton package", "torch's CUDA wheels")


def test_bench_without_spikingjelly(monkeypatch, capsys):
    missing(monkeypatch, "spikingjelly")
    code, _, err = cli(capsys, "bench", "--samples", "2", "--duration", "2")
    one_error_line(code, err, "snnbalance bench", "pip install 'snnbalance[spikingjelly]'")


def test_torch_net_with_sj_neurons_without_spikingjelly(monkeypatch):
    from conftest import small_cnn

    from snnbalance.simulate import torch_kernels as tk

    missing(monkeypatch, "spikingjelly")
    with pytest.raises(extras.MissingExtra, match=r"neuron=sj needs SpikingJelly .*snnbalance\[spikingjelly\]"):
        tk.TorchNet(small_cnn(), "cpu", "fp32", "sj")


def test_default_neurons_fall_back_to_torch_neurons_with_a_note(monkeypatch, capsys, tmp_path):
    """The torch engine's default neurons are SpikingJelly's; without it the same spikes come from
    its torch neurons, and the run's engine record says why."""
    from conftest import small_cnn

    from snnbalance.simulate import SimConfig, simulate
    from snnbalance.testing import reference_inputs

    g, x = small_cnn(bias=True), reference_inputs(6)
    y = np.arange(6) % 10
    cfg = SimConfig(duration=20, options={"engine": "torch"})
    want = simulate(g, x, y, SimConfig(duration=20, options={"engine": "torch", "neuron": "torch"}), simulator="spikingjelly")
    missing(monkeypatch, "spikingjelly")
    got = simulate(g, x, y, cfg, simulator="spikingjelly")
    assert got.engine == "torch/torch/fp32 (SpikingJelly not installed)"
    assert np.array_equal(got.accuracy_over_time, want.accuracy_over_time)
    assert got.spike_counts == want.spike_counts


def test_plugins_lists_what_is_not_installed(monkeypatch, capsys):
    missing(monkeypatch, "spikingjelly", "textual", "nir")
    code, out, _ = cli(capsys, "plugins")
    assert code == 0
    tail = out[out.index("Not installed") :]
    for extra in ("spikingjelly", "tui", "nir"):
        assert f"pip install 'snnbalance[{extra}]'" in tail
    code, out, _ = cli(capsys, "plugins", "--json")
    unavailable = {u["module"]: u for u in json.loads(out)["unavailable"]}
    assert {"spikingjelly", "textual", "nir"} <= set(unavailable)
    assert unavailable["textual"]["extra"] == "tui"


def test_a_plugin_that_needs_a_missing_extra_is_named_when_its_part_is_asked_for(monkeypatch, tmp_path):
    from snnbalance import plugins

    (tmp_path / "sjplugin_for_test.py").write_text(
        textwrap.dedent("""
        import spikingjelly  # noqa: F401
        from snnbalance.hookspecs import hookimpl
        from snnbalance.records import Simulator

        @hookimpl
        def snnbalance_simulators():
            yield Simulator("sjref", "needs SpikingJelly", lambda *a, **k: None, ("cpu",))
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    missing(monkeypatch, "spikingjelly")
    ep = EntryPoint("sjplugin", "sjplugin_for_test", plugins.GROUP)
    monkeypatch.setattr(plugins.Registry, "_entry_points", staticmethod(lambda: [ep]))
    reg = plugins.Registry()
    [problem] = [p for p in reg.problems if p.plugin == "sjplugin"]
    assert problem.reason == ("failed to import: needs SpikingJelly, which is not installed: pip install 'snnbalance[spikingjelly]'")
    with pytest.raises(
        SnnBalanceError,
        match=r"unknown simulator 'sjref'.*skipped plugin 'sjplugin'.*"
        r"snnbalance\[spikingjelly\]",
    ) as exc:
        reg.simulator("sjref")
    assert "\n" not in str(exc.value)


def test_require_names_the_extra_and_passes_when_installed(monkeypatch):
    extras.require("ray")  # installed with the test extra: nothing happens
    missing(monkeypatch, "ray")
    with pytest.raises(extras.MissingExtra) as exc:
        extras.require("ray", "--executor ray")
    assert str(exc.value) == ("--executor ray needs Ray (the 'ray' extra), which is not installed: pip install 'snnbalance[ray]'")
    assert isinstance(exc.value, SnnBalanceError)  # the CLI prints it as one line, exit code 2


# -- the main job with every optional part blocked -----------------------------------------------

BLOCKER = """
import importlib.abc, sys
BLOCKED = {"spikingjelly", "textual", "nir", "nirtorch", "triton", "ray"}
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
sys.meta_path.insert(0, Blocker())
from snnbalance.cli import main
try:
    main(sys.argv[1:])
finally:
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED and sys.modules[m] is not None)
    print("LOADED", ",".join(loaded), file=sys.stderr)
"""


def _blocked(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKER, *args], cwd=tmp_path, capture_output=True, text=True, timeout=600)


def test_main_job_runs_without_any_optional_part(tmp_path):
    """`snnbalance convert` on the embedded default model and data, with SpikingJelly, Textual, NIR,
    Triton and Ray unimportable: the job the plain `pip install -e .` is for."""
    res = _blocked(tmp_path, "convert", "--samples", "20", "--duration", "30", "-o", "out")
    assert res.returncode == 0, res.stderr
    assert res.stderr.splitlines()[-1] == "LOADED "  # none of them was imported
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert data["runs"] and all(len(r["accuracy_over_time"]) == 30 for r in data["runs"])
    assert (tmp_path / "out" / "accuracy.png").is_file()


def test_blocked_parts_are_one_line_in_a_fresh_process(tmp_path):
    """The same messages where the packages were never imported (no test process state)."""
    res = _blocked(tmp_path, "tui")
    assert res.returncode == 2
    assert res.stderr.splitlines()[0] == (
        "error: snnbalance tui needs Textual (the 'tui' extra), which is not installed: pip install 'snnbalance[tui]'"
    )
    res = _blocked(tmp_path, "export", "-o", "net.nir")
    assert res.returncode == 2 and "pip install 'snnbalance[nir]'" in res.stderr.splitlines()[0]
    assert "Traceback" not in res.stderr
