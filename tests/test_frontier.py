"""The accuracy-vs-cost frontier: time and synaptic operations to stay within 0.5/1/2 points of the
ANN, in results.json, the CLI, a picture and the TUI; and convert's grid over ``--v-init``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import cli

from snnbalance.simulate.core import SimResult, frontier, synops_to


def result(acc, synops=1000.0, dt=1.0) -> SimResult:
    acc = np.asarray(acc, float)
    return SimResult(
        accuracy_over_time=acc,
        final_accuracy=float(acc[-1]),
        firing_rates={},
        spike_counts={},
        synaptic_ops_per_sample=synops,
        output_counts=np.zeros((1, 2)),
        samples=10,
        steps=len(acc),
        dt=dt,
        wall_seconds=1.0,
        image_steps_per_second=1.0,
    )


def test_frontier_is_the_first_time_from_which_accuracy_stays_close_to_the_ann():
    # ANN 0.95: within 2 points (>= 0.93) from step 3 on, within 1 point from step 5 (a dip at step 4),
    # within 0.5 never
    r = result([0.1, 0.5, 0.93, 0.92, 0.94, 0.94, 0.94, 0.94, 0.94, 0.94], synops=1000.0, dt=2.0)
    rows = {f["points"]: f for f in frontier(r, 0.95)}
    assert rows[2.0]["time_ms"] == 10.0 and rows[2.0]["synaptic_ops_per_sample"] == 500.0
    assert rows[1.0]["time_ms"] == 10.0
    assert np.isnan(rows[0.5]["time_ms"]) and np.isnan(rows[0.5]["synaptic_ops_per_sample"])
    r2 = result([0.1, 0.945, 0.95, 0.96], synops=400.0)
    assert [f["time_ms"] for f in frontier(r2, 0.95)] == [2.0, 2.0, 2.0]
    assert synops_to(r2, 2.0) == 200.0 and synops_to(r2, 40.0) == 400.0  # capped at the run's end


def test_convert_lays_out_a_grid_of_v_init_values_with_the_frontier(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    # baseline settles within a few ms, so no run needs convert's longer duration check
    code, out, err = cli(
        capsys,
        "convert",
        "--samples",
        "30",
        "--duration",
        "20",
        "-n",
        "baseline",
        "--v-init",
        "0",
        "--v-init",
        "0.5",
        "--simulator",
        "numpy",
        "-o",
        str(tmp_path),
    )
    assert code == 0, err
    res = json.loads((tmp_path / "results.json").read_text())
    runs = res["runs"]
    assert [r["normalizer"] for r in runs] == ["baseline v_init=0", "baseline v_init=0.5"]
    assert [r["v_init"] for r in runs] == [0.0, 0.5]
    assert runs[0]["spike_counts"] != runs[1]["spike_counts"]  # the value reached the simulator
    for r in runs:
        assert [f["points"] for f in r["frontier"]] == [0.5, 1.0, 2.0]
        for f in r["frontier"]:
            if f["time_ms"] is not None:
                assert f["synaptic_ops_per_sample"] == pytest.approx(r["synaptic_ops_per_sample"] * f["time_ms"] / r["dt"] / r["steps"])
    assert "within 0.5 / 1 / 2 points of the ANN" in out and "baseline v_init=0.5: 0.5 pt" in out
    assert (tmp_path / "frontier.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_bad_v_init_is_one_line_before_any_work(capsys, tmp_path):
    code, _, err = cli(capsys, "convert", "--v-init", "0", "--v-init", "1.5", "-o", str(tmp_path))
    assert code == 2 and "--v-init" in err and "Traceback" not in err
    assert not (tmp_path / "results.json").exists()
