"""The ``snnbalance`` command: a thin Typer shell over the library, one module per command.

Errors a user can cause (:class:`~snnbalance.errors.SnnBalanceError`) print one line and exit
with code 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import sys

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


app.command("convert")(convert_command)
app.command("train")(train_command)
app.command("plugins")(plugins_command)
app.command("bench")(bench_command)
app.command("export")(export_command)
app.command("tui")(tui_command)
app.command("reproduce")(reproduce_command)


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
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # a bug: say so on one line; --debug shows where
        if _state["debug"]:
            raise
        err.print(f"[bold red]internal error:[/] {type(exc).__name__}: {exc} "
                  "(run with --debug for the traceback, and please report it)", soft_wrap=True)
        sys.exit(1)
