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
* the IF update (``V += I`` from ``v_init * threshold`` at each sample; spike when ``V >= threshold``;
  reset to 0 or subtract; refractory counters) fused into the same pass that writes the spike bits.

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
import enum
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
from typing import Any, Callable


class Layer(ctypes.Structure):
    _fields_ = (
        [
            (name, ctypes.c_int64)
            for name in (
                "kind",
                "n_in",
                "n_out",
                "n_pad",
                "src_nw",
                "ih",
                "iw",
                "ic",
                "oh",
                "ow",
                "oc",
                "kh",
                "kw",
                "sh",
                "sw",
                "ph",
                "pw",
                "tot_off",
            )
        ]
        + [(name, ctypes.c_void_p) for name in ("w", "bias", "table", "spos", "sch", "fp_off", "fp_out", "fp_w", "gp_off", "gp_s", "gp_w")]
        + [("thr", ctypes.c_double), ("pool_mul", ctypes.c_double)]
        + [(name, ctypes.c_int64) for name in ("src", "synaptic", "const_off", "n_terms")]
        + [(name, ctypes.c_void_p) for name in ("term_src", "term_cur", "term_scale", "cat_off", "cat_map")]
        + [("v0", ctypes.c_double)]
    )


class Net(ctypes.Structure):
    _fields_ = (
        [
            (name, ctypes.c_int64)
            for name in ("n_layers", "steps", "K", "reset_zero", "refr_steps", "current", "n_classes", "n_samples", "n_input")
        ]
        + [
            (name, ctypes.c_void_p)
            for name in ("layers", "act_off", "keys", "thr", "act_idx", "i_const", "labels", "out_counts", "next", "cancel")
        ]
        + [("const_stride", ctypes.c_int64), ("membrane", ctypes.c_int64), ("out_pot", ctypes.c_void_p)]
    )


class Kind(enum.IntEnum):
    """The kernel's node kinds: the ``enum`` of native.c, value for value (a test compares them)."""

    DENSE = 0
    CONV = 1
    POOL = 2
    CONV_GATHER = 3
    MAXPOOL = 4
    ADD = 5
    CONCAT = 6


#: Graph kinds the engine runs: every kind of :mod:`snnbalance.graph`, per-position biases and
#: asymmetric padding included.
SUPPORTED_KINDS = ("dense", "conv2d", "avgpool2d", "maxpool2d", "flatten", "add", "concat", "bias-map", "asym-pad")
#: The C source, a real file next to this module (compiled by :func:`status`).
SOURCE = (Path(__file__).with_name("native.c")).read_text(encoding="utf-8")

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
    from ..paths import cache_dir

    return cache_dir("native")


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
            proc = subprocess.run([*cc, *flags, str(src), "-o", str(out)], capture_output=True, text=True, errors="replace", timeout=120)
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
    dll.snn_run.argtypes = [ctypes.POINTER(Net), ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
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


def _source(graph, name: str) -> str:
    """The node (or input) whose output ``name`` is, looking through flatten nodes."""
    from ..graph import INPUT

    while name != INPUT and graph.node(name).op == "flatten":
        name = graph.node(name).inputs[0]
    return name


def _footprint(ih, iw, oh, ow, ocp, kernel, stride, padding):
    """Per input position: the output offsets (and weight offsets) of the windows that read it.
    ``padding`` is (top, left): the bottom and right padding only set ``oh``/``ow``."""
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
    """Per output position: the input positions of its window in row-major window order (padding
    left out) and their weight offsets. ``padding`` is (top, left)."""
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


def unsupported_reason(graph, encoding: str) -> str:
    """Why the kernel cannot run ``graph`` with this input encoding ("" when it can).

    Under ``current`` encoding the input is a real value, not spikes: layers that read it must
    turn it into a current (dense, conv, average pooling), which is computed once per batch.
    """
    from ..graph import INPUT

    if len(graph.shapes()[graph.output.name]) != 1:
        return "the output layer must be a 1-d dense layer"
    if encoding == "current":
        for n in graph.nodes:
            if n.op in ("maxpool2d", "add", "concat") and INPUT in {_source(graph, i) for i in n.inputs}:
                return f"{n.op} {n.label()} reads the input, which is a current, not spikes, with --encoding current"
    return ""


class Plan:
    """A graph laid out for the kernel once: weights permuted to channels-last and padded.

    Every node but flatten becomes one kernel node, in graph order: IF layers (dense, conv,
    average pooling, add), max-pool gates, concatenations, and synaptic nodes (weighted nodes
    without neurons, whose current feeds an add).
    """

    def __init__(self, graph):
        import numpy as np

        from ..errors import UnsupportedError
        from ..graph import INPUT

        self.graph = graph
        self.shapes = shapes = graph.shapes()
        self.neurons = graph.neuron_nodes()
        self.nodes = [n for n in graph.nodes if n.op != "flatten"]
        reason = unsupported_reason(graph, "poisson")
        if reason:
            raise UnsupportedError(f"the native engine cannot run this network: {reason}")
        self.buffer = {INPUT: 0, **{n.name: k + 1 for k, n in enumerate(self.nodes)}}
        self.layout = {INPUT: Layout(shapes[INPUT], pad=False)}
        self.layout.update({n.name: Layout(shapes[n.name], pad=True) for n in self.nodes})
        self.n_input = self.layout[INPUT].size
        self.layers = (Layer * len(self.nodes))()
        self._keep = []  # arrays the structures point into
        self.tot_off = {INPUT: 0}
        tot_off = self.n_input
        neuron_names = {n.name for n in self.neurons}
        for k, n in enumerate(self.nodes):
            ly = self.layers[k]
            ol = self.layout[n.name]
            ly.n_out, ly.n_pad, ly.const_off = int(np.prod(shapes[n.name])), ol.size, -1
            ly.thr = float(np.float32(n.threshold))
            if n.name in neuron_names:
                ly.tot_off = self.tot_off[n.name] = tot_off
                tot_off += ol.size
                if not ly.thr > 0 and n.op != "maxpool2d":
                    raise UnsupportedError(f"layer {n.label()} has threshold {n.threshold}; it must be positive")
            if n.op in ("add", "concat"):
                self._merge(ly, n)
            else:
                self._synapses(ly, n, _source(graph, n.inputs[0]))
                ly.synaptic = int(graph.is_linear(n))
        self.n_totals = tot_off

    def _merge(self, ly, n) -> None:
        import numpy as np

        srcs = [_source(self.graph, i) for i in n.inputs]
        ly.kind = Kind.ADD if n.op == "add" else Kind.CONCAT
        ly.n_terms = len(srcs)
        ly.term_src = self._ptr(np.array([self.buffer[s] for s in srcs], dtype=np.int64))
        if n.op == "add":
            ly.term_cur = self._ptr(
                np.array([int(s != "input" and self.graph.is_linear(self.graph.node(s))) for s in srcs], dtype=np.int64)
            )
            ly.term_scale = self._ptr(np.array(n.input_scales(), dtype=np.float32))
            if n.bias is not None:
                ly.bias = self._ptr(self._bias(n, self.layout[n.name]))
            return
        # concat: the output index of every input neuron (its channel moved by the inputs before it)
        ol, shape = self.layout[n.name], self.shapes[n.name]
        maps, offs, c0 = [], [0], 0
        for s in srcs:
            sl, ss = self.layout[s], self.shapes[s]
            n_ref = int(np.prod(ss))
            if len(ss) == 3:
                ref = np.arange(n_ref)
                out_ref = (ref // (ss[1] * ss[2]) + c0) * (ss[1] * ss[2]) + ref % (ss[1] * ss[2])
            else:
                out_ref = np.arange(n_ref) + c0
            m = np.zeros(sl.size, dtype=np.int32)  # padding neurons never spike: any target will do
            m[sl.of_ref] = ol.of_ref[out_ref]
            maps.append(m)
            offs.append(offs[-1] + sl.size)
            c0 += ss[0]
        ly.cat_off = self._ptr(np.array(offs, dtype=np.int64))
        ly.cat_map = self._ptr(np.concatenate(maps))
        assert c0 == shape[0]

    def _synapses(self, ly, n, src: str) -> None:
        """A dense, conv or pooling node reading ``src``: weights, tables and footprints."""
        import numpy as np

        from .. import ops
        from ..graph import INPUT
        from ..graph_ops import pads4

        sl, ol = self.layout[src], self.layout[n.name]
        ly.src, ly.n_in, ly.src_nw = self.buffer[src], sl.size, (sl.size + 63) // 64
        if n.op == "dense":
            ly.kind = Kind.DENSE
            wt = np.zeros((sl.size, ol.size), dtype=np.float32)
            wt[sl.of_ref, : ly.n_out] = n.weight.astype(np.float32).T
            ly.w = self._ptr(wt)
            if n.bias is not None:
                ly.bias = self._ptr(self._bias(n, ol))
            return
        ic, ih, iw = self.shapes[src]
        oc, oh, ow = self.shapes[n.name]
        ly.ih, ly.iw, ly.ic, ly.oh, ly.ow, ly.oc = ih, iw, sl.cp, oh, ow, ol.cp
        ly.sh, ly.sw = n.stride
        top, left = pads4(n.padding)[:2]
        ly.ph, ly.pw = top, left
        kernel = tuple(n.weight.shape[2:]) if n.op == "conv2d" else tuple(n.kernel)
        ly.kh, ly.kw = kernel
        i = np.arange(sl.size)
        ly.spos, ly.sch = self._ptr((i // sl.cp).astype(np.int32)), self._ptr((i % sl.cp).astype(np.int32))
        if n.op == "maxpool2d":
            ly.kind = Kind.MAXPOOL
            gp = _gather_table(ih, iw, oh, ow, 0, kernel, n.stride, (top, left))
            ly.gp_off, ly.gp_s, ly.gp_w = (self._ptr(a) for a in gp)
            return
        fp_off, fp_out, fp_w = _footprint(ih, iw, oh, ow, ol.cp, kernel, n.stride, (top, left))
        ly.fp_off, ly.fp_out, ly.fp_w = self._ptr(fp_off), self._ptr(fp_out), self._ptr(fp_w)
        if n.op == "conv2d" and src != INPUT and sl.cp % 16 == 0:
            ly.kind = Kind.CONV_GATHER  # weights (kh, kw, cp, ocp); a synaptic one writes its current
            w = np.zeros((*kernel, sl.cp, ol.cp), dtype=np.float32)
            w[:, :, :ic, :oc] = n.weight.astype(np.float32).transpose(2, 3, 1, 0)
            ly.w = self._ptr(w)
            gp = _gather_table(ih, iw, oh, ow, sl.cp * ol.cp, kernel, n.stride, (top, left))
            ly.gp_off, ly.gp_s, ly.gp_w = (self._ptr(a) for a in gp)
        elif n.op == "conv2d":
            ly.kind = Kind.CONV
            w = np.zeros((sl.cp, *kernel, ol.cp), dtype=np.float32)
            w[:ic, :, :, :oc] = n.weight.astype(np.float32).transpose(1, 2, 3, 0)
            ly.w = self._ptr(w)
        else:
            ly.kind = Kind.POOL
            kk = ly.kh * ly.kw
            table = ops.avgpool_table(kernel)  # the reference's float32 mean of c ones
            ly.table = self._ptr(table)
            mul = np.float32(1.0) / np.float32(kk)
            if np.array_equal(np.arange(kk + 1, dtype=np.float32) * mul, table):
                ly.pool_mul = float(mul)  # exact, and vectorizes
        if n.bias is not None:
            ly.bias = self._ptr(self._bias(n, ol))

    def _bias(self, n, ol: Layout):
        """The bias in the node's internal layout: per channel, per position (a folded input
        normalization), or per feature."""
        import numpy as np

        b = np.zeros(ol.size, dtype=np.float32)
        shape = self.shapes[n.name]
        full = np.broadcast_to(n.bias.reshape(-1, 1, 1) if len(shape) == 3 and n.bias.ndim == 1 else n.bias, shape).astype(np.float32)
        b[ol.of_ref] = full.reshape(-1)
        return b

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

    def constant_currents(self, x, max_rate: float, dt: float):
        """Under ``current`` encoding: per sample, the constant current of every node that reads
        the input, in its internal layout (bias included), computed in NumPy exactly as the
        reference computes it each step; sets each such node's offset. Returns (B, stride)."""
        import numpy as np

        from ..graph import INPUT, apply
        from .encoding import CurrentSource

        b = len(x)
        value = CurrentSource(x.reshape(b, *self.shapes[INPUT]), max_rate, dt).step(0)
        parts, stride = [], 0
        for k, n in enumerate(self.nodes):
            if n.op in ("add", "concat", "maxpool2d") or _source(self.graph, n.inputs[0]) != INPUT:
                self.layers[k].const_off = -1
                continue
            cur = apply(n, value.reshape(b, *self.shapes[n.inputs[0]]) if n.op != "dense" else value.reshape(b, -1))
            if n.bias is not None:
                cur = cur + (n.bias.reshape(-1, 1, 1) if n.op == "conv2d" and n.bias.ndim == 1 else n.bias).astype(np.float32)
            lay = self.layout[n.name]
            block = np.zeros((b, lay.size), dtype=np.float32)
            block[:, lay.of_ref] = cur.reshape(b, -1)
            self.layers[k].const_off = stride
            parts.append(block)
            stride += lay.size
        return np.ascontiguousarray(np.concatenate(parts, axis=1)), stride


def step_batch(dll, plan: Plan, x, index, y, cfg, threads: int, chunk: int, profile: dict | None = None):
    """One batch through the kernel; same return value as :func:`numpy_ref.step_batch`.

    ``profile``, if given, gets each node's seconds added (summed over the worker threads).

    Raises:
        UnsupportedError: ``current`` encoding into a max pool, add or concat that reads the input.
        MemoryError: the kernel could not allocate its buffers.
        KeyboardInterrupt: Ctrl-C (the worker threads have stopped when it is raised).
    """
    import numpy as np

    b = len(x)
    net, keep = _describe_batch(plan, x, index, y, cfg, chunk)
    counts = np.zeros((b, net.n_classes), dtype=np.int32)
    net.out_counts = counts.ctypes.data
    if cfg.membrane_readout:  # the output layer's accumulated potentials replace its spike counts
        counts = np.zeros((b, net.n_classes), dtype=np.float32)
        net.membrane, net.out_pot = 1, counts.ctypes.data
    nxt = np.zeros(1, dtype=np.int64)
    net.next = nxt.ctypes.data
    cancel = np.zeros(1, dtype=np.int64)
    net.cancel = cancel.ctypes.data
    threads = max(1, min(threads, b))
    totals = [np.zeros(plan.n_totals, dtype=np.int64) for _ in range(threads)]
    correct = [np.zeros(cfg.steps, dtype=np.int64) for _ in range(threads)]
    prof = [np.zeros(len(plan.nodes), dtype=np.int64) for _ in range(threads)] if profile is not None else None
    codes = run_workers(
        lambda i: dll.snn_run(ctypes.byref(net), totals[i].ctypes.data, correct[i].ctypes.data, prof[i].ctypes.data if prof else None),
        threads,
        cancel,
    )
    del keep  # the kernel has returned: the arrays it read may go
    if prof and profile is not None:
        for n, ns in zip(plan.nodes, np.sum(prof, axis=0)):
            profile[n.name] = profile.get(n.name, 0.0) + float(ns) * 1e-9
    if -1 in codes:
        raise MemoryError("the native kernel could not allocate its buffers")
    if any(c != 0 for c in codes):  # -3: stopped through `cancel`, which only run_workers sets
        raise KeyboardInterrupt
    return np.sum(correct, axis=0), plan.totals(np.sum(totals, axis=0)), counts


def _describe_batch(plan: Plan, x, index, y, cfg, chunk: int) -> tuple[Net, list]:
    """The kernel's description of one batch: the run's settings, each node's initial potential,
    the input (Poisson spike keys and thresholds, or constant currents) and the labels; with the
    arrays it points into, which must live until the kernel returns."""
    import numpy as np

    from ..errors import UnsupportedError
    from ..graph import INPUT
    from . import encoding
    from .core import initial_potential

    b = len(x)
    graph = plan.graph
    net = Net()
    keep = []

    def ptr(a):
        a = np.ascontiguousarray(a)
        keep.append(a)
        return a.ctypes.data

    net.n_layers, net.steps, net.K = len(plan.nodes), cfg.steps, max(1, min(chunk, cfg.steps))
    net.reset_zero, net.refr_steps = int(cfg.reset == "zero"), cfg.refractory_steps
    net.n_classes, net.n_samples, net.n_input = plan.shapes[graph.output.name][0], b, plan.n_input
    for k, n in enumerate(plan.nodes):  # the run's --v-init may replace the graph's values
        plan.layers[k].v0 = float(initial_potential(n, cfg))
    # membrane read-out: the output node has no neurons; its current (bias included) is summed by
    # the kernel into out_pot, as a synaptic node's current is read by an add
    plan.layers[len(plan.nodes) - 1].synaptic = int(cfg.membrane_readout)
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
        reason = unsupported_reason(graph, "current")
        if reason:
            raise UnsupportedError(f"the native engine cannot run this network: {reason}")
        net.current = 1
        ic, net.const_stride = plan.constant_currents(x, cfg.max_rate, cfg.dt)
        net.i_const = ptr(ic)
    net.labels = ptr(np.asarray(y, dtype=np.int64))
    return net, keep


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

    def defer(signum, frame) -> None:
        hit.append((signum, frame))
        _set(cancel)

    previous: Callable[..., Any] | None = None
    if threading.current_thread() is threading.main_thread():
        installed = signal.getsignal(signal.SIGINT)
        if callable(installed):  # Python's handler, or the application's: defer it until joined
            previous = installed
            signal.signal(signal.SIGINT, defer)
        # else ignored, or the OS default (which ends the process): leave it be
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
    if hit and previous is not None:  # only `defer`, installed with `previous`, adds to `hit`
        previous(*hit[0])
        raise KeyboardInterrupt  # the application's handler returned: the batch is incomplete anyway
    return codes


def _set(cancel) -> None:
    cancel[0] = 1
