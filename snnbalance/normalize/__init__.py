"""Weight/threshold balancing. Each built-in normalizer is its own module and plugin.

A normalizer is a pure function ``(graph, NormalizeContext) -> Balanced``: it returns a new graph
whose weighted layers are divided by per-layer factors and whose spiking layers carry thresholds.
"""

from __future__ import annotations

from ..errors import SnnBalanceError, did_you_mean
from ..graph import Graph
from ..records import Balanced, Calibration, NormalizeContext


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """Split ``"name:key=value,key=value"`` into the name and its options."""
    from ..records import parse_options

    name, _, rest = spec.partition(":")
    return name.strip(), parse_options(rest.split(","), "normalizer option", f" in {spec!r}")


def check_spec(spec: str):
    """The normalizer a spec names and its options, checked before any work is done.

    Returns:
        ``(name, Normalizer record, options)``.
    Raises:
        SnnBalanceError: an unknown normalizer or option (one line, with the choices).
    """
    from ..plugins import registry

    name, options = parse_spec(spec)
    norm = registry().normalizer(name)
    unknown = set(options) - set(norm.options)
    if unknown:
        known = ", ".join(sorted(norm.options)) or "none"
        bad = sorted(unknown)[0]
        raise SnnBalanceError(f"normalizer {name!r} has no option {bad!r} (options: {known}){did_you_mean(bad, norm.options)}")
    return name, norm, options


def normalize(graph: Graph, spec: str, *, calibration: Calibration | None = None, threshold: float = 1.0) -> Balanced:
    """Balance ``graph`` with the normalizer named in ``spec`` (``name`` or ``name:key=value,...``).

    Args:
        graph: the imported ANN; it is not modified.
        spec: normalizer name with optional options.
        calibration: training inputs, required by data-based normalizers.
        threshold: firing threshold given to every spiking layer.
    Returns:
        The balanced graph and its per-layer scale factors.
    """
    name, norm, options = check_spec(spec)
    if norm.needs_calibration and calibration is None:
        raise SnnBalanceError(f"normalizer {name!r} needs calibration data")
    if threshold <= 0:
        raise SnnBalanceError(f"threshold must be positive, got {threshold}")
    ctx = NormalizeContext(threshold=threshold, options=options, calibration=calibration)
    return norm.normalize(graph, ctx)


def with_thresholds(graph: Graph, threshold: float) -> Graph:
    """A copy of ``graph`` with every spiking layer's threshold set to ``threshold``."""
    out = graph.copy()
    for n in out.neuron_nodes():
        n.threshold = float(threshold)
    return out


def scaled(graph: Graph, factors: dict[str, float], bias_factors: dict[str, float], threshold: float) -> Graph:
    """A copy with weights of node ``k`` divided by ``factors[k]`` and biases by ``bias_factors[k]``."""
    out = with_thresholds(graph, threshold)
    for n in out.nodes:
        if n.name in factors:
            old = graph.node(n.name)
            assert n.weight is not None and old.weight is not None  # factors name weighted layers
            n.weight = (n.weight / factors[n.name]).astype(old.weight.dtype)
            if n.bias is not None and old.bias is not None:  # n is old's copy: the same biases
                n.bias = (n.bias / bias_factors[n.name]).astype(old.bias.dtype)
    return out


__all__ = ["check_spec", "normalize", "parse_spec", "scaled", "with_thresholds"]
