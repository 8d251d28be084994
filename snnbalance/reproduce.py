"""The paper's study, headless: train (or load) four networks, convert each five ways, simulate, tabulate.

``snnbalance reproduce`` calls :func:`run_study`; tables and figures come from
:mod:`snnbalance.reproduce_report`.

The data splits, per dataset (training set of ``N`` images, test set of 10,000):

* **threshold sweep**: the last ``sweep_samples`` training images, ``[N - sweep_samples, N)``;
* **data-based calibration**: ``calibration_samples`` images drawn with a seeded generator from
  ``[0, N - sweep_samples)``, so never one of the sweep images;
* **evaluation**: the first ``samples`` test images. Nothing else reads the test set; the sweep
  picks the copy's threshold on training images only.

(The networks were trained on all ``N`` training images, the sweep slice included: "held out"
means held out of calibration and of evaluation, as in the paper, which tuned on training data.)

Every method of one network sees the same input spikes: the Poisson encoder hashes
``(seed, sample index, pixel, step)`` (:mod:`snnbalance.simulate.encoding`).

Resumability: each (network, encoding) run is one JSON file in ``OUTPUT/runs/``, rewritten
atomically after the sweep and after every method; ``resume=True`` keeps the finished parts when
the settings that produced them match, and recomputes the rest.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .errors import SnnBalanceError
from .executors import Executor
from .executors import simulate_fn as executor_simulate
from .progress import Cancelled, Progress, ProgressEvent, emit
from .report import atomic_write, json_clean

DATASETS = ("mnist", "fashion-mnist")
ARCHS = ("mlp", "cnn")
ENCODINGS = ("poisson", "current")
#: Candidate thresholds of the copied network (the report found 4 for the MLP and 20 for the CNN).
THRESHOLDS = (1.0, 2.0, 4.0, 8.0, 12.0, 16.0, 20.0, 25.0, 30.0)


@dataclass(frozen=True)
class Method:
    key: str
    label: str
    spec: str
    tuned: bool = False  # threshold from the sweep instead of 1.0


METHODS = (
    Method("copy", "copy, θ=1", "baseline"),
    Method("copy-tuned", "copy, tuned θ", "baseline", tuned=True),
    Method("model-based", "model-based", "model-based"),
    Method("data-based", "data-based (Alg. 2)", "data-based:variant=paper"),
    Method("data-based-code", "data-based (authors' code)", "data-based:variant=code"),
)


@dataclass
class StudyConfig:
    """Every setting of one study (the CLI's options)."""

    output: str = "reproduce-output"
    datasets: tuple[str, ...] = DATASETS
    archs: tuple[str, ...] = ARCHS
    encodings: tuple[str, ...] = ENCODINGS
    duration: float = 10_000.0
    samples: int = 10_000
    seed: int = 0
    device: str = "cpu"
    simulator: str = "spikingjelly"
    cache: str | None = None
    train_epochs: int | str | None = None  # N, or "fashion-mnist=4,mnist/cnn=15" (most specific wins)
    resume: bool = False
    allow_train: bool = True  # False: a network missing from the cache is an error, not a training run
    sweep_samples: int = 1000
    sweep_duration: float | None = None  # None: min(duration, 1000 ms)
    thresholds: tuple[float, ...] = THRESHOLDS
    calibration_samples: int = 1000
    batch_size: int = 250
    dt: float = 1.0
    max_rate: float = 1000.0
    data_dir: str | None = None
    sim_options: dict[str, str] = field(default_factory=dict)
    report_only: bool = False  # write tables and figures from the run files in output/runs; simulate nothing
    figures: bool = True  # False: skip the PNGs (faster; tables and results.json only)
    # where simulations run (--executor); not in to_dict or the fingerprint: it changes no number, so
    # --resume continues a run file on either executor
    executor: Executor = field(default_factory=Executor)

    @property
    def sweep_ms(self) -> float:
        return self.sweep_duration if self.sweep_duration is not None else min(self.duration, 1000.0)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("executor")
        d["sweep_duration"] = self.sweep_ms
        return d

    def fingerprint(self, encoding: str) -> dict:
        """The settings a run file's numbers depend on (resume keeps a file only if they match)."""
        return {
            "duration": self.duration,
            "samples": self.samples,
            "seed": self.seed,
            "dt": self.dt,
            "max_rate": self.max_rate,
            "encoding": encoding,
            "sweep_samples": self.sweep_samples,
            "sweep_duration": self.sweep_ms,
            "thresholds": list(self.thresholds),
            "calibration_samples": self.calibration_samples,
            **({"sim_options": dict(sorted(self.sim_options.items()))} if self.sim_options else {}),
        }


def epochs_for(cfg: StudyConfig, dataset: str, arch: str) -> int:
    """Training epochs of one network: the recipe's, unless ``cfg.train_epochs`` overrides them.

    ``train_epochs`` is a number for every network, or comma-separated ``KEY=N`` items where KEY
    is a dataset, an architecture or ``dataset/arch``; the most specific item wins.
    """
    from .train import RECIPES

    spec = cfg.train_epochs
    if spec is None or spec == "":
        return RECIPES[arch].epochs
    if isinstance(spec, int):
        return spec
    found: dict[int, int] = {}
    for item in filter(None, (p.strip() for p in str(spec).split(","))):
        key, eq, value = item.rpartition("=")
        try:
            n = int(value)
        except ValueError:
            raise SnnBalanceError(f"train epochs item {item!r} is not N or KEY=N") from None
        if n < 1:
            raise SnnBalanceError(f"train epochs must be at least 1, got {item!r}")
        if not eq:
            found[0] = n
        elif key in (f"{dataset}/{arch}",):
            found[2] = n
        elif key in (dataset, arch):
            found[1] = n
        elif key not in DATASETS and key not in ARCHS and "/" not in key:
            raise SnnBalanceError(f"train epochs key {key!r} is not a dataset, architecture or dataset/arch")
    return found[max(found)] if found else RECIPES[arch].epochs


def default_cache() -> Path:
    from .paths import cache_dir

    return cache_dir("models")


def run_key(dataset: str, arch: str, encoding: str | None = None) -> str:
    return f"{dataset}-{arch}" + (f"-{encoding}" if encoding else "")


# --------------------------------------------------------------------------- networks


@dataclass
class Network:
    dataset: str
    arch: str
    graph: Any  # snnbalance.graph.Graph
    info: dict  # epochs, seed, train/test accuracy, wall time, file, cached


Trainer = Callable[..., Any]  # train(arch, dataset, epochs=, seed=, device=, data_dir=, progress=) -> TrainResult


def get_network(cfg: StudyConfig, dataset: str, arch: str, trainer: Trainer | None = None, progress: Progress | None = None) -> Network:
    """Load ``arch`` trained on ``dataset`` from the cache, or train it with the recipe and cache it."""
    import torch

    from .importers import load_model
    from .models import ARCHS as MODELS
    from .train import save_model, train, write_provenance

    epochs = epochs_for(cfg, dataset, arch)
    cache = Path(cfg.cache).expanduser() if cfg.cache else default_cache()
    stem = cache / f"{arch}-{dataset}-s{cfg.seed}-e{epochs}"
    pt, meta = stem.with_suffix(".pt"), stem.with_suffix(".json")
    if pt.is_file() and meta.is_file():
        model = MODELS[arch]()
        model.load_state_dict(torch.load(pt, map_location="cpu", weights_only=True))
        model.eval()
        info = json.loads(meta.read_text())
        cached = True
    elif not cfg.allow_train:
        raise SnnBalanceError(f"{pt} (or its .json) is not in the cache and training is off")
    else:
        res = (trainer or train)(arch, dataset, epochs=epochs, seed=cfg.seed, device=cfg.device, data_dir=cfg.data_dir, progress=progress)
        if getattr(res, "cancelled", False):
            raise SnnBalanceError(f"training of {arch} on {dataset} was cancelled")
        model = res.model.eval()
        save_model(model, pt)
        write_provenance(
            res, meta, f"snnbalance reproduce (train {arch} on {dataset}, seed {cfg.seed}, {epochs} epochs, device {cfg.device})"
        )
        info = json.loads(meta.read_text())
        cached = False
    graph = load_model(model, input_shape=(1, 28, 28)).graph
    keep = ("epochs", "seed", "train_accuracy", "test_accuracy", "wall_seconds", "command", "date", "torch")
    return Network(dataset, arch, graph, {**{k: info.get(k) for k in keep}, "file": str(pt), "cached": cached})


# --------------------------------------------------------------------------- data

Loader = Callable[[str, str], tuple[np.ndarray, np.ndarray]]


def split_indices(n_train: int, cfg: StudyConfig) -> tuple[np.ndarray, np.ndarray]:
    """(sweep indices, calibration indices) into the training set; disjoint by construction."""
    if not 0 < cfg.sweep_samples < n_train:
        raise SnnBalanceError(f"sweep samples must be between 1 and {n_train - 1}, got {cfg.sweep_samples}")
    pool = n_train - cfg.sweep_samples
    if not 0 < cfg.calibration_samples <= pool:
        raise SnnBalanceError(f"calibration samples must be between 1 and {pool}, got {cfg.calibration_samples}")
    sweep = np.arange(pool, n_train)
    calib = np.sort(np.random.default_rng(cfg.seed).choice(pool, size=cfg.calibration_samples, replace=False))
    return sweep, calib


# --------------------------------------------------------------------------- simulation

SimulateFn = Callable[..., Any]


def _sim_config(cfg: StudyConfig, encoding: str, duration: float):
    from .simulate import SimConfig

    return SimConfig(
        duration=duration,
        dt=cfg.dt,
        max_rate=cfg.max_rate,
        encoding=encoding,
        reset="zero",
        seed=cfg.seed,
        batch_size=cfg.batch_size,
        device=cfg.device,
        options=dict(cfg.sim_options),
    )


def _result_dict(res, thresholds: dict, factors: dict) -> dict:
    return {
        "final_accuracy": res.final_accuracy,
        "accuracy_over_time": [round(float(a), 6) for a in res.accuracy_over_time],
        "thresholds": thresholds,
        "scale_factors": factors,
        "firing_rates": res.firing_rates,
        "synaptic_ops_per_sample": res.synaptic_ops_per_sample,
        "samples": res.samples,
        "steps": res.steps,
        "dt": res.dt,
        "wall_seconds": res.wall_seconds,
        "simulator": res.simulator,
        "device": res.device,
        "engine": res.engine,
        "cancelled": res.cancelled,
    }


def sweep_thresholds(
    graph,
    x: np.ndarray,
    y: np.ndarray,
    cfg: StudyConfig,
    encoding: str,
    simulate_fn: SimulateFn,
    progress: Progress | None = None,
    tick=None,
) -> dict:
    """Simulate the copied network at each candidate threshold on the sweep slice; pick the best.

    Best = highest accuracy at the end of the sweep duration; ties go to the higher mean accuracy
    over time (the faster one), then to the lower threshold.
    """
    from .normalize import normalize

    sc = _sim_config(cfg, encoding, cfg.sweep_ms)
    rows = []
    for th in cfg.thresholds:
        g = normalize(graph, "baseline", threshold=th).graph
        res = simulate_fn(g, x, y, sc, simulator=cfg.simulator, progress=progress, task=f"sweep θ={th:g}")
        rows.append({"threshold": th, "final_accuracy": res.final_accuracy, "mean_accuracy": float(np.mean(res.accuracy_over_time))})
        if tick:
            tick(len(x) * sc.steps)
    best = max(rows, key=lambda r: (r["final_accuracy"], r["mean_accuracy"], -r["threshold"]))
    return {"duration": cfg.sweep_ms, "samples": len(x), "candidates": rows, "best_threshold": best["threshold"]}


def run_network_encoding(
    net: Network,
    encoding: str,
    cfg: StudyConfig,
    data: dict,
    path: Path,
    previous: dict | None,
    simulate_fn: SimulateFn,
    progress: Progress | None = None,
    tick=None,
) -> dict:
    """Sweep, normalize and simulate every method for one network and encoding, saving as it goes."""
    from .normalize import normalize
    from .pipeline import ann_accuracy
    from .records import Calibration

    fp = {**cfg.fingerprint(encoding), "epochs": net.info.get("epochs")}
    run = previous if previous and previous.get("fingerprint") == fp else None
    if run is None:
        run = {
            "key": run_key(net.dataset, net.arch, encoding),
            "dataset": net.dataset,
            "arch": net.arch,
            "encoding": encoding,
            "fingerprint": fp,
            "network": net.info,
            "methods": {},
            "complete": False,
        }
    x, y = data["test"]
    xs, ys = data["sweep"]
    x = x.reshape(len(x), *net.graph.input_shape)
    if "ann_accuracy" not in run:
        run["ann_accuracy"] = ann_accuracy(net.graph, x, y)
        run["data"] = {
            "test": [0, len(x)],
            "sweep_train_indices": [int(data["sweep_idx"][0]), int(data["sweep_idx"][-1]) + 1],
            "calibration_train_indices": [int(i) for i in data["calib_idx"]],
        }
    if "sweep" not in run:
        t0 = time.perf_counter()
        run["sweep"] = sweep_thresholds(
            net.graph, xs.reshape(len(xs), *net.graph.input_shape), ys, cfg, encoding, simulate_fn, progress, tick
        )
        run["sweep"]["wall_seconds"] = time.perf_counter() - t0
        run["wall_seconds"] = run.get("wall_seconds", 0.0) + run["sweep"]["wall_seconds"]
        atomic_write(path, json.dumps(json_clean(run)) + "\n")
    elif tick:
        tick(len(xs) * _sim_config(cfg, encoding, cfg.sweep_ms).steps * len(cfg.thresholds))
    calib = Calibration(data["calib"].reshape(len(data["calib"]), *net.graph.input_shape))
    sc = _sim_config(cfg, encoding, cfg.duration)
    for m in METHODS:
        if m.key in run["methods"] and not run["methods"][m.key].get("cancelled"):
            if tick:
                tick(len(x) * sc.steps)
            continue
        th = run["sweep"]["best_threshold"] if m.tuned else 1.0
        bal = normalize(net.graph, m.spec, calibration=calib, threshold=th)
        res = simulate_fn(bal.graph, x, y, sc, simulator=cfg.simulator, progress=progress, task=f"{run['key']}: {m.key}")
        thr = {n.name: n.threshold for n in bal.graph.neuron_nodes()}
        run["wall_seconds"] = run.get("wall_seconds", 0.0) + res.wall_seconds
        run["methods"][m.key] = {"label": m.label, "spec": m.spec, "threshold": th, **_result_dict(res, thr, bal.scale_factors)}
        if tick:
            tick(len(x) * sc.steps)
        if res.cancelled:
            atomic_write(path, json.dumps(json_clean(run)) + "\n")
            raise Cancelled
        run["complete"] = all(k.key in run["methods"] for k in METHODS)
        atomic_write(path, json.dumps(json_clean(run)) + "\n")
    return run


# --------------------------------------------------------------------------- the study


@dataclass
class StudyResult:
    config: StudyConfig
    runs: list[dict]
    files: list[Path]
    wall_seconds: float
    skipped: list[str]  # run keys whose file was complete and reused


def run_study(
    cfg: StudyConfig,
    progress: Progress | None = None,
    *,
    loader: Loader | None = None,
    trainer: Trainer | None = None,
    simulate_fn: SimulateFn | None = None,
) -> StudyResult:
    """Run (or resume) the whole study and write every table and figure into ``cfg.output``.

    Args:
        cfg: the settings.
        progress: receives ``study`` events (``completed``/``total`` in image-steps, ``info`` has
            ``run``, ``runs`` and ``label``), ``train`` events and each simulation's events.
        loader, trainer, simulate_fn: replace data loading, training and simulation (tests).
    """
    from . import data as datasets
    from .reproduce_report import write_report

    start = time.perf_counter()
    loader = loader or (lambda name, split: datasets.load_dataset(name, split, cfg.data_dir))
    for d in cfg.datasets:
        if d not in DATASETS:
            raise SnnBalanceError(f"unknown dataset {d!r}: use {', '.join(DATASETS)}")
    for a in cfg.archs:
        if a not in ARCHS:
            raise SnnBalanceError(f"unknown architecture {a!r}: use {', '.join(ARCHS)}")
    for e in cfg.encodings:
        if e not in ENCODINGS:
            raise SnnBalanceError(f"unknown encoding {e!r}: use {', '.join(ENCODINGS)}")
    if cfg.samples < 1 or cfg.duration <= 0:
        raise SnnBalanceError("samples and duration must be positive")
    _sim_config(cfg, "poisson", cfg.duration).validate()
    _sim_config(cfg, "poisson", cfg.sweep_ms).validate()
    if not cfg.report_only:
        cfg.executor.validate()
    out = Path(cfg.output)
    rundir = out / "runs"
    rundir.mkdir(parents=True, exist_ok=True)

    todo = [(d, a, e) for d in cfg.datasets for a in cfg.archs for e in cfg.encodings]
    test_n = cfg.samples
    steps, sweep_steps = _sim_config(cfg, "poisson", cfg.duration).steps, _sim_config(cfg, "poisson", cfg.sweep_ms).steps
    per_run = len(cfg.thresholds) * cfg.sweep_samples * sweep_steps + len(METHODS) * test_n * steps
    total = per_run * len(todo)
    done = [0]
    state = {"k": 0, "label": ""}

    def tick(units: int) -> None:
        done[0] += units
        emit(progress, ProgressEvent("study", min(done[0], total), total, {"run": state["k"], "runs": len(todo), "label": state["label"]}))

    runs: list[dict] = []
    if cfg.report_only:
        return _report_only(cfg, todo, out, start)
    try:
        simulate_fn = simulate_fn or executor_simulate(cfg.executor)  # this process or a Ray cluster
        skipped = _run_all(cfg, todo, runs, rundir, per_run, state, tick, loader, trainer, simulate_fn, progress)
    except (KeyboardInterrupt, Cancelled):  # Ctrl-C, or a progress callback's cancel
        if runs:  # tables of what finished; the unfinished run's file keeps its finished methods
            write_report(cfg, runs, out, time.perf_counter() - start)
        raise
    wall = time.perf_counter() - start
    files = write_report(cfg, runs, out, wall)
    return StudyResult(cfg, runs, files, wall, skipped)


def _report_only(cfg: StudyConfig, todo, out: Path, start: float) -> StudyResult:
    """Tables and figures of the run files already in ``out/runs`` (finished or not); nothing is simulated."""
    from .reproduce_report import write_report

    runs = []
    for d, a, e in todo:
        path = out / "runs" / f"{run_key(d, a, e)}.json"
        if path.is_file():
            run = json.loads(path.read_text())
            want = {**cfg.fingerprint(e), "epochs": epochs_for(cfg, d, a)}
            if run.get("fingerprint") != want:
                raise SnnBalanceError(
                    f"{path} was made with other settings than these (its fingerprint: {json.dumps(run.get('fingerprint'))})"
                )
            runs.append(run)
    if not runs:
        raise SnnBalanceError(f"no run files for these settings in {out / 'runs'}")
    files = write_report(cfg, runs, out, sum(r.get("wall_seconds", 0.0) for r in runs))
    return StudyResult(cfg, runs, files, time.perf_counter() - start, [r["key"] for r in runs])


def _run_all(cfg, todo, runs, rundir, per_run, state, tick, loader, trainer, simulate_fn, progress) -> list[str]:
    skipped, cache_data, nets = [], {}, {}
    test_n = cfg.samples
    for k, (d, a, e) in enumerate(todo, 1):
        state.update(k=k, label=run_key(d, a, e))
        path = rundir / f"{run_key(d, a, e)}.json"
        previous = json.loads(path.read_text()) if cfg.resume and path.is_file() else None
        fp = {**cfg.fingerprint(e), "epochs": epochs_for(cfg, d, a)}
        if previous and previous.get("complete") and previous.get("fingerprint") == fp:
            runs.append(previous)
            skipped.append(previous["key"])
            tick(per_run)
            continue
        tick(0)
        if d not in cache_data:
            xt, yt = loader(d, "train")
            xe, ye = loader(d, "test")
            sweep_idx, calib_idx = split_indices(len(xt), cfg)
            cache_data[d] = {
                "test": (xe[:test_n], ye[:test_n]),
                "sweep": (xt[sweep_idx], yt[sweep_idx]),
                "calib": xt[calib_idx],
                "sweep_idx": sweep_idx,
                "calib_idx": calib_idx,
            }
            if len(xe) < test_n:
                raise SnnBalanceError(f"{d} has only {len(xe)} test images, asked for {test_n}")
        if (d, a) not in nets:
            nets[(d, a)] = get_network(cfg, d, a, trainer, progress)
        runs.append(run_network_encoding(nets[(d, a)], e, cfg, cache_data[d], path, previous, simulate_fn, progress, tick))
    return skipped


__all__ = [
    "StudyConfig",
    "StudyResult",
    "METHODS",
    "Method",
    "THRESHOLDS",
    "run_study",
    "get_network",
    "split_indices",
    "sweep_thresholds",
    "epochs_for",
    "default_cache",
    "run_key",
]
