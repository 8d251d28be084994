"""snnbalance: convert trained ReLU networks into balanced integrate-and-fire spiking networks.

Typical use from Python::

    import snnbalance as sb
    imported = sb.load_model("model.onnx")
    x, y = sb.load_dataset("mnist", "test")
    xc, _ = sb.load_dataset("mnist", "train")
    balanced = sb.normalize(imported.graph, "data-based", calibration=sb.Calibration(xc[:1000]))
    result = sb.simulate(balanced.graph, x[:500], y[:500], sb.SimConfig(duration=200))
    print(result.final_accuracy, result.accuracy_at(50))
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .data import load_dataset
from .errors import DataError, SnnBalanceError, UnsupportedError
from .extras import MissingExtra
from .graph import Graph, Node
from .hookspecs import hookimpl
from .importers import ImportResult, load_model
from .normalize import normalize
from .pipeline import ConversionReport, ConvertConfig, Run, convert
from .progress import Cancelled, Progress, ProgressEvent
from .records import Balanced, Calibration, Dataset, NormalizeContext, Normalizer, Simulator
from .simulate import SimConfig, SimResult, simulate

try:
    __version__ = version("snnbalance")
except PackageNotFoundError:  # pragma: no cover - running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "Balanced",
    "Calibration",
    "Cancelled",
    "ConversionReport",
    "ConvertConfig",
    "DataError",
    "Dataset",
    "Graph",
    "ImportResult",
    "MissingExtra",
    "Node",
    "NormalizeContext",
    "Normalizer",
    "Progress",
    "ProgressEvent",
    "Run",
    "SimConfig",
    "SimResult",
    "Simulator",
    "SnnBalanceError",
    "UnsupportedError",
    "__version__",
    "convert",
    "hookimpl",
    "load_dataset",
    "load_model",
    "normalize",
    "simulate",
]
