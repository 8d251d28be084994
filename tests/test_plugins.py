"""The plugin manager: broken plugins are reported by name and skipped, env switches, run-time
registration, the option helper, and the documentation of every hook."""

import ast
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import small_cnn

from snnbalance import hookimpl, hookspecs
from snnbalance.errors import SnnBalanceError
from snnbalance.normalize import normalize
from snnbalance.plugins import Registry, option
from snnbalance.records import Normalizer

ROOT = Path(__file__).resolve().parents[1]
BUILTIN_NORMALIZERS = {"baseline", "model-based", "data-based"}

GOOD = """
from snnbalance import hookimpl
from snnbalance.normalize import baseline
from snnbalance.records import Normalizer

@hookimpl
def snnbalance_normalizers():
    return Normalizer("fake-good", "works", baseline.baseline, options={"k": "an option"})
"""
MODULES = {  # module name -> source; every one but fake_good is broken in its own way
    "fake_good": GOOD,
    "fake_broken": "import no_such_module_anywhere\n",
    "fake_exit": "raise SystemExit(3)\n",
    "fake_raises": """
from snnbalance import hookimpl

@hookimpl
def snnbalance_normalizers():
    raise RuntimeError("boom at collection")
""",
    "fake_dup": """
from snnbalance import hookimpl
from snnbalance.records import Normalizer

@hookimpl
def snnbalance_normalizers():
    yield Normalizer("data-based", "steals a built-in name", lambda g, c: None)
""",
    "fake_malformed": """
from snnbalance import hookimpl
from snnbalance.records import Normalizer, Simulator

@hookimpl
def snnbalance_normalizers():
    yield 42
    yield Normalizer("bad:name", "a colon breaks NAME:key=value", lambda g, c: None)
    yield Normalizer("not-callable", "x", "not a function")
    yield Normalizer("bad-options", "x", lambda g, c: None, options={"a=b": "x"})

@hookimpl
def snnbalance_simulators():
    return Simulator("no-devices", "x", lambda *a, **k: None, devices=())
""",
    "fake_typo": """
from snnbalance import hookimpl

@hookimpl
def snnbalance_normaliser():
    return []
""",
    "fake_signature": """
from snnbalance import hookimpl

@hookimpl
def snnbalance_normalizers(unexpected_argument):
    return []
""",
    "fake_bad_result": """
from snnbalance import hookimpl
from snnbalance.records import Normalizer

def crash(graph, ctx):
    raise ZeroDivisionError("division by zero inside the plugin")

@hookimpl
def snnbalance_normalizers():
    yield Normalizer("returns-none", "returns nothing", lambda g, c: None)
    yield Normalizer("crashes", "raises", crash)
""",
}
ENTRY_POINTS = {  # distribution -> entry points (name = module)
    "fake-good-dist": {"good": "fake_good"},
    "fake-bad-dist": {name.removeprefix("fake_"): name for name in MODULES if name != "fake_good"},
    "fake-clash-dist": {"good": "fake_dup"},  # the same plugin name as fake-good-dist's
}


def _dist(root: Path, dist: str, eps: dict[str, str]) -> None:
    info = root / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[snnbalance]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()))


@pytest.fixture
def fake_plugins(tmp_path, monkeypatch):
    """Installed-looking distributions on sys.path: one good plugin and many broken ones."""
    for name, src in MODULES.items():
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(src))
    for dist, eps in ENTRY_POINTS.items():
        _dist(tmp_path, dist, eps)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("SNNBALANCE_PLUGINS", raising=False)
    monkeypatch.delenv("SNNBALANCE_BLOCK_PLUGINS", raising=False)
    yield tmp_path
    for name in MODULES:
        sys.modules.pop(name, None)


def reasons(reg: Registry) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in reg.problems:
        out[p.plugin] = out.get(p.plugin, "") + p.reason + " | "
    return out


def test_each_broken_plugin_is_reported_by_name_and_the_rest_loads(fake_plugins):
    reg = Registry()
    why = reasons(reg)
    assert "failed to import: ModuleNotFoundError: No module named 'no_such_module_anywhere'" in why["broken"]
    assert "failed to import: SystemExit: 3" in why["exit"]
    assert "snnbalance_normalizers raised RuntimeError: boom at collection" in why["raises"]
    assert "normalizer 'data-based' is already provided by 'snnbalance.normalize.data_based'" in why["dup"]
    assert "returned 42: not a Normalizer" in why["malformed"]
    assert "'bad:name'" in why["malformed"] and "no ':'" in why["malformed"]
    assert "normalize is not callable" in why["malformed"]
    assert "options must map option names" in why["malformed"]
    assert "devices must be a non-empty tuple" in why["malformed"]
    assert "snnbalance_normaliser" in why["typo"] and "misspelled hook?" in why["typo"]
    assert "failed to register" in why["signature"] and "unexpected_argument" in why["signature"]
    assert "already loaded" in why["good"]  # fake-clash-dist's "good" came second
    # the good plugin, the built-ins and the valid records of half-broken plugins still work
    assert {"fake-good", "returns-none", "crashes"} | BUILTIN_NORMALIZERS <= set(reg.normalizers)
    assert reg.provider[("Normalizer", "data-based")] == "snnbalance.normalize.data_based"
    assert reg.dists["good"] == "fake-good-dist 0.1"
    assert "no-devices" not in reg.simulators and "numpy" in reg.simulators
    assert not reg.pm.has_plugin("typo")


def test_a_plugin_that_fails_at_run_time_is_named_in_one_line(fake_plugins, monkeypatch):
    reg = Registry()
    monkeypatch.setattr("snnbalance.plugins.registry", lambda: reg)
    with pytest.raises(
        SnnBalanceError,
        match=r"normalizer 'crashes' \(plugin 'bad_result'\) failed: "
        r"ZeroDivisionError: division by zero inside the plugin",
    ):
        normalize(small_cnn(), "crashes")
    with pytest.raises(
        SnnBalanceError,
        match=r"normalizer 'returns-none' \(plugin 'bad_result'\) returned None, "
        r"not a Balanced",
    ):
        normalize(small_cnn(), "returns-none")
    assert normalize(small_cnn(), "fake-good:k=1").graph is not None  # options declared by the plugin


def test_allow_list_loads_only_the_named_plugins(fake_plugins, monkeypatch):
    monkeypatch.setenv("SNNBALANCE_PLUGINS", "good, not-installed")
    reg = Registry()
    assert {p.plugin for p in reg.problems} == {"good", "not-installed"}  # the clash, and the unknown name
    assert "named in SNNBALANCE_PLUGINS but not installed" in reasons(reg)["not-installed"]
    assert set(reg.normalizers) == BUILTIN_NORMALIZERS | {"fake-good"}


def test_allow_list_matches_distribution_names_and_none_loads_no_third_party_plugin(fake_plugins, monkeypatch):
    monkeypatch.setenv("SNNBALANCE_PLUGINS", "fake_good_dist")
    assert set(Registry().normalizers) == BUILTIN_NORMALIZERS | {"fake-good"}
    monkeypatch.setenv("SNNBALANCE_PLUGINS", "none")
    reg = Registry()
    assert set(reg.normalizers) == BUILTIN_NORMALIZERS and reg.problems == []


def test_block_list_skips_plugins_and_built_ins(fake_plugins, monkeypatch):
    monkeypatch.setenv("SNNBALANCE_BLOCK_PLUGINS", "fake-bad-dist,fake-clash-dist,snnbalance.normalize.baseline")
    reg = Registry()
    assert reg.problems == []
    assert "baseline" not in reg.normalizers and {"fake-good", "data-based"} <= set(reg.normalizers)
    monkeypatch.setenv("SNNBALANCE_BLOCK_PLUGINS", "broken, data_based")  # entry-point or module short name
    reg = Registry()
    assert "broken" not in reasons(reg) and "snnbalance.normalize.data_based" not in reg.dists
    assert reg.provider[("Normalizer", "data-based")] == "dup"  # nothing left to clash with


def test_register_at_run_time():
    reg = Registry()

    class Plugin:
        @hookimpl
        def snnbalance_normalizers(self):
            yield Normalizer("halve", "x", lambda g, c: None)

    assert reg.register(Plugin(), name="halve-plugin") == []
    assert reg.provider[("Normalizer", "halve")] == "halve-plugin"
    problems = reg.register(Plugin(), name="again")
    assert [p.plugin for p in problems] == ["again"] and "already provided by 'halve-plugin'" in problems[0]


def test_dataset_hook_provides_named_datasets_checked_like_the_built_ins(monkeypatch, tmp_path):
    from snnbalance.data import dataset_classes, dataset_key, load_dataset, sample_shape
    from snnbalance.errors import DataError
    from snnbalance.records import Dataset

    seen = []

    def toy(split, root, shape):
        seen.append((split, root, shape))
        n = 4 if split == "test" else 6
        return np.arange(n * 18, dtype=np.uint8).reshape(n, 2, 3, 3), np.arange(n) % 3

    class Plugin:
        @hookimpl
        def snnbalance_datasets(self):
            yield Dataset("toy-set", "a toy", toy, shape=(2, 3, 3), classes=3)
            yield Dataset("crashes", "raises", lambda split, root, shape: 1 / 0)
            yield Dataset("junk", "returns junk", lambda split, root, shape: "junk")
            yield Dataset("bad-shape", "labels do not match", lambda split, root, shape: (np.zeros((2, 4)), [1]))
            yield Dataset("CIFAR_10", "takes a built-in name", toy)
            yield Dataset("no-shape", "x", toy, shape=(0, 3))

    reg = Registry()
    problems = reg.register(Plugin(), name="toys")
    assert len(problems) == 2
    assert "dataset 'CIFAR_10' is already provided by 'snnbalance.data'" in problems[0]
    assert "shape must be None or a tuple of positive int(s)" in problems[1]
    monkeypatch.setattr("snnbalance.plugins.registry", lambda: reg)
    assert dataset_key("Toy_Set") == "toy-set" and dataset_classes("toy-set") == 3
    assert sample_shape("toy-set") == (2, 3, 3) and seen == []  # the record's shape: nothing read
    x, y = load_dataset("toy-set", "train", data_dir=tmp_path, shape=(2, 3, 3))
    assert x.dtype == np.float32 and np.array_equal(np.round(x * 255), np.arange(108.0).reshape(6, 2, 3, 3))
    assert y.tolist() == [0, 1, 2, 0, 1, 2] and seen == [("train", tmp_path, (2, 3, 3))]
    with pytest.raises(SnnBalanceError, match=r"^dataset 'crashes' \(plugin 'toys'\) failed: ZeroDivisionError"):
        load_dataset("crashes")
    with pytest.raises(SnnBalanceError, match=r"^dataset 'junk' \(plugin 'toys'\) returned 'junk', not an \(x, y\)"):
        load_dataset("junk")
    with pytest.raises(DataError, match=r"dataset 'bad-shape' \(test\): y has shape \(1,\); expected \(2,\)"):
        load_dataset("bad-shape")
    with pytest.raises(DataError, match="unknown dataset 'toys'.*toy-set"):
        dataset_key("toys")


def test_option_helper_converts_and_explains():
    opts = {"p": "99.5", "n": "3", "mode": "fast", "bad": "x"}
    assert option(opts, "p", 1.0, float, low=0, high=100) == 99.5
    assert option(opts, "n", 1, int, low=1) == 3
    assert option(opts, "missing", 7, int) == 7
    assert option(opts, "mode", "slow", str, choices=("slow", "fast")) == "fast"
    with pytest.raises(SnnBalanceError, match=r"^normalizer 'x': option bad must be an integer >= 1, got 'x'$"):
        option(opts, "bad", 1, int, low=1, owner="normalizer 'x'")
    with pytest.raises(SnnBalanceError, match="option n must be an integer in \\[5, 9\\], got '3'"):
        option(opts, "n", 1, int, low=5, high=9)
    with pytest.raises(SnnBalanceError, match="option p must be a number"):
        option({"p": "nan"}, "p", 1.0, float)


# -- documentation -----------------------------------------------------------------------------
DOC = ROOT / "docs" / "plugins.md"


def hook_names() -> list[str]:
    return sorted(n for n in dir(hookspecs) if n.startswith("snnbalance_"))


def sections() -> dict[str, str]:
    """``### `hook()` `` heading -> the text under it."""
    parts = re.split(r"^### `(snnbalance_\w+)\(.*?\)`\s*$", DOC.read_text(), flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def test_every_hook_is_documented_with_signature_and_example():
    docs = sections()
    assert set(docs) == set(hook_names()), "docs/plugins.md must have one '### `hook()`' section per hook"
    for name in hook_names():
        text = docs[name]
        assert "```python" in text and f"def {name}(" in text, f"{name}: no python example implementing it"
        assert "Returns" in text or "returns" in text, f"{name}: say what it returns"


@pytest.mark.parametrize("hook", hook_names())
def test_hook_examples_in_the_docs_run(hook):
    code = re.search(r"```python\n(.*?)```", sections()[hook], flags=re.S).group(1)
    ast.parse(code)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"the {hook} example in docs/plugins.md fails:\n{done.stderr[-2000:]}"
    assert "OK" in done.stdout


def test_the_plugins_command_describes_options_and_problems(fake_plugins, monkeypatch):
    from typer.testing import CliRunner

    from snnbalance.cli import app

    reg = Registry()
    monkeypatch.setattr("snnbalance.plugins.registry", lambda: reg)
    out = CliRunner().invoke(app, ["plugins"], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "usage: --normalizer fake-good[:k=VALUE]" in out.output and "an option" in out.output
    assert "variant" in out.output  # the built-in data-based option
    assert re.search(r"warning: plugin 'broken': failed to import", out.output)
    assert np.sum(["warning:" in line for line in out.output.splitlines()]) == len(reg.problems)


def test_hooks_are_called_through_pluggy_so_wrappers_and_tryfirst_apply(monkeypatch):
    """A hook wrapper sees every plugin's call (hooks were once called as plain functions, which
    skipped wrappers and tracing); a failing plugin next to it is still the one named."""
    from snnbalance.normalize import baseline

    monkeypatch.setenv("SNNBALANCE_PLUGINS", "none")
    seen = []

    class Wrapper:
        @hookimpl(wrapper=True)
        def snnbalance_normalizers(self):
            result = yield
            seen.append([getattr(r, "name", r) for r in (result or [])])
            return result

    class First:
        @hookimpl(tryfirst=True)
        def snnbalance_normalizers(self):
            return Normalizer("first-one", "tryfirst", baseline.baseline)

    class Broken:
        @hookimpl
        def snnbalance_normalizers(self):
            raise RuntimeError("boom")

    reg = Registry()
    reg.register(Wrapper(), name="wrapper")
    reg.register(First(), name="first")
    problems = reg.register(Broken(), name="broken")
    assert "first-one" in reg.normalizers and set(reg.normalizers) >= BUILTIN_NORMALIZERS
    assert any("first-one" in str(call) for call in seen)  # the wrapper wrapped the plugin's call
    assert [p.plugin for p in problems] == ["broken"] and "boom" in problems[0].reason


def test_trace_switch_prints_hook_calls(tmp_path):
    code = "from snnbalance.plugins import registry; registry()"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "SNNBALANCE_TRACE_PLUGINS": "1"},
        check=True,
    )
    assert "snnbalance_normalizers" in out.stderr and "finish" in out.stderr
