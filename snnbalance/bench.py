"""The headless benchmark behind ``snnbalance bench``: how fast each way of simulating the paper's
networks runs on this machine, measured in one run.

For each network (the paper's MLP 784-1200-1200-10 and CNN 12c5-2s-64c5-2s-10, data-based
normalization, Poisson input at 1000 Hz) it measures image-steps per second of:

* ``numpy``: the NumPy reference (on a capped subset: it is slow, and its rate does not depend
  on how many samples or steps are simulated);
* ``spikingjelly``: this project's back end (:mod:`snnbalance.simulate.spikingjelly`), full run;
* ``sj_flow``: SpikingJelly's own ann2snn flow on the same trained network: ``Converter`` with
  ``RateCodingRecipe(mode="max")`` and IF neurons reset to 0, driven by SpikingJelly's
  ``PoissonEncoder`` and stepped as its documentation does, single-step (a Python loop over
  steps, as in its ``cnn_mnist`` example) and multi-step (``set_step_mode(net, "m")`` on chunks
  of steps); the faster of the two is the reference point;
* ``ceiling``: the dense fp32 matrix-product rate of this machine (a measured SGEMM) divided by
  the network's multiply-accumulates per image-step.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import resource
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from .errors import SnnBalanceError
from .graph import Graph
from .progress import Progress, ProgressEvent, emit

MAX_RATE = 1000.0
NUMPY_CAP = (100, 100)  # samples, steps of the NumPy reference measurement (its rate is steady)
CALIBRATION = 1000  # training images for data-based normalization (and SpikingJelly's recipe)


# -- machine and memory -------------------------------------------------------------------------------

def machine(device: str) -> dict[str, Any]:
    """What the numbers were measured on."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info = {"cpu": cpu, "cores": cores, "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "platform": platform.platform(), "device": device,
            "device_name": cpu}
    try:
        from importlib.metadata import version

        import spikingjelly  # noqa: F401

        info["spikingjelly"] = version("spikingjelly")
    except Exception:  # noqa: BLE001 - only for the report
        info["spikingjelly"] = "?"
    if device == "cuda":
        info["device_name"] = torch.cuda.get_device_name(0)
    return info


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


class PeakMemory:
    """Peak memory a block of code added: resident set size sampled every 10 ms on CPU (ru_maxrss
    delta where /proc is missing), ``torch.cuda.max_memory_allocated`` on CUDA."""

    def __init__(self, device: str):
        self.device = device
        self.peak_mb = 0.0
        self.cpu_s = 0.0  # process CPU time (user + system) spent inside the block

    @staticmethod
    def _cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    @staticmethod
    def _rss() -> int | None:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError):
            return None

    def __enter__(self):
        self._cpu0 = self._cpu()
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated()
            return self
        self._base_rss = self._rss()
        self._base_max = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self._peak = self._base_rss or 0
        self._stop = threading.Event()
        if self._base_rss is not None:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.01):
            self._peak = max(self._peak, self._rss() or 0)

    def __exit__(self, *exc):
        self.cpu_s = self._cpu() - self._cpu0
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()
            self.peak_mb = (torch.cuda.max_memory_allocated() - self._base) / 2 ** 20
            return False
        self._stop.set()
        if self._base_rss is not None:
            self._thread.join()
            self._peak = max(self._peak, self._rss() or 0)
            self.peak_mb = (self._peak - self._base_rss) / 2 ** 20
        else:  # ru_maxrss is in KiB on Linux
            self.peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - self._base_max) / 1024
        return False


# -- the networks -------------------------------------------------------------------------------------

def _cache() -> Path:
    from .paths import cache_dir

    return cache_dir("bench")


def _data(split: str, data_dir: str | os.PathLike | None = None):
    """MNIST from the one data-root rule (``--data-dir``, ``$SNNBALANCE_DATA``, the user cache);
    None when it is not there."""
    from .data import DataError, load_dataset

    try:
        return load_dataset("mnist", split, data_dir=data_dir)
    except DataError:
        return None


def trained_model(arch: str, path: str | os.PathLike | None, progress: Progress | None = None,
                  data_dir: str | os.PathLike | None = None):
    """The torch model of ``arch`` and a sentence on where it came from.

    Order: the given path; for the CNN the embedded ``snnbalance/assets/mnist_cnn.pt``; a cached
    quick training; else train one epoch now (seeded recipe of :mod:`snnbalance.train`) and cache it.
    """
    import torch

    from .models import ARCHS, default_model_path

    model = ARCHS[arch]()
    if path is not None:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return model.eval(), f"loaded from {path}"
    if arch == "cnn" and default_model_path().is_file():
        model.load_state_dict(torch.load(default_model_path(), map_location="cpu", weights_only=True))
        return model.eval(), "embedded snnbalance/assets/mnist_cnn.pt"
    cached = _cache() / f"{arch}_1epoch_seed0.pt"
    how = "trained here for 1 epoch on MNIST (snnbalance.train recipe, seed 0, Adam), cached in " + str(cached)
    if not cached.is_file():
        from .train import train

        emit(progress, ProgressEvent(f"train {arch} (1 epoch)", 0, 1))
        result = train(arch, epochs=1, seed=0, data_dir=data_dir, device="cpu")
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp")
        torch.save(result.model.state_dict(), tmp)
        os.replace(tmp, cached)
        emit(progress, ProgressEvent(f"train {arch} (1 epoch)", 1, 1))
    model.load_state_dict(torch.load(cached, map_location="cpu", weights_only=True))
    return model.eval(), how


def to_graph(model) -> Graph:
    """The importer's graph of a paper model (28x28 MNIST input)."""
    from .importers import load_model

    return load_model(model, input_shape=(1, 28, 28)).graph


# -- the measurements ---------------------------------------------------------------------------------

def _rate(samples: int, steps: int, seconds: float) -> float:
    return samples * steps / seconds if seconds > 0 else float("nan")


def measure_ours(graph: Graph, x, y, device: str, steps: int, options: dict | None = None) -> dict:
    """Our fast engine on the whole run; with the native engine, each layer's share of its time."""
    from .simulate import SimConfig
    from .simulate.core import run_batches
    from .simulate.engines import engine_used, make_stepper

    cfg = SimConfig(duration=float(steps), max_rate=MAX_RATE, device=device,
                    batch_size=min(len(x), 10000 if device == "cuda" else 1000), options=dict(options or {}))
    profile: dict[str, float] = {}
    stepper, engine = make_stepper(graph, cfg, profile=profile)  # also builds the native kernel first
    if device == "cuda":
        warm = dataclasses.replace(cfg, duration=min(steps, 20.0))
        n = min(256, len(x))
        stepper(graph, x[:n], np.arange(n), y[:n], warm)  # also runs a reduced precision's probe
        engine = engine_used(stepper, engine)
    with PeakMemory(device) as mem:
        t = time.perf_counter()
        res = run_batches(graph, x, y, cfg, stepper, "spikingjelly")
        wall = time.perf_counter() - t
    return {"image_steps_per_s": _rate(len(x), steps, wall), "seconds": wall, "samples": len(x),
            "steps": steps, "accuracy": res.final_accuracy, "peak_mb": mem.peak_mb, "engine": engine,
            "cpu_seconds": mem.cpu_s,
            "firing_rates_hz": res.firing_rates,
            "layer_share": {k: v / sum(profile.values()) for k, v in profile.items()} if profile else {}}


def measure_numpy(graph: Graph, x, y, steps: int) -> dict:
    from .simulate import SimConfig, simulate

    n, k = min(len(x), NUMPY_CAP[0]), min(steps, NUMPY_CAP[1])
    cfg = SimConfig(duration=float(k), max_rate=MAX_RATE, batch_size=n)
    with PeakMemory("cpu") as mem:
        t = time.perf_counter()
        res = simulate(graph, x[:n], y[:n], cfg, simulator="numpy")
        wall = time.perf_counter() - t
    return {"image_steps_per_s": _rate(n, k, wall), "seconds": wall, "samples": n, "steps": k,
            "accuracy": res.final_accuracy, "peak_mb": mem.peak_mb, "cpu_seconds": mem.cpu_s}


def sj_convert(model, x_cal, device: str):
    """SpikingJelly's ann2snn: Converter + RateCodingRecipe(mode="max"), IF neurons reset to 0."""
    import copy

    import torch
    from spikingjelly.activation_based import ann2snn, neuron

    loader = [torch.from_numpy(x_cal[i: i + 250]) for i in range(0, len(x_cal), 250)]
    recipe = ann2snn.RateCodingRecipe(dataloader=loader, mode="max",
                                      neuron_factory=lambda scale: neuron.IFNode(v_threshold=1.0, v_reset=0.0))
    import logging

    logging.getLogger("spikingjelly").setLevel(logging.WARNING)
    saved = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"  # its calibration's progress bar would cut through ours
    try:
        return ann2snn.Converter(recipe=recipe, device=device).convert(copy.deepcopy(model).eval())
    finally:
        if saved is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = saved


def measure_sj_flow(snn, x, y, device: str, steps: int, mode: str, batch: int) -> dict:
    """SpikingJelly's converted network, stepped single-step (``s``) or multi-step (``m``)."""
    import torch
    from spikingjelly.activation_based import encoding, functional

    dev = torch.device(device)
    per_sample = max(int(np.prod(p.shape[1:])) for p in _activation_shapes(snn, x[:1], dev))
    functional.set_step_mode(snn, mode)
    enc = encoding.PoissonEncoder()
    chunk = max(1, min(steps, (512 * 2 ** 20) // (4 * batch * per_sample * 3)))
    correct = 0
    with torch.no_grad(), PeakMemory(device) as mem:
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        for lo in range(0, len(x), batch):
            img = torch.from_numpy(x[lo: lo + batch]).to(dev)
            label = torch.from_numpy(y[lo: lo + batch]).to(dev)
            functional.reset_net(snn)
            out = None
            if mode == "s":
                for _ in range(steps):
                    step = snn(enc(img))
                    out = step if out is None else out + step
                    (out.argmax(dim=1) == label).sum()  # per-step accuracy, as the docs' val()
            else:
                for t0 in range(0, steps, chunk):
                    k = min(chunk, steps - t0)
                    seq = snn(enc(img.unsqueeze(0).expand(k, *img.shape)))
                    run = seq.cumsum(0) + (0 if out is None else out)
                    (run.argmax(dim=2) == label).sum(dim=1)
                    out = run[-1]
            correct += int((out.argmax(dim=1) == label).sum())
        if device == "cuda":
            torch.cuda.synchronize()
        wall = time.perf_counter() - t
    functional.set_step_mode(snn, "s")
    return {"image_steps_per_s": _rate(len(x), steps, wall), "seconds": wall, "samples": len(x),
            "steps": steps, "accuracy": correct / len(x), "peak_mb": mem.peak_mb, "mode": mode,
            "cpu_seconds": mem.cpu_s,
            "chunk": chunk if mode == "m" else 1}


def _activation_shapes(snn, x1, dev):
    import torch

    shapes = []
    hooks = [m.register_forward_hook(lambda m, i, o: shapes.append(o)) for m in snn.modules()
             if not list(m.children())]
    try:
        from spikingjelly.activation_based import functional

        functional.set_step_mode(snn, "s")
        with torch.no_grad():
            snn(torch.from_numpy(x1).to(dev))
        functional.reset_net(snn)
    finally:
        for h in hooks:
            h.remove()
    return [s for s in shapes if isinstance(s, torch.Tensor)]


def matmul_rate(device: str, seconds: float = 2.0) -> dict:
    """Measured dense fp32 SGEMM rate (multiply-accumulates per second), TF32 off."""
    import torch

    from .simulate.torch_kernels import tf32_scope

    dev = torch.device(device)
    m, k, n = (16384, 4096, 4096) if device == "cuda" else (4096, 1024, 1024)
    a = torch.rand(m, k, device=dev)
    b = torch.rand(k, n, device=dev)
    with tf32_scope(False):  # the caller's setting comes back afterwards
        a @ b  # warm up
        reps, t = 0, time.perf_counter()
        while True:
            a @ b
            reps += 1
            if device == "cuda":
                torch.cuda.synchronize()
            if time.perf_counter() - t >= seconds:
                break
        wall = time.perf_counter() - t
    return {"macs_per_s": reps * m * k * n / wall, "shape": [m, k, n]}


# -- the whole run ------------------------------------------------------------------------------------

@dataclasses.dataclass
class BenchNet:
    """One network to measure: the ANN as a graph and as a torch module (for SpikingJelly's flow),
    with its test and calibration images.

    Attributes:
        name: the row's title.
        graph: the imported (unbalanced) network.
        module: a torch module computing the same ANN (SpikingJelly's converter reads it).
        x, y: test images and labels (at least the benchmark's B of them).
        x_cal: calibration images (data-based normalization and SpikingJelly's recipe).
        how: where the network and the data came from, for the report.
    """

    name: str
    graph: Graph
    module: Any
    x: np.ndarray
    y: np.ndarray
    x_cal: np.ndarray
    how: str


def paper_networks(models: dict[str, Any], calibration: int, data_dir, progress) -> list[BenchNet]:
    """The paper's MLP and CNN on MNIST (the embedded slices when MNIST is not on disk)."""
    import torch

    from .data import calibration_slice

    test, train = _data("test", data_dir), _data("train", data_dir)
    if test is None or train is None:
        from .data import load_default_test_slice, load_default_train_slice

        test, train = load_default_test_slice(), load_default_train_slice()
    x_cal = calibration_slice(train[0], min(calibration, len(train[0])), seed=0)
    nets = []
    for name, src in models.items():
        if isinstance(src, torch.nn.Module):
            model, how = src.eval(), "given module"
        else:
            model, how = trained_model(name, src, progress, data_dir)
        nets.append(BenchNet(name, to_graph(model), model, test[0], test[1], x_cal, how))
    return nets


def model_network(job, samples: int, calibration: int) -> BenchNet:
    """Any model file, read as ``snnbalance convert`` reads it (``job`` is its
    :class:`~snnbalance.pipeline.ConvertConfig`). ``job.dataset == "random"`` draws seeded uniform
    images of the model's input shape: speed only, the accuracy means nothing."""
    from .graph_torch import to_torch
    from .pipeline import fit_inputs, load_data, load_network

    random = job.dataset == "random"
    if random:
        job = dataclasses.replace(job, dataset="mnist")
    job = dataclasses.replace(job, samples=samples, calibration_samples=calibration)
    job.validate()
    imported, name = load_network(job)
    graph = imported.graph
    if random:
        rng = np.random.default_rng(0)
        draw = lambda n: (rng.integers(0, 256, (n, *graph.input_shape)) / 255).astype(np.float32)  # noqa: E731
        x, y, x_cal, how = draw(samples), np.zeros(samples, np.int64), draw(calibration), "random images"
    else:
        x, y, x_cal, _ = load_data(job, True)
        x = fit_inputs(graph, x, job.dataset)
        x_cal = x_cal.reshape(len(x_cal), *graph.input_shape)
        how = f"{job.dataset} images"
    return BenchNet(Path(name).name, graph, to_torch(graph), x, y, x_cal, f"{name} ({how})")


def run_bench(device: str = "cpu", samples: int = 1000, duration: float = 1000,
              models: dict[str, Any] | None = None, progress: Progress | None = None,
              options: dict | None = None, methods: tuple[str, ...] = ("numpy", "spikingjelly", "sj_flow"),
              sj_steps: int | None = 100, calibration: int = CALIBRATION, gemm_seconds: float = 2.0,
              data_dir: str | os.PathLike | None = None, networks: list[BenchNet] | None = None) -> dict:
    """Measure every method on every network; return plain numbers (JSON-ready).

    Args:
        device: ``cpu`` or ``cuda``.
        samples: test images B.
        duration: simulated ms T (dt = 1 ms, so T steps).
        models: ``{"mlp": path-or-None, "cnn": path-or-None}``; a value may also be a torch
            module. Missing keys: both networks with their default models. Ignored when
            ``networks`` is given.
        progress: receives a ProgressEvent per finished measurement.
        options: spikingjelly simulator options.
        methods: which measurements to make (the ceiling is always measured).
        sj_steps: steps of SpikingJelly's flow (all ``samples``, at most this many steps; None or
            0: all T). Its cost per step is constant, so the rate needs no more; at its speed on
            a small CPU the full T would take the better part of an hour.
        calibration: training images for data-based normalization and SpikingJelly's recipe.
        gemm_seconds: how long to time the SGEMM of the ceiling.
        data_dir: dataset root (else ``$SNNBALANCE_DATA``, else the user cache); without MNIST
            there, the embedded 1,000-image slices are used.
        networks: the networks to measure (e.g. :func:`model_network`); default: the paper's two.
    """
    import torch

    from .normalize import normalize
    from .records import Calibration

    if device == "cuda" and not torch.cuda.is_available():
        raise SnnBalanceError("CUDA is not available on this machine; use --device cpu")
    if samples < 1 or duration < 1:
        raise SnnBalanceError("need at least 1 sample and 1 ms")
    steps = int(round(duration))
    if networks is None:
        networks = paper_networks({"mlp": None, "cnn": None} if models is None else models, calibration,
                                  data_dir, progress)
    for net in networks:
        if samples > len(net.x):
            raise SnnBalanceError(f"only {len(net.x)} test images are available for {net.name}, asked for {samples}")
    out: dict[str, Any] = {"machine": machine(device), "samples": samples, "steps": steps, "dt_ms": 1.0,
                           "max_rate_hz": MAX_RATE, "load_before": load_average(), "models": {}}
    gemm = matmul_rate(device, gemm_seconds)
    out["matmul"] = gemm
    total = len(networks) * len(methods)
    done = 0
    for net in networks:
        x, y = net.x[:samples], net.y[:samples]
        balanced = normalize(net.graph, "data-based", calibration=Calibration(net.x_cal)).graph
        macs = net.graph.total_macs()
        row: dict[str, Any] = {"model": net.how, "macs_per_image_step": macs,
                               "ceiling": {"image_steps_per_s": gemm["macs_per_s"] / macs}}
        for method in methods:
            emit(progress, ProgressEvent(f"{net.name}: {method}", done, total))
            if method == "numpy":
                row["numpy"] = measure_numpy(balanced, x, y, steps)
            elif method == "spikingjelly":
                row["spikingjelly"] = measure_ours(balanced, x, y, device, steps, options)
            elif method == "sj_flow":
                try:
                    snn = sj_convert(net.module, net.x_cal, device)
                except Exception as exc:  # noqa: BLE001 - its converter's limits, reported in the row
                    row["sj_flow_error"] = f"SpikingJelly's converter refused it: {str(exc).splitlines()[0][:200]}"
                    done += 1
                    continue
                batch = min(samples, 10000 if device == "cuda" else 1000)
                k = min(steps, sj_steps) if sj_steps else steps
                if device == "cuda":  # first calls compile SpikingJelly's kernels: not part of its speed
                    for m in ("s", "m"):
                        measure_sj_flow(snn, x[:batch], y[:batch], device, min(k, 5), m, batch)
                flows = [measure_sj_flow(snn, x, y, device, k, m, batch) for m in ("s", "m")]
                row["sj_flow_single"], row["sj_flow_multi"] = flows
                row["sj_flow"] = max(flows, key=lambda f: f["image_steps_per_s"])
            done += 1
        ref = row.get("sj_flow", {}).get("image_steps_per_s")
        for key in ("numpy", "spikingjelly", "sj_flow", "ceiling"):
            if key in row:
                r = row[key]["image_steps_per_s"]
                row[key]["vs_sj_flow"] = r / ref if ref else None
                row[key]["vs_ceiling"] = r / row["ceiling"]["image_steps_per_s"]
        out["models"][net.name] = row
    emit(progress, ProgressEvent("bench", total, total))
    out["load_after"] = load_average()
    return out
