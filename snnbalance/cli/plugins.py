"""``snnbalance plugins``: what is installed, what each plugin provides, its options, and what failed."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table


def _provides(reg, name: str) -> list[str]:
    """Names of the normalizers and simulators that plugin ``name`` provides."""
    return [f"{kind.lower()} [bold]{escape(key)}[/]"
            for kind, records in (("Normalizer", reg.normalizers), ("Simulator", reg.simulators))
            for key in records if reg.provider.get((kind, key)) == name]


def _describe(console: Console, kind: str, key: str, rec, plugin: str) -> None:
    """One record: description, where it comes from, and each option with its meaning."""
    flag = "--normalizer" if kind == "Normalizer" else "--simulator"
    options = getattr(rec, "options", None) or {}
    extra = [f"plugin {plugin}"]
    if getattr(rec, "needs_calibration", False):
        extra.append("needs calibration data")
    if kind == "Simulator":
        extra.append("devices: " + ", ".join(rec.devices))
    usage = f"{key}[:{','.join(f'{o}=VALUE' for o in options)}]" if options else key
    console.print(f"\n[bold]{escape(key)}[/]  [dim]({escape('; '.join(extra))})[/]")
    console.print(f"  {escape(rec.description)}", soft_wrap=True)
    console.print(f"  usage: {flag} {escape(usage)}", soft_wrap=True)
    width = max((len(o) for o in options), default=0)
    for opt, text in options.items():
        console.print(f"    [cyan]{escape(opt.ljust(width))}[/]  {escape(text)}", soft_wrap=True)
    if kind == "Simulator" and key == "spikingjelly":
        from ..simulate import native  # builds the kernel on first use (cached): the status is real

        console.print(f"  {escape(native.status().describe())}", soft_wrap=True)


def plugins_command() -> None:
    """List installed plugins: name, version, hooks, the normalizers and simulators they provide
    with their options, and any plugin that was skipped and why."""
    from ..plugins import registry

    reg = registry()
    console = Console(highlight=False)
    table = Table(title="snnbalance plugins")
    for col in ("plugin", "distribution", "hooks", "provides"):
        table.add_column(col)
    for name, plugin in reg.pm.list_name_plugin():
        hooks = sorted(h.name for h in reg.pm.get_hookcallers(plugin) or [])
        table.add_row(escape(name), escape(reg.dists.get(name, "?")), "\n".join(hooks),
                      "\n".join(_provides(reg, name)) or "[dim]nothing[/]")
    console.print(table)
    for kind, records in (("Normalizer", reg.normalizers), ("Simulator", reg.simulators)):
        console.print(f"\n[bold underline]{kind}s[/]")
        for key, rec in records.items():
            _describe(console, kind, key, rec, reg.provider.get((kind, key), "?"))
    console.print()
    console.print("[dim]Options: --normalizer NAME:key=value,key=value. Load only some plugins: "
                  "SNNBALANCE_PLUGINS=a,b; skip one: SNNBALANCE_BLOCK_PLUGINS=name.[/]")
    for problem in reg.problems:
        console.print(f"[yellow]warning:[/] {escape(str(problem))}", soft_wrap=True)
