"""Writing a balanced spiking network to a file: NIR, a self-contained ``.npz``, or ONNX.

- ``nir``: a :class:`nir.NIRGraph` (Neuromorphic Intermediate Representation, HDF5) of synapse
  nodes (``Affine``/``Linear``, ``Conv2d``, ``AvgPool2d``, ``Flatten``) each followed by ``IF``
  neurons with the layer's threshold, reset to 0 and ``r = 1 / dt`` so that one Euler step of
  ``dv/dt = r I`` adds exactly this step's input, as in :mod:`snnbalance.simulate.numpy_ref`.
  NIR's IF has no initial state, so a network whose layers start at ``v_init != 0`` is refused,
  and so is the membrane read-out (``readout="membrane"``: an output layer without threshold).
- ``npz``: every weight and bias plus a JSON description of the graph and the simulation
  settings; :func:`read_npz` rebuilds the :class:`~snnbalance.graph.Graph` from it and nothing
  else (no pickles).
- ``onnx``: the balanced weights as a ReLU network (the rate-coded view of the SNN); thresholds
  and settings travel in the model's ``metadata_props``.

What each format can and cannot express is in ``docs/export.md``. Heavy libraries (``nir``,
``onnx``) are imported inside the functions that need them.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import SnnBalanceError, UnsupportedError
from .graph import INPUT, Graph, Node
from .graph_ops import is_asymmetric, pads4

if TYPE_CHECKING:  # pragma: no cover
    from .pipeline import ConvertConfig

FORMATS = ("nir", "npz", "onnx")
SUFFIXES = {".nir": "nir", ".h5": "nir", ".hdf5": "nir", ".npz": "npz", ".onnx": "onnx"}
NIR_OPS = ("dense", "conv2d", "avgpool2d", "flatten")
NPZ_FORMAT = "snnbalance-snn"
NPZ_VERSION = 1


@dataclass
class ExportSettings:
    """Simulation settings stored with an exported network.

    Attributes:
        dt: time step [ms]; NIR's ``r`` is ``1000 / dt`` (per second).
        reset: ``zero`` or ``subtract`` (NIR can express only ``zero``).
        max_rate: Poisson rate of an input of value 1 [Hz].
        readout: ``spikes`` or ``membrane`` (``docs/semantics.md``, "Read-out"; NIR: spikes only).
        info: anything else worth keeping (normalizer, source model, scale factors), JSON-able.
    """

    dt: float = 1.0
    reset: str = "zero"
    max_rate: float = 1000.0
    info: dict = field(default_factory=dict)
    readout: str = "spikes"

    def as_dict(self) -> dict:
        return {
            "dt_ms": self.dt,
            "reset": self.reset,
            "max_rate_hz": self.max_rate,
            "readout": self.readout,
            "threshold_rule": "spike when V >= threshold",
            "synaptic_delay_steps": 0,
            **self.info,
        }


def format_for(path: str | Path, fmt: str | None = None) -> str:
    """The export format: ``fmt`` if given, else from the file's suffix.

    Raises:
        SnnBalanceError: unknown format or a suffix that names none.
    """
    if fmt:
        if fmt.lower() not in FORMATS:
            raise SnnBalanceError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
        return fmt.lower()
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise SnnBalanceError(
            f"cannot tell the format from {str(path)!r}; pass --format ({', '.join(FORMATS)}) or use a .nir, .npz or .onnx file name"
        )
    return SUFFIXES[suffix]


def write(graph: Graph, path: str | Path, fmt: str | None = None, settings: ExportSettings | None = None) -> Path:
    """Write a balanced graph atomically (readers see the old file or the whole new one).

    Args:
        graph: a balanced network, e.g. ``normalize(...).graph``.
        path: destination file.
        fmt: ``nir``, ``npz`` or ``onnx``; ``None`` picks it from the suffix.
        settings: simulation settings to store with the network.
    Returns:
        The path written.
    """
    from .report import atomic_write

    fmt = format_for(path, fmt)
    settings = settings or ExportSettings()
    graph.validate()
    data = {"nir": nir_bytes, "npz": npz_bytes, "onnx": onnx_bytes}[fmt](graph, settings)
    return atomic_write(path, data)


@dataclass
class ExportResult:
    """What :func:`export_model` wrote.

    Attributes:
        path: the file written.
        format: ``nir``, ``npz`` or ``onnx``.
        graph: the balanced network that was written.
        scale_factors: the normalizer's per-layer factors.
        notes: what the importer and the data loader changed or assumed.
    """

    path: Path
    format: str
    graph: Graph
    scale_factors: dict[str, float]
    notes: list[str] = field(default_factory=list)


def export_model(
    job: "ConvertConfig", output: str | Path, fmt: str | None = None, *, info: dict | None = None, progress=None
) -> ExportResult:
    """Import, balance and write the spiking network that ``snnbalance convert`` would simulate.

    The job is the same description ``convert`` takes, read by the same loader: model, arch,
    input preprocessing (mean/std, layout, shape), max-pool mode, trust, calibration data
    (dataset, ``calibration_samples``, ``sim.seed``), threshold. So an exported network is the
    one ``convert`` simulates with the same options.

    Args:
        job: the conversion job; it names exactly one normalizer. ``job.sim``'s ``dt``, ``reset``
            ``max_rate`` and ``readout`` are stored with the network; its ``v_init`` (``--v-init``), when set,
            becomes every layer's initial potential.
        output: destination file.
        fmt: ``nir``, ``npz`` or ``onnx``; ``None`` picks it from the suffix of ``output``.
        info: extra JSON-able metadata to store.
        progress: receives ``import`` and ``calibrate`` events, as for :func:`~snnbalance.pipeline.convert`.
    Raises:
        SnnBalanceError: a bad setting (checked before any slow work), or what the import,
            calibration or writing refuse.
    """
    from .normalize import check_spec, normalize
    from .pipeline import load_data, load_network
    from .records import Calibration

    fmt = format_for(output, fmt)
    job.validate(single_normalizer=True)
    settings = ExportSettings(job.sim.dt, job.sim.reset, job.sim.max_rate, readout=job.sim.readout)
    if fmt == "nir":  # fail before the slow parts
        _check_nir(settings)
        if job.sim.v_init:
            raise SnnBalanceError(_NIR_V_INIT)
    spec = job.normalizers[0]
    norm = check_spec(spec)[1]
    from .progress import ProgressEvent, emit

    emit(progress, ProgressEvent("import", 0, 1))
    imported, name = load_network(job)
    emit(progress, ProgressEvent("import", 1, 1))
    graph, notes = imported.graph, list(imported.notes)
    calibration = None
    if norm.needs_calibration:
        _, _, calib_x, data_notes = load_data(job, True)
        notes += [n for n in data_notes if "test images available" not in n]
        calibration = Calibration(calib_x.reshape(len(calib_x), *graph.input_shape), progress=progress)
    balanced = normalize(graph, spec, calibration=calibration, threshold=job.threshold)
    if job.sim.v_init is not None:  # --v-init: every layer's initial potential, as convert simulates it
        for n in balanced.graph.nodes:
            n.v_init = float(job.sim.v_init)
    stored = ExportSettings(
        settings.dt,
        settings.reset,
        settings.max_rate,
        readout=settings.readout,
        info={"normalizer": spec, "model": imported.source or name, "scale_factors": balanced.scale_factors, **(info or {})},
    )
    path = write(balanced.graph, output, fmt, stored)
    return ExportResult(Path(path), fmt, balanced.graph, balanced.scale_factors, notes)


# -- NIR --------------------------------------------------------------------------------------
def _unique(base: str, taken: set[str]) -> str:
    name = base
    while name in taken:
        name += "_"
    taken.add(name)
    return name


_NIR_V_INIT = (
    "NIR's IF neuron has no initial membrane potential, so a network that starts at v_init != 0 "
    "cannot be exported to NIR; export without --v-init, or use --format npz"
)


def _check_nir(settings: ExportSettings):
    """The ``nir`` module, or a one-line error when it is missing or cannot express ``settings``."""
    if settings.reset != "zero":
        raise SnnBalanceError(
            "NIR's IF neuron resets to v_reset, so reset by subtraction cannot be exported "
            "to NIR; export with reset 'zero', or use --format npz"
        )
    if settings.readout != "spikes":
        raise SnnBalanceError(
            "the NIR export writes IF neurons in every layer, so the membrane read-out (an output "
            "layer without threshold) cannot be exported to NIR; use --readout spikes, or "
            "--format npz"
        )
    from .extras import require

    require("nir", "the nir format")
    import nir

    return nir


def to_nir(graph: Graph, settings: ExportSettings | None = None):
    """The graph as a :class:`nir.NIRGraph` (see the module docstring for the mapping).

    Raises:
        SnnBalanceError: ``reset="subtract"`` or a layer with ``v_init != 0``, which NIR's IF neuron
            cannot express.
        UnsupportedError: merges, max pooling or per-position biases (use ``npz``).
    """
    settings = settings or ExportSettings()
    nir = _check_nir(settings)
    if any(n.v_init != 0 for n in graph.neuron_nodes()):
        raise SnnBalanceError(_NIR_V_INIT)
    for n in graph.nodes:
        if n.op not in NIR_OPS or (n.bias is not None and n.bias.ndim > 1) or is_asymmetric(n.padding):
            what = (
                n.op if n.op not in NIR_OPS else "a per-position bias" if n.bias is not None and n.bias.ndim > 1 else "asymmetric padding"
            )
            raise UnsupportedError(
                f"the NIR export handles chains of {', '.join(NIR_OPS)} layers, not {what} (layer {n.label()}); use --format npz"
            )
    shapes = graph.shapes()
    taken = {n.name for n in graph.nodes} | {INPUT, "output"}
    nodes: dict = {INPUT: nir.Input(input_type=np.array(graph.input_shape))}
    edges: list[tuple[str, str]] = []
    out_of = {INPUT: INPUT}  # graph node -> NIR node that carries its output (spikes)
    r = np.float32(1000.0 / settings.dt)
    for n in graph.nodes:
        src, shape = out_of[n.inputs[0]], shapes[n.name]
        meta = {"snnbalance_node": n.name, "source": n.source or n.name}
        if n.op == "flatten":
            nodes[n.name] = nir.Flatten(input_type={"input": np.array(shapes[n.inputs[0]])}, start_dim=0, end_dim=-1, metadata=meta)
            edges.append((src, n.name))
            out_of[n.name] = n.name
            continue
        nodes[n.name] = _nir_synapse(nir, n, shapes[n.inputs[0]], meta)
        neurons = _unique(f"{n.name}_if", taken)
        nodes[neurons] = nir.IF(
            r=np.full(shape, r, np.float32),
            v_threshold=np.full(shape, n.threshold, np.float32),
            v_reset=np.zeros(shape, np.float32),
            metadata=meta,
        )
        edges += [(src, n.name), (n.name, neurons)]
        out_of[n.name] = neurons
    nodes["output"] = nir.Output(output_type=np.array(shapes[graph.output.name]))
    edges.append((out_of[graph.output.name], "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=_flat_metadata(settings.as_dict()))


def _nir_synapse(nir, n: Node, in_shape: tuple[int, ...], meta: dict):
    if n.op == "dense":
        w = n.weight.astype(np.float32)
        return (
            nir.Affine(weight=w, bias=n.bias.astype(np.float32), metadata=meta)
            if n.bias is not None
            else nir.Linear(weight=w, metadata=meta)
        )
    if n.op == "conv2d":
        bias = n.bias if n.bias is not None else np.zeros(n.weight.shape[0])
        return nir.Conv2d(
            input_shape=tuple(in_shape[1:]),
            weight=n.weight.astype(np.float32),
            stride=tuple(n.stride),
            padding=tuple(n.padding),
            dilation=(1, 1),
            groups=1,
            bias=bias.astype(np.float32),
            metadata=meta,
        )
    # avgpool2d: padded zeros count in the average (count_include_pad), as torch's default
    return nir.AvgPool2d(kernel_size=np.array(n.kernel), stride=np.array(n.stride), padding=np.array(n.padding), metadata=meta)


def _flat_metadata(d: dict) -> dict:
    """HDF5 attributes hold scalars and strings: nested values become JSON strings."""
    return {k: (json.dumps(v) if isinstance(v, (dict, list, tuple)) else v) for k, v in d.items() if v is not None}


def nir_bytes(graph: Graph, settings: ExportSettings) -> bytes:
    """The NIR HDF5 file's contents."""
    nir = _check_nir(settings)
    buf = io.BytesIO()
    nir.write(buf, to_nir(graph, settings))
    return buf.getvalue()


# -- npz --------------------------------------------------------------------------------------
def npz_bytes(graph: Graph, settings: ExportSettings) -> bytes:
    """A ``.npz`` holding arrays ``w{i}``/``b{i}`` and a JSON string ``graph`` that names them."""
    arrays: dict[str, np.ndarray] = {}
    nodes = []
    for i, n in enumerate(graph.nodes):
        d = {
            "name": n.name,
            "op": n.op,
            "inputs": list(n.inputs),
            "relu": n.relu,
            "threshold": float(n.threshold),
            "source": n.source,
            "v_init": float(n.v_init),
            "stride": list(n.stride),
            "padding": list(n.padding),
        }
        if n.kernel is not None:
            d["kernel"] = list(n.kernel)
        if getattr(n, "scales", None) is not None:  # per-input factors of a residual add
            d["scales"] = [float(v) for v in n.scales]
        for key, arr in (("weight", n.weight), ("bias", n.bias)):
            if arr is not None:
                d[key] = f"{key[0]}{i}"
                arrays[d[key]] = np.asarray(arr, np.float32)
        nodes.append(d)
    desc = {
        "format": NPZ_FORMAT,
        "version": NPZ_VERSION,
        "input_shape": list(graph.input_shape),
        "nodes": nodes,
        "simulation": settings.as_dict(),
    }
    buf = io.BytesIO()
    np.savez_compressed(buf, graph=np.array(json.dumps(desc)), **arrays)
    return buf.getvalue()


def read_npz(path: str | Path) -> tuple[Graph, dict]:
    """Rebuild a graph written by :func:`write` with ``fmt="npz"``.

    Returns:
        The graph and the stored simulation settings.
    Raises:
        SnnBalanceError: the file is not such an export.
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            desc = json.loads(str(z["graph"]))
            arrays = {k: z[k] for k in z.files if k != "graph"}
    except (OSError, KeyError, ValueError) as exc:
        raise SnnBalanceError(f"{path}: not an snnbalance .npz export ({exc})") from None
    if desc.get("format") != NPZ_FORMAT or desc.get("version") != NPZ_VERSION:
        raise SnnBalanceError(f"{path}: not an snnbalance .npz export (version {NPZ_VERSION})")
    nodes = []
    for d in desc["nodes"]:
        extra = {"scales": tuple(d["scales"])} if "scales" in d else {}
        nodes.append(
            Node(
                d["name"],
                d["op"],
                tuple(d["inputs"]),
                **extra,
                weight=arrays[d["weight"]] if "weight" in d else None,
                bias=arrays[d["bias"]] if "bias" in d else None,
                stride=tuple(d.get("stride", (1, 1))),
                padding=tuple(d.get("padding", (0, 0))),
                kernel=tuple(d["kernel"]) if "kernel" in d else None,
                relu=d["relu"],
                threshold=d["threshold"],
                source=d.get("source", ""),
                v_init=float(d.get("v_init", 0.0)),
            )
        )
    graph = Graph(tuple(desc["input_shape"]), nodes)
    graph.validate()
    return graph, desc["simulation"]


# -- ONNX -------------------------------------------------------------------------------------
def onnx_model(graph: Graph, settings: ExportSettings | None = None):
    """The balanced weights as an ONNX ReLU network (opset 13) with thresholds in its metadata."""
    from onnx import TensorProto, helper, numpy_helper

    settings = settings or ExportSettings()
    shapes = graph.shapes()
    inits, ops = [], []

    def const(name: str, value) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value, np.float32), name))
        return name

    for n in graph.nodes:
        x, out = list(n.inputs), f"{n.name}_pre" if n.relu else n.name
        pre = f"{n.name}_nobias" if n.bias is not None else out
        if n.op == "dense":
            ops.append(helper.make_node("Gemm", [x[0], const(f"{n.name}.weight", n.weight)], [pre], name=n.name, transB=1))
        elif n.op == "conv2d":
            ops.append(
                helper.make_node(
                    "Conv",
                    [x[0], const(f"{n.name}.weight", n.weight)],
                    [pre],
                    name=n.name,
                    strides=list(n.stride),
                    pads=list(pads4(n.padding)),
                    kernel_shape=list(n.weight.shape[2:]),
                )
            )
        elif n.op in ("avgpool2d", "maxpool2d"):
            kind, extra = ("AveragePool", {"count_include_pad": 1}) if n.op == "avgpool2d" else ("MaxPool", {})
            ops.append(
                helper.make_node(
                    kind, x, [pre], name=n.name, kernel_shape=list(n.kernel), strides=list(n.stride), pads=list(pads4(n.padding)), **extra
                )
            )
        elif n.op == "add":
            terms = []
            for k, (src, scale) in enumerate(zip(x, n.input_scales())):
                if scale == 1.0:
                    terms.append(src)
                else:
                    terms.append(f"{n.name}_in{k}")
                    ops.append(helper.make_node("Mul", [src, const(f"{n.name}.scale{k}", scale)], [terms[-1]]))
            ops.append(helper.make_node("Sum", terms, [pre], name=n.name))
        elif n.op == "concat":
            ops.append(helper.make_node("Concat", x, [pre], name=n.name, axis=1))
        else:
            ops.append(helper.make_node("Flatten", x, [pre], name=n.name, axis=1))
        if n.bias is not None:  # a (C,) bias of a conv broadcasts as (C, 1, 1); maps keep their shape
            b = n.bias.reshape(-1, 1, 1) if n.op == "conv2d" and n.bias.ndim == 1 else n.bias
            ops.append(helper.make_node("Add", [pre, const(f"{n.name}.bias", b)], [out], name=f"{n.name}_bias"))
        if n.relu:
            ops.append(helper.make_node("Relu", [out], [n.name], name=f"{n.name}_relu"))
    last = graph.output.name
    g = helper.make_graph(
        ops,
        "snnbalance_balanced",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", *graph.input_shape])],
        [helper.make_tensor_value_info(last, TensorProto.FLOAT, ["batch", *shapes[last]])],
        inits,
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="snnbalance")
    model.ir_version = 8  # readable by older runtimes too
    meta = {
        **settings.as_dict(),
        "thresholds": {n.name: float(n.threshold) for n in graph.neuron_nodes()},
        "v_init": {n.name: float(n.v_init) for n in graph.neuron_nodes()},
        "spiking_layers": [n.name for n in graph.neuron_nodes()],
    }
    helper.set_model_props(model, {k: json.dumps(v) for k, v in meta.items()})
    return model


def onnx_bytes(graph: Graph, settings: ExportSettings) -> bytes:
    """The ONNX file's contents."""
    return onnx_model(graph, settings).SerializeToString()


__all__ = [
    "ExportResult",
    "ExportSettings",
    "FORMATS",
    "export_model",
    "format_for",
    "nir_bytes",
    "npz_bytes",
    "onnx_bytes",
    "onnx_model",
    "read_npz",
    "to_nir",
    "write",
]
