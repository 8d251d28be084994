"""The native engine's build: the ladder of arch flags, a failure that is reported (not silent),
no fixed layer limit, and torch's tf32 flags scoped to a run."""

from __future__ import annotations

import shutil
import stat

import numpy as np
import pytest
import torch

from snnbalance.errors import SnnBalanceError
from snnbalance.graph import Graph, Node
from snnbalance.simulate import SimConfig, native
from snnbalance.simulate import spikingjelly as sj
from snnbalance.simulate import torch_kernels as tk

REAL_CC = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
needs_cc = pytest.mark.skipif(REAL_CC is None, reason="no C compiler on this machine")


def fake_cc(tmp_path, reject: tuple[str, ...], message: str, real: str | None = REAL_CC):
    """A compiler script that fails on any flag of ``reject`` (all calls when ``real`` is None)
    and otherwise runs the real compiler; each call's arguments go to ``cc.log``."""
    log = tmp_path / "cc.log"
    cases = "".join(f'    {flag}) echo "{message}" >&2; exit 1;;\n' for flag in reject)
    tail = f'exec "{real}" "$@"' if real else f'echo "{message}" >&2; exit 1'
    script = tmp_path / "fakecc"
    script.write_text(f'#!/bin/sh\necho "$@" >> "{log}"\nfor a in "$@"; do\n  case "$a" in\n{cases}  esac\ndone\n{tail}\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script, log


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    """An empty kernel cache and no remembered build; the real build comes back afterwards."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("SNNBALANCE_NATIVE", raising=False)
    native.status.cache_clear()
    yield
    native.status.cache_clear()


def mlp(layers: int = 2) -> Graph:
    rng = np.random.default_rng(0)
    nodes = [
        Node(f"d{i}", "dense", inputs=(f"d{i - 1}",) if i else ("input",), weight=rng.random((4, 4), dtype=np.float32), relu=i < layers - 1)
        for i in range(layers)
    ]
    return Graph((4,), nodes)


@needs_cc
@pytest.mark.parametrize("reject,want", [(("-march=native",), "-mcpu=native"), (("-march=native", "-mcpu=native"), None)])
def test_the_flag_ladder_falls_through_to_a_build_that_works(tmp_path, monkeypatch, fresh, reject, want):
    cc, log = fake_cc(tmp_path, reject, "clang: error: unsupported option '-march=native' for target 'aarch64'")
    monkeypatch.setenv("CC", str(cc))
    st = native.status()
    assert st.dll is not None and st.reason == ""
    arch = [f for f in st.flags if f.startswith(("-march", "-mcpu"))]
    assert arch == ([want] if want else [])
    assert {"-ffp-contract=off", "-fno-fast-math"} <= set(st.flags)  # the flags that make results exact
    rungs = [(*native.BASE_FLAGS[:1], *arch, *native.BASE_FLAGS[1:]) for arch in native.ARCH_LADDER]
    assert [a[0] for a in st.attempts] == rungs[: len(reject)]  # tried in order, the rejected ones failed
    assert all("unsupported option" in a[1] for a in st.attempts)
    assert "built with" in st.describe() and (want or "-O3") in st.describe()
    # the library the ladder built is in the cache: the next process uses it without compiling
    calls = log.read_text().count("\n")
    native.status.cache_clear()
    again = native.status()
    assert again.dll is not None and again.flags == st.flags and log.read_text().count("\n") == calls
    # and the kernel runs
    g = mlp()
    step, engine = sj.make_stepper(g, SimConfig(duration=5))
    assert engine == "native"
    correct, totals, counts = step(g, np.ones((2, 4), np.float32), np.arange(2), np.zeros(2, np.int64), SimConfig(duration=5))
    assert counts.shape == (2, 4)


def test_a_failed_build_is_reported_not_silent(tmp_path, monkeypatch, fresh):
    error = "snn.c:3:10: fatal error: immintrin.h: No such file or directory"
    cc, log = fake_cc(tmp_path, (), error, real=None)
    monkeypatch.setenv("CC", str(cc))
    st = native.status()
    assert st.dll is None and len(st.attempts) == len(native.ARCH_LADDER) == log.read_text().count("\n")
    assert st.reason == f"native build failed: {error}"
    assert native.load() is None
    g = mlp()
    _, engine = sj.make_stepper(g, SimConfig())
    assert engine == f"torch/sj/fp32 (native build failed: {error})"
    res = sj.simulate(g, np.ones((2, 4), np.float32), np.zeros(2, np.int64), SimConfig(duration=3))
    assert res.engine == f"torch/sj/fp32 (native build failed: {error})"
    with pytest.raises(SnnBalanceError, match="immintrin.h"):
        sj.make_stepper(g, SimConfig(options={"engine": "native"}))


def test_plugins_lists_the_native_engine_status(tmp_path, monkeypatch, fresh, capsys):
    from snnbalance.cli.plugins import plugins_command

    monkeypatch.setenv("CC", str(fake_cc(tmp_path, (), "cc: error: broken compiler", real=None)[0]))
    plugins_command(as_json=False)
    out = " ".join(capsys.readouterr().out.split())
    assert "native engine unavailable (native build failed: cc: error: broken compiler)" in out
    plugins_command(as_json=True)
    assert "native build failed: cc: error: broken compiler" in capsys.readouterr().out


def test_no_compiler_is_said_so(monkeypatch, fresh):
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setattr(native.shutil, "which", lambda name: None)
    st = native.status()
    assert st.dll is None and "no C compiler found" in st.reason
    assert "no C compiler found" in sj.make_stepper(mlp(), SimConfig())[1]


@pytest.mark.skipif(native.load() is None, reason="native engine unavailable")
def test_a_deep_network_runs_natively_with_the_reference_spikes():
    """No fixed layer limit: the kernel sizes its per-node arrays from the network (it took 62)."""
    from snnbalance.simulate import numpy_ref

    deep = mlp(70)
    for n in deep.nodes:  # dyadic weights: every sum exact, so the engines must agree exactly
        n.weight = (np.round(n.weight * 64) / 64).astype(np.float32)
    assert sj.make_stepper(deep, SimConfig())[1] == "native"
    x = (np.random.default_rng(0).integers(0, 257, (3, 4)) / 256).astype(np.float32)
    cfg = SimConfig(duration=20, encoding="current")
    want = numpy_ref.step_batch(deep, x, np.arange(3), np.zeros(3, np.int64), cfg)
    got = native.step_batch(native.load(), native.Plan(deep), x, np.arange(3), np.zeros(3, np.int64), cfg, 2, 8)
    for k in want[1]:
        np.testing.assert_array_equal(got[1][k], want[1][k])


@pytest.fixture
def tf32_flags():
    """torch's process-wide tf32 flags set to non-default values (matmul on, cuDNN off)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = True, False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_a_torch_run_leaves_the_tf32_flags_as_it_found_them(tf32_flags, monkeypatch):
    seen = []
    inner = tk._step_batch

    def spy(*args):
        seen.append((torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32))
        return inner(*args)

    monkeypatch.setattr(tk, "_step_batch", spy)
    g = mlp()
    cfg = SimConfig(duration=3, options={"engine": "torch"})
    res = sj.simulate(g, np.ones((2, 4), np.float32), np.zeros(2, np.int64), cfg)
    assert res.engine == "torch/sj/fp32"
    assert seen == [(False, False)]  # fp32: no tf32 during the run
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (True, False)


def test_the_tf32_flags_come_back_after_an_exception(tf32_flags):
    with pytest.raises(RuntimeError):
        with tk.tf32_scope(False):
            assert not torch.backends.cuda.matmul.allow_tf32
            raise RuntimeError("boom")
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (True, False)
    with tk.tf32_scope(True):
        assert torch.backends.cudnn.allow_tf32
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (True, False)


def test_the_python_node_kinds_are_the_c_enum():
    """native.Kind mirrors native.c's enum of node kinds, name for name and value for value."""
    import re

    body = re.search(r"enum\s*\{([^}]*)\}", native.SOURCE).group(1)
    in_c = {name: int(value) for name, value in re.findall(r"(\w+)\s*=\s*(\d+)", body)}
    assert in_c and len(in_c) == body.count(",") + 1  # every member has an explicit value
    assert in_c == {k.name: k.value for k in native.Kind}
