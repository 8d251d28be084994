"""Ctrl-C: one press stops ``snnbalance convert`` within about a second, with one line and exit code
130; any number of presses never crashes it (the native engine's C threads are stopped and joined
before Python unwinds). A cancel asked for by a progress callback is :class:`Cancelled`, not a
KeyboardInterrupt."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import needs_mnist

from snnbalance.simulate import native

ROOT = Path(__file__).resolve().parents[1]

# `python -m snnbalance` (cli.main), saying on stderr when the first simulation starts: Rich draws no
# progress bars when stdout is not a terminal, and a press must land while the engine runs.
RUNNER = r"""
import sys
from snnbalance.simulate import core

class Announced(core.Recorder):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        sys.stderr.write("SIMULATING\n")
        sys.stderr.flush()

core.Recorder = Announced
from snnbalance.cli import main
main(sys.argv[1:])
"""


def interrupt(tmp_path: Path, presses: int, gap: float, options: list[str]) -> tuple[int | None, float, list[str]]:
    """Run a long convert, press Ctrl-C ``presses`` times ``gap`` s apart once it simulates.

    Returns: the exit code (negative: killed by that signal; None: still running after 20 s, then
    killed), seconds from the first press to the exit, and the stderr lines after SIMULATING.
    """
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-c", RUNNER, "convert", "--duration", "5000", "--samples", "1000", "-n", "data-based", "-o", str(out), *options],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    started = threading.Event()

    def read():
        for line in proc.stderr:
            lines.append(line.rstrip("\n"))
            if line.startswith("SIMULATING"):
                started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert started.wait(180), f"never started simulating: {lines[-5:]}"
        time.sleep(1.0)  # well inside the batch: C threads (or torch, numpy) busy
        t0 = time.monotonic()
        for i in range(presses):
            if i:
                time.sleep(gap)
            proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            code = None
        seconds = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(5)
    assert not out.exists(), f"convert wrote {list(out.iterdir())} although interrupted"
    return code, seconds, lines[lines.index("SIMULATING") + 1 :]


ENGINES = {
    "native": pytest.param(
        ["--sim-option", "engine=native"], marks=pytest.mark.skipif(native.load() is None, reason="native engine unavailable")
    ),
    "torch": ["--sim-option", "engine=torch"],
    "numpy": ["--simulator", "numpy"],
}


@needs_mnist
@pytest.mark.parametrize("options", list(ENGINES.values()), ids=list(ENGINES))
def test_one_ctrl_c_stops_convert_at_once_with_one_line(tmp_path, options):
    code, seconds, err = interrupt(tmp_path, 1, 0.0, options)
    assert code == 130, err
    assert err == ["interrupted -- nothing written"]  # one line, no traceback
    assert seconds < 3.0, f"exited {seconds:.1f} s after Ctrl-C"


@needs_mnist
@pytest.mark.skipif(native.load() is None, reason="native engine unavailable")
@pytest.mark.parametrize("presses,gap", [(2, 0.2), (5, 0.1)])
def test_more_ctrl_cs_never_crash_the_native_engine(tmp_path, presses, gap):
    code, seconds, err = interrupt(tmp_path, presses, gap, ["--sim-option", "engine=native"])
    assert code == 130, f"exit code {code} (-11: segfault): {err}"
    assert err == ["interrupted -- nothing written"]
    assert seconds < 3.0 + presses * gap


def test_reproduce_says_what_it_kept(tmp_path, monkeypatch, capsys):
    """reproduce rewrites a run's file after each method: an interrupt keeps them, and says where."""
    from snnbalance import reproduce
    from snnbalance.cli import main

    def interrupted(cfg, progress=None, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(reproduce, "run_study", interrupted)
    previous = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit) as exc:
            main(["reproduce", "--output", str(tmp_path / "study")])
    finally:
        signal.signal(signal.SIGINT, previous)  # main ignores Ctrl-C from the interrupt on
    assert exc.value.code == 130
    err = " ".join(capsys.readouterr().err.split())
    assert err == (f"interrupted -- finished runs kept in {tmp_path / 'study' / 'runs'}; rerun with --resume to continue")


def test_a_cancelled_simulation_stops_reproduce_with_cancelled_not_keyboard_interrupt(tmp_path):
    import json

    from test_reproduce import Recorder, fake_loader, fake_trainer, tiny

    from snnbalance import reproduce as rp
    from snnbalance.progress import Cancelled

    sim = Recorder()

    def cancelled_at_second_method(graph, x, y, config, *, simulator, progress=None, task="simulate"):
        res = sim(graph, x, y, config, simulator=simulator, progress=progress, task=task)
        if task.endswith(rp.METHODS[1].key):
            res.cancelled = True
        return res

    cfg = tiny(tmp_path, encodings=("poisson",))
    with pytest.raises(Cancelled):
        rp.run_study(cfg, loader=fake_loader(), trainer=fake_trainer([]), simulate_fn=cancelled_at_second_method)
    saved = json.loads((Path(cfg.output) / "runs" / "mnist-mlp-poisson.json").read_text())
    assert not saved["complete"] and saved["methods"][rp.METHODS[1].key]["cancelled"]
