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

from .data import load_dataset
from .errors import SnnBalanceError, UnsupportedError
from .graph import Graph, Node
from .hookspecs import hookimpl
from .importers import load_model
from .normalize import normalize
from .pipeline import ConvertConfig, convert
from .records import Balanced, Calibration, NormalizeContext, Normalizer, Simulator
from .simulate import SimConfig, SimResult, simulate

__version__ = "0.1.0"
__all__ = [
    "Balanced", "Calibration", "ConvertConfig", "Graph", "Node", "NormalizeContext", "Normalizer",
    "SimConfig", "SimResult", "Simulator", "SnnBalanceError", "UnsupportedError", "convert", "hookimpl",
    "load_dataset", "load_model", "normalize", "simulate",
]
