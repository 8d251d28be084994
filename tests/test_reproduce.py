"""``snnbalance reproduce`` on a tiny study: random bias-free networks, fake data, few steps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import fake_trainer

from snnbalance import reproduce as rp
from snnbalance.errors import SnnBalanceError
from snnbalance.simulate import simulate

N_TRAIN, N_TEST = 300, 60


def fake_loader(calls: list | None = None):
    """Blob-like images per class; test pixels are tagged (the last pixel = 0.5) to spot leaks."""

    def load(name, split):
        if calls is not None:
            calls.append((name, split))
        rng = np.random.default_rng({"train": 1, "test": 2}[split] + (10 if name == "fashion-mnist" else 0))
        n = N_TRAIN if split == "train" else N_TEST
        y = rng.integers(0, 10, n).astype(np.int64)
        x = rng.random((n, 1, 28, 28)).astype(np.float32) * 0.3
        for i, c in enumerate(y):
            x[i, 0, 2 * c : 2 * c + 6, 4:24] = 1.0
        x[:, 0, 27, 27] = 0.5 if split == "test" else 0.0
        return x, y

    return load


class Recorder:
    """A simulate_fn that records what each call was given (and runs the fast back end, which the
    simulator tests check against the NumPy reference)."""

    def __init__(self):
        self.calls: list[tuple[str, np.ndarray]] = []

    def __call__(self, graph, x, y, config, *, simulator, progress=None, task="simulate"):
        self.calls.append((task, np.array(x)))
        return simulate(graph, x, y, config, simulator="spikingjelly", progress=progress, task=task)


def tiny(tmp_path: Path, **kw) -> rp.StudyConfig:
    base = dict(
        output=str(tmp_path / "out"),
        cache=str(tmp_path / "cache"),
        datasets=("mnist",),
        archs=("mlp",),
        encodings=("poisson", "current"),
        duration=8.0,
        samples=20,
        sweep_samples=30,
        sweep_duration=5.0,
        thresholds=(1.0, 4.0),
        calibration_samples=40,
        batch_size=20,
        figures=False,
    )
    base.update(kw)
    return rp.StudyConfig(**base)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("study")
    sim, tcalls = Recorder(), []
    cfg = tiny(tmp, figures=True)
    res = rp.run_study(cfg, loader=fake_loader(), trainer=fake_trainer(tcalls), simulate_fn=sim)
    return cfg, res, sim, tcalls, tmp


def test_tables_have_the_right_rows_and_columns(study):
    cfg, res, _sim, tcalls, _tmp = study
    out = Path(cfg.output)
    assert tcalls == [("mlp", "mnist", 20)]  # trained once (recipe epochs), shared by both encodings
    t1 = (out / "table1.csv").read_text().splitlines()
    assert t1[0].split(",")[:6] == ["dataset", "network", "epochs", "seed", "train_accuracy", "test_accuracy"]
    assert len(t1) == 2
    t2 = (out / "table2.csv").read_text().splitlines()
    header = t2[0].split(",")
    for m in rp.METHODS:
        assert m.key in header
    assert "tuned_threshold" in header and len(t2) == 1 + 2  # one row per encoding
    lat = (out / "latency.csv").read_text().splitlines()
    assert len(lat) == 1 + 2 * len(rp.METHODS)
    for col in ("acc_10ms", "acc_20ms", "acc_30ms", "acc_50ms", "acc_100ms", "acc_1000ms", "t_within_1pct_ms", "t_within_0.1pct_ms"):
        assert col in lat[0].split(",")
    md = (out / "table2.md").read_text()
    assert "*report, 10,000 ms*" in md and "98.64" in md
    results = json.loads((out / "results.json").read_text())
    assert len(results["runs"]) == 2
    for run in results["runs"]:
        assert set(run["methods"]) == {m.key for m in rp.METHODS}
        for m in run["methods"].values():
            assert len(m["accuracy_over_time"]) == 8
        assert run["sweep"]["best_threshold"] in (1.0, 4.0)


def test_sweep_and_calibration_never_touch_the_test_set(study):
    cfg, res, sim, _t, _tmp = study
    sweeps = [x for task, x in sim.calls if task.startswith("sweep")]
    evals = [x for task, x in sim.calls if not task.startswith("sweep")]
    assert len(sweeps) == 2 * len(cfg.thresholds) and len(evals) == 2 * len(rp.METHODS)
    xt, _ = fake_loader()("mnist", "train")
    for x in sweeps:
        assert np.all(x.reshape(len(x), -1)[:, -1] == 0.0)  # no test tag
        np.testing.assert_array_equal(x.reshape(xt[-30:].shape), xt[-30:])
    for x in evals:
        assert np.all(x.reshape(len(x), -1)[:, -1] == 0.5)
    for run in res.runs:
        d = run["data"]
        assert d["sweep_train_indices"] == [N_TRAIN - 30, N_TRAIN]
        assert len(d["calibration_train_indices"]) == 40
        assert max(d["calibration_train_indices"]) < N_TRAIN - 30  # disjoint from the sweep slice


def test_split_indices_are_disjoint_and_seeded():
    cfg = rp.StudyConfig(sweep_samples=1000, calibration_samples=1000, seed=3)
    s, c = rp.split_indices(60_000, cfg)
    assert s[0] == 59_000 and s[-1] == 59_999 and len(set(c)) == 1000 and c.max() < 59_000
    np.testing.assert_array_equal(c, rp.split_indices(60_000, cfg)[1])


def test_resume_skips_finished_runs_and_same_seed_same_numbers(study, tmp_path):
    cfg, res, _sim, _t, tmp = study
    sim, tcalls = Recorder(), []
    again = rp.run_study(tiny(tmp, resume=True), loader=fake_loader(), trainer=fake_trainer(tcalls), simulate_fn=sim)
    assert sim.calls == [] and tcalls == [] and len(again.skipped) == 2
    # A fresh study elsewhere (same seed, network from the same cache) gives the same numbers.
    sim2 = Recorder()
    fresh = rp.run_study(tiny(tmp, output=str(tmp_path / "fresh")), loader=fake_loader(), trainer=fake_trainer([]), simulate_fn=sim2)
    assert len(sim2.calls) == len(_sim.calls)
    for a, b in zip(res.runs, fresh.runs):
        for k in a["methods"]:
            assert a["methods"][k]["accuracy_over_time"] == b["methods"][k]["accuracy_over_time"]


def interrupted_at(n: int):
    """A simulate_fn that runs like :class:`Recorder` and is interrupted (Ctrl-C) at its n-th simulation."""
    sim, calls = Recorder(), {"n": 0}

    def flaky(graph, x, y, config, *, simulator, progress=None, task="simulate"):
        if not task.startswith("sweep"):
            calls["n"] += 1
            if calls["n"] == n:
                raise KeyboardInterrupt
        return sim(graph, x, y, config, simulator=simulator, progress=progress, task=task)

    return flaky


def test_resume_continues_an_interrupted_run(tmp_path):
    flaky = interrupted_at(3)
    cfg = tiny(tmp_path, encodings=("poisson",))
    with pytest.raises(KeyboardInterrupt):
        rp.run_study(cfg, loader=fake_loader(), trainer=fake_trainer([]), simulate_fn=flaky)
    saved = json.loads((Path(cfg.output) / "runs" / "mnist-mlp-poisson.json").read_text())
    assert not saved["complete"] and len(saved["methods"]) == 2 and "sweep" in saved
    sim2 = Recorder()
    rp.run_study(tiny(tmp_path, encodings=("poisson",), resume=True), loader=fake_loader(), trainer=fake_trainer([]), simulate_fn=sim2)
    assert [t for t, _ in sim2.calls] == [f"mnist-mlp-poisson: {m.key}" for m in rp.METHODS[2:]]
    saved = json.loads((Path(cfg.output) / "runs" / "mnist-mlp-poisson.json").read_text())
    assert saved["complete"]
    # no temporary files left behind by the atomic writes
    assert not [p for p in Path(cfg.output).rglob("*") if p.name.endswith(".tmp")]


def test_report_only_renders_an_interrupted_study_without_simulating(tmp_path):
    flaky = interrupted_at(3)
    cfg = tiny(tmp_path, encodings=("poisson",))
    with pytest.raises(KeyboardInterrupt):
        rp.run_study(cfg, loader=fake_loader(), trainer=fake_trainer([]), simulate_fn=flaky)
    out = Path(cfg.output)
    for f in ("table2.md", "results.json"):
        (out / f).unlink(missing_ok=True)
    never = Recorder()
    res = rp.run_study(
        tiny(tmp_path, encodings=("poisson", "current"), report_only=True),
        loader=lambda *a: pytest.fail("report-only must not load data"),
        trainer=fake_trainer([]),
        simulate_fn=never,
    )
    assert never.calls == []
    assert [r["key"] for r in res.runs] == ["mnist-mlp-poisson"]  # the current run never started
    table = (out / "table2.md").read_text()
    assert "| MNIST | MLP | poisson |" in table and table.count(" - ") >= 3  # three methods missing
    assert json.loads((out / "results.json").read_text())["runs"][0]["complete"] is False
    # other settings than the run files': refused, not silently mixed
    with pytest.raises(SnnBalanceError, match="other settings"):
        rp.run_study(
            tiny(tmp_path, encodings=("poisson",), duration=9.0, report_only=True),
            loader=fake_loader(),
            trainer=fake_trainer([]),
            simulate_fn=never,
        )
    with pytest.raises(SnnBalanceError, match="no run files"):
        rp.run_study(
            tiny(tmp_path, output=str(tmp_path / "empty"), report_only=True),
            loader=fake_loader(),
            trainer=fake_trainer([]),
            simulate_fn=never,
        )


def test_sim_options_are_part_of_the_fingerprint():
    plain = rp.StudyConfig().fingerprint("poisson")
    assert "sim_options" not in plain  # run files made before the option existed still resume
    fast = rp.StudyConfig(sim_options={"precision": "bf16x2"}).fingerprint("poisson")
    assert fast["sim_options"] == {"precision": "bf16x2"} and fast != plain


def test_changed_settings_are_not_resumed(study, tmp_path):
    cfg, _res, _sim, _t, tmp = study
    sim = Recorder()
    rp.run_study(
        tiny(tmp, output=str(tmp_path / "o"), duration=6.0, encodings=("current",)),
        loader=fake_loader(),
        trainer=fake_trainer([]),
        simulate_fn=sim,
    )
    sim2 = Recorder()
    rp.run_study(
        tiny(tmp, output=str(tmp_path / "o"), duration=7.0, encodings=("current",), resume=True),
        loader=fake_loader(),
        trainer=fake_trainer([]),
        simulate_fn=sim2,
    )
    assert len(sim2.calls) == len(sim.calls)  # fingerprint differs: everything recomputed


def test_figures_are_png_and_files_atomic(study):
    cfg, res, _sim, _t, _tmp = study
    out = Path(cfg.output)
    png = out / "figure3_mnist.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (out / "figure4_fashion-mnist.png").exists()  # no Fashion-MNIST run
    assert {p.name for p in res.files} >= {
        "table1.md",
        "table1.csv",
        "table2.md",
        "table2.csv",
        "latency.md",
        "latency.csv",
        "results.json",
        "figure3_mnist.png",
    }
    assert not [p for p in out.rglob("*") if p.name.startswith(".") and p.name.endswith(".tmp")]


def test_epochs_override():
    cfg = rp.StudyConfig(train_epochs="fashion-mnist=4,mnist/cnn=3,mlp=7")
    assert rp.epochs_for(cfg, "fashion-mnist", "cnn") == 4
    assert rp.epochs_for(cfg, "mnist", "cnn") == 3
    assert rp.epochs_for(cfg, "mnist", "mlp") == 7
    assert rp.epochs_for(rp.StudyConfig(), "mnist", "cnn") == 15
    assert rp.epochs_for(rp.StudyConfig(train_epochs=2), "mnist", "mlp") == 2
    with pytest.raises(SnnBalanceError):
        rp.epochs_for(rp.StudyConfig(train_epochs="bogus=3"), "mnist", "mlp")


def test_missing_network_without_training_is_an_error(tmp_path):
    from snnbalance.errors import SnnBalanceError

    with pytest.raises(SnnBalanceError, match="not in the cache"):
        rp.run_study(tiny(tmp_path, allow_train=False), loader=fake_loader(), simulate_fn=Recorder())


def test_cli_runs_a_tiny_study(tmp_path, monkeypatch):
    import typer
    from typer.testing import CliRunner

    from snnbalance.cli.reproduce import reproduce_command

    seen = {}

    def fake_run(cfg, progress):
        seen["cfg"] = cfg
        out = Path(cfg.output)
        out.mkdir(parents=True)
        (out / "table2.md").write_text("# Table 2\n")
        return rp.StudyResult(cfg, [], [out / "table2.md"], 0.0, [])

    monkeypatch.setattr(rp, "run_study", fake_run)
    app = typer.Typer()
    app.command()(reproduce_command)
    r = CliRunner().invoke(
        app,
        [
            "--datasets",
            "mnist",
            "--archs",
            "cnn,mlp",
            "--duration",
            "30",
            "--samples",
            "100",
            "--train-epochs",
            "fashion-mnist=4",
            "--resume",
            "-o",
            str(tmp_path / "o"),
        ],
    )
    assert r.exit_code == 0, r.output
    cfg = seen["cfg"]
    assert cfg.datasets == ("mnist",) and cfg.archs == ("cnn", "mlp") and cfg.resume and cfg.duration == 30
    assert cfg.simulator == "spikingjelly" and cfg.train_epochs == "fashion-mnist=4"
    seen.clear()
    r = CliRunner().invoke(app, ["--report-only", "--device", "cuda", "--sim-option", "precision=bf16x2", "-o", str(tmp_path / "p")])
    assert r.exit_code == 0, r.output
    assert seen["cfg"].report_only and seen["cfg"].sim_options == {"precision": "bf16x2"}
    assert "report only: 0 run files read" in r.output and "wall time" not in r.output
