"""The CPU engine of the ``spikingjelly`` back end: an event-driven IF network in a small C kernel.

Why C: on a CPU the work that matters is proportional to spikes, not to synapses. A spike of a
dense layer's input adds one weight row to its targets; a conv or pooling spike adds a kernel
footprint. Torch has no fused "add the rows of the spikes, integrate, fire, reset" operation, and
SpikingJelly's CPU IF neuron is a Python loop over steps, so both spend their time in memory
traffic between many small kernels. This kernel keeps, per sample:

* input spikes generated in place from the counter hash of :mod:`.encoding` (bit-identical to it);
* spikes between layers as bitmaps (one bit per neuron and step), for a chunk of ``K`` steps;
* dense layers tiled over their outputs (128 neurons), the membrane potentials of a tile held in
  vector registers across all ``K`` steps, the weight tile read from cache once per spike;
* conv layers reading a spiking layer gathered per output position (a branch-free list of the
  window's spikes, summed in registers); conv on the input and pooling scattered spike by spike
  into one step's input buffer; channels last, padded to 16;
* the IF update (``V += I``; spike when ``V >= threshold``; reset to 0 or subtract; refractory
  counters) fused into the same pass that writes the spike bits.

Arithmetic is float32 as in the NumPy reference; only the order in which one step's synaptic
input is summed differs (spike order here, BLAS blocking there), so rare threshold ties can break
differently. Pooling input (``count / k²``) and a constant current input are bit-identical.

The source (:mod:`.native_kernel`) is compiled once per machine with the system C compiler (``$CC``,
else cc, gcc or clang) into the user's cache folder, with ``-march=native``, else ``-mcpu=native``,
else no arch flag (:data:`ARCH_LADDER`). When no build works, :func:`load` returns None, the torch
path is used, and :func:`status` keeps the reason, which ``snnbalance plugins`` and the run's
``engine`` record show.

The worker threads poll a cancel flag once per chunk of ``K`` steps, so Ctrl-C stops a batch within
a chunk (:func:`run_workers`).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .native_kernel import SOURCE


class Layer(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int64) for name in (
        "kind", "n_in", "n_out", "n_pad", "src_nw", "ih", "iw", "ic", "oh", "ow", "oc",
        "kh", "kw", "sh", "sw", "ph", "pw", "tot_off")] + [
        (name, ctypes.c_void_p) for name in ("w", "bias", "table", "spos", "sch", "fp_off", "fp_out", "fp_w", "gp_off", "gp_s", "gp_w")] + [
        ("thr", ctypes.c_double), ("pool_mul", ctypes.c_double)]


class Net(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int64) for name in (
        "n_layers", "steps", "K", "reset_zero", "refr_steps", "current", "n_classes",
        "n_samples", "n_input")] + [
        (name, ctypes.c_void_p) for name in (
            "layers", "act_off", "keys", "thr", "act_idx", "i_const", "labels", "out_counts", "next", "cancel")]


#: Spiking layers the kernel takes (its per-layer buffers are fixed arrays of 64).
MAX_LAYERS = 62

#: Flags every build uses: ``-ffp-contract=off -fno-fast-math`` keep float32 sums as written (no
#: fused multiply-adds, no reassociation), which is what makes the results equal the reference's.
BASE_FLAGS = ("-O3", "-ffp-contract=off", "-fno-fast-math", "-fPIC", "-shared")
#: Tried in order until one builds: gcc and x86 clang take -march=native, clang on ARM rejects it
#: and takes -mcpu=native; the last rung has no CPU-specific flag (portable and slower vectors).
ARCH_LADDER = (("-march=native",), ("-mcpu=native",), ())
#: The first rung's flags (kept for callers that print them).
FLAGS = (*BASE_FLAGS[:1], *ARCH_LADDER[0], *BASE_FLAGS[1:])


@dataclass(frozen=True)
class BuildStatus:
    """Whether the kernel is usable here, and why not.

    Attributes:
        dll: the loaded kernel, or None.
        compiler: the compiler command (empty when none was found).
        flags: the flags the loaded kernel was built with (empty when none was).
        reason: why there is no kernel: one line, empty when ``dll`` is set.
        attempts: (flags, first error line) of each failed build.
    """

    dll: ctypes.CDLL | None
    compiler: str = ""
    flags: tuple[str, ...] = ()
    reason: str = ""
    attempts: tuple[tuple[tuple[str, ...], str], ...] = ()

    def describe(self) -> str:
        """One line for ``snnbalance plugins``."""
        if self.dll is not None:
            return f"native engine: built with {self.compiler} {' '.join(self.flags)}"
        return f"native engine unavailable ({self.reason}); the torch engine runs on the CPU instead"


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "snnbalance" / "native"


def _cpu_key() -> str:
    """What -march=native depends on: the CPU model and its feature flags."""
    try:
        text = Path("/proc/cpuinfo").read_text()
        lines = [ln for ln in text.splitlines() if ln.startswith(("model name", "flags", "Features"))]
        return "\n".join(sorted(set(lines)))
    except OSError:
        return platform.processor() or platform.machine()


def _compiler() -> list[str]:
    """The C compiler command: ``$CC`` (may carry arguments, e.g. ``ccache gcc``), else cc, gcc, clang."""
    cc = os.environ.get("CC", "").strip()
    if cc:
        return shlex.split(cc)
    found = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    return [found] if found else []


def _first_error(text: str) -> str:
    """The line of a compiler's output that says what went wrong (the first ``error`` line)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for word in ("error:", "error"):
        for ln in lines:
            if word in ln.lower():
                return ln[:300]
    return lines[0][:300] if lines else ""


def _build(cc: list[str], flags: tuple[str, ...], lib: Path) -> str:
    """Compile the kernel into ``lib``; the first error line, or "" on success."""
    try:
        lib.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=lib.parent) as tmp:
            src = Path(tmp) / "snn.c"
            src.write_text(SOURCE)
            out = Path(tmp) / "snn.so"
            proc = subprocess.run([*cc, *flags, str(src), "-o", str(out)], capture_output=True, text=True,
                                  errors="replace", timeout=120)
            if proc.returncode != 0 or not out.is_file():
                return _first_error(proc.stderr + proc.stdout) or f"exit code {proc.returncode}"
            os.replace(out, lib)  # atomic: concurrent builders each install a complete file
    except subprocess.TimeoutExpired:
        return "the compiler took more than 120 s"
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    return ""


def _open(lib: Path) -> ctypes.CDLL:
    dll = ctypes.CDLL(str(lib))
    dll.snn_run.restype = ctypes.c_int64
    dll.snn_run.argtypes = [ctypes.POINTER(Net), ctypes.c_void_p, ctypes.c_void_p]
    return dll


@lru_cache(maxsize=1)
def status() -> BuildStatus:
    """Compile (once per machine and flag set, cached) and load the kernel, or say why not.

    The arch flags of :data:`ARCH_LADDER` are tried in order (a library already in the cache is
    used without compiling: the earliest rung's); every build keeps :data:`BASE_FLAGS`.
    ``SNNBALANCE_NATIVE=0`` disables the engine (the torch path is used instead).
    """
    if os.environ.get("SNNBALANCE_NATIVE", "1") == "0":
        return BuildStatus(None, reason="disabled by SNNBALANCE_NATIVE=0")
    if sys.platform == "win32":
        return BuildStatus(None, reason="not built on Windows")
    cc = _compiler()
    if not cc:
        return BuildStatus(None, reason="no C compiler found (install gcc or clang, or set CC)")
    rungs = []
    for arch in ARCH_LADDER:
        flags = (*BASE_FLAGS[:1], *arch, *BASE_FLAGS[1:])
        key = hashlib.sha256("\0".join([SOURCE, *cc, *flags, _cpu_key()]).encode()).hexdigest()[:16]
        rungs.append((flags, _cache_dir() / f"snn_{key}.so"))
    cached = [(flags, lib) for flags, lib in rungs if lib.is_file()]
    attempts, load_error = [], ""
    for flags, lib in cached + [r for r in rungs if r not in cached]:
        if not lib.is_file():
            error = _build(cc, flags, lib)
            if error:
                attempts.append((flags, error))
                continue
        try:
            return BuildStatus(_open(lib), " ".join(cc), flags, attempts=tuple(attempts))
        except (OSError, AttributeError) as exc:
            load_error = f"{lib.name} did not load: {exc}"
            attempts.append((flags, load_error))
    why = load_error or attempts[-1][1]
    return BuildStatus(None, " ".join(cc), reason=f"native build failed: {why}", attempts=tuple(attempts))


def load() -> ctypes.CDLL | None:
    """The kernel, or None when it cannot be built here (:func:`status` says why)."""
    return status().dll


# -- from a Graph and a batch to the kernel's structures ----------------------------------------

class Layout:
    """Where each neuron of one source lives in the kernel: channels last, channels padded to 16
    for spiking layers (the padding neurons get no input and never fire).

    Attributes:
        size: internal neurons, padding included (a multiple of 16 for spiking layers).
        of_ref: internal index of each neuron in reference (C, H, W) flat order.
        cp: channel stride of a (C, H, W) source (0 for 1-d).
    """

    def __init__(self, shape: tuple[int, ...], pad: bool):
        import numpy as np

        n = int(np.prod(shape))
        if len(shape) == 3:
            c, h, w = shape
            self.cp = _pad16(c) if pad else c
            self.size = h * w * self.cp
            ref = np.arange(n)
            self.of_ref = ((ref % (h * w)) * self.cp + ref // (h * w)).astype(np.int64)
        else:
            self.cp = 0
            self.size = _pad16(n) if pad else n
            self.of_ref = np.arange(n, dtype=np.int64)


def _pad16(n: int) -> int:
    return (n + 15) // 16 * 16


def _neuron_source(graph, node) -> str:
    """The neuron node (or input) whose spikes ``node`` reads, looking through flatten nodes."""
    from ..graph import INPUT

    name = node.inputs[0]
    while name != INPUT and graph.node(name).op == "flatten":
        name = graph.node(name).inputs[0]
    return name


def _footprint(ih, iw, oh, ow, ocp, kernel, stride, padding, kind):
    """Per input position: the output offsets (and weight offsets) of the windows that read it."""
    import numpy as np

    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    off, outs, ws = [0], [], []
    for y in range(ih):
        for x in range(iw):
            for dy in range(kh):
                oyn = y + ph - dy
                if oyn < 0 or oyn % sh or oyn // sh >= oh:
                    continue
                for dx in range(kw):
                    oxn = x + pw - dx
                    if oxn < 0 or oxn % sw or oxn // sw >= ow:
                        continue
                    outs.append((oyn // sh * ow + oxn // sw) * ocp)
                    ws.append((dy * kw + dx) * ocp)
            off.append(len(outs))
    return [np.asarray(a, dtype=np.int32) for a in (off, outs, ws)]


def _gather_table(ih, iw, oh, ow, wstride, kernel, stride, padding):
    """Per output position: the input positions of its window and their weight offsets."""
    import numpy as np

    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    off, pos, ws = [0], [], []
    for oy in range(oh):
        for ox in range(ow):
            for dy in range(kh):
                y = oy * sh - ph + dy
                for dx in range(kw):
                    x = ox * sw - pw + dx
                    if 0 <= y < ih and 0 <= x < iw:
                        pos.append(y * iw + x)
                        ws.append((dy * kw + dx) * wstride)
            off.append(len(pos))
    return [np.asarray(a, dtype=np.int32) for a in (off, pos, ws)]


class Plan:
    """A graph laid out for the kernel once: weights permuted to channels-last and padded."""

    def __init__(self, graph):
        import numpy as np

        from .. import ops
        from ..errors import UnsupportedError
        from ..graph import INPUT

        self.graph = graph
        self.shapes = shapes = graph.shapes()
        self.neurons = graph.neuron_nodes()
        if len(self.neurons) > MAX_LAYERS:
            raise UnsupportedError(f"the native engine simulates at most {MAX_LAYERS} spiking layers; this "
                                   f"network has {len(self.neurons)} (use engine=torch)")
        if len(shapes[graph.output.name]) != 1:
            raise UnsupportedError("the spikingjelly back end needs a 1-d output layer (dense)")
        self.layout = {INPUT: Layout(shapes[INPUT], pad=False)}
        self.layout.update({n.name: Layout(shapes[n.name], pad=True) for n in self.neurons})
        self.n_input = self.layout[INPUT].size
        self.layers = (Layer * len(self.neurons))()
        self._keep = []  # arrays the structures point into
        tot_off = self.n_input
        self.tot_off = {INPUT: 0}
        for k, n in enumerate(self.neurons):
            src = _neuron_source(graph, n)
            sl, ol = self.layout[src], self.layout[n.name]
            s_shape, o_shape = shapes[src], shapes[n.name]
            n_out = int(np.prod(o_shape))
            ly = self.layers[k]
            ly.n_in, ly.n_out, ly.n_pad = sl.size, n_out, ol.size
            ly.src_nw = (sl.size + 63) // 64
            ly.thr = float(np.float32(n.threshold))
            if not ly.thr > 0:
                raise UnsupportedError(f"layer {n.label()} has threshold {n.threshold}; it must be positive")
            ly.tot_off = self.tot_off[n.name] = tot_off
            tot_off += ol.size
            bias = None
            if n.op == "dense":
                ly.kind = 0
                wt = np.zeros((sl.size, ol.size), dtype=np.float32)
                wt[sl.of_ref, :n_out] = n.weight.astype(np.float32).T
                ly.w = self._ptr(wt)
                bias = n.bias
            else:
                ic, ih, iw = s_shape
                oc, oh, ow = o_shape
                ly.ih, ly.iw, ly.ic, ly.oh, ly.ow, ly.oc = ih, iw, sl.cp, oh, ow, ol.cp
                ly.sh, ly.sw = n.stride
                ly.ph, ly.pw = n.padding
                i = np.arange(sl.size)
                ly.spos, ly.sch = self._ptr((i // sl.cp).astype(np.int32)), self._ptr((i % sl.cp).astype(np.int32))
                kernel = tuple(n.weight.shape[2:]) if n.op == "conv2d" else tuple(n.kernel)
                ly.kh, ly.kw = kernel
                fp_off, fp_out, fp_w = _footprint(ih, iw, oh, ow, ol.cp, kernel, n.stride, n.padding, n.op)
                ly.fp_off, ly.fp_out, ly.fp_w = self._ptr(fp_off), self._ptr(fp_out), self._ptr(fp_w)
                if n.op == "conv2d" and src != INPUT and sl.cp % 16 == 0:
                    ly.kind = 3  # gather: weights (kh, kw, cp, ocp)
                    w = np.zeros((*kernel, sl.cp, ol.cp), dtype=np.float32)
                    w[:, :, :ic, :oc] = n.weight.astype(np.float32).transpose(2, 3, 1, 0)
                    ly.w = self._ptr(w)
                    gp = _gather_table(ih, iw, oh, ow, sl.cp * ol.cp, kernel, n.stride, n.padding)
                    ly.gp_off, ly.gp_s, ly.gp_w = (self._ptr(a) for a in gp)
                    bias = None if n.bias is None else np.tile(np.pad(n.bias, (0, ol.cp - oc)), oh * ow)
                elif n.op == "conv2d":
                    ly.kind = 1
                    w = np.zeros((sl.cp, *kernel, ol.cp), dtype=np.float32)
                    w[:ic, :, :, :oc] = n.weight.astype(np.float32).transpose(1, 2, 3, 0)
                    ly.w = self._ptr(w)
                    bias = None if n.bias is None else np.tile(np.pad(n.bias, (0, ol.cp - oc)), oh * ow)
                else:
                    ly.kind = 2
                    kk = ly.kh * ly.kw
                    table = ops.avgpool_table(kernel)  # the reference's float32 mean of c ones
                    ly.table = self._ptr(table)
                    mul = np.float32(1.0) / np.float32(kk)
                    if np.array_equal(np.arange(kk + 1, dtype=np.float32) * mul, table):
                        ly.pool_mul = float(mul)  # exact, and vectorizes
            if bias is not None:
                b = np.zeros(ol.size, dtype=np.float32)
                if n.op == "dense":
                    b[:n_out] = bias
                else:
                    b[:] = bias
                ly.bias = self._ptr(b)
        self.n_totals = tot_off

    def _ptr(self, a) -> int:
        self._keep.append(a)
        return a.ctypes.data

    def totals(self, flat) -> dict:
        """Per-layer totals in reference (C, H, W) shape from the kernel's flat internal array."""
        from ..graph import INPUT

        out = {}
        for name in [INPUT] + [n.name for n in self.neurons]:
            lay, off = self.layout[name], self.tot_off[name]
            out[name] = flat[off + lay.of_ref].reshape(self.shapes[name])
        return out


def step_batch(dll, plan: Plan, x, index, y, cfg, threads: int, chunk: int):
    """One batch through the kernel; same return value as :func:`numpy_ref.step_batch`.

    Raises:
        UnsupportedError: more than :data:`MAX_LAYERS` spiking layers.
        MemoryError: the kernel could not allocate its buffers.
        KeyboardInterrupt: Ctrl-C (the worker threads have stopped when it is raised).
    """
    import numpy as np

    from ..errors import UnsupportedError
    from ..graph import INPUT
    from . import encoding

    b = len(x)
    graph, first = plan.graph, plan.neurons[0]
    net = Net()
    keep = []

    def ptr(a):
        a = np.ascontiguousarray(a)
        keep.append(a)
        return a.ctypes.data

    net.n_layers, net.steps, net.K = len(plan.neurons), cfg.steps, max(1, min(chunk, cfg.steps))
    net.reset_zero, net.refr_steps = int(cfg.reset == "zero"), cfg.refractory_steps
    net.n_classes, net.n_samples, net.n_input = plan.shapes[graph.output.name][0], b, plan.n_input
    net.layers = ctypes.cast(plan.layers, ctypes.c_void_p)
    xr = x.reshape(b, -1)
    if cfg.encoding == "poisson":
        thr = encoding.thresholds(encoding.spike_probability(xr, cfg.max_rate, cfg.dt))
        active = thr > 0
        keys = encoding.pixel_keys(cfg.seed, index, xr.shape[1])
        inv = plan.layout[INPUT].of_ref.astype(np.int32)
        cols = np.nonzero(active)[1]
        net.act_off = ptr(np.concatenate([[0], np.cumsum(active.sum(axis=1))]).astype(np.int64))
        net.keys, net.thr = ptr(keys[active].astype(np.uint32)), ptr(thr[active].astype(np.int64))
        net.act_idx = ptr(inv[cols])
    else:
        net.current = 1
        _, cur = encoding.first_layer_current(graph, x.reshape(b, *plan.shapes[INPUT]), cfg.max_rate, cfg.dt)
        ic = np.zeros((b, plan.layers[0].n_pad), dtype=np.float32)
        ic[:, plan.layout[first.name].of_ref] = cur.reshape(b, -1)
        net.i_const = ptr(ic)
    net.labels = ptr(np.asarray(y, dtype=np.int64))
    counts = np.zeros((b, net.n_classes), dtype=np.int32)
    net.out_counts = counts.ctypes.data
    nxt = np.zeros(1, dtype=np.int64)
    net.next = nxt.ctypes.data
    cancel = np.zeros(1, dtype=np.int64)
    net.cancel = cancel.ctypes.data
    threads = max(1, min(threads, b))
    totals = [np.zeros(plan.n_totals, dtype=np.int64) for _ in range(threads)]
    correct = [np.zeros(cfg.steps, dtype=np.int64) for _ in range(threads)]
    codes = run_workers(
        lambda i: dll.snn_run(ctypes.byref(net), totals[i].ctypes.data, correct[i].ctypes.data), threads, cancel)
    if -2 in codes:
        raise UnsupportedError(f"the native engine simulates at most {MAX_LAYERS} spiking layers")
    if -1 in codes:
        raise MemoryError("the native kernel could not allocate its buffers")
    if any(c != 0 for c in codes):  # -3: stopped through `cancel`, which only run_workers sets
        raise KeyboardInterrupt
    return np.sum(correct, axis=0), plan.totals(np.sum(totals, axis=0)), counts


def run_workers(work, threads: int, cancel) -> list:
    """``[work(0), ..., work(threads - 1)]``, each in its own thread, stoppable by Ctrl-C.

    ``work`` runs C code that polls ``cancel[0]`` (an int64 array) between chunks of steps. The
    calling thread only waits, so a Ctrl-C is seen at once: it sets ``cancel[0]``, the workers
    return within one chunk, and only then does the interrupt go on (as the handler that was
    installed before says: a KeyboardInterrupt by default). The interpreter is never left to shut
    down while C code still runs, whatever else happens meanwhile, and more Ctrl-Cs during the
    short wait change nothing.
    """
    import signal
    import threading

    codes: list = [None] * threads

    def run(i):
        codes[i] = work(i)

    workers = [threading.Thread(target=run, args=(i,), name=f"snnbalance-native-{i}") for i in range(threads)]
    hit: list = []
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.getsignal(signal.SIGINT)
        if callable(previous):  # Python's handler, or the application's: defer it until joined
            signal.signal(signal.SIGINT, lambda signum, frame: (hit.append((signum, frame)), _set(cancel)))
        else:
            previous = None  # ignored, or the OS default (which ends the process): leave it be
    try:
        for w in workers:
            w.start()
        for w in workers:
            while w.is_alive():
                w.join(0.1)
    finally:
        _set(cancel)  # a no-op for finished workers; stops the rest if we leave early
        for w in workers:
            while w.is_alive():
                try:
                    w.join(0.1)
                except BaseException:  # nothing may leave while C code runs  # noqa: BLE001
                    pass
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if hit:
        previous(*hit[0])
        raise KeyboardInterrupt  # the application's handler returned: the batch is incomplete anyway
    return codes


def _set(cancel) -> None:
    cancel[0] = 1
