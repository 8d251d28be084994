"""The torch engine (and its triton neurons) against the NumPy reference on every graph kind.

Weights, biases, scales, thresholds and inputs are dyadic (:mod:`snnbalance.dags`), so every sum is
exact in float32 in any order: a correct engine gives the reference's spikes exactly, and every
comparison here is an equality (each layer's spike counts, the accuracy curve, the output counts).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from snnbalance.dags import exact_inputs, random_dag
from snnbalance.graph import Graph, Node
from snnbalance.graph_ops import maxpool_gate
from snnbalance.simulate import numpy_ref
from snnbalance.simulate import torch_kernels as tk
from snnbalance.simulate import triton_kernels as tri
from snnbalance.simulate.core import SimConfig

HAVE_TRITON = tri.available() is None
NEEDS_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
NEEDS_TRITON = pytest.mark.skipif(not HAVE_TRITON, reason=f"no triton: {tri.available()}")
DEVICES = ["cpu", pytest.param("cuda", marks=NEEDS_CUDA)]
SEEDS = range(30)
CHUNKS = (1, 3, 7)  # 1 step, and chunks that split a max-pool gate's counts at odd places


@pytest.fixture(autouse=True)
def one_thread():
    """These networks are tiny: torch's second thread only waits for the first (and on a busy
    2-core machine makes a 0.1 ms convolution take 20 ms)."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


_REFERENCE: dict = {}


def compare(g: Graph, x, cfg: SimConfig, neuron: str, chunk: int, device: str = "cpu", precision: str = "fp32", key=None):
    """Run the torch engine and the reference (cached under ``key``) on ``x``; assert equality."""
    idx, y = np.arange(len(x)) + 11, np.arange(len(x)) % g.output.weight.shape[0]
    want = _REFERENCE.get(key) if key is not None else None
    if want is None:
        want = numpy_ref.step_batch(g, x, idx, y, cfg)
        if key is not None:
            _REFERENCE[key] = want
    got = tk.step_batch(tk.TorchNet(g, device, precision, neuron), x, idx, y, cfg, chunk)
    assert sorted(got[1]) == sorted(want[1])
    for layer in want[1]:
        np.testing.assert_array_equal(got[1][layer], want[1][layer], err_msg=f"spikes of {layer}")
    np.testing.assert_array_equal(got[0], want[0], err_msg="correct per step")
    np.testing.assert_array_equal(got[2], want[2], err_msg="output counts")
    return want


def dyadic(rng, shape, scale=0.4):
    return (np.round(rng.normal(0, scale, shape) * 64) / 64).astype(np.float32)


def cfg_of(seed: int = 0, steps: int = 20, **kw) -> SimConfig:
    return SimConfig(duration=steps, max_rate=kw.pop("max_rate", 500), seed=seed, **kw)


# -- the property test: random DAGs of every kind -----------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("neuron", ["torch", "sj"])
@pytest.mark.parametrize("reset", ["zero", "subtract"])
@pytest.mark.parametrize("encoding", ["poisson", "current"])
@pytest.mark.parametrize("seed", SEEDS)
def test_random_dags_match_the_reference(seed, encoding, reset, neuron, device):
    g = random_dag(seed)
    x = exact_inputs(6, g.input_shape, seed)
    want = compare(g, x, cfg_of(seed, encoding=encoding, reset=reset), neuron, CHUNKS[seed % 3], device, key=(seed, encoding, reset))
    assert sum(int(v.sum()) for v in want[1].values()) > 100  # the comparison is about real activity


def test_random_dags_cover_every_kind():
    """The property test above sees every kind, each in several networks."""
    from collections import Counter

    seen = Counter(k for s in SEEDS for k in random_dag(s).kinds())
    assert set(seen) == set(tk.SUPPORTED_KINDS)
    assert min(seen.values()) >= 4, seen


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("neuron", ["torch", "sj"])
@pytest.mark.parametrize("seed", [12, 26, 27])  # maxpool, add, concat, bias map, asym pad between them
def test_refractory_period_on_random_dags(seed, neuron, device):
    g = random_dag(seed)
    x = exact_inputs(6, g.input_shape, seed)
    compare(g, x, cfg_of(seed, reset="subtract", refractory=2.0), neuron, 3, device)


# the triton neurons in Triton's interpreter on the CPU: slow, so a few small networks and steps
TRITON_SEEDS = [12, 22, 26]  # (add, bias map, concat, maxpool), (add, asym pad, concat), (everything but add)


@NEEDS_TRITON
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "case", [dict(), dict(encoding="current", reset="subtract"), dict(refractory=2.0)], ids=["poisson", "current-subtract", "refractory"]
)
@pytest.mark.parametrize("seed", TRITON_SEEDS)
def test_triton_neurons_on_random_dags(seed, case, device):
    g = random_dag(seed)
    x = exact_inputs(4, g.input_shape, seed)
    compare(g, x, cfg_of(seed, steps=10, **case), "triton", 7, device)


@NEEDS_TRITON
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("seed", [26, 27])
def test_triton_bf16_parts_on_random_dags(seed, device):
    """bf16x2 (dense and conv weights in two bf16 parts, the conv through the triton kernel, with
    asymmetric padding applied before it): dyadic weights are exact in bf16, so still equal."""
    g = random_dag(seed)
    x = exact_inputs(4, g.input_shape, seed)
    compare(g, x, cfg_of(seed, steps=8), "triton", 3, device, "bf16x2")


# -- per-kind targeted tests ---------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize(
    "kernel,stride,padding",
    [((2, 2), (2, 2), (0, 0)), ((3, 3), (1, 1), (1, 1)), ((2, 2), (2, 2), (0, 0, 1, 1)), ((3, 3), (2, 2), (1, 0, 1, 2))],
)
def test_maxpool_gate_ties_and_padding(kernel, stride, padding, chunk):
    """Gate by gate against the reference's update, on sparse spikes that tie often: ties go to the
    first position in row-major window order, padding never wins, counts carry over chunks."""
    rng = np.random.default_rng(sum(kernel) + chunk)
    n = Node("mp", "maxpool2d", ("input",), kernel=kernel, stride=stride, padding=padding)
    steps, shape = 13, (3, 2, 7, 6)
    spikes = (rng.random((steps, *shape)) < 0.15).astype(np.float32)
    counts, want, ties = np.zeros(shape, np.float32), [], 0
    for t in range(steps):
        counts += spikes[t]
        want.append(maxpool_gate(n, counts, spikes[t]))
        ties += _deciding_ties(n, counts, spikes[t])
    assert ties > 5  # ties between positions with different spikes happened, so their order mattered
    gate = tk.MaxPoolGate(n, shape[1:], shape[0], torch.device("cpu"))
    got = [gate(torch.from_numpy(spikes[t0 : t0 + chunk]), True).numpy() for t0 in range(0, steps, chunk)]
    np.testing.assert_array_equal(np.concatenate(got), np.stack(want))
    np.testing.assert_array_equal(gate.total().numpy(), np.stack(want).sum(axis=(0, 1)).astype(np.int64))


def _deciding_ties(n, counts, spikes) -> int:
    """Windows whose largest count is held by positions with different spikes."""
    from snnbalance.graph_ops import padded
    from snnbalance.ops import _windows

    c, pad = padded(counts, n.padding, -1.0)
    s, _ = padded(spikes, n.padding)
    cw = _windows(c, n.kernel, n.stride, pad, -1).reshape(*counts.shape[:2], -1, n.kernel[0] * n.kernel[1])
    sw = _windows(s, n.kernel, n.stride, pad).reshape(cw.shape)
    top = cw == cw.max(axis=-1, keepdims=True)
    return int(((np.where(top, sw, 2).min(-1) == 0) & (np.where(top, sw, -1).max(-1) == 1)).sum())


def _graph(shape, nodes) -> Graph:
    g = Graph(shape, nodes)
    g.validate()
    return g


def residual_graph(seed=1) -> Graph:
    """Two nodes read the input: a synaptic-only conv (nodes[0], with a bias map) and a spiking conv;
    an add of three terms with scales (the synaptic-only current, spikes, the input itself);
    a concat of the add's spikes and the input, a maxpool of the concat with asymmetric padding."""
    rng = np.random.default_rng(seed)
    return _graph(
        (2, 6, 6),
        [
            Node("lin", "conv2d", ("input",), weight=dyadic(rng, (2, 2, 3, 3)), bias=dyadic(rng, (2, 6, 6), 0.1), padding=(1, 1)),
            Node("c1", "conv2d", ("input",), weight=dyadic(rng, (2, 2, 1, 1)), bias=dyadic(rng, 2, 0.1), relu=True, threshold=0.5),
            Node("add", "add", ("lin", "c1", "input"), scales=(1.5, 0.5, 0.25), relu=True, threshold=0.75),
            Node("cat", "concat", ("add", "input")),
            Node("mp", "maxpool2d", ("cat",), kernel=(2, 2), stride=(2, 2), padding=(0, 0, 1, 1)),
            Node("lin2", "conv2d", ("mp",), weight=dyadic(rng, (4, 4, 3, 3)), padding=(1, 1)),
            Node("add2", "add", ("lin2", "mp", "lin2"), scales=(1.0, 1.0, 0.5), relu=True, threshold=0.625),
            Node("f", "flatten", ("add2",)),
            Node("out", "dense", ("f",), weight=dyadic(rng, (3, 36), 0.3), bias=dyadic(rng, 3, 0.1)),
        ],
    )


def pooling_graph(seed=0) -> Graph:
    """Max pooling straight on the input (a gate of a constant current under current encoding),
    average pooling with asymmetric padding, with padding over half the window (torch's pooling
    refuses it) and global (a 3x3 window: not a power of two), a conv with a bias map after them."""
    rng = np.random.default_rng(seed)
    return _graph(
        (2, 9, 9),
        [
            Node("mp", "maxpool2d", ("input",), kernel=(3, 3), stride=(1, 1), padding=(1, 1)),
            Node("ap", "avgpool2d", ("mp",), kernel=(2, 2), stride=(1, 1), padding=(1, 1, 0, 0), threshold=0.25),
            Node("ap2", "avgpool2d", ("ap",), kernel=(3, 3), stride=(3, 3), padding=(2, 2), threshold=0.375),
            Node(
                "c",
                "conv2d",
                ("ap2",),
                weight=dyadic(rng, (3, 2, 2, 2), 0.6),
                bias=dyadic(rng, (3, 4, 4), 0.1),
                padding=(0, 1, 1, 0),
                relu=True,
                threshold=0.5,
            ),
            Node("gap", "avgpool2d", ("c",), kernel=(3, 3), stride=(3, 3), threshold=0.25),
            Node("f", "flatten", ("gap",)),
            Node("f2", "flatten", ("ap2",)),
            Node("cat", "concat", ("f", "f2")),
            Node("out", "dense", ("cat",), weight=dyadic(rng, (3, 35), 0.5)),
        ],
    )


def bias_map_first_graph(seed=0) -> Graph:
    """A padded first conv with a per-position bias (a folded input normalization), then a dense head."""
    rng = np.random.default_rng(seed)
    return _graph(
        (1, 5, 5),
        [
            Node(
                "c",
                "conv2d",
                ("input",),
                weight=dyadic(rng, (3, 1, 3, 3), 0.6),
                bias=dyadic(rng, (3, 5, 5), 0.2),
                padding=(1, 1),
                relu=True,
                threshold=0.5,
            ),
            Node("f", "flatten", ("c",)),
            Node("out", "dense", ("f",), weight=dyadic(rng, (4, 75), 0.3)),
        ],
    )


GRAPHS = [residual_graph, pooling_graph, bias_map_first_graph]
CASES = [dict(), dict(encoding="current"), dict(encoding="current", reset="subtract", refractory=1.0), dict(reset="subtract")]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("neuron", ["torch", "sj", pytest.param("triton", marks=NEEDS_TRITON)])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()) or "poisson")
@pytest.mark.parametrize("make", GRAPHS)
def test_kinds_by_hand_match_the_reference(make, case, neuron, device):
    g = make()
    x = exact_inputs(5, g.input_shape, 1)
    steps = 10 if neuron == "triton" else 24
    want = compare(
        g,
        x,
        cfg_of(1, steps=steps, **case),
        neuron,
        3 if neuron == "triton" else 5,
        device,
        key=(make.__name__, steps, tuple(sorted(case.items()))),
    )
    assert all(v.sum() > 0 for k, v in want[1].items() if k != "input")  # every layer spikes


def test_constants_under_current_encoding_include_every_node_that_reads_only_the_input():
    """Not only nodes[0]: the synaptic-only conv and the spiking conv both read the input; the add
    also reads other spikes, so it is stepped; a max-pool gate of the input is stepped too."""
    g = residual_graph()
    x = exact_inputs(2, g.input_shape)
    fixed, currents = tk._constants(g, x, cfg_of(encoding="current"))
    assert sorted(fixed) == ["input", "lin"] and sorted(currents) == ["c1"]
    fixed, currents = tk._constants(pooling_graph(), exact_inputs(2, (2, 9, 9)), cfg_of(encoding="current"))
    assert sorted(fixed) == ["input"] and not currents


@NEEDS_TRITON
def test_triton_formats_on_a_dag():
    """A node read by several layers writes what they all take, else float32; adds, concats and
    gates take float32."""
    g = residual_graph()
    fmt = tk.TorchNet(g, "cpu", "bf16x2", "triton").formats
    assert fmt["input"] == (torch.float32, 1)  # read by bf16 convs, an add and a concat: they disagree
    assert fmt["mp"] == (torch.float32, 1)  # read by a bf16 conv and an add
    assert fmt["add2"] == (torch.bfloat16, 2)  # through a flatten, by a dense layer with two bf16 parts
    assert fmt["add"] == (torch.float32, 1)  # by a concat


def test_supported_kinds_are_every_kind_the_graph_knows():
    from snnbalance.graph import OPS

    assert set(tk.SUPPORTED_KINDS) == {*OPS, "bias-map", "asym-pad"}
    for s in SEEDS:
        random_dag(s).require(tk.SUPPORTED_KINDS, "the torch engine")


def test_chunk_steps_counts_the_gates_and_merges():
    """The budget holds: a max-pool gate's windows and picks, an add's terms count; big networks
    get short chunks, never none."""
    base = [Node("c", "conv2d", ("input",), weight=np.ones((8, 3, 3, 3), np.float32), padding=(1, 1), relu=True)]
    head = [Node("f", "flatten", ("p",)), Node("out", "dense", ("f",), weight=np.ones((2, 8 * 256), np.float32))]
    avg = Graph((3, 32, 32), [*base, Node("p", "avgpool2d", ("c",), kernel=(2, 2), stride=(2, 2)), *head])
    mx = Graph((3, 32, 32), [*base, Node("p", "maxpool2d", ("c",), kernel=(2, 2), stride=(2, 2)), *head])
    budget = 64 * 2**20
    assert tk.chunk_steps(mx, 16, 1000, budget) < tk.chunk_steps(avg, 16, 1000, budget)
    assert tk.chunk_steps(mx, 4096, 1000, budget) == 1
    assert tk.chunk_steps(avg, 1, 10, budget) == 10


def test_triton_kernels_do_not_import_the_torch_engine():
    """No import circle: the hash helpers live in torch_hash, which both engines import."""
    import subprocess
    import sys

    code = (
        "import sys; from snnbalance.simulate import triton_kernels; "
        "print('snnbalance.simulate.torch_kernels' in sys.modules, 'snnbalance.simulate.torch_hash' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True"]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("neuron", ["torch", "sj"])
@pytest.mark.parametrize("reset", ["zero", "subtract"])
@pytest.mark.parametrize("encoding", ["poisson", "current"])
@pytest.mark.parametrize("seed", SEEDS[:3])
def test_membrane_readout_matches_the_reference(seed, encoding, reset, neuron, device):
    # the output layer integrates without spiking: same correct count per step, same potentials
    g = random_dag(seed)
    x = exact_inputs(6, g.input_shape, seed)
    want = compare(
        g,
        x,
        cfg_of(seed, encoding=encoding, reset=reset, readout="membrane", v_init=0.5 if seed % 2 else None),
        neuron,
        CHUNKS[seed % 3],
        device,
    )
    assert want[2].dtype == np.float32 and np.abs(want[2]).sum() > 0
    assert not want[1][g.output.name].any()


@NEEDS_TRITON
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("encoding", ["poisson", "current"])
def test_triton_neurons_with_the_membrane_readout(encoding, device):
    g = random_dag(12)
    x = exact_inputs(4, g.input_shape, 12)
    want = compare(g, x, cfg_of(12, steps=10, encoding=encoding, reset="subtract", readout="membrane"), "triton", 3, device)
    assert want[2].dtype == np.float32 and np.abs(want[2]).sum() > 0
