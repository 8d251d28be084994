"""What every simulator shares: its settings, its result, the bookkeeping and the batch loop.

A back end only has to step one batch through time (``step_batch``); counting accuracy per step,
spikes per layer, synaptic operations, progress and cancellation happen here, once, so every
back end reports the same quantities in the same way.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterator

import numpy as np

from ..errors import SnnBalanceError, UnsupportedError, did_you_mean
from ..graph import INPUT, Graph, fanout
from ..progress import Cancelled, Progress, ProgressEvent, emit

ENCODINGS = ("poisson", "current")
RESETS = ("zero", "subtract")
#: How the prediction is read from the output layer (``docs/semantics.md``, "Read-out").
READOUTS = ("spikes", "membrane")


@dataclass
class SimConfig:
    """Simulation settings (times in milliseconds, rates in Hz).

    Attributes:
        duration: simulated time T.
        dt: time step; steps = T / dt.
        max_rate: Poisson rate of a pixel of value 1.
        encoding: ``poisson`` or ``current``.
        reset: ``zero`` (V = 0 after a spike, as in the paper) or ``subtract`` (V -= threshold).
        refractory: refractory period; a refractory neuron ignores its input and cannot spike.
        seed: seeds the input spikes (see :mod:`snnbalance.simulate.encoding`).
        batch_size: images simulated together (bounds memory).
        batch_seconds: if set, batches are sized (up to ``batch_size``) to take about this long, so
            progress events (and cancellation) come at that pace; results do not change.
        device: ``cpu`` or ``cuda`` (back ends that support it).
        options: back-end specific ``key=value`` options.
        v_init: initial membrane potential of every spiking layer as a fraction of its threshold
            (``--v-init``), replacing the graph's per-layer ``Node.v_init``; ``None`` keeps those
            (0 unless a normalizer set them). See :func:`initial_potential`.
        readout: ``spikes`` (the output layer spikes; predict from its spike counts, Diehl et al.
            2015) or ``membrane`` (the output layer only integrates its input current, no
            threshold, no reset; predict from that accumulated potential, Rueckauer et al. 2017).
    """

    duration: float = 1000.0
    dt: float = 1.0
    max_rate: float = 1000.0
    encoding: str = "poisson"
    reset: str = "zero"
    refractory: float = 0.0
    seed: int = 0
    batch_size: int = 250
    batch_seconds: float | None = None
    device: str = "cpu"
    options: dict[str, str] = field(default_factory=dict)
    v_init: float | None = None
    readout: str = "spikes"

    @property
    def membrane_readout(self) -> bool:
        return self.readout == "membrane"

    @property
    def steps(self) -> int:
        return int(round(self.duration / self.dt))

    @property
    def refractory_steps(self) -> int:
        return int(round(self.refractory / self.dt))

    def validate(self) -> None:
        if not (self.dt > 0 and self.duration > 0):
            raise SnnBalanceError(f"duration and dt must be positive (got {self.duration} ms, {self.dt} ms)")
        if not math.isclose(self.steps * self.dt, self.duration, rel_tol=1e-9, abs_tol=1e-9):
            raise SnnBalanceError(f"duration {self.duration} ms is not a whole number of {self.dt} ms steps")
        if self.max_rate < 0:
            raise SnnBalanceError(f"max rate must be non-negative, got {self.max_rate}")
        if self.encoding not in ENCODINGS:
            raise SnnBalanceError(
                f"encoding must be one of {', '.join(ENCODINGS)}, got {self.encoding!r}{did_you_mean(self.encoding, ENCODINGS)}"
            )
        if self.reset not in RESETS:
            raise SnnBalanceError(f"reset must be one of {', '.join(RESETS)}, got {self.reset!r}{did_you_mean(self.reset, RESETS)}")
        if self.readout not in READOUTS:
            raise SnnBalanceError(
                f"readout must be one of {', '.join(READOUTS)}, got {self.readout!r}{did_you_mean(self.readout, READOUTS)}"
            )
        if self.refractory < 0:
            raise SnnBalanceError(f"refractory period must be non-negative, got {self.refractory}")
        if self.batch_seconds is not None and self.batch_seconds <= 0:
            raise SnnBalanceError(f"batch seconds must be positive, got {self.batch_seconds}")
        if self.batch_size < 1:
            raise SnnBalanceError(f"batch size must be at least 1, got {self.batch_size}")
        if self.v_init is not None and not (math.isfinite(self.v_init) and -1.0 <= self.v_init < 1.0):
            raise SnnBalanceError(f"--v-init is a fraction of the threshold in [-1, 1), got {self.v_init}")


def initial_potential(node, config: SimConfig) -> np.float32:
    """The membrane potential each sample starts from in ``node``'s IF neurons: the fraction
    (``config.v_init``, else ``node.v_init``) times the threshold, in float32 -- one value that
    every back end starts from, so their spikes stay identical (``docs/semantics.md``)."""
    frac = node.v_init if config.v_init is None else config.v_init
    return np.float32(np.float32(frac) * np.float32(node.threshold))


def accuracy_at(curve, dt: float, ms: float) -> float:
    """Accuracy after ``ms`` of simulated time, read from a per-step curve: the step that ends at
    or before ``ms``; NaN outside the simulated time. The one definition the CLI, the TUI and the
    study's tables use."""
    k = int(math.floor(ms / dt + 1e-9)) - 1
    return float(curve[k]) if 0 <= k < len(curve) else float("nan")


def time_within(curve, dt: float, tolerance: float, of: float | None = None) -> float:
    """First time (ms) from which a per-step accuracy curve stays within ``tolerance`` (absolute)
    of ``of`` (default: its final value); NaN when it never does or the curve is empty."""
    acc = np.asarray(curve, dtype=float)
    if not len(acc):
        return float("nan")
    target = acc[-1] if of is None else of
    bad = np.flatnonzero(acc < target - tolerance)
    k = bad[-1] + 1 if len(bad) else 0
    return float((k + 1) * dt) if k < len(acc) else float("nan")


@dataclass
class SimResult:
    """What one simulation measured.

    Attributes:
        accuracy_over_time: accuracy after each step (length = steps), from output spike counts.
        final_accuracy: the last value of ``accuracy_over_time``.
        firing_rates: per spiking layer, mean rate in Hz over neurons, samples and time.
        spike_counts: per spiking layer (and ``input`` for Poisson input), total spikes. With
            ``readout="membrane"`` the output layer has no neurons: it has no entry in either.
        synaptic_ops_per_sample: spikes times fan-out, summed over layers, per sample.
        output_counts: (samples, classes) at the end: output spike counts (int32), or with
            ``readout="membrane"`` the output layer's accumulated potentials (float32).
        samples, steps, dt: what was simulated (``samples`` < requested when cancelled).
        wall_seconds, image_steps_per_second: speed of the simulation itself.
        cancelled: the run was stopped early; the numbers cover the finished samples.
        engine: the back end's own name for what ran (e.g. ``native``, ``torch/sj/bf16x2``);
            empty where a back end has one way only.
    """

    accuracy_over_time: np.ndarray
    final_accuracy: float
    firing_rates: dict[str, float]
    spike_counts: dict[str, int]
    synaptic_ops_per_sample: float
    output_counts: np.ndarray
    samples: int
    steps: int
    dt: float
    wall_seconds: float
    image_steps_per_second: float
    simulator: str = ""
    device: str = "cpu"
    cancelled: bool = False
    engine: str = ""

    def accuracy_at(self, ms: float) -> float:
        """Accuracy after ``ms`` of simulated time (:func:`accuracy_at`)."""
        return accuracy_at(self.accuracy_over_time, self.dt, ms)

    def time_to_within(self, tolerance: float, of: float | None = None) -> float:
        """First time (ms) from which accuracy stays within ``tolerance`` (absolute, e.g. 0.01)
        of ``of`` (default: the final accuracy) (:func:`time_within`)."""
        return time_within(self.accuracy_over_time, self.dt, tolerance, of)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["accuracy_over_time"] = [round(float(a), 6) for a in self.accuracy_over_time]
        d.pop("output_counts")
        return d


#: How close to the ANN (in accuracy points) the frontier looks: 0.5, 1 and 2 points.
FRONTIER_POINTS = (0.5, 1.0, 2.0)


def synops_to(result: SimResult, ms: float) -> float:
    """Synaptic operations per image spent in the first ``ms`` of simulated time, estimated as
    ``synaptic_ops_per_sample * steps(ms) / steps``.

    The engines report spike totals over the whole run, not per step, so this assumes a constant
    rate. It overestimates the cost of early times when layers start from an empty membrane
    (little fires then) and is close once rates have settled; ``docs/results-schema.md`` says so
    wherever it is written, and ``docs/results/latency/`` measures the exact cost by simulating
    only up to that time.
    """
    if not math.isfinite(ms) or result.steps == 0:
        return float("nan")
    k = min(result.steps, int(math.floor(ms / result.dt + 1e-9)))
    return result.synaptic_ops_per_sample * k / result.steps


def frontier(result: SimResult, ann_accuracy: float, points=FRONTIER_POINTS) -> list[dict]:
    """Per tolerance: the time from which accuracy stays within ``p`` points of the ANN, and the
    synaptic operations per image spent until then (:func:`synops_to`).

    Returns:
        One dict per ``p``: ``points``, ``time_ms`` and ``synaptic_ops_per_sample`` (NaN when the
        run never settles within ``p`` points).
    """
    rows = []
    for p in points:
        t = result.time_to_within(p / 100.0, of=ann_accuracy) if result.samples else float("nan")
        rows.append({"points": float(p), "time_ms": t, "synaptic_ops_per_sample": synops_to(result, t)})
    return rows


class Recorder:
    """Accumulates, over batches, what :class:`SimResult` reports."""

    def __init__(self, graph: Graph, n_samples: int, config: SimConfig):
        self.graph, self.config = graph, config
        self.shapes = graph.shapes()
        self.correct = np.zeros(config.steps, dtype=np.int64)
        silent = graph.output.name if config.membrane_readout else None  # the read-out has no neurons
        self.spikes = {n.name: np.zeros(self.shapes[n.name], dtype=np.int64) for n in graph.neuron_nodes() if n.name != silent}
        if config.encoding == "poisson":
            self.spikes[INPUT] = np.zeros(self.shapes[INPUT], dtype=np.int64)
        self.output_counts = np.zeros(
            (n_samples, self.shapes[graph.output.name][0]), dtype=np.float32 if config.membrane_readout else np.int32
        )
        self.done = 0

    def add_batch(self, correct_per_step: np.ndarray, spikes: dict[str, np.ndarray], output_counts: np.ndarray) -> None:
        """Record one finished batch.

        Args:
            correct_per_step: (steps,) number of correct predictions after each step.
            spikes: layer -> per-neuron spike totals summed over the batch (layer's shape).
            output_counts: (B, classes) final output spike counts (accumulated potentials,
                float, with ``readout="membrane"``).

        Raises:
            UnsupportedError: ``readout="membrane"`` and the back end returned spike counts
                (integers): it does not implement that read-out.
        """
        if self.config.membrane_readout and not np.issubdtype(np.asarray(output_counts).dtype, np.floating):
            raise UnsupportedError(
                "this simulator does not implement --readout membrane (it returned output "
                "spike counts); use --simulator numpy or spikingjelly"
            )
        self.correct += correct_per_step
        for k, v in spikes.items():
            if k in self.spikes:
                self.spikes[k] += v.reshape(self.spikes[k].shape).astype(np.int64)
        self.output_counts[self.done : self.done + len(output_counts)] = output_counts
        self.done += len(output_counts)

    def curve(self) -> np.ndarray:
        return self.correct / max(self.done, 1)

    def firing_rates(self) -> dict[str, float]:
        seconds = self.config.duration / 1000.0
        return {k: float(v.sum() / (v.size * max(self.done, 1) * seconds)) for k, v in self.spikes.items() if k != INPUT}

    def result(self, wall: float, simulator: str, cancelled: bool) -> SimResult:
        fo = fanout(self.graph)
        n = max(self.done, 1)
        synops = sum(float((v * fo[k]).sum()) for k, v in self.spikes.items()) / n
        acc = self.curve()
        steps = self.config.steps
        return SimResult(
            accuracy_over_time=acc,
            final_accuracy=float(acc[-1]) if self.done else float("nan"),
            firing_rates=self.firing_rates(),
            spike_counts={k: int(v.sum()) for k, v in self.spikes.items()},
            synaptic_ops_per_sample=synops,
            output_counts=self.output_counts[: self.done],
            samples=self.done,
            steps=steps,
            dt=self.config.dt,
            wall_seconds=wall,
            image_steps_per_second=self.done * steps / wall if wall > 0 else float("nan"),
            simulator=simulator,
            device=self.config.device,
            cancelled=cancelled,
        )


StepBatch = Callable[[Graph, np.ndarray, np.ndarray, np.ndarray, SimConfig], tuple]

_SHARD: ContextVar[tuple[int, list] | None] = ContextVar("snnbalance_shard", default=None)


@contextmanager
def shard(first_index: int) -> Iterator[list[Recorder]]:
    """Simulate a slice of a larger test set as that set's images ``first_index, first_index + 1, ...``.

    Inside the block, :func:`run_batches` numbers its samples from ``first_index`` (the input
    spikes hash the image index, so a slice gets the spikes it has in the whole set) and appends
    its :class:`Recorder` to the yielded list: integer sums that merge exactly with other slices'
    (:mod:`snnbalance.executors`). A context variable, not a parameter, so that every simulator
    plugin built on :func:`run_batches` can run slices without a new argument.
    """
    recorders: list[Recorder] = []
    token = _SHARD.set((int(first_index), recorders))
    try:
        yield recorders
    finally:
        _SHARD.reset(token)


def check_run(graph: Graph, x: np.ndarray, y: np.ndarray, config: SimConfig) -> None:
    """The checks every simulation makes before any work: settings, graph, inputs (one line each)."""
    config.validate()
    graph.validate()
    if len(x) != len(y):
        raise SnnBalanceError(f"{len(x)} inputs but {len(y)} labels")
    if len(x) == 0:
        raise SnnBalanceError("no samples to simulate")
    if config.encoding == "poisson" and float(np.min(x)) < 0:
        raise SnnBalanceError("inputs must be non-negative for rate coding (got negative pixel values); rescale them to [0, 1]")


def run_batches(
    graph: Graph,
    x: np.ndarray,
    y: np.ndarray,
    config: SimConfig,
    step_batch: StepBatch,
    simulator: str,
    progress: Progress | None = None,
    task: str = "simulate",
) -> SimResult:
    """Simulate all samples batch by batch with ``step_batch`` and gather the result.

    ``step_batch(graph, x_batch, index_batch, y_batch, config)`` returns
    ``(correct_per_step, spikes_per_layer, output_counts)`` for that batch. A progress callback
    that raises :class:`Cancelled` stops the run after the current batch; the result then covers
    the finished samples and has ``cancelled=True``.
    """
    check_run(graph, x, y, config)
    first, recorders = _SHARD.get() or (0, None)
    rec = Recorder(graph, len(x), config)
    start = time.perf_counter()
    cancelled = False
    lo, size = 0, config.batch_size if config.batch_seconds is None else 1
    while lo < len(x):
        hi = min(lo + size, len(x))
        t0 = time.perf_counter()
        rec.add_batch(*step_batch(graph, x[lo:hi], np.arange(first + lo, first + hi), y[lo:hi], config))
        if config.batch_seconds is not None:
            # size the next batch to take about batch_seconds: the results do not depend on it
            per_sample = (time.perf_counter() - t0) / (hi - lo)
            size = int(min(config.batch_size, max(1, config.batch_seconds / max(per_sample, 1e-9))))
        lo = hi
        try:
            emit(progress, ProgressEvent(task, rec.done, len(x), {"accuracy": rec.curve(), "firing_rates": rec.firing_rates()}))
        except Cancelled:
            cancelled = rec.done < len(x)
            break
    if recorders is not None:
        recorders.append(rec)
    return rec.result(time.perf_counter() - start, simulator, cancelled)
