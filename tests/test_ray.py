"""``--executor ray``: a two-node Ray cluster on this machine gives exactly a local run's numbers.

The cluster is real: a head and a second node started with ``ray start`` (one CPU each, addresses
on this host only), joined by the test process, torn down at the end by stopping the two
processes this module started.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import fake_trainer

from snnbalance import reproduce as rp
from snnbalance.errors import SnnBalanceError
from snnbalance.executors import Executor, RaySimulator, plan_slices, simulate_slice
from snnbalance.pipeline import ConvertConfig, convert
from snnbalance.progress import Cancelled
from snnbalance.report import results_dict
from snnbalance.simulate import SimConfig, simulate
from snnbalance.testing import reference_graph

try:
    import ray
except ImportError:  # the tests that need no cluster still run
    ray = None

needs_ray = pytest.mark.skipif(ray is None, reason="ray is not installed (pip install 'snnbalance[ray]')")
SPEED = ("wall_seconds", "image_steps_per_second")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head node and a worker node, one CPU each; yields the head's address."""
    if ray is None:
        pytest.skip("ray is not installed (pip install 'snnbalance[ray]')")
    exe = str(Path(sys.executable).parent / "ray")
    port = _free_port()
    # no token authentication: a token that an earlier local `ray.init()` left in ~/.ray would otherwise
    # switch it on for the nodes and not for every client
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    mode = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    common = [
        "--node-ip-address",
        "127.0.0.1",
        "--num-cpus",
        "1",
        "--num-gpus",
        "0",
        "--object-store-memory",
        str(80 * 2**20),
        "--disable-usage-stats",
        "--block",
    ]
    log = open(tmp_path_factory.mktemp("ray") / "ray.log", "w")
    # the head's own temp dir (short: it holds unix sockets) keeps its address file out of /tmp/ray, where
    # a plain `ray.init()` would later find it and wait on this stopped cluster
    temp = tempfile.mkdtemp(prefix="snnray", dir="/tmp")
    procs = []

    def start(*args):  # --block: the process stays ours and takes its node down when stopped
        procs.append(subprocess.Popen([exe, "start", *args, *common], env=env, stdout=log, stderr=log, start_new_session=True))

    address = f"127.0.0.1:{port}"
    try:
        start("--head", "--port", str(port), "--include-dashboard=false", "--temp-dir", temp)
        deadline = time.monotonic() + 60
        while not _listening(port):  # the head's GCS takes connections (`ray status` may lack the auth token)
            assert time.monotonic() < deadline and procs[0].poll() is None, "the Ray head did not start"
            time.sleep(0.5)
        start("--address", address)
        ray.init(address=address, log_to_driver=False, logging_level="WARNING")
        while len([n for n in ray.nodes() if n["Alive"]]) < 2:
            assert time.monotonic() < deadline and procs[1].poll() is None, "the second Ray node did not join"
            time.sleep(0.2)
        yield address
    finally:
        if ray.is_initialized():
            ray.shutdown()
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)  # the group this module started, nothing else
                p.wait()
        log.close()
        shutil.rmtree(temp, ignore_errors=True)
        if mode is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = mode


def _same(a, b, path=""):
    """Assert two results.json-like trees are equal, speed fields excepted."""
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            if k not in SPEED:
                _same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list) and a and isinstance(a[0], dict):
        assert len(a) == len(b), path
        for i, (u, v) in enumerate(zip(a, b)):
            _same(u, v, f"{path}[{i}]")
    else:
        assert a == b, path


def _job(**kw) -> ConvertConfig:
    # data-based settles within 20 ms (model-based would not, and convert would then run a longer check)
    return ConvertConfig(normalizers=["data-based"], samples=40, calibration_samples=200, sim=SimConfig(duration=20.0, batch_size=10), **kw)


@needs_ray
def test_convert_on_two_nodes_equals_local(cluster, tmp_path, monkeypatch):
    import snnbalance.pipeline as pipeline

    met = tmp_path / "nodes"
    met.mkdir()

    def meet(graph, x, y, lo, config, simulator):
        # a task waits (at most 30 s) until a task has started on the other node too: with one CPU per
        # node the second node then surely gets work, where the head could otherwise run every
        # millisecond-long task before the second node's first lease comes through
        (met / ray.get_runtime_context().get_node_id()).touch()
        deadline = time.monotonic() + 30
        while len(list(met.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        return simulate_slice(graph, x, y, lo, config, simulator)

    local = convert(_job())
    monkeypatch.setattr(pipeline, "simulate_fn", lambda ex: RaySimulator(ex, slice_fn=meet))
    events = []
    distributed = convert(_job(executor=Executor("ray", address=cluster, slice_size=10)), events.append)
    _same(results_dict(local), results_dict(distributed))
    for a, b in zip(local.runs, distributed.runs, strict=True):
        np.testing.assert_array_equal(a.result.output_counts, b.result.output_counts)
        np.testing.assert_array_equal(a.result.accuracy_over_time, b.result.accuracy_over_time)
    sims = [e for e in events if e.task == "simulate data-based"]
    assert sorted(e.info["images"][0] for e in sims) == [0, 10, 20, 30]  # one event per task
    assert [e.completed for e in sims] == [10, 20, 30, 40] and sims[-1].total == 40
    assert len({e.info["node"] for e in sims}) == 2, "tasks ran on one node only"
    assert "executor" not in results_dict(distributed)["config"]


def _small_run():
    g = reference_graph(3)
    rng = np.random.default_rng(0)
    x = rng.random((32, *g.input_shape)).astype(np.float32)
    y = rng.integers(0, int(g.shapes()[g.output.name][0]), 32)
    return g, x, y, SimConfig(duration=15.0, batch_size=8)


@needs_ray
def test_a_killed_worker_is_retried_and_changes_nothing(cluster, tmp_path):
    g, x, y, cfg = _small_run()
    marker = tmp_path / "killed"

    def dies_once(graph, x, y, lo, config, simulator):
        if lo == 8 and not marker.exists():
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)  # this worker process, mid-run
        return simulate_slice(graph, x, y, lo, config, simulator)

    want = simulate(g, x, y, cfg, simulator="spikingjelly")
    got = RaySimulator(Executor("ray", slice_size=8, max_retries=2), slice_fn=dies_once)(
        g, x, y, cfg, simulator="spikingjelly", task="killed"
    )
    assert marker.exists()  # the first try of slice 8 died; its retry gave the numbers below
    assert not got.cancelled and got.samples == 32
    _same(want.to_dict(), got.to_dict())
    np.testing.assert_array_equal(want.output_counts, got.output_counts)


@needs_ray
def test_a_failing_task_is_one_line_naming_run_and_slice(cluster):
    g, x, y, cfg = _small_run()

    def fails(graph, x, y, lo, config, simulator):
        if lo == 16:
            raise ValueError("bad pixel\nsecond line")
        return simulate_slice(graph, x, y, lo, config, simulator)

    with pytest.raises(SnnBalanceError) as err:
        RaySimulator(Executor("ray", slice_size=8), slice_fn=fails)(g, x, y, cfg, simulator="numpy", task="simulate data-based")
    assert str(err.value) == "simulate data-based: images 16-23 failed on the Ray cluster: ValueError: bad pixel"


@needs_ray
def test_a_cancelled_run_keeps_a_prefix_and_stops_its_tasks(cluster):
    g, x, y, cfg = _small_run()
    want = simulate(g, x, y, cfg, simulator="numpy")

    def cancel(ev):
        raise Cancelled

    got = RaySimulator(Executor("ray", slice_size=4))(g, x, y, cfg, simulator="numpy", progress=cancel)
    assert got.cancelled and got.samples < 32 and got.samples % 4 == 0
    np.testing.assert_array_equal(got.output_counts, want.output_counts[: got.samples])
    deadline = time.monotonic() + 20  # the cancelled tasks give their CPUs back
    while ray.available_resources().get("CPU", 0) < 2:
        assert time.monotonic() < deadline, "cancelled tasks still hold the cluster's CPUs"
        time.sleep(0.2)


def _fakes():
    def load(name, split):
        rng = np.random.default_rng({"train": 1, "test": 2}[split])
        n = 300 if split == "train" else 40
        y = rng.integers(0, 10, n).astype(np.int64)
        x = rng.random((n, 1, 28, 28)).astype(np.float32) * 0.3
        for i, c in enumerate(y):
            x[i, 0, 2 * c : 2 * c + 6, 4:24] = 1.0
        return x, y

    return load, fake_trainer([])


@needs_ray
def test_reproduce_resumes_a_local_run_on_ray(cluster, tmp_path):
    load, train = _fakes()
    base = dict(
        cache=str(tmp_path / "cache"),
        datasets=("mnist",),
        archs=("mlp",),
        encodings=("poisson",),
        duration=8.0,
        samples=40,
        sweep_samples=30,
        sweep_duration=5.0,
        thresholds=(1.0, 4.0),
        calibration_samples=40,
        batch_size=10,
        figures=False,
    )
    rp.run_study(rp.StudyConfig(output=str(tmp_path / "local"), **base), loader=load, trainer=train)
    calls = {"n": 0}

    def interrupted(graph, x, y, config, *, simulator, progress=None, task="simulate"):
        if not task.startswith("sweep"):
            calls["n"] += 1
            if calls["n"] == 3:
                raise KeyboardInterrupt
        return simulate(graph, x, y, config, simulator=simulator, progress=progress, task=task)

    mixed = rp.StudyConfig(output=str(tmp_path / "mixed"), **base)
    with pytest.raises(KeyboardInterrupt):
        rp.run_study(mixed, loader=load, trainer=train, simulate_fn=interrupted)
    on_ray = rp.StudyConfig(output=str(tmp_path / "mixed"), resume=True, executor=Executor("ray", slice_size=10), **base)
    rp.run_study(on_ray, loader=load, trainer=train)
    a, b = (json.loads((tmp_path / d / "runs" / "mnist-mlp-poisson.json").read_text()) for d in ("local", "mixed"))
    assert b["complete"]
    keys = ("fingerprint", "ann_accuracy", "data", "sweep", "methods")  # the rest names files and times
    _same({k: a[k] for k in keys}, {k: b[k] for k in keys})  # wall times aside, the same numbers


def test_slices_are_whole_batches_unless_sized():
    assert plan_slices(1000, 250, slots=2) == [(0, 250), (250, 500), (500, 750), (750, 1000)]
    assert plan_slices(1000, 100, slots=64) == [(lo, lo + 100) for lo in range(0, 1000, 100)]
    assert plan_slices(45, 250, slots=8, slice_size=10)[-1] == (40, 45)
    assert plan_slices(45, 250, slots=8, whole_batches=False)[:2] == [(0, 2), (2, 4)]
    # a short run: one task per slot; a long one: four
    assert plan_slices(1000, 250, slots=2, steps=100) == [(0, 500), (500, 1000)]
    assert len(plan_slices(10_000, 1, slots=8, steps=10_000)) == 32


def test_without_ray_the_executor_is_one_line_naming_the_extra(monkeypatch, capsys):
    from snnbalance.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if it were not installed
    with pytest.raises(SnnBalanceError, match=r"pip install 'snnbalance\[ray\]'"):
        Executor("ray").validate()
    Executor("local").validate()  # the default never imports Ray
    with pytest.raises(SystemExit) as exit_:
        main(["convert", "--executor", "ray", "--samples", "5"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2
    assert "--executor ray needs Ray" in err[0] and "snnbalance[ray]" in err[0]


def test_executor_settings_are_checked():
    with pytest.raises(SnnBalanceError, match="unknown --executor 'dask'"):
        Executor("dask").validate()
    with pytest.raises(SnnBalanceError, match="--ray-address needs --executor ray"):
        Executor("local", address="auto").validate()
    with pytest.raises(SnnBalanceError, match="--slice-size must be at least 1"):
        Executor("local", slice_size=0).validate()
