"""The whole conversion job: import, ANN accuracy, calibrate, normalize, simulate, per normalizer.

``snnbalance convert`` and the TUI both call :func:`convert`; neither computes anything itself.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import data as datasets
from .diagnose import preprocessing_warning
from .errors import DataError, SnnBalanceError, UnsupportedError, choice_error
from .executors import Executor, simulate_fn
from .graph import Graph
from .graph_ops import ann_accuracy
from .normalize import normalize, parse_spec
from .progress import NOTE, Cancelled, Progress, ProgressEvent, emit
from .records import Calibration
from .settling import duration_advice
from .simulate import SimConfig, SimResult, explain_choice

DEFAULT_ARCH = "snnbalance.models:PaperCNN"
DEFAULT_NAME = "embedded: paper CNN trained on MNIST"
DEVICES = ("cpu", "cuda")
# Both settle well within the default 300 ms (model-based needs about 1.2 s on the default CNN);
# robust comes with the snnbalance-robust plugin: without it the default is data-based alone.
DEFAULT_NORMALIZERS = ("data-based", "robust")


def default_normalizers() -> list[str]:
    """:data:`DEFAULT_NORMALIZERS` that are installed (and not blocked)."""
    from .plugins import registry

    installed = registry().normalizers
    return [n for n in DEFAULT_NORMALIZERS if n in installed] or ["data-based"]


def default_model() -> Path:
    """The embedded paper CNN trained on MNIST (see ``snnbalance/assets/README.md``)."""
    from .models import default_model_path  # torch: only when a model is loaded

    return default_model_path()


@dataclass
class ConvertConfig:
    """Every setting of one conversion job (the CLI's options, one to one).

    Attributes:
        model: path to a model file; ``None`` uses the embedded default.
        arch: ``package.module:Class`` when ``model`` is a state_dict.
        dataset: ``mnist``, ``fashion-mnist``, ``cifar10``, ``cifar100``, a plugin's dataset, an image
            folder or a ``.npz`` file (see :func:`snnbalance.data.load_dataset`).
        normalizers: normalizer specs (``name`` or ``name:key=value``), simulated in this order.
        simulator: simulator plugin name, or ``auto``: the fast ``spikingjelly`` back end when it
            supports the network and device, else the ``numpy`` reference.
        threshold: firing threshold of every spiking layer.
        samples: first N test images to simulate.
        calibration_samples: seeded random training images for data-based normalization.
        data_dir: dataset root (else ``SNNBALANCE_DATA``, else the user cache).
        download: download missing datasets (needs internet).
        input_mean, input_std: the model was trained on ``(x - mean) / std`` (one value or one per
            channel); folded into the first layer, the SNN reads the raw [0, 1] dataset.
        input_layout: ``nchw`` or ``nhwc``; None detects it (ONNX).
        maxpool: ``spiking`` (max-pool gates) or ``avg`` (replaced by average pooling; the ANN
            accuracy change is reported in ``ConversionReport.maxpool_replacement``).
        input_shape: per-sample input shape of a PyTorch model, e.g. ``[3, 32, 32]``; None takes the
            dataset's (:func:`snnbalance.data.sample_shape`). ONNX files carry their own.
        trust_model: allow loading a whole pickled module, which runs code named in the file
            (``--trust-model``); without it such a file is refused and nothing in it runs.
        model_output: the ONNX output to convert when the model has several (``--model-output``);
            None: the only one shaped (batch, classes).
        calibration_dataset: where data-based normalization takes its images (``--calibration-dataset``);
            None: the training split of ``dataset`` (for an ``.npz`` file, that same file).
        sim: simulation settings.
        executor: where the simulations run (``--executor local|ray``, :mod:`snnbalance.executors`);
            left out of :meth:`to_dict`, as every number of ``results.json`` is the same on either.
    """

    model: str | None = None
    arch: str | None = None
    dataset: str = "mnist"
    normalizers: list[str] = field(default_factory=default_normalizers)
    simulator: str = "auto"
    threshold: float = 1.0
    samples: int = 1000
    calibration_samples: int = 1000
    data_dir: str | None = None
    download: bool = False
    input_mean: list[float] | None = None
    input_std: list[float] | None = None
    input_layout: str | None = None
    maxpool: str = "spiking"
    input_shape: list[int] | None = None
    trust_model: bool = False
    model_output: str | None = None
    calibration_dataset: str | None = None
    # 300 ms keeps the default job on 1,000 images under a minute on 2 CPU cores; data-based
    # networks settle well before it. The paper's 10,000 ms curves: `snnbalance reproduce`.
    sim: SimConfig = field(default_factory=lambda: SimConfig(duration=300.0))
    executor: Executor = field(default_factory=Executor)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("executor")
        return d

    def validate(self, *, single_normalizer: bool = False) -> None:
        """Check every setting before any slow work (import, data, calibration, simulation), so
        a typo costs a second, not a run.

        Args:
            single_normalizer: the job balances with exactly one normalizer (``export``).
        Raises:
            SnnBalanceError: the first bad setting, on one line, naming the option.
        """
        from .importers import LAYOUTS, MAXPOOL_MODES
        from .normalize import check_spec
        from .plugins import registry

        self.sim.validate()
        self.executor.validate()
        if self.sim.device not in DEVICES:
            raise choice_error("device", self.sim.device, DEVICES)
        for option, value in (("--samples", self.samples), ("--calibration-samples", self.calibration_samples)):
            if value < 1:
                raise SnnBalanceError(f"{option} must be at least 1, got {value}")
        if not self.threshold > 0:
            raise SnnBalanceError(f"--threshold must be positive, got {self.threshold}")
        if not self.normalizers:
            raise SnnBalanceError("name at least one normalizer (--normalizer NAME)")
        if single_normalizer and len(set(self.normalizers)) > 1:
            raise SnnBalanceError(
                f"name one normalizer, got {len(self.normalizers)} ({', '.join(self.normalizers)}): each export writes one network"
            )
        for spec in self.normalizers:
            check_spec(spec)
        if self.simulator != "auto":
            sim = registry().simulator(self.simulator)
            if self.sim.device not in sim.devices:
                raise SnnBalanceError(f"simulator {self.simulator!r} runs on {', '.join(sim.devices)}, not {self.sim.device!r}")
            if self.sim.readout not in sim.readouts:
                able = [n for n, s in sorted(registry().simulators.items()) if self.sim.readout in s.readouts]
                raise UnsupportedError(
                    f"simulator {self.simulator!r} reads out {', '.join(sim.readouts)} only, not --readout {self.sim.readout}"
                    f" (simulators that do: {', '.join(able)})"
                )
        if self.simulator in ("auto", "spikingjelly"):
            from .simulate.engines import require_parts

            require_parts(self.sim)  # neuron=sj or neuron=triton without its package: one line, now
        datasets.dataset_key(self.dataset)
        if self.calibration_dataset is not None:
            datasets.dataset_key(self.calibration_dataset)
        if self.maxpool not in MAXPOOL_MODES:
            raise choice_error("--maxpool mode", self.maxpool, MAXPOOL_MODES)
        if self.input_layout is not None and self.input_layout.lower() not in LAYOUTS:
            raise choice_error("--input-layout", self.input_layout, LAYOUTS)
        if self.input_std is not None and not all(v != 0 and math.isfinite(v) for v in self.input_std):
            raise SnnBalanceError(f"--input-std must be finite and non-zero, got {self.input_std}")
        if self.input_mean is not None and not all(math.isfinite(v) for v in self.input_mean):
            raise SnnBalanceError(f"--input-mean must be finite, got {self.input_mean}")
        if self.input_shape is not None and not (self.input_shape and all(int(v) >= 1 for v in self.input_shape)):
            raise SnnBalanceError(f"--input-shape takes positive sizes like 1,28,28, got {self.input_shape}")
        if self.model is not None and not Path(self.model).is_file():
            raise SnnBalanceError(f"model file not found: {self.model}")
        _refuse_nir(self.model, "a model (.onnx, or a PyTorch .pt)")
        for path in (self.dataset, self.calibration_dataset):
            _refuse_nir(path, "a dataset (x and y arrays)")


@dataclass
class Run:
    """One normalizer's balanced network and its simulation."""

    normalizer: str
    scale_factors: dict[str, float]
    thresholds: dict[str, float]
    result: SimResult


@dataclass
class ConversionReport:
    """Everything ``convert`` measured; :mod:`snnbalance.report` renders and saves it."""

    model: str
    dataset: str
    config: ConvertConfig
    ann_accuracy: float
    graph: Graph
    import_notes: list[str]
    import_max_rel_error: float
    data_notes: list[str]
    runs: list[Run] = field(default_factory=list)
    maxpool_replacement: dict[str, float] | None = None  # ANN accuracy: original, replaced, change
    cancelled: bool = False
    wall_seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)


def load_data(
    cfg: ConvertConfig, need_calibration: bool, shape: tuple[int, ...] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, list[str]]:
    """Test samples, labels and calibration inputs for ``cfg``, with notes on where they came from.

    The embedded MNIST slices stand in when MNIST is not on disk, so the default job runs offline.
    ``shape`` is the model's per-sample input shape (default: ``--input-shape``): image folders are
    scaled and cropped to it.
    """
    notes: list[str] = []
    if shape is None and cfg.input_shape is not None:
        shape = tuple(int(v) for v in cfg.input_shape)
    try:
        x, y = datasets.load_dataset(cfg.dataset, "test", cfg.data_dir, cfg.download, shape=shape, notes=notes)
        calib = None
        if need_calibration:
            source = cfg.calibration_dataset or cfg.dataset
            xt, _ = datasets.load_dataset(source, "train", cfg.data_dir, cfg.download, shape=shape, notes=notes)
            calib = datasets.calibration_slice(xt, cfg.calibration_samples, cfg.sim.seed)
            if str(source).lower().endswith(".npz") or cfg.calibration_dataset:
                same = (
                    ""
                    if cfg.calibration_dataset
                    else " (an .npz file has one split: the images also evaluated; --calibration-dataset FILE takes others)"
                )
                notes.append(f"calibration: {len(calib)} seeded random images of {source}{same}")
    except DataError as exc:
        if cfg.dataset != "mnist" or cfg.data_dir:
            raise
        x, y = datasets.load_default_test_slice()
        calib = datasets.load_default_train_slice()[0][: cfg.calibration_samples] if need_calibration else None
        notes.append(
            f"{exc} -- using the embedded MNIST slices instead "
            f"({len(x)} test images; {0 if calib is None else len(calib)} calibration images)"
        )
    if cfg.samples > len(x):
        notes.append(f"only {len(x)} test images available; simulating all of them")
    return x[: cfg.samples], y[: cfg.samples], calib, notes


def convert(cfg: ConvertConfig, progress: Progress | None = None) -> ConversionReport:
    """Import, normalize with each of ``cfg.normalizers`` and simulate on the same input spikes.

    Args:
        cfg: the job.
        progress: receives :class:`ProgressEvent` s (``import``, ``calibrate``, ``simulate NAME``);
            raising :class:`Cancelled` from it stops the job and keeps the finished runs.
    Returns:
        The report, with one :class:`Run` per normalizer that ran.
    """
    start = time.perf_counter()
    report, x, y, calibration, simulator = _prepare(cfg, progress)
    _run_normalizers(report, x, y, calibration, simulator, progress)
    report.wall_seconds = time.perf_counter() - start
    return report


def _prepare(cfg: ConvertConfig, progress: Progress | None) -> tuple[ConversionReport, np.ndarray, np.ndarray, Calibration | None, str]:
    """Everything before the first normalizer: the checked job, the imported network, its data and
    ANN accuracy, the simulator chosen, and the report they start (notes and warnings so far)."""
    from .plugins import registry

    cfg.validate()
    norms = [registry().normalizer(parse_spec(spec)[0]) for spec in cfg.normalizers]
    need_calib = any(n.needs_calibration for n in norms)

    emit(progress, ProgressEvent("import", 0, 1))
    imported, model_name = load_network(cfg)
    graph = imported.graph
    emit(progress, ProgressEvent("import", 1, 1))

    simulator, passed = explain_choice(graph, cfg.sim.device) if cfg.simulator == "auto" else (cfg.simulator, [])
    x, y, calib_x, data_notes = load_data(cfg, need_calib, shape=graph.input_shape)
    if passed:
        data_notes.append(
            f"--simulator auto chose {simulator} ({'; '.join(passed)})"
            + (": the reference is much slower than the fast engines" if simulator == "numpy" else "")
        )
    x = fit_inputs(graph, x, cfg.dataset)
    ann_acc = ann_accuracy(graph, x, y)
    warnings = [w for w in [preprocessing_warning(graph, x, y, ann_acc, cfg)] if w]
    for w in warnings:
        emit(progress, ProgressEvent(NOTE, 0, 0, {"message": w}))
    replacement = None
    if imported.original_graph is not None:  # max pooling was replaced: what it costs the ANN
        from .graph_ops import replacement_accuracy

        replacement = replacement_accuracy(imported.original_graph, graph, x, y)
    calibration = Calibration(calib_x.reshape(len(calib_x), *graph.input_shape), progress=progress) if calib_x is not None else None

    report = ConversionReport(
        model=model_name,
        dataset=cfg.dataset,
        config=cfg,
        ann_accuracy=ann_acc,
        graph=graph,
        import_notes=imported.notes,
        import_max_rel_error=imported.max_rel_error,
        data_notes=data_notes,
        maxpool_replacement=replacement,
        warnings=warnings,
    )
    return report, x, y, calibration, simulator


def _run_normalizers(
    report: ConversionReport, x: np.ndarray, y: np.ndarray, calibration: Calibration | None, simulator: str, progress: Progress | None
) -> None:
    """Balance ``report.graph`` with each of the job's normalizers (once each) and simulate it,
    adding a :class:`Run` per normalizer to ``report``; stops after a cancelled run."""
    cfg = report.config
    specs = list(dict.fromkeys(cfg.normalizers))  # `-n X -n X` runs X once
    if len(specs) < len(cfg.normalizers):
        twice = sorted({s for s in cfg.normalizers if cfg.normalizers.count(s) > 1})
        report.data_notes.append(f"--normalizer {', '.join(twice)} named more than once: each runs once")
    run_sim = simulate_fn(cfg.executor)  # simulate, or the same on a Ray cluster
    for spec in specs:
        balanced = normalize(report.graph, spec, calibration=calibration, threshold=cfg.threshold)
        result = run_sim(balanced.graph, x, y, cfg.sim, simulator=simulator, progress=progress, task=f"simulate {spec}")
        report.runs.append(Run(spec, balanced.scale_factors, {n.name: n.threshold for n in balanced.graph.neuron_nodes()}, result))
        if result.cancelled:
            report.cancelled = True
            break
        advice = duration_advice(
            balanced.graph, x, y, cfg.sim, result, report.ann_accuracy, spec, simulator=simulator, progress=progress
        )  # a silent or unsettled output: how long it needs
        report.warnings += [advice] if advice else []


def load_network(cfg: ConvertConfig):
    """Import ``cfg.model`` (the embedded default when None); return the import result and a name."""
    from .importers import load_model

    pre: dict[str, Any] = dict(
        input_mean=cfg.input_mean,
        input_std=cfg.input_std,
        input_layout=cfg.input_layout,
        maxpool=cfg.maxpool,
        model_output=cfg.model_output,
        classes=datasets.dataset_classes(cfg.dataset),
    )
    if cfg.model is None:
        return load_model(default_model(), arch=DEFAULT_ARCH, input_shape=(1, 28, 28), **pre), DEFAULT_NAME
    shape = None if cfg.input_shape is None else tuple(int(v) for v in cfg.input_shape)
    arch, notes, torch_file = cfg.arch or None, [], Path(cfg.model).suffix.lower() != ".onnx"
    if torch_file and arch is None:  # a state_dict from `snnbalance train`: its record names the arch
        from .models import recorded_arch

        arch = recorded_arch(cfg.model)
        notes += [f"arch {arch} read from {Path(cfg.model).with_suffix('.json').name}"] if arch else []
    if torch_file and shape is None:  # a PyTorch model reads what the dataset holds; ONNX names its own
        shape = datasets.sample_shape(cfg.dataset, cfg.data_dir)
        notes.append(f"input shape {_dims(shape)} from the dataset {cfg.dataset!r} (--input-shape sets another)")
    load = functools.partial(load_model, cfg.model, arch=arch, trust=cfg.trust_model, **pre)
    try:
        imported = load(input_shape=shape)
    except SnnBalanceError as exc:  # an MLP without Flatten reads the dataset's images flat
        if cfg.input_shape is not None or not torch_file or shape is None or len(shape) < 2 or isinstance(exc, UnsupportedError):
            raise
        try:
            imported = load(input_shape=(math.prod(shape),))
        except SnnBalanceError:
            raise exc from None
        notes[-1] = f"input shape {math.prod(shape)} (the dataset's {_dims(shape)} flattened)"
    imported.notes[:0] = notes
    return imported, str(cfg.model)


def _refuse_nir(path: str | None, wanted: str) -> None:
    """A NIR file (HDF5, as ``snnbalance export`` writes) where ``wanted`` belongs: say so by name,
    whatever its suffix (a NIR file named ``.npz`` reads as a broken archive otherwise)."""
    p = Path(path) if path else None
    if p is None or not p.is_file():
        return
    with open(p, "rb") as f:
        if f.read(8) != b"\x89HDF\r\n\x1a\n":
            return
    named = f" named {p.suffix}" if p.suffix.lower() not in (".nir", ".h5", ".hdf5") else ""
    raise SnnBalanceError(
        f"{p} is a NIR file (HDF5){named}, not {wanted}: snnbalance writes NIR "
        "(snnbalance export) but does not read it back; convert the network it came from"
    )


def _dims(shape) -> str:
    return "x".join(str(int(d)) for d in shape)


def fit_inputs(graph: Graph, x: np.ndarray, dataset: str) -> np.ndarray:
    """``x`` reshaped to the graph's input shape when only the arrangement differs (flat vs image, a
    dimension of 1); any other difference (3x32x32 vs 1x96x32) is refused naming both shapes."""
    want, have = tuple(graph.input_shape), tuple(x.shape[1:])
    core = [tuple(d for d in s if d != 1) for s in (want, have)]
    if math.prod(want) != math.prod(have) or (core[0] != core[1] and min(map(len, core)) > 1):
        raise SnnBalanceError(
            f"the model takes inputs of shape {_dims(want)}, the dataset {dataset!r} has "
            f"{_dims(have)} per sample; use a dataset of the model's shape (a PyTorch model: "
            "--input-shape C,H,W)"
        )
    return x.reshape(len(x), *want)


__all__ = ["ConvertConfig", "ConversionReport", "Run", "convert", "ann_accuracy", "default_model", "Cancelled"]
