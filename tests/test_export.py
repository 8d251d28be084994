"""Export of balanced networks: NIR (read back and simulated by SpikingJelly), .npz and ONNX."""

import json
from pathlib import Path

import nir
import numpy as np
import pytest
from conftest import small_cnn

from snnbalance.errors import SnnBalanceError
from snnbalance.export import ExportSettings, export_model, format_for, onnx_model, read_npz, to_nir, write
from snnbalance.normalize import normalize
from snnbalance.records import Calibration
from snnbalance.simulate import SimConfig, simulate
from snnbalance.simulate.encoding import PoissonSource

THRESHOLDS = {"c1": 0.8, "p1": 1.0, "c2": 1.25, "d": 0.9}  # distinct, so a mixed-up layer shows


@pytest.fixture(scope="module")
def balanced():
    x = np.random.default_rng(0).random((32, 1, 12, 12)).astype(np.float32)
    g = normalize(small_cnn(bias=True), "data-based", calibration=Calibration(x)).graph
    for name, thr in THRESHOLDS.items():
        g.node(name).threshold = thr
    return g


@pytest.fixture(scope="module")
def exact(balanced):
    """``balanced`` with weights and biases rounded to multiples of 2**-8 and dyadic thresholds
    (still distinct): every potential is then a float32 sum that is exact in any order, so another
    simulator of the same network must give the same spikes, not nearly the same."""
    g = balanced.copy()
    for n in g.nodes:
        for attr in ("weight", "bias"):
            if getattr(n, attr) is not None:
                setattr(n, attr, (np.round(getattr(n, attr) * 256) / 256).astype(np.float32))
    for name, thr in {"c1": 0.75, "p1": 1.0, "c2": 1.25, "d": 0.875}.items():
        g.node(name).threshold = thr
    return g


def inputs(n=6, seed=11):
    return np.random.default_rng(seed).random((n, 1, 12, 12)).astype(np.float32)


def test_format_comes_from_the_flag_or_the_suffix():
    assert format_for("a.NIR") == "nir" and format_for("a.npz") == "npz" and format_for("x.bin", "onnx") == "onnx"
    with pytest.raises(SnnBalanceError, match="cannot tell the format from 'net.bin'; pass --format"):
        format_for("net.bin")
    with pytest.raises(SnnBalanceError, match="unknown export format 'hdf'"):
        format_for("net.nir", "hdf")


def test_nir_graph_has_if_neurons_with_thresholds_resets_and_the_balanced_weights(balanced):
    g = to_nir(balanced, ExportSettings(dt=0.5))
    expected = [
        ("input", nir.Input),
        ("c1", nir.Conv2d),
        ("c1_if", nir.IF),
        ("p1", nir.AvgPool2d),
        ("p1_if", nir.IF),
        ("c2", nir.Conv2d),
        ("c2_if", nir.IF),
        ("f", nir.Flatten),
        ("d", nir.Affine),
        ("d_if", nir.IF),
        ("output", nir.Output),
    ]
    assert [(k, type(g.nodes[k])) for k, _ in expected] == expected
    assert g.edges == [(a, b) for (a, _), (b, _) in zip(expected, expected[1:])]
    for name, thr in THRESHOLDS.items():
        neuron = g.nodes[f"{name}_if"]
        assert np.all(neuron.v_threshold == np.float32(thr)) and np.all(neuron.v_reset == 0)
        assert np.all(neuron.r == 2000.0)  # dv/dt = r I over dt = 0.5 ms adds exactly I per step
        assert neuron.v_threshold.shape == tuple(balanced.shapes()[name])
    np.testing.assert_array_equal(g.nodes["c2"].weight, balanced.node("c2").weight)
    np.testing.assert_array_equal(g.nodes["d"].bias, balanced.node("d").bias)
    assert g.metadata["reset"] == "zero" and g.metadata["dt_ms"] == 0.5


def test_nir_file_read_back_and_simulated_by_spikingjelly_agrees_with_snnbalance(exact, tmp_path):
    import torch
    from spikingjelly.activation_based.nir_exchange import import_from_nir

    path = write(exact, tmp_path / "net.nir", settings=ExportSettings(dt=1.0))
    net = import_from_nir(nir.read(path), dt=1e-3)  # seconds: r = 1 / dt, so v += I each step
    x, steps, seed = inputs(), 80, 3
    source = PoissonSource(x, np.arange(len(x)), seed, 1000.0, 1.0)  # the very spikes snnbalance uses
    counts, state = torch.zeros(len(x), 5), None
    with torch.no_grad():
        for t in range(steps):
            out, state = net(torch.from_numpy(source.step(t)), state)
            counts += out
    ours = simulate(exact, x, np.zeros(len(x), np.int64), SimConfig(duration=steps, seed=seed)).output_counts
    theirs = counts.numpy().astype(np.int64)
    assert ours.sum() > 50 and len(np.unique(ours)) > 5  # the comparison means something
    np.testing.assert_array_equal(theirs, ours)  # exact sums (see ``exact``): every output spike


def test_nir_cannot_express_reset_by_subtraction_and_leaves_the_old_file(balanced, tmp_path):
    path = write(balanced, tmp_path / "net.nir")
    before = path.read_bytes()
    with pytest.raises(SnnBalanceError, match="reset by subtraction cannot be exported to NIR"):
        write(balanced, path, settings=ExportSettings(reset="subtract"))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.nir"]  # no temporary files left


def test_npz_is_self_contained_and_round_trips(balanced, tmp_path):
    settings = ExportSettings(dt=0.5, reset="subtract", info={"normalizer": "data-based"})
    path = write(balanced, tmp_path / "net.npz", settings=settings)
    with np.load(path, allow_pickle=False) as z:  # plain arrays and a JSON string: no pickles
        desc = json.loads(str(z["graph"]))
    assert desc["simulation"]["reset"] == "subtract" and desc["simulation"]["normalizer"] == "data-based"
    graph, sim = read_npz(path)
    assert sim["dt_ms"] == 0.5
    for a, b in zip(graph.nodes, balanced.nodes):
        assert (a.name, a.op, a.inputs, a.threshold, a.relu, a.stride, a.padding, a.kernel) == (
            b.name,
            b.op,
            b.inputs,
            b.threshold,
            b.relu,
            b.stride,
            b.padding,
            b.kernel,
        )
        for u, v in ((a.weight, b.weight), (a.bias, b.bias)):
            assert (u is None and v is None) or np.array_equal(u, v)
    cfg = SimConfig(duration=40, seed=1)
    y = np.zeros(6, np.int64)
    assert np.array_equal(simulate(graph, inputs(), y, cfg).output_counts, simulate(balanced, inputs(), y, cfg).output_counts)
    (tmp_path / "other.npz").write_bytes(b"not a zip")
    with pytest.raises(SnnBalanceError, match="not an snnbalance .npz export"):
        read_npz(tmp_path / "other.npz")


def test_onnx_computes_the_balanced_rate_network(balanced, tmp_path):
    import onnxruntime as ort

    path = write(balanced, tmp_path / "net.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = inputs(8)
    (out,) = sess.run(None, {"input": x})
    np.testing.assert_allclose(out, balanced.forward(x), rtol=1e-4, atol=1e-5)
    props = {p.key: json.loads(p.value) for p in onnx_model(balanced).metadata_props}
    assert props["thresholds"] == pytest.approx(THRESHOLDS) and props["reset"] == "zero"


@pytest.fixture(scope="module")
def model_and_data(tmp_path_factory):
    """An ONNX 'trained model' (the unbalanced CNN) and a calibration .npz, without torch."""
    root = tmp_path_factory.mktemp("job")
    model = write(small_cnn(bias=True), root / "ann.onnx")
    x = np.random.default_rng(4).random((40, 1, 12, 12)).astype(np.float32)
    np.savez(root / "calib.npz", x=x, y=np.zeros(40, np.int64))
    return model, root / "calib.npz", x


def test_export_model_imports_balances_and_writes(model_and_data, tmp_path):
    from snnbalance.data import calibration_slice

    model, data, x = model_and_data
    from snnbalance.pipeline import ConvertConfig
    from snnbalance.simulate import SimConfig

    result = export_model(
        ConvertConfig(
            model=str(model), normalizers=["data-based"], dataset=str(data), calibration_samples=20, threshold=2.0, sim=SimConfig(seed=5)
        ),
        tmp_path / "out.npz",
    )
    graph, sim = read_npz(result.path)
    expected = normalize(small_cnn(bias=True), "data-based", threshold=2.0, calibration=Calibration(calibration_slice(x, 20, 5)))
    assert sim["normalizer"] == "data-based" and sim["scale_factors"] == pytest.approx(expected.scale_factors)
    np.testing.assert_allclose(graph.nodes[-1].weight, expected.graph.nodes[-1].weight, rtol=1e-5)
    assert {n.threshold for n in graph.neuron_nodes()} == {2.0}


def test_export_command_writes_nir_and_reports_errors_in_one_line(model_and_data, tmp_path):
    import typer
    from typer.testing import CliRunner

    from snnbalance.cli.export import export_command

    app = typer.Typer()
    app.command("export")(export_command)
    app.command("other")(lambda: None)  # two commands, so "export" stays a subcommand as in snnbalance
    model, data, _ = model_and_data
    out = tmp_path / "net.nir"
    res = CliRunner().invoke(app, ["export", str(model), "--normalizer", "model-based", "--format", "nir", "--output", str(out)])
    assert res.exit_code == 0, res.output
    assert f"wrote {out} (nir)" in res.output.replace("\n", "")
    assert isinstance(nir.read(out).nodes["d_if"], nir.IF)
    res = CliRunner().invoke(app, ["export", str(model), "--output", str(tmp_path / "x.nir"), "--reset", "subtract"])
    assert isinstance(res.exception, SnnBalanceError) and "reset by subtraction" in str(res.exception)
    assert not Path(tmp_path / "x.nir").exists()
    res = CliRunner().invoke(app, ["export", str(model), "-n", "nope", "--output", str(tmp_path / "y.npz")])
    assert isinstance(res.exception, SnnBalanceError) and "unknown normalizer 'nope'" in str(res.exception)


def merge_graph():
    """A residual add (with scales, fed by a synaptic-only conv), max pooling, a per-position
    conv bias and a concat: everything beyond the paper's chains."""
    from snnbalance.graph import Graph, Node

    rng = np.random.default_rng(7)
    w = lambda *s: rng.normal(0, 0.4, s).astype(np.float32)  # noqa: E731
    return Graph(
        (1, 6, 6),
        [
            Node("c1", "conv2d", weight=w(2, 1, 3, 3), padding=(1, 1), relu=True),
            Node("c2", "conv2d", ("c1",), weight=w(2, 2, 3, 3), padding=(1, 1)),
            Node("a", "add", ("c2", "c1"), relu=True, scales=(0.5, 2.0)),
            Node("m", "maxpool2d", ("a",), kernel=(2, 2), stride=(2, 2)),
            Node("c3", "conv2d", ("a",), weight=w(3, 2, 3, 3), bias=w(3, 3, 3), stride=(2, 2), padding=(1, 1), relu=True),
            Node("cat", "concat", ("m", "c3")),
            Node("f", "flatten", ("cat",)),
            Node("d", "dense", ("f",), weight=w(4, 45), bias=w(4)),
        ],
    )


def test_merges_export_to_onnx_and_npz_but_not_nir(tmp_path):
    import onnxruntime as ort

    g = merge_graph()
    g.validate()
    x = np.random.default_rng(1).random((5, 1, 6, 6)).astype(np.float32)
    sess = ort.InferenceSession(str(write(g, tmp_path / "m.onnx")), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, {"input": x})[0], g.forward(x), rtol=1e-4, atol=1e-5)
    back, _ = read_npz(write(g, tmp_path / "m.npz"))
    assert back.node("a").scales == (0.5, 2.0) and back.node("c3").bias.shape == (3, 3, 3)
    np.testing.assert_array_equal(back.forward(x), g.forward(x))
    with pytest.raises(SnnBalanceError, match="NIR export handles chains of .*not add \\(layer a\\); use --format npz"):
        write(g, tmp_path / "m.nir")


def test_export_command_v_init_is_stored_in_npz_and_refused_by_nir(model_and_data, tmp_path):
    """--v-init reaches the exported layers as convert simulates it; NIR (no initial state) refuses it."""
    import typer
    from typer.testing import CliRunner

    from snnbalance.cli.export import export_command
    from snnbalance.pipeline import ConvertConfig

    app = typer.Typer()
    app.command("export")(export_command)
    app.command("other")(lambda: None)
    model, data, _ = model_and_data
    out = tmp_path / "v.npz"
    res = CliRunner().invoke(
        app,
        [
            "export",
            str(model),
            "-n",
            "data-based",
            "--dataset",
            str(data),
            "--calibration-samples",
            "20",
            "--v-init",
            "0.5",
            "--reset",
            "subtract",
            "-o",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    graph, sim = read_npz(out)
    assert sim["reset"] == "subtract"
    assert [n.v_init for n in graph.neuron_nodes()] == [0.5] * len(graph.neuron_nodes())
    with np.load(out, allow_pickle=False) as z:  # stored per node in the JSON description
        assert {d["v_init"] for d in json.loads(str(z["graph"]))["nodes"]} == {0.5}
    # the same spikes as convert's network simulated with --v-init 0.5 (no v_init stored in it)
    plain = export_model(
        ConvertConfig(model=str(model), normalizers=["data-based"], dataset=str(data), calibration_samples=20), tmp_path / "plain.npz"
    ).graph
    assert {n.v_init for n in plain.neuron_nodes()} == {0.0}
    y = np.zeros(6, np.int64)
    a = simulate(graph, inputs(), y, SimConfig(duration=30, reset="subtract", seed=2))
    b = simulate(plain, inputs(), y, SimConfig(duration=30, reset="subtract", seed=2, v_init=0.5))
    c = simulate(plain, inputs(), y, SimConfig(duration=30, reset="subtract", seed=2))
    assert np.array_equal(a.output_counts, b.output_counts)
    assert not np.array_equal(a.output_counts, c.output_counts)  # v_init changed the spikes
    res = CliRunner().invoke(app, ["export", str(model), "--v-init", "0.5", "-o", str(tmp_path / "v.nir")])
    assert isinstance(res.exception, SnnBalanceError) and "initial membrane potential" in str(res.exception)
    assert "\n" not in str(res.exception) and not (tmp_path / "v.nir").exists()
    res = CliRunner().invoke(app, ["export", str(model), "--v-init", "1.5", "-o", str(tmp_path / "w.npz")])
    assert isinstance(res.exception, SnnBalanceError) and "--v-init" in str(res.exception)
    assert not (tmp_path / "w.npz").exists()
