"""The ``snnbalance`` command: a thin Typer shell over the library, one module per command.

Errors a user can cause (:class:`~snnbalance.errors.SnnBalanceError`) print one line and exit
with code 2; ``--debug`` shows the traceback instead. Ctrl-C prints one line saying what was kept
and exits with code 130.
"""

from __future__ import annotations

import functools
import signal
import sys
from pathlib import Path

import typer

from ..errors import SnnBalanceError
from .bench import bench_command
from .convert import convert_command
from .export import export_command
from .plugins import plugins_command
from .reproduce import reproduce_command
from .train import train_command
from .tui import tui_command

app = typer.Typer(
    name="snnbalance", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="Convert trained ReLU networks into balanced integrate-and-fire spiking networks "
         "(Diehl et al. 2015) and measure how their accuracy grows with simulated time.")
_state = {"debug": False}


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors.")) -> None:
    _state["debug"] = debug



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


for _name, _fn in (("convert", convert_command), ("train", train_command), ("plugins", plugins_command),
                   ("bench", bench_command), ("export", export_command), ("tui", tui_command),
                   ("reproduce", reproduce_command)):
    app.command(_name)(_interruptible(_name, _fn))


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    from rich.console import Console

    err = Console(stderr=True, highlight=False)
    _state["debug"] = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        app(args=argv, prog_name="snnbalance")
    except SnnBalanceError as exc:
        if _state["debug"]:
            raise
        err.print(f"[bold red]error:[/] {exc}", soft_wrap=True)
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
        err.print(f"[bold red]internal error:[/] {type(exc).__name__}: {exc} "
                  "(run with --debug for the traceback, and please report it)", soft_wrap=True)
        sys.exit(1)
