"""The ``snnbalance`` command: a thin Typer shell over the library, one module per command.

Errors a user can cause (:class:`~snnbalance.errors.SnnBalanceError`) print one line and exit
with code 2; ``--debug`` shows the traceback instead. Ctrl-C prints one line saying what was kept
and exits with code 130.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
from pathlib import Path

import typer
from typer.core import TyperCommand

from ..errors import SnnBalanceError
from .bench import bench_command
from .convert import convert_command
from .export import export_command
from .plugins import plugins_command
from .reproduce import reproduce_command
from .train import train_command
from .tui import tui_command

# Plain Click help (rich_markup_mode=None), as uv and hatch print it: option names are never cut
# at 80 columns, no "<bool>" column, and help text in brackets is not eaten as markup.
app = typer.Typer(
    name="snnbalance",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120},
    epilog="\b\nExamples:\n  snnbalance convert\n  snnbalance train --arch mlp --epochs 1\n"
    "  snnbalance convert model.onnx --dataset fashion-mnist -n data-based -n robust --json -\n"
    "  snnbalance tui model.onnx",
    help="Convert trained ReLU networks into balanced integrate-and-fire spiking networks "
    "(Diehl et al. 2015) and measure how their accuracy grows with simulated time.",
)
_state = {"debug": False}

# Shown at the end of each command's help, as uv and hatch do; each runs as written.
EXAMPLES = {
    "convert": (
        "snnbalance convert",
        "snnbalance convert mnist_mlp.pt -n data-based -n model-based --duration 1500",
        "snnbalance convert model.onnx --dataset cifar10 --input-mean 0.5 --input-std 0.5 --json results.json",
        "snnbalance convert --json - > results.json",
    ),
    "train": (
        "snnbalance train --arch mlp --epochs 1",
        "snnbalance train --arch vgg --dataset fashion-mnist --epochs 3",
        "snnbalance train --arch resnet --dataset cifar10 --download",
    ),
    "plugins": ("snnbalance plugins", "snnbalance plugins --json"),
    "bench": ("snnbalance bench --samples 200 --duration 300", "snnbalance bench --device cuda --json bench.json"),
    "export": ("snnbalance export -o model.nir", "snnbalance export mnist_mlp.pt -n robust -o mlp.npz"),
    "tui": ("snnbalance tui", "snnbalance tui mnist_mlp.pt"),
    "reproduce": (
        "snnbalance reproduce --samples 1000 --duration 1000 --device cuda",
        "snnbalance reproduce --resume > reproduce.log 2>&1",
    ),
}
# One line each in `snnbalance -h` (Click would cut the docstrings' first sentences at 45 characters).
SHORT = {
    "convert": "Balance a trained ANN with each normalizer, simulate, compare.",
    "train": "Train a ReLU network (mlp, cnn, vgg, resnet) for conversion.",
    "plugins": "Installed normalizers, simulators and datasets, with options.",
    "bench": "Simulation speed of each back end on the paper's networks.",
    "export": "Write the balanced spiking network as NIR, npz or ONNX.",
    "tui": "The terminal UI: load, convert and watch accuracy grow.",
    "reproduce": "Reproduce Diehl et al. (2015): Tables 1-2, Figures 3-4.",
}
# Metavars for options Typer would show as "<list[str]>".
METAVARS = {"normalizer": "<NAME[:KEY=VALUE,...]>", "sim_option": "<KEY=VALUE>", "v_init": "<float>"}


class Command(TyperCommand):
    """A Typer command that shows readable metavars for repeatable options."""

    def __init__(self, name, **kw):
        super().__init__(name, **kw)
        for param in self.params:
            if getattr(param, "multiple", False) and param.metavar is None:
                param.metavar = METAVARS.get(param.name, "<str>")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"snnbalance {version('snnbalance')}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors (also after the command)."),
    version: bool = typer.Option(False, "--version", "-V", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    _state["debug"] = _state["debug"] or debug  # main() has already taken --debug out of argv


class Interrupted(Exception):
    """Ctrl-C inside a command, carried to :func:`main` (Typer would turn a KeyboardInterrupt into a
    silent exit 130); the message says what the command kept."""


def _kept(command: str, options: dict) -> str:
    """What an interrupted command leaves behind. convert, train and export write their files
    only at the end (atomically), so nothing; reproduce rewrites a run's file after every method."""
    if command == "reproduce":
        runs = Path(options.get("output") or "reproduce-output") / "runs"
        return f"finished runs kept in {runs}; rerun with --resume to continue"
    return "nothing written"


def _interruptible(command: str, fn):
    """``fn`` with Ctrl-C turned into :class:`Interrupted` (and further Ctrl-Cs ignored from then on:
    nothing is left to stop, and a second press must not interrupt the cleanup)."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except KeyboardInterrupt:
            _ignore_sigint()
            raise Interrupted(f"interrupted -- {_kept(command, kwargs)}") from None

    return run


def _ignore_sigint() -> None:
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


for _name, _fn in (
    ("convert", convert_command),
    ("train", train_command),
    ("plugins", plugins_command),
    ("bench", bench_command),
    ("export", export_command),
    ("tui", tui_command),
    ("reproduce", reproduce_command),
):
    app.command(_name, cls=Command, short_help=SHORT[_name], epilog="\b\nExamples:\n" + "\n".join(f"  {e}" for e in EXAMPLES[_name]))(
        _interruptible(_name, _fn)
    )


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    from rich.console import Console
    from rich.markup import escape

    err = Console(stderr=True, highlight=False)
    os.environ.setdefault("TQDM_DISABLE", "1")  # no third-party bars (SpikingJelly's tqdm): ours go to stderr
    argv = list(sys.argv[1:] if argv is None else argv)
    # --debug anywhere before a "--": `snnbalance convert x --debug` as well as `snnbalance --debug convert x`
    end = argv.index("--") if "--" in argv else len(argv)
    _state["debug"] = "--debug" in argv[:end]
    argv = [a for a in argv[:end] if a != "--debug"] + argv[end:]
    try:
        app(args=argv, prog_name="snnbalance")
    except SnnBalanceError as exc:
        if _state["debug"]:
            raise
        err.print("[bold red]error:[/]", escape(str(exc)), soft_wrap=True)  # a message's [..] is text, not markup
        sys.exit(2)
    except Interrupted as exc:
        err.print(str(exc), soft_wrap=True, markup=False)
        sys.exit(130)
    except KeyboardInterrupt:  # outside a command (e.g. while importing)
        _ignore_sigint()
        err.print("interrupted -- nothing written")
        sys.exit(130)
    except Exception as exc:  # a bug: say so on one line; --debug shows where
        if _state["debug"]:
            raise
        err.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {exc} (run with --debug for the traceback, and please report it)",
            soft_wrap=True,
        )
        sys.exit(1)
