"""``snnbalance plugins``: what is installed and what each plugin provides."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def plugins_command() -> None:
    """List installed plugins: name, version, hooks, and the normalizers and simulators they provide."""
    from ..plugins import registry

    reg = registry()
    console = Console()
    table = Table(title="snnbalance plugins")
    for col in ("plugin", "distribution", "hooks", "provides"):
        table.add_column(col)
    for name, plugin in reg.pm.list_name_plugin():
        hooks = sorted(h.name for h in reg.pm.get_hookcallers(plugin) or [])
        provides = [f"normalizer [bold]{k}[/]: {v.description}" for k, v in reg.normalizers.items()
                    if reg.provider.get(("Normalizer", k)) == name]
        provides += [f"  options: {o} = {d}" for k, v in reg.normalizers.items()
                     if reg.provider.get(("Normalizer", k)) == name for o, d in v.options.items()]
        provides += [f"simulator [bold]{k}[/] ({', '.join(v.devices)}): {v.description}"
                     for k, v in reg.simulators.items() if reg.provider.get(("Simulator", k)) == name]
        table.add_row(name, reg.dists.get(name, "?"), "\n".join(hooks), "\n".join(provides))
    console.print(table)
    for problem in reg.problems:
        console.print(f"[yellow]warning:[/] {problem}")
