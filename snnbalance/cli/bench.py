"""``snnbalance bench``: how fast each simulator runs the paper's networks on this machine."""

from __future__ import annotations

import json as _json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console, JustifyMethod
from rich.table import Table

from ..errors import SnnBalanceError
from ..files import atomic_write
from . import options as o

ROWS = (
    ("numpy", "numpy reference"),
    ("spikingjelly", "spikingjelly back end"),
    ("sj_flow_single", "SJ ann2snn, single-step"),
    ("sj_flow_multi", "SJ ann2snn, multi-step"),
    ("ceiling", "fp32 matmul ceiling"),
)


#: What a full evaluation costs, printed for every network: CIFAR-10's test set at 400 steps.
EVAL = (10_000, 400)


def _duration(seconds: float) -> str:
    """``1 h 05 min``, ``3 min 20 s`` or ``12.3 s``."""
    if seconds >= 3600:
        return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
    if seconds >= 60:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{seconds:.1f} s"


def _fmt(v, spec: str, none: str = "-") -> str:
    return none if v is None else format(v, spec)


def render(result: dict, console: Console) -> None:
    """Print the machine, one table per network, and what was trained or loaded."""
    m = result["machine"]
    console.print(
        f"[bold]machine[/]: {m['cpu']}, {m['cores']} cores ({m['torch_threads']} torch threads), "
        f"device {m['device']} ({m['device_name']}), torch {m['torch']}, "
        f"spikingjelly {m.get('spikingjelly', '?')}, python {m['python']}"
    )
    console.print(
        f"load average before {result.get('load_before')} after {result.get('load_after')}; "
        f"B = {result['samples']} images, T = {result['steps']} steps of 1 ms, Poisson "
        f"{result['max_rate_hz']:.0f} Hz; matmul {result['matmul']['macs_per_s'] / 1e9:.1f} GMAC/s "
        f"(fp32, {'x'.join(map(str, result['matmul']['shape']))})"
    )
    for name, row in result["models"].items():
        ref = row.get("sj_flow", {}).get("image_steps_per_s")
        ceil = row["ceiling"]["image_steps_per_s"]
        table = Table(
            title=f"{name.upper()}: {row['macs_per_image_step']:,} MACs per image-step; model {row['model']}", title_justify="left"
        )
        columns: tuple[tuple[str, JustifyMethod], ...] = (
            ("method", "left"),
            ("image-steps/s", "right"),
            ("vs SJ flow", "right"),
            ("vs ceiling", "right"),
            ("CPU µs/img-step", "right"),
            ("peak memory", "right"),
            ("measured on", "left"),
            ("accuracy", "right"),
        )
        for col, just in columns:
            table.add_column(col, justify=just)
        for key, label in ROWS:
            if key not in row:
                continue
            r = row[key]
            rate = r["image_steps_per_s"]
            extra = f" ({r['engine']})" if "engine" in r else ""
            best = " *" if key.startswith("sj_flow_") and row.get("sj_flow", {}).get("mode") == r.get("mode") else ""
            table.add_row(
                label + extra + best,
                f"{rate:,.0f}",
                _fmt(rate / ref if ref else None, ".2f") + "x",
                f"{rate / ceil:.2f}x",
                _fmt(r["cpu_seconds"] / (r["samples"] * r["steps"]) * 1e6 if "cpu_seconds" in r else None, ",.1f"),
                _fmt(r.get("peak_mb"), ",.0f") + (" MiB" if "peak_mb" in r else ""),
                f"{r['samples']} x {r['steps']}" if "samples" in r else "",
                _fmt(r.get("accuracy"), ".2%"),
            )
        console.print(table)
        ours = row.get("spikingjelly", {}).get("image_steps_per_s")
        if ours:
            flow = row.get("sj_flow", {}).get("image_steps_per_s")
            console.print(
                f"a CIFAR-10-sized evaluation ({EVAL[0]:,} images x {EVAL[1]} steps) takes "
                f"{_duration(EVAL[0] * EVAL[1] / ours)} at this rate"
                + (f" (SpikingJelly's flow: {_duration(EVAL[0] * EVAL[1] / flow)})" if flow else "")
            )
        if "sj_flow_error" in row:
            console.print(f"SJ flow: {row['sj_flow_error']}")
        shares = row.get("spikingjelly", {}).get("layer_share") or {}
        if shares:
            top = sorted(shares.items(), key=lambda kv: -kv[1])
            console.print(
                "native engine time by layer: "
                + ", ".join(f"{k} {100 * v:.0f} %" for k, v in top[:8])
                + (f", {len(top) - 8} more {100 * sum(v for _, v in top[8:]):.0f} %" if len(top) > 8 else "")
            )
    console.print(
        "* the faster SpikingJelly mode, used for 'vs SJ flow'. CPU µs/img-step: process CPU "
        "time per image-step (all threads; less sensitive than wall time to other load). Peak "
        "memory: what the method added to the process (resident set on CPU, allocated on CUDA)."
    )


def bench_command(
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    samples: int = typer.Option(1000, "--samples", min=1, help="Test images B."),
    duration: float = typer.Option(1000, "--duration", min=1, help="Simulated time T in ms (1 ms steps)."),
    json: Optional[Path] = typer.Option(None, "--json", help="Also write all numbers to this JSON file."),
    mlp: Optional[Path] = typer.Option(None, "--mlp", help="PaperMLP state_dict (default: train one epoch here, cached)."),
    cnn: Optional[Path] = typer.Option(None, "--cnn", help="PaperCNN state_dict (default: the embedded model)."),
    sj_steps: int = typer.Option(
        100,
        "--sj-steps",
        min=0,
        help="Steps of SpikingJelly's own flow, over all B images (its cost per step is constant; 0 = all of T, slow).",
    ),
    data_dir: o.DataDir = None,
    model: Optional[str] = typer.Option(
        None, "--model", help="Benchmark this model file instead of the paper's two (read as convert reads it)."
    ),
    dataset: str = typer.Option(
        "mnist",
        help="With --model: its test images (mnist, fashion-mnist, cifar10, an .npz, ...), or random: "
        "seeded uniform images of the model's input shape (speed only).",
    ),
    arch: o.Arch = None,
    input_shape: o.InputShape = None,
    input_mean: o.InputMean = None,
    input_std: o.InputStd = None,
    trust_model: o.TrustModel = False,
    sim_option: list[str] = typer.Option(
        [], "--sim-option", help="Option of the spikingjelly back end, KEY=VALUE (repeatable), e.g. precision=tf32x2."
    ),
) -> None:
    """Image-steps per second of the NumPy reference, the spikingjelly back end, SpikingJelly's own
    ann2snn flow and the dense matmul ceiling, on the paper's MLP and CNN or on any --model, with
    each layer's share of the native engine's time."""
    from ..bench import model_network, run_bench
    from ..extras import require
    from ..records import parse_options
    from .progress import ProgressDisplay

    if device not in ("cpu", "cuda"):
        raise SnnBalanceError(f"--device must be cpu or cuda, got {device!r}")
    require("spikingjelly", "snnbalance bench (its reference is SpikingJelly's own flow)")
    for p in (mlp, cnn):
        if p is not None and not Path(p).is_file():
            raise SnnBalanceError(f"model file not found: {p}")
    console = Console()
    if not console.is_terminal:  # a file or pipe: room for the whole table on one line per row
        console = Console(width=160)
    networks = None
    if model is not None:
        job = o.job(
            model=model,
            arch=arch,
            dataset=dataset,
            data_dir=data_dir,
            input_mean=input_mean,
            input_std=input_std,
            input_shape=input_shape,
            trust_model=trust_model,
        )
        networks = [model_network(job, samples, min(samples, 1000))]
    with ProgressDisplay() as bars:  # progress on stderr; the tables (results) on stdout
        result = run_bench(
            device,
            samples,
            duration,
            {"mlp": mlp, "cnn": cnn},
            progress=bars,
            sj_steps=sj_steps or None,
            options=parse_options(sim_option, "--sim-option"),
            data_dir=data_dir,
            networks=networks,
        )
    render(result, console)
    if json is not None:
        atomic_write(json, _json.dumps(result, indent=2, default=float))
        console.print(f"wrote {json}")
