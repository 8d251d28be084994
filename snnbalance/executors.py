"""Where simulations run: in this process (``local``) or as tasks on a Ray cluster (``ray``).

The input spikes hash ``(seed, image index, pixel, step)``, so a slice of the test set simulates
to the same spikes wherever it runs, and what a simulation measures is a sum of integers over
images (correct predictions per step, spikes per neuron, output counts). The ``ray`` executor
therefore splits one simulation into tasks of (run, slice of images), runs each slice as
:func:`simulate_slice` -- a pure function of (network, images, labels, first index, settings,
simulator) -- and adds the slices' integers up in image order: the curves, spike counts,
synaptic operations and output counts are exactly a local run's.

Ray is imported only when the ``ray`` executor runs (``pip install 'snnbalance[ray]'``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .errors import SnnBalanceError, choice_error, one_line
from .progress import Cancelled, Progress, ProgressEvent, emit

EXECUTORS = ("local", "ray")
#: Tasks per worker slot when the slice size is automatic: a few, so a slow slot delays the end little...
TASKS_PER_SLOT = 4
#: ...but no fewer image-steps per task than this (one task per slot for short runs): a task costs about
#: 0.1 s beyond its simulation (scheduling, the engine's setup), which a 1 s run would feel and a 1 h one not.
MIN_TASK_IMAGE_STEPS = 2_000_000


@dataclass
class Executor:
    """Where a command's simulations run.

    Attributes:
        kind: ``local`` (this process, the default; Ray is not imported) or ``ray``.
        address: the Ray cluster to join: ``auto`` (the one started on this machine with
            ``ray start``), ``ray://host:port`` (Ray Client) or ``host:port`` (the head's GCS);
            None: ``$RAY_ADDRESS`` if set, else a new local instance that ends with the process
            (never a guess at a cluster that may have stopped).
        slice_size: test images per task; None: whole batches (``--batch-size``), up to
            :data:`TASKS_PER_SLOT` tasks per CPU (or GPU with ``--device cuda``) of the cluster
            (see :func:`plan_slices`).
        max_retries: times a task whose worker or node died is run again (Ray's task retries).
        cpus_per_task: CPU cores a CPU task asks for; the native engine runs that many threads.
    """

    kind: str = "local"
    address: str | None = None
    slice_size: int | None = None
    max_retries: int = 3
    cpus_per_task: int = 1

    def validate(self) -> None:
        """One line for a bad setting, and for ``ray`` without Ray installed, before any slow work."""
        if self.kind not in EXECUTORS:
            raise choice_error("--executor", self.kind, EXECUTORS)
        if self.kind == "local" and self.address:
            raise SnnBalanceError("--ray-address needs --executor ray")
        if self.slice_size is not None and self.slice_size < 1:
            raise SnnBalanceError(f"--slice-size must be at least 1, got {self.slice_size}")
        if self.max_retries < 0 or self.cpus_per_task < 1:
            raise SnnBalanceError("max retries must be non-negative and CPUs per task at least 1")
        if self.kind == "ray":
            import_ray()


def import_ray():
    """The ``ray`` module, or one line naming the extra that installs it."""
    from .extras import require

    require("ray", "--executor ray")
    import ray

    return ray


SimulateFn = Callable[..., Any]  # simulate(graph, x, y, config, *, simulator=, progress=, task=) -> SimResult


def simulate_fn(executor: Executor | None) -> SimulateFn:
    """A function with :func:`snnbalance.simulate.simulate`'s signature that runs on ``executor``."""
    from .simulate import simulate

    if executor is None or executor.kind == "local":
        return simulate
    executor.validate()
    return RaySimulator(executor)


# --------------------------------------------------------------------------- one task


@dataclass
class SliceResult:
    """What one task sends back: numbers only (the slice's integer sums), plus where it ran.

    Attributes:
        lo, hi: the slice ``[lo, hi)`` of the test set.
        correct: (steps,) correct predictions after each step.
        spikes: layer -> per-neuron spike totals over the slice.
        output_counts: (hi - lo, classes) output spike counts.
        engine: the back end's name for what ran.
        node: Ray node id of the worker (empty outside Ray).
        seconds: the task's own simulation time.
    """

    lo: int
    hi: int
    correct: np.ndarray
    spikes: dict[str, np.ndarray]
    output_counts: np.ndarray
    engine: str = ""
    node: str = ""
    seconds: float = 0.0


def simulate_slice(graph, x: np.ndarray, y: np.ndarray, lo: int, config, simulator: str) -> SliceResult:
    """Simulate the images ``x``, labels ``y`` as images ``lo, lo + 1, ...`` of a whole test set; a
    pure function of its arguments.

    Args:
        graph: the balanced network.
        x, y: the slice (each slice goes through Ray's object store once, to the node that runs it).
        lo: the index of ``x[0]`` in the whole set (the input spikes hash it).
        config: the simulation settings (:class:`~snnbalance.simulate.SimConfig`).
        simulator: a simulator plugin built on :func:`~snnbalance.simulate.core.run_batches`.
    """
    from .simulate import simulate
    from .simulate.core import shard

    if simulator == "spikingjelly" and config.device == "cpu" and "threads" not in config.options:
        # a task owns the cores it asked for, not the node's: one native thread per core asked
        config = dataclasses.replace(config, options={**config.options, "threads": str(_task_cpus())})
    t0 = time.perf_counter()
    with shard(lo) as recorders:
        res = simulate(graph, np.array(x), np.array(y), config, simulator=simulator)  # writable copies
    if len(recorders) != 1:
        raise SnnBalanceError(
            f"simulator {simulator!r} does not run through run_batches, so it cannot simulate slices of a test set; use --executor local"
        )
    rec = recorders[0]
    return SliceResult(lo, lo + len(x), rec.correct, rec.spikes, rec.output_counts, res.engine, _node_id(), time.perf_counter() - t0)


def _task_cpus() -> int:
    try:
        import ray

        return max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)))
    except Exception:  # not in a Ray worker
        return 1


def _node_id() -> str:
    try:
        import ray

        return ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""
    except Exception:
        return ""


def plan_slices(
    n: int, batch_size: int, slots: int, slice_size: int | None = None, whole_batches: bool = True, steps: int | None = None
) -> list[tuple[int, int]]:
    """Cut ``n`` images into ``[lo, hi)`` slices.

    Automatic sizes are whole batches (so a slice's batches are the local run's batches, and an
    engine whose float sums depend on the batch's makeup still gives the same spikes), up to
    :data:`TASKS_PER_SLOT` slices per worker slot, fewer when a run of ``steps`` steps is short
    (:data:`MIN_TASK_IMAGE_STEPS`).
    """
    if slice_size is None:
        slots = max(slots, 1)
        per_slot = TASKS_PER_SLOT if steps is None else max(1, min(TASKS_PER_SLOT, n * steps // (slots * MIN_TASK_IMAGE_STEPS)))
        slice_size = max(1, math.ceil(n / (per_slot * slots)))
        if whole_batches:
            slice_size = math.ceil(slice_size / batch_size) * batch_size
    return [(lo, min(lo + slice_size, n)) for lo in range(0, n, slice_size)]


# --------------------------------------------------------------------------- the driver


class RaySimulator:
    """Runs simulations as Ray tasks and merges them; called like :func:`snnbalance.simulate.simulate`.

    Args:
        executor: the settings (``kind`` must be ``ray``).
        slice_fn: the task's body (default :func:`simulate_slice`); tests wrap it to inject faults.
    """

    def __init__(self, executor: Executor, slice_fn: Callable[..., SliceResult] | None = None):
        self.executor = executor
        self.ray = connect(executor.address)
        self.remote = self.ray.remote(slice_fn or simulate_slice)  # exported to the cluster once, not per run

    def __call__(self, graph, x, y, config=None, *, simulator: str = "numpy", progress: Progress | None = None, task: str = "simulate"):
        from .plugins import registry
        from .simulate import SimConfig
        from .simulate.core import Recorder, check_run

        ray = self.ray
        config = config or SimConfig()
        sim = registry().simulator(simulator)
        if config.device not in sim.devices:
            raise SnnBalanceError(f"simulator {simulator!r} runs on {', '.join(sim.devices)}, not {config.device!r}")
        x, y = np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.int64)
        check_run(graph, x, y, config)  # the errors a local run gives, before any task starts
        n = len(x)
        slices = plan_slices(
            n,
            config.batch_size,
            self._slots(config),
            self.executor.slice_size,
            whole_batches=config.batch_seconds is None,
            steps=config.steps,
        )
        gpu = config.device == "cuda"
        remote = self.remote.options(
            num_cpus=1 if gpu else self.executor.cpus_per_task,
            num_gpus=1 if gpu else 0,
            max_retries=self.executor.max_retries,
            retry_exceptions=False,
            scheduling_strategy="SPREAD",
        )
        start = time.perf_counter()
        graph_ref = ray.put(graph)  # once for all tasks; each slice of images once, for its own task
        pending = {remote.remote(graph_ref, ray.put(x[lo:hi]), ray.put(y[lo:hi]), lo, config, simulator): (lo, hi) for lo, hi in slices}
        done: dict[int, SliceResult] = {}
        live = Recorder(graph, n, config)  # order-free sums for the progress events
        cancelled = False
        try:
            while pending and not cancelled:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                for ref in ready:
                    lo, hi = pending.pop(ref)
                    try:
                        part = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        raise task_error(task, lo, hi, exc, self.executor.max_retries) from None
                    done[lo] = part
                    live.add_batch(part.correct, part.spikes, part.output_counts)
                    try:
                        emit(
                            progress,
                            ProgressEvent(
                                task,
                                live.done,
                                n,
                                {
                                    "accuracy": live.curve(),
                                    "firing_rates": live.firing_rates(),
                                    "node": part.node,
                                    "images": [lo, hi],
                                    "seconds": part.seconds,
                                },
                            ),
                        )
                    except Cancelled:
                        cancelled = True
                        break
        finally:
            for ref in pending:  # an error, a cancel or Ctrl-C: nothing keeps running for us
                ray.cancel(ref, force=True)
        rec = Recorder(graph, n, config)
        for lo, _ in slices:  # image order; a cancelled run keeps the finished slices before the first gap
            if lo not in done:
                break
            rec.add_batch(done[lo].correct, done[lo].spikes, done[lo].output_counts)
        result = rec.result(time.perf_counter() - start, simulator, cancelled and rec.done < n)
        result.engine = " | ".join(dict.fromkeys(p.engine for p in sorted(done.values(), key=lambda p: p.lo)))
        return result

    def _slots(self, config) -> int:
        """Tasks the cluster runs at once: its GPUs with ``--device cuda``, else CPUs per task."""
        res = self.ray.cluster_resources()
        if config.device == "cuda":
            return max(1, int(res.get("GPU", 0)))
        return max(1, int(res.get("CPU", 1)) // self.executor.cpus_per_task)


def connect(address: str | None):
    """Join (or start) Ray once per process; returns the ``ray`` module.

    No address and no ``$RAY_ADDRESS``: a new local instance (``address="local"``), not
    ``ray.init()``'s guess from the last cluster started on this machine, which may have stopped
    (Ray then waits on it for minutes).
    """
    ray = import_ray()
    if address is None and not os.environ.get("RAY_ADDRESS"):
        address = "local"
    if not ray.is_initialized():
        try:
            # worker output would tear the progress bars; task errors come back as exceptions
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = "a local instance" if address == "local" else address
            raise SnnBalanceError(f"cannot start or join Ray ({where}): {one_line(exc)}") from None
    return ray


def task_error(task: str, lo: int, hi: int, exc: Exception, retries: int) -> SnnBalanceError:
    """One line naming the run and the slice of a task that failed."""
    cause = getattr(exc, "cause", None)
    if cause is not None and not isinstance(cause, BaseException):
        cause = None
    if cause is None:  # the worker or its node died more often than the retries allow
        what = f"after {retries} retries: {one_line(exc)}"
    elif isinstance(cause, SnnBalanceError):
        what = str(cause).strip().splitlines()[0]  # already a message for the user
    else:
        what = one_line(cause)
    return SnnBalanceError(f"{task}: images {lo}-{hi - 1} failed on the Ray cluster: {what}")


__all__ = [
    "EXECUTORS",
    "Executor",
    "RaySimulator",
    "SliceResult",
    "import_ray",
    "plan_slices",
    "simulate_fn",
    "simulate_slice",
    "task_error",
]
