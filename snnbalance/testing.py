"""Conformance checks for normalizer and simulator plugins, usable from any test suite.

Plain functions raise :class:`AssertionError` with a message that says what is wrong::

    from snnbalance.testing import check_normalizer, check_simulator

    def test_my_normalizer():
        check_normalizer("my-norm", {"p": "99"})

    def test_my_simulator():
        check_simulator("my-sim")

For pytest, the ``snnbalance_conformance`` fixture hands out the same checks (import it into a
test module, or list ``"snnbalance.testing"`` in ``pytest_plugins`` of a root ``conftest.py``),
and :func:`normalizer_names` / :func:`simulator_names` parametrize over everything installed.

A normalizer conforms when, on a fixed small network and fixed calibration data, it returns a
valid :class:`~snnbalance.records.Balanced` of the same structure, leaves its input untouched, is
deterministic, still computes the ANN's predictions when read as rates (each spiking layer's
output divided by its threshold), and the result simulates. A simulator conforms when it
reproduces the NumPy reference exactly on single-neuron semantics (integration, both resets,
thresholds, bias, refractory period, ties), agrees with it on a random CNN with Poisson input
(up to float summation order), is independent of the batch size, and honours cancellation.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

from .graph import INPUT, NEURON_OPS, WEIGHTED, Graph, Node, apply
from .normalize import normalize, parse_spec
from .progress import Cancelled
from .records import Balanced, Calibration, Normalizer
from .simulate import SimConfig, SimResult, simulate


def reference_graph(seed: int = 0, bias: bool = True) -> Graph:
    """The fixed test network: conv -> avgpool -> conv -> flatten -> dense on 1x12x12 inputs."""
    rng = np.random.default_rng(seed)

    def b(n: int) -> np.ndarray | None:
        return rng.normal(0, 0.05, n).astype(np.float32) if bias else None

    return Graph(
        (1, 12, 12),
        [
            Node("c1", "conv2d", weight=rng.normal(0, 0.4, (4, 1, 3, 3)).astype(np.float32), bias=b(4), padding=(1, 1), relu=True),
            Node("p1", "avgpool2d", ("c1",), kernel=(2, 2), stride=(2, 2)),
            Node("c2", "conv2d", ("p1",), weight=rng.normal(0, 0.3, (6, 4, 3, 3)).astype(np.float32), bias=b(6), stride=(2, 2), relu=True),
            Node("f", "flatten", ("c2",)),
            Node("d", "dense", ("f",), weight=rng.normal(0, 0.3, (5, 24)).astype(np.float32), bias=b(5)),
        ],
    )


def reference_inputs(n: int, seed: int = 1, shape: tuple[int, ...] = (1, 12, 12)) -> np.ndarray:
    """``n`` seeded inputs in [0, 1]."""
    return np.random.default_rng(seed).random((n, *shape)).astype(np.float32)


def rate_view(graph: Graph, x: np.ndarray) -> np.ndarray:
    """The analog network a rate-coded SNN approximates: every IF layer's ReLU output divided by
    its threshold (ignoring that a neuron fires at most once per step). Synaptic-only layers,
    max-pool gates, flatten and concat pass their values on undivided."""
    vals: dict[str, np.ndarray] = {INPUT: np.asarray(x, np.float32).reshape(-1, *graph.input_shape)}
    linear = getattr(graph, "is_linear", lambda n: False)
    for n in graph.nodes:
        y: np.ndarray = apply(n, *(vals[i] for i in n.inputs))
        if n.bias is not None:
            y = y + (n.bias.reshape(-1, 1, 1) if n.op == "conv2d" and n.bias.ndim == 1 else n.bias)
        if n.relu:
            y = np.maximum(y, 0)
        has_threshold = n.op in NEURON_OPS and n.op != "maxpool2d" and not linear(n)
        vals[n.name] = y / n.threshold if has_threshold else y
    return vals[graph.output.name]


def _require(ok: object, message: str) -> None:
    """Raise :class:`AssertionError` with ``message`` unless ``ok``.

    A bare ``assert`` would do the same under plain pytest, but ``python -O`` strips it and pytest
    does not rewrite asserts in an installed library: a third party's run must still fail.
    """
    if not ok:
        raise AssertionError(message)


def _spec(name: str, options: dict | str | None) -> str:
    if not options:
        return name
    if isinstance(options, str):
        return f"{name}:{options}"
    return f"{name}:" + ",".join(f"{k}={v}" for k, v in options.items())


def _available(kind: str, names) -> str:
    from .plugins import registry

    problems = "; ".join(registry().problems) or "none"
    return f"installed {kind}s: {', '.join(sorted(names))}; plugin problems: {problems}"


def _arrays(graph: Graph) -> list:
    return [
        (n.name, n.threshold, None if n.weight is None else n.weight.copy(), None if n.bias is None else n.bias.copy()) for n in graph.nodes
    ]


def _same_arrays(a: list, b: list) -> bool:
    return all(
        x[0] == y[0]
        and x[1] == y[1]
        and all((p is None and q is None) or (p is not None and q is not None and np.array_equal(p, q)) for p, q in zip(x[2:], y[2:]))
        for x, y in zip(a, b)
    )


def check_normalizer(
    name: str,
    options: dict | str | None = None,
    *,
    graph: Graph | None = None,
    calibration: np.ndarray | None = None,
    min_agreement: float = 0.95,
) -> Balanced:
    """Assert that normalizer ``name`` (with ``options``) conforms; return what it produced.

    Args:
        name: a registered normalizer.
        options: ``{"p": "99"}`` or ``"p=99"``.
        graph: network to balance (default :func:`reference_graph`).
        calibration: calibration inputs (default 64 :func:`reference_inputs`).
        min_agreement: share of inputs on which the rate view of the balanced bias-free network
            must predict what the ANN predicts (below 1 only to forgive rounding at near-ties).
    Raises:
        AssertionError: naming the normalizer and what is wrong.
    """
    rec = _normalizer_record(name)
    who = f"normalizer {name!r}"
    spec = _spec(name, options)
    parsed = parse_spec(spec)[0]
    _require(parsed == name, f"{who}: the spec {spec!r} should name {name!r}, but names {parsed!r}")
    graph = graph or reference_graph()
    x = reference_inputs(64) if calibration is None else np.asarray(calibration, np.float32)

    def calib() -> Calibration | None:
        return Calibration(x, batch_size=16) if rec.needs_calibration else None

    before = _arrays(graph)
    out = normalize(graph, spec, calibration=calib())
    _require(isinstance(out, Balanced), f"{who}: expected a Balanced, found {type(out).__name__}")
    _require(_same_arrays(before, _arrays(graph)), f"{who} modified the graph it was given (weights, biases or thresholds changed)")
    _check_balanced(who, graph, out)
    again = normalize(graph, spec, calibration=calib())
    _require(
        _same_arrays(_arrays(out.graph), _arrays(again.graph)),
        f"{who} is not deterministic: two runs on the same input gave different weights or thresholds",
    )
    # Rescaling a bias-free ReLU network by positive factors leaves its predictions exactly as they
    # were; with biases, Diehl's scaling (by design) does not, so this check uses the bias-free twin.
    plain = graph.copy()
    for n in plain.nodes:
        n.bias = None
    test_x = reference_inputs(64, seed=2, shape=graph.input_shape)
    pg = normalize(plain, spec, calibration=calib()).graph
    logits = plain.forward(test_x)
    assert isinstance(logits, np.ndarray)  # forward without keep=True: the output layer's values
    agree = float(np.mean(rate_view(pg, test_x).argmax(1) == logits.argmax(1)))
    _require(
        agree >= min_agreement,
        f"{who}: read as rates, the balanced network predicts what the ANN predicts on only "
        f"{100 * agree:.0f} % of inputs (need {100 * min_agreement:.0f} %)",
    )
    g = out.graph
    r = simulate(g, test_x[:8], np.zeros(8, np.int64), SimConfig(duration=30, batch_size=8))
    want_shape = (8, g.shapes()[g.output.name][0])
    _require(
        r.samples == 8 and r.output_counts.shape == want_shape,
        f"{who}: the balanced network does not simulate: expected 8 samples and output counts of "
        f"shape {want_shape}, found {r.samples} samples and shape {r.output_counts.shape}",
    )
    return out


def _normalizer_record(name: str) -> Normalizer:
    """The registered record of normalizer ``name``, with a one-line description."""
    from .plugins import registry

    reg = registry()
    _require(name in reg.normalizers, f"normalizer {name!r} is not registered; {_available('normalizer', reg.normalizers)}")
    rec = reg.normalizers[name]
    _require(
        isinstance(rec.description, str) and rec.description.strip(),
        f"normalizer {name!r}: expected a one-line description, found {rec.description!r}",
    )
    return rec


def _check_balanced(who: str, graph: Graph, out: Balanced) -> None:
    """``out`` balances ``graph``: a new valid Graph of the same layers and shapes, finite weights,
    positive finite thresholds, and a positive finite scale factor for every weighted layer."""
    g = out.graph
    _require(isinstance(g, Graph), f"{who}: expected Balanced.graph to be a Graph, found {type(g).__name__}")
    _require(g is not graph, f"{who}: expected a new Graph, found the input graph itself")
    g.validate()
    layers = [(n.name, n.op, n.inputs) for n in g.nodes]
    want = [(n.name, n.op, n.inputs) for n in graph.nodes]
    _require(layers == want, f"{who} changed the network's structure: expected layers {want}, found {layers}")
    _require(g.shapes() == graph.shapes(), f"{who} changed layer shapes: expected {graph.shapes()}, found {g.shapes()}")
    spiking = {m.name for m in g.neuron_nodes()}
    for n in g.nodes:
        for what, arr in (("weight", n.weight), ("bias", n.bias)):
            if arr is not None:
                _require(np.all(np.isfinite(arr)), f"{who}: expected finite values, found a non-finite {what} in layer {n.name!r}")
        if n.name in spiking:
            _require(
                np.isfinite(n.threshold) and n.threshold > 0,
                f"{who}: expected a positive finite threshold, found {n.threshold} in layer {n.name!r}",
            )
    weighted = {n.name for n in graph.nodes if n.op in WEIGHTED}
    _require(
        set(out.scale_factors) == weighted,
        f"{who}: expected scale_factors for each weighted layer {sorted(weighted)}, found {sorted(out.scale_factors)}",
    )
    bad = {k: v for k, v in out.scale_factors.items() if not (np.isfinite(v) and v > 0)}
    _require(not bad, f"{who}: expected positive finite scale factors, found {bad}")


# -- simulators ---------------------------------------------------------------------------------
def _neuron(weight: float, n_out: int = 1) -> Graph:
    return Graph((1,), [Node("d", "dense", weight=np.full((n_out, 1), weight, np.float32))])


def _micro_cases() -> list[tuple[str, Graph, np.ndarray, np.ndarray, dict]]:
    """Single-neuron cases with exactly representable numbers: no rounding can excuse a difference."""
    biased = _neuron(0.0)
    biased.node("d").bias = np.array([0.25], np.float32)
    high = _neuron(1.0)
    high.node("d").threshold = 2.0
    one, zero = np.array([[1.0]], np.float32), np.zeros(1, np.int64)
    return [
        ("integration, reset to zero", _neuron(1.0), np.array([[0.375]], np.float32), zero, {}),
        ("reset by subtraction", _neuron(1.0), np.array([[0.375]], np.float32), zero, {"reset": "subtract"}),
        ("spike exactly at threshold", _neuron(1.0), np.array([[0.5]], np.float32), zero, {}),
        ("at most one spike per step", _neuron(5.0), one, zero, {"reset": "subtract"}),
        ("refractory period", _neuron(5.0), one, zero, {"refractory": 2.0}),
        ("refractory period with dt 0.5", _neuron(5.0), one, zero, {"refractory": 2.0, "dt": 0.5}),
        ("per-layer threshold", high, np.array([[0.5]], np.float32), zero, {}),
        ("bias every step", biased, one, zero, {}),
        ("ties go to the lowest class", _neuron(0.0, 3), np.ones((2, 1), np.float32), np.array([0, 2]), {}),
    ]


def _same_result(a: SimResult, b: SimResult) -> str:
    """What differs between two results (empty when the spike counts and curves are equal)."""
    if a.steps != b.steps or a.samples != b.samples:
        return f"steps/samples {a.steps}/{a.samples} vs {b.steps}/{b.samples}"
    if a.spike_counts != b.spike_counts:
        return f"spike counts {a.spike_counts} vs {b.spike_counts}"
    if not np.array_equal(a.output_counts, b.output_counts):
        return "output spike counts differ"
    if not np.array_equal(a.accuracy_over_time, b.accuracy_over_time):
        return "accuracy over time differs"
    return ""


def check_simulator(name: str, device: str = "cpu", *, tolerance: float = 0.02) -> None:
    """Assert that simulator ``name`` on ``device`` agrees with the NumPy reference.

    Args:
        name: a registered simulator.
        device: one of the devices it lists.
        tolerance: allowed relative difference of spike counts on the random CNN, where potentials
            summed in another order can cross a threshold one step apart.
    Raises:
        AssertionError: naming the simulator and the case that differs.
    """
    from .plugins import registry

    reg = registry()
    _require(name in reg.simulators, f"simulator {name!r} is not registered; {_available('simulator', reg.simulators)}")
    who = f"simulator {name!r} on {device}"
    _require(
        device in reg.simulators[name].devices,
        f"simulator {name!r}: expected to run on {device!r}, but it lists {reg.simulators[name].devices}",
    )
    for case, graph, x, y, cfg in _micro_cases():
        diff = _same_result(_run(name, device, graph, x, y, **cfg), _run("numpy", device, graph, x, y, **cfg))
        _require(not diff, f"{who} differs from the NumPy reference on {case!r} (reference second): {diff}")

    graph = normalize(reference_graph(bias=True), "data-based", calibration=Calibration(reference_inputs(32))).graph
    x, y = reference_inputs(12, seed=5), np.arange(12) % 5
    _check_poisson_cnn(who, name, device, graph, x, y, tolerance)
    _check_cancellation(who, name, device, graph, x, y)
    if "membrane" in reg.simulators[name].readouts:
        _check_membrane_readout(who, name, device, graph, x, y)


def _run(sim: str, device: str, graph: Graph, x: np.ndarray, y: np.ndarray, **cfg: Any) -> SimResult:
    """``sim`` on ``device`` (the NumPy reference on the CPU), current input for 20 steps unless
    ``cfg`` says otherwise."""
    config = SimConfig(**{"encoding": "current", "duration": 20, "device": device, **cfg})
    if sim == "numpy":
        config.device = "cpu"
    return simulate(graph, x, y, config, simulator=sim)


def _check_poisson_cnn(who: str, name: str, device: str, graph: Graph, x: np.ndarray, y: np.ndarray, tolerance: float) -> None:
    """On the balanced random CNN with Poisson input: the reference's shapes and layers, its spike
    counts within ``tolerance``, at most one prediction of 12 different, and the same result in
    batches of 5 as of 12."""
    cfg = {"encoding": "poisson", "duration": 60, "seed": 7, "batch_size": 12}
    mine, ref = _run(name, device, graph, x, y, **cfg), _run("numpy", device, graph, x, y, **cfg)
    _require(isinstance(mine, SimResult), f"{who}: expected a SimResult, found {type(mine).__name__}")
    _require(
        len(mine.accuracy_over_time) == 60 and mine.samples == 12 and mine.output_counts.shape == (12, 5),
        f"{who}: expected a 60-step curve, 12 samples and outputs of shape (12, 5), found "
        f"{len(mine.accuracy_over_time)} steps, {mine.samples} samples, shape {mine.output_counts.shape}",
    )
    _require(
        set(mine.firing_rates) == set(ref.firing_rates),
        f"{who}: expected firing rates for {sorted(ref.firing_rates)}, found {sorted(mine.firing_rates)}",
    )
    for layer, count in ref.spike_counts.items():
        got = mine.spike_counts.get(layer, -1)
        _require(
            abs(got - count) <= tolerance * max(count, 50),
            f"{who}: layer {layer!r} fired {got} spikes, the NumPy reference {count} "
            f"(Poisson CNN; allowed difference {tolerance * max(count, 50):g})",
        )
    differ = int(np.sum(mine.output_counts.argmax(1) != ref.output_counts.argmax(1)))
    _require(differ <= 1, f"{who}: expected at most 1 of 12 predictions to differ from the NumPy reference, found {differ}")
    split = _run(name, device, graph, x, y, **{**cfg, "batch_size": 5})
    diff = _same_result(split, mine)
    _require(not diff, f"{who}: results depend on the batch size (5 vs 12): {diff}")


def _check_membrane_readout(who: str, name: str, device: str, graph: Graph, x: np.ndarray, y: np.ndarray) -> None:
    """A simulator that declares ``readout="membrane"`` reproduces the reference's output-layer
    potentials (returned in ``output_counts``): exactly, with the same curve, on the single-neuron
    cases; to float32 rounding, with the same final predictions where no two classes are that
    close, on the balanced CNN with current input."""
    for case, g, xs, ys, cfg in [*_micro_cases(), ("balanced CNN", graph, x, y, {"duration": 30})]:
        cfg = {**cfg, "readout": "membrane"}
        mine, ref = _run(name, device, g, xs, ys, **cfg), _run("numpy", device, g, xs, ys, **cfg)
        pot, want = np.asarray(mine.output_counts, np.float64), np.asarray(ref.output_counts, np.float64)
        scale = max(1.0, float(np.abs(want).max()))
        _require(
            pot.shape == want.shape and np.allclose(pot, want, rtol=1e-5, atol=1e-5 * scale),
            f"{who}: with readout='membrane' the output potentials differ from the NumPy reference on {case!r} "
            f"(expected {want.ravel()[:4]}, found {pot.ravel()[:4]})",
        )
        if case != "balanced CNN":
            _require(
                np.array_equal(mine.accuracy_over_time, ref.accuracy_over_time),
                f"{who}: with readout='membrane' the accuracy over time differs from the NumPy reference on {case!r}",
            )
            continue
        top = np.sort(want, axis=1)
        clear = top[:, -1] - top[:, -2] > 1e-3 * scale
        _require(
            np.array_equal(pot.argmax(1)[clear], want.argmax(1)[clear]),
            f"{who}: with readout='membrane' the final predictions differ from the NumPy reference on {case!r}",
        )


def _check_cancellation(who: str, name: str, device: str, graph: Graph, x: np.ndarray, y: np.ndarray) -> None:
    """A progress callback raising Cancelled after the first batch stops the run there."""
    seen = []

    def cancel_after_first(event: object) -> None:
        seen.append(event)
        raise Cancelled

    config = SimConfig(encoding="current", duration=10, batch_size=4, device=device)
    r = simulate(graph, x, y, config, simulator=name, progress=cancel_after_first)
    _require(
        bool(seen) and r.cancelled and r.samples == 4,
        f"{who}: a progress callback raising Cancelled after the first batch must stop the run "
        f"(expected cancelled=True, samples=4; found {len(seen)} progress events, "
        f"cancelled={r.cancelled}, samples={r.samples})",
    )


# -- pytest -----------------------------------------------------------------------------------
def normalizer_names() -> list[str]:
    """Every registered normalizer, for ``@pytest.mark.parametrize``."""
    from .plugins import registry

    return sorted(registry().normalizers)


def simulator_names() -> list[str]:
    """Every registered simulator, for ``@pytest.mark.parametrize``."""
    from .plugins import registry

    return sorted(registry().simulators)


try:
    import pytest
except ImportError:  # pragma: no cover - the checks work without pytest
    pass
else:

    @pytest.fixture
    def snnbalance_conformance():
        """The conformance checks: ``.check_normalizer(name, options)``, ``.check_simulator(name, device)``."""
        return SimpleNamespace(
            check_normalizer=check_normalizer,
            check_simulator=check_simulator,
            reference_graph=reference_graph,
            reference_inputs=reference_inputs,
        )


__all__ = ["check_normalizer", "check_simulator", "normalizer_names", "rate_view", "reference_graph", "reference_inputs", "simulator_names"]
