"""One prepared run on a GPU machine: CUDA tests, `snnbalance bench`, a variant sweep, the study.

Usage (from the repository root, snnbalance importable, MNIST/Fashion-MNIST under --data)::

    python3 scripts/device_check.py --out OUT --models DIR --data DIR [--budget SECONDS]
        [--steps tests,bench,realnets,profile,precisions,study] [--variants N/P,...] [--bench-variant N/P]
        [--precision P] [--resume-from DIR]

``--resume-from docs/results`` copies that study's ``runs/`` first, so that the study step only
simulates what is missing there (e.g. the constant-current runs at 10,000 ms); with
``--steps study --precision bf16x2`` it needs no other step (the precision must be the one the
runs were made with: it is part of their fingerprint).

Steps, each with its own time limit inside ``--budget`` and each allowed to fail without stopping
the next (every step's output goes to ``OUT/device.log``):

1. ``pytest tests/test_spikingjelly.py -k cuda``: the equality tests on the GPU (every layer kind,
   reset, encoding, neuron kind incl. the Triton kernels; reduced precisions; trained networks vs
   the CPU engines).
2. ``snnbalance bench --device cuda --samples 10000 --duration 1000 --json OUT/bench_cuda.json``,
   the back end run as ``--bench-variant`` (neuron/precision, default ``triton/bf16x3``: the split
   that the probe kept on both trained networks in a CPU preview).
   ``realnets`` (only if named in ``--steps``): the CIFAR-shaped VGG and SpikingJelly's ResNet-18
   of ``scripts/bench_models.py`` through ``snnbalance bench --model ... --dataset random --samples
   1024 --duration 400`` with the same back-end variant (issue 12's CUDA targets; the bench prints
   the time of a 10,000 x 400 evaluation).
3. Profile (only if named in ``--steps``): torch.profiler's kernel table for 2 chunks of each
   bench network and each ``--profile-variants`` pair, ``OUT/profile_*.txt``.
4. Variant sweep: the spikingjelly back end as each ``neuron/precision`` of ``--variants`` on the
   bench's networks, B x T as the bench, against ``sj/fp32``: image-steps/s, final accuracy and
   per-layer firing rates (``OUT/precisions.json``). The fastest SpikingJelly-neuron precision that
   the probe kept and that matches fp32's accuracy within 0.1 % and every layer's rate within
   0.5 % is chosen for step 5 (the study keeps ``neuron=sj`` unless ``--neuron`` says otherwise).
5. ``snnbalance reproduce --device cuda --duration 10000`` on all 10,000 test images: Poisson input
   for the four networks first, then the constant-current runs (``--resume``), stopped with SIGINT
   when the budget runs out (finished runs are kept); tables and figures from what finished
   (``--report-only``), packed as ``OUT/reproduce.tar.gz``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

T0 = time.time()


def log(out: Path, text: str) -> None:
    line = f"[{time.time() - T0:7.1f}s] {text}"
    print(line, flush=True)
    with open(out / "device.log", "a") as f:
        f.write(line + "\n")


def sh(out: Path, cmd: list[str], limit: float, env: dict | None = None) -> int:
    """Run ``cmd``, its output into the log; SIGINT after ``limit`` s (then SIGKILL after 60 s)."""
    log(out, "$ " + " ".join(cmd) + f"   (limit {limit:.0f} s)")
    if limit < 5:
        log(out, "skipped: no time left")
        return -1
    with open(out / "device.log", "a") as f:
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        try:
            rc = p.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGINT)
            try:
                rc = p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                rc = p.wait()
    log(out, f"exit {rc} after {time.time() - T0:.1f} s total")
    return rc


def bench_networks(args):
    """The bench's test images ``(x, y)`` and its networks ``[(arch, model source, balanced graph)]``:
    the MNIST MLP of ``--models`` and the embedded CNN, data-based on 1,000 training images."""
    from snnbalance.bench import _data, to_graph, trained_model
    from snnbalance.data import calibration_slice
    from snnbalance.normalize import normalize
    from snnbalance.records import Calibration

    test, train = _data("test"), _data("train")
    x, y = test[0][: args.samples], test[1][: args.samples]
    x_cal = calibration_slice(train[0], 1000, seed=0)
    nets = []
    for arch, path in (("mlp", args.models / "mlp-mnist-s0-e20.pt"), ("cnn", None)):
        model, how = trained_model(arch, path)
        nets.append((arch, how, normalize(to_graph(model), "data-based", calibration=Calibration(x_cal)).graph))
    return (x, y), nets


def precision_sweep(out: Path, args, device: str) -> str:
    """Measure every variant on both bench networks; return the precision to use for the study."""
    from snnbalance.bench import MAX_RATE, measure_ours

    (x, y), nets = bench_networks(args)
    rows: dict = {"samples": len(x), "steps": int(args.bench_duration), "max_rate_hz": MAX_RATE, "nets": {}}
    ok: dict[str, bool] = {}
    for arch, how, bal in nets:
        net = rows["nets"][arch] = {"model": how}
        for variant in args.variants:
            neuron, prec = variant.split("/")
            try:
                r = measure_ours(
                    bal,
                    x,
                    y,
                    device,
                    int(args.bench_duration),
                    {"engine": "torch", "neuron": neuron, "precision": prec, "memory": str(args.memory)},
                )
            except Exception as e:  # noqa: BLE001 - recorded, the sweep goes on
                net[variant] = {"error": f"{type(e).__name__}: {e}"}
                log(out, f"{arch} {variant}: {net[variant]['error']}")
                ok[variant] = False
                continue
            net[variant] = r
            base = net.get(args.variants[0])
            if base and "accuracy" in base and variant != args.variants[0]:
                r["accuracy_minus_fp32"] = r["accuracy"] - base["accuracy"]
                r["max_rate_rel_diff"] = max(abs(r["firing_rates_hz"][k] - v) / max(v, 1e-12) for k, v in base["firing_rates_hz"].items())
                good = r["engine"].endswith(prec) and abs(r["accuracy_minus_fp32"]) <= 0.001 and r["max_rate_rel_diff"] <= 0.005
                ok[variant] = ok.get(variant, True) and good
            log(
                out,
                f"{arch} {variant}: {r['image_steps_per_s']:,.0f} image-steps/s, engine {r['engine']}, "
                f"accuracy {r['accuracy']:.4f}, peak {r['peak_mb']:.0f} MiB"
                + (
                    f", acc-fp32 {r['accuracy_minus_fp32']:+.4f}, max rate diff {r['max_rate_rel_diff']:.2e}"
                    if "accuracy_minus_fp32" in r
                    else ""
                ),
            )
    speed = {
        v: sum(1 / rows["nets"][a][v]["image_steps_per_s"] for a in rows["nets"])
        for v in args.variants
        if all("image_steps_per_s" in rows["nets"][a].get(v, {}) for a in rows["nets"])
    }
    good = [v for v in speed if v.startswith(args.neuron + "/") and (v == args.variants[0] or ok.get(v))]
    chosen = min(good, key=speed.get).split("/")[1] if good else "fp32"
    rows["chosen"] = chosen
    (out / "precisions.json").write_text(json.dumps(rows, indent=1, default=float) + "\n")
    log(out, f"precision for the study ({args.neuron} neurons): {chosen}")
    return chosen


def profile(out: Path, args, device: str) -> None:
    """Where a step's time goes: torch.profiler over 2 chunks of each bench network, per variant.

    Writes ``OUT/profile_<net>_<neuron>_<precision>.txt``: the kernels sorted by device time
    (products, Triton kernels, SpikingJelly's IF kernel, casts, ...), for B = ``--samples``.
    """
    import dataclasses

    import numpy as np
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from snnbalance.bench import MAX_RATE
    from snnbalance.simulate import SimConfig
    from snnbalance.simulate.engines import engine_used, make_stepper

    (x, y), nets = bench_networks(args)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    for arch, _, bal in nets:
        for variant in args.profile_variants:
            neuron, prec = variant.split("/")
            chunk = 16
            cfg = SimConfig(
                duration=float(2 * chunk),
                max_rate=MAX_RATE,
                device=device,
                batch_size=len(x),
                options={"engine": "torch", "neuron": neuron, "precision": prec, "chunk": str(chunk)},
            )
            try:
                step, engine = make_stepper(bal, cfg)
                step(bal, x, np.arange(len(x)), y, dataclasses.replace(cfg, duration=float(chunk)))  # compile, probe
                with torch_profile(activities=activities) as prof:
                    step(bal, x, np.arange(len(x)), y, cfg)
                sort = "cuda_time_total" if device == "cuda" else "cpu_time_total"
                table = prof.key_averages().table(sort_by=sort, row_limit=30)
            except Exception as e:  # noqa: BLE001 - recorded, the next variant goes on
                log(out, f"profile {arch} {variant}: {type(e).__name__}: {e}")
                continue
            name = f"profile_{arch}_{neuron}_{prec}.txt"
            (out / name).write_text(f"{arch} {engine_used(step, engine)}, B = {len(x)}, {2 * chunk} steps in chunks of {chunk}\n{table}\n")
            log(out, f"profile {arch} {variant}: {name}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--models", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--budget", type=float, default=560.0)
    ap.add_argument("--samples", type=int, default=10000)
    ap.add_argument("--bench-duration", type=float, default=1000)
    ap.add_argument("--study-duration", type=float, default=10000)
    ap.add_argument("--study-samples", type=int, default=10000)
    ap.add_argument("--memory", type=int, default=16384)
    ap.add_argument(
        "--variants",
        default="sj/fp32,sj/bf16x2,triton/fp32,triton/bf16x2,triton/bf16x3,triton/tf32x2",
        help="neuron/precision pairs of the sweep; the first is the baseline",
    )
    ap.add_argument("--bench-variant", default="triton/bf16x3", help="neuron/precision of the bench")
    ap.add_argument("--neuron", default="sj", help="the study's neurons (part of its runs' fingerprint)")
    ap.add_argument("--profile-variants", default="sj/bf16x2,triton/bf16x3", help="neuron/precision pairs that the profile step profiles")
    ap.add_argument("--test-limit", type=float, default=150)
    ap.add_argument("--bench-limit", type=float, default=150)
    ap.add_argument("--steps", default="tests,bench,precisions,study")
    ap.add_argument("--precision", default=None, help="the study's precision (default: the sweep's choice)")
    ap.add_argument("--resume-from", type=Path, default=None, help="a study folder whose runs/ to continue")
    args = ap.parse_args()
    steps = set(args.steps.split(","))
    args.variants = args.variants.split(",")
    args.profile_variants = args.profile_variants.split(",")
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    os.environ["SNNBALANCE_DATA"] = str(args.data.resolve())
    os.environ["PYTHONUNBUFFERED"] = "1"
    left = lambda: args.budget - (time.time() - T0)  # noqa: E731
    py = sys.executable

    import torch

    log(
        out,
        f"python {sys.version.split()[0]}, torch {torch.__version__}, cuda {torch.cuda.is_available()}"
        + (f" ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else ""),
    )
    if "tests" in steps:
        # the CUDA tests only: the CPU ones (Triton's interpreter included) ran in CI
        sh(
            out,
            [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_spikingjelly.py", "tests/test_torch_engine.py", "-k", "cuda"],
            min(args.test_limit, left() - 300),
        )
    if "bench" in steps:
        sh(
            out,
            [
                py,
                "-m",
                "snnbalance",
                "bench",
                "--device",
                args.device,
                "--samples",
                str(args.samples),
                "--duration",
                str(args.bench_duration),
                "--mlp",
                str(args.models / "mlp-mnist-s0-e20.pt"),
                "--json",
                str(out / "bench_cuda.json"),
                "--sim-option",
                f"memory={args.memory}",
                "--sim-option",
                f"neuron={args.bench_variant.split('/')[0]}",
                "--sim-option",
                f"precision={args.bench_variant.split('/')[1]}",
            ],
            min(args.bench_limit, left() - 250),
        )
    if "realnets" in steps:  # issue 12's CUDA targets: the CIFAR VGG and SpikingJelly's ResNet-18
        sh(out, [py, "scripts/bench_models.py", str(out / "bench-models")], 60)
        for name in ("vgg_cifar", "resnet18_sj"):
            sh(
                out,
                [
                    py,
                    "-m",
                    "snnbalance",
                    "bench",
                    "--device",
                    args.device,
                    "--model",
                    str(out / "bench-models" / f"{name}.onnx"),
                    "--dataset",
                    "random",
                    "--samples",
                    "1024",
                    "--duration",
                    "400",
                    "--json",
                    str(out / f"bench_{name}_cuda.json"),
                    "--sim-option",
                    f"memory={args.memory}",
                    "--sim-option",
                    f"neuron={args.bench_variant.split('/')[0]}",
                    "--sim-option",
                    f"precision={args.bench_variant.split('/')[1]}",
                ],
                min(args.bench_limit, left() - 200),
            )
    if "profile" in steps:
        try:
            profile(out, args, args.device)
        except Exception as e:  # noqa: BLE001
            log(out, f"profile failed: {type(e).__name__}: {e}")
    chosen = args.precision or "fp32"
    if "precisions" in steps:
        try:
            chosen = args.precision or precision_sweep(out, args, args.device)
        except Exception as e:  # noqa: BLE001
            log(out, f"precision sweep failed: {type(e).__name__}: {e}")
    if "study" not in steps:
        log(out, f"done in {time.time() - T0:.0f} s")
        return
    study = out / "reproduce"
    if args.resume_from is not None:
        import shutil

        shutil.copytree(args.resume_from / "runs", study / "runs")
        log(out, f"resuming the runs of {args.resume_from}")
    common = [
        py,
        "-m",
        "snnbalance",
        "reproduce",
        "--device",
        args.device,
        "--duration",
        str(args.study_duration),
        "--samples",
        str(args.study_samples),
        "--batch-size",
        str(args.study_samples),
        "--cache",
        str(args.models),
        "--no-train",
        "--data-dir",
        str(args.data),
        "-o",
        str(study),
        "--sim-option",
        f"precision={chosen}",
        "--sim-option",
        f"memory={args.memory}",
    ]
    if args.neuron != "sj":  # sj is the default: not named, so earlier runs' fingerprints still match
        common += ["--sim-option", f"neuron={args.neuron}"]
    resume = ["--resume"] if args.resume_from is not None else []
    sh(out, common + ["--encodings", "poisson"] + resume, left() - 60)
    sh(out, common + ["--encodings", "poisson,current", "--resume"], left() - 40)
    sh(out, common + ["--encodings", "poisson,current", "--report-only"], 60)
    with tarfile.open(out / "reproduce.tar.gz", "w:gz") as tar:
        tar.add(study, arcname="reproduce")
    import shutil

    shutil.rmtree(study)
    log(out, f"done in {time.time() - T0:.0f} s")


if __name__ == "__main__":
    main()
