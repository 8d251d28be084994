"""The spikingjelly back end against the NumPy reference, which defines the semantics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import has_data

from snnbalance.errors import SnnBalanceError
from snnbalance.graph import Graph, Node
from snnbalance.plugins import registry
from snnbalance.simulate import SimConfig, encoding, native, numpy_ref, simulate
from snnbalance.simulate import torch_kernels as tk
from snnbalance.simulate import triton_kernels as tri
from snnbalance.simulate.triton_kernels import triton

HAVE_CUDA = torch.cuda.is_available()
HAVE_NATIVE = native.load() is not None
HAVE_TRITON = tri.available() is None
# Parametrize over every device and engine, installed or not: what is missing shows as a skip
# with its reason instead of vanishing from the test list.
NEEDS_CUDA = pytest.mark.skipif(not HAVE_CUDA, reason="needs CUDA (torch.cuda.is_available() is False)")
NEEDS_NATIVE = pytest.mark.skipif(not HAVE_NATIVE, reason="no C compiler: the native engine is not available")
NEEDS_TRITON = pytest.mark.skipif(not HAVE_TRITON, reason=f"no triton: {tri.available()}")
DEVICES = ["cpu", pytest.param("cuda", marks=NEEDS_CUDA)]
NEURONS = ["sj", "torch", pytest.param("triton", marks=NEEDS_TRITON)]


def _engine(device: str, **engine: str):
    """A (device, engine options) parameter, skipped with a reason where that engine cannot run."""
    marks = ([NEEDS_CUDA] if device == "cuda" else []) + ([NEEDS_NATIVE] if engine["engine"] == "native" else [])
    marks += [NEEDS_TRITON] if engine.get("neuron") == "triton" else []
    return pytest.param(device, engine, id="-".join([device, *engine.values()]), marks=marks)


# every engine on every device it supports (the triton neurons run on the CPU in Triton's
# interpreter: the kernel source the GPU compiles, run in NumPy)
ENGINES = [_engine("cpu", engine="native")]
ENGINES += [_engine(d, engine="torch", neuron=nrn) for d in ("cpu", "cuda") for nrn in ("sj", "torch", "triton")]


def _w(rng, shape, scale):
    """Normal weights rounded to multiples of 2**-8 (at most 8 significant bits, so exact in bf16
    and tf32 too). With spikes of 0/1, inputs that are multiples of 2**-8 (:func:`data`) and dyadic
    thresholds, every potential is a sum of exact terms that float32 holds exactly in any order:
    an engine that sums in another order than the reference must still give its spikes exactly."""
    return (np.round(rng.normal(0, scale, shape) * 256) / 256).astype(np.float32)


def conv_graph(seed=0) -> Graph:
    """conv (stride 1, padding 1, bias) -> avgpool 2 -> conv (stride 2, padding 1) -> avgpool 3
    (padded: a divisor that is not a power of two) -> flatten -> dense (bias) -> dense."""
    rng = np.random.default_rng(seed)
    g = Graph(
        (2, 10, 10),
        [
            Node("c1", "conv2d", ("input",), weight=_w(rng, (5, 2, 3, 3), 0.4), bias=_w(rng, 5, 0.05), padding=(1, 1), relu=True),
            Node("p1", "avgpool2d", ("c1",), kernel=(2, 2), stride=(2, 2), threshold=0.75),
            Node("c2", "conv2d", ("p1",), weight=_w(rng, (20, 5, 3, 3), 0.5), stride=(2, 2), padding=(1, 1), relu=True),
            Node("p2", "avgpool2d", ("c2",), kernel=(3, 3), stride=(1, 1), padding=(1, 1), threshold=0.375),
            Node("f", "flatten", ("p2",)),
            Node("d1", "dense", ("f",), weight=_w(rng, (24, 180), 0.3), bias=_w(rng, 24, 0.05), relu=True),
            Node("out", "dense", ("d1",), weight=_w(rng, (4, 24), 0.5), threshold=1.0),
        ],
    )
    g.validate()
    return g


def mlp_graph(seed=1) -> Graph:
    """Dense layers wider than one 128-neuron tile, with biases; many spikes."""
    rng = np.random.default_rng(seed)
    g = Graph(
        (1, 8, 8),
        [
            Node("f", "flatten", ("input",)),
            Node("h1", "dense", ("f",), weight=_w(rng, (150, 64), 0.4), bias=_w(rng, 150, 0.02), relu=True),
            Node("h2", "dense", ("h1",), weight=_w(rng, (140, 150), 0.15), relu=True, threshold=0.75),
            Node("out", "dense", ("h2",), weight=_w(rng, (10, 140), 0.2)),
        ],
    )
    g.validate()
    return g


def data(shape, n=24, seed=3, classes=4):
    """Inputs in [0, 1] that are multiples of 2**-8 (exact products with :func:`_w`'s weights)."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 257, (n, *shape)) / 256).astype(np.float32), rng.integers(0, classes, n)


def assert_equal(ref, got):
    """Every spike count, output count and accuracy point equal to the reference's."""
    assert got.samples == ref.samples and got.steps == ref.steps
    assert got.spike_counts == ref.spike_counts
    np.testing.assert_array_equal(got.output_counts, ref.output_counts)
    np.testing.assert_array_equal(got.accuracy_over_time, ref.accuracy_over_time)


def assert_matches(ref, got):
    """Final accuracy within 0.1 % and every layer's spike count within 0.5 % of the reference.

    Only for trained networks, whose weights are not exact sums in float32: there a potential within
    a rounding error of the threshold may fire a step earlier or later when another engine sums a
    step's inputs in another order (measured: 1 spike in 5.4 million on the trained MLP, none on
    the CNN, docs/performance.md). Everywhere else the tests use exact inputs and :func:`assert_equal`.
    """
    assert abs(got.final_accuracy - ref.final_accuracy) <= 0.001 + 1e-12
    for layer, n in ref.spike_counts.items():
        assert abs(got.spike_counts[layer] - n) <= 0.005 * max(n, 1), (layer, n, got.spike_counts[layer])
    assert got.samples == ref.samples and got.steps == ref.steps


def run(graph, x, y, device="cpu", simulator="spikingjelly", options=None, **kw):
    cfg = SimConfig(
        duration=kw.pop("duration", 50),
        max_rate=kw.pop("max_rate", 700),
        device=device,
        batch_size=kw.pop("batch_size", 16),
        options=dict(options or {}),
        **kw,
    )
    return simulate(graph, x, y, cfg, simulator=simulator)


# -- input spikes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("seed", [0, 7, 2**40 + 12345])
def test_torch_hash_equals_numpy_hash(device, seed):
    index = np.array([0, 1, 5, 999, 2**32 + 3])
    want = encoding.pixel_keys(seed, index, 300)
    got = tk.pixel_keys(seed, torch.tensor(index, device=device), 300).cpu().numpy()
    np.testing.assert_array_equal(got, want.astype(np.int64))


SOURCES = [pytest.param(tk.TorchPoisson, id="TorchPoisson"), pytest.param(tri.TritonPoisson, id="TritonPoisson", marks=NEEDS_TRITON)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("source", SOURCES)
def test_device_poisson_spikes_equal_reference_source(device, source):
    x, _ = data((1, 6, 6), n=5)
    x[0, 0, 0, 0], x[1, 0, :2] = 1.0, 0.0  # p = 1 always spikes, p = 0 never
    index = np.array([3, 4, 10, 11, 2**33 + 12])
    ref = encoding.PoissonSource(x, index, seed=9, max_rate=800, dt=1.0)
    src = source(x, index, seed=9, max_rate=800, dt=1.0, device=device)
    got = src.chunk(0, 40).cpu().numpy()
    for t in (0, 1, 2, 17, 39):
        np.testing.assert_array_equal(got[t], ref.step(t))
    np.testing.assert_array_equal(src.total().cpu().numpy(), sum(ref.step(t) for t in range(40)).sum(axis=0))
    np.testing.assert_array_equal(src.chunk(1000, 1).cpu().numpy()[0], ref.step(1000))


@NEEDS_TRITON
@pytest.mark.parametrize("device", DEVICES)
def test_triton_poisson_writes_bf16_copies_side_by_side(device):
    x, _ = data((2, 5, 5), n=3)
    ref = encoding.PoissonSource(x, np.arange(3), seed=1, max_rate=600, dt=1.0)
    got = tri.TritonPoisson(x, np.arange(3), seed=1, max_rate=600, dt=1.0, device=device).chunk(7, 4, torch.bfloat16, 3)
    assert got.shape == (4, 3, 3 * 50) and got.dtype == torch.bfloat16
    for t in range(4):
        want = ref.step(7 + t).reshape(3, 50)
        for c in range(3):
            np.testing.assert_array_equal(got[t, :, c * 50 : (c + 1) * 50].float().cpu().numpy(), want)


# -- equality with the reference ----------------------------------------------------------------------

CASES = [
    dict(),
    dict(reset="subtract"),
    dict(refractory=2.0),
    dict(reset="subtract", refractory=3.0),
    dict(encoding="current"),
    dict(encoding="current", reset="subtract", refractory=1.0),
]


_REFERENCE: dict = {}


def reference(make, case):
    """The NumPy reference result, computed once per (network, case) for all engines."""
    key = (make.__name__, tuple(sorted(case.items())))
    if key not in _REFERENCE:
        g = make()
        x, y = data(g.input_shape, classes=g.output.weight.shape[0])
        _REFERENCE[key] = (g, x, y, run(g, x, y, simulator="numpy", **case))
    return _REFERENCE[key]


@pytest.mark.parametrize("device,engine", ENGINES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()) or "default")
@pytest.mark.parametrize("make", [conv_graph, mlp_graph])
def test_matches_numpy_reference(make, case, device, engine):
    """Exact inputs (see :func:`_w`): not close, equal."""
    g, x, y, ref = reference(make, case)
    # Triton's interpreter costs per step and operation, hardly per neuron: all 24 images in one batch
    batch = {"batch_size": 24} if engine.get("neuron") == "triton" and device == "cpu" else {}
    got = run(g, x, y, device, options=engine, **case, **batch)
    assert sum(ref.spike_counts.values()) > 1000  # the comparison is about real activity
    assert_equal(ref, got)


@pytest.mark.parametrize("device,engine", ENGINES)
def test_chunk_size_does_not_change_results(device, engine):
    g = conv_graph(seed=5)
    x, y = data(g.input_shape, n=10)
    one = run(g, x, y, device, duration=40, options={**engine, "chunk": "1"})
    many = run(g, x, y, device, duration=40, options={**engine, "chunk": "64"})
    odd = run(g, x, y, device, duration=40, options={**engine, "chunk": "7"})
    for other in (many, odd):
        assert other.spike_counts == one.spike_counts
        np.testing.assert_array_equal(other.accuracy_over_time, one.accuracy_over_time)
        np.testing.assert_array_equal(other.output_counts, one.output_counts)


# -- the fused triton kernels ----------------------------------------------------------------------


@NEEDS_TRITON
@pytest.mark.parametrize("block", [256, 16384])
@pytest.mark.parametrize(
    "case", [dict(), dict(reset="subtract", refractory=3.0), dict(encoding="current")], ids=["default", "subtract-refractory", "current"]
)
def test_triton_neurons_give_the_torch_neurons_spikes_exactly(case, block, monkeypatch):
    """Same float32 operations in the same order: not close, equal; with many small programs
    (blocks that straddle samples, a masked tail) as with one large one."""
    monkeypatch.setattr(tri, "BLOCK_CPU", block)
    g = conv_graph(seed=2)
    x, y = data(g.input_shape, n=6)
    want = run(g, x, y, duration=30, batch_size=6, options={"engine": "torch", "neuron": "torch"}, **case)
    got = run(g, x, y, duration=30, batch_size=6, options={"engine": "torch", "neuron": "triton", "chunk": "7"}, **case)
    assert sum(want.spike_counts.values()) > 1000
    assert got.spike_counts == want.spike_counts
    np.testing.assert_array_equal(got.output_counts, want.output_counts)
    np.testing.assert_array_equal(got.accuracy_over_time, want.accuracy_over_time)


@NEEDS_TRITON
def test_triton_layers_write_what_their_consumer_takes():
    """bf16 copies for a split dense layer, looking through a flatten; float32 for the rest."""
    net = tk.TorchNet(conv_graph(), "cpu", "bf16x2", "triton")
    fmt = net.formats
    assert fmt["p2"] == (torch.bfloat16, 2)  # p2 -> flatten -> d1 (dense, split)
    assert fmt["d1"] == (torch.bfloat16, 2)
    assert fmt["input"] == fmt["p1"] == (torch.bfloat16, 1)  # read by the bf16-part convolutions c1, c2
    assert fmt["c1"] == fmt["c2"] == (torch.uint8, 1) and "out" not in fmt  # counted by the pooling kernel
    assert tk.TorchNet(conv_graph(), "cpu", "fp32", "triton").formats["c1"] == (torch.uint8, 1)
    assert tk.TorchNet(conv_graph(), "cpu", "bf16x2", "sj").formats["p2"] == (torch.float32, 1)


@NEEDS_TRITON
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("parts", [1, 2, 3])
@pytest.mark.parametrize(
    "cin,cout,hw,kernel,stride,padding",
    [(2, 5, (10, 10), (3, 3), (1, 1), (1, 1)), (12, 64, (12, 12), (5, 5), (1, 1), (0, 0)), (3, 70, (7, 9), (3, 2), (2, 1), (1, 0))],
)
@pytest.mark.parametrize("tuned", [None, True], ids=["default", "autotuned"])
def test_triton_conv_of_spikes_sums_the_bf16_parts_in_float32(cin, cout, hw, kernel, stride, padding, parts, device, tuned):
    """``tuned``: the CUDA launch (autotuner, grid from the chosen block shape) also on the CPU."""
    rng = np.random.default_rng(cin)
    w = torch.from_numpy(rng.normal(0, 0.3, (cout, cin, *kernel)).astype(np.float32))
    x = torch.from_numpy((rng.random((5, cin, *hw)) < 0.3).astype(np.float32))
    split = tk.split_weight(w, "bf16", parts)
    want = torch.nn.functional.conv2d(x.double(), sum(p.double() for p in split), stride=stride, padding=padding)
    got = tri.conv2d_split(x.to(torch.bfloat16).to(device), tri.conv_weight_parts(split).to(device), kernel, stride, padding, tuned).cpu()
    assert got.dtype == torch.float32 and got.shape == want.shape
    # exact products, float32 sums of at most cin * kh * kw * parts terms
    tol = 4 * 2**-24 * cin * kernel[0] * kernel[1] * parts * w.abs().max().item()
    assert (got.double() - want).abs().max().item() <= tol
    if parts > 1:  # the low parts are really added: without them the sums differ
        hi_only = torch.nn.functional.conv2d(x.double(), split[0].double(), stride=stride, padding=padding)
        assert (hi_only - want).abs().max().item() > tol


def _compile_for_hopper(fn, pointers: dict, constexprs: dict, num_warps: int = 4):
    """Compile a kernel of :mod:`triton_kernels` for an H100/H200 (sm_90) without a GPU: PTX and cubin."""
    import inspect

    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    params = inspect.signature(fn).parameters
    constexprs = {**{a: p.default for a, p in params.items() if p.default is not inspect.Parameter.empty}, **constexprs}
    sig = {a: pointers.get(a, "constexpr" if a in constexprs else ("fp32" if a == "thr" else "i32")) for a in params}
    src = ASTSource(fn=tri._kernel(fn, torch.device("cuda")), signature=sig, constexprs=constexprs)
    return triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": num_warps})


def _have_ptxas() -> bool:
    from pathlib import Path

    return HAVE_TRITON and (Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas").exists()


@pytest.mark.skipif(not _have_ptxas(), reason="no triton with its CUDA backend (ptxas)")
def test_triton_kernels_compile_for_the_gpu_with_the_intended_instructions():
    """What the interpreter cannot check: the kernels compile for sm_90 as the GPU will compile them,
    the hash's shifts are logical (uint32) and the convolution runs on the tensor cores."""
    poisson = _compile_for_hopper(
        tri._poisson_kernel,
        {"key_ptr": "*i32", "thr_ptr": "*i64", "step_ptr": "*i32", "out_ptr": "*bf16", "cnt_ptr": "*i32"},
        {"COPIES": 2, "BLOCK": tri.BLOCK_CUDA},
    )
    ptx = poisson.asm["ptx"]
    assert "shr.u32" in ptx and "shr.s32" not in ptx and "cvt.u64.u32" in ptx  # zero-extended for the compare
    for cur, out, flags, pool in (
        ("*fp32", "*bf16", (True, False, True, 2), {}),
        ("*fp32", "*u8", (False, True, False, 1), {}),
        ("*u8", "*bf16", (False, True, False, 1), dict(POOL=True, PKH=2, PKW=2)),
    ):
        neurons = _compile_for_hopper(
            tri._if_kernel,
            {
                "cur_ptr": cur,
                "bias_ptr": "*fp32",
                "v_ptr": "*fp32",
                "r_ptr": "*i32",
                "out_ptr": out,
                "cnt_ptr": "*i32",
                "table_ptr": "*fp32",
            },
            dict(zip(("HAS_BIAS", "ZERO_RESET", "REFR", "COPIES"), flags), BLOCK=tri.BLOCK_CUDA, **pool),
        )
        assert neurons.asm["cubin"]
    # the paper CNN's two convolutions: 12 channels (BN 16) at bf16x2, 64 channels (BN 64) at bf16x3
    for (bm, bk, warps), (parts, bn) in zip(tri.CONV_CONFIGS * 2, [(2, 16)] * 4 + [(3, 64)] * 4):
        conv = _compile_for_hopper(
            tri._conv_kernel,
            {"x_ptr": "*bf16", "w_ptr": "*bf16", "out_ptr": "*fp32"},
            dict(KH=5, KW=5, PARTS=parts, BM=bm, BN=bn, BK=bk, DOT_F32=False),
            warps,
        )
        assert "wgmma" in conv.asm["ptx"] and conv.asm["cubin"]


@NEEDS_TRITON
def test_a_failing_triton_kernel_is_one_clear_line(monkeypatch):
    class Broken:
        __name__ = "_if_kernel"

        def __getitem__(self, grid):
            def launch(*args, **meta):
                raise ValueError("out of resources: shared memory\n  traceback detail")

            return launch

    monkeypatch.setattr(tri, "_kernel", lambda fn, device: Broken())
    g = mlp_graph()
    x, y = data(g.input_shape, n=2)
    with pytest.raises(
        SnnBalanceError,
        match=r"^triton kernel _if_kernel failed: out of resources: shared memory "
        r"\(use --sim-option neuron=sj\)$",
    ):
        run(g, x, y, duration=3, options={"engine": "torch", "neuron": "triton"})


def test_triton_neurons_without_triton_are_one_clear_error(monkeypatch):
    monkeypatch.setattr(tri, "triton", None)
    g = mlp_graph()
    x, y = data(g.input_shape, n=2)
    with pytest.raises(SnnBalanceError, match="triton package"):
        run(g, x, y, options={"engine": "torch", "neuron": "triton"})


# -- reduced precisions of the torch engine -----------------------------------------------------------


@pytest.mark.parametrize(
    "fmt,parts,bound", [("bf16", 1, 2**-8), ("bf16", 2, 2**-16), ("bf16", 3, 2**-24), ("tf32", 1, 2**-11), ("tf32", 2, 2**-22)]
)
def test_split_weight_parts_are_exact_in_their_format_and_sum_to_the_weight(fmt, parts, bound):
    w = torch.from_numpy(np.random.default_rng(0).normal(0, 0.3, (64, 50)).astype(np.float32))
    got = tk.split_weight(w, fmt, parts)
    assert len(got) == parts
    for p in got:
        if fmt == "bf16":
            assert p.dtype == torch.bfloat16
        else:  # a tf32 value has its 13 low mantissa bits clear
            assert p.dtype == torch.float32 and not (p.view(torch.int32) & 0x1FFF).any()
    total = sum(p.double() for p in got)
    rel = ((total - w.double()).abs() / w.double().abs()).max().item()
    assert rel <= bound
    if parts > 1:  # each further part makes the sum strictly better
        less = sum(p.double() for p in got[:-1])
        assert ((less - w.double()).abs() / w.double().abs()).max().item() > rel


def test_round_tf32_rounds_to_nearest():
    x = torch.tensor([1.0, 1.0 + 2**-11, 1.0 + 2**-10 + 2**-12, -3.0 - 2**-9 - 2**-11], dtype=torch.float32)
    want = torch.tensor([1.0, 1.0 + 2**-10, 1.0 + 2**-10, -3.0 - 2**-9], dtype=torch.float32)  # ulp of 3 is 2**-9
    assert torch.equal(tk.round_tf32(x), want)


# the triton neurons change the products of the bf16 splits only (tf32 parts: the same products)
SPLITS = [(p, "sj") for p in ("tf32", "tf32x2", "bf16x2", "bf16x3")]
SPLITS += [pytest.param(p, "triton", marks=NEEDS_TRITON) for p in ("bf16x2", "bf16x3")]


@pytest.mark.parametrize("precision,neuron", SPLITS)
@pytest.mark.parametrize("make", [conv_graph, mlp_graph])
def test_split_precision_code_path_matches_reference_on_cpu(make, precision, neuron):
    """The split products run on the CPU too (in fp32 arithmetic, no tensor cores): same contract,
    through the same probe as on a GPU.

    The weights have 8 significant bits (:func:`_w`), exact in every part format, so the probe must
    keep the split and the spikes must be the reference's exactly.
    With the triton neurons, bf16 dense layers take their input as stacked copies (one product)
    and convolutions use bf16 parts too (implicit-GEMM kernel).
    """
    from snnbalance.simulate.engines import _checked_net

    g, x, y, ref = reference(make, {})
    idx = np.arange(len(x))
    cfg = SimConfig(duration=50, max_rate=700)
    fast = tk.TorchNet(g, "cpu", precision, neuron)
    assert bool(fast.stacked) == (neuron == "triton" and precision.startswith("bf16"))
    assert bool(fast.conv_parts) == (neuron == "triton" and precision.startswith("bf16") and make is conv_graph)
    net = _checked_net(g, "cpu", precision, neuron, x, idx, y, cfg)
    assert net.precision == precision  # exact parts cannot change a spike: no reason to refuse
    correct, spikes, _ = tk.step_batch(net, x, idx, y, cfg, 16)
    assert correct[-1] / len(x) == ref.final_accuracy
    assert {layer: int(s.sum()) for layer, s in spikes.items() if layer in ref.spike_counts} == ref.spike_counts


@NEEDS_CUDA
@pytest.mark.parametrize("neuron", NEURONS)
@pytest.mark.parametrize("precision", ["tf32", "tf32x2", "bf16x2", "bf16x3"])
@pytest.mark.parametrize("make", [conv_graph, mlp_graph])
def test_reduced_precision_on_cuda_matches_reference(make, precision, neuron):
    """With tensor cores: the weights are exact in every part format (:func:`_w`), so every spike."""
    g, x, y, ref = reference(make, {})
    got = run(g, x, y, "cuda", options={"engine": "torch", "precision": precision, "neuron": neuron})
    assert got.engine.endswith(precision), got.engine  # the probe kept the exact split
    assert_equal(ref, got)


@pytest.fixture(scope="module")
def trained_mlp():
    """A PaperMLP trained for one epoch on MNIST with the seeded recipe (seconds on a GPU)."""
    from snnbalance.train import train

    result = train("mlp", epochs=1, seed=0, device="cuda")
    assert result.test_accuracy > 0.95  # a trained network, not a random one
    return result.model


@NEEDS_CUDA
@pytest.mark.skipif(not has_data(), reason="MNIST not found under $SNNBALANCE_DATA")
@pytest.mark.parametrize("neuron", NEURONS)
@pytest.mark.parametrize("precision", ["fp32", "tf32x2", "bf16x2", "bf16x3"])
@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_trained_network_on_cuda_matches_cpu(arch, precision, neuron, request):
    """A trained MNIST network, 500 images x 300 steps: CUDA against the CPU engines' result.

    The CNN is the embedded one; the MLP is trained here (:func:`trained_mlp`). Trained weights
    are not exact float32 sums, hence :func:`assert_matches`' tolerances.
    """
    from snnbalance.bench import to_graph, trained_model
    from snnbalance.data import calibration_slice, load_dataset
    from snnbalance.normalize import normalize
    from snnbalance.records import Calibration

    model = request.getfixturevalue("trained_mlp") if arch == "mlp" else trained_model(arch, None)[0]
    graph = to_graph(model)
    xt, _ = load_dataset("mnist", "train")
    xe, ye = load_dataset("mnist", "test")
    bal = normalize(graph, "data-based", calibration=Calibration(calibration_slice(xt, 500, seed=0))).graph
    x, y = xe[:500], ye[:500]
    cpu = run(bal, x, y, "cpu", duration=300, max_rate=1000, batch_size=250)
    got = run(
        bal,
        x,
        y,
        "cuda",
        duration=300,
        max_rate=1000,
        batch_size=500,
        options={"engine": "torch", "precision": precision, "neuron": neuron},
    )
    assert_matches(cpu, got)


@NEEDS_NATIVE
def test_native_is_exact_where_no_sum_order_is_involved():
    """Pooling, constant-current input and the output bookkeeping are bit-identical: on a network
    whose only weighted layer sums one input, every spike matches."""
    g = Graph(
        (1, 6, 6),
        [
            Node("p", "avgpool2d", ("input",), kernel=(3, 3), stride=(1, 1), padding=(1, 1), threshold=0.45),
            Node("f", "flatten", ("p",)),
            Node("out", "dense", ("f",), weight=np.eye(36, dtype=np.float32)[:3] * 0.7),
        ],
    )
    x, y = data((1, 6, 6), classes=3)
    for case in CASES:
        ref = run(g, x, y, simulator="numpy", **case)
        got = run(g, x, y, options={"engine": "native"}, **case)
        assert got.spike_counts == ref.spike_counts, case
        np.testing.assert_array_equal(got.output_counts, ref.output_counts)
        np.testing.assert_array_equal(got.accuracy_over_time, ref.accuracy_over_time)


@NEEDS_NATIVE
def test_native_batches_and_threads_do_not_change_results():
    g = mlp_graph()
    x, y = data(g.input_shape, n=20, classes=10)
    a = run(g, x, y, batch_size=20, options={"engine": "native", "threads": "1"})
    b = run(g, x, y, batch_size=7, options={"engine": "native", "threads": "2"})
    assert a.spike_counts == b.spike_counts
    np.testing.assert_array_equal(a.output_counts, b.output_counts)


# -- plugin and errors -------------------------------------------------------------------------------


def test_registered_as_plugin():
    sim = registry().simulator("spikingjelly")
    assert set(sim.devices) == {"cpu", "cuda"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_unavailable_is_a_clear_error():
    g = mlp_graph()
    x, y = data(g.input_shape, n=2, classes=10)
    with pytest.raises(SnnBalanceError, match="CUDA is not available on this machine; use --device cpu"):
        run(g, x, y, "cuda")


def test_unknown_or_bad_options_are_rejected():
    g = mlp_graph()
    x, y = data(g.input_shape, n=2, classes=10)
    with pytest.raises(SnnBalanceError, match="unknown spikingjelly option"):
        run(g, x, y, options={"turbo": "1"})
    with pytest.raises(SnnBalanceError, match="engine must be one of"):
        run(g, x, y, options={"engine": "fast"})
    with pytest.raises(SnnBalanceError, match="needs --device cuda"):
        run(g, x, y, options={"engine": "torch", "precision": "tf32"})
    with pytest.raises(SnnBalanceError, match="neuron option applies to the torch engine"):
        run(g, x, y, options={"engine": "native", "neuron": "torch"})


def test_naming_a_neuron_kind_selects_the_torch_engine():
    g = mlp_graph()
    x, y = data(g.input_shape, n=2, classes=10)
    assert run(g, x, y, duration=5, options={"neuron": "torch"}).engine == "torch/torch/fp32"


def test_reference_step_batch_contract_is_kept():
    """Both engines return what numpy_ref.step_batch returns, key for key."""
    g = conv_graph()
    x, y = data(g.input_shape, n=3)
    cfg = SimConfig(duration=5)
    want = numpy_ref.step_batch(g, x, np.arange(3), y, cfg)
    got = tk.step_batch(tk.TorchNet(g, "cpu"), x, np.arange(3), y, cfg, 2)
    assert set(got[1]) == set(want[1]) and got[0].shape == want[0].shape and got[2].shape == want[2].shape
    if HAVE_NATIVE:
        got = native.step_batch(native.load(), native.Plan(g), x, np.arange(3), y, cfg, 1, 2)
        assert set(got[1]) == set(want[1]) and got[2].dtype == want[2].dtype


def test_cpu_falls_back_to_torch_without_a_compiler(monkeypatch):
    from snnbalance.simulate import spikingjelly as sj

    monkeypatch.setattr(native, "load", lambda: None)
    g = mlp_graph()
    _, engine = sj.make_stepper(g, SimConfig())
    assert engine.startswith("torch/sj")
    with pytest.raises(SnnBalanceError, match="native engine cannot run this.*use engine=torch"):
        sj.make_stepper(g, SimConfig(options={"engine": "native"}))


def test_bench_measures_every_method_on_a_tiny_run():
    from snnbalance.bench import run_bench
    from snnbalance.models import PaperMLP

    torch.manual_seed(0)
    out = run_bench("cpu", samples=4, duration=3, models={"mlp": PaperMLP()}, sj_steps=2, calibration=64, gemm_seconds=0.1)
    row = out["models"]["mlp"]
    assert row["macs_per_image_step"] == 784 * 1200 + 1200 * 1200 + 1200 * 10
    rate = {key: row[key]["image_steps_per_s"] for key in ("numpy", "spikingjelly", "sj_flow_single", "sj_flow_multi", "ceiling")}
    for key, r in rate.items():
        assert math.isfinite(r) and r > 0, (key, r)
    # SpikingJelly's flow is represented by the faster of its two step modes ...
    assert row["sj_flow"]["image_steps_per_s"] == max(rate["sj_flow_single"], rate["sj_flow_multi"])
    # ... and every other method's speed is stated relative to it
    for key in ("numpy", "spikingjelly", "ceiling"):
        assert row[key]["vs_sj_flow"] == pytest.approx(rate[key] / row["sj_flow"]["image_steps_per_s"], rel=1e-12)
    assert row["sj_flow_single"]["steps"] == 2
    assert row["spikingjelly"]["samples"] == 4 and row["spikingjelly"]["steps"] == 3
    assert out["machine"]["cores"] >= 1


def test_layers_beyond_the_paper_run_on_the_fast_back_end():
    """A max-pool gate reading the input (it was refused with a pointer to numpy): both engines."""
    rng = np.random.default_rng(0)
    g = Graph(
        (1, 4, 4),
        [
            Node("mp", "maxpool2d", ("input",), kernel=(2, 2), stride=(2, 2)),
            Node("f", "flatten", ("mp",)),
            Node("out", "dense", ("f",), weight=_w(rng, (3, 4), 0.5)),
        ],
    )
    x, y = data((1, 4, 4), n=2, classes=3)
    cfg = SimConfig(duration=30)
    want = simulate(g, x, y, cfg, simulator="numpy")
    for engine in ("native", "torch"):
        got = simulate(g, x, y, SimConfig(duration=30, options={"engine": engine}), simulator="spikingjelly")
        assert got.spike_counts == want.spike_counts, engine
