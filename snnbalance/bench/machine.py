"""What the benchmark's numbers were measured on: the machine, its load, the memory and CPU time a
block of code added, and the machine's dense matrix-product rate (the ceiling every rate is
compared with)."""

from __future__ import annotations

import os
import platform
import resource
import threading
import time
from pathlib import Path
from typing import Any, Literal


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
    info = {
        "cpu": cpu,
        "cores": cores,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device,
        "device_name": cpu,
    }
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

    def __enter__(self) -> PeakMemory:
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

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self._peak = max(self._peak, self._rss() or 0)

    def __exit__(self, *exc: object) -> Literal[False]:
        self.cpu_s = self._cpu() - self._cpu0
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()
            self.peak_mb = (torch.cuda.max_memory_allocated() - self._base) / 2**20
            return False
        self._stop.set()
        if self._base_rss is not None:
            self._thread.join()
            self._peak = max(self._peak, self._rss() or 0)
            self.peak_mb = (self._peak - self._base_rss) / 2**20
        else:  # ru_maxrss is in KiB on Linux
            self.peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - self._base_max) / 1024
        return False


def matmul_rate(device: str, seconds: float = 2.0) -> dict[str, Any]:
    """Measured dense fp32 SGEMM rate (multiply-accumulates per second), TF32 off."""
    import torch

    from ..simulate.torch_kernels import tf32_scope

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
